#!/bin/sh
# Enclave entrypoint: mounts the EnclaveFS volume, runs the application (the
# arguments) once the mount is live, and unmounts -- committing -- when the
# application exits or the enclave is asked to stop (SIGTERM/SIGINT).
#
# Environment:
#   ENCLAVEFS_HOST            host service address (default vsock:3:7000)
#   ENCLAVEFS_VOLUME          volume name (required)
#   ENCLAVEFS_MOUNT           mountpoint (default /data)
#   ENCLAVEFS_KEY_COMMAND     prints the volume key (or ENCLAVEFS_KEY_FILE)
#   ENCLAVEFS_ANCHOR_COMMAND  optional rollback anchor (see docs/usage.md)
#   ENCLAVEFS_FORMAT_IF_EMPTY 1: format a volume that has no filesystem yet.
#     Off by default: a host that hides the header could otherwise make the
#     enclave start over on an empty volume. Use it for the first boot only,
#     or together with an anchor command.
set -eu

: "${ENCLAVEFS_HOST:=vsock:3:7000}"
: "${ENCLAVEFS_VOLUME:?set ENCLAVEFS_VOLUME}"
: "${ENCLAVEFS_MOUNT:=/data}"
EXIT_NOT_FORMATTED=7

if [ -n "${ENCLAVEFS_KEY_COMMAND:-}" ]; then
  key_option=--key-command key_value=$ENCLAVEFS_KEY_COMMAND
elif [ -n "${ENCLAVEFS_KEY_FILE:-}" ]; then
  key_option=--key-file key_value=$ENCLAVEFS_KEY_FILE
else
  echo "enclave-entrypoint: set ENCLAVEFS_KEY_COMMAND or ENCLAVEFS_KEY_FILE" >&2
  exit 2
fi

mount_volume() {
  if [ -n "${ENCLAVEFS_ANCHOR_COMMAND:-}" ]; then
    enclavefs mount --host "$ENCLAVEFS_HOST" --volume "$ENCLAVEFS_VOLUME" \
      "$key_option" "$key_value" --anchor-command "$ENCLAVEFS_ANCHOR_COMMAND" \
      "$ENCLAVEFS_MOUNT"
  else
    enclavefs mount --host "$ENCLAVEFS_HOST" --volume "$ENCLAVEFS_VOLUME" \
      "$key_option" "$key_value" "$ENCLAVEFS_MOUNT"
  fi
}

mkdir -p "$ENCLAVEFS_MOUNT"
# `enclavefs mount` returns only once the mount is live (or failed).
status=0
mount_volume || status=$?
if [ "$status" -eq "$EXIT_NOT_FORMATTED" ] && [ "${ENCLAVEFS_FORMAT_IF_EMPTY:-0}" = 1 ]; then
  enclavefs format --host "$ENCLAVEFS_HOST" --volume "$ENCLAVEFS_VOLUME" \
    "$key_option" "$key_value"
  status=0
  mount_volume || status=$?
fi
if [ "$status" -ne 0 ]; then
  echo "enclave-entrypoint: mounting $ENCLAVEFS_VOLUME failed (exit $status)" >&2
  exit "$status"
fi

"$@" &
app=$!
trap 'kill -TERM "$app" 2>/dev/null' TERM INT
app_status=0
wait "$app" || app_status=$?
# A trapped signal interrupts wait: wait again for the app to finish.
while kill -0 "$app" 2>/dev/null; do wait "$app" || app_status=$?; done
# Exit 1 from unmount: the final commit failed (it says why), so the last
# writes did not reach the host. The application's own failure comes first.
unmount_status=0
enclavefs unmount "$ENCLAVEFS_MOUNT" || unmount_status=$?
if [ "$app_status" -ne 0 ]; then exit "$app_status"; fi
exit "$unmount_status"

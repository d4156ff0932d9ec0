#!/usr/bin/env bash
# EnclaveFS quickstart: builds everything, starts enclavefs-host on a unix
# socket with its RocksDB store under ./var, creates a demo volume, formats
# it with a key file (./var/volume.key) and mounts it at ./mnt.
#   scripts/quickstart.sh        start (reruns reuse the store, volume and data)
#   scripts/quickstart.sh stop   unmount ./mnt, then stop the host service
# BUILD_DIR (default: build) picks the CMake build directory, VAR_DIR
# (default: var) where the store, socket, key and logs go, MOUNT_DIR
# (default: mnt) the mount point; relative paths are from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# The settings this run was given, for the rerun and stop hints.
settings=""
for name in BUILD_DIR VAR_DIR MOUNT_DIR VOLUME QUOTA; do
  if [ -n "${!name:-}" ]; then settings+="$name=${!name} "; fi
done
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }
VAR=$(abspath "${VAR_DIR:-var}")
STORE="$VAR/store"
SOCK="$VAR/host.sock"
PIDFILE="$VAR/host.pid"
LOG="$VAR/host.log"
KEY="$VAR/volume.key"
MNT=$(abspath "${MOUNT_DIR:-mnt}")
MOUNT_LOG="$VAR/mount.log"
BUILD=$(abspath "${BUILD_DIR:-build}")
HOST_BIN="$BUILD/host-server/enclavefs-host"
EFS_BIN="$BUILD/enclave-mount/enclavefs"
VOLUME=${VOLUME:-demo}
QUOTA=${QUOTA:-1GiB}
# Exit code of `enclavefs format` for a volume that already has a filesystem
# (docs/usage.md).
EXIT_ALREADY_FORMATTED=8

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  local exe
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  # A rebuild replaces the binary under a running host: " (deleted)".
  [ "${exe% (deleted)}" = "$HOST_BIN" ] || return 1
  echo "$pid"
}

# True if something (live or dead) is mounted at ./mnt.
mounted() {
  grep -qs " $MNT " /proc/self/mounts
}

unmount() {
  if ! mounted; then
    echo "nothing mounted at $MNT"
    return
  fi
  # A failure after the unmount itself (the final commit failed) is reported
  # by enclavefs and leaves nothing mounted.
  if [ -x "$EFS_BIN" ] && "$EFS_BIN" unmount "$MNT" || ! mounted; then
    return
  fi
  echo "enclavefs unmount failed; running fusermount3 -u $MNT" >&2
  fusermount3 -u "$MNT"
}

stop() {
  unmount
  local pid
  if pid=$(running_pid); then
    echo "stopping enclavefs-host (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "enclavefs-host did not stop within 10 s; see $LOG" >&2
      exit 1
    fi
  else
    echo "enclavefs-host is not running"
  fi
  rm -f "$PIDFILE"
}

if [ "${1:-}" = "stop" ]; then
  stop
  exit 0
elif [ -n "${1:-}" ]; then
  echo "usage: scripts/quickstart.sh [stop]" >&2
  exit 2
fi

echo "==> installing dependencies (Debian packages)"
scripts/install-deps.sh
echo "==> building"
# An existing build tree keeps its configuration; ninja reruns CMake when a
# CMakeLists.txt changed.
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C "$BUILD" enclavefs-host enclavefs | tail -n 1

mkdir -p "$VAR"
if pid=$(running_pid); then
  echo "==> enclavefs-host already running (pid $pid)"
else
  echo "==> starting enclavefs-host on unix:$SOCK (store $STORE, log $LOG)"
  # Ready is the "listening on" line `serve` prints once both sockets answer;
  # socket files alone may be stale ones left by a host that was killed.
  log_start=$(($(stat -c %s "$LOG" 2>/dev/null || echo 0) + 1))
  nohup "$HOST_BIN" serve --store "$STORE" --listen "unix:$SOCK" >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  listening() { tail -c "+$log_start" "$LOG" | grep -q '^enclavefs-host: listening on'; }
  for i in $(seq 1 600); do
    listening && break
    kill -0 "$pid" 2>/dev/null || break
    [ "$i" -eq 50 ] && echo "    waiting for enclavefs-host to open its store (up to 60 s)"
    sleep 0.1
  done
  if ! listening; then
    echo "enclavefs-host failed to start; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid"
    rm -f "$PIDFILE"
    exit 1
  fi
fi

if "$HOST_BIN" volume list --store "$STORE" | awk 'NR>1 {print $1}' | grep -qx "$VOLUME"; then
  echo "==> volume '$VOLUME' exists; reusing it"
else
  echo "==> creating volume '$VOLUME' with quota $QUOTA"
  "$HOST_BIN" volume create "$VOLUME" --quota "$QUOTA" --store "$STORE"
fi

if [ ! -f "$KEY" ]; then
  echo "==> generating the volume key $KEY (keep it secret: it unlocks the volume)"
  (umask 077 && head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' >"$KEY" && echo >>"$KEY")
fi
chmod 600 "$KEY"

KEYOPTS=(--host "unix:$SOCK" --volume "$VOLUME" --key-file "$KEY")
set +e
format_output=$("$EFS_BIN" format "${KEYOPTS[@]}" 2>&1)
format_status=$?
set -e
if [ "$format_status" -eq 0 ]; then
  echo "==> formatted volume '$VOLUME'"
  echo "$format_output" | sed 's/^/    /'
elif [ "$format_status" -eq "$EXIT_ALREADY_FORMATTED" ]; then
  echo "==> volume '$VOLUME' is already formatted; keeping its data"
else
  echo "$format_output" >&2
  exit 1
fi

# A mount whose daemon died answers ENOTCONN, even to mkdir -p.
if mounted && ! ls "$MNT" >/dev/null 2>&1; then
  echo "==> removing the dead mount at $MNT"
  fusermount3 -u "$MNT"
fi
if mounted; then
  echo "==> $MNT is already mounted"
else
  mkdir -p "$MNT"
  echo "==> mounting '$VOLUME' at $MNT"
  "$EFS_BIN" mount "${KEYOPTS[@]}" --log-file "$MOUNT_LOG" "$MNT"
fi

"$HOST_BIN" volume list --store "$STORE"
# Paths relative to the repository root keep the hints short.
r() { echo "${1#"$ROOT"/}"; }
cat <<MSG

EnclaveFS is running: volume '$VOLUME' is mounted at $(r "$MNT").
  host:  pid $(cat "$PIDFILE"), socket unix:$(r "$SOCK"), store $(r "$STORE"), log $(r "$LOG")
  key:   $(r "$KEY")   mount log: $(r "$MOUNT_LOG")

Try, from $ROOT:
  ls -la $(r "$MNT") && df -h $(r "$MNT")
  cp README.md $(r "$MNT")/ && cat $(r "$MNT")/README.md
  fio --name=try --directory=$(r "$MNT") --size=64m --bs=4k --rw=randwrite --verify=crc32c --ioengine=psync
  $(r "$HOST_BIN") volume list --store $(r "$STORE")
Volume details (info and fsck need the volume unmounted):
  $(r "$EFS_BIN") unmount $(r "$MNT")
  $(r "$EFS_BIN") info --host unix:$(r "$SOCK") --volume $VOLUME --key-file $(r "$KEY")
  ${settings}scripts/quickstart.sh   # mounts it again

Stop (unmounts, then stops the host; rerun to get your files back):
  ${settings}scripts/quickstart.sh stop
MSG

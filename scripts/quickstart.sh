#!/usr/bin/env bash
# EnclaveFS quickstart: builds everything, starts enclavefs-host on a unix
# socket with its RocksDB store under ./var, and creates a demo volume.
#   scripts/quickstart.sh        start (reruns reuse the store and volume)
#   scripts/quickstart.sh stop   stop the host service
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VAR="$ROOT/var"
STORE="$VAR/store"
SOCK="$VAR/host.sock"
PIDFILE="$VAR/host.pid"
LOG="$VAR/host.log"
HOST_BIN="$ROOT/build/host-server/enclavefs-host"
VOLUME=${VOLUME:-demo}
QUOTA=${QUOTA:-1GiB}

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  kill -0 "$pid" 2>/dev/null && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$HOST_BIN" ] || return 1
  echo "$pid"
}

stop() {
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
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build enclavefs-host | tail -n 1

mkdir -p "$VAR"
if pid=$(running_pid); then
  echo "==> enclavefs-host already running (pid $pid)"
else
  echo "==> starting enclavefs-host on unix:$SOCK (store $STORE, log $LOG)"
  nohup "$HOST_BIN" serve --store "$STORE" --listen "unix:$SOCK" >>"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
  if ! [ -S "$SOCK" ]; then
    echo "enclavefs-host failed to start; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
  fi
fi

if "$HOST_BIN" volume list --store "$STORE" | awk 'NR>1 {print $1}' | grep -qx "$VOLUME"; then
  echo "==> volume '$VOLUME' exists; reusing it"
else
  echo "==> creating volume '$VOLUME' with quota $QUOTA"
  "$HOST_BIN" volume create "$VOLUME" --quota "$QUOTA" --store "$STORE"
fi

"$HOST_BIN" volume list --store "$STORE"
cat <<MSG

EnclaveFS host service is running (pid $(cat "$PIDFILE")).
  socket:  unix:$SOCK
  store:   $STORE
  log:     $LOG

Try:
  $HOST_BIN volume list --store $STORE
  $HOST_BIN volume resize $VOLUME --quota 2GiB --store $STORE
  $HOST_BIN volume create scratch --quota 100MiB --store $STORE

Stop it with:
  scripts/quickstart.sh stop
MSG

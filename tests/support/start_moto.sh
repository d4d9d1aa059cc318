#!/usr/bin/env bash
# Starts the moto AWS emulator (extended by tests/support/moto_server.py) on 127.0.0.1:$MOTO_PORT
# for `cargo test --test aws`. Idempotent: a launcher already answering is left running.
#
#   tests/support/start_moto.sh          # then: cargo test --test aws
#   tests/support/start_moto.sh --stop   # stops the launcher this script started
#   MOTO_PORT=5001 tests/support/start_moto.sh   # another one, on another port
#
# Creates $REPO/.venv when missing and installs the pinned moto and cbor2 into it. Exits
# non-zero, loudly, when anything fails. The server's log is $REPO/target/moto.log.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${MOTO_PORT:-5000}"
VENV="$REPO/.venv"
# Per port, so a second launcher (the per-service endpoint test starts one) has its own.
if [ "$PORT" = 5000 ]; then SUFFIX=""; else SUFFIX="-$PORT"; fi
LOG="$REPO/target/moto$SUFFIX.log"
PIDFILE="$REPO/target/moto$SUFFIX.pid"
# Versions verified against the aws-sdk-* crates in Cargo.lock (see moto_server.py).
MOTO_SPEC='moto[server]==5.2.5'
CBOR2_SPEC='cbor2==6.2.1'
HEALTH="http://127.0.0.1:$PORT/_cutover/health"

fail() {
  echo "start_moto.sh: FAILED: $*" >&2
  exit 1
}

answers() {
  "$VENV/bin/python" - "$HEALTH" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.read() == b"ok" else 1)
except Exception:
    sys.exit(1)
PY
}

if [ "${1:-}" = "--stop" ]; then
  # Only the process this script started (recorded in the pid file), and only if it is ours.
  if [ -f "$PIDFILE" ]; then
    pid="$(cat "$PIDFILE")"
    if grep -q moto_server.py "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" && echo "start_moto.sh: stopped the moto launcher (pid $pid)" >&2
    fi
    rm -f "$PIDFILE"
  fi
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  command -v python3 >/dev/null || fail "python3 is not installed (needed for the moto emulator)"
  echo "start_moto.sh: creating $VENV" >&2
  python3 -m venv "$VENV" || fail "could not create a virtualenv at $VENV (is python3-venv installed?)"
fi

if ! "$VENV/bin/python" -c 'import moto, cbor2, flask; assert moto.__version__ == "5.2.5"' 2>/dev/null; then
  echo "start_moto.sh: installing $MOTO_SPEC $CBOR2_SPEC into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$MOTO_SPEC" "$CBOR2_SPEC" \
    || fail "pip could not install $MOTO_SPEC $CBOR2_SPEC"
fi

if answers; then
  echo "start_moto.sh: the moto launcher already answers on 127.0.0.1:$PORT" >&2
  exit 0
fi

mkdir -p "$(dirname "$LOG")"
echo "start_moto.sh: starting the moto launcher on 127.0.0.1:$PORT (log: $LOG)" >&2
MOTO_PORT="$PORT" nohup "$VENV/bin/python" "$REPO/tests/support/moto_server.py" --port "$PORT" \
  >"$LOG" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$PIDFILE"

# Wait until it answers, bounded (30 s).
for _ in $(seq 1 150); do
  if answers; then
    echo "start_moto.sh: moto launcher up (pid $PID)" >&2
    exit 0
  fi
  if ! kill -0 "$PID" 2>/dev/null; then
    tail -n 30 "$LOG" >&2 || true
    fail "the moto launcher exited during start-up (log above, full log: $LOG)"
  fi
  sleep 0.2
done
tail -n 30 "$LOG" >&2 || true
fail "the moto launcher did not answer on $HEALTH within 30 s (log: $LOG)"

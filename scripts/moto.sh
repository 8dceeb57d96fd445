# Sourced by the other scripts: installs moto server into .venv (once) and starts it on a free
# port on 127.0.0.1. Sets SALVE_MOTO_ENDPOINT and stops the server when the calling shell exits.

salve_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

ensure_moto() {
  if [ ! -x "$salve_root/.venv/bin/moto_server" ]; then
    echo "installing moto[server] into .venv ..." >&2
    python3 -m venv "$salve_root/.venv"
    "$salve_root/.venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
  fi
}

start_moto() {
  ensure_moto
  local port
  port="$("$salve_root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # One line per request served: the queue_drain bench counts its calls from it.
  export SALVE_MOTO_LOG="${TMPDIR:-/tmp}/salve-moto-$port.log"
  if [ -n "${SALVE_MOTO_SWITCH_INTERVAL:-}" ]; then
    # How often Python may switch threads (default 5 ms). Shorter makes the interleavings of
    # moto's unlocked request handlers, which a busy server hits now and then, frequent.
    "$salve_root/.venv/bin/python" -c 'import sys; sys.setswitchinterval(float(sys.argv[1])); sys.argv = ["moto_server"] + sys.argv[2:]; from moto.server import main; main()' \
      "$SALVE_MOTO_SWITCH_INTERVAL" -H 127.0.0.1 -p "$port" >"$SALVE_MOTO_LOG" 2>&1 &
  else
    "$salve_root/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$SALVE_MOTO_LOG" 2>&1 &
  fi
  export SALVE_MOTO_PID=$!
  trap 'kill "$SALVE_MOTO_PID" 2>/dev/null || true' EXIT
  export SALVE_MOTO_ENDPOINT="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if "$salve_root/.venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('$SALVE_MOTO_ENDPOINT/moto-api/')" 2>/dev/null; then
      echo "moto server on $SALVE_MOTO_ENDPOINT" >&2
      return 0
    fi
    sleep 0.2
  done
  echo "moto server did not start; see $SALVE_MOTO_LOG" >&2
  return 1
}

# moto needs credentials to sign with, never real ones.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE

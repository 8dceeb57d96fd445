# Sourced by the other scripts: installs Prism and GitHub's official OpenAPI description from npm
# into .node/ (once), and starts Prism mocking GitHub's REST API on a free port on 127.0.0.1. Prism
# checks every request against the description and refuses one that does not conform. Sets
# SALVE_PRISM_URL and stops the server when the calling shell exits.

salve_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SALVE_PRISM_SPEC="$salve_root/.node/node_modules/@octokit/openapi/generated/api.github.com.json"

ensure_prism() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "installing nodejs and npm ..." >&2
    local apt=(apt-get); [ "$(id -u)" -eq 0 ] || apt=(sudo apt-get)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q nodejs npm >/dev/null \
      || { "${apt[@]}" update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q nodejs npm >/dev/null; }
  fi
  if [ ! -x "$salve_root/.node/node_modules/.bin/prism" ] || [ ! -f "$SALVE_PRISM_SPEC" ]; then
    echo "installing Prism and GitHub's OpenAPI description into .node ..." >&2
    mkdir -p "$salve_root/.node"
    npm install --silent --no-audit --no-fund --prefix "$salve_root/.node" \
      '@stoplight/prism-cli@5.14.2' '@octokit/openapi@23.0.2' >&2
  fi
}

start_prism() {
  ensure_prism
  local port log
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  log="${TMPDIR:-/tmp}/salve-prism-$port.log"
  "$salve_root/.node/node_modules/.bin/prism" mock --host 127.0.0.1 --port "$port" \
    "$SALVE_PRISM_SPEC" >"$log" 2>&1 &
  export SALVE_PRISM_PID=$!
  trap 'kill "${SALVE_MOTO_PID:-}" "${SALVE_PRISM_PID:-}" 2>/dev/null || true' EXIT
  export SALVE_PRISM_URL="http://127.0.0.1:$port"
  # The description is 13 MB: Prism takes seconds to read it.
  for _ in $(seq 1 600); do
    if grep -q "Prism is listening" "$log" 2>/dev/null; then
      echo "prism (GitHub REST API) on $SALVE_PRISM_URL" >&2
      return 0
    fi
    if ! kill -0 "$SALVE_PRISM_PID" 2>/dev/null; then break; fi
    sleep 0.2
  done
  echo "prism did not start; see $log" >&2
  return 1
}

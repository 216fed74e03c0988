#!/usr/bin/env bash
# Finds or starts the PostgreSQL the tests use, and prints its URL (sourced by scripts/test.sh,
# or run alone: `bash scripts/test-postgres.sh`).
#
# In order: $HOOPGUARD_TEST_DATABASE_URL; else a server on 127.0.0.1:5432 (trust auth, user
# postgres); else a throwaway cluster under target/postgres made with Debian's initdb/pg_ctl
# (kept running for later runs; `pg_ctl -D target/postgres/data stop` stops it); else, as root,
# Debian's postgresql package is installed first. Never skips: without a database it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

local_addr="${HOOPGUARD_TEST_PG_LOCAL:-127.0.0.1:5432}"

say() { echo "test-postgres.sh: $*" >&2; }

# Whether a server answers at URL (psql if there is one, else a TCP connect).
answers() {
    local url="$1" host port
    if command -v psql >/dev/null; then
        psql "$url" -Atqc 'SELECT 1' >/dev/null 2>&1
        return
    fi
    host="${url#*@}"; host="${host%%/*}"; port="${host##*:}"; host="${host%%:*}"
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

find_bin() {
    local b
    b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$b" ] && [ -x "$b/initdb" ] && echo "$b"
}

pg_url() {
    if [ -n "${HOOPGUARD_TEST_DATABASE_URL:-}" ]; then
        echo "$HOOPGUARD_TEST_DATABASE_URL"
        return
    fi
    local url="postgres://postgres@$local_addr/postgres"
    if answers "$url"; then
        echo "$url"
        return
    fi
    local dir="$PWD/target/postgres" port="${HOOPGUARD_TEST_PG_PORT:-55432}"
    url="postgres://postgres@127.0.0.1:$port/postgres"
    if answers "$url"; then
        echo "$url"
        return
    fi
    local bin
    bin=$(find_bin || true)
    if [ -z "$bin" ]; then
        if [ "$(id -u)" != 0 ]; then
            say "no PostgreSQL found: install Debian's postgresql package (or set HOOPGUARD_TEST_DATABASE_URL)"
            return 1
        fi
        say "installing Debian's postgresql package"
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        bin=$(find_bin)
    fi
    # initdb refuses to run as root: the cluster belongs to the postgres user then.
    local as=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        as=(runuser -u postgres --)
    fi
    mkdir -p "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        say "creating a throwaway cluster in $dir/data"
        rm -rf "$dir/data"
        mkdir -p "$dir/data" "$dir/sock"
        [ "${#as[@]}" -gt 0 ] && chown -R postgres "$dir"
        "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; return 1; }
    fi
    [ "${#as[@]}" -gt 0 ] && chown -R postgres "$dir"
    say "starting it on 127.0.0.1:$port"
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock" start >&2 \
        || { cat "$dir/server.log" >&2; return 1; }
    echo "$url"
}

url=$(pg_url)
if ! answers "$url"; then
    say "PostgreSQL at ${url%%@*}@… does not answer"
    exit 1
fi
echo "$url"

#!/usr/bin/env bash
# hoopguard's whole test suite: unit, doc, and end-to-end tests against real peers.
#
# Installs the peers (tests/peers/requirements.txt into a virtualenv, tests/peers/package.json
# with npm) under target/ the first time, and again whenever those files change; finds or starts
# a PostgreSQL (scripts/test-postgres.sh); then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${HOOPGUARD_PEERS:-$PWD/target/peers/venv}"
reqs=tests/peers/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$reqs" "$venv/.installed-requirements"; then
    echo "test.sh: installing test peers into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
    cp "$reqs" "$venv/.installed-requirements"
fi
export HOOPGUARD_PEERS="$venv"

# The npm peers (tests/peers/package.json) under target/ too.
node_peers="${HOOPGUARD_NODE_PEERS:-$PWD/target/peers/node}"
if [ ! -d "$node_peers/node_modules/@modelcontextprotocol/server-everything" ] \
    || ! cmp -s tests/peers/package.json "$node_peers/package.json"; then
    echo "test.sh: installing npm test peers into $node_peers" >&2
    mkdir -p "$node_peers"
    cp tests/peers/package.json "$node_peers/package.json"
    (cd "$node_peers" && npm install --no-audit --no-fund --silent)
fi
export HOOPGUARD_NODE_PEERS="$node_peers"

# A PostgreSQL for the shared-store and replica tests: found, or started under target/
# (scripts/test-postgres.sh). The tests fail, never skip, without one.
HOOPGUARD_TEST_DATABASE_URL="$(bash scripts/test-postgres.sh)"
export HOOPGUARD_TEST_DATABASE_URL

# Unit, integration (end-to-end) and doc tests of every crate; the benchmarks run once each in
# test mode so they cannot rot.
cargo test -p hoopguard --bench '*'
cargo test --workspace

#!/usr/bin/env bash
# hoopguard's whole test suite: unit, doc, and end-to-end tests against real peers.
#
# Installs the peers (tests/peers/requirements.txt) into a virtualenv under target/ the first
# time, and again whenever that file changes; then runs every test in the workspace.
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

# Unit, integration (end-to-end) and doc tests of every crate; the benchmarks run once each in
# test mode so they cannot rot.
cargo test -p hoopguard --bench '*'
cargo test --workspace

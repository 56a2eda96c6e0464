#!/usr/bin/env bash
# Peer comparison: Kustodian vs duckdb-kql (KQL translated to SQL and run by DuckDB) on the
# same generated data. See compare.py for what is measured, README.md for how to reproduce.
#
#   benches/peer/compare.sh [--rows 1000000] [--runs 5] [--kustodian PATH] [--work DIR]
#
# Creates the Python virtual environment (default benches/peer/.venv, or $PEER_VENV) on first
# use, installs requirements.txt into it whenever that file changes, then runs compare.py.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${PEER_VENV:-$here/.venv}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating virtual environment in $venv" >&2
    python3 -m venv "$venv"
fi
stamp="$venv/.peer-requirements"
if ! cmp -s "$here/requirements.txt" "$stamp"; then
    echo "installing $here/requirements.txt into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi

exec "$venv/bin/python" "$here/compare.py" "$@"

#!/usr/bin/env bash
# Peak memory of the 10-million-row run (issue: "ingests and answers a summarize with peak memory
# under 4 GB"): generates T with `kustodian gen`, ingests it into a new cluster directory, then
# reopens the cluster in a new process and answers Q1 and a summarize over every row. Reports
# each process's peak resident set size (GNU time's %M) and fails if one exceeds the limit.
#
#   benches/memory.sh [ROWS] [LIMIT_MIB]     (defaults: 10000000 rows, 4096 MiB)
#   KUSTODIAN=path/to/kustodian benches/memory.sh
set -euo pipefail

rows="${1:-10000000}"
limit_mib="${2:-4096}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${KUSTODIAN:-${CARGO_TARGET_DIR:-$root/target}/release/kustodian}"
if [ ! -x "$bin" ]; then
    echo "no kustodian binary at $bin: build it with 'cargo build --release -p kustodian-runtime'" >&2
    exit 2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

peak() { # label, command...: runs the command, prints its peak RSS, checks the limit
    local label="$1"; shift
    /usr/bin/time -f "%M %e" -o "$work/time" "$@" > "$work/out" 2> "$work/err" || {
        echo "$label failed:" >&2; cat "$work/out" "$work/err" >&2; exit 2; }
    read -r kib secs < "$work/time"
    local mib=$((kib / 1024))
    printf '%-44s peak %6d MiB  %7.2f s\n' "$label" "$mib" "$secs"
    if [ "$mib" -gt "$limit_mib" ]; then
        echo "FAIL: $label used $mib MiB, over the $limit_mib MiB limit" >&2
        exit 1
    fi
}

peak "gen $rows rows (Parquet)" "$bin" gen --rows "$rows" --out "$work/data" --format parquet
"$bin" init --data "$work/cluster" --admin aaduser=admin@contoso.com > /dev/null
"$bin" run --data "$work/cluster" -c '.create database Bench' > /dev/null
peak "ingest into a cluster directory" "$bin" run --data "$work/cluster" --db Bench --ingest-root "$work/data" "$work/data/ingest.kql"
peak "reopen + Q1 (where Region == r3, by Owner)" "$bin" run --data "$work/cluster" --db Bench \
    -c 'T | where Region == "r3" | summarize sum(Amount) by Owner | count'
peak "reopen + summarize every row by Region, Owner" "$bin" run --data "$work/cluster" --db Bench \
    -c 'T | summarize n = count(), total = sum(Amount) by Region, Owner | count'
cat "$work/out"

#!/usr/bin/env bash
# Peak memory and time of whole processes over a cluster directory of generated rows: generates
# T with `kustodian gen`, ingests it into a new cluster directory (streamed into extents of up to
# 1M rows), then, each in a new process: open + `T | count`, open + Q1, open + Q2. Reports each
# process's peak resident set size (GNU time's %M) and wall time, and fails if a query's peak
# exceeds the limit (the ingestion's is reported, not limited).
#
#   benches/memory.sh [ROWS] [LIMIT_MIB]     (defaults: 10000000 rows, 1024 MiB)
#   KUSTODIAN=path/to/kustodian benches/memory.sh
#   KEEP=DIR benches/memory.sh ...           keep the cluster in DIR/cluster (for benches/disk)
set -euo pipefail

rows="${1:-10000000}"
limit_mib="${2:-1024}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${KUSTODIAN:-${CARGO_TARGET_DIR:-$root/target}/release/kustodian}"
if [ ! -x "$bin" ]; then
    echo "no kustodian binary at $bin: build it with 'cargo build --release -p kustodian-runtime'" >&2
    exit 2
fi
if [ -n "${KEEP:-}" ]; then
    work="$KEEP"; mkdir -p "$work"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi

peak() { # label, limit (0: none), command...: runs the command, prints its peak RSS and time
    local label="$1" limit="$2"; shift 2
    /usr/bin/time -f "%M %e" -o "$work/time" "$@" > "$work/out" 2> "$work/err" || {
        echo "$label failed:" >&2; cat "$work/out" "$work/err" >&2; exit 2; }
    read -r kib secs < "$work/time"
    local mib=$((kib / 1024))
    printf '%-46s peak %6d MiB  %7.2f s\n' "$label" "$mib" "$secs"
    if [ "$limit" -gt 0 ] && [ "$mib" -gt "$limit" ]; then
        echo "FAIL: $label used $mib MiB, over the $limit MiB limit" >&2
        exit 1
    fi
}

rm -rf "$work/data" "$work/cluster"
peak "gen $rows rows (Parquet)" 0 "$bin" gen --rows "$rows" --out "$work/data" --format parquet
"$bin" init --data "$work/cluster" --admin aaduser=admin@contoso.com > /dev/null
"$bin" run --data "$work/cluster" -c '.create database Bench' > /dev/null
peak "ingest into a cluster directory" 0 "$bin" run --data "$work/cluster" --db Bench --ingest-root "$work/data" "$work/data/ingest.kql"
rm -rf "$work/data"
extents=$("$bin" run --data "$work/cluster" --db Bench --format csv -c '.show table T extents | count' | tail -1)
bytes=$(du -sb "$work/cluster/extents" | cut -f1)
echo "cluster: $extents extents, $((bytes / 1024 / 1024)) MiB on disk"
peak "open + T | count" "$limit_mib" "$bin" run --data "$work/cluster" --db Bench -c 'T | count'
peak "open + Q1 (where Region == r3, by Owner)" "$limit_mib" "$bin" run --data "$work/cluster" --db Bench \
    -c 'T | where Region == "r3" | summarize sum(Amount) by Owner | count'
peak "open + Q2 (summarize every row by Region, Owner)" "$limit_mib" "$bin" run --data "$work/cluster" --db Bench \
    -c 'T | summarize n = count(), total = sum(Amount) by Region, Owner | count'
peak "open + selective (where Id == 123456)" "$limit_mib" "$bin" run --data "$work/cluster" --db Bench \
    -c 'T | where Id == 123456 | project Amount'

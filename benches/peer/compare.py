"""Peer comparison: Kustodian vs duckdb-kql, the same KQL over the same data.

What it measures
    Two KQL queries over one table T (Id long, Region string, Owner string, Amount real,
    Ts datetime) of --rows generated rows:
        Q1  T | where Region == "r3" | summarize sum(Amount) by Owner
        Q2  T | where Amount > 500 | count
    Each engine loads the data once, outside the measurements, then runs each query once to
    warm up and --runs more times in the same process; the table reports the median, min and
    max of those timed runs.
    * Kustodian: `kustodian run --data CLUSTER --db Bench --no-plan-cache --format json
      --timing SCRIPT`, the script holding the query runs+1 times; the times are its own
      `elapsed_ms` (syntax check, planning, execution), the first one dropped as the warm-up.
      `--no-plan-cache` makes every run plan the query in full, as duckdb-kql translates and
      DuckDB plans it every time.
    * duckdb-kql: `duckdb_kql.execute(con, query).fetchall()` on an in-memory DuckDB
      connection holding T (loaded from the Parquet file), timed with perf_counter. That is
      KQL-to-SQL translation plus DuckDB's execution; the translated SQL alone is timed too
      and reported in a note. DuckDB's thread count is left at its default and reported.
    Both engines read the Parquet file written by `kustodian gen`, and the script checks that
    their answers agree: Q2's counts equal; Q1's groups the same, each sum within 1e-6
    relative. It exits 1 if they do not.

Reproduce
    cargo build --release -p kustodian-runtime
    benches/peer/compare.sh --rows 1000000 --runs 5
    (compare.sh makes the virtual environment and installs requirements.txt; the figures also
    go to WORK/peer-results.json, WORK defaulting to benches/peer/work.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import duckdb
import duckdb_kql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent  # the Cargo workspace
QUERIES = {
    "Q1": 'T | where Region == "r3" | summarize sum(Amount) by Owner',
    "Q2": "T | where Amount > 500 | count",
}
SETUP = """.create database Bench

.create table T (Id: long, Region: string, Owner: string, Amount: real, Ts: datetime)

.ingest into table T ('{parquet}') with (format='parquet')
"""


def fail(message: str) -> None:
    print(f"compare.py: {message}", file=sys.stderr)
    sys.exit(2)


def default_kustodian() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR")
    return (Path(target).resolve() if target else ROOT / "target") / "release" / "kustodian"


def kustodian(binary: Path, *args: str) -> str:
    """Runs the CLI; on failure shows the command and everything it printed, and stops."""
    done = subprocess.run([str(binary), *args], capture_output=True, text=True)
    if done.returncode != 0:
        fail(
            f"`{binary} {' '.join(args)}` exited {done.returncode}\n"
            f"--- stdout ---\n{done.stdout}--- stderr ---\n{done.stderr}"
        )
    return done.stdout


def summary(times_ms: list[float]) -> dict:
    return {
        "median_ms": statistics.median(times_ms),
        "min_ms": min(times_ms),
        "max_ms": max(times_ms),
        "times_ms": times_ms,
    }


def run_kustodian(binary: Path, cluster: Path, work: Path, runs: int) -> dict:
    results = {}
    for name, query in QUERIES.items():
        script = work / f"{name.lower()}.kql"
        script.write_text("\n\n".join([query] * (runs + 1)) + "\n")
        out = kustodian(binary, "run", "--data", str(cluster), "--db", "Bench", "--no-plan-cache",
                        "--format", "json", "--timing", str(script))
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        errors = [line["error"] for line in lines if "error" in line]
        if errors or len(lines) != runs + 1:
            fail(f"kustodian {name}: expected {runs + 1} results, got {len(lines)}; "
                 f"errors: {errors}")
        rows = lines[-1]["rows"]
        results[name] = {**summary([line["elapsed_ms"] for line in lines[1:]]),
                         "result_rows": len(rows), "rows": rows}
    return results


def run_duckdb_kql(parquet: Path, runs: int) -> tuple[dict, int, int]:
    con = duckdb_kql.connect()  # in memory, TimeZone=UTC
    con.execute("CREATE TABLE T AS SELECT * FROM read_parquet(?)", [str(parquet)])
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    table_rows = con.execute("SELECT count(*) FROM T").fetchone()[0]
    results = {}
    for name, query in QUERIES.items():
        times, rows = [], []
        for i in range(runs + 1):
            start = time.perf_counter()
            rows = duckdb_kql.execute(con, query).fetchall()
            if i:  # run 0 is the warm-up
                times.append((time.perf_counter() - start) * 1000)
        sql = str(duckdb_kql.to_sql(query))
        sql_times = []
        for i in range(runs + 1):
            start = time.perf_counter()
            con.execute(sql).fetchall()
            if i:
                sql_times.append((time.perf_counter() - start) * 1000)
        results[name] = {**summary(times), "result_rows": len(rows),
                         "rows": [list(r) for r in rows], "sql": sql,
                         "sql_only_median_ms": statistics.median(sql_times)}
    return results, threads, table_rows


def compare_answers(k: dict, d: dict) -> tuple[bool, str]:
    """Q2 counts equal; Q1 the same owners, each sum within 1e-6 relative."""
    k_count, d_count = k["Q2"]["rows"][0][0], d["Q2"]["rows"][0][0]
    k_sums = {owner: s for owner, s in k["Q1"]["rows"]}
    d_sums = {owner: s for owner, s in d["Q1"]["rows"]}
    q1_ok = k_sums.keys() == d_sums.keys() and all(
        math.isclose(k_sums[o], d_sums[o], rel_tol=1e-6) for o in k_sums)
    q2_ok = k_count == d_count
    detail = (f"Q1 {len(k_sums)} vs {len(d_sums)} groups, sums "
              f"{'within' if q1_ok else 'NOT within'} 1e-6 relative; "
              f"Q2 count {k_count} vs {d_count}")
    return q1_ok and q2_ok, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="timed runs after one warm-up")
    parser.add_argument("--kustodian", type=Path, default=default_kustodian())
    parser.add_argument("--work", type=Path, default=HERE / "work",
                        help="scratch directory; its data/ and cluster/ are recreated")
    parser.add_argument("--parquet", type=Path,
                        help="use this T.parquet instead of `kustodian gen` (development)")
    args = parser.parse_args()
    if args.runs < 1:
        fail("--runs must be at least 1")

    binary = args.kustodian.resolve()
    if not binary.is_file():
        fail(f"no Kustodian binary at {binary}\n"
             f"build it with:  cargo build --release -p kustodian-runtime\n"
             f"(from {ROOT}), or pass --kustodian PATH")

    work = args.work.resolve()
    data, cluster = work / "data", work / "cluster"
    for owned in (data, cluster):  # only the subdirectories this script creates
        shutil.rmtree(owned, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)

    if args.parquet:
        parquet = args.parquet.resolve()
    else:
        print(f"generating {args.rows} rows with kustodian gen", file=sys.stderr)
        kustodian(binary, "gen", "--rows", str(args.rows), "--out", str(data))
        parquet = data / "T.parquet"
    if not parquet.is_file():
        fail(f"no Parquet file at {parquet}")

    print("loading Kustodian cluster", file=sys.stderr)
    kustodian(binary, "init", "--data", str(cluster), "--admin", "aaduser=admin@contoso.com")
    setup = work / "setup.kql"
    setup.write_text(SETUP.format(parquet=parquet))
    kustodian(binary, "run", "--data", str(cluster), str(setup))

    print(f"timing Kustodian ({args.runs} runs)", file=sys.stderr)
    k = run_kustodian(binary, cluster, work, args.runs)
    print(f"timing duckdb-kql ({args.runs} runs)", file=sys.stderr)
    d, threads, table_rows = run_duckdb_kql(parquet, args.runs)
    agree, detail = compare_answers(k, d)

    env = {
        "rows": table_rows, "runs": args.runs, "parquet": str(parquet),
        "cores": os.cpu_count(), "duckdb_threads": threads,
        "duckdb": duckdb.__version__, "duckdb_kql": version("duckdb-kql"),
        "python": platform.python_version(),
        "kustodian": kustodian(binary, "--version").strip(),
        "kustodian_binary": str(binary),
    }
    for res in (k, d):  # keep the answers' shape in the JSON, not their 1000 rows
        res["Q1"]["groups"] = len(res["Q1"].pop("rows"))
        res["Q2"]["count"] = res["Q2"].pop("rows")[0][0]
    results = {"environment": env, "queries": QUERIES, "answers_agree": agree,
               "answers": detail, "kustodian": k, "duckdb_kql": d}
    (work / "peer-results.json").write_text(json.dumps(results, indent=2) + "\n")

    print("| engine | query | median ms | min ms | max ms | result rows |")
    print("|---|---|---:|---:|---:|---:|")
    for name in QUERIES:
        for engine, res in (("kustodian", k), ("duckdb-kql", d)):
            r = res[name]
            print(f"| {engine} | {name} | {r['median_ms']:.2f} | {r['min_ms']:.2f} "
                  f"| {r['max_ms']:.2f} | {r['result_rows']} |")
    print()
    print(f"Answers agree: {'yes' if agree else 'NO'} ({detail}).")
    for name, query in QUERIES.items():
        print(f"{name}: `{query}`")
    print(f"{table_rows} rows, median of {args.runs} in-process runs after one warm-up, "
          f"load excluded. duckdb-kql times include KQL-to-SQL translation; the SQL alone took "
          + ", ".join(f"{n} {d[n]['sql_only_median_ms']:.2f} ms" for n in QUERIES) + ".")
    print(f"Versions: {env['kustodian']}, duckdb {env['duckdb']} ({threads} threads), "
          f"duckdb-kql {env['duckdb_kql']}, python {env['python']}; {env['cores']} cores.")
    print(f"Figures in {work / 'peer-results.json'}", file=sys.stderr)
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks corpus/parse against the official Kusto parser (shared/tools/kql-oracle):
every ok/*.kql case must be syntax_ok, every err/*.kql case must not be.
Usage: python3 corpus/parse/check_oracle.py [CORPUS_DIR]   (exit 1 on any mismatch)
The same check, plus the differential against kustodian_parser, is tests/tests/oracle_diff.rs."""
import json, subprocess, sys, glob, os
here = os.path.dirname(os.path.abspath(__file__))
root = sys.argv[1] if len(sys.argv) > 1 else here
oracle = os.environ.get('KQL_ORACLE') or os.path.join(here, '../../../shared/tools/kql-oracle/kql-oracle')
files = []
for kind in ('ok', 'err'):
    for f in sorted(glob.glob(os.path.join(root, kind, '*.kql'))):
        files.append((kind, f, open(f, encoding='utf-8', newline='').read()))
inp = ''.join(json.dumps(t) + '\n' for _, _, t in files)
p = subprocess.run([oracle], input=inp, capture_output=True, text=True)
res = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
assert len(res) == len(files), (len(res), len(files), p.stderr)
bad = 0
kinds = {}
for (kind, f, t), r in zip(files, res):
    kinds.setdefault((kind, r.get('kind')), 0); kinds[(kind, r.get('kind'))] += 1
    if r['syntax_ok'] != (kind == 'ok'):
        bad += 1
        print(f'MISMATCH {kind} {os.path.basename(f)} kind={r.get("kind")}: {t.strip()[:200]!r}')
        for d in r.get('syntax', [])[:3]:
            print('    ', d['message'], '@', d['start'], repr(t[d['start']:d['start']+20]))
print(kinds)
print('mismatches:', bad, 'of', len(files))
sys.exit(1 if bad else 0)

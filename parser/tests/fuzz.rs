//! Property tests: `parse` never panics, and whatever it accepts prints back to text that
//! parses to the same AST (`parse(print(ast)) == ast`) and prints identically again.
//!
//! Four input generators: random bytes, random strings over KQL's characters, "token soup"
//! from a vocabulary of KQL fragments, structured queries generated from a small grammar, and
//! mutations of the shared corpus. Run long with e.g. `PROPTEST_CASES=200000`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use kustodian_parser::parse;
use proptest::prelude::*;
use proptest::test_runner::Config;

fn check(text: &str) -> Result<(), TestCaseError> {
    match parse(text) {
        Err(e) => {
            // Errors must point inside the text and render a frame without panicking.
            prop_assert!(
                e.span.start <= e.span.end && e.span.end <= text.len(),
                "bad span {:?} for {text:?}",
                e.span
            );
            let shown = e.to_string();
            let pos = format!("line {}, column {}", e.line, e.column);
            prop_assert!(shown.contains(&pos), "{} lacks {}", shown, pos);
            let _ = e.frame(text);
        }
        Ok(ast) => {
            let printed = ast.to_string();
            match parse(&printed) {
                Ok(again) => {
                    prop_assert!(
                        again == ast,
                        "round trip changed the AST\n input: {text:?}\n printed: {printed:?}\n reprinted: {:?}",
                        again.to_string()
                    );
                    let printed2 = again.to_string();
                    prop_assert_eq!(printed2, printed, "printing is not stable for {:?}", text);
                }
                Err(e) => {
                    return Err(TestCaseError::fail(format!(
                        "printed text does not parse\n input: {text:?}\n printed: {printed:?}\n error: {e}"
                    )));
                }
            }
            // serde must handle every AST the parser builds.
            prop_assert!(serde_json::to_string(&ast).is_ok());
        }
    }
    Ok(())
}

fn config() -> Config {
    // Honours PROPTEST_CASES; a modest default keeps `cargo test` quick.
    let mut c = Config::default();
    if std::env::var("PROPTEST_CASES").is_err() {
        c.cases = 512;
    }
    c.failure_persistence = None;
    c
}

const VOCAB: &[&str] = &[
    "T",
    "x",
    "y",
    "Col",
    "['my col']",
    "[\"a b\"]",
    "$left",
    "$right",
    "count",
    "type",
    "kind",
    "project",
    "where",
    "|",
    "|",
    "|",
    ";",
    ",",
    ",",
    "(",
    ")",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ".",
    "..",
    "=",
    "==",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "=~",
    "!~",
    "+",
    "-",
    "*",
    "/",
    "%",
    ":",
    "=>",
    "<|",
    "and",
    "or",
    "not",
    "has",
    "!has",
    "has_cs",
    "contains",
    "!contains_cs",
    "startswith",
    "endswith_cs",
    "hasprefix",
    "!hassuffix",
    "matches regex",
    "in",
    "!in",
    "in~",
    "!in~",
    "has_any",
    "has_all",
    "between",
    "!between",
    "1",
    "0",
    "42",
    "1.5",
    "1e3",
    "0x1F",
    "1d",
    "2h",
    "30m",
    "10s",
    "100ms",
    "1tick",
    "1.5h",
    "'a'",
    "\"b\"",
    "@'c:\\d'",
    "h'secret'",
    "```multi\nline```",
    "true",
    "false",
    "null",
    "datetime(2020-01-01)",
    "datetime(null)",
    "time(1.02:03:04)",
    "timespan(2)",
    "guid(74be27de-1e4e-49d9-b579-fe0b331d3642)",
    "dynamic([1, \"a\", {\"b\": null}])",
    "dynamic(null)",
    "long(null)",
    "int(3)",
    "real(nan)",
    "real(-inf)",
    "decimal(1.5)",
    "bool(true)",
    "typeof(long)",
    "typeof(*)",
    "let",
    "set",
    "declare query_parameters",
    "restrict access to",
    "alias database",
    "view",
    "print",
    "range",
    "from",
    "to",
    "step",
    "union",
    "datatable",
    "externaldata",
    "find",
    "search",
    "evaluate",
    "filter",
    "project-away",
    "project-keep",
    "project-rename",
    "project-reorder",
    "extend",
    "summarize",
    "by",
    "take",
    "limit",
    "top",
    "top-nested",
    "top-hitters",
    "of",
    "sort",
    "order",
    "asc",
    "desc",
    "nulls",
    "first",
    "last",
    "distinct",
    "join",
    "lookup",
    "on",
    "as",
    "getschema",
    "mv-expand",
    "mv-apply",
    "parse",
    "parse-where",
    "parse-kv",
    "make-series",
    "default",
    "serialize",
    "sample",
    "sample-distinct",
    "render",
    "invoke",
    "fork",
    "facet",
    "partition",
    "scan",
    "reduce",
    "consume",
    "with",
    "kind=inner",
    "kind = leftouter",
    "hint.strategy=shuffle",
    "withsource=S",
    "isfuzzy=true",
    "with_itemindex=i",
    "bagexpansion=array",
    "flags=i",
    "decodeblocks=true",
    "with_match_id=m",
    "toscalar",
    "materialize",
    "database('db')",
    "cluster('c')",
    "table('T')",
    "f",
    "g",
    "a-b",
    "a - b",
    "T*",
    "*",
    ".create",
    ".show",
    ".drop",
    ".alter",
    ".add",
    ".set",
    ".append",
    ".ingest",
    ".delete",
    ".clear",
    "table",
    "tables",
    "database",
    "function",
    "functions",
    "policy",
    "row_level_security",
    "restricted_view_access",
    "enable",
    "disable",
    "principals",
    "principal",
    "roles",
    "admins",
    "users",
    "viewers",
    "none",
    "skip-results",
    "ifexists",
    "ifnotexists",
    "inline",
    "into",
    "async",
    "set-or-append",
    "create-or-alter",
    "materialized-view",
    "schema",
    "details",
    "// comment\n",
    "\n",
    " ",
    "-",
    "!",
    "~",
    "@",
    "'",
    "\"",
    "graph-match",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (prop::sample::select(VOCAB), prop::bool::weighted(0.85)),
        0..40,
    )
    .prop_map(|parts| {
        let mut s = String::new();
        for (p, space) in parts {
            s.push_str(p);
            if space {
                s.push(' ');
            }
        }
        s
    })
}

// ---- structured generator: mostly valid queries --------------------------------------------

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "x", "y", "Col", "Amount", "count", "type", "kind", "on", "with", "step", "take",
            "range", "database", "evaluate", "_x1"
        ])
        .prop_map(str::to_string),
        prop::sample::select(vec!["['my col']", "['where']", "[\"a'b\"]", "['x\\ny']"])
            .prop_map(str::to_string),
    ]
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| format!("long({v})")),
        any::<i32>().prop_map(|v| format!("int({v})")),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| format!("real({v:?})")),
        (
            0u32..1000,
            prop::sample::select(vec![
                "d",
                "h",
                "m",
                "s",
                "ms",
                "microsecond",
                "tick",
                "days",
                "hours",
                "nanoseconds"
            ])
        )
            .prop_map(|(n, u)| format!("{n}{u}")),
        "[a-zA-Z0-9 '\"\\\\\n\t]{0,8}".prop_map(|s| format!("{s:?}")),
        prop::sample::select(vec![
            "true",
            "false",
            "datetime(2020-01-01)",
            "datetime(null)",
            "time(-1.02:03:04.5)",
            "guid(null)",
            "dynamic({\"a\": [1, -2.5, \"x\", true, null]})",
            "dynamic([])",
            "real(nan)",
            "real(+inf)",
            "decimal(-1.25)",
            "h'hidden'",
            "@'c:\\temp'",
            "'a' 'b'",
            "```x\ny```",
            "typeof(string)",
            "typeof(a:long, *)",
        ])
        .prop_map(str::to_string),
    ]
}

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![3 => name(), 2 => literal(), 1 => Just("$left.x".to_string())];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec!["+", "-", "*", "/", "%", "and", "or"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            (
                inner.clone(),
                prop::sample::select(vec!["+", "*", "and"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a}) {op} ({b})")),
            // Comparisons do not chain in KQL: parenthesise their operands.
            (
                inner.clone(),
                prop::sample::select(vec![
                    "==",
                    "!=",
                    "<",
                    ">=",
                    "=~",
                    "has",
                    "!contains_cs",
                    "startswith",
                    "matches regex",
                    "<>"
                ]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a}) {op} ({b})")),
            inner.clone().prop_map(|a| format!("({a})")),
            // the three comparison levels nest without parentheses
            (
                inner.clone(),
                inner.clone(),
                inner.clone(),
                prop::sample::select(vec![
                    "({a}) == ({b}) has ({c})",
                    "({a}) has ({b}) != ({c})",
                    "({a}) =~ ({b}) < ({c})",
                    "({a}) < ({b}) contains ({c})",
                    "({a}) >= ({b}) == ({c})",
                    "({a}) has ({b}) in (1, ({c}))",
                    "({a}) < ({b}) between (({c}) .. 2)",
                    "({a}) matches regex ({b}) <> ({c})",
                ])
            )
                .prop_map(|(a, b, c, t)| t
                    .replace("{a}", &a)
                    .replace("{b}", &b)
                    .replace("{c}", &c)),
            inner.clone().prop_map(|a| format!("-({a})")),
            inner.clone().prop_map(|a| format!("- {a}")),
            (name(), prop::collection::vec(inner.clone(), 0..3)).prop_map(|(f, args)| format!(
                "f_{}({})",
                f.len(),
                args.join(", ")
            )),
            (
                inner.clone(),
                prop::collection::vec(inner.clone(), 1..4),
                prop::sample::select(vec!["in", "!in", "in~", "!in~", "has_any", "has_all"])
            )
                .prop_map(|(a, l, op)| format!("({a}) {op} ({})", l.join(", "))),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("({a}) between (({b}) .. ({c}))")),
            (inner.clone(), name()).prop_map(|(a, n)| format!("({a}).{n}")),
            (inner.clone(), inner.clone()).prop_map(|(a, i)| format!("({a})[{i}]")),
            inner
                .clone()
                .prop_map(|a| format!("toscalar(T | where {a} | count)")),
            (inner.clone(), name()).prop_map(|(a, n)| format!("({a}) in (T | project {n})")),
            (name(), inner.clone()).prop_map(|(n, a)| format!("iff({a}, {n}, count())")),
        ]
    })
}

fn named() -> impl Strategy<Value = String> {
    prop_oneof![
        expr(),
        (name(), expr()).prop_map(|(n, e)| format!("{n} = {e}")),
        (name(), name(), expr()).prop_map(|(a, b, e)| format!("({a}, {b}) = {e}")),
    ]
}

fn operator() -> impl Strategy<Value = String> {
    prop_oneof![
        expr().prop_map(|e| format!("where {e}")),
        prop::collection::vec(named(), 1..3).prop_map(|v| format!("project {}", v.join(", "))),
        prop::collection::vec(named(), 1..3).prop_map(|v| format!("extend {}", v.join(", "))),
        (
            prop::collection::vec(named(), 0..3),
            prop::collection::vec(named(), 0..2)
        )
            .prop_map(|(a, b)| if b.is_empty() {
                format!("summarize count(), {}", a.join(", "))
                    .trim_end_matches(", ")
                    .to_string()
            } else {
                format!("summarize {} by {}", a.join(", "), b.join(", "))
            }),
        (
            expr(),
            prop::sample::select(vec!["", " asc", " desc nulls first", " nulls last"])
        )
            .prop_map(|(e, o)| format!("sort by {e}{o}")),
        (1u32..100, expr()).prop_map(|(n, e)| format!("top {n} by {e} desc")),
        (0u32..100).prop_map(|n| format!("take {n}")),
        Just("count".to_string()),
        Just("getschema".to_string()),
        prop::collection::vec(name(), 1..3).prop_map(|v| format!("distinct {}", v.join(", "))),
        (
            prop::sample::select(vec!["x", "Col", "count", "on", "_a"]),
            prop::collection::vec(name(), 1..3)
        )
            .prop_map(|(p, v)| format!("project-away {p}*, *{p}, {}", v.join(", "))),
        (name(), name()).prop_map(|(a, b)| format!("project-rename {a} = {b}")),
        (
            prop::sample::select(vec![
                "",
                "kind=inner ",
                "kind=leftouter hint.strategy=broadcast "
            ]),
            expr()
        )
            .prop_map(|(k, e)| format!("join {k}(T2 | where {e}) on x, $left.a == $right.b")),
        (name(), prop::sample::select(vec!["", " to typeof(long)"]))
            .prop_map(|(n, t)| format!("mv-expand {n}{t}")),
        (name(), name()).prop_map(|(a, b)| format!("parse {a} with * \"k=\" {b}:long \",\" *")),
        Just("make-series avg(x) default = 0 on ts from ago(1d) to now() step 1h by k".to_string()),
        Just("union (T3 | take 1), T4*".to_string()),
        Just("render timechart with (title='t', ycolumns=a, b)".to_string()),
        Just("as hint.materialized=true M".to_string()),
        Just("fork (take 1) named = (count)".to_string()),
        Just("partition by k (top 1 by x)".to_string()),
        Just("evaluate bag_unpack(d)".to_string()),
        Just("search \"x\"".to_string()),
        Just("scan declare (s:long = 0) with (step a: x > 1 => s = s + 1;)".to_string()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let source = prop_oneof![
        name(),
        Just("database('db').T".to_string()),
        Just("datatable(a:long, b:string)[1, 'x', 2, 'y']".to_string()),
        prop::collection::vec(named(), 1..3).prop_map(|v| format!("print {}", v.join(", "))),
        Just("range i from 1 to 10 step 1".to_string()),
        Just("union kind=outer T1, (T2 | take 1)".to_string()),
        Just("(T | take 1)".to_string()),
        Just("$table".to_string()),
    ];
    let lets = prop::collection::vec(
        prop_oneof![
            (name(), expr()).prop_map(|(n, e)| format!("let {n} = {e};")),
            (name(), expr()).prop_map(|(n, e)| format!(
                "let {n} = (a:long, b:string = \"d\") {{ T | where a > ({e}) }};"
            )),
            Just("set notruncation;".to_string()),
            Just("let m = materialize(T | take 1);".to_string()),
            Just("set query_force_row_level_security = true;".to_string()),
        ],
        0..3,
    );
    (lets, source, prop::collection::vec(operator(), 0..5)).prop_map(|(l, s, ops)| {
        let mut q = l.join("\n");
        if !q.is_empty() {
            q.push('\n');
        }
        q.push_str(&s);
        for op in ops {
            q.push_str(" | ");
            q.push_str(&op);
        }
        q
    })
}

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/parse");
    let mut out = Vec::new();
    for dir in ["ok", "err"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            for e in rd.flatten() {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    out.push(t);
                }
            }
        }
    }
    out.sort();
    if out.is_empty() {
        out.push("T | where x > 1 | summarize count() by y".to_string());
    }
    out
}

/// A corpus case with a few random edits (delete a range, insert a fragment, swap halves).
fn mutated() -> impl Strategy<Value = String> {
    let cases = corpus();
    (
        prop::sample::select(cases),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                0u8..4,
                prop::sample::select(VOCAB),
                0usize..6,
            ),
            1..4,
        ),
    )
        .prop_map(|(mut text, edits)| {
            for (idx, kind, frag, len) in edits {
                let chars: Vec<char> = text.chars().collect();
                let at = if chars.is_empty() {
                    0
                } else {
                    idx.index(chars.len())
                };
                let mut out: Vec<char> = chars.clone();
                match kind {
                    0 => {
                        let end = (at + len).min(out.len());
                        out.drain(at..end);
                    }
                    1 => {
                        let ins: Vec<char> = format!(" {frag} ").chars().collect();
                        out.splice(at..at, ins);
                    }
                    2 => {
                        let end = (at + len).min(out.len());
                        let dup: Vec<char> = out[at..end].to_vec();
                        out.splice(at..at, dup);
                    }
                    _ => {
                        let n = at.min(out.len());
                        out.rotate_left(n);
                    }
                }
                text = out.into_iter().collect();
            }
            text
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        check(&text)?;
    }

    #[test]
    fn random_kql_chars_never_panic(text in "[a-z_A-Z0-9 |().,;\\[\\]{}=<>!~+*/%:@'\"$\\-\n\\\\`h]{0,120}") {
        check(&text)?;
    }

    #[test]
    fn token_soup_never_panics(text in soup()) {
        check(&text)?;
    }

    #[test]
    fn structured_queries_round_trip(text in query()) {
        check(&text)?;
    }

    #[test]
    fn mutated_corpus_never_panics(text in mutated()) {
        check(&text)?;
    }
}

/// Generated queries are meant to be valid; make sure most of them are, so the round-trip
/// property is actually exercised.
#[test]
fn structured_generator_mostly_parses() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = query();
    let mut ok = 0;
    let total = 300;
    let mut failures = Vec::new();
    for _ in 0..total {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let q = tree.current();
        match parse(&q) {
            Ok(_) => ok += 1,
            Err(e) => failures.push(format!("{q}\n  {e}")),
        }
    }
    assert!(
        ok * 100 >= total * 90,
        "only {ok}/{total} generated queries parse; e.g.:\n{}",
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Writes generated and mutated queries (one JSON string per line) to `$KQL_DUMP`, for a
/// differential comparison with the official parser (`kql-oracle`). Run with `--ignored`.
#[test]
#[ignore]
fn dump_generated_queries() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let Ok(path) = std::env::var("KQL_DUMP") else {
        return;
    };
    let n: usize = std::env::var("KQL_DUMP_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut runner = TestRunner::deterministic();
    let mut out = String::new();
    let q = query();
    let m = mutated();
    let s = soup();
    for i in 0..n {
        let text = match i % 3 {
            0 => q.new_tree(&mut runner).map(|t| t.current()),
            1 => m.new_tree(&mut runner).map(|t| t.current()),
            _ => s.new_tree(&mut runner).map(|t| t.current()),
        };
        if let Ok(text) = text {
            out.push_str(&serde_json::to_string(&text).unwrap_or_default());
            out.push('\n');
        }
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("{e}"));
}

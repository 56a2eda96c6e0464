//! Parse latency for typical queries and commands, and throughput on a large script.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kustodian_parser::parse;

const QUERIES: &[(&str, &str)] = &[
    ("take", "StormEvents | take 10"),
    (
        "where_project",
        "StormEvents | where State == 'TEXAS' and DamageProperty > 1000 | project StartTime, EventType, DamageProperty",
    ),
    (
        "summarize_bin",
        "StormEvents | where StartTime > ago(7d) | summarize Events = count(), Damage = sum(DamageProperty) by State, bin(StartTime, 1h) | sort by Damage desc | take 20",
    ),
    (
        "join",
        "let Recent = StormEvents | where StartTime > ago(1d); Recent | join kind=leftouter hint.strategy=broadcast (Populations | project State, Population) on State | extend PerCapita = todouble(DamageProperty) / Population",
    ),
    (
        "rls_policy",
        "let IsAdmin = current_principal_is_member_of('aadgroup=admins@contoso.com'); Sales | where IsAdmin or Owner == current_principal_details()['UserPrincipalName'] | extend CreditCard = iff(IsAdmin, CreditCard, strcat('****', substring(CreditCard, 12)))",
    ),
    (
        "lambda",
        "let f = (T:(Amount:real, Region:string), threshold:real = 10.0) { T | where Amount > threshold | summarize total = sum(Amount) by Region }; f(Sales, 100.0) | top 5 by total desc",
    ),
    (
        "dynamic_mv_expand",
        "Logs | extend Props = parse_json(Payload) | mv-expand Tag = Props.tags to typeof(string) | where Tag has_any ('error', 'fatal') | summarize dcount(SessionId) by tostring(Props['service'])",
    ),
    (
        "make_series",
        "Metrics | make-series avg(Value) default = 0 on Timestamp from datetime(2024-01-01) to datetime(2024-02-01) step 1h by Host | extend anomalies = series_decompose_anomalies(avg_Value)",
    ),
    (
        "command_rls",
        ".alter table Sales policy row_level_security enable \"Sales | where Owner == current_principal()\"",
    ),
    (
        "command_principals",
        ".add database Sales viewers ('aaduser=alice@contoso.com', 'aadgroup=analysts@contoso.com') skip-results 'analysts'",
    ),
];

fn large_script(statements: usize) -> String {
    let mut s = String::new();
    for i in 0..statements {
        s.push_str(&format!(
            "let v{i} = Sales | where Region == 'r{i}' and Amount > {i} | summarize total = sum(Amount), n = count() by Owner, bin(Timestamp, 1d);\n"
        ));
    }
    s.push_str("v0 | union v1, v2 | take 10");
    s
}

fn bench_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, text) in QUERIES {
        assert!(parse(text).is_ok(), "{name} must parse");
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), text, |b, t| {
            b.iter(|| parse(black_box(t)))
        });
    }
    g.finish();
}

fn bench_large_script(c: &mut Criterion) {
    let script = large_script(1000);
    assert!(parse(&script).is_ok(), "the large script must parse");
    let mut g = c.benchmark_group("parse_script");
    g.throughput(Throughput::Bytes(script.len() as u64));
    g.sample_size(20);
    g.bench_function("1000_statements", |b| b.iter(|| parse(black_box(&script))));
    g.finish();
}

fn bench_print(c: &mut Criterion) {
    let Ok(ast) = parse(QUERIES[4].1) else { return };
    c.bench_function("print/rls_policy", |b| {
        b.iter(|| black_box(&ast).to_string())
    });
}

criterion_group!(benches, bench_latency, bench_large_script, bench_print);
criterion_main!(benches);

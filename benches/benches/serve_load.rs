//! Load on a Kusto REST endpoint (`kustodian serve`, or any other server of Kusto's v2 query
//! API, such as `duckdb-kql serve`): `LOAD_CLIENTS` concurrent clients (default 32) send
//! `LOAD_REQUESTS` queries in all (default 2,000) to `{LOAD_URL}/v2/rest/query`, cycling through
//! `LOAD_QUERIES` (queries separated by `;;`) on database `LOAD_DB`; client `i` uses the `i mod n`th
//! of `LOAD_TOKENS` (bearer tokens separated by commas; none: no Authorization header). Prints
//! throughput and latency percentiles; every answer must be 200 with a `PrimaryResult`, and the
//! run fails otherwise. Not run by `cargo bench` without `LOAD_URL`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    let Ok(url) = std::env::var("LOAD_URL") else {
        eprintln!("serve_load: set LOAD_URL (and LOAD_DB, LOAD_QUERIES, LOAD_TOKENS) to run");
        return;
    };
    let db = env("LOAD_DB", "ContosoSales");
    let queries: Vec<String> = env("LOAD_QUERIES", "Sales | count").split(";;").map(|q| q.trim().to_string()).filter(|q| !q.is_empty()).collect();
    let tokens: Vec<String> = env("LOAD_TOKENS", "").split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
    let clients: usize = env("LOAD_CLIENTS", "32").parse().expect("LOAD_CLIENTS");
    let requests: usize = env("LOAD_REQUESTS", "2000").parse().expect("LOAD_REQUESTS");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (mut latencies, wall) = rt.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
        let queries = Arc::new(queries);
        let endpoint = Arc::new(format!("{url}/v2/rest/query"));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (http, queries, endpoint, db) = (http.clone(), queries.clone(), endpoint.clone(), db.clone());
            let token = (!tokens.is_empty()).then(|| tokens[c % tokens.len()].clone());
            let mine = requests / clients + usize::from(c < requests % clients);
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::with_capacity(mine);
                for i in 0..mine {
                    let q = &queries[(c + i) % queries.len()];
                    let body = serde_json::json!({ "db": db, "csl": q }).to_string();
                    let mut req = http.post(endpoint.as_str()).header("content-type", "application/json").body(body);
                    if let Some(t) = &token {
                        req = req.bearer_auth(t);
                    }
                    let t = Instant::now();
                    let resp = req.send().await.unwrap();
                    let status = resp.status();
                    let text = resp.text().await.unwrap();
                    times.push(t.elapsed());
                    assert!(status.is_success() && text.contains("PrimaryResult"), "client {c}: {q}: {status}: {}", &text[..text.len().min(400)]);
                }
                times
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (all, start.elapsed())
    });
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{} requests, {clients} clients, {:.2} s: {:.0} req/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        wall.as_secs_f64(),
        latencies.len() as f64 / wall.as_secs_f64(),
        ms(pct(0.5)),
        ms(pct(0.9)),
        ms(pct(0.99))
    );
}

//! Each row-level security pattern against the same filter written by hand, interleaved:
//! policy run, handwritten run, policy run... (`N` pairs, default 101, at `ROWS` rows, default
//! 1M), medians and their ratio. On a shared 2-core machine criterion's separate groups drift
//! by more than the 5 % being measured; alternating runs sees both under the same load.
//! Times cover planning and execution, as `kustodian run --timing` does.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
use std::time::Instant;
use kustodian_benches::{Env, QUERIES, patterns};
fn main() {
    let rows: u64 = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(101);
    let env = Env::new(rows);
    for (name, rest) in QUERIES.iter() {
        let query = format!("T | {rest}");
        for p in patterns() {
            let hand = format!("{} | {rest}", p.handwritten);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..n {
                env.set_policy(p.policy);
                let t = Instant::now(); env.principal(&query); a.push(t.elapsed().as_secs_f64() * 1e3);
                env.clear_policy();
                let t = Instant::now(); env.principal(&hand); b.push(t.elapsed().as_secs_f64() * 1e3);
            }
            a.sort_by(|x, y| x.partial_cmp(y).unwrap()); b.sort_by(|x, y| x.partial_cmp(y).unwrap());
            let (ma, mb) = (a[n / 2], b[n / 2]);
            println!("{name} {:<18} policy {ma:.2} ms  handwritten {mb:.2} ms  ratio {:.3}", p.name, ma / mb);
        }
    }
}

//! Parses a generated 1000-statement script repeatedly, reporting time per parse and the share
//! spent lexing (for profiling: `perf record target/release/examples/parse_loop 30`).
fn main() {
    let mut s = String::new();
    for i in 0..1000 {
        s.push_str(&format!(
            "let v{i} = Sales | where Region == 'r{i}' and Amount > {i} | summarize total = sum(Amount), n = count() by Owner, bin(Timestamp, 1d);\n"
        ));
    }
    s.push_str("v0 | take 10");
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20)
        .max(1);
    let start = std::time::Instant::now();
    let ok = (0..n)
        .filter(|_| kustodian_parser::parse(&s).is_ok())
        .count();
    let parse = start.elapsed() / n;
    let start = std::time::Instant::now();
    for _ in 0..n {
        let _ = kustodian_parser::lexer::tokenize(&s);
    }
    let lex = start.elapsed() / n;
    println!(
        "{ok}/{n} parses of {} bytes: {parse:?} per parse, of which lexing {lex:?}",
        s.len()
    );
}

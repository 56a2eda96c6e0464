//! Reads one JSON-encoded KQL text per line and prints one JSON object per line:
//! `{"ok":true,"printed":"<canonical KQL>"}` or `{"ok":false,"error":"..."}`; used to compare
//! verdicts (and the validity of printed text) with the official parser.
use std::io::BufRead;

fn main() {
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let Ok(text) = serde_json::from_str::<String>(&line) else {
            println!("{{\"ok\":false,\"error\":\"bad input line\"}}");
            continue;
        };
        let out = match kustodian_parser::parse(&text) {
            Ok(ast) => serde_json::json!({"ok": true, "printed": ast.to_string()}),
            Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
        };
        println!("{out}");
    }
}

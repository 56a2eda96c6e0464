//! Parses each line of stdin (or each argument) and prints the canonical text or the error frame.
use std::io::BufRead;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inputs: Vec<String> = if args.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .map(|l| l.replace("\\n", "\n"))
            .collect()
    } else {
        args
    };
    for text in inputs {
        match kustodian_parser::parse(&text) {
            Ok(ast) => {
                let printed = ast.to_string();
                let again = kustodian_parser::parse(&printed);
                let same = matches!(&again, Ok(b) if *b == ast);
                println!(
                    "{} {}",
                    if same { "OK  " } else { "RTFAIL" },
                    printed.replace('\n', "\\n")
                );
                if !same {
                    match again {
                        Ok(b) => println!(
                            "   reparsed: {}\n   first: {:?}\n   second: {:?}",
                            b, ast, b
                        ),
                        Err(e) => println!("   reparse error: {e}"),
                    }
                }
            }
            Err(e) => println!("ERR {}\n{}", text.replace('\n', "\\n"), e.frame(&text)),
        }
    }
}

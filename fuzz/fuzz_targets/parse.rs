//! libFuzzer target: `parse` never panics, and every accepted request round-trips through
//! `Display` (`parse(print(ast)) == ast`). Seed it with `../corpus/parse/ok`:
//! `cargo +nightly fuzz run parse ../corpus/parse/ok`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ast) = kustodian_parser::parse(text) {
        let printed = ast.to_string();
        match kustodian_parser::parse(&printed) {
            Ok(again) => assert!(
                again == ast,
                "round trip changed the AST: {text:?} -> {printed:?}"
            ),
            Err(e) => panic!("printed text does not parse: {text:?} -> {printed:?}: {e}"),
        }
    }
});

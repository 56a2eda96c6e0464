//! The `parse` subcommand and the syntax check `run`, `shell` and `explain` make before a
//! request reaches the engine, both through `kustodian_parser::parse`.
//!
//! Requests are parsed in their place in the script: the text before a request is blanked
//! (every byte but `\n` becomes a space), so the parser's lines, columns and spans count
//! from the start of the script while it still sees only the one request.

use kustodian_parser::{ParseError, ParseErrorKind};
use kustodian_runtime::ErrorCode;

use super::report::{Failure, SCRIPT};
use kustodian_runtime::script::ScriptRequest;

/// The error class of a parse error: valid KQL that Kustodian does not implement (a Kusto
/// management command, a graph operator) is no syntax error, and is reported as the engine
/// reports features it lacks (`PlanError::Unsupported`).
fn error_code(kind: ParseErrorKind) -> ErrorCode {
    match kind {
        ParseErrorKind::Unsupported => ErrorCode::SemanticError,
        ParseErrorKind::InvalidToken
        | ParseErrorKind::UnexpectedToken
        | ParseErrorKind::UnexpectedEof
        | ParseErrorKind::InvalidLiteral
        | ParseErrorKind::TooComplex
        | ParseErrorKind::UnknownCommand
        | ParseErrorKind::Invalid => ErrorCode::SyntaxError,
        ParseErrorKind::Internal => ErrorCode::Internal,
    }
}

/// The request's text at its place in the script, everything before it blanked.
fn positioned_source(script: &str, request: &ScriptRequest) -> String {
    let prefix = script.get(..request.offset).unwrap_or_default();
    let mut source: String = prefix
        .bytes()
        .map(|b| if b == b'\n' { '\n' } else { ' ' })
        .collect();
    source.push_str(&request.text);
    source
}

mod with_parser {
    use std::io::{self, Write};

    use super::*;
    use crate::cli::output_failure;
    use kustodian_runtime::script::split_script;

    /// The failure for a request the parser rejected, its report rendered by the parser with
    /// the error's code in the header.
    fn syntax_failure(err: &ParseError, source: &str) -> Failure {
        let code = error_code(err.kind);
        Failure {
            code,
            message: err.message.clone(),
            position: Some((err.line, err.column)),
            report: Some(err.render(Some(code.as_str()), SCRIPT, source).text),
        }
    }

    pub fn check_syntax(script: &str, request: &ScriptRequest) -> Result<(), Failure> {
        let source = positioned_source(script, request);
        kustodian_parser::parse(&source)
            .map(|_| ())
            .map_err(|e| syntax_failure(&e, &source))
    }

    /// Prints each request as canonical KQL (separated by blank lines) or as pretty JSON;
    /// syntax errors go to stderr. Returns whether every request parsed.
    pub fn parse(script: &str, json: bool) -> Result<bool, Failure> {
        let mut all_ok = true;
        let mut stdout = io::stdout().lock();
        for (i, request) in split_script(script).iter().enumerate() {
            let source = positioned_source(script, request);
            match kustodian_parser::parse(&source) {
                Ok(ast) => {
                    let text = if json {
                        serde_json::to_string_pretty(&ast).map_err(|e| {
                            Failure::new(ErrorCode::Internal, format!("cannot encode the AST: {e}"))
                        })?
                    } else {
                        ast.to_string()
                    };
                    let separator = if i > 0 && !json { "\n" } else { "" };
                    writeln!(stdout, "{separator}{}", text.trim_end()).map_err(output_failure)?;
                }
                Err(e) => {
                    all_ok = false;
                    stdout.flush().map_err(output_failure)?;
                    eprint!("{}", syntax_failure(&e, &source).to_text());
                }
            }
        }
        Ok(all_ok)
    }
}

pub use with_parser::{check_syntax, parse};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use kustodian_runtime::script::split_script;

    #[test]
    fn positioned_source_keeps_offsets_and_lines() {
        let script = "print 'é'\n\r\n// c\nT | count";
        let requests = split_script(script);
        let source = positioned_source(script, &requests[1]);
        assert_eq!(source.len(), script.len());
        assert_eq!(source.lines().count(), script.lines().count());
        assert_eq!(&source[requests[1].offset..], "// c\nT | count");
        assert!(source[..requests[1].offset].trim().is_empty());
    }
}

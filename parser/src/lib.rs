//! KQL parser: logos lexer, lalrpop grammar, AST with spans, Display back to KQL.
//!
//! ```
//! use kustodian_parser::{parse, ast::Request};
//! let req = parse("T | where x > 1 | take 10").unwrap();
//! assert!(matches!(req, Request::Query(_)));
//! assert_eq!(req.to_string(), "T | where x > 1 | take 10");
//! ```
//!
//! Stages: [`lexer::tokenize`] (logos + context passes) → the generated LR(1) parser
//! (`grammar.lalrpop`) → [`ast::Request`]. All errors are [`ParseError`]s with a span, line and
//! column; [`ParseError::frame`] renders a code frame through [`frame`], the renderer of every
//! error with a position. [`value_text`] writes Kusto's text of timespan and datetime values.

pub mod ast;
mod commands;
pub mod error;
pub mod frame;
pub mod lexer;
mod support;
#[cfg(test)]
mod tests;
pub mod value_text;

#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#[allow(
    unused_parens,
    unused_imports,
    dead_code,
    unreachable_patterns,
    unused_variables
)]
mod grammar {
    include!(concat!(env!("OUT_DIR"), "/grammar.rs"));
}

pub use ast::Request;
pub use error::{ParseError, ParseErrorKind, Result};

use ast::Span;
use lexer::Tok;

/// Parses one request (a query or a management command).
pub fn parse(text: &str) -> Result<Request> {
    let tokens = lexer::tokenize(text)?;
    if tokens.is_empty() {
        return Err(ParseError::new(
            ParseErrorKind::UnexpectedEof,
            "empty request: expected a query or a management command",
            Span::new(0, text.len()),
            text,
        ));
    }
    let is_command = matches!(tokens.first(), Some((_, Tok::Dot, _)));
    if !is_command {
        check_supported_operators(text, &tokens)?;
    }
    parse_tokens(text, tokens).map_err(|e| {
        if is_command {
            command_error(text, e)
        } else {
            e
        }
    })
}

/// The grammar alone over the tokens of `text`.
fn parse_tokens(text: &str, tokens: Vec<lexer::Spanned>) -> Result<Request> {
    let parser = grammar::RequestParser::new();
    // Large nonterminals are boxed inside the grammar to keep the parser's stack symbols small.
    parser
        .parse(text, tokens.into_iter().map(Ok::<_, ParseError>))
        .map(|r| *r)
        .map_err(|e| map_error(text, e))
}

/// Gives query operators Kustodian does not support a clear error instead of a syntax error.
fn check_supported_operators(text: &str, tokens: &[lexer::Spanned]) -> Result<()> {
    for (s, t, e) in tokens {
        if let Tok::Unsupported(name) = t {
            return Err(ParseError::new(
                ParseErrorKind::Unsupported,
                format!("the '{}' operator is not supported", error::clip(name)),
                Span::new(*s, *e),
                text,
            ));
        }
    }
    Ok(())
}

/// The error for a management command the grammar rejected with `error`: a valid Kusto command
/// Kustodian does not implement is named as such, a verb no one knows as an unknown command;
/// anything else keeps the grammar's error.
fn command_error(text: &str, error: ParseError) -> ParseError {
    // Lexed again: the grammar consumed the tokens, and this runs only when it failed.
    let Ok(tokens) = lexer::tokenize(text) else {
        return error;
    };
    let accepts = |prefix: &str| {
        lexer::tokenize(prefix).is_ok_and(|t| !t.is_empty() && parse_tokens(prefix, t).is_ok())
    };
    commands::unsupported(text, &tokens, &error, accepts)
        .or_else(|| unknown_command(text, &tokens))
        .unwrap_or(error)
}

/// Verbs of the commands Kustodian's grammar knows.
const COMMAND_VERBS: &[&str] = &[
    "create",
    "create-merge",
    "create-or-alter",
    "alter",
    "drop",
    "show",
    "delete",
    "add",
    "set",
    "append",
    "set-or-append",
    "set-or-replace",
    "ingest",
    "clear",
    "enable",
    "disable",
];

/// An error naming the command when its verb is none of [`COMMAND_VERBS`] (nor, since
/// [`commands::unsupported`] found nothing, of Kusto's commands).
fn unknown_command(text: &str, tokens: &[lexer::Spanned]) -> Option<ParseError> {
    let words: Vec<String> = tokens
        .iter()
        .skip(1)
        .take(3)
        .map_while(|(_, t, _)| match t {
            Tok::Kw(k) => Some(k.as_str().to_string()),
            Tok::Ident(w) => Some(error::clip(w).into_owned()),
            _ => None,
        })
        .collect();
    if words
        .first()
        .is_some_and(|verb| COMMAND_VERBS.contains(&verb.as_str()))
    {
        return None;
    }
    let end = tokens
        .get(words.len().min(2))
        .map(|(_, _, e)| *e)
        .unwrap_or(text.len());
    let start = tokens.first().map(|(s, _, _)| *s).unwrap_or(0);
    let name = if words.is_empty() {
        String::new()
    } else {
        format!(" '.{}'", words.join(" "))
    };
    Some(ParseError::new(
        ParseErrorKind::UnknownCommand,
        format!("unknown or unsupported management command{name}"),
        Span::new(start, end),
        text,
    ))
}

type LpError = lalrpop_util::ParseError<usize, Tok, ParseError>;

/// The one place where lalrpop's errors become [`ParseError`]s.
fn map_error(text: &str, e: LpError) -> ParseError {
    match e {
        LpError::InvalidToken { location } => ParseError::new(
            ParseErrorKind::InvalidToken,
            "invalid token",
            Span::new(location, location + 1),
            text,
        ),
        LpError::UnrecognizedEof { location, expected } => {
            let expected = humanize_expected(&expected);
            let mut err = ParseError::new(
                ParseErrorKind::UnexpectedEof,
                "unexpected end of text",
                Span::new(location, location),
                text,
            );
            if is_command_text(text) {
                err.message = format!("incomplete management command{}", command_name(text));
            }
            err.with_expected(expected)
        }
        LpError::UnrecognizedToken {
            token: (s, tok, e),
            expected,
        } => {
            let expected = humanize_expected(&expected);
            let mut message = format!("unexpected {}", lexer::describe(&tok));
            if matches!(tok, Tok::Kw(lexer::Kw::Materialize)) {
                // Kusto's own parser accepts `materialize(...)` nowhere else either; say where it goes.
                message.push_str(
                    ": materialize(...) is only valid as the whole value of a let statement \
                     (let x = materialize(...); x | ...)",
                );
            }
            if is_command_text(text) {
                message = format!("{message} in management command{}", command_name(text));
            }
            ParseError::new(
                ParseErrorKind::UnexpectedToken,
                message,
                Span::new(s, e),
                text,
            )
            .with_expected(expected)
        }
        LpError::ExtraToken { token: (s, tok, e) } => ParseError::new(
            ParseErrorKind::UnexpectedToken,
            format!(
                "unexpected {} after the end of the request",
                lexer::describe(&tok)
            ),
            Span::new(s, e),
            text,
        ),
        LpError::User { error } => error,
    }
}

fn is_command_text(text: &str) -> bool {
    text.trim_start().starts_with('.')
}

/// ` '.show table'`-style name of the command at the start of `text`.
fn command_name(text: &str) -> String {
    let words: Vec<std::borrow::Cow<'_, str>> = text
        .trim_start()
        .trim_start_matches('.')
        .split_whitespace()
        .take(2)
        .map(|w| w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_')))
        .filter(|w| !w.is_empty())
        .map(error::clip)
        .collect();
    if words.is_empty() {
        String::new()
    } else {
        format!(" '.{}'", words.join(" "))
    }
}

/// Turns lalrpop's terminal names (`"\"ident\""`, `"\"|\""`) into readable ones.
fn humanize_expected(expected: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Where a column is named (`print has = 1`, `print print = 1`), `print` and word operators
    // are names: the only place a string operator can start something.
    let names_expected = expected.iter().any(|e| e.trim_matches('"') == "ident") && expected.iter().any(|e| e.trim_matches('"') == "strop");
    for e in expected {
        let raw = e.trim_matches('"');
        let human = match raw {
            "strop" | "print" if names_expected => "identifier".to_string(),
            // Soft keywords are names as far as the user is concerned.
            kw if lexer::is_soft_keyword_text(kw) => "identifier".to_string(),
            "ident" => "identifier".to_string(),
            "param" => "operator parameter".to_string(),
            "string" => "string literal".to_string(),
            "long" | "real" => "number".to_string(),
            "timespan" => "timespan literal".to_string(),
            "typed" => "literal".to_string(),
            "rawtext" => "inline data".to_string(),
            "strop" => "string operator".to_string(),
            other => format!("'{other}'"),
        };
        if !out.contains(&human) {
            out.push(human);
        }
    }
    out
}

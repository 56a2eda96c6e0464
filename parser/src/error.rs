//! `ParseError`: what went wrong, where (span, line, column), and which tokens would fit.

use serde::Serialize;

use crate::ast::Span;

pub type Result<T, E = ParseError> = std::result::Result<T, E>;

/// A syntax error. `Display` gives a one-line message with the position; [`ParseError::frame`]
/// renders a code frame with a caret under the offending text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub message: String,
    /// Byte offsets of the offending text.
    pub span: Span,
    /// 1-based line of `span.start`.
    pub line: usize,
    /// 1-based column (in characters) of `span.start`.
    pub column: usize,
    /// Human names of the tokens that would have been accepted (`identifier`, `'|'`), if known.
    pub expected: Vec<String>,
}

/// The broad class of a syntax error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ParseErrorKind {
    /// A character sequence that is no KQL token (unterminated string, stray `#`, ...).
    InvalidToken,
    /// A token where the grammar does not allow it.
    UnexpectedToken,
    /// The text ended too early.
    UnexpectedEof,
    /// An invalid literal (out-of-range number, malformed timespan or dynamic value).
    InvalidLiteral,
    /// Brackets nested too deeply or expressions too long to process safely.
    TooComplex,
    /// Syntax that is KQL but not supported by Kustodian (graph operators, `macro-expand`, ...).
    Unsupported,
    /// A management command that Kustodian does not know.
    UnknownCommand,
    /// Grammar-level rule violations detected after matching (e.g. `1 = x` as a column name).
    Invalid,
    /// An internal invariant failed (a bug in the parser, never the user's fault).
    Internal,
}

impl ParseError {
    /// Builds an error at `span` of `source`, computing line and column.
    pub fn new(kind: ParseErrorKind, message: impl Into<String>, span: Span, source: &str) -> Self {
        let (line, column) = line_col(source, span.start);
        ParseError {
            kind,
            message: message.into(),
            span,
            line,
            column,
            expected: Vec::new(),
        }
    }

    pub fn with_expected(mut self, expected: Vec<String>) -> Self {
        self.expected = expected;
        self
    }

    /// Renders a code frame:
    ///
    /// ```text
    /// error: unexpected token 'by'
    ///  --> line 1, column 13
    ///   |
    /// 1 | T | where x by
    ///   |             ^^ expected one of: identifier, '('
    /// ```
    pub fn frame(&self, source: &str) -> String {
        let line_text = source
            .lines()
            .nth(self.line.saturating_sub(1))
            .unwrap_or("");
        let line_no = self.line.to_string();
        let pad = " ".repeat(line_no.len());
        // Caret under the span, clipped to the line.
        let line_start = line_start_offset(source, self.span.start);
        let before = source
            .get(line_start..self.span.start.min(source.len()))
            .unwrap_or("");
        let col_chars = before.chars().count();
        let span_text = source
            .get(self.span.start.min(source.len())..self.span.end.min(source.len()))
            .unwrap_or("");
        let span_chars = span_text
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .count()
            .max(1);
        let mut out = String::new();
        out.push_str(&format!("error: {}\n", self.message));
        out.push_str(&format!(
            "{pad}--> line {}, column {}\n",
            self.line, self.column
        ));
        out.push_str(&format!("{pad} |\n"));
        out.push_str(&format!("{line_no} | {line_text}\n"));
        out.push_str(&format!(
            "{pad} | {}{}",
            " ".repeat(col_chars),
            "^".repeat(span_chars)
        ));
        if !self.expected.is_empty() {
            out.push_str(" expected one of: ");
            out.push_str(&self.expected.join(", "));
        }
        out.push('\n');
        out
    }
}

fn line_start_offset(source: &str, offset: usize) -> usize {
    let offset = clamp_to_char_boundary(source, offset);
    source[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0)
}

fn clamp_to_char_boundary(source: &str, offset: usize) -> usize {
    let mut o = offset.min(source.len());
    while o > 0 && !source.is_char_boundary(o) {
        o -= 1;
    }
    o
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = clamp_to_char_boundary(source, offset);
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let start = line_start_offset(source, offset);
    let column = source[start..offset].chars().count() + 1;
    (line, column)
}

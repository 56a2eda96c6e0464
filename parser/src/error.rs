//! `ParseError`: what went wrong, where (span, line, column), and which tokens would fit.

use serde::Serialize;

use crate::ast::Span;
use crate::frame::{CodeFrame, Report, line_col};

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
    /// Valid KQL that Kustodian does not support: query operators (graph operators,
    /// `macro-expand`, ...) and Kusto's management commands it does not implement
    /// (`.show extents`, `.clear table T data`, ...). Not a syntax error: the text is right.
    Unsupported,
    /// A management command whose verb neither Kustodian nor Kusto knows.
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

    /// Renders the error with a code frame, named `request` in its header:
    ///
    /// ```text
    /// error: unexpected 'by'
    ///   --> request:1:13
    ///   |
    /// 1 | T | where x by
    ///   |             ^^ expected one of: '|', ';', 'or'
    /// ```
    ///
    /// A long line is cut to a window around the caret (see [`crate::frame`]).
    pub fn frame(&self, source: &str) -> String {
        self.render(None, "request", source).text
    }

    /// Renders the error with the one code-frame renderer ([`Report::render`]): `code` in the
    /// header (`error[SyntaxError]: …`), `origin` naming `source`, the text the error's span
    /// counts in; the tokens that would fit follow the carets.
    pub fn render(&self, code: Option<&str>, origin: &str, source: &str) -> CodeFrame {
        let label = if self.expected.is_empty() {
            String::new()
        } else {
            format!("expected one of: {}", self.expected.join(", "))
        };
        Report {
            code,
            message: &self.message,
            span: self.span,
            label: &label,
        }
        .render(origin, source)
    }
}

/// Most characters of source text (a name, a literal) an error message quotes.
pub const QUOTE_WIDTH: usize = 40;

/// `text` for quoting in a message: at most [`QUOTE_WIDTH`] characters, its end replaced by `…`
/// when longer (a name or literal may be megabytes long).
pub fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(QUOTE_WIDTH) {
        Some((cut, _)) => {
            let head = text[..cut]
                .char_indices()
                .nth(QUOTE_WIDTH - 1)
                .map_or(cut, |(i, _)| i);
            format!("{}…", &text[..head]).into()
        }
        None => text.into(),
    }
}

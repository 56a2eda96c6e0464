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

    /// Renders a code frame:
    ///
    /// ```text
    /// error: unexpected token 'by'
    ///  --> line 1, column 13
    ///   |
    /// 1 | T | where x by
    ///   |             ^^ expected one of: identifier, '('
    /// ```
    ///
    /// A long line is cut to a window around the caret (see [`code_frame`]).
    pub fn frame(&self, source: &str) -> String {
        format!("error: {}\n{}", self.message, self.snippet(source))
    }

    /// The frame without its `error:` line, for callers that print the message themselves.
    pub fn snippet(&self, source: &str) -> String {
        let mut frame = code_frame(source, self.span.start, self.span.end);
        if !self.expected.is_empty() {
            // The note goes on the caret line, before its final line break.
            frame.text.pop();
            frame.text.push_str(" expected one of: ");
            frame.text.push_str(&self.expected.join(", "));
            frame.text.push('\n');
        }
        frame.text
    }
}

/// Most characters of the offending line a code frame shows: a request may be one line of
/// megabytes, and its frame must stay readable (and small) all the same.
pub const FRAME_WIDTH: usize = 120;

/// Characters of the line kept before the caret when the line is cut.
const FRAME_CONTEXT_BEFORE: usize = 40;

/// Most characters of source text (a name, a literal) an error message quotes.
pub const QUOTE_WIDTH: usize = 40;

/// A rendered code frame and the position it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFrame {
    /// 1-based line of the start of the marked text.
    pub line: usize,
    /// 1-based column (in characters) of the start of the marked text.
    pub column: usize,
    /// The frame, ending with a line break:
    ///
    /// ```text
    ///  --> line 3, column 11
    ///   |
    /// 3 | T | where Foo > 1
    ///   |           ^^^
    /// ```
    pub text: String,
}

/// Renders the line holding byte `start` of `source` with carets under `start..end` (clipped to
/// that line, at least one). A line longer than [`FRAME_WIDTH`] characters is cut to a window
/// of that many around the caret, with `…` where text was left out; tabs before the caret are
/// kept in its padding so that it lines up under tabbed text.
pub fn code_frame(source: &str, start: usize, end: usize) -> CodeFrame {
    let start = clamp_to_char_boundary(source, start);
    let end = clamp_to_char_boundary(source, end.max(start));
    let line_start = line_start_offset(source, start);
    let line_end = source[start..]
        .find('\n')
        .map_or(source.len(), |i| start + i);
    let line_no = source[..start].matches('\n').count() + 1;
    let line_text = source[line_start..line_end].trim_end_matches('\r');
    // 0-based character index of the caret in the line.
    let caret = source[line_start..start].chars().count();
    let marked = source[start..end.min(line_end)].chars().count().max(1);
    let line_chars = line_text.chars().count();
    // The window [from, to) of the line's characters that is shown.
    let (from, to) = if line_chars <= FRAME_WIDTH {
        (0, line_chars)
    } else {
        let to = (caret.saturating_sub(FRAME_CONTEXT_BEFORE) + FRAME_WIDTH).min(line_chars);
        (to.saturating_sub(FRAME_WIDTH), to)
    };
    let marked = if caret >= to {
        1
    } else {
        marked.min(to - caret)
    };
    let mut shown = String::new();
    let mut padding = String::new();
    if from > 0 {
        shown.push('…');
        padding.push(' ');
    }
    for (i, c) in line_text.chars().enumerate().skip(from).take(to - from) {
        shown.push(c);
        if i < caret {
            padding.push(if c == '\t' { '\t' } else { ' ' });
        }
    }
    if to < line_chars {
        shown.push('…');
    }
    let gutter = " ".repeat(line_no.to_string().len());
    let text = format!(
        "{gutter}--> line {line_no}, column {col}\n{gutter} |\n{line_no} | {shown}\n{gutter} | {padding}{carets}\n",
        col = caret + 1,
        carets = "^".repeat(marked)
    );
    CodeFrame {
        line: line_no,
        column: caret + 1,
        text,
    }
}

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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn frame_points_at_the_span() {
        let frame = code_frame("print 1\nT | where Foo > 1\n", 18, 21);
        assert_eq!((frame.line, frame.column), (2, 11));
        assert_eq!(
            frame.text,
            " --> line 2, column 11\n  |\n2 | T | where Foo > 1\n  |           ^^^\n"
        );
    }

    #[test]
    fn frame_at_end_of_text_and_multiline_span() {
        let frame = code_frame("T |", 3, 3);
        assert_eq!((frame.line, frame.column), (1, 4));
        assert!(
            frame.text.ends_with("1 | T |\n  |    ^\n"),
            "{}",
            frame.text
        );
        let frame = code_frame("T\n| where a\n  and b", 4, 18);
        assert!(
            frame.text.ends_with("2 | | where a\n  |   ^^^^^^^\n"),
            "{}",
            frame.text
        );
    }

    #[test]
    fn columns_count_characters_and_tabs_are_kept() {
        let frame = code_frame("\tprint 'é', x", 13, 14);
        assert_eq!(frame.column, 13);
        assert!(
            frame.text.ends_with("| \t           ^\n"),
            "{:?}",
            frame.text
        );
    }

    #[test]
    fn long_lines_are_cut_to_a_window_around_the_caret() {
        let line = format!("{}X{}", "a".repeat(500), "b".repeat(500));
        let frame = code_frame(&line, 500, 501);
        assert_eq!(frame.column, 501);
        let shown = format!("1 | …{}X{}…\n", "a".repeat(40), "b".repeat(79));
        let carets = format!("  | {}^\n", " ".repeat(41));
        assert!(
            frame.text.ends_with(&format!("{shown}{carets}")),
            "{}",
            frame.text
        );
        // Near the start: no `…` before; carets of a long span stop at the window's end.
        let frame = code_frame(&line, 2, 1000);
        let shown = format!("1 | {}…\n", "a".repeat(120));
        let carets = format!("  |   {}\n", "^".repeat(118));
        assert!(
            frame.text.ends_with(&format!("{shown}{carets}")),
            "{}",
            frame.text
        );
        // At the very end: the last 120 characters, the caret after them.
        let frame = code_frame(&line, 1001, 1001);
        let shown = format!("1 | …{}\n", "b".repeat(120));
        let carets = format!("  | {}^\n", " ".repeat(121));
        assert!(
            frame.text.ends_with(&format!("{shown}{carets}")),
            "{}",
            frame.text
        );
        // A line of exactly the width is shown whole.
        let line = "c".repeat(FRAME_WIDTH);
        assert!(
            code_frame(&line, 119, 120)
                .text
                .contains(&format!("1 | {line}\n"))
        );
    }
}

//! Code frames: the one renderer of every error that points into a request's text (syntax
//! errors, the planner's semantic errors, the CLI's reports, later a server's), and the
//! line/column arithmetic they share.
//!
//! The layout is `codespan-reporting`'s, in plain ASCII without colour, so that the text is the
//! same on a terminal, in a snapshot or in a response body:
//!
//! ```text
//! error[SyntaxError]: unexpected 'by'
//!   --> request:1:13
//!   |
//! 1 | T | where x by
//!   |             ^^ expected one of: '|', ';', 'or'
//! ```
//!
//! A request may be one line of megabytes (policies and generated queries often are), and its
//! frame must stay small and readable all the same; `codespan-reporting` shows whole lines, so
//! the lines are cut here, before it sees them: it is handed an excerpt of at most
//! [`FRAME_WIDTH`] characters of each line it shows, `…` where text was left out, and told the
//! true line and column of every position so that the header's numbers stay those of the text.

use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::{Error as FilesError, Files};
use codespan_reporting::term::{self, Chars, Config};

use crate::ast::Span;

/// Most characters of a line a code frame shows.
pub const FRAME_WIDTH: usize = 120;

/// Characters of the line kept before the caret when a line is cut.
const FRAME_CONTEXT_BEFORE: usize = 40;

/// Marks text left out of a cut line.
const ELLIPSIS: char = '…';

/// An error to render: what it says, and the span of the text it points at.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    /// A class shown in the header, `error[SyntaxError]: …` (none: `error: …`).
    pub code: Option<&'a str>,
    /// The message of the header line.
    pub message: &'a str,
    /// Byte offsets of the marked text in the source (clipped to it and to char boundaries).
    pub span: Span,
    /// Text after the carets (`expected one of: …`), or empty.
    pub label: &'a str,
}

/// A rendered report and the position it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFrame {
    /// 1-based line of the start of the marked text.
    pub line: usize,
    /// 1-based column (in characters) of the start of the marked text.
    pub column: usize,
    /// The header line, the frame, ending with one line break.
    pub text: String,
}

impl Report<'_> {
    /// Renders the report against `source`, the text the span counts in, named `origin` in the
    /// frame's header (`--> origin:line:column`).
    ///
    /// A single-line span gets carets under it; a span over several lines is marked from its
    /// start to its end with the lines between elided. Spans longer than the window are marked
    /// up to its edge.
    pub fn render(&self, origin: &str, source: &str) -> CodeFrame {
        let (start, end) = normalized(source, self.span);
        let (line, column) = line_col(source, start);
        let excerpt = Excerpt::new(origin, source, start, end);
        let mut diagnostic = Diagnostic::error()
            .with_message(self.message)
            .with_label(Label::primary((), excerpt.label.clone()).with_message(self.label));
        if let Some(code) = self.code {
            diagnostic = diagnostic.with_code(code);
        }
        let config = Config {
            chars: Chars::ascii(),
            ..Config::default()
        };
        let text = match term::emit_into_string(&config, &excerpt, &diagnostic) {
            // Without the renderer's final empty line and the spaces it leaves at the end of
            // gutter lines: a report ends with its last line, and no line with a space.
            Ok(text) => text
                .trim_end_matches('\n')
                .lines()
                .map(|l| format!("{}\n", l.trim_end_matches(' ')))
                .collect(),
            // Unreachable with `Excerpt`, which answers every question; still, say where.
            Err(_) => {
                let code = self.code.map(|c| format!("[{c}]")).unwrap_or_default();
                format!(
                    "error{code}: {}\n --> {origin}:{line}:{column}\n",
                    self.message
                )
            }
        };
        CodeFrame { line, column, text }
    }
}

/// The span clipped to `source` and its char boundaries, `end >= start`, and without line
/// breaks at its end (a span ending with its line marks that line, not the next one).
fn normalized(source: &str, span: Span) -> (usize, usize) {
    let start = clamp_to_char_boundary(source, span.start);
    let mut end = clamp_to_char_boundary(source, span.end.max(start));
    while end > start && matches!(source.as_bytes().get(end - 1), Some(b'\n' | b'\r')) {
        end -= 1;
    }
    (start, end)
}

/// The lines of the source a frame may show, each cut to its window, as the text handed to
/// `codespan-reporting`, with what it needs to number lines and columns as in the source.
struct Excerpt<'a> {
    origin: &'a str,
    /// The shown lines' windows, joined by `\n`.
    text: String,
    /// Shown lines in source order.
    lines: Vec<ShownLine>,
    /// The span, in `text`'s offsets.
    label: Range<usize>,
}

/// One source line in the excerpt.
struct ShownLine {
    /// 0-based line index in the source.
    index: usize,
    /// Its window in `Excerpt::text`, `…` marks included, line break excluded.
    range: Range<usize>,
    /// Characters of the source line left out before the window.
    skipped: usize,
}

impl ShownLine {
    /// Where the window's own text starts (after a leading `…`).
    fn text_start(&self) -> usize {
        self.range.start
            + if self.skipped > 0 {
                ELLIPSIS.len_utf8()
            } else {
                0
            }
    }
}

impl<'a> Excerpt<'a> {
    /// The excerpt for a span `start..end` (normalized) of `source`: the span's first line cut
    /// around its start; for a span over several lines, also the lines `codespan-reporting`
    /// may show after the first (three of context and one it shows instead of eliding it) and
    /// before the last, the last cut around the span's end.
    fn new(origin: &'a str, source: &str, start: usize, end: usize) -> Self {
        let first = source[..start].matches('\n').count();
        // Byte offsets of the starts of the lines from `first` to the span's last.
        let mut starts = vec![line_start_offset(source, start)];
        starts.extend(
            source[start..end]
                .match_indices('\n')
                .map(|(i, _)| start + i + 1),
        );
        let last = first + starts.len() - 1;
        let mut wanted: Vec<usize> = (first..=last.min(first + 4))
            .chain(last.saturating_sub(2).max(first)..=last)
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut excerpt = Excerpt {
            origin,
            text: String::new(),
            lines: Vec::new(),
            label: 0..0,
        };
        for index in wanted {
            let line_start = starts[index - first];
            let line_end = source[line_start..]
                .find('\n')
                .map_or(source.len(), |i| line_start + i);
            let line = source[line_start..line_end].trim_end_matches('\r');
            // The window follows the position the frame points at on this line.
            let focus = if index == first {
                start
            } else if index == last {
                end
            } else {
                line_start
            };
            let focus = source[line_start..focus.clamp(line_start, line_end)]
                .chars()
                .count();
            let label_start = (index == first).then(|| start - line_start);
            let label_end = (index == last).then(|| end - line_start);
            excerpt.push_line(index, line, focus, label_start, label_end);
        }
        excerpt
    }

    /// Appends `line` (source line `index`), cut to a window around character `focus`, and
    /// records where the label starts or ends on it (byte offsets in `line`).
    fn push_line(
        &mut self,
        index: usize,
        line: &str,
        focus: usize,
        label_start: Option<usize>,
        label_end: Option<usize>,
    ) {
        let chars = line.chars().count();
        let (from, to) = if chars <= FRAME_WIDTH {
            (0, chars)
        } else {
            let to = (focus.saturating_sub(FRAME_CONTEXT_BEFORE) + FRAME_WIDTH).min(chars);
            (to - FRAME_WIDTH, to)
        };
        if !self.lines.is_empty() {
            self.text.push('\n');
        }
        let range_start = self.text.len();
        if from > 0 {
            self.text.push(ELLIPSIS);
        }
        let window_start = self.text.len();
        // Byte offsets in `line` of the window's first character and of the end of its last.
        let byte_of = |c: usize| line.char_indices().nth(c).map_or(line.len(), |(i, _)| i);
        let (from_byte, to_byte) = (byte_of(from), byte_of(to));
        self.text.push_str(&line[from_byte..to_byte]);
        if to < chars {
            self.text.push(ELLIPSIS);
        }
        // A position of the line in the excerpt: inside the window, or at its nearer edge.
        let place = |byte: usize| window_start + byte.clamp(from_byte, to_byte) - from_byte;
        if let Some(b) = label_start {
            self.label.start = place(b);
        }
        if let Some(b) = label_end {
            self.label.end = place(b).max(self.label.start);
        }
        self.lines.push(ShownLine {
            index,
            range: range_start..self.text.len(),
            skipped: from,
        });
    }

    /// The shown line holding excerpt offset `byte` (the last one starting at or before it).
    fn line_at(&self, byte: usize) -> Option<&ShownLine> {
        let after = self.lines.partition_point(|l| l.range.start <= byte);
        self.lines.get(after.checked_sub(1)?)
    }
}

impl<'a> Files<'a> for Excerpt<'a> {
    type FileId = ();
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, (): ()) -> Result<&'a str, FilesError> {
        Ok(self.origin)
    }

    fn source(&'a self, (): ()) -> Result<&'a str, FilesError> {
        Ok(&self.text)
    }

    /// Source line indices, so that line numbers and elided stretches are the source's.
    fn line_index(&'a self, (): (), byte_index: usize) -> Result<usize, FilesError> {
        Ok(self.line_at(byte_index).map_or(0, |l| l.index))
    }

    /// A shown line's window; a line that is not shown is never printed (it lies in an
    /// elided stretch) and gets an empty range.
    fn line_range(&'a self, (): (), line_index: usize) -> Result<Range<usize>, FilesError> {
        let next = self.lines.partition_point(|l| l.index < line_index);
        Ok(match self.lines.get(next) {
            Some(l) if l.index == line_index => l.range.clone(),
            Some(l) => l.range.start..l.range.start,
            None => self.text.len()..self.text.len(),
        })
    }

    /// The column in the source line: characters left out before the window count.
    fn column_number(
        &'a self,
        (): (),
        line_index: usize,
        byte_index: usize,
    ) -> Result<usize, FilesError> {
        let Some(line) = self.lines.iter().find(|l| l.index == line_index) else {
            return Ok(1);
        };
        let from = line.text_start();
        let to = byte_index.clamp(from, line.range.end);
        Ok(line.skipped + self.text[from..to].chars().count() + 1)
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

    /// The frame of `start..end` of `source` without header, as `codespan-reporting` lays it.
    fn frame(source: &str, start: usize, end: usize) -> CodeFrame {
        let report = Report {
            code: None,
            message: "m",
            span: Span::new(start, end),
            label: "",
        };
        let mut frame = report.render("request", source);
        frame.text = frame.text.strip_prefix("error: m\n").unwrap().to_string();
        frame
    }

    #[test]
    fn frame_points_at_the_span() {
        let frame = frame("print 1\nT | where Foo > 1\n", 18, 21);
        assert_eq!((frame.line, frame.column), (2, 11));
        assert_eq!(
            frame.text,
            "  --> request:2:11\n  |\n2 | T | where Foo > 1\n  |           ^^^\n"
        );
    }

    #[test]
    fn header_has_the_code_and_the_label_follows_the_carets() {
        let report = Report {
            code: Some("SyntaxError"),
            message: "unexpected 'by'",
            span: Span::new(12, 14),
            label: "expected one of: '|'",
        };
        assert_eq!(
            report.render("script", "T | where x by").text,
            "error[SyntaxError]: unexpected 'by'\n  --> script:1:13\n  |\n1 | T | where x by\n  |             ^^ expected one of: '|'\n"
        );
    }

    #[test]
    fn frame_at_end_of_text_and_empty_text() {
        let frame = frame("T |", 3, 3);
        assert_eq!((frame.line, frame.column), (1, 4));
        assert!(
            frame.text.ends_with("1 | T |\n  |    ^\n"),
            "{}",
            frame.text
        );
        let frame = self::frame("", 0, 0);
        assert_eq!((frame.line, frame.column), (1, 1));
        assert!(frame.text.ends_with("1 |\n  | ^\n"), "{:?}", frame.text);
        // Out of range and inside a character: clipped.
        assert_eq!(self::frame("é", 1, 99).column, 1);
    }

    #[test]
    fn multiline_spans_are_marked_from_start_to_end() {
        let frame = frame("T\n| where a\n  and b", 4, 18);
        assert_eq!((frame.line, frame.column), (2, 3));
        assert_eq!(
            frame.text,
            "  --> request:2:3\n  |\n2 |   | where a\n  | /---^\n3 | |   and b\n  | \\------^\n"
        );
        // A span ending with its line's break marks that line only.
        let frame = self::frame("T\n| where a\n", 2, 11);
        assert!(
            frame.text.ends_with("2 | | where a\n  | ^^^^^^^^^\n"),
            "{}",
            frame.text
        );
    }

    #[test]
    fn long_multiline_spans_elide_the_middle_with_true_line_numbers() {
        let source: String = (1..=200).map(|i| format!("line{i}\n")).collect();
        let start = source.find("line10\n").unwrap();
        let end = source.find("line150\n").unwrap() + 4;
        let frame = frame(&source, start, end);
        assert_eq!((frame.line, frame.column), (10, 1));
        assert_eq!(
            frame.text,
            "    --> request:10:1\n    |\n 10 | / line10\n 11 | | line11\n 12 | | line12\n 13 | | line13\n    . |\n149 | | line149\n150 | | line150\n    | \\----^\n"
        );
    }

    #[test]
    fn columns_count_characters_and_tabs_line_up() {
        let frame = frame("\tprint 'é', x", 13, 14);
        assert_eq!(frame.column, 13);
        // The tab is four spaces wide, on the source line and under it.
        assert!(
            frame
                .text
                .ends_with("1 |     print 'é', x\n  |                ^\n"),
            "{:?}",
            frame.text
        );
    }

    #[test]
    fn long_lines_are_cut_to_a_window_around_the_caret() {
        let line = format!("{}X{}", "a".repeat(500), "b".repeat(500));
        let frame = frame(&line, 500, 501);
        assert_eq!(frame.column, 501);
        assert!(
            frame.text.starts_with("  --> request:1:501\n"),
            "{}",
            frame.text
        );
        let shown = format!("1 | …{}X{}…\n", "a".repeat(40), "b".repeat(79));
        let carets = format!("  | {}^\n", " ".repeat(41));
        assert!(
            frame.text.ends_with(&format!("{shown}{carets}")),
            "{}",
            frame.text
        );
        // Near the start: no `…` before; carets of a long span stop at the window's end.
        let frame = self::frame(&line, 2, 1000);
        let shown = format!("1 | {}…\n", "a".repeat(120));
        let carets = format!("  |   {}\n", "^".repeat(118));
        assert!(
            frame.text.ends_with(&format!("{shown}{carets}")),
            "{}",
            frame.text
        );
        // At the very end: the last 120 characters, the caret after them.
        let frame = self::frame(&line, 1001, 1001);
        assert_eq!(frame.column, 1002);
        assert!(
            frame.text.starts_with("  --> request:1:1002\n"),
            "{}",
            frame.text
        );
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
            self::frame(&line, 119, 120)
                .text
                .contains(&format!("1 | {line}\n"))
        );
    }

    #[test]
    fn multiline_spans_over_long_lines_cut_each_end_around_its_mark() {
        let source = format!(
            "{}A\n{}B{}",
            "x".repeat(300),
            "y".repeat(300),
            "z".repeat(300)
        );
        let start = 300;
        let end = source.find('B').unwrap() + 1;
        let frame = frame(&source, start, end);
        assert_eq!((frame.line, frame.column), (1, 301));
        assert!(
            frame.text.starts_with("  --> request:1:301\n"),
            "{}",
            frame.text
        );
        let lines: Vec<&str> = frame.text.lines().collect();
        assert!(lines[2].ends_with("xxA"), "{}", frame.text);
        assert!(
            lines[4].contains("yyB") && lines[4].ends_with("z…"),
            "{}",
            frame.text
        );
        assert!(frame.text.len() < 800, "{}", frame.text);
    }
}

//! Errors as the CLI reports them: `error[Code]: message` plus a code frame with line, column
//! and a caret, positions counted in the whole script.

use kustodian_runtime::{ErrorCode, RuntimeError};

use kustodian_runtime::script::ScriptRequest;

/// A failed request, ready to be printed as text or JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    /// 1-based line and column in the script, when the error points into the request.
    pub position: Option<(usize, usize)>,
    /// The code frame printed under the message in text output.
    pub frame: Option<String>,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            position: None,
            frame: None,
        }
    }

    /// A runtime error of request `request` of `script`; a planner span is relative to the
    /// request text and is moved into the script.
    pub fn from_runtime(err: &RuntimeError, script: &str, request: &ScriptRequest) -> Self {
        let mut failure = Failure::from(err);
        if let RuntimeError::Plan(plan) = err
            && let Some(span) = plan.span()
        {
            let start = request.offset + span.start.min(request.text.len());
            let end = request.offset + span.end.clamp(span.start, request.text.len());
            let (line, column, frame) = code_frame(script, start, end);
            failure.position = Some((line, column));
            failure.frame = Some(frame);
        }
        failure
    }

    /// The message for JSON output: positions go into the text since there is no frame.
    pub fn json_message(&self) -> String {
        match self.position {
            Some((line, column)) => format!("{} (line {line}, column {column})", self.message),
            None => self.message.clone(),
        }
    }

    /// `error[Code]: message`, then the frame if there is one; ends with a newline.
    pub fn to_text(&self) -> String {
        let mut text = format!("error[{}]: {}\n", self.code.as_str(), self.message);
        if let Some(frame) = &self.frame {
            text.push_str(frame);
            if !frame.ends_with('\n') {
                text.push('\n');
            }
        }
        text
    }
}

impl From<&RuntimeError> for Failure {
    /// An error without a place in a script (opening the cluster, `init`).
    fn from(err: &RuntimeError) -> Self {
        Failure::new(err.code(), err.to_string())
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Renders the line holding byte `start` of `source` with carets under `start..end` (clipped
/// to that line, at least one). Returns the 1-based line and column (in characters) and the frame:
///
/// ```text
///  --> line 3, column 11
///   |
/// 3 | T | where Foo > 1
///   |           ^^^
/// ```
pub fn code_frame(source: &str, start: usize, end: usize) -> (usize, usize, String) {
    let start = floor_char_boundary(source, start);
    let end = floor_char_boundary(source, end.max(start));
    let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[start..]
        .find('\n')
        .map_or(source.len(), |i| start + i);
    let line_no = source[..start].matches('\n').count() + 1;
    let line_text = source[line_start..line_end].trim_end_matches('\r');
    let before = &source[line_start..start];
    let column = before.chars().count() + 1;
    let marked = source[start..end.min(line_end)].chars().count().max(1);
    // Keep tabs in the padding so the caret lines up under tabbed text.
    let padding: String = before
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let gutter = " ".repeat(line_no.to_string().len());
    let frame = format!(
        "{gutter}--> line {line_no}, column {column}\n{gutter} |\n{line_no} | {line_text}\n{gutter} | {padding}{carets}\n",
        carets = "^".repeat(marked)
    );
    (line_no, column, frame)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use kustodian_planner::PlanError;
    use kustodian_planner::error::ErrSpan;

    use super::*;
    use kustodian_runtime::script::split_script;

    #[test]
    fn frame_points_at_the_span() {
        let (line, column, frame) = code_frame("print 1\nT | where Foo > 1\n", 18, 21);
        assert_eq!((line, column), (2, 11));
        assert_eq!(
            frame,
            " --> line 2, column 11\n  |\n2 | T | where Foo > 1\n  |           ^^^\n"
        );
    }

    #[test]
    fn frame_at_end_of_text_and_multiline_span() {
        let (line, column, frame) = code_frame("T |", 3, 3);
        assert_eq!((line, column), (1, 4));
        assert!(frame.ends_with("1 | T |\n  |    ^\n"), "{frame}");
        let (_, _, frame) = code_frame("T\n| where a\n  and b", 4, 18);
        assert!(frame.ends_with("2 | | where a\n  |   ^^^^^^^\n"), "{frame}");
    }

    #[test]
    fn columns_count_characters_and_tabs_are_kept() {
        let (_, column, frame) = code_frame("\tprint 'é', x", 13, 14);
        assert_eq!(column, 13);
        assert!(frame.ends_with("| \t           ^\n"), "{frame:?}");
    }

    #[test]
    fn semantic_span_is_moved_into_the_script() {
        let script = "print 1\n\n\n\n\n\n\n\n\n\n\nT\n| where Foo > 1";
        let requests = split_script(script);
        let request = &requests[1];
        assert_eq!(request.line, 12);
        let err = RuntimeError::Plan(
            PlanError::semantic("unknown column 'Foo'").with_span(ErrSpan { start: 10, end: 13 }),
        );
        let failure = Failure::from_runtime(&err, script, request);
        assert_eq!(failure.code, ErrorCode::SemanticError);
        assert_eq!(failure.position, Some((13, 9)));
        assert_eq!(
            failure.json_message(),
            "unknown column 'Foo' (line 13, column 9)"
        );
        assert_eq!(
            failure.to_text(),
            "error[SemanticError]: unknown column 'Foo'\n  --> line 13, column 9\n   |\n13 | | where Foo > 1\n   |         ^^^\n"
        );
    }

    #[test]
    fn errors_without_span_have_no_frame() {
        let request = &split_script(".drop table T")[0];
        let err = RuntimeError::Forbidden("principal 'aaduser=bob' may not drop table T".into());
        let failure = Failure::from_runtime(&err, ".drop table T", request);
        assert_eq!(
            failure.to_text(),
            "error[Forbidden]: principal 'aaduser=bob' may not drop table T\n"
        );
        assert_eq!(
            failure.json_message(),
            "principal 'aaduser=bob' may not drop table T"
        );
    }
}

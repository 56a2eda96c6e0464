//! Errors as the CLI reports them: `error[Code]: message` plus a code frame with line, column
//! and a caret, positions counted in the whole script. The text comes from the parser's one
//! renderer (`kustodian_parser::frame`), which a server would call the same way.

use kustodian_parser::ast::Span;
use kustodian_parser::frame::Report;
use kustodian_runtime::{ErrorCode, RuntimeError};

use kustodian_runtime::script::ScriptRequest;

/// How a frame's header names the text its line and column count in (`--> script:4:11`).
pub const SCRIPT: &str = "script";

/// A failed request, ready to be printed as text or JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    /// 1-based line and column in the script, when the error points into the request.
    pub position: Option<(usize, usize)>,
    /// The whole text report, `error[Code]: message` and the code frame under it, when the
    /// error points into the script (without one, [`Failure::to_text`] writes the header).
    pub report: Option<String>,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            position: None,
            report: None,
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
            let frame = Report {
                code: Some(failure.code.as_str()),
                message: &failure.message,
                span: Span::new(start, end),
                label: "",
            }
            .render(SCRIPT, script);
            failure.position = Some((frame.line, frame.column));
            failure.report = Some(frame.text);
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
        match &self.report {
            Some(report) => report.clone(),
            None => format!("error[{}]: {}\n", self.code.as_str(), self.message),
        }
    }
}

impl From<&RuntimeError> for Failure {
    /// An error without a place in a script (opening the cluster, `init`).
    fn from(err: &RuntimeError) -> Self {
        Failure::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use kustodian_planner::PlanError;
    use kustodian_planner::error::Span;

    use super::*;
    use kustodian_runtime::script::split_script;

    #[test]
    fn semantic_span_is_moved_into_the_script() {
        let script = "print 1\n\n\n\n\n\n\n\n\n\n\nT\n| where Foo > 1";
        let requests = split_script(script);
        let request = &requests[1];
        assert_eq!(request.line, 12);
        let err = RuntimeError::Plan(
            PlanError::semantic("unknown column 'Foo'").with_span(Span::new(10, 13)),
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
            "error[SemanticError]: unknown column 'Foo'\n   --> script:13:9\n   |\n13 | | where Foo > 1\n   |         ^^^\n"
        );
    }

    #[test]
    fn frames_of_long_lines_are_cut_around_the_caret() {
        // A semantic error at the end of a one-line request of a megabyte.
        let script = format!("print x = '{}', y = Foo", "a".repeat(1_000_000));
        let request = &split_script(&script)[0];
        let start = script.len() - 3;
        let err = RuntimeError::Plan(
            PlanError::semantic("unknown column 'Foo'").with_span(Span::new(start, start + 3)),
        );
        let text = Failure::from_runtime(&err, &script, request).to_text();
        assert!(text.len() < 400, "{} bytes: {text}", text.len());
        assert!(text.contains(" --> script:1:1000019\n"), "{text}");
        // 120 characters of the line after a `…`, the caret under `Foo` at their end.
        let line = format!("1 | …{}', y = Foo\n", "a".repeat(110));
        let carets = format!("  | {}^^^\n", " ".repeat(118));
        assert!(text.ends_with(&format!("{line}{carets}")), "{text}");
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

//! A case's snapshot: plain text beside the case file (`case.kql` → `case.snap`), holding the
//! effective query, the policies applied and the result (or error) of every principal, the
//! results side by side. And the diff a failing case prints.

use std::fmt::Write as _;

use similar::{ChangeTag, TextDiff};

/// What one principal's run produced, as the snapshot shows it.
pub struct RunRecord {
    pub label: String,
    /// The effective query and the policies applied, or why it could not be explained.
    pub plan: Result<(String, Vec<String>), String>,
    /// The result as a text table, or the error (`error[Code]: message`).
    pub result: Result<String, String>,
}

/// Side by side while the blocks fit in this many columns; one under the other beyond.
const SIDE_BY_SIDE_WIDTH: usize = 160;
const GAP: &str = "   ";

/// The snapshot text of a case whose query is `query`.
pub fn render(query: &str, runs: &[RunRecord]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "query:");
    for line in query.lines().filter(|l| !l.trim_start().starts_with("//") && !l.trim().is_empty()) {
        let _ = writeln!(s, "  {line}");
    }
    // The effective query and policies, once when every principal has the same.
    let same_plan = runs.windows(2).all(|w| w[0].plan == w[1].plan);
    for (i, run) in runs.iter().enumerate() {
        if same_plan && i > 0 {
            break;
        }
        let who = if same_plan && runs.len() > 1 { "every principal".to_string() } else { run.label.clone() };
        let _ = writeln!(s, "\n== effective query ({who}) ==");
        match &run.plan {
            Ok((kql, policies)) => {
                let _ = writeln!(s, "{kql}");
                let _ = writeln!(s, "policies:");
                if policies.is_empty() {
                    let _ = writeln!(s, "  (none)");
                }
                for p in policies {
                    let _ = writeln!(s, "  {p}");
                }
            }
            Err(e) => {
                let _ = writeln!(s, "{e}");
            }
        }
    }
    let _ = writeln!(s, "\n== results ==");
    s.push_str(&side_by_side(runs));
    s
}

fn block(run: &RunRecord) -> Vec<String> {
    let mut lines = vec![format!("as {}", run.label)];
    match &run.result {
        Ok(table) => lines.extend(table.lines().map(str::to_string)),
        Err(e) => lines.extend(e.lines().map(str::to_string)),
    }
    lines
}

fn width(line: &str) -> usize {
    line.chars().count()
}

/// The runs' blocks next to each other when they fit, else one after the other.
fn side_by_side(runs: &[RunRecord]) -> String {
    let blocks: Vec<Vec<String>> = runs.iter().map(block).collect();
    let widths: Vec<usize> = blocks.iter().map(|b| b.iter().map(|l| width(l)).max().unwrap_or(0)).collect();
    let total = widths.iter().sum::<usize>() + GAP.len() * blocks.len().saturating_sub(1);
    let mut s = String::new();
    if blocks.len() > 1 && total <= SIDE_BY_SIDE_WIDTH {
        let height = blocks.iter().map(Vec::len).max().unwrap_or(0);
        for row in 0..height {
            let mut line = String::new();
            for (i, b) in blocks.iter().enumerate() {
                let cell = b.get(row).map(String::as_str).unwrap_or("");
                if i > 0 {
                    line.push_str(GAP);
                }
                line.push_str(cell);
                if i + 1 < blocks.len() {
                    line.push_str(&" ".repeat(widths[i] - width(cell)));
                }
            }
            let _ = writeln!(s, "{}", line.trim_end());
        }
    } else {
        for (i, b) in blocks.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            for l in b {
                let _ = writeln!(s, "{l}");
            }
        }
    }
    s
}

/// A unified diff of the snapshot (`-`) against this run (`+`), three lines of context,
/// coloured with ANSI escapes when `color`.
pub fn diff(old: &str, new: &str, color: bool) -> String {
    let (red, green, cyan, reset) = if color { ("\x1b[31m", "\x1b[32m", "\x1b[36m", "\x1b[0m") } else { ("", "", "", "") };
    let d = TextDiff::from_lines(old, new);
    let mut out = String::new();
    for group in d.grouped_ops(3) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else { continue };
        let (o, n) = (first.old_range().start, first.new_range().start);
        let _ = writeln!(
            out,
            "{cyan}@@ -{},{} +{},{} @@{reset}",
            o + 1,
            last.old_range().end - o,
            n + 1,
            last.new_range().end - n
        );
        for op in &group {
            for change in d.iter_changes(op) {
                let (sign, colour) = match change.tag() {
                    ChangeTag::Delete => ("-", red),
                    ChangeTag::Insert => ("+", green),
                    ChangeTag::Equal => (" ", ""),
                };
                let text = change.value().trim_end_matches('\n');
                let end = if colour.is_empty() { "" } else { reset };
                let _ = writeln!(out, "{colour}{sign}{text}{end}");
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn run(label: &str, result: Result<&str, &str>) -> RunRecord {
        RunRecord {
            label: label.into(),
            plan: Ok(("T | where x".into(), vec!["RowLevelSecurity on [d].[T]: T | where x".into()])),
            result: result.map(str::to_string).map_err(str::to_string),
        }
    }

    #[test]
    fn results_side_by_side_and_one_plan_when_equal() {
        let snap = render("// as: a\nT | count\n", &[run("a", Ok("x\n1\n")), run("b", Err("error[Forbidden]: no"))]);
        assert_eq!(
            snap,
            "query:\n  T | count\n\n== effective query (every principal) ==\nT | where x\npolicies:\n  RowLevelSecurity on [d].[T]: T | where x\n\n== results ==\nas a   as b\nx      error[Forbidden]: no\n1\n"
        );
    }

    #[test]
    fn wide_results_stack() {
        let wide = "w".repeat(100);
        let snap = render("T", &[run("a", Ok(&wide)), run("b", Ok(&wide))]);
        assert!(snap.ends_with(&format!("as a\n{wide}\n\nas b\n{wide}\n")), "{snap}");
    }

    #[test]
    fn diff_marks_changes() {
        let d = diff("a\nb\nc\n", "a\nB\nc\n", false);
        assert_eq!(d, "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
        assert!(diff("a\n", "b\n", true).contains("\x1b[31m-a\x1b[0m"));
        assert_eq!(diff("same\n", "same\n", false), "");
    }
}

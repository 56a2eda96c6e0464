//! Scripts: requests separated by one or more blank lines (as in Kusto Explorer).

/// One request of a script and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRequest {
    pub text: String,
    pub line: usize,
}

/// Splits a script on blank lines, never inside a ```` ``` ```` multi-line string; blocks that
/// hold only `//` comments are dropped.
pub fn split_requests(script: &str) -> Vec<ScriptRequest> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let mut start = 1;
    let mut in_fence = false;
    for (i, line) in script.lines().enumerate() {
        if line.matches("```").count() % 2 == 1 {
            in_fence = !in_fence;
        }
        if line.trim().is_empty() && !in_fence {
            flush(&mut out, &mut cur, start);
            start = i + 2;
            continue;
        }
        if cur.is_empty() {
            start = i + 1;
        }
        cur.push(line);
    }
    flush(&mut out, &mut cur, start);
    out
}

fn flush(out: &mut Vec<ScriptRequest>, cur: &mut Vec<&str>, start: usize) {
    if cur.iter().any(|l| !l.trim_start().starts_with("//") && !l.trim().is_empty()) {
        out.push(ScriptRequest { text: cur.join("\n"), line: start });
    }
    cur.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_blank_lines_and_keeps_line_numbers() {
        let s = "// c\nprint 1\n\n\n.show tables\n| count\n\n// only a comment\n\nprint ```a\n\nb```";
        let r = split_requests(s);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], ScriptRequest { text: "// c\nprint 1".into(), line: 1 });
        assert_eq!(r[1], ScriptRequest { text: ".show tables\n| count".into(), line: 5 });
        assert_eq!(r[2].line, 10);
        assert!(r[2].text.contains("\n\nb```"));
    }
}

//! Splitting a script into requests, as Kusto Explorer does: requests are separated by one or
//! more blank lines, except inside a ```` ``` ```` multi-line string literal.

/// One request of a script and where it starts in the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRequest {
    /// The request text, from its first line to its last non-blank line (no trailing newline).
    pub text: String,
    /// Byte offset of the request's first character in the script.
    pub offset: usize,
    /// 1-based line number of the request's first line in the script.
    pub line: usize,
}

/// Splits `script` into requests. Blank lines are empty or whitespace-only lines outside a
/// ```` ``` ```` string; chunks holding only blank lines and `//` comments are dropped, other
/// comment lines stay with their request. `.ingest inline` data is not treated specially:
/// a blank line inside it ends the request, as in Kusto Explorer.
pub fn split_script(script: &str) -> Vec<ScriptRequest> {
    let mut requests = Vec::new();
    let mut lexer = LineLexer::default();
    // Start (byte offset, line number) and end byte offset of the current chunk.
    let mut current: Option<(usize, usize, usize)> = None;
    let mut has_code = false;
    let mut offset = 0;
    for (index, raw_line) in script.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let in_string_before = lexer.in_multiline_string;
        let code = lexer.scan(raw_line);
        let line = raw_line.trim_end_matches(['\n', '\r']);
        if !in_string_before && line.trim().is_empty() {
            if let Some((start, start_line, end)) = current.take() {
                push_chunk(&mut requests, script, start, start_line, end, has_code);
            }
            has_code = false;
        } else {
            let (start, start_line, _) = current.unwrap_or((offset, line_no, offset));
            current = Some((start, start_line, offset + line.len()));
            has_code |= code || in_string_before;
        }
        offset += raw_line.len();
    }
    if let Some((start, start_line, end)) = current {
        push_chunk(&mut requests, script, start, start_line, end, has_code);
    }
    requests
}

/// Whether `text` ends inside an unterminated ```` ``` ```` string (the shell keeps reading).
pub fn ends_inside_multiline_string(text: &str) -> bool {
    let mut lexer = LineLexer::default();
    for line in text.split_inclusive('\n') {
        lexer.scan(line);
    }
    lexer.in_multiline_string
}

fn push_chunk(
    out: &mut Vec<ScriptRequest>,
    script: &str,
    start: usize,
    line: usize,
    end: usize,
    has_code: bool,
) {
    if has_code {
        out.push(ScriptRequest {
            text: script[start..end].to_string(),
            offset: start,
            line,
        });
    }
}

/// Just enough of KQL's lexical structure to find ```` ``` ```` strings and comments: quoted
/// strings are skipped so that a ```` ``` ```` or `//` inside them means nothing.
#[derive(Default)]
struct LineLexer {
    in_multiline_string: bool,
}

impl LineLexer {
    /// Scans one line, updating the multi-line string state; returns whether the line holds
    /// anything besides whitespace and a comment.
    fn scan(&mut self, line: &str) -> bool {
        let bytes = line.as_bytes();
        let mut code = false;
        let mut i = 0;
        while i < bytes.len() {
            if self.in_multiline_string {
                code = true;
                if bytes[i..].starts_with(b"```") {
                    self.in_multiline_string = false;
                    i += 3;
                } else {
                    i += 1;
                }
                continue;
            }
            match bytes[i] {
                b'`' if bytes[i..].starts_with(b"```") => {
                    self.in_multiline_string = true;
                    code = true;
                    i += 3;
                }
                b'/' if bytes[i..].starts_with(b"//") => break,
                quote @ (b'"' | b'\'') => {
                    // `@"c:\"` is a verbatim string: backslash escapes nothing.
                    let verbatim = i > 0 && bytes[i - 1] == b'@';
                    code = true;
                    i += 1;
                    while i < bytes.len() && bytes[i] != quote {
                        i += if bytes[i] == b'\\' && !verbatim { 2 } else { 1 };
                    }
                    i += 1;
                }
                c => {
                    code |= !c.is_ascii_whitespace();
                    i += 1;
                }
            }
        }
        code
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn texts(script: &str) -> Vec<(usize, String)> {
        split_script(script)
            .into_iter()
            .map(|r| (r.line, r.text))
            .collect()
    }

    #[test]
    fn splits_on_blank_lines() {
        let script = "print 1\n\n\nT\n| take 3\n   \t\n.show tables\n";
        assert_eq!(
            texts(script),
            vec![
                (1, "print 1".into()),
                (4, "T\n| take 3".into()),
                (7, ".show tables".into())
            ]
        );
    }

    #[test]
    fn offsets_point_into_the_script() {
        let script = "// header\n\nprint 1\n\n  T | count  \n";
        for r in split_script(script) {
            assert_eq!(&script[r.offset..r.offset + r.text.len()], r.text);
        }
        assert_eq!(
            texts(script),
            vec![(3, "print 1".into()), (5, "  T | count  ".into())]
        );
    }

    #[test]
    fn comments_stay_with_their_request_and_comment_only_chunks_are_dropped() {
        let script = "// file header\n// more\n\n// the first query\nprint 1 // trailing\n// between\n| count\n";
        assert_eq!(
            texts(script),
            vec![(
                4,
                "// the first query\nprint 1 // trailing\n// between\n| count".into()
            )]
        );
    }

    #[test]
    fn no_split_inside_multiline_string() {
        let script = "print s = ```\nline one\n\nline three```\n\nprint 2";
        assert_eq!(
            texts(script),
            vec![
                (1, "print s = ```\nline one\n\nline three```".into()),
                (6, "print 2".into())
            ]
        );
    }

    #[test]
    fn backticks_and_slashes_inside_quotes_mean_nothing() {
        let script = "print a = \"```\", b = '//x'\n\nprint 2\n\nprint c = \"\\\"```\"\n\nprint 3";
        assert_eq!(texts(script).len(), 4);
        let verbatim = "print a = @\"c:\\\", b = \"```\"\n\nprint 2";
        assert_eq!(texts(verbatim).len(), 2);
    }

    #[test]
    fn crlf_and_no_trailing_newline() {
        let script = "print 1\r\n\r\nprint 2\r\n| count";
        assert_eq!(
            texts(script),
            vec![(1, "print 1".into()), (3, "print 2\r\n| count".into())]
        );
    }

    #[test]
    fn open_multiline_string() {
        assert!(ends_inside_multiline_string("print s = ```\nabc\n"));
        assert!(!ends_inside_multiline_string("print s = ```\nabc```\n"));
        assert!(!ends_inside_multiline_string("print s = '```'"));
    }

    #[test]
    fn empty_script() {
        assert!(split_script("").is_empty());
        assert!(split_script("\n \n\t\n").is_empty());
    }
}

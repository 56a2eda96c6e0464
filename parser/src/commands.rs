//! Kusto's management commands as the official parser knows them (`kusto_commands.txt`), to tell
//! a valid command that Kustodian does not implement from a syntax error.
//!
//! The table lists, for each of the official parser's engine commands, the ways its text can
//! start (written by `parser/tools/kusto_commands.js` from `@kusto/language-service-next`). When
//! Kustodian's grammar rejects a command, [`unsupported`] looks for a listed start the command
//! follows to where the grammar gave up: then the command is Kusto's, and the grammar does not
//! know it.

use std::sync::OnceLock;

use crate::ast::Span;
use crate::error::{ParseError, ParseErrorKind};
use crate::lexer::{Spanned, Tok};

const KUSTO_COMMANDS: &str = include_str!("kusto_commands.txt");

/// One element of a command's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atom {
    /// A keyword or punctuation token, as written.
    Word(&'static str),
    /// A name (`T`, `['T']`).
    Name,
    /// A name that may be qualified (`db.T`).
    QualifiedName,
    /// Names separated by commas; qualified ones if `true`.
    Names(bool),
    /// A string literal.
    Str,
}

/// One way a Kusto command can start.
#[derive(Debug)]
struct Signature {
    atoms: Vec<Atom>,
    /// The command's grammar ends after `atoms`: they are the whole command.
    complete: bool,
}

fn signatures() -> &'static [Signature] {
    static SIGNATURES: OnceLock<Vec<Signature>> = OnceLock::new();
    SIGNATURES.get_or_init(|| {
        KUSTO_COMMANDS
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('\t'))
            .map(|(_, tokens)| {
                let mut atoms: Vec<Atom> = tokens
                    .split(' ')
                    .map(|t| match t {
                        "_" => Atom::Name,
                        "_." => Atom::QualifiedName,
                        "_+" => Atom::Names(false),
                        "_.+" => Atom::Names(true),
                        "\"" => Atom::Str,
                        word => Atom::Word(word),
                    })
                    .collect();
                let complete = atoms.last() == Some(&Atom::Word("$"));
                if complete {
                    atoms.pop();
                }
                Signature { atoms, complete }
            })
            .collect()
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceKind {
    /// Letters, digits, `_` and `-`: a keyword or a plain name.
    Word,
    /// Any other name token (`['T']`).
    Name,
    Str,
    Other,
}

/// A token of the command's text as the official grammar sees it: words joined by `-` without
/// spaces are one (`alter-merge`, `shard-groups`), whatever tokens Kustodian's lexer made of them.
#[derive(Debug, Clone, Copy)]
struct Piece<'a> {
    text: &'a str,
    kind: PieceKind,
    start: usize,
    end: usize,
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

fn pieces<'a>(text: &'a str, tokens: &[Spanned]) -> Vec<Piece<'a>> {
    let mut out: Vec<Piece<'a>> = Vec::new();
    for (start, tok, end) in tokens {
        let slice = text.get(*start..*end).unwrap_or_default();
        let kind = match tok {
            Tok::Str(_) => PieceKind::Str,
            _ if is_word(slice) => PieceKind::Word,
            Tok::Ident(_) => PieceKind::Name,
            _ => PieceKind::Other,
        };
        if let Some(last) = out.last_mut()
            && kind == PieceKind::Word
            && last.kind == PieceKind::Word
            && last.end == *start
        {
            last.text = text.get(last.start..*end).unwrap_or_default();
            last.end = *end;
            continue;
        }
        out.push(Piece {
            text: slice,
            kind,
            start: *start,
            end: *end,
        });
    }
    out
}

/// How a signature matches the start of a command's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// All its atoms, over this many pieces.
    Full(usize),
    /// The text ended before its atoms did.
    RanOut,
    /// A piece is not what it says.
    Mismatch,
}

/// Index after the name at `i`, dotted (`db.T`) if `qualified`.
fn name_end(pieces: &[Piece], i: usize, qualified: bool) -> Result<usize, Match> {
    let is_name = |p: &Piece| matches!(p.kind, PieceKind::Word | PieceKind::Name);
    if !is_name(pieces.get(i).ok_or(Match::RanOut)?) {
        return Err(Match::Mismatch);
    }
    let mut i = i + 1;
    while qualified
        && pieces.get(i).is_some_and(|p| p.text == ".")
        && pieces.get(i + 1).is_some_and(is_name)
    {
        i += 2;
    }
    Ok(i)
}

/// Index after the piece at `i` if `ok` holds for it.
fn piece_end(pieces: &[Piece], i: usize, ok: impl Fn(&Piece) -> bool) -> Result<usize, Match> {
    if ok(pieces.get(i).ok_or(Match::RanOut)?) {
        Ok(i + 1)
    } else {
        Err(Match::Mismatch)
    }
}

fn match_signature(sig: &Signature, pieces: &[Piece]) -> Match {
    let mut i = 0;
    for atom in &sig.atoms {
        let next = match atom {
            Atom::Word(w) => piece_end(pieces, i, |p| p.text == *w),
            Atom::Str => piece_end(pieces, i, |p| p.kind == PieceKind::Str),
            Atom::Name => name_end(pieces, i, false),
            Atom::QualifiedName => name_end(pieces, i, true),
            Atom::Names(qualified) => {
                let mut j = name_end(pieces, i, *qualified);
                while let Ok(k) = j
                    && pieces.get(k).is_some_and(|p| p.text == ",")
                {
                    j = name_end(pieces, k + 1, *qualified);
                }
                j
            }
        };
        match next {
            Ok(next) => i = next,
            Err(m) => return m,
        }
    }
    Match::Full(i)
}

/// `.clear table data`: the command's keywords, without names, values and punctuation.
fn command_name(sig: &Signature) -> String {
    let words: Vec<&str> = sig
        .atoms
        .iter()
        .filter_map(|a| match a {
            Atom::Word(w) if w.starts_with(|c: char| c.is_ascii_alphabetic()) => Some(*w),
            _ => None,
        })
        .collect();
    format!(".{}", words.join(" "))
}

/// The error for a command that Kustodian's grammar rejected with `error` when the command is
/// one of Kusto's. Its tokens (`tokens`, from the leading `.`) must follow a start of a Kusto
/// command
///
/// * that is the whole command (`.show cluster`), or that more text follows: a start that
///   ends the text but not the command, or more text that begins a longer form of it, is a
///   command cut short (`.clear table T`, `.alter database D policy caching hot =`), which
///   stays a syntax error; and
/// * past the token where the grammar gave up (`.show table T extents`: the grammar stops at
///   `extents`), or up to that token when that start is the whole Kusto command and
///   Kustodian's grammar does not accept it alone (`.show cluster | count`; `accepts` parses
///   a text with the grammar). This keeps junk after a supported command (`.show tables
///   junk`) a syntax error.
///
/// The longest such start names the command. Text that follows no start stays a syntax error.
pub(crate) fn unsupported(
    text: &str,
    tokens: &[Spanned],
    error: &ParseError,
    accepts: impl Fn(&str) -> bool,
) -> Option<ParseError> {
    let [(dot, Tok::Dot, _), rest @ ..] = tokens else {
        return None;
    };
    let pieces = pieces(text, rest);
    let failed_at = error.span.start;
    let mut cut_short = false;
    let mut matches: Vec<(usize, &Signature)> = Vec::new();
    for sig in signatures() {
        match match_signature(sig, &pieces) {
            Match::Full(n) if n == pieces.len() && !sig.complete => cut_short = true,
            Match::Full(n) => matches.push((n, sig)),
            Match::RanOut => cut_short = true,
            Match::Mismatch => {}
        }
    }
    // Longest first; of two as long, the one that spells more of it out (`.show rowstore
    // transactions` is that command, not `.show rowstore` of a rowstore named `transactions`);
    // the sort is stable, so the table's order breaks the remaining ties.
    matches.sort_by_key(|(n, sig)| {
        let words = sig.atoms.iter().filter(|a| matches!(a, Atom::Word(_))).count();
        (std::cmp::Reverse(*n), std::cmp::Reverse(words))
    });
    let (n, sig) = matches.into_iter().find(|(n, sig)| {
        if *n < pieces.len() && cut_short {
            return false;
        }
        let end = pieces.get(n.wrapping_sub(1)).map_or(0, |p| p.end);
        if end > failed_at {
            return true;
        }
        let failed_right_after = pieces.get(*n).is_none_or(|p| p.start == failed_at);
        sig.complete && failed_right_after && !accepts(text.get(..end).unwrap_or_default())
    })?;
    let end = pieces.get(n.wrapping_sub(1)).map_or(*dot + 1, |p| p.end);
    Some(ParseError::new(
        ParseErrorKind::Unsupported,
        format!(
            "'{}' is a Kusto command that Kustodian does not support",
            command_name(sig)
        ),
        Span::new(*dot, end),
        text,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_the_table_is_a_signature() {
        let lines = KUSTO_COMMANDS
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count();
        assert_eq!(signatures().len(), lines);
        // Each starts with its verb, which names the command at the least.
        for sig in signatures() {
            assert!(
                matches!(sig.atoms.first(), Some(Atom::Word(w)) if w.starts_with(|c: char| c.is_ascii_lowercase())),
                "{sig:?}"
            );
        }
    }

    /// A text of the command `sig` starts (the whole command if `sig` is complete).
    fn sample(sig: &Signature) -> String {
        let atoms: Vec<&str> = sig
            .atoms
            .iter()
            .map(|a| match a {
                Atom::Word(w) => w,
                Atom::Name => "T",
                Atom::QualifiedName => "db.T",
                Atom::Names(_) => "T1, T2",
                Atom::Str => "'x'",
            })
            .collect();
        format!(".{}", atoms.join(" "))
    }

    #[test]
    fn every_whole_kusto_command_parses_or_is_named_unsupported() {
        let mut unsupported = 0;
        for sig in signatures().iter().filter(|s| s.complete) {
            let text = sample(sig);
            match crate::parse(&text) {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.kind, ParseErrorKind::Unsupported, "{text}: {}", e.message);
                    assert_eq!(
                        e.message,
                        format!(
                            "'{}' is a Kusto command that Kustodian does not support",
                            command_name(sig)
                        ),
                    );
                    unsupported += 1;
                }
            }
        }
        assert!(unsupported > 800, "{unsupported}");
    }

    #[test]
    fn hyphenated_words_are_one_piece() {
        let text = ".alter-merge table db.T (a:int)";
        let tokens = crate::lexer::tokenize(text).unwrap();
        let p = pieces(text, &tokens[1..]);
        let texts: Vec<&str> = p.iter().map(|p| p.text).collect();
        assert_eq!(texts[..5], ["alter-merge", "table", "db", ".", "T"]);
    }
}

//! Kusto string matching primitives: terms (`has` family), substring and prefix/suffix tests,
//! case-insensitive comparison. Pure functions over `&str`, used by the vectorized predicates.
//!
//! A *term* is a maximal run of alphanumeric characters; everything else delimits terms.
//! `has` finds the needle with term boundaries at both of its ends (checked only where the
//! needle's edge character is itself alphanumeric, so multi-term needles like `"foo bar"` or
//! `"-x"` work); `hasprefix` checks only the start boundary, `hassuffix` only the end one.

/// A string predicate over (haystack, needle).
pub type PredFn = fn(&str, &str) -> bool;

fn is_term_char(c: char) -> bool {
    c.is_alphanumeric()
}

fn find_from(h: &[u8], n: &[u8], from: usize, cs: bool) -> Option<usize> {
    if n.is_empty() {
        return if from <= h.len() { Some(from) } else { None };
    }
    if h.len() < n.len() {
        return None;
    }
    let last = h.len() - n.len();
    let mut i = from;
    while i <= last {
        let window = h.get(i..i + n.len())?;
        let eq = if cs { window == n } else { window.eq_ignore_ascii_case(n) };
        if eq {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Lower-cases both operands when a case-insensitive comparison involves non-ASCII text.
fn fold(h: &str, n: &str) -> Option<(String, String)> {
    if h.is_ascii() && n.is_ascii() { None } else { Some((h.to_lowercase(), n.to_lowercase())) }
}

/// Term search: `start`/`end` select which boundaries must hold.
pub fn term_match(h: &str, n: &str, cs: bool, start: bool, end: bool) -> bool {
    if n.is_empty() {
        return true;
    }
    if !cs && let Some((h2, n2)) = fold(h, n) {
        return term_match(&h2, &n2, true, start, end);
    }
    let hb = h.as_bytes();
    let nb = n.as_bytes();
    let need_s = start && n.chars().next().is_some_and(is_term_char);
    let need_e = end && n.chars().next_back().is_some_and(is_term_char);
    let mut from = 0;
    while let Some(p) = find_from(hb, nb, from, cs) {
        let ok_s = !need_s || h.get(..p).and_then(|s| s.chars().next_back()).is_none_or(|c| !is_term_char(c));
        let ok_e =
            !need_e || h.get(p + nb.len()..).and_then(|s| s.chars().next()).is_none_or(|c| !is_term_char(c));
        if ok_s && ok_e {
            return true;
        }
        from = p + 1;
    }
    false
}

pub fn has(h: &str, n: &str) -> bool {
    term_match(h, n, false, true, true)
}
pub fn has_cs(h: &str, n: &str) -> bool {
    term_match(h, n, true, true, true)
}
pub fn hasprefix(h: &str, n: &str) -> bool {
    term_match(h, n, false, true, false)
}
pub fn hasprefix_cs(h: &str, n: &str) -> bool {
    term_match(h, n, true, true, false)
}
pub fn hassuffix(h: &str, n: &str) -> bool {
    term_match(h, n, false, false, true)
}
pub fn hassuffix_cs(h: &str, n: &str) -> bool {
    term_match(h, n, true, false, true)
}

pub fn contains(h: &str, n: &str) -> bool {
    match fold(h, n) {
        Some((h2, n2)) => h2.contains(&n2),
        None => find_from(h.as_bytes(), n.as_bytes(), 0, false).is_some(),
    }
}
pub fn contains_cs(h: &str, n: &str) -> bool {
    h.contains(n)
}
pub fn startswith(h: &str, n: &str) -> bool {
    match fold(h, n) {
        Some((h2, n2)) => h2.starts_with(&n2),
        None => h.as_bytes().get(..n.len()).is_some_and(|p| p.eq_ignore_ascii_case(n.as_bytes())),
    }
}
pub fn startswith_cs(h: &str, n: &str) -> bool {
    h.starts_with(n)
}
pub fn endswith(h: &str, n: &str) -> bool {
    match fold(h, n) {
        Some((h2, n2)) => h2.ends_with(&n2),
        None => {
            h.len() >= n.len()
                && h.as_bytes().get(h.len() - n.len()..).is_some_and(|p| p.eq_ignore_ascii_case(n.as_bytes()))
        }
    }
}
pub fn endswith_cs(h: &str, n: &str) -> bool {
    h.ends_with(n)
}
pub fn eq_ci(h: &str, n: &str) -> bool {
    match fold(h, n) {
        Some((h2, n2)) => h2 == n2,
        None => h.eq_ignore_ascii_case(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_terms() {
        assert!(has("North America", "north"));
        assert!(has("North America", "america"));
        assert!(!has("North America", "amer"));
        assert!(!has("NorthAmerica", "america"));
        assert!(has("hello, world", "hello"));
        assert!(has("a-b_c", "b"));
        assert!(!has("abc-def", "c-d"));
        assert!(has("abc-def", "-def"));
        assert!(has("foo bar baz", "bar baz"));
        assert!(!has("foo barbaz", "foo bar"));
        assert!(!has("ab-abab-ab", "ab-ab"));
        assert!(has("zab-ab-ab", "ab-ab")); // overlapping candidates
        assert!(has("x ÉTÉ y", "été"));
        assert!(!has_cs("North", "north"));
        assert!(has_cs("North", "North"));
        assert!(has("", ""));
        assert!(!has("", "a"));
        assert!(has("user123 logged", "USER123"));
        assert!(!has("user123", "user"));
    }

    #[test]
    fn prefix_suffix() {
        assert!(hasprefix("North America", "amer"));
        assert!(!hasprefix("North America", "merica"));
        assert!(hassuffix("North America", "rica"));
        assert!(!hassuffix("North America", "Ameri"));
        assert!(!hasprefix_cs("North America", "amer"));
        assert!(hassuffix_cs("North America", "rica"));
    }

    #[test]
    fn substrings() {
        assert!(contains("FooBar", "obA"));
        assert!(!contains_cs("FooBar", "obA"));
        assert!(startswith("FooBar", "foo"));
        assert!(!startswith("Fo", "foo"));
        assert!(endswith("FooBar", "BAR"));
        assert!(!endswith("ar", "BAR"));
        assert!(eq_ci("ÀB", "àb"));
        assert!(contains("x", ""));
    }
}

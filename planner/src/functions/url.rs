//! URLs: `parse_url`, `parse_urlquery`, `url_encode`, `url_encode_component`, `url_decode`.
//!
//! Query strings are decoded by `form_urlencoded` and `url_decode` by `percent-encoding`.
//! `parse_url` splits the text itself rather than with the `url` crate: that crate normalizes
//! as browsers do (lower-cases the host, drops a default port, resolves `..` in the path,
//! gives an empty path as `/`), and `parse_url` returns the parts as written. `url_encode`
//! encodes itself too: it writes .NET's lower-case hex (`%2f`), `percent-encoding` upper-case.

use datafusion::common::ScalarValue;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value as Json};

use super::args::{all_to, arg_str, typed};
use super::json::out;
use super::udf::{RowState, s_str, sv_str_or_empty};
use super::{FunctionContext, TypedExpr};
use crate::error::Result;
use crate::types::KqlType;

/// The parameters of a query string (`a=1&b=x%20y`), decoded as HTML forms encode them: `+`
/// is a space, `%XX` a byte, and anything undecodable is kept as written.
fn query_params(q: &str) -> Map<String, Json> {
    let mut m = Map::new();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        m.insert(k.into_owned(), Json::String(v.into_owned()));
    }
    m
}

fn parse_urlquery_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(q) = arg_str(a, 0) else { return s_str(None) };
    let q = q.strip_prefix('?').unwrap_or(q);
    let mut m = Map::new();
    m.insert("Query Parameters".into(), Json::Object(query_params(q)));
    out(Some(Json::Object(m)))
}

fn parse_url_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(u) = arg_str(a, 0) else { return s_str(None) };
    let u = u.trim();
    let mut f: [String; 7] = Default::default(); // scheme host port path user password fragment
    let mut query = Map::new();
    let valid = u.find("://").filter(|i| *i > 0 && u[..*i].chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)));
    if let Some(i) = valid {
        f[0] = u[..i].to_string();
        let rest = &u[i + 3..];
        let (rest, frag) = rest.split_once('#').unwrap_or((rest, ""));
        f[6] = frag.to_string();
        let (rest, q) = rest.split_once('?').unwrap_or((rest, ""));
        query = query_params(q);
        let (auth, path) = match rest.find('/') {
            Some(p) => (&rest[..p], &rest[p..]),
            None => (rest, ""),
        };
        f[3] = path.to_string();
        let (cred, hostport) = match auth.rfind('@') {
            Some(p) => (&auth[..p], &auth[p + 1..]),
            None => ("", auth),
        };
        let (user, pass) = cred.split_once(':').unwrap_or((cred, ""));
        f[4] = user.to_string();
        f[5] = pass.to_string();
        let (host, port) = if hostport.starts_with('[') {
            match hostport.find(']') {
                Some(e) => (&hostport[..=e], hostport[e + 1..].strip_prefix(':').unwrap_or("")),
                None => (hostport, ""),
            }
        } else {
            hostport.split_once(':').unwrap_or((hostport, ""))
        };
        f[1] = host.to_string();
        f[2] = port.to_string();
    }
    let mut m = Map::new();
    for (k, v) in ["Scheme", "Host", "Port", "Path", "Username", "Password"].iter().zip(&f) {
        m.insert((*k).into(), Json::String(v.clone()));
    }
    m.insert("Query Parameters".into(), Json::Object(query));
    m.insert("Fragment".into(), Json::String(f[6].clone()));
    out(Some(Json::Object(m)))
}

/// `url_encode` (.NET `HttpUtility.UrlEncode`: space as `+`, lower-case hex) and
/// `url_encode_component` (space as `%20`; lower-case hex, as the function's doc example shows).
fn url_encode_with(args: &[ScalarValue], component: bool) -> ScalarValue {
    let s = args.first().map_or("", sv_str_or_empty);
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            b'~' if component => out.push('~'),
            b'!' | b'*' | b'(' | b')' if !component => out.push(b as char),
            b' ' if !component => out.push('+'),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    s_str(Some(out))
}

fn url_encode_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    url_encode_with(args, false)
}

fn url_encode_component_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    url_encode_with(args, true)
}

/// `url_decode`: `+` is a space and `%XX` a byte; a `%` not followed by two hex digits, or
/// bytes that are not UTF-8, make the text undecodable (null).
fn url_decode_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let s = args.first().map_or("", sv_str_or_empty);
    let b = s.as_bytes();
    let malformed = b.iter().enumerate().any(|(i, c)| *c == b'%' && !b.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)));
    if malformed {
        return s_str(None);
    }
    let spaced = s.replace('+', " ");
    s_str(percent_decode_str(&spaced).decode_utf8().ok().map(|t| t.into_owned()))
}

/// `parse_url` (alias `parseurl`).
pub(super) fn lower_parse_url(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("parse_url", Dynamic, parse_url_row, all_to(args, String)?))
}

/// `parse_urlquery` (alias `parseurlquery`).
pub(super) fn lower_parse_urlquery(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("parse_urlquery", Dynamic, parse_urlquery_row, all_to(args, String)?))
}

pub(super) fn lower_url_encode(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(typed("url_encode", KqlType::String, url_encode_row, all_to(args, KqlType::String)?))
}

pub(super) fn lower_url_encode_component(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(typed("url_encode_component", KqlType::String, url_encode_component_row, all_to(args, KqlType::String)?))
}

pub(super) fn lower_url_decode(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(typed("url_decode", KqlType::String, url_decode_row, all_to(args, KqlType::String)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(t: &str) -> ScalarValue {
        url_decode_row(&[ScalarValue::Utf8(Some(t.to_string()))], &mut RowState::default())
    }

    fn text(t: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(t.to_string()))
    }

    #[test]
    fn url_decode_is_strict() {
        assert_eq!(decode("https%3a%2f%2fwww.bing.com%2f"), text("https://www.bing.com/"));
        assert_eq!(decode("a+b%20c%C3%A9"), text("a b cé"));
        assert_eq!(decode("100%"), ScalarValue::Utf8(None));
        assert_eq!(decode("%zz"), ScalarValue::Utf8(None));
        assert_eq!(decode("%+1"), ScalarValue::Utf8(None));
        assert_eq!(decode("%ff"), ScalarValue::Utf8(None));
    }

    #[test]
    fn query_strings_are_lenient() {
        let q = query_params("k1=v1&k2=a+b%2Bc&&flag&bad=100%&k1=again");
        assert_eq!(serde_json::to_string(&q).ok().as_deref(), Some(r#"{"k1":"again","k2":"a b+c","flag":"","bad":"100%"}"#));
    }
}

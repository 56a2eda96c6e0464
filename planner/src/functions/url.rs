//! URLs: `parse_url`, `parse_urlquery`, `url_encode`, `url_encode_component`, `url_decode`.

use datafusion::common::ScalarValue;
use serde_json::{Map, Value as Json};

use super::args::{all_to, arg_str, typed};
use super::json::out;
use super::udf::{RowState, s_str, sv_str_or_empty};
use super::{FunctionContext, TypedExpr};
use crate::error::Result;
use crate::types::KqlType;

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(q: &str) -> Map<String, Json> {
    let mut m = Map::new();
    for kv in q.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        m.insert(url_decode(k), Json::String(url_decode(v)));
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

fn url_decode_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let s = args.first().map_or("", sv_str_or_empty).as_bytes();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s.get(i) {
            Some(b'%') => {
                let h = s.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => return s_str(None),
                }
            }
            Some(b'+') => {
                out.push(b' ');
                i += 1;
            }
            Some(b) => {
                out.push(*b);
                i += 1;
            }
            None => break,
        }
    }
    s_str(String::from_utf8(out).ok())
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

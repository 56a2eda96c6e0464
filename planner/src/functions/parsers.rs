//! Parsers of structured text: the first CSV record (`parse_csv`), version numbers
//! (`parse_version`), file paths (`parse_path`) and Windows command lines
//! (`parse_command_line`).

use datafusion::common::ScalarValue;
use serde_json::{Map, Value as Json};

use super::args::{all_to, arg_str, typed};
use super::json::{out, out_arr};
use super::udf::{RowState, s_str};
use super::{FunctionContext, TypedExpr};
use crate::error::Result;
use crate::types::KqlType;

/// The first CSV record of the text (RFC 4180 quoting).
fn parse_csv_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(s) = arg_str(a, 0) else { return s_str(None) };
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else {
            match c {
                '"' => quoted = true,
                ',' => fields.push(Json::String(std::mem::take(&mut cur))),
                '\n' => break,
                '\r' if chars.peek() == Some(&'\n') => break,
                _ => cur.push(c),
            }
        }
    }
    fields.push(Json::String(cur));
    out_arr(fields)
}

fn parse_version_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let null = ScalarValue::try_from(&KqlType::Decimal.arrow_type()).unwrap_or(ScalarValue::Null);
    let Some(s) = arg_str(a, 0) else { return null };
    let parts: Vec<&str> = s.trim().split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return null;
    }
    let mut v: i128 = 0;
    for i in 0..4 {
        let p = parts.get(i).copied().unwrap_or("0");
        if p.is_empty() || p.len() > 8 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return null;
        }
        v = v * 100_000_000 + p.parse::<i128>().unwrap_or(0);
    }
    // Kustodian's decimal has 28 integer digits; larger versions do not fit.
    let scale = 10i128.pow(u32::try_from(crate::types::DECIMAL_SCALE).unwrap_or(10));
    match v.checked_mul(scale).filter(|x| *x < 10i128.pow(38)) {
        Some(x) => ScalarValue::Decimal128(Some(x), crate::types::DECIMAL_PRECISION, crate::types::DECIMAL_SCALE),
        None => null,
    }
}

fn parse_path_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(p) = arg_str(a, 0) else { return s_str(None) };
    let mut rest = p;
    let mut scheme = "";
    if let Some(i) = rest.find("://")
        && i > 1
        && rest[..i].chars().all(|c| c.is_ascii_alphanumeric())
    {
        scheme = &rest[..i];
        rest = &rest[i + 3..];
    }
    let long_prefix = ["\\\\?\\", "\\\\.\\"].iter().find(|x| rest.starts_with(**x)).map_or(0, |x| x.len());
    let body = &rest[long_prefix..];
    let b = body.as_bytes();
    let root = if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' { &body[..2] } else { "" };
    // the alternate data stream: a ':' in the last component (not the drive's)
    let last_sep = body.rfind(['\\', '/']).map_or(0, |i| i + 1);
    let tail_start = last_sep.max(root.len());
    let (name_end, ads) = match body[tail_start..].find(':') {
        Some(i) => (tail_start + i, &body[tail_start + i + 1..]),
        None => (body.len(), ""),
    };
    let dir_end = body.rfind(['\\', '/']);
    let (dir_path, filename) = match dir_end {
        Some(i) => (&body[..i], &body[i + 1..name_end.max(i + 1)]),
        None => ("", &body[root.len()..name_end]),
    };
    let dir_path_full = if long_prefix > 0 { format!("{}{}", &rest[..long_prefix], dir_path) } else { dir_path.to_string() };
    let dir_name = dir_path.rsplit(['\\', '/']).next().unwrap_or("");
    let dir_name = if dir_name == root { "" } else { dir_name };
    let ext = match filename.rfind('.') {
        Some(i) => &filename[i + 1..],
        None => "",
    };
    let mut m = Map::new();
    m.insert("Scheme".into(), Json::String(scheme.into()));
    m.insert("RootPath".into(), Json::String(root.into()));
    m.insert("DirectoryPath".into(), Json::String(dir_path_full));
    m.insert("DirectoryName".into(), Json::String(dir_name.into()));
    m.insert("Filename".into(), Json::String(filename.into()));
    m.insert("Extension".into(), Json::String(ext.into()));
    m.insert("AlternateDataStreamName".into(), Json::String(ads.into()));
    out(Some(Json::Object(m)))
}

/// Windows `CommandLineToArgvW` rules.
fn parse_command_line_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(cmd) = arg_str(a, 0) else { return s_str(None) };
    if !arg_str(a, 1).is_some_and(|p| p.eq_ignore_ascii_case("windows")) {
        return s_str(None);
    }
    let chars: Vec<char> = cmd.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    let n = chars.len();
    loop {
        while i < n && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        if i >= n {
            break;
        }
        let mut cur = String::new();
        let mut quoted = false;
        while i < n {
            let c = chars[i];
            if !quoted && (c == ' ' || c == '\t') {
                break;
            }
            if c == '\\' {
                let mut k = 0;
                while i < n && chars[i] == '\\' {
                    k += 1;
                    i += 1;
                }
                if i < n && chars[i] == '"' {
                    cur.extend(std::iter::repeat_n('\\', k / 2));
                    if k % 2 == 1 {
                        cur.push('"');
                        i += 1;
                    }
                } else {
                    cur.extend(std::iter::repeat_n('\\', k));
                }
                continue;
            }
            if c == '"' {
                if quoted && i + 1 < n && chars[i + 1] == '"' {
                    cur.push('"');
                    i += 2;
                    continue;
                }
                quoted = !quoted;
                i += 1;
                continue;
            }
            cur.push(c);
            i += 1;
        }
        args.push(Json::String(cur));
    }
    out_arr(args)
}

pub(super) fn lower_parse_csv(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("parse_csv", Dynamic, parse_csv_row, all_to(args, String)?))
}

pub(super) fn lower_parse_version(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("parse_version", Decimal, parse_version_row, all_to(args, String)?))
}

pub(super) fn lower_parse_path(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("parse_path", Dynamic, parse_path_row, all_to(args, String)?))
}

pub(super) fn lower_parse_command_line(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("parse_command_line", Dynamic, parse_command_line_row, all_to(args, String)?))
}

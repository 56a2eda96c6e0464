//! IP addresses and prefixes: `parse_ipv4`, `parse_ipv4_mask`, `ipv4_compare`,
//! `ipv4_is_match`, `ipv4_is_in_range`, `ipv4_is_in_any_range`, `ipv4_is_private`,
//! `ipv4_netmask_suffix`, `ipv4_range_to_cidr_list`, `format_ipv4`, `format_ipv4_mask`; IPv4
//! addresses in text: `has_ipv4`, `has_any_ipv4`, `has_ipv4_prefix`, `has_any_ipv4_prefix`;
//! IPv6 (IPv4 addresses taken as IPv4-mapped IPv6 ones): `ipv6_compare`, `ipv6_is_match`,
//! `ipv6_is_in_range`, `ipv6_is_in_any_range`.

use datafusion::common::ScalarValue;

use super::args::{all_to, arg_str, integer, to, typed};
use super::udf::{RowFn, RowState, s_bool, s_i64, s_str, sv_i64, sv_str};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// An IPv4 address with an optional `/prefix` (the prefix defaults to 32).
fn ipv4(s: &str) -> Option<(u32, u32)> {
    let s = s.trim();
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, p.trim().parse::<u32>().ok().filter(|p| *p <= 32)?),
        None => (s, 32),
    };
    let parts: Vec<&str> = addr.trim().split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut v: u32 = 0;
    for p in parts {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v = (v << 8) | u32::from(p.parse::<u8>().ok()?);
    }
    Some((v, prefix))
}

fn mask(prefix: u32) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - prefix.min(32)) }
}

/// An IP argument: a string, or a long holding the address.
fn ip_arg(v: Option<&ScalarValue>) -> Option<(u32, u32)> {
    let v = v?;
    if let Some(s) = sv_str(v) {
        return ipv4(s);
    }
    sv_i64(v).and_then(|x| u32::try_from(x).ok()).map(|x| (x, 32))
}

/// An optional prefix argument; a given one must be within 0..=32.
fn prefix_arg(a: &[ScalarValue], i: usize) -> Option<Option<u32>> {
    match a.get(i) {
        None => Some(None),
        Some(v) => sv_i64(v).and_then(|p| u32::try_from(p).ok()).filter(|p| *p <= 32).map(Some),
    }
}

fn parse_ipv4_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i64(arg_str(a, 0).and_then(ipv4).map(|(v, p)| i64::from(v & mask(p))))
}

fn parse_ipv4_mask_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some((v, p)), Some(Some(m))) = (arg_str(a, 0).and_then(ipv4), prefix_arg(a, 1)) else { return s_i64(None) };
    s_i64(Some(i64::from(v & mask(p.min(m)))))
}

/// `[a, b, prefix?]` to (masked a, masked b).
fn ip_pair(a: &[ScalarValue]) -> Option<(u32, u32)> {
    let (x, px) = arg_str(a, 0).and_then(ipv4)?;
    let (y, py) = arg_str(a, 1).and_then(ipv4)?;
    let extra = prefix_arg(a, 2)?.unwrap_or(32);
    let m = mask(px.min(py).min(extra));
    Some((x & m, y & m))
}

/// -1, 0 or 1, as `ipv4_compare` and `ipv6_compare` answer.
fn sign(o: std::cmp::Ordering) -> i64 {
    o as i64
}

fn ipv4_compare_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i64(ip_pair(a).map(|(x, y)| sign(x.cmp(&y))))
}

fn ipv4_is_match_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_bool(ip_pair(a).map(|(x, y)| x == y))
}

fn ipv4_is_in_range_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some((x, _)), Some((r, p))) = (arg_str(a, 0).and_then(ipv4), arg_str(a, 1).and_then(ipv4)) else {
        return s_bool(None);
    };
    let m = mask(p);
    s_bool(Some(x & m == r & m))
}

fn ipv4_is_private_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some((x, p)) = arg_str(a, 0).and_then(ipv4) else { return s_bool(None) };
    let ranges: [(u32, u32); 3] = [(0x0A00_0000, 8), (0xAC10_0000, 12), (0xC0A8_0000, 16)];
    s_bool(Some(ranges.iter().any(|(r, rp)| p >= *rp && x & mask(*rp) == *r)))
}

fn dotted(v: u32) -> String {
    format!("{}.{}.{}.{}", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)
}

fn format_ipv4_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some((v, p)), Some(m)) = (ip_arg(a.first()), prefix_arg(a, 1)) else { return s_str(Some(String::new())) };
    let p = p.min(m.unwrap_or(32));
    s_str(Some(dotted(v & mask(p))))
}

fn format_ipv4_mask_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some((v, p)), Some(m)) = (ip_arg(a.first()), prefix_arg(a, 1)) else { return s_str(Some(String::new())) };
    let p = p.min(m.unwrap_or(32));
    s_str(Some(format!("{}/{p}", dotted(v & mask(p)))))
}

fn ipv4_netmask_suffix_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i64(arg_str(a, 0).and_then(ipv4).map(|(_, p)| i64::from(p)))
}

pub(super) fn lower_parse_ipv4(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("parse_ipv4", Long, parse_ipv4_row, all_to(args, String)?))
}

pub(super) fn lower_parse_ipv4_mask(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let ip = to(args.remove(0), String)?;
    let p = integer(args.remove(0), name)?;
    Ok(typed("parse_ipv4_mask", Long, parse_ipv4_mask_row, vec![ip, p]))
}

/// `ipv4_compare`, `ipv4_is_match`, `ipv6_compare` and `ipv6_is_match` `(a, b[, prefix])`.
pub(super) fn lower_ip_compare(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let mut a = vec![to(args.remove(0), String)?, to(args.remove(0), String)?];
    if let Some(p) = args.pop() {
        a.push(integer(p, name)?);
    }
    let (ty, f): (KqlType, RowFn) = match name {
        "ipv4_compare" => (Long, ipv4_compare_row),
        "ipv4_is_match" => (Bool, ipv4_is_match_row),
        "ipv6_compare" => (Long, ipv6_compare_row),
        "ipv6_is_match" => (Bool, ipv6_is_match_row),
        _ => return Err(PlanError::Internal(format!("'{name}' is no IP comparison"))),
    };
    Ok(typed(name, ty, f, a))
}

pub(super) fn lower_ipv4_is_in_range(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("ipv4_is_in_range", Bool, ipv4_is_in_range_row, all_to(args, String)?))
}

pub(super) fn lower_ipv4_is_private(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("ipv4_is_private", Bool, ipv4_is_private_row, all_to(args, String)?))
}

pub(super) fn lower_ipv4_netmask_suffix(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("ipv4_netmask_suffix", Long, ipv4_netmask_suffix_row, all_to(args, String)?))
}

/// `format_ipv4` and `format_ipv4_mask` `(ip[, prefix])`, the address a string or a long.
pub(super) fn lower_format_ipv4(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let ip = args.remove(0);
    let ip = match ip.ty {
        Int | Long => to(ip, Long)?,
        String | Dynamic => to(ip, String)?,
        t => return Err(PlanError::semantic(format!("function '{name}' expects a string or a long, got {t}"))),
    };
    let mut a = vec![ip];
    if let Some(p) = args.pop() {
        a.push(integer(p, name)?);
    }
    let f: RowFn = if name == "format_ipv4" { format_ipv4_row } else { format_ipv4_mask_row };
    Ok(typed(name, String, f, a))
}

// ---------- IPv4 addresses in text ----------

/// The valid IPv4 addresses written in `text`: runs of digits and dots delimited by characters
/// that are neither alphanumeric nor dots (a trailing dot, as at the end of a sentence, is not
/// part of the address), each a whole dotted quad of octets.
fn addresses_in(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '.'))
        .map(|t| t.trim_end_matches('.'))
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') && ipv4(t).is_some_and(|(_, p)| p == 32))
}

/// A valid IPv4 prefix to search for: a whole address, or the start of one ending with a dot
/// (`192.`, `192.168.`, `192.168.1.`).
fn valid_prefix(p: &str) -> bool {
    if ipv4(p).is_some_and(|(_, l)| l == 32) && !p.contains('/') {
        return true;
    }
    let Some(head) = p.strip_suffix('.') else { return false };
    let parts: Vec<&str> = head.split('.').collect();
    (1..=3).contains(&parts.len()) && parts.iter().all(|o| !o.is_empty() && o.len() <= 3 && o.bytes().all(|b| b.is_ascii_digit()) && o.parse::<u16>().is_ok_and(|v| v <= 255))
}

/// The strings of the arguments after the first: a string each, or the strings of a dynamic
/// array (arguments are passed as dynamic: a string is its JSON string).
fn string_args(a: &[ScalarValue]) -> Vec<String> {
    let mut out = Vec::new();
    for v in a.iter().skip(1) {
        let Some(text) = sv_str(v) else { continue };
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::String(s)) => out.push(s),
            Ok(serde_json::Value::Array(items)) => out.extend(items.into_iter().filter_map(|i| i.as_str().map(str::to_string))),
            _ => {}
        }
    }
    out
}

fn has_ipv4_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let text = arg_str(a, 0).unwrap_or_default();
    let wanted: Vec<u32> = string_args(a).iter().filter_map(|w| ipv4(w).filter(|(_, p)| *p == 32 && !w.contains('/')).map(|(v, _)| v)).collect();
    s_bool(Some(!wanted.is_empty() && addresses_in(text).any(|t| ipv4(t).is_some_and(|(v, _)| wanted.contains(&v)))))
}

fn has_ipv4_prefix_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let text = arg_str(a, 0).unwrap_or_default();
    let prefixes: Vec<String> = string_args(a).into_iter().filter(|p| valid_prefix(p)).collect();
    s_bool(Some(addresses_in(text).any(|t| prefixes.iter().any(|p| if p.ends_with('.') { t.starts_with(p.as_str()) } else { t == p }))))
}

fn ipv4_is_in_any_range_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some((x, _)) = arg_str(a, 0).and_then(ipv4) else { return s_bool(None) };
    let mut any = false;
    for r in string_args(a) {
        let Some((base, p)) = ipv4(&r) else { return s_bool(None) };
        any |= x & mask(p) == base & mask(p);
    }
    s_bool(Some(any))
}

/// The fewest CIDR blocks covering `start..=end`.
fn cidrs(start: u32, end: u32) -> Vec<String> {
    let mut out = Vec::new();
    let (mut lo, hi) = (u64::from(start), u64::from(end));
    while lo <= hi {
        // The largest block aligned at `lo` that stays within `hi`.
        let mut size = if lo == 0 { 1u64 << 32 } else { lo & lo.wrapping_neg() };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        let prefix = 32 - size.trailing_zeros();
        out.push(format!("{}/{prefix}", dotted(lo as u32)));
        lo += size;
    }
    out
}

fn ipv4_range_to_cidr_list_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some((x, _)), Some((y, _))) = (arg_str(a, 0).and_then(ipv4), arg_str(a, 1).and_then(ipv4)) else { return s_str(None) };
    let list = if x <= y { cidrs(x, y) } else { Vec::new() };
    s_str(Some(serde_json::Value::Array(list.into_iter().map(serde_json::Value::String).collect()).to_string()))
}

// ---------- IPv6 ----------

/// An IPv6 address (or an IPv4 one, as IPv4-mapped IPv6) with an optional `/prefix` (its
/// length in IPv6 bits: an IPv4 prefix counts 96 more).
fn ipv6(s: &str) -> Option<(u128, u32)> {
    let s = s.trim();
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a.trim(), Some(p.trim().parse::<u32>().ok()?)),
        None => (s, None),
    };
    // `::a.b.c.d` is the IPv4 address a.b.c.d (IPv4-mapped, its prefix in IPv4 bits), as the
    // reference's parse_ipv6_mask example reads it.
    let addr = match addr.strip_prefix("::") {
        Some(rest) if rest.contains('.') && ipv4(rest).is_some() => rest,
        _ => addr,
    };
    if let Ok(v6) = addr.parse::<std::net::Ipv6Addr>() {
        let p = prefix.unwrap_or(128);
        return (p <= 128).then_some((u128::from(v6), p));
    }
    let (v4, _) = ipv4(addr)?;
    let p = prefix.unwrap_or(32);
    (p <= 32).then_some((u128::from(std::net::Ipv4Addr::from(v4).to_ipv6_mapped()), 96 + p))
}

/// `parse_ipv6(ip)` and `parse_ipv6_mask(ip, prefix)`: the address (IPv4 as IPv4-mapped
/// IPv6), masked to the shorter of its own and the given prefix, in the full canonical form
/// `0000:0000:...` Kusto prints.
fn parse_ipv6_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some((addr, own)) = arg_str(a, 0).and_then(ipv6) else { return s_str(None) };
    let prefix = match a.get(1) {
        None => own,
        Some(v) => match sv_i64(v).and_then(|p| u32::try_from(p).ok()).filter(|p| *p <= 128) {
            Some(p) => own.min(p),
            None => return s_str(None),
        },
    };
    let masked = addr & mask128(prefix);
    let groups: Vec<String> = (0..8).rev().map(|i| format!("{:04x}", (masked >> (i * 16)) & 0xffff)).collect();
    s_str(Some(groups.join(":")))
}

pub(super) fn lower_parse_ipv6(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let mut a = vec![to(args.remove(0), KqlType::String)?];
    if let Some(p) = args.pop() {
        a.push(integer(p, name)?);
    }
    Ok(typed(name, KqlType::String, parse_ipv6_row, a))
}

fn mask128(prefix: u32) -> u128 {
    if prefix == 0 { 0 } else { u128::MAX << (128 - prefix.min(128)) }
}

/// `[a, b, prefix?]` to (masked a, masked b): the shortest of the addresses' prefixes and the
/// given one (an IPv6 prefix length).
fn ip6_pair(a: &[ScalarValue]) -> Option<(u128, u128)> {
    let (x, px) = arg_str(a, 0).and_then(ipv6)?;
    let (y, py) = arg_str(a, 1).and_then(ipv6)?;
    let extra = match a.get(2) {
        None => 128,
        Some(v) => sv_i64(v).and_then(|p| u32::try_from(p).ok()).filter(|p| *p <= 128)?,
    };
    let m = mask128(px.min(py).min(extra));
    Some((x & m, y & m))
}

fn ipv6_compare_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i64(ip6_pair(a).map(|(x, y)| sign(x.cmp(&y))))
}

fn ipv6_is_match_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_bool(ip6_pair(a).map(|(x, y)| x == y))
}

fn ipv6_is_in_range_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some((x, _)), Some((r, p))) = (arg_str(a, 0).and_then(ipv6), arg_str(a, 1).and_then(ipv6)) else { return s_bool(None) };
    s_bool(Some(x & mask128(p) == r & mask128(p)))
}

fn ipv6_is_in_any_range_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some((x, _)) = arg_str(a, 0).and_then(ipv6) else { return s_bool(None) };
    let mut any = false;
    for r in string_args(a) {
        let Some((base, p)) = ipv6(&r) else { return s_bool(None) };
        any |= x & mask128(p) == base & mask128(p);
    }
    s_bool(Some(any))
}

/// A text and strings-or-arrays after it: the first as a string, the rest as dynamic.
fn text_and_list(args: Vec<TypedExpr>) -> Result<Vec<datafusion::logical_expr::Expr>> {
    let mut it = args.into_iter();
    let mut out = Vec::new();
    if let Some(first) = it.next() {
        out.push(to(first, KqlType::String)?);
    }
    for a in it {
        out.push(to(a, KqlType::Dynamic)?);
    }
    Ok(out)
}

/// `has_ipv4`, `has_any_ipv4`, `has_ipv4_prefix`, `has_any_ipv4_prefix`.
pub(super) fn lower_has_ipv4(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let f: RowFn = if name.ends_with("_prefix") { has_ipv4_prefix_row } else { has_ipv4_row };
    Ok(typed(name, KqlType::Bool, f, text_and_list(args)?))
}

/// `ipv4_is_in_any_range(ip, range, ...)` and `ipv6_is_in_any_range`: ranges as strings or one
/// dynamic array.
pub(super) fn lower_is_in_any_range(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let f: RowFn = if name.starts_with("ipv6") { ipv6_is_in_any_range_row } else { ipv4_is_in_any_range_row };
    Ok(typed(name, KqlType::Bool, f, text_and_list(args)?))
}

pub(super) fn lower_ipv4_range_to_cidr_list(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(typed("ipv4_range_to_cidr_list", KqlType::Dynamic, ipv4_range_to_cidr_list_row, all_to(args, KqlType::String)?))
}

pub(super) fn lower_ipv6_is_in_range(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(typed("ipv6_is_in_range", KqlType::Bool, ipv6_is_in_range_row, all_to(args, KqlType::String)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_text_and_prefixes() {
        let found: Vec<&str> = addresses_in("These requests came from: 192.168.1.1, 10.1.1.115 and 10.1.1.201.").collect();
        assert_eq!(found, ["192.168.1.1", "10.1.1.115", "10.1.1.201"]);
        assert_eq!(addresses_in("来自:192.168.1.1、10.1.1.115").count(), 2);
        assert_eq!(addresses_in("05:04:54127.0.0.1 GET").count(), 0);
        assert_eq!(addresses_in("x 127.0.0.256 y").count(), 0);
        assert!(valid_prefix("127.0.") && valid_prefix("10.1.1.1") && !valid_prefix("127.0") && !valid_prefix("300."));
    }

    #[test]
    fn cidr_lists() {
        assert_eq!(cidrs(0x0A00_0000, 0x0A00_000D), ["10.0.0.0/29", "10.0.0.8/30", "10.0.0.12/31"]);
        assert_eq!(cidrs(0, u32::MAX), ["0.0.0.0/0"]);
        assert_eq!(cidrs(5, 5), ["0.0.0.5/32"]);
    }

    #[test]
    fn ipv6_addresses() {
        assert_eq!(ipv6("::ffff:7f00:1").map(|x| x.0), ipv6("127.0.0.1").map(|x| x.0));
        assert_eq!(ipv6("127.0.0.1/8").map(|x| x.1), Some(104));
        assert!(ipv6("fe80::85d:e82c:9446:7994/129").is_none());
    }

    #[test]
    fn addresses() {
        assert_eq!(ipv4("192.168.1.1/24"), Some((0xC0A8_0101, 24)));
        assert_eq!(ipv4("256.1.1.1"), None);
    }
}

//! IPv4 addresses and prefixes: `parse_ipv4`, `parse_ipv4_mask`, `ipv4_compare`,
//! `ipv4_is_match`, `ipv4_is_in_range`, `ipv4_is_private`, `ipv4_netmask_suffix`,
//! `format_ipv4`, `format_ipv4_mask`.

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

fn ipv4_compare_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i64(ip_pair(a).map(|(x, y)| match x.cmp(&y) {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => 1,
    }))
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

/// `ipv4_compare` and `ipv4_is_match` `(a, b[, prefix])`.
pub(super) fn lower_ipv4_compare(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let mut a = vec![to(args.remove(0), String)?, to(args.remove(0), String)?];
    if let Some(p) = args.pop() {
        a.push(integer(p, name)?);
    }
    Ok(if name == "ipv4_compare" {
        typed("ipv4_compare", Long, ipv4_compare_row, a)
    } else {
        typed("ipv4_is_match", Bool, ipv4_is_match_row, a)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(ipv4("192.168.1.1/24"), Some((0xC0A8_0101, 24)));
        assert_eq!(ipv4("256.1.1.1"), None);
    }
}

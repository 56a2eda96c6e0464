//! The `hll` and `tdigest` families: aggregates that summarize values into a dynamic value,
//! functions that merge those values, and the estimates read from them (`dcount_hll`,
//! `percentile_tdigest`, `percentiles_array_tdigest`, `rank_tdigest`).
//!
//! Kustodian's `dcount` and `percentile` are exact, so its summaries are exact too, and the
//! estimates read from them equal `dcount` and `percentile` over the same values:
//! - an `hll` value is the set of the 64-bit hashes (xxHash64 of the value's text) of the
//!   distinct values: `{"kustodian_hll": ["<hash>", ...]}`;
//! - a `tdigest` value is the distinct values with their weights, sorted:
//!   `{"kustodian_tdigest": {"type": "long", "values": [[v, w], ...]}}`.
//!
//! Their size grows with the distinct values, as `dcount`'s and `percentile`'s state does.
//! They are not Kusto's binary sketches: a sketch produced by Kusto is not read (its
//! functions give null).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Expr, ExprFunctionExt, Signature, Volatility};
use serde_json::{Value as Json, json};

use super::aggregate::{AggregateLowering, suffix};
use super::args::typed;
use super::conversion::lower_cast;
use super::json::{each_json, json_of, out};
use super::udf::{RowState, s_f64, s_i64, s_str, s_ts, s_dur, sv_f64, sv_i64};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

const HLL: &str = "kustodian_hll";
const TDIGEST: &str = "kustodian_tdigest";

// ---------- the summaries ----------

/// The hashes of an `hll` value.
fn hll_of(j: &Json) -> Option<BTreeSet<u64>> {
    j.get(HLL)?.as_array()?.iter().map(|h| h.as_str()?.parse::<u64>().ok()).collect()
}

fn hll_json(set: &BTreeSet<u64>) -> Json {
    json!({ HLL: set.iter().map(|h| Json::String(h.to_string())).collect::<Vec<_>>() })
}

/// A `tdigest`'s values: integers (long; datetime and timespan in nanoseconds) or reals, each
/// with its weight.
#[derive(Debug, Clone, Default, PartialEq)]
struct Digest {
    ty: Option<KqlType>,
    ints: BTreeMap<i64, u64>,
    reals: Vec<(f64, u64)>,
}

impl Digest {
    fn add_int(&mut self, v: i64, w: u64) {
        *self.ints.entry(v).or_insert(0) += w;
    }

    fn merge(&mut self, other: Digest) -> bool {
        match (self.ty, other.ty) {
            (_, None) => return true,
            (None, t) => self.ty = t,
            (Some(a), Some(b)) if a != b => return false,
            _ => {}
        }
        for (v, w) in other.ints {
            self.add_int(v, w);
        }
        self.reals.extend(other.reals);
        true
    }

    fn is_real(&self) -> bool {
        self.ty == Some(KqlType::Real)
    }

    /// The values, sorted, with their weights, as reals.
    fn sorted(&self) -> Vec<(f64, u64)> {
        if self.is_real() {
            let mut r = self.reals.clone();
            r.sort_by(|a, b| a.0.total_cmp(&b.0));
            r
        } else {
            self.ints.iter().map(|(v, w)| (*v as f64, *w)).collect()
        }
    }

    fn total(&self) -> u64 {
        self.ints.values().sum::<u64>() + self.reals.iter().map(|r| r.1).sum::<u64>()
    }

    /// Nearest rank (as `percentile` and `percentilew` pick): the smallest value whose
    /// cumulative weight reaches `p`% of the total.
    fn percentile(&self, p: f64) -> Option<Json> {
        let total = self.total();
        if total == 0 || !(0.0..=100.0).contains(&p) {
            return None;
        }
        let target = ((p / 100.0 * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        if self.is_real() {
            for (v, w) in self.sorted() {
                seen += w;
                if seen >= target {
                    return serde_json::Number::from_f64(v).map(Json::Number);
                }
            }
        } else {
            for (v, w) in &self.ints {
                seen += w;
                if seen >= target {
                    return Some(Json::from(*v));
                }
            }
        }
        None
    }

    /// The weight of the values at or below `v`.
    fn rank(&self, v: f64) -> u64 {
        self.sorted().iter().take_while(|(x, _)| *x <= v).map(|(_, w)| w).sum()
    }

    fn to_json(&self) -> Json {
        let values: Vec<Json> = if self.is_real() {
            self.sorted().into_iter().map(|(v, w)| json!([v, w])).collect()
        } else {
            self.ints.iter().map(|(v, w)| json!([v, w])).collect()
        };
        json!({ TDIGEST: { "type": self.ty.map_or("long", |t| t.name()), "values": values } })
    }

    fn of(j: &Json) -> Option<Digest> {
        let d = j.get(TDIGEST)?;
        let ty = KqlType::from_name(d.get("type")?.as_str()?)?;
        let mut out = Digest { ty: Some(ty), ..Digest::default() };
        for pair in d.get("values")?.as_array()? {
            let w = pair.get(1)?.as_u64()?;
            if ty == KqlType::Real {
                out.reals.push((pair.get(0)?.as_f64()?, w));
            } else {
                out.add_int(pair.get(0)?.as_i64()?, w);
            }
        }
        Some(out)
    }
}

// ---------- the aggregates ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `hll(x)`: the hashes of the values' text.
    Hll,
    /// `hll_merge(h)`: the union of `hll` values.
    HllMerge,
    /// `tdigest(x[, w])` of values of this type.
    TDigest(KqlType),
    /// `tdigest_merge(t)`.
    TDigestMerge,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SketchUdaf {
    kind: Kind,
    name: String,
    signature: Signature,
}

impl AggregateUDFImpl for SketchUdaf {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn accumulator(&self, _: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let digest = match self.kind {
            Kind::TDigest(t) => Digest { ty: Some(t), ..Digest::default() },
            _ => Digest::default(),
        };
        Ok(Box::new(SketchAcc { kind: self.kind, hashes: BTreeSet::new(), digest, seen: false }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[sketch]", args.name), DataType::Utf8, true))])
    }
}

#[derive(Debug)]
struct SketchAcc {
    kind: Kind,
    hashes: BTreeSet<u64>,
    digest: Digest,
    /// Whether a value (or a summary) was added: no value gives null, as the reference's
    /// summarize over no rows shows.
    seen: bool,
}

impl SketchAcc {
    fn result(&self) -> ScalarValue {
        if !self.seen {
            return s_str(None);
        }
        match self.kind {
            Kind::Hll | Kind::HllMerge => out(Some(hll_json(&self.hashes))),
            Kind::TDigest(_) | Kind::TDigestMerge => out(Some(self.digest.to_json())),
        }
    }

    /// Adds summaries (`hll`/`tdigest` values as JSON text).
    fn add_summaries(&mut self, a: &ArrayRef) {
        each_json(a, |j| match self.kind {
            Kind::Hll | Kind::HllMerge => {
                if let Some(h) = hll_of(&j) {
                    self.hashes.extend(h);
                    self.seen = true;
                }
            }
            Kind::TDigest(_) | Kind::TDigestMerge => {
                if let Some(d) = Digest::of(&j)
                    && self.digest.merge(d)
                {
                    self.seen = true;
                }
            }
        });
    }
}

impl Accumulator for SketchAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let Some(a) = values.first() else { return Ok(()) };
        match self.kind {
            Kind::Hll => {
                let Some(sa) = a.as_any().downcast_ref::<StringArray>() else { return Ok(()) };
                for i in 0..sa.len() {
                    if !sa.is_null(i) {
                        self.hashes.insert(super::hash::xxh64(sa.value(i).as_bytes(), 0));
                        self.seen = true;
                    }
                }
            }
            Kind::TDigest(t) => {
                let weights = values.get(1);
                for i in 0..a.len() {
                    if a.is_null(i) {
                        continue;
                    }
                    let w = match weights {
                        Some(w) if w.is_null(i) => continue,
                        Some(w) => match sv_i64(&ScalarValue::try_from_array(w, i)?) {
                            Some(w) if w > 0 => w as u64,
                            _ => continue,
                        },
                        None => 1,
                    };
                    let v = ScalarValue::try_from_array(a, i)?;
                    if t == KqlType::Real {
                        match sv_f64(&v) {
                            Some(f) if !f.is_nan() => self.digest.reals.push((f, w)),
                            _ => continue,
                        }
                    } else if let Some(x) = sv_i64(&v) {
                        self.digest.add_int(x, w);
                    } else {
                        continue;
                    }
                    self.seen = true;
                }
            }
            Kind::HllMerge | Kind::TDigestMerge => self.add_summaries(a),
        }
        Ok(())
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(self.result())
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.hashes.len() * 16 + self.digest.ints.len() * 40 + self.digest.reals.capacity() * 16
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![self.result()])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        // A partial state is a summary of the accumulator's own kind.
        if let Some(a) = states.first() {
            self.add_summaries(a);
        }
        Ok(())
    }
}

fn sketch_call(kind: Kind, name: &str, args: Vec<Expr>, filter: Option<Expr>) -> Result<Expr> {
    let udaf = AggregateUDF::new_from_impl(SketchUdaf {
        kind,
        name: format!("kql_{name}_{kind:?}").to_lowercase(),
        signature: Signature::any(args.len(), Volatility::Immutable),
    });
    let call = udaf.call(args);
    Ok(match filter {
        Some(f) => call.filter(f).build()?,
        None => call,
    })
}

/// `hll(x[, accuracy])` and `hll_if(x, predicate[, accuracy])`; the accuracy is accepted and
/// has nothing to tune (the summary is exact).
pub(super) fn lower_hll(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let v = lower_cast(args.remove(0), KqlType::String)?;
    let filter = if name == "hll_if" {
        let p = args.remove(0);
        if p.ty != KqlType::Bool {
            return Err(PlanError::semantic(format!("function 'hll_if': the predicate must be bool, got {}", p.ty)));
        }
        Some(p.expr)
    } else {
        None
    };
    let expr = sketch_call(Kind::Hll, name, vec![v.expr], filter)?;
    Ok(AggregateLowering { expr, ty: KqlType::Dynamic, default_name: format!("{name}_{}", suffix(&arg_names)) })
}

/// `hll_merge(h)` and `tdigest_merge(t)` (alias `merge_tdigest`), named as the official
/// parser names them (`hll_merge_h`, `merge_tdigests_t`).
pub(super) fn lower_sketch_merge(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let v = lower_cast(args.remove(0), KqlType::Dynamic)?;
    let (kind, prefix) = if name.contains("hll") { (Kind::HllMerge, "hll_merge") } else { (Kind::TDigestMerge, "merge_tdigests") };
    let expr = sketch_call(kind, name, vec![v.expr], None)?;
    Ok(AggregateLowering { expr, ty: KqlType::Dynamic, default_name: format!("{prefix}_{}", suffix(&arg_names)) })
}

/// `tdigest(x[, weight])`: numbers, datetimes and timespans.
pub(super) fn lower_tdigest(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    use KqlType::*;
    let v = args.remove(0);
    let v = match v.ty {
        Int => lower_cast(v, Long)?,
        Decimal | Dynamic => lower_cast(v, Real)?,
        Long | Real | Datetime | Timespan => v,
        t => return Err(PlanError::semantic(format!("function 'tdigest' expects a number, datetime or timespan, got {t}"))),
    };
    let ty = v.ty;
    let mut call_args = vec![v.expr];
    if let Some(w) = args.pop() {
        if !w.ty.is_numeric() {
            return Err(PlanError::semantic(format!("function 'tdigest': the weight must be a number, got {}", w.ty)));
        }
        call_args.push(lower_cast(w, Long)?.expr);
    }
    let expr = sketch_call(Kind::TDigest(ty), name, call_args, None)?;
    Ok(AggregateLowering { expr, ty: Dynamic, default_name: format!("{name}_{}", suffix(&arg_names)) })
}

// ---------- the scalar functions ----------

fn hll_merge_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let mut all = BTreeSet::new();
    for a in args {
        match json_of(a).as_ref().and_then(hll_of) {
            Some(h) => all.extend(h),
            None => return s_str(None),
        }
    }
    out(Some(hll_json(&all)))
}

fn dcount_hll_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i64(args.first().and_then(json_of).as_ref().and_then(hll_of).map(|h| h.len() as i64))
}

fn merge_tdigest_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let mut all = Digest::default();
    for a in args {
        let Some(d) = json_of(a).as_ref().and_then(Digest::of) else { return s_str(None) };
        if !all.merge(d) {
            return s_str(None);
        }
    }
    out(Some(all.to_json()))
}

fn dynamic_args(args: Vec<TypedExpr>) -> Result<Vec<Expr>> {
    args.into_iter().map(|a| Ok(lower_cast(a, KqlType::Dynamic)?.expr)).collect()
}

/// `hll_merge(h1, h2, ...)`, `dcount_hll(h)`, `merge_tdigest(t1, t2, ...)`.
pub(super) fn lower_sketch_scalar(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = dynamic_args(args)?;
    Ok(match name {
        "dcount_hll" => typed(name, KqlType::Long, dcount_hll_row, a),
        "hll_merge" => typed(name, KqlType::Dynamic, hll_merge_row, a),
        _ => typed(name, KqlType::Dynamic, merge_tdigest_row, a),
    })
}

/// A percentile read from a digest, in `ty` (dynamic: as the digest's own type).
fn percentile_value(d: &Digest, p: f64, ty: KqlType) -> ScalarValue {
    let v = d.percentile(p);
    let as_i64 = v.as_ref().and_then(|j| j.as_i64().or_else(|| j.as_f64().map(|f| f as i64)));
    match ty {
        KqlType::Real => s_f64(v.as_ref().and_then(Json::as_f64)),
        KqlType::Long | KqlType::Int => s_i64(as_i64),
        KqlType::Datetime => s_ts(as_i64),
        KqlType::Timespan => s_dur(as_i64),
        _ => out(v.map(|j| dynamic_value(d, j))),
    }
}

/// A digest's value as a dynamic element: datetimes and timespans as their text.
fn dynamic_value(d: &Digest, j: Json) -> Json {
    let as_text = |t: KqlType| super::conversion::v_to_string(&super::conversion::v_of(&match t {
        KqlType::Datetime => ScalarValue::TimestampNanosecond(j.as_i64(), None),
        _ => ScalarValue::DurationNanosecond(j.as_i64()),
    }, t));
    match d.ty {
        Some(t @ (KqlType::Datetime | KqlType::Timespan)) => Json::String(as_text(t)),
        _ => j,
    }
}

/// The arguments after the digest: `p1, p2, ...[, typeof(T)]`.
fn percentile_args(name: &str, args: &[TypedExpr]) -> Result<(Vec<f64>, Option<KqlType>)> {
    let mut ps = Vec::new();
    let mut ty = None;
    for (i, a) in args.iter().enumerate() {
        let number = super::fold_constant(&a.expr).as_ref().and_then(sv_f64);
        // The last argument may be `typeof(T)` (a typed null, or the type's name).
        if number.is_none()
            && i + 1 == args.len()
            && let Ok(t) = super::json::type_of_typeof(a, name)
        {
            ty = Some(t);
            continue;
        }
        match number {
            Some(p) if (0.0..=100.0).contains(&p) => ps.push(p),
            _ => return Err(PlanError::semantic(format!("function '{name}': the percentile must be a constant between 0 and 100"))),
        }
    }
    if ps.is_empty() {
        return Err(PlanError::semantic(format!("function '{name}' expects a digest and at least one percentile")));
    }
    Ok((ps, ty))
}

/// `percentile_tdigest(t, p[, typeof(T)])` (dynamic without the type, as documented) and
/// `percentiles_array_tdigest(t, p1, p2, ...[, typeof(T)])`.
pub(super) fn lower_percentile_tdigest(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let digest = lower_cast(args.remove(0), KqlType::Dynamic)?.expr;
    let (ps, ty) = percentile_args(name, &args)?;
    let array = name != "percentile_tdigest";
    if !array && ps.len() != 1 {
        return Err(PlanError::semantic("function 'percentile_tdigest' takes one percentile"));
    }
    let out_ty = if array { KqlType::Dynamic } else { ty.unwrap_or(KqlType::Dynamic) };
    let elem_ty = ty.unwrap_or(KqlType::Dynamic);
    let mut call = vec![digest, datafusion::logical_expr::lit(elem_ty.name()), datafusion::logical_expr::lit(array)];
    call.extend(ps.into_iter().map(datafusion::logical_expr::lit));
    Ok(typed(name, out_ty, percentile_tdigest_row, call))
}

fn percentile_tdigest_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let ty = args.get(1).and_then(super::udf::sv_str).and_then(KqlType::from_name).unwrap_or(KqlType::Dynamic);
    let array = matches!(args.get(2), Some(ScalarValue::Boolean(Some(true))));
    let digest = args.first().and_then(json_of).as_ref().and_then(Digest::of);
    let ps: Vec<f64> = args.iter().skip(3).filter_map(sv_f64).collect();
    let Some(d) = digest else {
        return if array || ty == KqlType::Dynamic { s_str(None) } else { percentile_value(&Digest::default(), 0.0, ty) };
    };
    if !array {
        return percentile_value(&d, ps.first().copied().unwrap_or(50.0), ty);
    }
    let items: Vec<Json> = ps
        .iter()
        .map(|p| match d.percentile(*p) {
            Some(j) if ty == KqlType::Real => j.as_f64().and_then(serde_json::Number::from_f64).map_or(Json::Null, Json::Number),
            Some(j) => dynamic_value(&d, j),
            None => Json::Null,
        })
        .collect();
    out(Some(Json::Array(items)))
}

fn rank_tdigest_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(d) = args.first().and_then(json_of).as_ref().and_then(Digest::of) else { return s_f64(None) };
    let Some(v) = args.get(1).and_then(|v| sv_f64(v).or_else(|| sv_i64(v).map(|x| x as f64))) else { return s_f64(None) };
    s_f64(Some(d.rank(v) as f64))
}

/// `rank_tdigest(t, v)`: the weight of the digest's values at or below `v` (for an unweighted
/// digest, how many values are at most `v`).
pub(super) fn lower_rank_tdigest(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let digest = lower_cast(args.remove(0), KqlType::Dynamic)?.expr;
    let v = args.remove(0);
    if !(v.ty.is_numeric() || matches!(v.ty, KqlType::Datetime | KqlType::Timespan)) {
        return Err(PlanError::semantic(format!("function 'rank_tdigest' expects a number, datetime or timespan, got {}", v.ty)));
    }
    // Real, as the official parser types it.
    Ok(typed(name, KqlType::Real, rank_tdigest_row, vec![digest, v.expr]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_percentiles_and_ranks_are_nearest_rank() {
        let mut d = Digest { ty: Some(KqlType::Long), ..Digest::default() };
        for v in 1..=1000 {
            d.add_int(v, 1);
        }
        assert_eq!(d.rank(685.0), 685);
        assert_eq!(d.percentile(50.0), Some(Json::from(500)));
        assert_eq!(d.percentile(100.0), Some(Json::from(1000)));
        let back = Digest::of(&d.to_json());
        assert_eq!(back, Some(d));
    }
}

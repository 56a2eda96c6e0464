//! `evaluate` plugins whose output columns come from the data: `bag_unpack` (one column per
//! distinct slot of a column's property bags) and `pivot` (one column per distinct value of a
//! column). With an output schema (`: (...)`) the columns are the declared ones; without one
//! the binder first runs a probe of the plugin's input (through [`Catalog::probe`], as the
//! request's caller, behind the same barriers: the probe is the input as bound here) that
//! finds them, as Kusto does. Either way the plugin is then lowered onto ordinary operators.
//!
//! A row-level-security policy may use neither without an output schema: what a policy
//! returns must not depend on data it hides, and a policy's own read of its table is not behind
//! its barrier.
//!
//! [`Catalog::probe`]: crate::catalog::Catalog::probe

use std::collections::HashSet;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::record_batch::RecordBatch;
use kustodian_parser::ast::{self, BinaryOp, ExprKind, LiteralKind, OperatorKind, Span};

use super::grouped::{ident, named};
use super::make_series::{bin, call, lit, pipe};
use super::{Binder, Binding, Rel, Scope};
use crate::error::Result;
use crate::types::KqlType;

const INPUT: &str = "__kql_pv_input";
const BAG: &str = "__kqlev_bag";
const KEY: &str = "__kqlev_key";
const TYPE: &str = "__kqlev_type";
const TYPES: &str = "__kqlev_types";
const VALUE: &str = "__kqlev_value";
const ROW: &str = "__kqlev_row";
const FIRST: &str = "__kqlev_first";

/// The most columns a probe may add: past it the plugin's input is not what it is meant for.
const MAX_PROBED_COLUMNS: usize = 10_000;

/// How `bag_unpack` treats a slot named like a column of its input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Conflict {
    Error,
    ReplaceSource,
    KeepSource,
}

/// The conversion of a dynamic value to a column of type `ty` (none for dynamic).
fn convert(ty: KqlType, e: ast::Expr, span: Span) -> ast::Expr {
    let f = match ty {
        KqlType::Dynamic => return e,
        KqlType::String => "tostring",
        KqlType::Long => "tolong",
        KqlType::Int => "toint",
        KqlType::Real => "toreal",
        KqlType::Bool => "tobool",
        KqlType::Datetime => "todatetime",
        KqlType::Timespan => "totimespan",
        KqlType::Guid => "toguid",
        KqlType::Decimal => "todecimal",
    };
    call(f, vec![e], span)
}

fn string_lit(s: &str, span: Span) -> ast::Expr {
    lit(LiteralKind::String(s.to_string()), span)
}

fn index(e: ast::Expr, key: &str, span: Span) -> ast::Expr {
    ast::Expr::new(ExprKind::Index { expr: Box::new(e), index: Box::new(string_lit(key, span)) }, span)
}

/// The strings of column `i` of a probe's result (nulls skipped).
fn strings(batches: &[RecordBatch], i: usize) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column(i);
        if let Some(a) = col.as_string_opt::<i32>() {
            out.extend((0..a.len()).filter(|&r| a.is_valid(r)).map(|r| a.value(r).to_string()));
        } else if let Some(a) = col.as_string_view_opt() {
            out.extend((0..a.len()).filter(|&r| a.is_valid(r)).map(|r| a.value(r).to_string()));
        }
    }
    out
}

impl<'a> Binder<'a> {
    /// Runs `rel` (part of this request, bound behind its barriers) to learn what the plan of
    /// `plugin` needs of the data.
    fn probe(&mut self, plugin: &str, rel: Rel, span: Span) -> Result<Vec<RecordBatch>> {
        if !self.policy_stack.is_empty() {
            return Err(self.unsupported(
                format!("evaluate {plugin} without an output schema in a row_level_security policy (its columns would come from the data)"),
                span,
            ));
        }
        if self.validate_permissions {
            // Authorized, not run: no data is read, so the probe finds nothing.
            return Ok(Vec::new());
        }
        let planned = self.planned(rel, None, false)?;
        self.catalog.probe(&planned).map_err(|e| e.with_span(span))
    }

    /// The argument of a plugin given by position `pos` or by name `name`.
    fn plugin_arg<'e>(raw: &'e [ast::Arg], pos: usize, name: &str) -> Option<&'e ast::Expr> {
        raw.iter()
            .find_map(|a| match a {
                ast::Arg::Named { name: n, value } if n.name.eq_ignore_ascii_case(name) => Some(value),
                _ => None,
            })
            .or_else(|| raw.iter().filter(|a| matches!(a, ast::Arg::Positional(_))).nth(pos).map(ast::Arg::expr))
    }

    fn const_string_arg(&mut self, plugin: &str, what: &str, e: &ast::Expr, scope: &Scope) -> Result<String> {
        let v = self.bind_scalar(e, None, scope)?;
        super::scalar::const_string(&v).ok_or_else(|| self.semantic(format!("{plugin}: {what} must be a constant string"), e.span))
    }

    /// `bag_unpack(column [, prefix] [, columnsConflict] [, ignoredProperties]) [: schema]`.
    pub(crate) fn plan_bag_unpack(&mut self, rel: Rel, raw: &[ast::Arg], schema: Option<&ast::Schema>, scope: &Scope, span: Span) -> Result<Rel> {
        const P: &str = "bag_unpack";
        for a in raw {
            if let ast::Arg::Named { name, .. } = a
                && !["column", "outputcolumnprefix", "columnsconflict", "ignoredproperties"].contains(&name.name.to_ascii_lowercase().as_str())
            {
                return Err(self.semantic(format!("{P}: unknown argument '{}'", name.name), name.span));
            }
        }
        let column = match Self::plugin_arg(raw, 0, "column") {
            Some(e) => match &e.kind {
                ExprKind::Ident(i) => i.name.clone(),
                _ => return Err(self.semantic(format!("{P}: expected the name of a dynamic column"), e.span)),
            },
            None => return Err(self.semantic(format!("{P} expects a column to unpack"), span)),
        };
        match rel.schema.get(&column) {
            Some(c) if c.ty == KqlType::Dynamic => {}
            Some(c) => return Err(self.semantic(format!("{P}: column '{column}' is {}, not dynamic", c.ty), span)),
            None => return Err(self.semantic(format!("{P}: the input has no column '{column}'"), span)),
        }
        let prefix = match Self::plugin_arg(raw, 1, "OutputColumnPrefix") {
            Some(e) => self.const_string_arg(P, "OutputColumnPrefix", e, scope)?,
            None => String::new(),
        };
        let conflict = match Self::plugin_arg(raw, 2, "columnsConflict") {
            Some(e) => match self.const_string_arg(P, "columnsConflict", e, scope)?.as_str() {
                "error" => Conflict::Error,
                "replace_source" => Conflict::ReplaceSource,
                "keep_source" => Conflict::KeepSource,
                other => {
                    return Err(self.semantic(
                        format!("{P}: columnsConflict must be 'error', 'replace_source' or 'keep_source', not '{other}'"),
                        e.span,
                    ));
                }
            },
            None => Conflict::Error,
        };
        let ignored: HashSet<String> = match Self::plugin_arg(raw, 3, "ignoredProperties") {
            Some(e) => {
                let v = self.bind_scalar(e, None, scope)?;
                let names = (v.ty == KqlType::Dynamic)
                    .then(|| super::scalar::const_string(&v))
                    .flatten()
                    .and_then(|t| serde_json::from_str::<Vec<String>>(&t).ok());
                names.ok_or_else(|| self.semantic(format!("{P}: ignoredProperties must be a constant dynamic array of strings"), e.span))?.into_iter().collect()
            }
            None => HashSet::new(),
        };

        // The slots to unpack, in order, each with its column type.
        let slots: Vec<(String, KqlType)> = match schema {
            Some(s) => {
                let mut out = Vec::new();
                for c in &s.columns {
                    let ty = KqlType::from_name(&c.ty.name).ok_or_else(|| self.semantic(format!("unknown type '{}'", c.ty.name), c.ty.span))?;
                    let slot = c.name.name.strip_prefix(prefix.as_str()).unwrap_or(&c.name.name).to_string();
                    out.push((slot, ty));
                }
                out
            }
            None => {
                // Per distinct slot, the set of its values' types (nulls ignored).
                let q = pipe(ident(INPUT, span), OperatorKind::Project(vec![named(Some(BAG), ident(&column, span), span)]), span);
                // Only property bags have slots (nulls, arrays and scalars have none).
                let bags = bin(BinaryOp::Eq, call("gettype", vec![ident(BAG, span)], span), string_lit("dictionary", span), span);
                let q = pipe(q, OperatorKind::Where(bags), span);
                let q = pipe(q, OperatorKind::Extend(vec![named(Some(KEY), call("bag_keys", vec![ident(BAG, span)], span), span)]), span);
                let item = ast::MvExpandItem { expr: named(None, ident(KEY, span), span), to_type: Some(ast::Ident::new("string", span)), span };
                let q = pipe(q, OperatorKind::MvExpand(ast::MvExpand { params: Vec::new(), items: vec![item], limit: None }), span);
                let value = ast::Expr::new(ExprKind::Index { expr: Box::new(ident(BAG, span)), index: Box::new(ident(KEY, span)) }, span);
                let q = pipe(q, OperatorKind::Extend(vec![named(Some(TYPE), call("gettype", vec![value], span), span)]), span);
                let typed = bin(BinaryOp::NotEq, ident(TYPE, span), string_lit("null", span), span);
                let aggregates = vec![named(Some(TYPES), call("make_set_if", vec![ident(TYPE, span), typed], span), span)];
                let by = vec![named(None, ident(KEY, span), span)];
                let q = pipe(q, OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates, by }), span);
                let probe = self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(rel.clone())))?;
                let batches = self.probe(P, probe, span)?;
                let keys = strings(&batches, 0);
                let types = strings(&batches, 1);
                let mut slots: Vec<(String, KqlType)> = keys
                    .into_iter()
                    .zip(types)
                    .map(|(k, t)| {
                        let set: Vec<String> = serde_json::from_str(&t).unwrap_or_default();
                        (k, slot_type(&set))
                    })
                    .filter(|(k, _)| !ignored.contains(k))
                    .collect();
                slots.sort_by(|a, b| a.0.cmp(&b.0));
                slots
            }
        };
        if slots.len() > MAX_PROBED_COLUMNS {
            return Err(self.semantic(format!("{P}: the bags have {} distinct slots, more than the {MAX_PROBED_COLUMNS} columns allowed", slots.len()), span));
        }

        // The input's columns other than the bag: first, unless a slot takes their name.
        let inputs: Vec<String> = rel.schema.columns.iter().map(|c| c.name.clone()).filter(|c| *c != column).collect();
        let mut out: Vec<ast::NamedExpr> = Vec::new();
        let mut slot_names = HashSet::new();
        for (slot, ty) in &slots {
            let name = format!("{prefix}{slot}");
            if name.is_empty() {
                return Err(self.semantic(format!("{P}: a bag has an empty slot name, which cannot name a column"), span));
            }
            if !slot_names.insert(name.clone()) {
                return Err(self.semantic(format!("{P}: column '{name}' is declared twice"), span));
            }
            let value = if inputs.contains(&name) && schema.is_none() {
                match conflict {
                    Conflict::Error => {
                        return Err(self.semantic(
                            format!("{P}: the slot '{slot}' would make a second column '{name}' (columnsConflict='replace_source' or 'keep_source' resolves it)"),
                            span,
                        ));
                    }
                    Conflict::ReplaceSource => convert(*ty, index(ident(BAG, span), slot, span), span),
                    Conflict::KeepSource => ident(&name, span),
                }
            } else {
                convert(*ty, index(ident(BAG, span), slot, span), span)
            };
            out.push(named(Some(&name), value, span));
        }
        let keep_inputs = match schema {
            Some(s) => s.wildcard,
            None => true,
        };
        let mut columns: Vec<ast::NamedExpr> = Vec::new();
        if keep_inputs {
            columns.extend(inputs.iter().filter(|c| !slot_names.contains(*c)).map(|c| named(None, ident(c, span), span)));
        }
        columns.extend(out);
        if columns.is_empty() && self.validate_permissions {
            // Authorized, not run (the probe read nothing): the plan is never executed.
            return Ok(rel);
        }
        if columns.is_empty() {
            return Err(self.semantic(format!("{P}: the bags have no slots and the input no other column: the result would have no columns"), span));
        }
        let q = pipe(ident(INPUT, span), OperatorKind::Extend(vec![named(Some(BAG), ident(&column, span), span)]), span);
        let q = pipe(q, OperatorKind::Project(columns), span);
        self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(rel)))
    }

    /// `pivot(column [, aggregation(column)] [, group columns...]) [: schema]`.
    pub(crate) fn plan_pivot(&mut self, rel: Rel, raw: &[ast::Arg], schema: Option<&ast::Schema>, scope: &Scope, span: Span) -> Result<Rel> {
        const P: &str = "pivot";
        let args: Vec<&ast::Expr> = raw
            .iter()
            .map(|a| match a {
                ast::Arg::Positional(e) => Ok(e),
                ast::Arg::Named { name, .. } => Err(self.semantic(format!("{P}: unknown argument '{}'", name.name), name.span)),
            })
            .collect::<Result<_>>()?;
        let Some(first) = args.first() else {
            return Err(self.semantic(format!("{P} expects the column to pivot"), span));
        };
        let ExprKind::Ident(pivot) = &first.kind else {
            return Err(self.semantic(format!("{P}: expected the name of the column to pivot"), first.span));
        };
        let pivot = pivot.name.clone();
        if rel.schema.get(&pivot).is_none() {
            return Err(self.semantic(format!("{P}: the input has no column '{pivot}'"), first.span));
        }
        // The aggregation: count() by default, else one of the documented functions of one
        // column (or none), computed per pivot value with its `if` form.
        let (agg, agg_arg, rest) = match args.get(1).map(|e| &e.kind) {
            Some(ExprKind::Call { name, args: a }) => {
                let f = name.name.to_ascii_lowercase();
                let f = if f == "any" { "take_any".to_string() } else { f };
                const AGGS: &[&str] =
                    &["min", "max", "take_any", "sum", "dcount", "avg", "stdev", "variance", "make_list", "make_bag", "make_set", "count"];
                if !AGGS.contains(&f.as_str()) {
                    return Err(self.semantic(format!("{P}: the aggregation must be one of {}, not '{}'", AGGS.join(", "), name.name), name.span));
                }
                let arg = match (f.as_str(), a.as_slice()) {
                    ("count", []) => None,
                    (_, [x]) => Some(x.expr().clone()),
                    _ => return Err(self.semantic(format!("{P}: {}() takes one column here", name.name), name.span)),
                };
                (f, arg, &args[2..])
            }
            _ => ("count".to_string(), None, &args[1..]),
        };
        let aggregated = agg_arg.as_ref().and_then(|e| match &e.kind {
            ExprKind::Ident(i) => Some(i.name.clone()),
            _ => None,
        });
        let by: Vec<String> = if rest.is_empty() {
            rel.schema.columns.iter().map(|c| c.name.clone()).filter(|c| *c != pivot && Some(c) != aggregated.as_ref()).collect()
        } else {
            rest.iter()
                .map(|e| match &e.kind {
                    ExprKind::Ident(i) => Ok(i.name.clone()),
                    _ => Err(self.semantic(format!("{P}: expected a column name"), e.span)),
                })
                .collect::<Result<_>>()?
        };

        // The pivot values that name columns, as strings, in the order the data first has them.
        let values: Vec<String> = match schema {
            Some(s) => s.columns.iter().map(|c| c.name.name.clone()).filter(|c| !by.contains(c)).collect(),
            None => {
                let q = pipe(
                    ident(INPUT, span),
                    OperatorKind::Serialize(vec![named(Some(ROW), call("row_number", Vec::new(), span), span)]),
                    span,
                );
                let aggregates = vec![named(Some(FIRST), call("min", vec![ident(ROW, span)], span), span)];
                let key = vec![named(Some(VALUE), call("tostring", vec![ident(&pivot, span)], span), span)];
                let q = pipe(q, OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates, by: key }), span);
                let q = pipe(q, OperatorKind::Sort { params: Vec::new(), by: vec![ast::SortKey { expr: ident(FIRST, span), desc: Some(false), nulls_first: None, span }] }, span);
                let q = pipe(q, OperatorKind::Project(vec![named(None, ident(VALUE, span), span)]), span);
                let probe = self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(rel.clone())))?;
                let batches = self.probe(P, probe, span)?;
                strings(&batches, 0)
            }
        };
        if values.len() > MAX_PROBED_COLUMNS {
            return Err(self.semantic(format!("{P}: '{pivot}' has {} distinct values, more than the {MAX_PROBED_COLUMNS} columns allowed", values.len()), span));
        }
        let mut aggregates = Vec::new();
        for v in &values {
            if by.contains(v) {
                return Err(self.semantic(format!("{P}: the value '{v}' of '{pivot}' names a grouping column too"), span));
            }
            let cond = bin(BinaryOp::Eq, call("tostring", vec![ident(&pivot, span)], span), string_lit(v, span), span);
            let f = match agg.as_str() {
                "count" => call("countif", vec![cond], span),
                "take_any" => call("take_anyif", vec![agg_arg.clone().unwrap_or_else(|| ident(&pivot, span)), cond], span),
                "make_list" | "make_bag" | "make_set" => call(&format!("{agg}_if"), vec![agg_arg.clone().unwrap_or_else(|| ident(&pivot, span)), cond], span),
                other => call(&format!("{other}if"), vec![agg_arg.clone().unwrap_or_else(|| ident(&pivot, span)), cond], span),
            };
            aggregates.push(named(Some(v), f, span));
        }
        let group = by.iter().map(|c| named(None, ident(c, span), span)).collect();
        let mut q = pipe(ident(INPUT, span), OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates, by: group }), span);
        if let Some(s) = schema {
            // The declared types.
            let cols = s
                .columns
                .iter()
                .map(|c| {
                    let ty = KqlType::from_name(&c.ty.name).ok_or_else(|| self.semantic(format!("unknown type '{}'", c.ty.name), c.ty.span))?;
                    Ok(named(Some(&c.name.name), convert(ty, ident(&c.name.name, span), span), span))
                })
                .collect::<Result<Vec<_>>>()?;
            for c in &s.columns {
                if !by.contains(&c.name.name) && !values.contains(&c.name.name) {
                    return Err(self.semantic(format!("{P}: the output schema's column '{}' is not in the output", c.name.name), c.span));
                }
            }
            q = pipe(q, OperatorKind::Project(cols), span);
        }
        self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(rel)))
    }
}

/// A slot's column type from the types its non-null values have: that type when they all
/// agree, dynamic when they differ (or all were null). Whole numbers are long.
fn slot_type(types: &[String]) -> KqlType {
    let mut seen: Vec<KqlType> = types
        .iter()
        .map(|t| match t.as_str() {
            "int" | "long" => KqlType::Long,
            "real" => KqlType::Real,
            "string" => KqlType::String,
            "bool" => KqlType::Bool,
            "datetime" => KqlType::Datetime,
            "timespan" => KqlType::Timespan,
            "guid" => KqlType::Guid,
            "decimal" => KqlType::Decimal,
            _ => KqlType::Dynamic,
        })
        .collect();
    seen.sort_by_key(|t| t.name());
    seen.dedup();
    match seen.as_slice() {
        [one] => *one,
        _ => KqlType::Dynamic,
    }
}

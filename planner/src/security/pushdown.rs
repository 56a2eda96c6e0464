//! Moving *total* user predicates into a security barrier.
//!
//! The barrier stops every user predicate at the policy's output, because a predicate that can
//! fail (`100 / x`, a failed cast, a regex) would run on hidden rows and leak them through its
//! error. Most selective predicates cannot fail, though: comparing a column with a literal of
//! its type, `in` a list of literals, null tests, and `and`/`or`/`not` of those. Evaluating one
//! of these on a hidden row can neither fail nor produce output (the policy still removes the
//! row), so it may run inside the barrier, where DataFusion pushes it down to the scan next to
//! the policy's own filter. Without this, `T | where Region == "r3"` over a policy that joins a
//! mapping table would join every row before filtering.
//!
//! The rule runs after DataFusion's `PushDownFilter` in the optimizer pass: that rule brings
//! the user's filter down to the barrier (through projections and aliases), this one moves the
//! total conjuncts inside, and [`sink_into_policies`] then pushes them further down within the
//! policy plan.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Filter, LogicalPlan, Operator};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use std::sync::Arc;

use crate::security::barrier::SecurityBarrier;
use crate::security::provenance::is_comparison;

/// Optimizer rule: `Filter(p1 AND p2, Barrier(X))` becomes `Filter(p2, Barrier(Filter(p1, X)))`
/// for the conjuncts `p1` that are total (see [`is_total`]).
#[derive(Debug, Default)]
pub struct PushTotalFiltersIntoBarrier;

impl OptimizerRule for PushTotalFiltersIntoBarrier {
    fn name(&self) -> &str {
        "push_total_filters_into_barrier"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Filter(filter) = &plan else {
            return Ok(Transformed::no(plan));
        };
        // `Filter(Barrier)`, or `Filter(Projection(Barrier))` when the projection only selects
        // columns (as projection pruning leaves it): the predicate's columns are the barrier's.
        if let LogicalPlan::Projection(projection) = filter.input.as_ref()
            && projection.expr.iter().all(|e| matches!(e, Expr::Column(_)))
            && let Some(inner) = into_barrier(&filter.predicate, &projection.input)?
        {
            let moved = LogicalPlan::Projection(datafusion::logical_expr::Projection::try_new(projection.expr.clone(), Arc::new(inner))?);
            return Ok(Transformed::yes(moved));
        }
        match into_barrier(&filter.predicate, &filter.input)? {
            Some(p) => Ok(Transformed::yes(p)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// After the (single) optimizer pass over a plan with policies: pushes the predicates the
/// barrier rule moved inside barriers further into the policies' plans (below their
/// projections, into union branches and join inputs) with DataFusion's `PushDownFilter` alone.
/// A second full optimizer pass did the same, and cost as much as the rest of the overhead of
/// a simple policy (every rule walks the plan and re-derives schemas). The barrier still
/// blocks `PushDownFilter`, so nothing from above it moves in here.
pub fn sink_into_policies(plan: LogicalPlan, config: &dyn OptimizerConfig) -> DfResult<LogicalPlan> {
    use datafusion::optimizer::push_down_filter::PushDownFilter;
    crate::optimize::optimize_with(plan, &[Arc::new(PushDownFilter::new())], config, |_, _| {})
}

/// `Filter(predicate, input)` with the total conjuncts of `predicate` moved inside `input`, if
/// `input` is a security barrier and some conjunct is total; `None` otherwise.
fn into_barrier(predicate: &Expr, input: &Arc<LogicalPlan>) -> DfResult<Option<LogicalPlan>> {
    let LogicalPlan::Extension(ext) = input.as_ref() else {
        return Ok(None);
    };
    let Some(barrier) = SecurityBarrier::of(ext.node.as_ref()) else {
        return Ok(None);
    };
    let schema = input.schema();
    let (total, rest): (Vec<&Expr>, Vec<&Expr>) = split_conjunction(predicate).into_iter().partition(|e| is_total(e, schema));
    let Some(inner_predicate) = conjunction(total.into_iter().cloned()) else {
        return Ok(None);
    };
    // The barrier's schema is its input's, so the predicate's columns resolve unchanged.
    // When the policy ends in a filter, the user's predicate joins it *after* the policy's
    // own: the order a user writing the filter by hand would get, and the policy's predicate
    // is usually the selective one (DataFusion evaluates later conjuncts only on the rows
    // earlier ones keep, when few do).
    let inner = match &barrier.input {
        LogicalPlan::Filter(policy) if policy.input.schema() == barrier.input.schema() => LogicalPlan::Filter(Filter::try_new(
            policy.predicate.clone().and(inner_predicate),
            Arc::clone(&policy.input),
        )?),
        other => LogicalPlan::Filter(Filter::try_new(inner_predicate, Arc::new(other.clone()))?),
    };
    let wrapped = SecurityBarrier::wrap(barrier.table.clone(), inner);
    Ok(Some(match conjunction(rest.into_iter().cloned()) {
        Some(p) => LogicalPlan::Filter(Filter::try_new(p, Arc::new(wrapped))?),
        None => wrapped,
    }))
}

/// Whether evaluating `e` on any row of `schema` is certain not to fail. Deliberately small:
/// columns and literals of plain scalar types, comparisons between two of them of the same
/// type, `in` lists of literals, null tests, boolean connectives, and lossless numeric casts.
/// No function call, arithmetic, string matching or other cast is total here.
pub fn is_total(e: &Expr, schema: &DFSchema) -> bool {
    match e {
        Expr::Column(_) | Expr::Literal(..) => e.get_type(schema).is_ok_and(|t| plain(&t)),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => is_total(left, schema) && is_total(right, schema),
            op if is_comparison(op) => {
                is_total(left, schema)
                    && is_total(right, schema)
                    && matches!((left.get_type(schema), right.get_type(schema)), (Ok(a), Ok(b)) if same_type(&a, &b))
            }
            _ => false,
        },
        Expr::Not(x) | Expr::IsNull(x) | Expr::IsNotNull(x) | Expr::IsTrue(x) | Expr::IsFalse(x)
        | Expr::IsNotTrue(x) | Expr::IsNotFalse(x) | Expr::IsUnknown(x) | Expr::IsNotUnknown(x) => {
            is_total(x, schema)
        }
        Expr::InList(list) => {
            let Ok(t) = list.expr.get_type(schema) else { return false };
            is_total(&list.expr, schema)
                && list.list.iter().all(|v| {
                    matches!(v, Expr::Literal(..)) && v.get_type(schema).is_ok_and(|vt| same_type(&t, &vt))
                })
        }
        Expr::Between(b) => {
            let Ok(t) = b.expr.get_type(schema) else { return false };
            [&b.expr, &b.low, &b.high]
                .iter()
                .all(|x| is_total(x, schema) && x.get_type(schema).is_ok_and(|xt| same_type(&t, &xt)))
        }
        Expr::Cast(c) => {
            is_total(&c.expr, schema) && c.expr.get_type(schema).is_ok_and(|from| lossless(&from, c.field.data_type()))
        }
        _ => false,
    }
}

/// Scalar types whose comparison kernels cannot fail.
fn plain(t: &DataType) -> bool {
    t.is_primitive() || matches!(t, DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null)
}

fn same_type(a: &DataType, b: &DataType) -> bool {
    a == b || matches!((a, b), (DataType::Null, _) | (_, DataType::Null))
}

/// Casts that cannot fail: integer widening and integers or floats to `Float64`.
fn lossless(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    matches!(
        (from, to),
        (Int8 | Int16 | Int32, Int64)
            | (Int8 | Int16, Int32)
            | (Int8 | Int16 | Int32 | Int64 | Float32 | UInt8 | UInt16 | UInt32, Float64)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::{cast, col, lit};
    use datafusion::prelude::{in_list, try_cast};

    use super::*;

    fn schema() -> DFSchema {
        DFSchema::try_from(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("i", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
        ]))
        .unwrap()
    }

    #[test]
    fn total_predicates() {
        let s = schema();
        for e in [
            col("a").eq(lit(3i64)),
            col("s").eq(lit("r3")).and(col("a").gt(lit(1i64)).or(col("s").is_null())),
            in_list(col("s"), vec![lit("x"), lit("y")], true),
            cast(col("i"), DataType::Int64).lt_eq(col("a")),
            col("f").between(lit(1.0), lit(2.0)),
            Expr::Not(Box::new(col("s").is_not_null())),
        ] {
            assert!(is_total(&e, &s), "{e}");
        }
    }

    #[test]
    fn fallible_or_unknown_predicates_stay_above() {
        let s = schema();
        for e in [
            (lit(100i64) / col("a")).gt(lit(1i64)),
            (col("a") + lit(1i64)).eq(lit(3i64)),
            cast(col("s"), DataType::Int64).eq(lit(1i64)),
            try_cast(col("s"), DataType::Int64).eq(lit(1i64)),
            col("s").like(lit("%x")),
            cast(col("a"), DataType::Int32).eq(col("i")),
            in_list(col("s"), vec![col("s")], false),
            datafusion::functions::expr_fn::upper(col("s")).eq(lit("X")),
            col("s").eq(lit(1i64)),
        ] {
            assert!(!is_total(&e, &s), "{e}");
        }
    }
}

//! KQL scalar operators, scalar functions and aggregates, lowered to DataFusion expressions
//! with Kusto's semantics (null on bad input, case-insensitive operators, term matching).

use datafusion::logical_expr::Expr;

use crate::error::Result;
use crate::types::KqlType;

/// A DataFusion expression with the KQL type of its result.
#[derive(Debug, Clone)]
pub struct TypedExpr {
    pub expr: Expr,
    pub ty: KqlType,
}

impl TypedExpr {
    pub fn new(expr: Expr, ty: KqlType) -> Self {
        TypedExpr { expr, ty }
    }
}

/// Per-request constants the functions need (e.g. `now()` is one instant for the whole request).
#[derive(Debug, Clone)]
pub struct FunctionContext {
    /// `now()` for this request, nanoseconds since the Unix epoch (UTC).
    now_nanos: i64,
    /// Whether `now_nanos` was set by the query (`set query_now`) rather than the clock.
    now_fixed: bool,
    /// Whether a function read the request's clock: such a plan holds this request's instant
    /// and must not be reused for another request (the runtime's plan cache asks).
    clock_read: std::cell::Cell<bool>,
}

impl FunctionContext {
    /// The context of a request that started at `now_nanos` (by the clock).
    pub fn new(now_nanos: i64) -> Self {
        FunctionContext { now_nanos, now_fixed: false, clock_read: std::cell::Cell::new(false) }
    }

    /// Fixes `now()` to an instant the query chose (`set query_now = ...`).
    pub fn fix_now(&mut self, now_nanos: i64) {
        self.now_nanos = now_nanos;
        self.now_fixed = true;
    }

    /// `now()` for this request, recording a read of the clock.
    pub fn now(&self) -> i64 {
        if !self.now_fixed {
            self.clock_read.set(true);
        }
        self.now_nanos
    }

    /// Whether a function read the request's clock (not an instant the query fixed).
    pub fn clock_read(&self) -> bool {
        self.clock_read.get()
    }

    /// Records that `other` (a policy's own context) read the request's clock.
    pub fn absorb(&self, other: &FunctionContext) {
        if other.clock_read() {
            self.clock_read.set(true);
        }
    }
}

mod aggregate;
mod args;
mod array;
mod bag;
mod base64;
mod conversion;
mod datetime;
mod dynamic_schema;
mod geo;
mod graph;
mod hash;
mod ip;
mod json;
mod logic;
mod math;
mod operators;
mod parsers;
mod random;
mod regex;
mod registry;
mod schema_merge;
mod series;
mod sketches;
mod string;
pub mod terms;
mod udf;
mod units;
mod url;
mod weighted_percentile;

#[cfg(test)]
mod tests;

pub use aggregate::AggregateLowering;
pub use array::{mv_expand_call, mv_expand_type};
pub(crate) use array::lower_array_sort_many;
pub(crate) use bag::{estimate_data_size_call, pack_all_call};
pub(crate) use schema_merge::schema_merge_call;
pub(crate) use series::{lower_multi, multi_column, series_axis, series_fill};
pub use conversion::{lower_cast, lower_parse_json};
pub use json::lower_index;
/// The operator [`lower_binary`] lowers: the parser's, as the query wrote it.
pub use kustodian_parser::ast::BinaryOp;
pub use operators::{lower_between, lower_binary, lower_has_any, lower_in_list, lower_negate, null_as_false};

use crate::error::PlanError;

/// The first non-null argument, as the `CASE` DataFusion's `coalesce` stands for: its
/// `coalesce` cannot be evaluated, only simplified into this, which would keep every plan
/// holding one from being lowered directly (`crate::direct`).
pub(crate) fn coalesce(mut args: Vec<Expr>) -> Expr {
    let Some(last) = args.pop() else { return Expr::Literal(datafusion::common::ScalarValue::Null, None) };
    if args.is_empty() {
        return last;
    }
    let when_then = args.into_iter().map(|a| (Box::new(Expr::IsNotNull(Box::new(a.clone()))), Box::new(a))).collect();
    Expr::Case(datafusion::logical_expr::expr::Case::new(None, when_then, Some(Box::new(last))))
}

/// Scalar function call by KQL name (case-sensitive, as Kusto): the function's entry in the
/// [`registry`] checks the argument count and lowers the call. Anything not implemented is
/// `PlanError::Unsupported("function 'name'")`.
pub fn lower_scalar_call(name: &str, args: Vec<TypedExpr>, ctx: &FunctionContext) -> Result<TypedExpr> {
    if let Some(f) = registry::scalar(name) {
        f.arity.check(name, args.len())?;
        return (f.lower)(name, args, ctx);
    }
    if is_aggregate(name) {
        return Err(PlanError::semantic(format!("aggregate function '{name}' is only allowed in summarize")));
    }
    if series::multi_column(name).is_some() {
        return Err(PlanError::semantic(format!(
            "function '{name}' gives several columns: use it on its own in extend or project (`extend (a, b, ...) = {name}(...)`)"
        )));
    }
    Err(PlanError::unsupported(format!("function '{name}'")))
}

/// Whether `name` is a KQL aggregate function Kustodian implements.
pub fn is_aggregate(name: &str) -> bool {
    registry::aggregate(name).is_some()
}

/// Whether the aggregate may produce several columns (use [`lower_aggregate_columns`]).
pub fn is_multi_column_aggregate(name: &str) -> bool {
    registry::aggregate(name).is_some_and(|a| matches!(a.lower, registry::AggregateForm::Columns(_)))
}

/// Lowers a single-column aggregate call (a multi-column aggregate must yield one column).
pub fn lower_aggregate_call(name: &str, args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let Some(f) = registry::aggregate(name) else { return Err(PlanError::unsupported(format!("function '{name}'"))) };
    f.arity.check(name, args.len())?;
    match f.lower {
        registry::AggregateForm::Single(lower) => lower(name, args, arg_names),
        registry::AggregateForm::Columns(lower) => {
            let mut cols = lower(name, args, arg_names)?;
            match (cols.pop(), cols.is_empty()) {
                (Some(one), true) => Ok(one),
                _ => Err(PlanError::semantic(format!("function '{name}' yields several columns here"))),
            }
        }
    }
}

/// Lowers an aggregate call to its columns: several for `percentiles(x, p1, p2..)`,
/// `take_any(a, b..)`, `any(a, b..)`, `arg_max(by, c1, c2..)`, `arg_min(..)`, one for the
/// others. `*` must already be expanded by the caller into the column list (with their names
/// in `arg_names`).
pub fn lower_aggregate_columns(name: &str, args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<Vec<AggregateLowering>> {
    let Some(f) = registry::aggregate(name) else { return Err(PlanError::unsupported(format!("function '{name}'"))) };
    f.arity.check(name, args.len())?;
    match f.lower {
        registry::AggregateForm::Single(lower) => Ok(vec![lower(name, args, arg_names)?]),
        registry::AggregateForm::Columns(lower) => lower(name, args, arg_names),
    }
}

/// Every function name of the KQL reference (scalar, aggregate and plugin), as the official
/// parser (Kusto.Language's `GlobalState.Default`) lists them, one per line.
const KUSTO_BUILTINS: &str = include_str!("kusto_builtins.txt");

/// Names the binder gives a meaning of its own (tabular functions, principal functions).
const BINDER_BUILTINS: &[&str] = &[
    "table", "database", "cluster", "materialize", "materialized_view", "external_table", "view", "toscalar", "assert",
    "current_principal", "current_principal_details", "current_principal_is_member_of", "current_database",
    "current_cluster_endpoint",
];

/// [`KUSTO_BUILTINS`] as a set, built once.
static KUSTO_BUILTIN_SET: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| KUSTO_BUILTINS.lines().collect());

/// Whether `name` is a built-in function of KQL (implemented here or not): a stored function
/// may not take such a name, and a call of it always means the built-in, so that no function
/// defined later changes what a query, and above all a row-level security policy, computes.
pub fn is_builtin_function(name: &str) -> bool {
    BINDER_BUILTINS.contains(&name)
        || KUSTO_BUILTIN_SET.contains(name)
        || registry::scalar(name).is_some()
        || registry::aggregate(name).is_some()
}

// Literal parsing and formatting shared with the binder (datetime/guid/decimal literals,
// dynamic literal values).
pub(crate) use conversion::{
    MAX_DATETIME, MIN_DATETIME, datetime_out_of_range, format_datetime_iso, format_real, format_timespan_c, parse_datetime, parse_decimal, parse_guid,
};

/// The value of `e` when it reads no column (a literal, or an expression of literals such as a
/// function parameter bound to a constant and converted to the parameter's type): evaluated
/// once, on one empty row. `None` for anything that reads a column or a subquery, or fails.
pub(crate) fn fold_constant(e: &Expr) -> Option<datafusion::common::ScalarValue> {
    use datafusion::arrow::array::RecordBatchOptions;
    use datafusion::arrow::datatypes::Schema;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::common::DFSchema;
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::execution::context::ExecutionProps;
    use datafusion::logical_expr::ColumnarValue;
    if let Expr::Literal(v, _) = e {
        return Some(v.clone());
    }
    let mut reads = false;
    e.apply(|n| {
        if matches!(n, Expr::Column(_) | Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) | Expr::OuterReferenceColumn(..) | Expr::AggregateFunction(_) | Expr::WindowFunction(_) | Expr::Placeholder(_)) {
            reads = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok()?;
    if reads {
        return None;
    }
    let ctx = datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext::default();
    let phys = datafusion::physical_expr::create_physical_expr(e, &DFSchema::empty(), &ExecutionProps::new(), &ctx).ok()?;
    let batch = RecordBatch::try_new_with_options(std::sync::Arc::new(Schema::empty()), vec![], &RecordBatchOptions::new().with_row_count(Some(1))).ok()?;
    match phys.evaluate(&batch).ok()? {
        ColumnarValue::Scalar(v) => Some(v),
        ColumnarValue::Array(a) => datafusion::common::ScalarValue::try_from_array(&a, 0).ok(),
    }
}

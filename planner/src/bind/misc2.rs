//! Smaller binder features: `pack_all()` (a bag of the row's columns) and `range` with bounds
//! that are not plan-time constants (`toscalar(...)` subqueries).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue, UnnestOptions};
use datafusion::logical_expr::{Expr as DfExpr, LogicalPlanBuilder, cast, lit, when};
use kustodian_parser::ast;

use super::{Binder, Rel, Scope};
use crate::error::Result;
use crate::functions::TypedExpr;
use crate::types::{KqlColumn, KqlSchema, KqlType};

/// The most rows `range` produces (as for constant bounds).
const MAX_RANGE_ROWS: f64 = 100_000_000.0;

impl<'a> Binder<'a> {
    /// `pack_all([ignore_null_empty])`: a property bag of every column of the row.
    pub(crate) fn bind_pack_all(&mut self, args: &[ast::Arg], e: &ast::Expr, row: Option<&Rel>, scope: &Scope) -> Result<TypedExpr> {
        let skip_empty = match args {
            [] => false,
            [a] => {
                let v = self.bind_scalar(a.expr(), row, scope)?;
                match super::scalar::const_value(&v) {
                    Some(ScalarValue::Boolean(Some(b))) => b,
                    _ => return Err(self.semantic("pack_all(): ignore_null_empty must be a constant bool", a.expr().span)),
                }
            }
            _ => return Err(self.semantic("pack_all() takes at most one argument", e.span)),
        };
        let mut cols = Vec::new();
        if let Some(rel) = row {
            for c in &rel.schema.columns {
                if c.name.starts_with("__kql") {
                    continue;
                }
                cols.push((c.name.clone(), rel.col(&c.name)?));
            }
        }
        crate::functions::pack_all_call(cols, skip_empty)
    }

    /// `range` over long bounds that are only known when the query runs (scalar subqueries):
    /// the series is generated and unnested at run time. `None` when the bounds are not longs,
    /// datetimes with a timespan step, or timespans.
    /// More than 100,000,000 rows, or a zero step, yield no rows.
    pub(crate) fn bind_range_runtime(&mut self, name: &ast::Ident, from: &TypedExpr, to: &TypedExpr, step: &TypedExpr) -> Result<Option<Rel>> {
        let int = |t: KqlType| matches!(t, KqlType::Long | KqlType::Int);
        // Datetimes and timespans run as their nanoseconds.
        let ty = match (from.ty, to.ty, step.ty) {
            (f, t, s) if int(f) && int(t) && int(s) => KqlType::Long,
            (KqlType::Datetime, KqlType::Datetime, KqlType::Timespan) => KqlType::Datetime,
            (KqlType::Timespan, KqlType::Timespan, KqlType::Timespan) => KqlType::Timespan,
            _ => return Ok(None),
        };
        let f = cast(from.expr.clone(), DataType::Int64);
        let t = cast(to.expr.clone(), DataType::Int64);
        let s = cast(step.expr.clone(), DataType::Int64);
        let fl = |e: &DfExpr| cast(e.clone(), DataType::Float64);
        let count = (fl(&t) - fl(&f)) / fl(&s);
        let too_many = s.clone().eq(lit(0i64)).or(count.gt(lit(MAX_RANGE_ROWS - 1.0)));
        let stop = when(too_many, lit(ScalarValue::Int64(None))).otherwise(t)?;
        let series = datafusion::functions_nested::expr_fn::gen_series(f, stop, s).alias("__kql_range");
        let plan = LogicalPlanBuilder::empty(true)
            .project(vec![series])?
            .unnest_column_with_options(Column::new_unqualified("__kql_range"), UnnestOptions::new().with_preserve_nulls(false))?
            .build()?;
        let mut out = DfExpr::Column(Column::new_unqualified("__kql_range"));
        if ty != KqlType::Long {
            out = cast(out, ty.arrow_type());
        }
        let plan = LogicalPlanBuilder::from(plan).project(vec![out.alias(name.name.clone())])?.build()?;
        Ok(Some(Rel::new(plan, KqlSchema::new(vec![KqlColumn::new(name.name.clone(), ty)]))))
    }
}

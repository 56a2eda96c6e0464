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
    pub now_nanos: i64,
}

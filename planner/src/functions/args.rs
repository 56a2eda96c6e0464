//! Argument coercions shared by the lowerings: an argument brought to the type a function
//! takes (with Kusto's errors for a type it does not take), and the row-function call of a
//! given result type.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;

use super::TypedExpr;
use super::conversion::lower_cast;
use super::udf::{RowFn, row_call, sv_i64, sv_str};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// The call of row function `f` named `name`, of KQL result type `ty`.
pub(super) fn typed(name: &str, ty: KqlType, f: RowFn, args: Vec<Expr>) -> TypedExpr {
    TypedExpr::new(row_call(name, ty.arrow_type(), f, args), ty)
}

/// An argument converted to `ty` (null where the conversion fails).
pub(super) fn to(a: TypedExpr, ty: KqlType) -> Result<Expr> {
    Ok(lower_cast(a, ty)?.expr)
}

/// Every argument converted to `ty`.
pub(super) fn all_to(args: Vec<TypedExpr>, ty: KqlType) -> Result<Vec<Expr>> {
    args.into_iter().map(|a| to(a, ty)).collect()
}

/// An argument of a number type, bool or dynamic, as a long; other types are an error.
pub(super) fn integer(a: TypedExpr, f: &str) -> Result<Expr> {
    if !(matches!(a.ty, KqlType::Int | KqlType::Long | KqlType::Real | KqlType::Decimal | KqlType::Bool | KqlType::Dynamic)) {
        return Err(PlanError::semantic(format!("function '{f}' expects an integer argument, got {}", a.ty)));
    }
    to(a, KqlType::Long)
}

/// Every argument as by [`integer`].
pub(super) fn integers(args: Vec<TypedExpr>, f: &str) -> Result<Vec<Expr>> {
    args.into_iter().map(|a| integer(a, f)).collect()
}

/// A numeric or dynamic argument as a real; other types are an error.
pub(super) fn real(a: TypedExpr, f: &str) -> Result<Expr> {
    if !(a.ty.is_numeric() || a.ty == KqlType::Dynamic) {
        return Err(PlanError::semantic(format!("function '{f}' expects a numeric argument, got {}", a.ty)));
    }
    to(a, KqlType::Real)
}

/// A dynamic argument as it is; other types are an error.
pub(super) fn dynamic_arg(a: TypedExpr, f: &str) -> Result<Expr> {
    if a.ty != KqlType::Dynamic {
        return Err(PlanError::semantic(format!("function '{f}' expects a dynamic argument, got {}", a.ty)));
    }
    Ok(a.expr)
}

/// A numeric or dynamic argument as a long; other types are an error.
pub(super) fn long_arg(a: TypedExpr, fname: &str) -> Result<Expr> {
    if !(a.ty.is_numeric() || a.ty == KqlType::Dynamic) {
        return Err(PlanError::semantic(format!("function '{fname}' expects a numeric argument, got {}", a.ty)));
    }
    Ok(lower_cast(a, KqlType::Long)?.expr)
}

/// In a row function: argument `i` as a string, if it is one.
pub(super) fn arg_str(a: &[ScalarValue], i: usize) -> Option<&str> {
    a.get(i).and_then(sv_str)
}

/// In a row function: argument `i` as a long, if it is an integer.
pub(super) fn arg_i64(a: &[ScalarValue], i: usize) -> Option<i64> {
    a.get(i).and_then(sv_i64)
}

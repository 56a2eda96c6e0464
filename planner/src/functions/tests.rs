//! Expression-evaluation tests over in-memory batches: every lowered expression is projected
//! over a small batch with DataFusion, and its Arrow type is checked against its KQL type.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, DurationNanosecondArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Expr, lit};
use datafusion::prelude::SessionContext;

use super::*;
use crate::types::KqlType;

const H: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * H;
// 2017-10-15T23:00:00Z, a Sunday
const T0: i64 = 1_508_108_400_000_000_000;

fn batch() -> RecordBatch {
    let cols: Vec<(&str, KqlType, ArrayRef)> = vec![
        ("i", KqlType::Long, Arc::new(Int64Array::from(vec![Some(7), Some(-7), None, Some(0), Some(i64::MIN)]))),
        ("n", KqlType::Int, Arc::new(Int32Array::from(vec![Some(2), Some(3), None, Some(0), Some(-1)]))),
        ("r", KqlType::Real, Arc::new(Float64Array::from(vec![Some(1.5), Some(0.0), None, Some(-2.5), Some(3.0)]))),
        (
            "s",
            KqlType::String,
            Arc::new(StringArray::from(vec![Some("North America"), Some(""), None, Some("foo-bar"), Some("ABC")])),
        ),
        (
            "d",
            KqlType::Datetime,
            Arc::new(TimestampNanosecondArray::from(vec![Some(T0), Some(0), None, Some(T0 + 90 * 60_000_000_000), Some(-DAY)])),
        ),
        ("t", KqlType::Timespan, Arc::new(DurationNanosecondArray::from(vec![Some(H), Some(-H), None, Some(0), Some(DAY)]))),
        (
            "j",
            KqlType::Dynamic,
            Arc::new(StringArray::from(vec![
                Some(r#"{"a":1,"b":[1,2],"c":"x"}"#),
                Some("[1,2,3]"),
                None,
                Some(r#""str""#),
                Some("5"),
            ])),
        ),
        ("b", KqlType::Bool, Arc::new(BooleanArray::from(vec![Some(true), Some(false), None, Some(true), Some(false)]))),
    ];
    let schema = Schema::new(cols.iter().map(|(n, t, _)| t.field(n)).collect::<Vec<Field>>());
    RecordBatch::try_new(Arc::new(schema), cols.into_iter().map(|(_, _, a)| a).collect()).unwrap()
}

fn c(name: &str) -> TypedExpr {
    let ty = match name {
        "i" => KqlType::Long,
        "n" => KqlType::Int,
        "r" => KqlType::Real,
        "s" => KqlType::String,
        "d" => KqlType::Datetime,
        "t" => KqlType::Timespan,
        "j" => KqlType::Dynamic,
        "b" => KqlType::Bool,
        _ => panic!("no column {name}"),
    };
    TypedExpr::new(Expr::Column(Column::from_name(name)), ty)
}

fn l<T: datafusion::logical_expr::Literal>(v: T, ty: KqlType) -> TypedExpr {
    TypedExpr::new(lit(v), ty)
}
fn ls(s: &str) -> TypedExpr {
    l(s, KqlType::String)
}
fn ll(x: i64) -> TypedExpr {
    l(x, KqlType::Long)
}
fn lr(x: f64) -> TypedExpr {
    l(x, KqlType::Real)
}
fn lts(ns: i64) -> TypedExpr {
    TypedExpr::new(lit(ScalarValue::DurationNanosecond(Some(ns))), KqlType::Timespan)
}
fn ldt(ns: i64) -> TypedExpr {
    TypedExpr::new(lit(ScalarValue::TimestampNanosecond(Some(ns), None)), KqlType::Datetime)
}
fn ldyn(j: &str) -> TypedExpr {
    l(j, KqlType::Dynamic)
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Evaluates `e` over the test batch; checks the Arrow type matches the KQL type.
fn eval(e: TypedExpr) -> Vec<ScalarValue> {
    run(async move {
        let ctx = SessionContext::new();
        let df = ctx.read_batch(batch()).unwrap();
        let df = df.select(vec![e.expr.alias("out")]).unwrap();
        let batches = df.collect().await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            assert_eq!(b.schema().field(0).data_type(), &e.ty.arrow_type(), "arrow type vs KQL type {}", e.ty);
            let a = b.column(0);
            for i in 0..a.len() {
                out.push(ScalarValue::try_from_array(a, i).unwrap());
            }
        }
        out
    })
}

fn eval0(e: TypedExpr) -> ScalarValue {
    eval(e).into_iter().next().unwrap()
}

fn call(name: &str, args: Vec<TypedExpr>) -> TypedExpr {
    lower_scalar_call(name, args, &FunctionContext::new(T0)).unwrap()
}

fn bin(op: BinaryOp, a: TypedExpr, b: TypedExpr) -> TypedExpr {
    lower_binary(op, a, b).unwrap()
}

fn longs(v: &[Option<i64>]) -> Vec<ScalarValue> {
    v.iter().map(|x| ScalarValue::Int64(*x)).collect()
}
fn bools(v: &[Option<bool>]) -> Vec<ScalarValue> {
    v.iter().map(|x| ScalarValue::Boolean(*x)).collect()
}
fn strs(v: &[&str]) -> Vec<ScalarValue> {
    v.iter().map(|x| ScalarValue::Utf8(Some(x.to_string()))).collect()
}
fn s(x: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(x.to_string()))
}
fn sn() -> ScalarValue {
    ScalarValue::Utf8(None)
}

// ---------------- arithmetic ----------------

#[test]
fn integer_division_and_modulo_by_zero_are_null() {
    let e = bin(BinaryOp::Div, ll(7), c("n"));
    assert_eq!(e.ty, KqlType::Long);
    assert_eq!(eval(e), longs(&[Some(3), Some(2), None, None, Some(-7)]));
    // Kusto's modulo is never negative: -7 % 3 is 2.
    assert_eq!(eval(bin(BinaryOp::Mod, c("i"), c("n"))), longs(&[Some(1), Some(2), None, None, Some(0)]));
    // i64::MIN / -1 overflows: null, not an error
    assert_eq!(eval(bin(BinaryOp::Div, c("i"), ll(-1)))[4], ScalarValue::Int64(None));
}

#[test]
fn arithmetic_types_and_overflow() {
    let e = bin(BinaryOp::Add, c("n"), c("n"));
    assert_eq!(e.ty, KqlType::Long);
    assert_eq!(eval(e)[0], ScalarValue::Int64(Some(4)));
    let e = bin(BinaryOp::Mul, c("i"), lr(1.0));
    assert_eq!(e.ty, KqlType::Real);
    // overflow wraps, never errors
    let e = bin(BinaryOp::Sub, c("i"), ll(1));
    assert_eq!(eval(e)[4], ScalarValue::Int64(Some(i64::MAX)));
    let e = bin(BinaryOp::Mul, c("i"), c("i"));
    assert_eq!(eval(e).len(), 5);
    let e = bin(BinaryOp::Div, lr(1.0), c("r"));
    let v = eval(e);
    assert_eq!(v[1], ScalarValue::Float64(Some(f64::INFINITY)));
    let e = bin(BinaryOp::Mod, c("r"), lr(0.0));
    assert!(matches!(eval0(e), ScalarValue::Float64(Some(x)) if x.is_nan()));
    assert_eq!(eval0(lower_negate(c("n")).unwrap()), ScalarValue::Int32(Some(-2)));
    assert_eq!(eval(lower_negate(c("i")).unwrap())[4], ScalarValue::Int64(Some(i64::MIN)));
    assert!(lower_negate(c("s")).is_err());
    assert!(lower_binary(BinaryOp::Add, c("s"), c("s")).is_err());
}

#[test]
fn decimal_arithmetic() {
    let a = lower_cast(lr(1.5), KqlType::Decimal).unwrap();
    let b = lower_cast(ll(2), KqlType::Decimal).unwrap();
    let e = bin(BinaryOp::Mul, a.clone(), b.clone());
    assert_eq!(e.ty, KqlType::Decimal);
    assert_eq!(eval0(call("tostring", vec![e])), s("3"));
    let z = lower_cast(ll(0), KqlType::Decimal).unwrap();
    assert!(eval0(bin(BinaryOp::Div, a.clone(), z)).is_null());
    assert_eq!(eval0(call("tostring", vec![bin(BinaryOp::Div, a, b)])), s("0.75"));
}

#[test]
fn temporal_arithmetic() {
    let e = bin(BinaryOp::Sub, c("d"), ldt(0));
    assert_eq!(e.ty, KqlType::Timespan);
    assert_eq!(eval(e)[1], ScalarValue::DurationNanosecond(Some(0)));
    let e = bin(BinaryOp::Add, c("d"), c("t"));
    assert_eq!(e.ty, KqlType::Datetime);
    assert_eq!(eval(e)[0], ScalarValue::TimestampNanosecond(Some(T0 + H), None));
    let e = bin(BinaryOp::Div, c("t"), lts(H));
    assert_eq!(e.ty, KqlType::Real);
    assert_eq!(eval(e)[4], ScalarValue::Float64(Some(24.0)));
    let e = bin(BinaryOp::Mul, c("t"), lr(1.5));
    assert_eq!(eval0(e), ScalarValue::DurationNanosecond(Some(H + H / 2)));
    let e = bin(BinaryOp::Mul, ll(2), c("t"));
    assert_eq!(eval0(e), ScalarValue::DurationNanosecond(Some(2 * H)));
    let e = bin(BinaryOp::Div, c("t"), ll(0));
    assert!(eval0(e).is_null());
    assert!(lower_binary(BinaryOp::Add, c("d"), c("d")).is_err());
    assert!(lower_binary(BinaryOp::Mul, c("t"), c("t")).is_err());
    assert_eq!(eval0(lower_negate(c("t")).unwrap()), ScalarValue::DurationNanosecond(Some(-H)));
}

// ---------------- comparisons ----------------

#[test]
fn equality_null_semantics() {
    // null == 7 is false; null != 7 is true
    assert_eq!(eval(bin(BinaryOp::Eq, c("i"), ll(7))), bools(&[Some(true), Some(false), Some(false), Some(false), Some(false)]));
    assert_eq!(eval(bin(BinaryOp::NotEq, c("i"), ll(7)))[2], ScalarValue::Boolean(Some(true)));
    // null == null is null
    assert_eq!(eval(bin(BinaryOp::Eq, c("i"), c("i")))[2], ScalarValue::Boolean(None));
    assert_eq!(eval(bin(BinaryOp::Eq, c("i"), c("n")))[2], ScalarValue::Boolean(None));
    // long vs real
    assert_eq!(eval(bin(BinaryOp::Eq, c("n"), lr(2.0)))[0], ScalarValue::Boolean(Some(true)));
    // `<>` is `!=`
    assert_eq!(eval(bin(BinaryOp::LtGt, c("i"), ll(7))), eval(bin(BinaryOp::NotEq, c("i"), ll(7))));
    assert_eq!(eval(bin(BinaryOp::LtGt, c("s"), ls("ABC"))), eval(bin(BinaryOp::NotEq, c("s"), ls("ABC"))));
    // `:` has a meaning only in search and find predicates
    assert!(matches!(lower_binary(BinaryOp::Colon, c("s"), ls("x")), Err(crate::error::PlanError::Unsupported { .. })));
}

#[test]
fn string_equality_treats_null_as_empty() {
    assert_eq!(eval(bin(BinaryOp::Eq, c("s"), ls(""))), bools(&[Some(false), Some(true), Some(true), Some(false), Some(false)]));
    assert_eq!(eval(bin(BinaryOp::Eq, c("s"), ls("ABC")))[4], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::Eq, c("s"), ls("abc")))[4], ScalarValue::Boolean(Some(false)));
    assert_eq!(eval(bin(BinaryOp::NotEq, c("s"), ls("ABC")))[2], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::EqTilde, c("s"), ls("abc")))[4], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::NotEqTilde, c("s"), ls("abc")))[4], ScalarValue::Boolean(Some(false)));
    assert_eq!(eval(bin(BinaryOp::Eq, ls("x"), c("s")))[2], ScalarValue::Boolean(Some(false)));
    assert_eq!(eval(bin(BinaryOp::Eq, c("s"), c("s")))[2], ScalarValue::Boolean(Some(true)));
}

#[test]
fn incompatible_comparisons_are_semantic_errors() {
    let err = lower_binary(BinaryOp::Eq, c("i"), c("s")).unwrap_err().to_string();
    assert!(err.contains("long") && err.contains("string"), "{err}");
    let err = lower_binary(BinaryOp::Lt, c("d"), c("t")).unwrap_err().to_string();
    assert!(err.contains("datetime") && err.contains("timespan"), "{err}");
    assert!(lower_binary(BinaryOp::And, c("b"), c("i")).is_err());
    assert!(lower_binary(BinaryOp::Has, c("i"), ls("a")).is_err());
}

#[test]
fn ordering_and_logic() {
    assert_eq!(eval(bin(BinaryOp::Gt, c("d"), ldt(0)))[0], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::LtEq, c("t"), lts(0)))[1], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::Lt, c("n"), lr(2.5)))[0], ScalarValue::Boolean(Some(true)));
    let e = bin(BinaryOp::And, c("b"), bin(BinaryOp::Gt, c("i"), ll(0)));
    // `and`/`or` read a null operand as false (the logical operators reference).
    assert_eq!(eval(e), bools(&[Some(true), Some(false), Some(false), Some(false), Some(false)]));
    let e = bin(BinaryOp::Or, c("b"), bin(BinaryOp::Gt, c("i"), ll(0)));
    assert_eq!(eval(e), bools(&[Some(true), Some(false), Some(false), Some(true), Some(false)]));
}

#[test]
fn dynamic_comparisons() {
    let e = bin(BinaryOp::Eq, lower_index(c("j"), ls("c")).unwrap(), ls("x"));
    assert_eq!(eval(e)[0], ScalarValue::Boolean(Some(true)));
    let e = bin(BinaryOp::Eq, c("j"), ll(5));
    assert_eq!(eval(e)[4], ScalarValue::Boolean(Some(true)));
    let e = bin(BinaryOp::Add, lower_index(c("j"), ls("a")).unwrap(), ll(1));
    assert_eq!(e.ty, KqlType::Long);
    assert_eq!(eval(e)[0], ScalarValue::Int64(Some(2)));
}

// ---------------- string operators ----------------

#[test]
fn has_family_over_columns() {
    assert_eq!(eval(bin(BinaryOp::Has, c("s"), ls("america"))), bools(&[Some(true), Some(false), Some(false), Some(false), Some(false)]));
    assert_eq!(eval(bin(BinaryOp::Has, c("s"), ls("amer")))[0], ScalarValue::Boolean(Some(false)));
    assert_eq!(eval(bin(BinaryOp::NotHas, c("s"), ls("amer")))[2], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::HasCs, c("s"), ls("north")))[0], ScalarValue::Boolean(Some(false)));
    assert_eq!(eval(bin(BinaryOp::HasPrefix, c("s"), ls("amer")))[0], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::HasSuffix, c("s"), ls("bar")))[3], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::Has, c("s"), ls("foo-bar")))[3], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::Contains, c("s"), ls("TH AM")))[0], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::ContainsCs, c("s"), ls("TH AM")))[0], ScalarValue::Boolean(Some(false)));
    assert_eq!(eval(bin(BinaryOp::NotContainsCs, c("s"), ls("x")))[2], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::StartsWith, c("s"), ls("abc")))[4], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::StartsWithCs, c("s"), ls("abc")))[4], ScalarValue::Boolean(Some(false)));
    assert_eq!(eval(bin(BinaryOp::EndsWith, c("s"), ls("RICA")))[0], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(bin(BinaryOp::NotEndsWithCs, c("s"), ls("RICA")))[0], ScalarValue::Boolean(Some(true)));
    // null string reads as empty: contains "" is true
    assert_eq!(eval(bin(BinaryOp::Contains, c("s"), ls("")))[2], ScalarValue::Boolean(Some(true)));
    // dynamic operands are compared through their text
    assert_eq!(eval(bin(BinaryOp::Has, c("j"), ls("str")))[3], ScalarValue::Boolean(Some(true)));
}

#[test]
fn matches_regex() {
    assert_eq!(eval(bin(BinaryOp::MatchesRegex, c("s"), ls("^[A-Z]+$"))), bools(&[Some(false), Some(false), Some(false), Some(false), Some(true)]));
    assert!(lower_binary(BinaryOp::MatchesRegex, c("s"), ls("(")).is_err());
    // a non-constant bad pattern yields null, not an error
    let e = bin(BinaryOp::MatchesRegex, ls("x"), call("strcat", vec![ls("("), c("s")]));
    assert!(eval0(e).is_null());
}

#[test]
fn in_lists_and_between() {
    let e = lower_in_list(c("i"), vec![ll(7), ll(0)], false, false).unwrap();
    assert_eq!(eval(e), bools(&[Some(true), Some(false), Some(false), Some(true), Some(false)]));
    let e = lower_in_list(c("i"), vec![ll(7), ll(0)], true, false).unwrap();
    assert_eq!(eval(e), bools(&[Some(false), Some(true), Some(true), Some(false), Some(true)]));
    let e = lower_in_list(c("n"), vec![lr(2.0)], false, false).unwrap();
    assert_eq!(eval(e)[0], ScalarValue::Boolean(Some(true)));
    let e = lower_in_list(c("s"), vec![ls("abc"), ls("")], false, true).unwrap();
    assert_eq!(eval(e), bools(&[Some(false), Some(true), Some(true), Some(false), Some(true)]));
    let e = lower_in_list(c("s"), vec![ls("abc")], false, false).unwrap();
    assert_eq!(eval(e)[4], ScalarValue::Boolean(Some(false)));
    assert!(lower_in_list(c("i"), vec![ls("a")], false, false).is_err());
    let e = lower_has_any(c("s"), vec![ls("america"), ls("bar")], false).unwrap();
    assert_eq!(eval(e), bools(&[Some(true), Some(false), Some(false), Some(true), Some(false)]));
    let e = lower_has_any(c("s"), vec![ls("north"), ls("america")], true).unwrap();
    assert_eq!(eval(e)[0], ScalarValue::Boolean(Some(true)));
    let e = lower_has_any(c("s"), vec![ldyn(r#"["foo","zzz"]"#)], false).unwrap();
    assert_eq!(eval(e)[3], ScalarValue::Boolean(Some(true)));
    let e = lower_between(c("i"), ll(0), ll(7), false).unwrap();
    assert_eq!(eval(e), bools(&[Some(true), Some(false), None, Some(true), Some(false)]));
    let e = lower_between(c("d"), ldt(T0), lts(DAY), false).unwrap();
    assert_eq!(eval(e)[3], ScalarValue::Boolean(Some(true)));
    let e = lower_between(c("r"), ll(0), ll(2), true).unwrap();
    assert_eq!(eval(e)[3], ScalarValue::Boolean(Some(true)));
}

// ---------------- conversions ----------------

#[test]
fn conversions_null_on_bad_input() {
    assert_eq!(eval0(call("tolong", vec![ls("12")])), ScalarValue::Int64(Some(12)));
    assert!(eval0(call("tolong", vec![ls("x")])).is_null());
    assert!(eval0(call("toint", vec![ls("99999999999")])).is_null());
    assert!(eval0(call("toint", vec![ll(99_999_999_999)])).is_null());
    assert_eq!(eval0(call("toint", vec![lr(2.9)])), ScalarValue::Int32(Some(2)));
    assert!(eval0(call("tolong", vec![lr(f64::NAN)])).is_null());
    assert!(eval0(call("tolong", vec![lr(1e30)])).is_null());
    assert_eq!(eval0(call("toreal", vec![ls("1.5")])), ScalarValue::Float64(Some(1.5)));
    assert!(eval0(call("todouble", vec![ls("abc")])).is_null());
    assert_eq!(eval0(call("tobool", vec![ls("TRUE")])), ScalarValue::Boolean(Some(true)));
    assert!(eval0(call("tobool", vec![ls("yes")])).is_null());
    assert_eq!(eval0(call("toboolean", vec![ll(0)])), ScalarValue::Boolean(Some(false)));
    assert_eq!(eval0(call("todatetime", vec![ls("2017-10-15T23:00:00Z")])), ScalarValue::TimestampNanosecond(Some(T0), None));
    assert!(eval0(call("todatetime", vec![ls("not a date")])).is_null());
    assert_eq!(eval0(call("totimespan", vec![ls("01:00:00")])), ScalarValue::DurationNanosecond(Some(H)));
    assert!(eval0(call("totimespan", vec![ls("zz")])).is_null());
    assert!(eval0(call("todecimal", vec![ls("zz")])).is_null());
    assert_eq!(eval0(call("tostring", vec![call("todecimal", vec![ls("1.50")])])), s("1.5"));
    assert!(eval0(call("toguid", vec![ls("zz")])).is_null());
    assert_eq!(
        eval0(call("toguid", vec![ls("0123456789ABCDEF0123456789abcdef")])),
        s("01234567-89ab-cdef-0123-456789abcdef")
    );
    // column conversions
    assert_eq!(eval(call("tostring", vec![c("i")])), strs(&["7", "-7", "", "0", "-9223372036854775808"]));
    assert_eq!(eval(call("tostring", vec![c("r")]))[0], s("1.5"));
    assert_eq!(eval(call("tostring", vec![c("d")]))[0], s("2017-10-15T23:00:00.0000000Z"));
    assert_eq!(eval(call("tostring", vec![c("t")]))[4], s("1.00:00:00"));
    assert_eq!(eval(call("tostring", vec![c("b")]))[0], s("true"));
    assert_eq!(eval(call("tostring", vec![c("j")]))[3], s("str"));
    assert_eq!(eval(call("tostring", vec![c("j")]))[1], s("[1,2,3]"));
    assert_eq!(eval(call("tolong", vec![c("j")]))[4], ScalarValue::Int64(Some(5)));
    assert!(eval(call("tolong", vec![c("j")]))[0].is_null());
    assert_eq!(eval(call("tolong", vec![c("b")]))[0], ScalarValue::Int64(Some(1)));
    assert_eq!(eval(call("tolong", vec![c("d")]))[1], ScalarValue::Int64(Some(621_355_968_000_000_000)));
}

#[test]
fn parse_json_and_dynamic() {
    assert_eq!(eval0(call("parse_json", vec![ls(r#"{"a": [1, 2]}"#)])), s(r#"{"a":[1,2]}"#));
    assert_eq!(eval0(call("todynamic", vec![ls("not json")])), s(r#""not json""#));
    assert!(eval0(call("parse_json", vec![ls("")])).is_null());
    assert_eq!(eval(lower_index(c("j"), ls("b")).unwrap())[0], s("[1,2]"));
    assert_eq!(eval(lower_index(c("j"), ll(-1)).unwrap())[1], s("3"));
    assert!(eval(lower_index(c("j"), ll(9)).unwrap())[1].is_null());
    assert!(eval(lower_index(c("j"), ls("a")).unwrap())[1].is_null());
    assert!(lower_index(c("i"), ll(0)).is_err());
    let idx = lower_index(lower_index(c("j"), ls("b")).unwrap(), ll(1)).unwrap();
    assert_eq!(eval(idx)[0], s("2"));
}

// ---------------- string functions ----------------

#[test]
fn string_functions() {
    assert_eq!(eval0(call("strcat", vec![ls("a"), ll(1), c("s")])), s("a1North America"));
    assert_eq!(eval(call("strcat", vec![ls("a"), c("s")]))[2], s("a"));
    assert_eq!(eval0(call("strcat_delim", vec![ls("-"), ls("a"), ll(1)])), s("a-1"));
    assert_eq!(eval(call("strlen", vec![c("s")])), longs(&[Some(13), Some(0), Some(0), Some(7), Some(3)]));
    assert_eq!(eval0(call("substring", vec![ls("ABCD"), ll(1), ll(2)])), s("BC"));
    assert_eq!(eval0(call("substring", vec![ls("ABCD"), ll(10)])), s(""));
    assert_eq!(eval0(call("substring", vec![ls("ABCD"), ll(1)])), s("BCD"));
    assert_eq!(eval0(call("tolower", vec![ls("AbC")])), s("abc"));
    assert_eq!(eval0(call("toupper", vec![ls("AbC")])), s("ABC"));
    assert_eq!(eval0(call("trim", vec![ls("--"), ls("--a--b----")])), s("a--b"));
    assert_eq!(eval0(call("trim_start", vec![ls(r"\s+"), ls("  a ")])), s("a "));
    assert_eq!(eval0(call("trim_end", vec![ls(r"\s+"), ls("  a ")])), s("  a"));
    assert_eq!(eval0(call("split", vec![ls("a,b,c"), ls(",")])), s(r#"["a","b","c"]"#));
    assert_eq!(eval0(call("split", vec![ls("a,b,c"), ls(","), ll(1)])), s(r#"["b"]"#));
    assert_eq!(eval0(call("replace_string", vec![ls("aXbX"), ls("X"), ls("-")])), s("a-b-"));
    assert_eq!(eval0(call("replace_regex", vec![ls("ab12"), ls(r"([a-z])(\d)"), ls(r"\2\1")])), s("a1b2"));
    assert_eq!(eval0(call("extract", vec![ls(r"(\d+)"), ll(1), ls("ab12cd")])), s("12"));
    assert_eq!(eval0(call("extract", vec![ls(r"(\d+)"), ll(1), ls("abcd")])), s(""));
    let e = call("extract", vec![ls(r"(\d+)"), ll(1), ls("ab12cd"), ls("long")]);
    assert_eq!(e.ty, KqlType::Long);
    assert_eq!(eval0(e), ScalarValue::Int64(Some(12)));
    assert_eq!(eval0(call("extract_all", vec![ls(r"(\d)"), ls("a1b2")])), s(r#"["1","2"]"#));
    assert_eq!(eval0(call("extract_all", vec![ls(r"(\w)(\d)"), ls("a1b2")])), s(r#"[["a","1"],["b","2"]]"#));
    assert_eq!(eval0(call("indexof", vec![ls("abcabc"), ls("c")])), ScalarValue::Int64(Some(2)));
    assert_eq!(eval0(call("indexof", vec![ls("abcabc"), ls("c"), ll(3)])), ScalarValue::Int64(Some(5)));
    assert_eq!(eval0(call("indexof", vec![ls("abc"), ls("x")])), ScalarValue::Int64(Some(-1)));
    assert_eq!(eval0(call("countof", vec![ls("aaa"), ls("aa")])), ScalarValue::Int64(Some(2)));
    assert_eq!(eval0(call("countof", vec![ls("aaa"), ls("a+"), ls("regex")])), ScalarValue::Int64(Some(1)));
    assert_eq!(eval0(call("reverse", vec![ls("abc")])), s("cba"));
    assert_eq!(eval0(call("strrep", vec![ls("ab"), ll(3), ls(",")])), s("ab,ab,ab"));
    assert!(eval0(call("strrep", vec![ls("ab"), ll(1 << 40)])).is_null());
    assert_eq!(eval(call("isempty", vec![c("s")])), bools(&[Some(false), Some(true), Some(true), Some(false), Some(false)]));
    assert_eq!(eval(call("isnotempty", vec![c("i")]))[2], ScalarValue::Boolean(Some(false)));
    assert_eq!(eval(call("isnull", vec![c("i")]))[2], ScalarValue::Boolean(Some(true)));
    assert_eq!(eval(call("isnull", vec![c("s")]))[2], ScalarValue::Boolean(Some(false)));
    assert_eq!(eval0(call("url_encode", vec![ls("a b&c")])), s("a+b%26c"));
    assert_eq!(eval0(call("url_decode", vec![ls("a+b%26c")])), s("a b&c"));
    assert_eq!(eval0(call("tohex", vec![ll(255)])), s("ff"));
    assert_eq!(eval0(call("gettype", vec![ll(1)])), s("long"));
    assert_eq!(eval(call("gettype", vec![c("j")]))[0], s("dictionary"));
    let h = eval0(call("hash", vec![ls("a")]));
    assert_eq!(h, ScalarValue::Int64(Some(0xD24E_C4F1_A98C_6E5Bu64 as i64)));
    assert_eq!(eval0(call("hash", vec![ls("a"), ll(10)])), ScalarValue::Int64(Some((0xD24E_C4F1_A98C_6E5Bu64 as i64).rem_euclid(10))));
    let g = eval0(call("new_guid", vec![]));
    assert!(matches!(g, ScalarValue::Utf8(Some(ref x)) if x.len() == 36));
}

#[test]
fn bad_regex_in_functions_is_a_semantic_error_when_constant() {
    let ctx = FunctionContext::new(0);
    assert!(lower_scalar_call("extract", vec![ls("("), ll(1), ls("x")], &ctx).is_err());
    assert!(lower_scalar_call("replace_regex", vec![ls("x"), ls("("), ls("x")], &ctx).is_err());
    assert!(lower_scalar_call("trim", vec![ls("("), ls("x")], &ctx).is_err());
    assert!(lower_scalar_call("countof", vec![ls("x"), ls("("), ls("regex")], &ctx).is_err());
}

#[test]
fn unknown_functions_are_unsupported() {
    let ctx = FunctionContext::new(0);
    for f in ["geo_polygon_buffer", "geo_line_buffer", "Strlen"] {
        let err = lower_scalar_call(f, vec![ls("x")], &ctx).unwrap_err();
        assert!(matches!(err, crate::error::PlanError::Unsupported { .. }), "{f}: {err}");
    }
    assert!(lower_scalar_call("strlen", vec![], &ctx).is_err());
}

// ---------------- math ----------------

#[test]
fn math_functions() {
    assert_eq!(eval(call("abs", vec![c("i")])), longs(&[Some(7), Some(7), None, Some(0), None]));
    assert_eq!(eval0(call("abs", vec![lr(-1.5)])), ScalarValue::Float64(Some(1.5)));
    assert_eq!(eval0(call("round", vec![lr(2.5)])), ScalarValue::Float64(Some(3.0)));
    assert_eq!(eval0(call("round", vec![lr(2.15), ll(1)])), ScalarValue::Float64(Some(2.2)));
    assert_eq!(eval0(call("round", vec![ll(3)])), ScalarValue::Int64(Some(3)));
    assert_eq!(eval0(call("ceiling", vec![lr(1.2)])), ScalarValue::Float64(Some(2.0)));
    assert_eq!(eval0(call("sqrt", vec![ll(4)])), ScalarValue::Float64(Some(2.0)));
    assert!(matches!(eval0(call("sqrt", vec![ll(-4)])), ScalarValue::Float64(Some(x)) if x.is_nan()));
    assert_eq!(eval0(call("pow", vec![ll(2), ll(10)])), ScalarValue::Float64(Some(1024.0)));
    assert_eq!(eval0(call("exp2", vec![ll(3)])), ScalarValue::Float64(Some(8.0)));
    assert_eq!(eval0(call("exp10", vec![ll(2)])), ScalarValue::Float64(Some(100.0)));
    assert_eq!(eval0(call("log10", vec![ll(100)])), ScalarValue::Float64(Some(2.0)));
    assert_eq!(eval0(call("log2", vec![ll(8)])), ScalarValue::Float64(Some(3.0)));
    assert_eq!(eval0(call("log", vec![ll(1)])), ScalarValue::Float64(Some(0.0)));
    assert_eq!(eval0(call("exp", vec![ll(0)])), ScalarValue::Float64(Some(1.0)));
    assert_eq!(eval0(call("sign", vec![ll(-3)])), ScalarValue::Float64(Some(-1.0)));
    assert!(matches!(eval0(call("pi", vec![])), ScalarValue::Float64(Some(x)) if (x - std::f64::consts::PI).abs() < 1e-12));
    assert_eq!(eval0(call("isnan", vec![bin(BinaryOp::Div, lr(0.0), lr(0.0))])), ScalarValue::Boolean(Some(true)));
    assert_eq!(eval0(call("isinf", vec![bin(BinaryOp::Div, lr(1.0), lr(0.0))])), ScalarValue::Boolean(Some(true)));
    assert_eq!(eval0(call("isfinite", vec![lr(1.0)])), ScalarValue::Boolean(Some(true)));
}

#[test]
fn bin_floor() {
    assert_eq!(eval(call("bin", vec![c("i"), ll(5)])), longs(&[Some(5), Some(-10), None, Some(0), None]));
    assert!(eval0(call("bin", vec![c("i"), ll(0)])).is_null());
    assert_eq!(eval0(call("floor", vec![lr(7.5), ll(2)])), ScalarValue::Float64(Some(6.0)));
    let e = call("bin", vec![c("d"), lts(H)]);
    assert_eq!(e.ty, KqlType::Datetime);
    assert_eq!(eval(e)[3], ScalarValue::TimestampNanosecond(Some(T0 + H), None));
    // 7-day bins align to 0001-01-01 (a Monday), as in Kusto
    let e = call("bin", vec![ldt(T0), lts(7 * DAY)]);
    assert_eq!(eval0(call("dayofweek", vec![e])), ScalarValue::DurationNanosecond(Some(DAY)));
    assert_eq!(eval0(call("bin", vec![lts(90 * 60_000_000_000), lts(H)])), ScalarValue::DurationNanosecond(Some(H)));
    assert_eq!(eval0(call("bin_at", vec![ll(7), ll(5), ll(1)])), ScalarValue::Int64(Some(6)));
    let e = call("bin_at", vec![ldt(T0 + 10), lts(DAY), ldt(T0)]);
    assert_eq!(eval0(e), ScalarValue::TimestampNanosecond(Some(T0), None));
    let ctx = FunctionContext::new(0);
    assert!(lower_scalar_call("bin", vec![c("d"), ll(1)], &ctx).is_err());
}

// ---------------- datetime ----------------

#[test]
fn datetime_functions() {
    let dt = |e: TypedExpr| eval0(call("format_datetime", vec![e, ls("yyyy-MM-dd HH:mm:ss.fffffff")]));
    assert_eq!(eval0(call("now", vec![])), ScalarValue::TimestampNanosecond(Some(T0), None));
    assert_eq!(eval0(call("now", vec![lts(H)])), ScalarValue::TimestampNanosecond(Some(T0 + H), None));
    assert_eq!(eval0(call("ago", vec![lts(H)])), ScalarValue::TimestampNanosecond(Some(T0 - H), None));
    assert_eq!(dt(call("datetime_add", vec![ls("month"), ll(1), ldt(T0)])), s("2017-11-15 23:00:00.0000000"));
    assert_eq!(dt(call("datetime_add", vec![ls("day"), ll(-1), ldt(T0)])), s("2017-10-14 23:00:00.0000000"));
    assert_eq!(dt(call("startofday", vec![ldt(T0)])), s("2017-10-15 00:00:00.0000000"));
    assert_eq!(dt(call("startofweek", vec![ldt(T0 + DAY)])), s("2017-10-15 00:00:00.0000000"));
    assert_eq!(dt(call("startofmonth", vec![ldt(T0), ll(-1)])), s("2017-09-01 00:00:00.0000000"));
    assert_eq!(dt(call("startofyear", vec![ldt(T0)])), s("2017-01-01 00:00:00.0000000"));
    assert_eq!(dt(call("endofday", vec![ldt(T0)])), s("2017-10-15 23:59:59.9999999"));
    assert_eq!(dt(call("endofweek", vec![ldt(T0)])), s("2017-10-21 23:59:59.9999999"));
    assert_eq!(dt(call("endofmonth", vec![ldt(T0)])), s("2017-10-31 23:59:59.9999999"));
    assert_eq!(dt(call("endofyear", vec![ldt(T0)])), s("2017-12-31 23:59:59.9999999"));
    assert_eq!(eval0(call("dayofweek", vec![ldt(T0 + 2 * DAY)])), ScalarValue::DurationNanosecond(Some(2 * DAY)));
    assert_eq!(eval0(call("dayofmonth", vec![ldt(T0)])), ScalarValue::Int32(Some(15)));
    assert_eq!(eval0(call("dayofyear", vec![ldt(T0)])), ScalarValue::Int32(Some(288)));
    assert_eq!(eval0(call("getyear", vec![ldt(T0)])), ScalarValue::Int32(Some(2017)));
    assert_eq!(eval0(call("getmonth", vec![ldt(T0)])), ScalarValue::Int32(Some(10)));
    assert_eq!(eval0(call("monthofyear", vec![ldt(T0)])), ScalarValue::Int32(Some(10)));
    assert_eq!(eval0(call("weekofyear", vec![ldt(T0)])), ScalarValue::Int32(Some(41)));
    assert_eq!(eval0(call("hourofday", vec![ldt(T0)])), ScalarValue::Int32(Some(23)));
    assert_eq!(eval0(call("datetime_part", vec![ls("quarter"), ldt(T0)])), ScalarValue::Int32(Some(4)));
    let d1 = call("todatetime", vec![ls("2017-10-29 00:00")]);
    let d2 = call("todatetime", vec![ls("2017-09-30 23:59")]);
    assert_eq!(eval0(call("datetime_diff", vec![ls("week"), d1.clone(), d2.clone()])), ScalarValue::Int64(Some(5)));
    assert_eq!(eval0(call("datetime_diff", vec![ls("month"), d1.clone(), d2.clone()])), ScalarValue::Int64(Some(1)));
    assert_eq!(eval0(call("datetime_diff", vec![ls("day"), d1.clone(), d2.clone()])), ScalarValue::Int64(Some(29)));
    assert_eq!(eval0(call("datetime_diff", vec![ls("year"), d1, d2])), ScalarValue::Int64(Some(0)));
    assert_eq!(eval0(call("unixtime_seconds_todatetime", vec![ll(1)])), ScalarValue::TimestampNanosecond(Some(1_000_000_000), None));
    assert_eq!(eval0(call("unixtime_milliseconds_todatetime", vec![lr(1.5)])), ScalarValue::TimestampNanosecond(Some(1_500_000), None));
    assert_eq!(eval0(call("unixtime_microseconds_todatetime", vec![ll(1)])), ScalarValue::TimestampNanosecond(Some(1_000), None));
    assert_eq!(eval0(call("unixtime_nanoseconds_todatetime", vec![ll(1)])), ScalarValue::TimestampNanosecond(Some(1), None));
    assert!(eval0(call("unixtime_seconds_todatetime", vec![ll(i64::MAX)])).is_null());
    assert_eq!(dt(call("make_datetime", vec![ll(2017), ll(10), ll(15), ll(1), ll(2), lr(3.5)])), s("2017-10-15 01:02:03.5000000"));
    assert!(eval0(call("make_datetime", vec![ll(2017), ll(13), ll(1)])).is_null());
    assert_eq!(eval0(call("make_timespan", vec![ll(1), ll(30)])), ScalarValue::DurationNanosecond(Some(H + H / 2)));
    assert_eq!(eval0(call("make_timespan", vec![ll(1), ll(0), ll(0), ll(0)])), ScalarValue::DurationNanosecond(Some(DAY)));
    assert_eq!(eval0(call("format_timespan", vec![lts(DAY + H), ls("d.hh:mm")])), s("1.01:00"));
    assert_eq!(eval0(call("format_datetime", vec![ldt(T0), ls("yyyy-q")])), s(""));
    assert!(lower_scalar_call("datetime_add", vec![ls("fortnight"), ll(1), ldt(0)], &FunctionContext::new(0)).is_err());
    // column with null and a pre-1970 value
    assert_eq!(eval(call("getyear", vec![c("d")]))[4], ScalarValue::Int32(Some(1969)));
    assert!(eval(call("getyear", vec![c("d")]))[2].is_null());
}

// ---------------- logic ----------------

#[test]
fn logic_functions() {
    let e = call("iff", vec![bin(BinaryOp::Gt, c("i"), ll(0)), ls("pos"), ls("other")]);
    assert_eq!(eval(e), strs(&["pos", "other", "other", "other", "other"]));
    let e = call("iif", vec![c("b"), ll(1), lr(2.5)]);
    assert_eq!(e.ty, KqlType::Real);
    let e = call("case", vec![bin(BinaryOp::Gt, c("i"), ll(0)), ls("pos"), bin(BinaryOp::Lt, c("i"), ll(0)), ls("neg"), ls("zero")]);
    assert_eq!(eval(e), strs(&["pos", "neg", "zero", "zero", "neg"]));
    assert_eq!(eval(call("coalesce", vec![c("i"), ll(42)]))[2], ScalarValue::Int64(Some(42)));
    assert_eq!(eval(call("coalesce", vec![c("s"), ls("dflt")])), strs(&["North America", "dflt", "dflt", "foo-bar", "ABC"]));
    assert_eq!(eval(call("not", vec![c("b")]))[0], ScalarValue::Boolean(Some(false)));
    assert_eq!(eval0(call("min_of", vec![ll(3), lr(1.5), ll(2)])), ScalarValue::Float64(Some(1.5)));
    assert_eq!(eval(call("max_of", vec![c("i"), ll(1)])), longs(&[Some(7), Some(1), Some(1), Some(1), Some(1)]));
    let ctx = FunctionContext::new(0);
    assert!(lower_scalar_call("iff", vec![c("b"), ls("a"), ll(1)], &ctx).is_err());
    assert!(lower_scalar_call("not", vec![ll(1)], &ctx).is_err());
}

// ---------------- dynamic ----------------

#[test]
fn dynamic_functions() {
    assert_eq!(eval0(call("pack", vec![ls("a"), ll(1), ls("b"), ls("x")])), s(r#"{"a":1,"b":"x"}"#));
    assert_eq!(eval0(call("bag_pack", vec![ls("d"), ldt(0)])), s(r#"{"d":"1970-01-01T00:00:00.0000000Z"}"#));
    assert_eq!(eval0(call("pack_array", vec![ll(1), ls("a"), ldyn("[2]")])), s(r#"[1,"a",[2]]"#));
    assert_eq!(eval(call("array_length", vec![c("j")])), longs(&[None, Some(3), None, None, None]));
    assert_eq!(eval(call("bag_keys", vec![c("j")]))[0], s(r#"["a","b","c"]"#));
    assert_eq!(eval0(call("array_concat", vec![ldyn("[1]"), ldyn("[2,3]")])), s("[1,2,3]"));
    assert_eq!(eval0(call("array_slice", vec![ldyn("[1,2,3,4]"), ll(1), ll(-2)])), s("[2,3]"));
    assert_eq!(eval0(call("array_slice", vec![ldyn("[1,2,3,4]"), ll(3), ll(1)])), s("[]"));
    assert_eq!(eval0(call("set_union", vec![ldyn("[1,2]"), ldyn("[2,3]")])), s("[1,2,3]"));
    assert_eq!(eval0(call("set_intersect", vec![ldyn("[1,2]"), ldyn("[2,3]")])), s("[2]"));
    assert_eq!(eval0(call("set_difference", vec![ldyn("[1,2]"), ldyn("[2,3]")])), s("[1]"));
    assert_eq!(eval0(call("set_has_element", vec![ldyn("[1,2]"), ll(2)])), ScalarValue::Boolean(Some(true)));
    assert_eq!(eval0(call("array_index_of", vec![ldyn(r#"["a","b"]"#), ls("b")])), ScalarValue::Int64(Some(1)));
    assert_eq!(eval0(call("array_index_of", vec![ldyn(r#"["a","b"]"#), ls("z")])), ScalarValue::Int64(Some(-1)));
    assert_eq!(eval0(call("array_sum", vec![ldyn("[1,2.5]")])), ScalarValue::Float64(Some(3.5)));
    assert_eq!(eval0(call("bag_has_key", vec![ldyn(r#"{"a":1}"#), ls("a")])), ScalarValue::Boolean(Some(true)));
    assert!(eval0(call("array_length", vec![ldyn("not json")])).is_null());
    let _ = sn();
}

// ---------------- aggregates ----------------

fn agg_eval(aggs: Vec<AggregateLowering>, empty: bool) -> Vec<ScalarValue> {
    run(async move {
        let ctx = SessionContext::new();
        let mut df = ctx.read_batch(batch()).unwrap();
        if empty {
            df = df.filter(lit(false)).unwrap();
        }
        let exprs: Vec<Expr> = aggs.iter().enumerate().map(|(i, a)| a.expr.clone().alias(format!("c{i}"))).collect();
        let df = df.aggregate(vec![], exprs).unwrap();
        let batches = df.collect().await.unwrap();
        let b = &batches[0];
        aggs.iter()
            .enumerate()
            .map(|(i, a)| {
                assert_eq!(b.schema().field(i).data_type(), &a.ty.arrow_type(), "{}", a.default_name);
                ScalarValue::try_from_array(b.column(i), 0).unwrap()
            })
            .collect()
    })
}

fn agg(name: &str, args: Vec<TypedExpr>, names: &[Option<&str>]) -> AggregateLowering {
    lower_aggregate_call(name, args, names.iter().map(|n| n.map(str::to_string)).collect()).unwrap()
}

#[test]
fn aggregate_names_and_types() {
    let a = agg("count", vec![], &[]);
    assert_eq!((a.default_name.as_str(), a.ty), ("count_", KqlType::Long));
    let a = agg("sum", vec![c("n")], &[Some("n")]);
    assert_eq!((a.default_name.as_str(), a.ty), ("sum_n", KqlType::Long));
    let a = agg("sum", vec![bin(BinaryOp::Add, c("i"), ll(1))], &[None]);
    assert_eq!(a.default_name, "sum_");
    assert_eq!(agg("dcount", vec![c("s")], &[Some("s")]).default_name, "dcount_s");
    assert_eq!(agg("avg", vec![c("i")], &[Some("i")]).ty, KqlType::Real);
    assert_eq!(agg("avg", vec![c("t")], &[Some("t")]).ty, KqlType::Timespan);
    assert_eq!(agg("make_list", vec![c("i")], &[Some("i")]).default_name, "list_i");
    assert_eq!(agg("make_list_if", vec![c("i"), c("b")], &[Some("i"), Some("b")]).default_name, "list_i");
    assert_eq!(agg("make_set", vec![c("i")], &[Some("i")]).default_name, "set_i");
    assert_eq!(agg("make_bag", vec![c("j")], &[Some("j")]).default_name, "bag_j");
    assert_eq!(agg("countif", vec![c("b")], &[Some("b")]).default_name, "countif_");
    assert_eq!(agg("sumif", vec![c("i"), c("b")], &[Some("i"), Some("b")]).default_name, "sumif_i");
    let p = agg("percentile", vec![c("i"), lr(99.9)], &[Some("i"), None]);
    assert_eq!((p.default_name.as_str(), p.ty), ("percentile_i_99_9", KqlType::Long));
    assert_eq!(agg("stdev", vec![c("i")], &[Some("i")]).default_name, "stdev_i");
    assert_eq!(agg("count_distinct", vec![c("s")], &[Some("s")]).default_name, "count_distinct_s");
    let cols = lower_aggregate_columns("percentiles", vec![c("r"), ll(50), lr(95.5)], vec![Some("r".into()), None, None]).unwrap();
    let names: Vec<_> = cols.iter().map(|c| c.default_name.clone()).collect();
    assert_eq!(names, vec!["percentile_r_50", "percentile_r_95_5"]);
    let cols = lower_aggregate_columns("take_any", vec![c("i")], vec![Some("i".into())]).unwrap();
    assert_eq!(cols[0].default_name, "i");
    let cols = lower_aggregate_columns("any", vec![c("i"), c("s")], vec![Some("i".into()), Some("s".into())]).unwrap();
    assert_eq!(cols[1].default_name, "any_s");
    let cols = lower_aggregate_columns("arg_max", vec![bin(BinaryOp::Add, c("i"), ll(1)), c("s")], vec![None, Some("s".into())]).unwrap();
    assert_eq!(cols.iter().map(|c| c.default_name.as_str()).collect::<Vec<_>>(), vec!["max_", "s"]);
    assert!(is_aggregate("arg_min") && is_aggregate("count") && !is_aggregate("strlen"));
    assert!(lower_aggregate_call("min", vec![c("j")], vec![Some("j".into())]).is_err());
    assert!(matches!(
        lower_aggregate_call("no_such_aggregate", vec![c("i")], vec![None]).unwrap_err(),
        crate::error::PlanError::Unsupported { .. }
    ));
}

#[test]
fn aggregate_values() {
    let v = agg_eval(
        vec![
            agg("count", vec![], &[]),
            agg("countif", vec![c("b")], &[None]),
            agg("sum", vec![c("n")], &[None]),
            agg("sumif", vec![c("n"), c("b")], &[None, None]),
            agg("avg", vec![c("n")], &[None]),
            agg("min", vec![c("s")], &[None]),
            agg("max", vec![c("d")], &[None]),
            agg("minif", vec![c("n"), c("b")], &[None, None]),
            agg("dcount", vec![c("b")], &[None]),
            agg("make_list", vec![c("n")], &[None]),
            agg("make_set", vec![c("b")], &[None]),
            agg("make_bag", vec![c("j")], &[None]),
            agg("percentile", vec![c("n"), ll(50)], &[None, None]),
            agg("stdev", vec![c("n")], &[None]),
            agg("variance", vec![c("n")], &[None]),
            agg("make_list_if", vec![c("s"), c("b")], &[None, None]),
            agg("sum", vec![c("t")], &[None]),
            agg("percentile", vec![c("d"), ll(100)], &[None, None]),
        ],
        false,
    );
    assert_eq!(v[0], ScalarValue::Int64(Some(5)));
    assert_eq!(v[1], ScalarValue::Int64(Some(2)));
    assert_eq!(v[2], ScalarValue::Int64(Some(4)));
    assert_eq!(v[3], ScalarValue::Int64(Some(2)));
    assert_eq!(v[4], ScalarValue::Float64(Some(1.0)));
    assert_eq!(v[5], s(""));
    assert_eq!(v[6], ScalarValue::TimestampNanosecond(Some(T0 + 90 * 60_000_000_000), None));
    assert_eq!(v[7], ScalarValue::Int32(Some(0)));
    assert_eq!(v[8], ScalarValue::Int64(Some(2)));
    assert_eq!(v[9], s("[2,3,0,-1]"));
    assert_eq!(v[10], s("[true,false]"));
    assert_eq!(v[11], s(r#"{"a":1,"b":[1,2],"c":"x"}"#));
    assert_eq!(v[12], ScalarValue::Int64(Some(0)));
    assert!(matches!(v[13], ScalarValue::Float64(Some(x)) if (x - 1.825_741_858_350_553_8).abs() < 1e-9));
    assert!(matches!(v[14], ScalarValue::Float64(Some(x)) if (x - 10.0 / 3.0).abs() < 1e-9));
    assert_eq!(v[15], s(r#"["North America","foo-bar"]"#));
    assert_eq!(v[16], ScalarValue::DurationNanosecond(Some(DAY)));
    assert_eq!(v[17], ScalarValue::TimestampNanosecond(Some(T0 + 90 * 60_000_000_000), None));
}

#[test]
fn aggregates_over_empty_input() {
    let v = agg_eval(
        vec![
            agg("count", vec![], &[]),
            agg("dcount", vec![c("i")], &[None]),
            agg("make_list", vec![c("i")], &[None]),
            agg("make_bag", vec![c("j")], &[None]),
            agg("avg", vec![c("i")], &[None]),
            agg("percentile", vec![c("r"), ll(50)], &[None, None]),
            agg("sum", vec![c("i")], &[None]),
            agg("sum", vec![c("r")], &[None]),
            agg("stdev", vec![c("r")], &[None]),
            agg("sumif", vec![c("t"), c("b")], &[None, None]),
        ],
        true,
    );
    assert_eq!(v[6], ScalarValue::Int64(Some(0)));
    assert_eq!(v[7], ScalarValue::Float64(Some(0.0)));
    assert_eq!(v[8], ScalarValue::Float64(Some(0.0)));
    assert_eq!(v[9], ScalarValue::DurationNanosecond(Some(0)));
    assert_eq!(v[0], ScalarValue::Int64(Some(0)));
    assert_eq!(v[1], ScalarValue::Int64(Some(0)));
    assert_eq!(v[2], s("[]"));
    assert_eq!(v[3], s("{}"));
    // The average of no value is NaN, as the summarize reference shows for no rows.
    assert!(matches!(v[4], ScalarValue::Float64(Some(f)) if f.is_nan()));
    assert!(v[5].is_null());
}

#[test]
fn arg_max_and_take_any() {
    let mut aggs = lower_aggregate_columns("arg_max", vec![c("i"), c("s"), c("r")], vec![Some("i".into()), Some("s".into()), Some("r".into())]).unwrap();
    aggs.extend(lower_aggregate_columns("arg_min", vec![c("r"), c("s")], vec![Some("r".into()), Some("s".into())]).unwrap());
    aggs.extend(lower_aggregate_columns("take_any", vec![c("n")], vec![Some("n".into())]).unwrap());
    let v = agg_eval(aggs, false);
    assert_eq!(v[0], ScalarValue::Int64(Some(7)));
    assert_eq!(v[1], s("North America"));
    assert_eq!(v[2], ScalarValue::Float64(Some(1.5)));
    assert_eq!(v[3], ScalarValue::Float64(Some(-2.5)));
    assert_eq!(v[4], s("foo-bar"));
    assert!(!v[5].is_null());
}

#[test]
fn grouped_sumif_with_no_matching_rows_is_zero() {
    let a = agg("sumif", vec![c("i"), l(false, KqlType::Bool)], &[None, None]);
    let v = run(async move {
        let ctx = SessionContext::new();
        let df = ctx.read_batch(batch()).unwrap();
        let df = df.aggregate(vec![c("b").expr], vec![a.expr.alias("x")]).unwrap();
        let mut out = Vec::new();
        for b in df.collect().await.unwrap() {
            for i in 0..b.num_rows() {
                out.push(ScalarValue::try_from_array(b.column(1), i).unwrap());
            }
        }
        out
    });
    assert_eq!(v.len(), 3);
    assert!(v.iter().all(|x| *x == ScalarValue::Int64(Some(0))), "{v:?}");
}

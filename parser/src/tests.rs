//! Unit tests: tricky lexing, precedence, statements, commands, errors, limits, printing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::ast::*;
use crate::{ParseErrorKind, parse};

/// Parses, checks the round trip, and returns the AST.
fn rt(text: &str) -> Request {
    let ast = parse(text).unwrap_or_else(|e| panic!("{text:?} failed: {e}\n{}", e.frame(text)));
    let printed = ast.to_string();
    let again =
        parse(&printed).unwrap_or_else(|e| panic!("printed {printed:?} of {text:?} failed: {e}"));
    assert_eq!(again, ast, "round trip of {text:?} via {printed:?}");
    assert_eq!(
        again.to_string(),
        printed,
        "printing is not stable for {text:?}"
    );
    ast
}

fn query(text: &str) -> Query {
    match rt(text) {
        Request::Query(q) => q,
        Request::Command(c) => panic!("expected a query, got {c:?}"),
    }
}

fn command(text: &str) -> Command {
    match rt(text) {
        Request::Command(c) => c,
        Request::Query(q) => panic!("expected a command, got {q:?}"),
    }
}

/// The last statement's expression.
fn last_expr(text: &str) -> Expr {
    let q = query(text);
    match q.statements.into_iter().last().map(|s| s.kind) {
        Some(StatementKind::Expr(e)) => e,
        other => panic!("no expression statement: {other:?}"),
    }
}

/// The operator of `T | <op>`.
fn op(text: &str) -> OperatorKind {
    match last_expr(text).kind {
        ExprKind::Pipe { op, .. } => op.kind,
        other => panic!("not a pipe: {other:?}"),
    }
}

/// The predicate of `T | where <e>`.
fn pred(e: &str) -> Expr {
    match op(&format!("T | where {e}")) {
        OperatorKind::Where(p) => p,
        other => panic!("not where: {other:?}"),
    }
}

fn err(text: &str) -> crate::ParseError {
    match parse(text) {
        Ok(ast) => panic!("{text:?} should fail, parsed as {ast}"),
        Err(e) => e,
    }
}

fn ident(e: &Expr) -> &str {
    match &e.kind {
        ExprKind::Ident(i) => &i.name,
        other => panic!("not an identifier: {other:?}"),
    }
}

fn binary(e: &Expr) -> (BinaryOp, &Expr, &Expr) {
    match &e.kind {
        ExprKind::Binary { op, left, right } => (*op, left, right),
        other => panic!("not binary: {other:?}"),
    }
}

fn lit(e: &Expr) -> &LiteralKind {
    match &e.kind {
        ExprKind::Literal(l) => &l.kind,
        other => panic!("not a literal: {other:?}"),
    }
}

fn print_values(text: &str) -> Vec<Expr> {
    match last_expr(text).kind {
        ExprKind::Print(cols) => cols.into_iter().map(|c| c.expr).collect(),
        other => panic!("not print: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Lexing
// ---------------------------------------------------------------------------------------------

#[test]
fn hyphenated_keywords_versus_subtraction() {
    assert!(matches!(op("T | project-away a, b*"), OperatorKind::ProjectAway(v) if v.len() == 2));
    let p = print_values("print a-b, a - b, extend-x");
    for e in &p[..2] {
        let (o, l, r) = binary(e);
        assert_eq!((o, ident(l), ident(r)), (BinaryOp::Sub, "a", "b"));
    }
    // `extend-x` is not a keyword: subtraction of two columns.
    assert_eq!(binary(&p[2]).0, BinaryOp::Sub);
    assert!(matches!(op("T | mv-expand x"), OperatorKind::MvExpand(_)));
    assert!(matches!(
        op("T | sample-distinct 3 of x"),
        OperatorKind::SampleDistinct { .. }
    ));
    // with spaces it is no longer the keyword
    assert!(parse("T | project - away x").is_err());
}

#[test]
fn timespans_versus_identifiers() {
    let v = print_values(
        "print 1d, d1, 1.5h, 100ms, 3days, 2minutes, 10seconds, 1tick, 5microsecond, 1nanosecond",
    );
    assert_eq!(lit(&v[0]), &LiteralKind::Timespan(ticks::DAY));
    assert_eq!(ident(&v[1]), "d1");
    assert_eq!(lit(&v[2]), &LiteralKind::Timespan(90 * ticks::MINUTE));
    assert_eq!(lit(&v[3]), &LiteralKind::Timespan(100 * ticks::MILLISECOND));
    assert_eq!(lit(&v[4]), &LiteralKind::Timespan(3 * ticks::DAY));
    assert_eq!(lit(&v[5]), &LiteralKind::Timespan(2 * ticks::MINUTE));
    assert_eq!(lit(&v[6]), &LiteralKind::Timespan(10 * ticks::SECOND));
    assert_eq!(lit(&v[7]), &LiteralKind::Timespan(1));
    assert_eq!(lit(&v[8]), &LiteralKind::Timespan(50));
    assert_eq!(lit(&v[9]), &LiteralKind::Timespan(0));
    let t = print_values(
        "print time(1.02:03:04), timespan(2), time(15 seconds), time(-0.00:00:01.5), time(12:30), timespan(null)",
    );
    assert_eq!(
        lit(&t[0]),
        &LiteralKind::Timespan(
            ticks::DAY + 2 * ticks::HOUR + 3 * ticks::MINUTE + 4 * ticks::SECOND
        )
    );
    assert_eq!(lit(&t[1]), &LiteralKind::Timespan(2 * ticks::DAY));
    assert_eq!(lit(&t[2]), &LiteralKind::Timespan(15 * ticks::SECOND));
    assert_eq!(lit(&t[3]), &LiteralKind::Timespan(-15 * ticks::SECOND / 10));
    assert_eq!(
        lit(&t[4]),
        &LiteralKind::Timespan(12 * ticks::HOUR + 30 * ticks::MINUTE)
    );
    assert_eq!(lit(&t[5]), &LiteralKind::TypedNull("timespan".into()));
    assert_eq!(
        err("print time(1 fortnight)").kind,
        ParseErrorKind::InvalidLiteral
    );
}

#[test]
fn numbers() {
    let v = print_values("print 1, 0x1F, 1.5, 1e3, 2.5E-2, 9223372036854775807");
    assert_eq!(lit(&v[0]), &LiteralKind::Long(1));
    assert_eq!(lit(&v[1]), &LiteralKind::Long(31));
    assert_eq!(lit(&v[2]), &LiteralKind::Real(1.5));
    assert_eq!(lit(&v[3]), &LiteralKind::Real(1000.0));
    assert_eq!(lit(&v[4]), &LiteralKind::Real(0.025));
    assert_eq!(lit(&v[5]), &LiteralKind::Long(i64::MAX));
    assert_eq!(
        err("print 9223372036854775808").kind,
        ParseErrorKind::InvalidLiteral
    );
    // `1..10` is 1 .. 10, not a real
    let b = pred("x between (1..10)");
    assert!(matches!(b.kind, ExprKind::Between { negated: false, .. }));
}

#[test]
fn typed_literals() {
    let v = print_values(
        "print long(null), int(3), real(nan), real(+inf), real(-inf), bool(true), decimal(1.5), long(-5), double(2), datetime(null), guid(null)",
    );
    assert_eq!(lit(&v[0]), &LiteralKind::TypedNull("long".into()));
    assert_eq!(lit(&v[1]), &LiteralKind::Int(3));
    assert!(matches!(lit(&v[2]), LiteralKind::Real(x) if x.is_nan()));
    assert_eq!(lit(&v[3]), &LiteralKind::Real(f64::INFINITY));
    assert_eq!(lit(&v[4]), &LiteralKind::Real(f64::NEG_INFINITY));
    assert_eq!(lit(&v[5]), &LiteralKind::Bool(true));
    assert_eq!(lit(&v[6]), &LiteralKind::Decimal("1.5".into()));
    assert_eq!(lit(&v[7]), &LiteralKind::Long(-5));
    assert_eq!(lit(&v[8]), &LiteralKind::Real(2.0));
    assert_eq!(lit(&v[9]), &LiteralKind::TypedNull("datetime".into()));
    assert_eq!(lit(&v[10]), &LiteralKind::TypedNull("guid".into()));
    // a call, not a literal, when the argument is no literal
    assert!(matches!(
        print_values("print long(x)")[0].kind,
        ExprKind::Call { .. }
    ));
    let d = print_values(
        "print datetime(2015-12-31 23:59:59.9), datetime( 2020-01-01 ), guid(74be27de-1e4e-49d9-b579-fe0b331d3642)",
    );
    assert_eq!(
        lit(&d[0]),
        &LiteralKind::Datetime("2015-12-31 23:59:59.9".into())
    );
    assert_eq!(lit(&d[1]), &LiteralKind::Datetime("2020-01-01".into()));
    assert_eq!(
        lit(&d[2]),
        &LiteralKind::Guid("74be27de-1e4e-49d9-b579-fe0b331d3642".into())
    );
    // `datetime` alone is an ordinary name (a type in schemas)
    query("datatable(d:datetime, t:timespan)[datetime(2020-01-01), 1h]");
}

#[test]
fn dynamic_literals() {
    let v = print_values(
        r#"print dynamic({"a": [1, -2.5, "x", true, null, {"b": -1}], 'c': datetime(2020-01-01)}), dynamic(null), dynamic(1d), dynamic([])"#,
    );
    let LiteralKind::Dynamic(DynValue::Object(entries)) = lit(&v[0]) else {
        panic!()
    };
    assert_eq!(entries[0].0, "a");
    assert_eq!(
        entries[0].1,
        DynValue::Array(vec![
            DynValue::Long(1),
            DynValue::Real(-2.5),
            DynValue::String("x".into()),
            DynValue::Bool(true),
            DynValue::Null,
            DynValue::Object(vec![("b".into(), DynValue::Long(-1))]),
        ])
    );
    assert_eq!(entries[1].1, DynValue::Datetime("2020-01-01".into()));
    assert_eq!(lit(&v[1]), &LiteralKind::Dynamic(DynValue::Null));
    assert_eq!(
        lit(&v[2]),
        &LiteralKind::Dynamic(DynValue::Timespan(ticks::DAY))
    );
    assert_eq!(lit(&v[3]), &LiteralKind::Dynamic(DynValue::Array(vec![])));
    assert_eq!(
        err("print dynamic({a: 1})").kind,
        ParseErrorKind::InvalidLiteral
    );
    assert_eq!(
        err("print dynamic([1,])").kind,
        ParseErrorKind::InvalidLiteral
    );
    assert_eq!(
        err("print dynamic([1, 2)").kind,
        ParseErrorKind::InvalidLiteral
    );
}

#[test]
fn strings() {
    let v = print_values(
        r#"print 'a\'b', "c\"d\\e\n\t\u00e9\x41", @'c:\temp', @"say ""hi""", h'secret', h@'c:\x', ```multi
line```, 'con' "cat" @'enated', ~~~tilde~~~"#,
    );
    assert_eq!(lit(&v[0]), &LiteralKind::String("a'b".into()));
    assert_eq!(
        lit(&v[1]),
        &LiteralKind::String("c\"d\\e\n\t\u{e9}A".into())
    );
    assert_eq!(lit(&v[2]), &LiteralKind::String("c:\\temp".into()));
    assert_eq!(lit(&v[3]), &LiteralKind::String("say \"hi\"".into()));
    assert_eq!(lit(&v[4]), &LiteralKind::ObfuscatedString("secret".into()));
    assert_eq!(lit(&v[5]), &LiteralKind::ObfuscatedString("c:\\x".into()));
    assert_eq!(lit(&v[6]), &LiteralKind::String("multi\nline".into()));
    assert_eq!(lit(&v[7]), &LiteralKind::String("concatenated".into()));
    assert_eq!(lit(&v[8]), &LiteralKind::String("tilde".into()));
    assert_eq!(err(r#"print "\d""#).kind, ParseErrorKind::InvalidLiteral);
    assert_eq!(err("print 'abc").kind, ParseErrorKind::InvalidToken);
    assert_eq!(err("print ```abc").kind, ParseErrorKind::InvalidToken);
}

#[test]
fn bracketed_names_and_keywords_as_names() {
    match op("T | project ['my col'], [\"x\"], count, type, kind, on, with, step") {
        OperatorKind::Project(cols) => {
            let names: Vec<&str> = cols.iter().map(|c| ident(&c.expr)).collect();
            assert_eq!(
                names,
                ["my col", "x", "count", "type", "kind", "on", "with", "step"]
            );
        }
        other => panic!("{other:?}"),
    }
    let p = pred("kind == 1 and count > 2 and ['where'] == 3");
    assert_eq!(
        rt("T | where ['where'] == 3").to_string(),
        "T | where ['where'] == 3".replace("['where']", "[\"where\"]")
    );
    assert_eq!(binary(&p).0, BinaryOp::And);
    // a reserved word needs brackets
    assert!(parse("T | project where").is_err());
    assert!(parse("T | project by").is_err());
    // printing re-quotes what needs it
    assert_eq!(
        rt("T | extend ['a b'] = 1, ['project'] = 2, x = 3").to_string(),
        "T | extend [\"a b\"] = 1, [\"project\"] = 2, x = 3"
    );
}

#[test]
fn operator_parameters_are_contextual() {
    match op("T | join kind=inner hint.strategy=broadcast (T2) on a") {
        OperatorKind::Join(j) => {
            let names: Vec<&str> = j.params.iter().map(|p| p.name.name.as_str()).collect();
            assert_eq!(names, ["kind", "hint.strategy"]);
            assert_eq!(ident(&j.params[0].value), "inner");
        }
        other => panic!("{other:?}"),
    }
    // `kind` is an ordinary column elsewhere
    match op("T | extend kind = 1") {
        OperatorKind::Extend(cols) => assert_eq!(cols[0].names[0].name, "kind"),
        other => panic!("{other:?}"),
    }
    match op("T | summarize kind = count() by kind") {
        OperatorKind::Summarize(s) => {
            assert!(s.hints.is_empty());
            assert_eq!(s.aggregates[0].names[0].name, "kind");
        }
        other => panic!("{other:?}"),
    }
    // a column called `kind` right after mv-expand prints bracketed so it stays a column
    match op("T | mv-expand ['kind'] = x") {
        OperatorKind::MvExpand(m) => assert!(m.params.is_empty()),
        other => panic!("{other:?}"),
    }
    match op("T | summarize hint.shufflekey = k hint.num_partitions = 10 count() by k") {
        OperatorKind::Summarize(s) => assert_eq!(s.hints.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn comments_are_skipped() {
    let q = query("// leading\nT // trailing\n| where x > 1 // more\n");
    assert_eq!(q.statements.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Precedence
// ---------------------------------------------------------------------------------------------

#[test]
fn precedence() {
    // or < and
    let e = pred("a or b and c");
    let (o, l, r) = binary(&e);
    assert_eq!((o, ident(l)), (BinaryOp::Or, "a"));
    assert_eq!(binary(r).0, BinaryOp::And);
    // and < comparison < additive < multiplicative < unary < postfix
    let e = pred("a + b * c > -d.e and f");
    let (o, l, _) = binary(&e);
    assert_eq!(o, BinaryOp::And);
    let (o, l, r) = binary(l);
    assert_eq!(o, BinaryOp::Gt);
    assert_eq!(binary(l).0, BinaryOp::Add);
    assert_eq!(binary(binary(l).2).0, BinaryOp::Mul);
    match &r.kind {
        ExprKind::Unary {
            op: UnaryOp::Neg,
            expr,
        } => assert!(matches!(expr.kind, ExprKind::Member { .. })),
        other => panic!("{other:?}"),
    }
    // left associativity
    let e = pred("a - b - c");
    assert_eq!(ident(binary(binary(&e).1).1), "a");
    // comparisons do not chain within a level...
    assert!(parse("T | where a == b == c").is_err());
    assert!(parse("T | where a has b has c").is_err());
    assert!(parse("T | where a < b < c").is_err());
    assert!(parse("T | where a in (1) == c").is_err());
    assert!(parse("T | where a == b in (1)").is_err());
    // ...but the three levels nest: equality/lists < string tests < relations
    let e = pred("a has b == c");
    let (o, l, _) = binary(&e);
    assert_eq!((o, binary(l).0), (BinaryOp::Eq, BinaryOp::Has));
    let e = pred("a == b < c");
    let (o, _, r) = binary(&e);
    assert_eq!((o, binary(r).0), (BinaryOp::Eq, BinaryOp::Lt));
    let e = pred("a < b has c");
    let (o, l, _) = binary(&e);
    assert_eq!((o, binary(l).0), (BinaryOp::Has, BinaryOp::Lt));
    let e = pred("a =~ b in (1)");
    assert!(matches!(&e.kind, ExprKind::In { expr, .. } if binary(expr).0 == BinaryOp::EqTilde));
    // `1 - -1`
    let v = print_values("print 1 - -1");
    assert_eq!(binary(&v[0]).0, BinaryOp::Sub);
}

#[test]
fn string_and_list_operators() {
    assert_eq!(binary(&pred("x has 'a'")).0, BinaryOp::Has);
    assert_eq!(binary(&pred("x !has_cs 'a'")).0, BinaryOp::NotHasCs);
    assert_eq!(
        binary(&pred("x !startswith_cs 'a'")).0,
        BinaryOp::NotStartsWithCs
    );
    assert_eq!(
        binary(&pred("x matches regex 'a+'")).0,
        BinaryOp::MatchesRegex
    );
    assert_eq!(binary(&pred("x =~ 'a'")).0, BinaryOp::EqTilde);
    assert_eq!(binary(&pred("x <> 'a'")).0, BinaryOp::LtGt);
    match pred("x !in (1, 2)").kind {
        ExprKind::In {
            negated: true,
            case_insensitive: false,
            list,
            ..
        } => assert_eq!(list.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        pred("x in~ ('a')").kind,
        ExprKind::In {
            negated: false,
            case_insensitive: true,
            ..
        }
    ));
    assert!(matches!(
        pred("x !in~ ('a')").kind,
        ExprKind::In {
            negated: true,
            case_insensitive: true,
            ..
        }
    ));
    match pred("x in (T | project y)").kind {
        ExprKind::In { list, .. } => assert!(matches!(list[0].kind, ExprKind::Pipe { .. })),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        pred("x has_any ('a', 'b')").kind,
        ExprKind::HasAny { .. }
    ));
    assert!(matches!(
        pred("x has_all (dynamic(['a']))").kind,
        ExprKind::HasAll { .. }
    ));
    assert!(matches!(
        pred("x !between (1 .. 2)").kind,
        ExprKind::Between { negated: true, .. }
    ));
    assert!(matches!(
        pred("* has 'x'").kind,
        ExprKind::Binary {
            op: BinaryOp::Has,
            ..
        }
    ));
}

#[test]
fn postfix_chains() {
    let v = print_values(
        "print a.b['c'][0], $left.x, database('db').T, cluster('c').database('d').T, f(x = 1, 2), hash(*)",
    );
    // a.b['c'][0] = Index(Index(Member(a, b), 'c'), 0)
    match &v[0].kind {
        ExprKind::Index { expr, index } => {
            assert_eq!(lit(index), &LiteralKind::Long(0));
            assert!(
                matches!(&expr.kind, ExprKind::Index { expr, .. } if matches!(expr.kind, ExprKind::Member { .. }))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&v[1].kind, ExprKind::Member { expr, .. } if matches!(expr.kind, ExprKind::JoinSide(JoinSide::Left)))
    );
    assert!(
        matches!(&v[2].kind, ExprKind::Member { expr, .. } if matches!(expr.kind, ExprKind::Call { .. }))
    );
    assert!(
        matches!(&v[3].kind, ExprKind::Member { expr, .. } if matches!(expr.kind, ExprKind::MemberCall { .. }))
    );
    match &v[4].kind {
        ExprKind::Call { args, .. } => {
            assert!(matches!(&args[0], Arg::Named { name, .. } if name.name == "x"));
            assert!(matches!(&args[1], Arg::Positional(_)));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&v[5].kind, ExprKind::Call { args, .. } if matches!(args[0], Arg::Positional(Expr { kind: ExprKind::Star, .. })))
    );
}

#[test]
fn pipes_nest_to_the_left() {
    let e = last_expr("T | where a | take 1");
    let ExprKind::Pipe { input, op } = e.kind else {
        panic!()
    };
    assert!(matches!(op.kind, OperatorKind::Take(_)));
    let ExprKind::Pipe { input, op } = input.kind else {
        panic!()
    };
    assert!(matches!(op.kind, OperatorKind::Where(_)));
    assert_eq!(ident(&input), "T");
}

// ---------------------------------------------------------------------------------------------
// Statements and sources
// ---------------------------------------------------------------------------------------------

#[test]
fn statements() {
    let q = query(
        "set notruncation; set query_force_row_level_security=true; declare query_parameters(a:long = 1, b:string);\n\
         let x = 1; let T2 = T | where y > x; let f = (a:long, b:string=\"x\", T:(Col:string), U:(*)) { let z = a; T | take z };\n\
         let v = view () { T }; let m = materialize(T); restrict access to (T, database('x').*, *);\n\
         alias database X = cluster('c').database('d');\n\
         T2;",
    );
    let kinds: Vec<&StatementKind> = q.statements.iter().map(|s| &s.kind).collect();
    assert!(matches!(kinds[0], StatementKind::Set { value: None, .. }));
    assert!(matches!(
        kinds[1],
        StatementKind::Set { value: Some(_), .. }
    ));
    assert!(matches!(kinds[2], StatementKind::DeclareQueryParameters(p) if p.len() == 2));
    match kinds[5] {
        StatementKind::Let {
            value:
                Expr {
                    kind: ExprKind::Lambda(l),
                    ..
                },
            ..
        } => {
            assert_eq!(l.params.len(), 4);
            assert!(
                matches!(&l.params[2].ty, ParamType::Tabular(s) if !s.wildcard && s.columns.len() == 1)
            );
            assert!(matches!(&l.params[3].ty, ParamType::Tabular(s) if s.wildcard));
            assert_eq!(l.body.len(), 2);
            assert!(!l.is_view);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        kinds[6],
        StatementKind::Let {
            value: Expr {
                kind: ExprKind::Lambda(Lambda { is_view: true, .. }),
                ..
            },
            ..
        }
    ));
    assert!(matches!(kinds[8], StatementKind::RestrictAccess(items) if items.len() == 3));
    assert!(matches!(kinds[9], StatementKind::AliasDatabase { .. }));
    assert!(matches!(kinds[10], StatementKind::Expr(_)));
    // only let statements
    assert_eq!(query("let x = 1;").statements.len(), 1);
    assert!(parse("").is_err());
    assert!(parse("T;;").is_err());
}

#[test]
fn sources() {
    assert!(
        matches!(last_expr("datatable(a:long, b:string)[1, 'x', 2, 'y',]").kind, ExprKind::Datatable { values, .. } if values.len() == 4)
    );
    assert!(matches!(last_expr("print x=1, 2").kind, ExprKind::Print(c) if c.len() == 2));
    assert!(matches!(
        last_expr("range x from 1 to 10 step 2").kind,
        ExprKind::Range { .. }
    ));
    match last_expr(
        "union kind=outer withsource=S isfuzzy=true T1, (T3 | take 1), T*, database('d').T4",
    )
    .kind
    {
        ExprKind::Union(u) => {
            assert_eq!(u.params.len(), 3);
            assert!(matches!(u.tables[2].kind, ExprKind::Wildcard(ref p) if p == "T*"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(last_expr("search in (T1, T2) \"x\"").kind, ExprKind::Search(s) if s.tables.len() == 2)
    );
    assert!(matches!(
        last_expr("find in (T) where x == 1 project a").kind,
        ExprKind::Find(_)
    ));
    assert!(matches!(
        last_expr("externaldata (a:string) ['url'] with (format='csv')").kind,
        ExprKind::Externaldata { .. }
    ));
    assert!(matches!(
        last_expr("evaluate sql_request('a')").kind,
        ExprKind::Evaluate(_)
    ));
    assert!(matches!(
        last_expr("table('T', 'all') | count").kind,
        ExprKind::Pipe { .. }
    ));
    assert!(matches!(
        last_expr("(T | take 1) | count").kind,
        ExprKind::Pipe { .. }
    ));
    // only toscalar/materialize take a bare tabular argument (fuzz finding)
    assert!(parse("union T, range (T | take 1)").is_err());
    assert!(parse("print f(T | take 1)").is_err());
    query("union T, f((T | take 1))");
    query("print toscalar(T | count), x = toscalar(print 1)");
    // The rule is about pipe-level arguments, not tables: `datatable(...)[...]`, a name and
    // `table(...)` are tables read as ordinary arguments (as in Kusto's parser).
    for bare in ["print f(print 1)", "print f(range x from 1 to 2 step 1)", "print f(union T, U)"] {
        let e = err(bare);
        assert!(e.message.contains("must be parenthesised"), "{bare}: {e}");
    }
    for fine in ["print f(datatable(a:long)[1])", "print f(T)", "print f(table('T'))", "print f(database('d').T)"] {
        query(fine);
    }
}

#[test]
fn operators() {
    match op(
        "T | summarize hint.strategy=shuffle n = count(), (a, b) = arg_max(x, y) by k, bin(ts, 1h)",
    ) {
        OperatorKind::Summarize(s) => {
            assert_eq!(s.hints.len(), 1);
            assert_eq!(s.aggregates[1].names.len(), 2);
            assert_eq!(s.by.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    match op("T | sort by a asc nulls first, b desc, c") {
        OperatorKind::Sort { by, .. } => {
            assert_eq!((by[0].desc, by[0].nulls_first), (Some(false), Some(true)));
            assert_eq!((by[1].desc, by[1].nulls_first), (Some(true), None));
            assert_eq!((by[2].desc, by[2].nulls_first), (None, None));
        }
        other => panic!("{other:?}"),
    }
    match op("T | join kind=leftouter T2 on a, $left.b == $right.c and $left.d == $right.e") {
        OperatorKind::Join(j) => assert_eq!(j.on.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        op("T | lookup kind=inner (T2) on a"),
        OperatorKind::Lookup(_)
    ));
    assert!(matches!(op("T | join kind=anti T2"), OperatorKind::Join(j) if j.on.is_empty()));
    assert!(parse("T | lookup T2").is_err());
    assert!(parse("T | scan with (step s output=some: true)").is_err());
    assert!(parse("datatable(a:long)[1 + 1]").is_err());
    assert!(
        matches!(last_expr("datatable(a:long, b:real)[-1, +2.5]").kind, ExprKind::Datatable { values, .. } if matches!(values[0].kind, ExprKind::Unary { .. }))
    );
    assert!(matches!(op("T | count as N"), OperatorKind::CountAs(n) if n.name == "N"));
    assert!(matches!(
        op("T | top 3 by x desc nulls last"),
        OperatorKind::Top { .. }
    ));
    assert!(
        matches!(op("T | distinct *"), OperatorKind::Distinct { columns, .. } if matches!(columns[0].expr.kind, ExprKind::Star))
    );
    assert!(
        matches!(op("T | project-rename a = b, c = d"), OperatorKind::ProjectRename(v) if v.len() == 2)
    );
    assert!(
        matches!(op("T | project-reorder a asc, b* granny-desc"), OperatorKind::ProjectReorder(v) if v[1].order == Some(ReorderOrder::GrannyDesc))
    );
    assert!(
        matches!(op("T | mv-apply x to typeof(long) on (summarize sum(x))"), OperatorKind::MvApply(m) if m.items[0].to_type.is_some())
    );
    assert!(
        matches!(op("T | parse kind=regex flags=i x with * \"a\" b:long \"c\" d"), OperatorKind::Parse(p) if p.pattern.len() == 5)
    );
    assert!(matches!(
        op("T | parse-kv x as (a:string) with (pair_delimiter=',')"),
        OperatorKind::ParseKv { .. }
    ));
    assert!(
        matches!(op("T | make-series x=avg(y) default=0 on Ts in range(a, b, 1h) by k"), OperatorKind::MakeSeries(m) if matches!(m.range, MakeSeriesRange::InRange { .. }))
    );
    assert!(
        matches!(op("T | render timechart with (title='x', ycolumns=a, b)"), OperatorKind::Render { with, .. } if with[1].values.len() == 2)
    );
    assert!(matches!(
        op("T | render timechart kind=stacked"),
        OperatorKind::Render { legacy: true, .. }
    ));
    assert!(
        matches!(op("T | fork a = (where x) (take 1)"), OperatorKind::Fork(b) if b[0].name.is_some() && b[1].name.is_none())
    );
    assert!(
        matches!(op("T | facet by a, b with (take 1)"), OperatorKind::Facet { by, .. } if by.len() == 2)
    );
    assert!(
        matches!(op("T | partition by k { T | take 1 }"), OperatorKind::Partition(p) if matches!(p.body, PartitionBody::Expr(_)))
    );
    assert!(
        matches!(op("T | partition by k { as P | take 1 }"), OperatorKind::Partition(p) if matches!(p.body, PartitionBody::Operators(_)))
    );
    assert!(
        matches!(op("T | scan with_match_id=m declare (s:long = 0) with (step a output=last: x > 1 => s = s + 1; step b: true)"), OperatorKind::Scan(s) if s.steps.len() == 2)
    );
    assert!(matches!(
        op("T | reduce kind=source by x with threshold=0.1"),
        OperatorKind::Reduce { .. }
    ));
    assert!(matches!(
        op("T | search kind=case_sensitive Col: \"x\""),
        OperatorKind::Search(_)
    ));
    assert!(matches!(
        op("T | as hint.materialized=true X"),
        OperatorKind::As { .. }
    ));
    assert!(matches!(op("T | invoke f(1)"), OperatorKind::Invoke(_)));
    assert!(matches!(
        op("T | evaluate hint.distribution=per_node bag_unpack(x)"),
        OperatorKind::Evaluate(_)
    ));
    assert!(matches!(op("T | getschema"), OperatorKind::Getschema));
    assert!(matches!(op("T | consume"), OperatorKind::Consume(_)));
    assert!(
        matches!(op("T | top-nested 3 of a by count(), top-nested of b with others = 'x' by max(1)"), OperatorKind::TopNested(c) if c.len() == 2)
    );
    assert!(matches!(
        op("T | top-hitters 5 of a by b"),
        OperatorKind::TopHitters { .. }
    ));
    assert!(matches!(
        op("T | serialize n = row_number()"),
        OperatorKind::Serialize(_)
    ));
    assert!(matches!(
        op("G | graph-match cycles=none (a)-[e*1..3]->(b)<--(), (a)-[f]-(c) where a.x == 1 project a.x"),
        OperatorKind::GraphMatch(m) if m.patterns.len() == 2 && m.patterns[0].edges[0].range == Some((1, 3))
            && m.patterns[0].edges[1].direction == EdgeDirection::Backward && m.patterns[1].edges[0].direction == EdgeDirection::Any
    ));
    assert!(matches!(
        op("T | make-graph a --> b with N on id, (M | take 1) on id2"),
        OperatorKind::MakeGraph(g) if g.nodes.len() == 2 && g.source.name == "a"
    ));
    assert!(matches!(
        op("G | graph-to-table edges with_source_id=s with_target_id=t"),
        OperatorKind::GraphToTable(items) if items[0].edges && items[0].params.len() == 2
    ));
    assert!(matches!(
        op("G | graph-mark-components kind=strong with_component_id=c"),
        OperatorKind::GraphMarkComponents(p) if p.len() == 2
    ));
    assert!(matches!(op("T | project-by-names 'a', dynamic(['b']), 'c*'"), OperatorKind::ProjectByNames(s) if s.len() == 3));
    assert_eq!(
        err("T | graph-merge x").kind,
        ParseErrorKind::Unsupported
    );
    assert_eq!(
        err("T | macro-expand x as y (T)").kind,
        ParseErrorKind::Unsupported
    );
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

#[test]
fn table_and_database_commands() {
    assert!(
        matches!(command(".create database DB persist (@'a', @'b') ifnotexists").kind, CommandKind::CreateDatabase { if_not_exists: true, persistence: Some(DatabasePersistence::Persist(p)), .. } if p.len() == 2)
    );
    assert!(matches!(
        command(".create database DB volatile").kind,
        CommandKind::CreateDatabase {
            persistence: Some(DatabasePersistence::Volatile),
            ..
        }
    ));
    match command(".create table T (a:long, ['b c']:string) with (docstring='d', folder='f')").kind
    {
        CommandKind::CreateTable {
            merge: false,
            table,
            with,
        } => {
            assert_eq!(table.columns.len(), 2);
            assert_eq!(table.columns[1].name.name, "b c");
            assert_eq!(with.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        command(".create-merge table T (a:long)").kind,
        CommandKind::CreateTable { merge: true, .. }
    ));
    assert!(
        matches!(command(".create tables A (a:long), B (b:string)").kind, CommandKind::CreateTables { tables, .. } if tables.len() == 2)
    );
    assert!(
        matches!(command(".drop table db.T ifexists").kind, CommandKind::DropTable { if_exists: true, name } if name.database.is_some())
    );
    assert!(
        matches!(command(".drop tables (A, B)").kind, CommandKind::DropTables { names, .. } if names.len() == 2)
    );
    assert!(matches!(
        command(".show tables details").kind,
        CommandKind::ShowTables { details: true }
    ));
    assert!(matches!(
        command(".show table T").kind,
        CommandKind::ShowTable { .. }
    ));
    assert!(matches!(
        command(".show table T schema as json").kind,
        CommandKind::ShowTableSchema {
            format: SchemaFormat::Json,
            ..
        }
    ));
    assert!(matches!(
        command(".show table T cslschema").kind,
        CommandKind::ShowTableSchema {
            format: SchemaFormat::Csl,
            ..
        }
    ));
    assert!(matches!(
        command(".show table T details").kind,
        CommandKind::ShowTableDetails { .. }
    ));
    assert!(matches!(
        command(".show databases").kind,
        CommandKind::ShowDatabases
    ));
    assert!(matches!(
        command(".show database X schema as csl script").kind,
        CommandKind::ShowDatabaseSchema {
            format: SchemaFormat::CslScript,
            name: Some(_),
            ..
        }
    ));
    assert!(matches!(
        command(".show database schema").kind,
        CommandKind::ShowDatabaseSchema { name: None, .. }
    ));
    assert!(matches!(
        command(".show functions").kind,
        CommandKind::ShowFunctions
    ));
    assert!(matches!(
        command(".show function F").kind,
        CommandKind::ShowFunction { .. }
    ));
    let c = command(".show tables | where TableName startswith 'T' | count");
    assert_eq!(c.pipe.len(), 2);
}

#[test]
fn ingestion_commands() {
    match command(".ingest inline into table T with (format='csv') <| a,b@c,\"d\"\n1,2,3").kind {
        CommandKind::IngestInline { data, with, .. } => {
            assert_eq!(data, "a,b@c,\"d\"\n1,2,3");
            assert_eq!(with.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    // Data starts at its first character that is no space or line break; everything after
    // it, the spaces that start a later line and the final line break included, is kept.
    for (text, want) in [
        (".ingest inline into table T <| 1,a", "1,a"),
        (".ingest inline into table T <|\n1,a\n  2, b\n", "1,a\n  2, b\n"),
        (".ingest inline into table T <| \r\n\t 1,a\r\n", "1,a\r\n"),
        (".ingest inline into table T <|", ""),
        (".ingest inline into table T <|  \n", ""),
    ] {
        match command(text).kind {
            CommandKind::IngestInline { data, .. } => assert_eq!(data, want, "{text:?}"),
            other => panic!("{other:?}"),
        }
    }
    match command(".ingest async into table T ('path', h'secret') with (format='csv', ignoreFirstRecord=true)").kind {
        CommandKind::Ingest { is_async: true, sources, .. } => {
            assert!(matches!(sources[1].kind, LiteralKind::ObfuscatedString(_)));
        }
        other => panic!("{other:?}"),
    }
    match command(".set-or-append T with (folder='x') <| let y = 1; T2 | where x > y").kind {
        CommandKind::TableFromQuery {
            mode: TableWriteMode::SetOrAppend,
            query,
            ..
        } => assert_eq!(query.statements.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        command(".set async T <| T2").kind,
        CommandKind::TableFromQuery {
            mode: TableWriteMode::Set,
            is_async: true,
            ..
        }
    ));
    assert!(matches!(
        command(".append T <| T2 | take 1").kind,
        CommandKind::TableFromQuery {
            mode: TableWriteMode::Append,
            ..
        }
    ));
    assert!(matches!(
        command(".set-or-replace T <| T2").kind,
        CommandKind::TableFromQuery {
            mode: TableWriteMode::SetOrReplace,
            ..
        }
    ));
}

#[test]
fn function_commands() {
    let text = ".create function ifnotexists with (docstring='d', folder='f', skipvalidation='true') F(a:long, T:(x:long)) { T | take a }";
    match command(text).kind {
        CommandKind::CreateFunction {
            mode: FunctionWriteMode::Create,
            if_not_exists: true,
            with,
            params,
            body,
            body_span,
            ..
        } => {
            assert_eq!(with.len(), 3);
            assert_eq!(params.len(), 2);
            assert_eq!(body.len(), 1);
            assert_eq!(&text[body_span.start..body_span.end], "{ T | take a }");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        command(".create-or-alter function F() { T }").kind,
        CommandKind::CreateFunction {
            mode: FunctionWriteMode::CreateOrAlter,
            ..
        }
    ));
    assert!(matches!(
        command(".alter function F() { T }").kind,
        CommandKind::CreateFunction {
            mode: FunctionWriteMode::Alter,
            ..
        }
    ));
    assert!(matches!(
        command(".drop function F ifexists").kind,
        CommandKind::DropFunction {
            if_exists: true,
            ..
        }
    ));
}

#[test]
fn policy_commands() {
    match command(".alter table db.T policy row_level_security enable with (allowMaterializedViewsWithoutRowLevelSecurity=true) \"T | where x\"").kind {
        CommandKind::AlterRowLevelSecurity { target: PolicyTarget::Table(t), enable: true, with, query } => {
            assert_eq!(t.database.map(|d| d.name).as_deref(), Some("db"));
            assert_eq!(with.len(), 1);
            assert_eq!(query, "T | where x");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        command(".alter table T policy row_level_security disable 'Q'").kind,
        CommandKind::AlterRowLevelSecurity { enable: false, .. }
    ));
    assert!(matches!(
        command(".show table * policy row_level_security").kind,
        CommandKind::ShowRowLevelSecurity {
            target: PolicyTarget::AllTables
        }
    ));
    assert!(matches!(
        command(".delete table T policy row_level_security").kind,
        CommandKind::DeleteRowLevelSecurity { .. }
    ));
    assert!(matches!(
        command(".alter materialized-view MV policy row_level_security enable 'Q'").kind,
        CommandKind::AlterRowLevelSecurity {
            target: PolicyTarget::MaterializedView(_),
            ..
        }
    ));
    assert!(matches!(
        command(".show materialized-view MV policy row_level_security").kind,
        CommandKind::ShowRowLevelSecurity { .. }
    ));
    assert!(matches!(
        command(".delete materialized-view MV policy row_level_security").kind,
        CommandKind::DeleteRowLevelSecurity { .. }
    ));
    assert!(matches!(
        command(".alter table T policy restricted_view_access true").kind,
        CommandKind::AlterRestrictedViewAccess { enable: true, .. }
    ));
    assert!(
        matches!(command(".alter tables (T1, T2) policy restricted_view_access false").kind, CommandKind::AlterRestrictedViewAccess { target: PolicyTarget::Tables(t), enable: false } if t.len() == 2)
    );
    assert!(matches!(
        command(".show table T policy restricted_view_access").kind,
        CommandKind::ShowRestrictedViewAccess { .. }
    ));
    assert!(matches!(
        command(".delete table T policy restricted_view_access").kind,
        CommandKind::DeleteRestrictedViewAccess { .. }
    ));
    assert!(parse(".alter table * policy row_level_security enable 'Q'").is_err());
    assert!(parse(".delete tables (A) policy restricted_view_access").is_err());
}

#[test]
fn materialized_view_commands() {
    let text = ".create ifnotexists materialized-view with (backfill=true, docString='d') V on table T { T | where x > 1 | summarize arg_max(ts, *) by k }";
    match command(text).kind {
        CommandKind::CreateMaterializedView { if_not_exists: true, with, name, source, query } => {
            assert_eq!(with.len(), 2);
            assert_eq!(name.name, "V");
            assert_eq!(source.name, "T");
            assert_eq!(query.statements.len(), 1);
            assert_eq!(&text[query.span.start..query.span.end], "T | where x > 1 | summarize arg_max(ts, *) by k");
        }
        other => panic!("{other:?}"),
    }
    let c = command(".create materialized-view V on table T { let n = 1; T | summarize count() by A }");
    assert!(matches!(&c.kind, CommandKind::CreateMaterializedView { if_not_exists: false, with, query, .. } if with.is_empty() && query.statements.len() == 2));
    assert_eq!(c.to_string(), ".create materialized-view V on table T { let n = 1; T | summarize count() by A }");
    assert!(matches!(command(".show materialized-views").kind, CommandKind::ShowMaterializedViews));
    assert!(matches!(command(".show ingestion failures").kind, CommandKind::ShowIngestionFailures { with } if with.is_empty()));
    let c = command(".show ingestion failures with (OperationId = '0000') | where Table == 'T'");
    assert!(matches!(&c.kind, CommandKind::ShowIngestionFailures { with } if with.len() == 1));
    assert_eq!(c.to_string(), ".show ingestion failures with (OperationId = \"0000\") | where Table == \"T\"");
    assert!(matches!(command(".show materialized-view V").kind, CommandKind::ShowMaterializedView { name } if name.name == "V"));
    assert!(matches!(command(".show materialized-views | where Name == 'V'").kind, CommandKind::ShowMaterializedViews));
    assert!(matches!(
        command(".drop materialized-view V ifexists").kind,
        CommandKind::DropMaterializedView { if_exists: true, .. }
    ));
    assert!(matches!(
        command(".drop materialized-view V").kind,
        CommandKind::DropMaterializedView { if_exists: false, .. }
    ));
    assert!(matches!(
        command(".enable materialized-view V with (allowMaterializedViewsWithoutRowLevelSecurity=true)").kind,
        CommandKind::EnableMaterializedView { enable: true, with, .. } if with.len() == 1
    ));
    assert!(matches!(
        command(".disable materialized-view V").kind,
        CommandKind::EnableMaterializedView { enable: false, .. }
    ));
    // the principal commands of a view still parse beside `.drop materialized-view`
    assert!(matches!(
        command(".drop materialized-view V admins ('aaduser=a@b.com')").kind,
        CommandKind::ChangePrincipals { entity: SecurableEntity::MaterializedView(_), .. }
    ));
    assert!(matches!(
        command(".show materialized-view V principals").kind,
        CommandKind::ShowPrincipals { entity: SecurableEntity::MaterializedView(_) }
    ));
    // `on` is a command word: a view of that name prints bracketed
    let c = command(".show materialized-view ['on']");
    assert_eq!(c.to_string(), ".show materialized-view [\"on\"]");
    assert!(parse(".create materialized-view V on table T").is_err());
    assert!(parse(".create materialized-view V table T { T | summarize count() }").is_err());
}

#[test]
fn principal_commands() {
    match command(".add database DB users ('aaduser=a@b.com', 'aadgroup=g') skip-results 'notes'")
        .kind
    {
        CommandKind::ChangePrincipals {
            action: PrincipalAction::Add,
            entity: SecurableEntity::Database(Some(db)),
            role,
            principals,
            skip_results: true,
            notes: Some(_),
            none: false,
        } => {
            assert_eq!(db.name, "DB");
            assert_eq!(role.name, "users");
            assert_eq!(principals.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        command(".add database users ('aaduser=a')").kind,
        CommandKind::ChangePrincipals {
            entity: SecurableEntity::Database(None),
            ..
        }
    ));
    assert!(matches!(
        command(".drop table T admins ('x')").kind,
        CommandKind::ChangePrincipals {
            action: PrincipalAction::Drop,
            entity: SecurableEntity::Table(_),
            ..
        }
    ));
    assert!(matches!(
        command(".set function F admins ('x')").kind,
        CommandKind::ChangePrincipals {
            action: PrincipalAction::Set,
            entity: SecurableEntity::Function(_),
            ..
        }
    ));
    assert!(matches!(
        command(".set database DB viewers none skip-results").kind,
        CommandKind::ChangePrincipals {
            none: true,
            skip_results: true,
            ..
        }
    ));
    assert!(matches!(
        command(".add cluster alldatabasesadmins ('x')").kind,
        CommandKind::ChangePrincipals {
            entity: SecurableEntity::Cluster,
            ..
        }
    ));
    assert!(matches!(
        command(".add materialized-view MV admins ('x') skip-results").kind,
        CommandKind::ChangePrincipals {
            entity: SecurableEntity::MaterializedView(_),
            ..
        }
    ));
    assert!(matches!(
        command(".add external table X admins ('x')").kind,
        CommandKind::ChangePrincipals {
            entity: SecurableEntity::ExternalTable(_),
            ..
        }
    ));
    assert!(matches!(
        command(".show database DB principals").kind,
        CommandKind::ShowPrincipals {
            entity: SecurableEntity::Database(Some(_))
        }
    ));
    assert!(matches!(
        command(".show database principals").kind,
        CommandKind::ShowPrincipals {
            entity: SecurableEntity::Database(None)
        }
    ));
    assert!(matches!(
        command(".show cluster principals").kind,
        CommandKind::ShowPrincipals {
            entity: SecurableEntity::Cluster
        }
    ));
    assert!(matches!(
        command(".show table T principal roles").kind,
        CommandKind::ShowPrincipalRoles {
            entity: Some(_),
            principal: None,
            ..
        }
    ));
    assert!(matches!(
        command(".show database X principal 'aaduser=x' roles").kind,
        CommandKind::ShowPrincipalRoles {
            principal: Some(_),
            ..
        }
    ));
    assert!(matches!(
        command(".show principal roles").kind,
        CommandKind::ShowPrincipalRoles { entity: None, .. }
    ));
    assert!(
        matches!(command(".clear cluster cache groupmembership with (group='aadgroup=x')").kind, CommandKind::ClearGroupMembershipCache { with } if with.len() == 1)
    );
    // roles are checked per entity
    let e = err(".add table T viewers ('x')");
    assert!(e.message.contains("viewers"), "{}", e.message);
    assert!(parse(".add database DB users none").is_err());
}

#[test]
fn command_names_are_quoted_when_needed() {
    // `details` is a command word: a table of that name prints bracketed.
    let c = command(".show table ['details'] details");
    assert_eq!(c.to_string(), ".show table [\"details\"] details");
    // query keywords are ordinary names inside commands
    let c = command(".drop table where");
    assert_eq!(c.to_string(), ".drop table where");
}

#[test]
fn unknown_commands_are_named() {
    let e = err(".frobnicate table T");
    assert_eq!(e.kind, ParseErrorKind::UnknownCommand);
    assert!(e.message.contains(".frobnicate"), "{}", e.message);
    let e = err(".show frobs");
    assert!(e.message.contains(".show frobs"), "{}", e.message);
}

/// Valid Kusto commands (the official parser accepts each) that Kustodian does not implement,
/// with the name the error gives them.
const UNSUPPORTED_COMMANDS: &[(&str, &str)] = &[
    (".clear table T data", ".clear table data"),
    (".clear async table T data", ".clear async table data"),
    (".alter table T docstring \"x\"", ".alter table docstring"),
    (".show cluster", ".show cluster"),
    (".show cluster | count", ".show cluster"),
    (".show diagnostics", ".show diagnostics"),
    (".show queries", ".show queries"),
    (".show commands", ".show commands"),
    (".show database", ".show database"),
    (".export to csv (h@\"x\") <| T", ".export to csv"),
    (
        ".execute database script <| .create table T (a:int)",
        ".execute database script",
    ),
    (".show version", ".show version"),
    // The official parser takes text after a whole command as its own business.
    (".clear table T data junk", ".clear table data"),
];

#[test]
fn unsupported_kusto_commands_are_named() {
    for (text, name) in UNSUPPORTED_COMMANDS {
        let e = err(text);
        assert_eq!(e.kind, ParseErrorKind::Unsupported, "{text}: {}", e.message);
        assert_eq!(
            e.message,
            format!("'{name}' is a Kusto command that Kustodian does not support"),
            "{text}"
        );
        assert_eq!((e.line, e.column, e.span.start), (1, 1, 0), "{text}");
        assert!(e.expected.is_empty(), "{text}: {:?}", e.expected);
    }
    // Positions count in the text as given: the caret is under the command.
    let e = err("// first\n  .show diagnostics | count");
    assert_eq!((e.line, e.column), (2, 3));
    assert_eq!(e.span, Span::new(11, 28));
    // The line between the two: text that is no Kusto command stays a syntax error.
    for text in [
        // Rejected by the official parser too.
        ".show extents",
        ".clear table T",
        ".clear table T dta",
        ".show table db.T extents",
        ".alter table T docstring",
        // Kusto commands cut short: the text ends in the middle of one, or of a longer form.
        ".alter database D policy caching hot =",
        ".show table T extents hot where",
        ".add cluster blockedprincipals \"x\" application",
        // A supported command with a typo is not "unsupported": the grammar knows the command.
        ".alter table T policy row_level_security enabl \"T\"",
        ".show table T detials",
        ".show database Db schema as jsn",
    ] {
        let e = err(text);
        assert!(
            matches!(
                e.kind,
                ParseErrorKind::UnexpectedToken | ParseErrorKind::UnexpectedEof
            ),
            "{text}: {:?} {}",
            e.kind,
            e.message
        );
    }
    // Text after a whole command Kustodian implements is an error of its own.
    assert_eq!(
        err(".show tables junk").kind,
        ParseErrorKind::UnexpectedToken
    );
    // Verbs no one knows, and commands in the wrong case, keep their own error.
    assert_eq!(
        err(".frobnicate table T").kind,
        ParseErrorKind::UnknownCommand
    );
    assert_eq!(err(".SHOW CLUSTER").kind, ParseErrorKind::UnknownCommand);
    // Commands Kustodian implements still parse.
    command(".show table T details");
    command(".show cluster principals");
    command(".clear cluster cache groupmembership with (group='aadgroup=x')");
}

// ---------------------------------------------------------------------------------------------
// Errors and limits
// ---------------------------------------------------------------------------------------------

#[test]
fn error_positions_and_frames() {
    let text = "T\n| where x >\n| take 1";
    let e = err(text);
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.to_string().contains("line 3, column 1"));
    assert!(!e.expected.is_empty());
    assert!(
        e.expected.contains(&"identifier".to_string()),
        "{:?}",
        e.expected
    );
    let frame = e.frame(text);
    assert!(frame.starts_with("error: unexpected '|'\n"), "{frame}");
    assert!(frame.contains(" --> request:3:1\n"), "{frame}");
    assert!(frame.contains("3 | | take 1\n"), "{frame}");
    assert!(frame.contains("  | ^ expected one of:"), "{frame}");
    let e = err("T | where x > 1 by");
    assert_eq!((e.line, e.column), (1, 17));
    let e = err("print 'é' + #");
    assert_eq!((e.line, e.column), (1, 13));
    // The header takes a code and the frame names its text, as the CLI reports errors.
    let report = e.render(Some("SyntaxError"), "script", "print 'é' + #");
    assert_eq!((report.line, report.column), (1, 13));
    assert!(
        report.text.starts_with(&format!(
            "error[SyntaxError]: {}\n  --> script:1:13\n",
            e.message
        )),
        "{}",
        report.text
    );
}

#[test]
fn frames_of_long_lines_are_cut_around_the_caret() {
    // An error at the end of a one-line request of a megabyte.
    let text = format!("print '{}' by", "x".repeat(1_000_000));
    let e = err(&text);
    assert_eq!(e.column, 1_000_010);
    let frame = e.frame(&text);
    assert!(frame.len() < 600, "{} bytes", frame.len());
    let line = frame.lines().nth(3).unwrap();
    let carets = frame.lines().nth(4).unwrap();
    assert!(line.starts_with("1 | …xxx"), "{line}");
    assert!(line.ends_with("' by"), "{line}");
    assert_eq!(
        line.trim_start_matches("1 | ").chars().count(),
        1 + crate::frame::FRAME_WIDTH
    );
    // The caret is under `by`.
    let caret_at = carets.chars().position(|c| c == '^').unwrap();
    assert_eq!(line.chars().skip(caret_at).collect::<String>(), "by");
    assert!(carets.contains(" ^^ expected one of: "), "{carets}");
    // An error at the start of such a line shows its start, cut after the window.
    let text = format!("print by '{}'", "x".repeat(1_000_000));
    let frame = err(&text).frame(&text);
    assert!(frame.len() < 600, "{} bytes", frame.len());
    let line = frame.lines().nth(3).unwrap();
    assert!(
        line.starts_with("1 | print by 'xxx") && line.ends_with("x…"),
        "{line}"
    );
    assert!(
        frame
            .lines()
            .nth(4)
            .unwrap()
            .starts_with("  |       ^^ expected"),
        "{frame}"
    );
    // A span that runs on for a megabyte is marked only inside the window.
    let text = format!("print '{}", "x".repeat(1_000_000));
    let frame = err(&text).frame(&text);
    assert!(frame.len() < 800, "{} bytes", frame.len());
    // In the middle of a long line, the window has text on both sides.
    let text = format!("print {}by, {}", "1,".repeat(200_000), "1,".repeat(200_000));
    let e = err(&text);
    let frame = e.frame(&text);
    let line = frame.lines().nth(3).unwrap();
    assert!(line.starts_with("1 | …") && line.ends_with('…'), "{line}");
    let caret_at = frame
        .lines()
        .nth(4)
        .unwrap()
        .chars()
        .position(|c| c == '^')
        .unwrap();
    assert!(
        line.chars()
            .skip(caret_at)
            .collect::<String>()
            .starts_with("by,"),
        "{line}"
    );
    // Lines that fit are shown whole; a tab is four spaces, above and below.
    let frame = err("\tT | where x by").frame("\tT | where x by");
    assert!(
        frame.contains("1 |     T | where x by\n  |                 ^^ "),
        "{frame:?}"
    );
}

#[test]
fn messages_quote_at_most_a_short_piece_of_the_text() {
    let long = "y".repeat(1_000_000);
    for text in [
        format!("T | {long}"),
        format!(".{long} table T"),
        format!(".show {long} x"),
        format!("print x = 1 | where a > timespan({long})"),
        format!("T | extend x = toint(1) | project-away {long} by"),
    ] {
        let e = err(&text);
        assert!(
            e.to_string().len() < 400,
            "{} bytes: {:.200}",
            e.to_string().len(),
            e.to_string()
        );
        assert!(
            e.frame(&text).len() < 1000,
            "{} bytes",
            e.frame(&text).len()
        );
    }
    assert_eq!(crate::error::clip("short"), "short");
    let clipped = crate::error::clip(&long);
    assert_eq!(clipped.chars().count(), crate::error::QUOTE_WIDTH);
    assert!(clipped.ends_with('…'));
}

#[test]
fn materialize_outside_let_says_where_it_goes() {
    // Kusto's parser refuses these too: materialize(...) is only the whole value of a `let`.
    for text in [
        "materialize(T) | count",
        "T | join (materialize(T)) on x",
        "union materialize(T), T",
    ] {
        let e = err(text);
        assert!(
            e.message
                .contains("only valid as the whole value of a let statement"),
            "{text}: {}",
            e.message
        );
    }
    rt("let m = materialize(T | take 1); m | count");
}

#[test]
fn nesting_limit() {
    let deep = "(".repeat(100_000);
    assert_eq!(err(&deep).kind, ParseErrorKind::TooComplex);
    let deep = format!("print {}1{}", "(".repeat(150), ")".repeat(150));
    rt(&deep);
    let deep = format!(
        "print dynamic({}1{})",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(err(&deep).kind, ParseErrorKind::TooComplex);
    // long flat chains are bounded too (their ASTs are deep)
    let chain = format!("print {}", vec!["1"; 100_000].join(" + "));
    assert_eq!(err(&chain).kind, ParseErrorKind::TooComplex);
    let unary = format!("print {}1", "-".repeat(100_000));
    assert_eq!(err(&unary).kind, ParseErrorKind::TooComplex);
    let pipes = format!("T{}", " | take 1".repeat(100_000));
    assert_eq!(err(&pipes).kind, ParseErrorKind::TooComplex);
    // ...but realistic sizes are fine
    let chain = format!("print {}", vec!["1"; 400].join(" + "));
    rt(&chain);
    let pipes = format!("T{}", " | where x > 1 and y < 2".repeat(100));
    rt(&pipes);
}

#[test]
fn large_scripts_are_fine() {
    let mut script = String::new();
    for i in 0..1000 {
        script.push_str(&format!(
            "let x{i} = T | where a > {i} | summarize count() by b;\n"
        ));
    }
    script.push_str("x999 | take 1");
    assert_eq!(query(&script).statements.len(), 1001);
}

#[test]
fn spans_point_at_source() {
    let text = "T | where Amount > 10";
    let e = last_expr(text);
    assert_eq!(&text[e.span.start..e.span.end], text);
    let ExprKind::Pipe { op, .. } = e.kind else {
        panic!()
    };
    assert_eq!(&text[op.span.start..op.span.end], "where Amount > 10");
    let OperatorKind::Where(p) = op.kind else {
        panic!()
    };
    let (_, l, r) = binary(&p);
    assert_eq!(&text[l.span.start..l.span.end], "Amount");
    assert_eq!(&text[r.span.start..r.span.end], "10");
    // spans do not affect equality
    assert_eq!(parse("T|where Amount>10").ok(), parse(text).ok());
}

#[test]
fn printing_adds_parentheses_for_hand_built_trees() {
    let s = Span::default();
    let id = |n: &str| Expr::new(ExprKind::Ident(Ident::new(n, s)), s);
    let add = Expr::new(
        ExprKind::Binary {
            op: BinaryOp::Add,
            left: Box::new(id("a")),
            right: Box::new(id("b")),
        },
        s,
    );
    let mul = Expr::new(
        ExprKind::Binary {
            op: BinaryOp::Mul,
            left: Box::new(add),
            right: Box::new(id("c")),
        },
        s,
    );
    assert_eq!(mul.to_string(), "(a + b) * c");
    let pipe = Expr::new(
        ExprKind::Pipe {
            input: Box::new(id("T")),
            op: Box::new(Operator::new(OperatorKind::Count, s)),
        },
        s,
    );
    let cmp = Expr::new(
        ExprKind::Binary {
            op: BinaryOp::Lt,
            left: Box::new(pipe),
            right: Box::new(id("x")),
        },
        s,
    );
    assert_eq!(cmp.to_string(), "(T | count) < x");
}

#[test]
fn serializes_to_json() {
    let ast = parse("T | where x > 1").unwrap();
    let json = serde_json::to_string(&ast).unwrap();
    assert!(json.contains("\"Where\""), "{json}");
    assert!(json.contains("\"span\""), "{json}");
}

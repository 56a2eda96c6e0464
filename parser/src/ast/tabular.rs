//! Whether an expression denotes a table, as far as its syntax tells: the one definition the
//! parser's users (the binder, rewrites that stay within one query's scalar expressions, the
//! materialized-view policy rule) share.

use super::{Expr, ExprKind, Ident};

/// Functions whose call is a table whatever their arguments: `table('T')`,
/// `materialize(...)`, `view(...)`, `materialized_view('mv')`, `external_table('x')`.
pub const TABLE_FUNCTIONS: &[&str] = &[
    "table",
    "materialize",
    "view",
    "materialized_view",
    "external_table",
];

/// What the syntax of an expression says about whether it denotes a table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TabularShape<'a> {
    /// A table whatever the names in it mean: `T | ...`, `datatable(...)[...]`, `print`,
    /// `range`, `union`, `find`, `search`, `evaluate`, `externaldata`, `database('d').T`,
    /// a call of one of the [`TABLE_FUNCTIONS`], or one of these in parentheses.
    Tabular,
    /// A bare name (`T`, `['my table']`): a table, a `let` name or a function called without
    /// parentheses. Only the scope can tell.
    Name(&'a Ident),
    /// A call of a user or stored function (`f(x)`), which may return a table. Only the
    /// function's definition can tell.
    Call(&'a Ident),
    /// Never a table: literals, operators, lambdas, `d.x`, `cluster('c').database('d')`...
    Scalar,
}

impl TabularShape<'_> {
    pub fn is_tabular(&self) -> bool {
        matches!(self, TabularShape::Tabular)
    }
}

impl Expr {
    /// What this expression's syntax says about whether it is a table; see [`TabularShape`].
    pub fn tabular_shape(&self) -> TabularShape<'_> {
        match &self.kind {
            ExprKind::Pipe { .. }
            | ExprKind::Datatable { .. }
            | ExprKind::Print(_)
            | ExprKind::Range { .. }
            | ExprKind::Union(_)
            | ExprKind::Find(_)
            | ExprKind::Search(_)
            | ExprKind::Evaluate(_)
            | ExprKind::Externaldata { .. } => TabularShape::Tabular,
            ExprKind::Paren(inner) => inner.tabular_shape(),
            ExprKind::Ident(name) => TabularShape::Name(name),
            ExprKind::Call { name, .. } if TABLE_FUNCTIONS.contains(&name.name.as_str()) => {
                TabularShape::Tabular
            }
            ExprKind::Call { name, .. } => TabularShape::Call(name),
            // `database('d').T`, `cluster('c').database('d').T`
            ExprKind::Member { expr, .. } => match &expr.kind {
                ExprKind::Call { name, .. } | ExprKind::MemberCall { name, .. }
                    if name.name == "database" =>
                {
                    TabularShape::Tabular
                }
                _ => TabularShape::Scalar,
            },
            ExprKind::Literal(_)
            | ExprKind::Star
            | ExprKind::Wildcard(_)
            | ExprKind::JoinSide(_)
            | ExprKind::Binary { .. }
            | ExprKind::Unary { .. }
            | ExprKind::In { .. }
            | ExprKind::HasAny { .. }
            | ExprKind::HasAll { .. }
            | ExprKind::Between { .. }
            | ExprKind::MemberCall { .. }
            | ExprKind::MemberWildcard { .. }
            | ExprKind::Index { .. }
            | ExprKind::TypeOf(_)
            | ExprKind::Lambda(_) => TabularShape::Scalar,
        }
    }

    /// A tabular expression that extends to the right, as far as it can: `T | ...`,
    /// `print ...`, `range ...`, `union ...`, `find ...`, `search ...`, `evaluate ...`,
    /// `externaldata ...`. The grammar reads one as an operand only in parentheses (or as the
    /// whole argument of `toscalar`/`materialize`). `datatable(...)[...]` ends at its `]` and
    /// is a primary expression, as in Kusto's own parser.
    pub fn is_open_tabular(&self) -> bool {
        matches!(
            self.kind,
            ExprKind::Pipe { .. }
                | ExprKind::Print(_)
                | ExprKind::Range { .. }
                | ExprKind::Union(_)
                | ExprKind::Find(_)
                | ExprKind::Search(_)
                | ExprKind::Evaluate(_)
                | ExprKind::Externaldata { .. }
        )
    }

    /// Whether a walk over one query's scalar expressions stops here: a table by its syntax
    /// (a subquery, whose names are its own rows' columns) or a lambda (whose names are its
    /// parameters). Bare names and calls are not boundaries: they have no children a scalar
    /// rewrite could reach by mistake.
    pub fn is_query_boundary(&self) -> bool {
        self.tabular_shape().is_tabular() || matches!(self.kind, ExprKind::Lambda(_))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::ast::{Request, StatementKind};

    fn shape_of(text: &str) -> String {
        let Ok(Request::Query(q)) = crate::parse(text) else {
            panic!("{text:?} is not a query")
        };
        // `materialize(...)` is only allowed as a `let` value.
        let e = match q.statements.last().map(|s| &s.kind) {
            Some(StatementKind::Expr(e) | StatementKind::Let { value: e, .. }) => e,
            _ => panic!("{text:?} has no expression"),
        };
        match e.tabular_shape() {
            TabularShape::Tabular => "tabular".into(),
            TabularShape::Name(i) => format!("name {}", i.name),
            TabularShape::Call(i) => format!("call {}", i.name),
            TabularShape::Scalar => "scalar".into(),
        }
    }

    #[test]
    fn every_tabular_source_is_tabular() {
        // The copies this replaced disagreed on `datatable` (the parser's) and on
        // find/search/evaluate/externaldata (the binder's shape of stored function bodies).
        for text in [
            "T | take 1",
            "datatable(a:long)[1, 2]",
            "(datatable(a:long)[1])",
            "print x = 1",
            "range x from 1 to 3 step 1",
            "union T, U",
            "find in (T) where x > 1",
            "search in (T) \"a\"",
            "evaluate python(typeof(*), 'x')",
            "externaldata (a:string) ['https://x/y.csv']",
            "database('db').T",
            "cluster('c').database('db').T",
            "table('T')",
            "let m = materialize(T | take 1)",
            "materialized_view('mv')",
            "external_table('x')",
            "((T | take 1))",
        ] {
            assert_eq!(shape_of(text), "tabular", "{text}");
        }
    }

    #[test]
    fn open_tabular_expressions_are_the_pipe_level_ones() {
        let expr = |text: &str| {
            let Ok(Request::Query(mut q)) = crate::parse(text) else {
                panic!("{text:?} is not a query")
            };
            match q.statements.pop().map(|s| s.kind) {
                Some(StatementKind::Expr(e)) => e,
                _ => panic!("{text:?} has no expression"),
            }
        };
        for text in [
            "T | take 1",
            "print 1",
            "range x from 1 to 3 step 1",
            "union T",
            "find in (T) where x > 1",
            "search \"a\"",
            "evaluate python(typeof(*), 'x')",
            "externaldata (a:string) ['https://x/y.csv']",
        ] {
            let e = expr(text);
            assert!(e.is_open_tabular() && e.tabular_shape().is_tabular(), "{text}");
        }
        for text in ["datatable(a:long)[1]", "(T | take 1)", "table('T')", "T"] {
            assert!(!expr(text).is_open_tabular(), "{text}");
        }
    }

    #[test]
    fn names_and_calls_are_left_to_the_scope() {
        assert_eq!(shape_of("T"), "name T");
        assert_eq!(shape_of("(['my table'])"), "name my table");
        assert_eq!(shape_of("f(1)"), "call f");
        assert_eq!(shape_of("toscalar(T | count)"), "call toscalar");
    }

    #[test]
    fn scalars_are_scalar() {
        for text in [
            "1",
            "1 + 2",
            "x in (T)",
            "d.a",
            "d['a']",
            "cluster('c').database('db')",
            "-x",
            "typeof(long)",
        ] {
            assert_eq!(shape_of(text), "scalar", "{text}");
        }
    }
}

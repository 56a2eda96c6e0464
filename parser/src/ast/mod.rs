//! KQL abstract syntax tree: every node family is `Node { kind: NodeKind, span }`.
//!
//! Conventions the rest of Kustodian relies on:
//!
//! * **Spans never affect equality.** [`Span`]'s `PartialEq` always returns `true`, so the
//!   derived `PartialEq` of every node compares structure only (as sqlparser-rs does). Use
//!   [`Span::same_as`] to compare positions.
//! * **One [`Expr`] for scalar and tabular expressions**, as Kusto has. `T | where a | take 1`
//!   is `Pipe(Pipe(T, where a), take 1)`: pipes nest to the left.
//! * **Entity references stay generic.** `database('db').T` is
//!   `Member(Call(database, ['db']), T)`; `cluster('c').database('d').T` is
//!   `Member(MemberCall(Call(cluster, ['c']), database, ['d']), T)`; `table('T')`,
//!   `materialize(e)`, `toscalar(e)`, `materialized_view('mv')`, `external_table('x')` are plain
//!   [`ExprKind::Call`]s whose arguments may be tabular. Wildcard table names (`T*` in `union`,
//!   `find in (...)`) are [`ExprKind::Wildcard`]; `database('x').*` is
//!   [`ExprKind::MemberWildcard`].
//! * **`$left` / `$right`** are [`ExprKind::JoinSide`]; `$left.a` is `Member(JoinSide(Left), a)`.
//! * **Join conditions are kept as written** (`on a, $left.b == $right.c and ...`): a list of
//!   expressions, each either a column name or a boolean expression over `$left`/`$right`.
//! * **Literals are decoded**: strings hold their value (escapes resolved, adjacent literals
//!   concatenated), timespans their length in 100 ns ticks, datetimes and guids their raw text.
//! * Every node implements `Display`, printing canonical KQL such that
//!   `parse(&ast.to_string()) == Ok(ast)` for every AST the parser produces.

mod command;
mod display;
mod operator;
mod role;
mod tabular;
pub mod visit;
pub mod visit_mut;

pub use command::*;
pub use display::{quote_callee, quote_ident, quote_string};
pub use operator::*;
pub use role::Role;
pub use tabular::{TABLE_FUNCTIONS, TabularShape};

use serde::Serialize;

/// Byte offsets `[start, end)` into the request text.
///
/// Equality is always `true` so that spans never take part in AST comparisons.
#[derive(Debug, Clone, Copy, Default, Serialize, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// Compares positions (the `==` operator deliberately does not).
    pub fn same_as(&self, other: &Span) -> bool {
        self.start == other.start && self.end == other.end
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for Span {
    fn eq(&self, _other: &Span) -> bool {
        true
    }
}

/// A name: column, table, function, parameter, property, role... `name` is the unquoted name;
/// `Display` re-quotes it (`['my col']`) when it is not a plain identifier or is a keyword.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

impl Ident {
    pub fn new(name: impl Into<String>, span: Span) -> Self {
        Ident {
            name: name.into(),
            span,
        }
    }
}

/// A name qualified by an optional database, as management commands write table names:
/// `T`, `db.T`, `['my db'].['my table']`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualifiedName {
    pub database: Option<Ident>,
    pub name: Ident,
    pub span: Span,
}

// ---------------------------------------------------------------------------------------------
// Requests, queries, statements
// ---------------------------------------------------------------------------------------------

/// One request: a query or a management command (text starting with `.`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Request {
    Query(Query),
    Command(Command),
}

/// A query: statements separated by `;`. The last statement is usually an
/// [`StatementKind::Expr`] (the tabular result), but a query may hold only `let`/`set`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Query {
    pub statements: Vec<Statement>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    pub kind: StatementKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum StatementKind {
    /// `let name = value` (scalar, tabular, lambda, `view`, `materialize(...)`).
    Let { name: Ident, value: Expr },
    /// `set name [= value]`; the value is a literal or an identifier.
    Set { name: Ident, value: Option<Expr> },
    /// `declare query_parameters(name:type [= default], ...)`.
    DeclareQueryParameters(Vec<Param>),
    /// `declare pattern Name [= (args) [: (schema)] { ... }]` (only the name form is supported).
    DeclarePattern { name: Ident },
    /// `restrict access to (T, database('x').*, *)`.
    RestrictAccess(Vec<Expr>),
    /// `alias database Name = cluster('c').database('d')`.
    AliasDatabase { name: Ident, value: Expr },
    /// A (usually tabular) expression statement.
    Expr(Expr),
}

// ---------------------------------------------------------------------------------------------
// Expressions
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Self {
        Expr { kind, span }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExprKind {
    /// A column, table, `let` name, ... (`x`, `['my col']`).
    Ident(Ident),
    Literal(Literal),
    /// `*` where the language allows it (`distinct *`, `search *`, `union *`, `hash(*)`).
    Star,
    /// A name pattern with `*` wildcards (`T*`, `*_log`), in `union`, `find in`, `search in`,
    /// `project-away`, `project-keep`, `project-reorder`.
    Wildcard(String),
    /// `$left` or `$right` in join conditions.
    JoinSide(JoinSide),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    /// `expr [!]in[~] (list)`; `list` may hold one tabular expression.
    In {
        expr: Box<Expr>,
        negated: bool,
        case_insensitive: bool,
        list: Vec<Expr>,
    },
    /// `expr has_any (list)`; `list` may hold one tabular expression.
    HasAny {
        expr: Box<Expr>,
        list: Vec<Expr>,
    },
    /// `expr has_all (list)`; `list` may hold one tabular expression.
    HasAll {
        expr: Box<Expr>,
        list: Vec<Expr>,
    },
    /// `expr [!]between (low .. high)`.
    Between {
        expr: Box<Expr>,
        negated: bool,
        low: Box<Expr>,
        high: Box<Expr>,
    },
    /// `name(args)`: functions, aggregates, `database('x')`, `table('T')`, `toscalar(...)`.
    Call {
        name: Ident,
        args: Vec<Arg>,
    },
    /// `expr.name(args)`, e.g. `cluster('c').database('d')`.
    MemberCall {
        expr: Box<Expr>,
        name: Ident,
        args: Vec<Arg>,
    },
    /// `expr.name` (dynamic property, `database('x').T`, `$left.a`).
    Member {
        expr: Box<Expr>,
        name: Ident,
    },
    /// `expr.T*` / `expr.*` (`database('x').*` in `restrict`, `union`).
    MemberWildcard {
        expr: Box<Expr>,
        pattern: String,
    },
    /// `expr[index]`.
    Index {
        expr: Box<Expr>,
        index: Box<Expr>,
    },
    /// `(expr)`; kept so that printing reproduces the source's grouping.
    Paren(Box<Expr>),
    /// `typeof(long)`, `typeof(a:string, b:long)`, `typeof(*)`.
    TypeOf(TypeSpec),
    /// `input | operator`.
    Pipe {
        input: Box<Expr>,
        op: Box<Operator>,
    },
    /// `datatable(a:long, b:string)[1, 'x', ...]`.
    Datatable {
        schema: Vec<ColumnDecl>,
        values: Vec<Expr>,
    },
    /// `print x = 1, 2`.
    Print(Vec<NamedExpr>),
    /// `range x from 1 to 10 step 2`.
    Range {
        name: Ident,
        from: Box<Expr>,
        to: Box<Expr>,
        step: Box<Expr>,
    },
    /// `union ...` as the source of a pipeline.
    Union(Box<Union>),
    /// `find ...` as the source of a pipeline.
    Find(Box<Find>),
    /// `search ...` as the source of a pipeline.
    Search(Box<Search>),
    /// `evaluate plugin(...)` as the source of a pipeline.
    Evaluate(Box<Evaluate>),
    /// `externaldata (schema) [uris] [with (props)]`.
    Externaldata {
        schema: Vec<ColumnDecl>,
        uris: Vec<Literal>,
        with: Vec<Property>,
    },
    /// `(params) { body }` or `view (params) { body }`.
    Lambda(Lambda),
}

/// `$left` / `$right`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum JoinSide {
    Left,
    Right,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UnaryOp {
    Neg,
    Plus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BinaryOp {
    Or,
    And,
    // comparisons
    Eq,
    NotEq,
    /// `<>` (same meaning as `!=`, kept to print back what was written).
    LtGt,
    Lt,
    LtEq,
    Gt,
    GtEq,
    /// `=~` (case-insensitive equality)
    EqTilde,
    /// `!~`
    NotEqTilde,
    // string operators
    Has,
    NotHas,
    HasCs,
    NotHasCs,
    HasPrefix,
    NotHasPrefix,
    HasPrefixCs,
    NotHasPrefixCs,
    HasSuffix,
    NotHasSuffix,
    HasSuffixCs,
    NotHasSuffixCs,
    Contains,
    NotContains,
    ContainsCs,
    NotContainsCs,
    StartsWith,
    NotStartsWith,
    StartsWithCs,
    NotStartsWithCs,
    EndsWith,
    NotEndsWith,
    EndsWithCs,
    NotEndsWithCs,
    /// `matches regex`
    MatchesRegex,
    /// `Column: "term"`, only in `search`/`find` predicates: the column has the term.
    Colon,
    // arithmetic
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// A call argument: positional `expr` or named `name = expr`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Arg {
    Positional(Expr),
    Named { name: Ident, value: Expr },
}

impl Arg {
    pub fn expr(&self) -> &Expr {
        match self {
            Arg::Positional(e) => e,
            Arg::Named { value, .. } => value,
        }
    }
}

/// An expression with an optional output name: `expr`, `x = expr`, `(a, b) = expr`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedExpr {
    /// Empty (unnamed), one name, or a tuple of names.
    pub names: Vec<Ident>,
    pub expr: Expr,
    pub span: Span,
}

/// `typeof(...)` contents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TypeSpec {
    /// `typeof(long)`
    Scalar(Ident),
    /// `typeof(a:string, b:long)`, `typeof(*)`
    Tabular(Schema),
}

/// A tabular schema in parameter types and `typeof`: `(a:long, b:string)`, `(*)`,
/// `(*, a:long)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schema {
    /// `*` was given: any further columns are allowed.
    pub wildcard: bool,
    pub columns: Vec<ColumnDecl>,
    pub span: Span,
}

/// `name:type` in `datatable`, `externaldata`, schemas, `parse-kv`, `.create table`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDecl {
    pub name: Ident,
    /// The type name as written (`long`, `string`, `dynamic`, ...); not validated here.
    pub ty: Ident,
    pub span: Span,
}

/// A lambda / function parameter: `a:long`, `b:string = "x"`, `T:(Col:string)`, `U:(*)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    pub name: Ident,
    pub ty: ParamType,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ParamType {
    Scalar(Ident),
    Tabular(Schema),
}

/// `(params) { body }` / `view (params) { body }`. The body is a list of statements whose last
/// one is the result expression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lambda {
    pub params: Vec<Param>,
    pub body: Vec<Statement>,
    pub is_view: bool,
    /// Span of the `{ ... }` body (the text between the braces is `text[body_span]` minus them).
    pub body_span: Span,
}

/// `name = value` in `with (...)` property lists, `render`, `reduce ... with`.
/// The value is a literal, an identifier, or (for `render ... ycolumns=a, b`) a list of names
/// kept as extra values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Property {
    pub name: Ident,
    pub values: Vec<Expr>,
    pub span: Span,
}

/// An operator parameter written `name=value` before the operator's arguments:
/// `kind=inner`, `hint.strategy=shuffle`, `withsource=Src`, `isfuzzy=true`,
/// `with_itemindex=i`, `bagexpansion=array`, `flags=Ui`, `with_match_id=id`,
/// `decodeblocks=true`. `name` holds the full name (`hint.strategy`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpParam {
    pub name: Ident,
    /// A literal or an identifier.
    pub value: Expr,
    pub span: Span,
}

// ---------------------------------------------------------------------------------------------
// Literals
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Literal {
    pub kind: LiteralKind,
    pub span: Span,
}

impl Literal {
    pub fn new(kind: LiteralKind, span: Span) -> Self {
        Literal { kind, span }
    }
}

/// Literal values. `PartialEq` compares reals by bit pattern (so `real(nan) == real(nan)`).
#[derive(Debug, Clone, Serialize)]
pub enum LiteralKind {
    /// `1`, `0x1F`, `long(5)`
    Long(i64),
    /// `int(5)`
    Int(i32),
    /// `1.5`, `1e3`, `real(nan)`, `real(+inf)`
    Real(f64),
    /// `decimal(1.5)`: the number text as written.
    Decimal(String),
    /// `true`, `false`, `bool(true)`
    Bool(bool),
    /// A decoded string (escapes resolved; adjacent literals concatenated).
    String(String),
    /// `h'...'` / `h@'...'`: a string to be hidden from logs.
    ObfuscatedString(String),
    /// `datetime(...)` / `date(...)`: the text between the parentheses, trimmed.
    Datetime(String),
    /// `1d`, `30m`, `time(1.02:03:04)`: the length in 100 ns ticks.
    Timespan(i64),
    /// `guid(...)`: the text between the parentheses, trimmed.
    Guid(String),
    /// `dynamic(...)`
    Dynamic(DynValue),
    /// `long(null)`, `datetime(null)`, ...: the canonical type name (`long`, `int`, `real`,
    /// `decimal`, `bool`, `datetime`, `timespan`, `guid`).
    TypedNull(String),
}

impl PartialEq for LiteralKind {
    fn eq(&self, other: &Self) -> bool {
        use LiteralKind::*;
        match (self, other) {
            (Long(a), Long(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Real(a), Real(b)) => a.to_bits() == b.to_bits(),
            (Decimal(a), Decimal(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            (String(a), String(b)) => a == b,
            (ObfuscatedString(a), ObfuscatedString(b)) => a == b,
            (Datetime(a), Datetime(b)) => a == b,
            (Timespan(a), Timespan(b)) => a == b,
            (Guid(a), Guid(b)) => a == b,
            (Dynamic(a), Dynamic(b)) => a == b,
            (TypedNull(a), TypedNull(b)) => a == b,
            _ => false,
        }
    }
}

/// The value of a `dynamic(...)` literal: JSON plus Kusto's scalar literals.
#[derive(Debug, Clone, Serialize)]
pub enum DynValue {
    Null,
    Bool(bool),
    Long(i64),
    Real(f64),
    String(String),
    /// `datetime(...)` inside a dynamic literal (raw text).
    Datetime(String),
    /// A timespan inside a dynamic literal (ticks).
    Timespan(i64),
    /// `guid(...)` inside a dynamic literal (raw text).
    Guid(String),
    Array(Vec<DynValue>),
    /// Property bag; keys in source order (duplicates kept as written).
    Object(Vec<(String, DynValue)>),
}

impl PartialEq for DynValue {
    fn eq(&self, other: &Self) -> bool {
        use DynValue::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Long(a), Long(b)) => a == b,
            (Real(a), Real(b)) => a.to_bits() == b.to_bits(),
            (String(a), String(b)) => a == b,
            (Datetime(a), Datetime(b)) => a == b,
            (Timespan(a), Timespan(b)) => a == b,
            (Guid(a), Guid(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Object(a), Object(b)) => a == b,
            _ => false,
        }
    }
}

/// Number of 100 ns ticks in common units.
pub mod ticks {
    pub const MICROSECOND: i64 = 10;
    pub const MILLISECOND: i64 = 10_000;
    pub const SECOND: i64 = 10_000_000;
    pub const MINUTE: i64 = 60 * SECOND;
    pub const HOUR: i64 = 60 * MINUTE;
    pub const DAY: i64 = 24 * HOUR;
}

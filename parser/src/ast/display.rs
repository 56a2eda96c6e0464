//! `Display` for every AST node: canonical KQL such that `parse(print(ast)) == ast`.
//!
//! Parentheses are printed where the AST has [`ExprKind::Paren`] nodes, and additionally where
//! an expression built by hand (e.g. by policy substitution) would otherwise re-parse with a
//! different grouping.

use std::borrow::Cow;
use std::fmt::{self, Display, Formatter, Write};

use super::*;

type R = fmt::Result;

thread_local! {
    /// True while printing the part of a management command that the lexer reads in command
    /// mode (before `<|`, `|` or a function body), where command words are keywords.
    static COMMAND_MODE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Sets the command-mode flag for the guard's lifetime, restoring the previous value after.
struct CommandMode(bool);

impl CommandMode {
    fn set(on: bool) -> CommandMode {
        CommandMode(COMMAND_MODE.with(|c| c.replace(on)))
    }
}

impl Drop for CommandMode {
    fn drop(&mut self) {
        COMMAND_MODE.with(|c| c.set(self.0));
    }
}

fn in_command_mode() -> bool {
    COMMAND_MODE.with(|c| c.get())
}

/// Quotes a name as `['name']` unless it can be written bare.
pub fn quote_ident(name: &str) -> Cow<'_, str> {
    let plain = !crate::lexer::is_kusto_reserved(name)
        && if in_command_mode() {
            crate::lexer::is_plain_command_name(name)
        } else {
            crate::lexer::is_plain_name(name)
        };
    bracket_unless(name, plain)
}

/// A name in a position where Kusto expects a bare word (types, chart kinds, parameter values):
/// written bare whenever our lexer reads it back as a name.
pub(crate) fn raw_name(name: &str) -> Cow<'_, str> {
    let plain = if in_command_mode() {
        crate::lexer::is_plain_command_name(name)
    } else {
        crate::lexer::is_plain_name(name)
    };
    bracket_unless(name, plain)
}

fn bracket_unless(name: &str, plain: bool) -> Cow<'_, str> {
    if plain {
        Cow::Borrowed(name)
    } else {
        let mut s = String::with_capacity(name.len() + 4);
        s.push('[');
        s.push_str(&quote_string(name));
        s.push(']');
        Cow::Owned(s)
    }
}

/// Quotes the name of a called function (`['datetime'](x)`: a bare `datetime(` starts a literal).
pub fn quote_callee(name: &str) -> Cow<'_, str> {
    if crate::lexer::is_plain_callee(name)
        && (!in_command_mode() || crate::lexer::is_plain_command_name(name))
    {
        Cow::Borrowed(name)
    } else {
        let mut s = String::with_capacity(name.len() + 4);
        s.push('[');
        s.push_str(&quote_string(name));
        s.push(']');
        s.into()
    }
}

/// A KQL string literal (double-quoted, escaped) holding `value`.
pub fn quote_string(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn comma_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> R {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

fn params_list(f: &mut Formatter<'_>, params: &[OpParam]) -> R {
    for p in params {
        write!(f, " {p}")?;
    }
    Ok(())
}

fn with_props(f: &mut Formatter<'_>, props: &[Property]) -> R {
    if !props.is_empty() {
        f.write_str(" with (")?;
        comma_list(f, props)?;
        f.write_str(")")?;
    }
    Ok(())
}

fn ops_list(f: &mut Formatter<'_>, ops: &[Operator]) -> R {
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            f.write_str(" | ")?;
        }
        write!(f, "{op}")?;
    }
    Ok(())
}

impl Display for Span {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl Display for Ident {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        f.write_str(&quote_ident(&self.name))
    }
}

impl Display for QualifiedName {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        if let Some(db) = &self.database {
            write!(f, "{db}.")?;
        }
        write!(f, "{}", self.name)
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and statements
// ---------------------------------------------------------------------------------------------

impl Display for Request {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        match self {
            Request::Query(q) => write!(f, "{q}"),
            Request::Command(c) => write!(f, "{c}"),
        }
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write_statements(f, &self.statements, ";\n")?;
        // A query whose last statement is not an expression keeps its terminating `;`
        // (`let x = 1;` is a complete query).
        if let Some(last) = self.statements.last()
            && !matches!(last.kind, StatementKind::Expr(_))
        {
            f.write_str(";")?;
        }
        Ok(())
    }
}

fn write_statements(f: &mut Formatter<'_>, stmts: &[Statement], sep: &str) -> R {
    for (i, s) in stmts.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{s}")?;
    }
    Ok(())
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        match &self.kind {
            StatementKind::Let { name, value } => {
                write!(f, "let {name} = ")?;
                // `materialize(...)` is a keyword form, valid only as a `let` value.
                if let ExprKind::Call { name: callee, args } = &value.kind
                    && callee.name == "materialize"
                    && let [Arg::Positional(arg)] = args.as_slice()
                {
                    f.write_str("materialize(")?;
                    write_expr(f, arg, Prec::Pipe)?;
                    return f.write_str(")");
                }
                write_expr(f, value, Prec::Pipe)
            }
            StatementKind::Set { name, value } => {
                write!(f, "set {name}")?;
                if let Some(v) = value {
                    write!(f, " = {v}")?;
                }
                Ok(())
            }
            StatementKind::DeclareQueryParameters(params) => {
                f.write_str("declare query_parameters(")?;
                comma_list(f, params)?;
                f.write_str(")")
            }
            StatementKind::DeclarePattern { name } => write!(f, "declare pattern {name}"),
            StatementKind::RestrictAccess(items) => {
                f.write_str("restrict access to (")?;
                comma_list(f, items)?;
                f.write_str(")")
            }
            StatementKind::AliasDatabase { name, value } => {
                write!(f, "alias database {name} = {value}")
            }
            StatementKind::Expr(e) => write_expr(f, e, Prec::Pipe),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Expressions
// ---------------------------------------------------------------------------------------------

/// Binding strength, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Prec {
    /// `a | op`
    Pipe,
    Or,
    And,
    /// `==`, `!=`, `<>`, `in`, `between`, `has_any`, `has_all` (non-associative)
    Eq,
    /// string operators, `=~`, `!~`, `matches regex` (non-associative)
    Str,
    /// `<`, `<=`, `>`, `>=` (non-associative)
    Rel,
    Add,
    Mul,
    Unary,
    /// postfix and primary expressions
    Postfix,
}

impl BinaryOp {
    /// The operator's KQL spelling.
    pub fn as_str(&self) -> &'static str {
        use BinaryOp::*;
        match self {
            Or => "or",
            And => "and",
            Eq => "==",
            NotEq => "!=",
            LtGt => "<>",
            Lt => "<",
            LtEq => "<=",
            Gt => ">",
            GtEq => ">=",
            EqTilde => "=~",
            NotEqTilde => "!~",
            Has => "has",
            NotHas => "!has",
            HasCs => "has_cs",
            NotHasCs => "!has_cs",
            HasPrefix => "hasprefix",
            NotHasPrefix => "!hasprefix",
            HasPrefixCs => "hasprefix_cs",
            NotHasPrefixCs => "!hasprefix_cs",
            HasSuffix => "hassuffix",
            NotHasSuffix => "!hassuffix",
            HasSuffixCs => "hassuffix_cs",
            NotHasSuffixCs => "!hassuffix_cs",
            Contains => "contains",
            NotContains => "!contains",
            ContainsCs => "contains_cs",
            NotContainsCs => "!contains_cs",
            StartsWith => "startswith",
            NotStartsWith => "!startswith",
            StartsWithCs => "startswith_cs",
            NotStartsWithCs => "!startswith_cs",
            EndsWith => "endswith",
            NotEndsWith => "!endswith",
            EndsWithCs => "endswith_cs",
            NotEndsWithCs => "!endswith_cs",
            MatchesRegex => "matches regex",
            Colon => ":",
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
        }
    }

    fn prec(&self) -> Prec {
        use BinaryOp::*;
        match self {
            Or => Prec::Or,
            And => Prec::And,
            Eq | NotEq | LtGt => Prec::Eq,
            Lt | LtEq | Gt | GtEq => Prec::Rel,
            Add | Sub => Prec::Add,
            Mul | Div | Mod => Prec::Mul,
            _ => Prec::Str,
        }
    }
}

impl Display for BinaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        f.write_str(self.as_str())
    }
}

impl Display for UnaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        f.write_str(match self {
            UnaryOp::Neg => "-",
            UnaryOp::Plus => "+",
        })
    }
}

fn expr_prec(e: &Expr) -> Prec {
    match &e.kind {
        ExprKind::Binary { op, .. } => op.prec(),
        ExprKind::Unary { .. } => Prec::Unary,
        ExprKind::In { .. }
        | ExprKind::HasAny { .. }
        | ExprKind::HasAll { .. }
        | ExprKind::Between { .. } => Prec::Eq,
        ExprKind::Lambda(_) => Prec::Pipe,
        // Tabular sources with trailing clauses and pipes only stand alone or in parentheses.
        _ if e.is_open_tabular() => Prec::Pipe,
        _ => Prec::Postfix,
    }
}

/// Prints `e` so that it re-parses as one operand at strength `min`.
pub(crate) fn write_expr(f: &mut Formatter<'_>, e: &Expr, min: Prec) -> R {
    if expr_prec(e) < min {
        f.write_str("(")?;
        write_expr_inner(f, e)?;
        f.write_str(")")
    } else {
        write_expr_inner(f, e)
    }
}

fn write_list(f: &mut Formatter<'_>, list: &[Expr]) -> R {
    f.write_str("(")?;
    if let [single] = list {
        // A single element may be tabular (`x in (T | project y)`).
        write_expr(f, single, Prec::Pipe)?;
    } else {
        for (i, e) in list.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write_expr(f, e, Prec::Or)?;
        }
    }
    f.write_str(")")
}

fn write_args(f: &mut Formatter<'_>, name: &str, args: &[Arg]) -> R {
    f.write_str("(")?;
    if let [Arg::Positional(single)] = args {
        // Only some functions take a bare tabular argument; others need `f((T | ...))`.
        let min = if crate::support::TABULAR_ARG_FUNCTIONS.contains(&name) {
            Prec::Pipe
        } else {
            Prec::Or
        };
        write_expr(f, single, min)?;
    } else {
        comma_list(f, args)?;
    }
    f.write_str(")")
}

fn write_expr_inner(f: &mut Formatter<'_>, e: &Expr) -> R {
    match &e.kind {
        ExprKind::Ident(i) => write!(f, "{i}"),
        ExprKind::Literal(l) => write!(f, "{l}"),
        ExprKind::Star => f.write_str("*"),
        ExprKind::Wildcard(p) => f.write_str(p),
        ExprKind::JoinSide(JoinSide::Left) => f.write_str("$left"),
        ExprKind::JoinSide(JoinSide::Right) => f.write_str("$right"),
        ExprKind::Binary { op, left, right } => {
            let p = op.prec();
            let (lp, rp) = match p {
                // `Col: term` in search predicates
                _ if *op == BinaryOp::Colon => (Prec::Postfix, Prec::Add),
                Prec::Or => (Prec::Or, Prec::And),
                Prec::And => (Prec::And, Prec::Eq),
                Prec::Eq => (Prec::Str, Prec::Str),
                Prec::Str => (Prec::Rel, Prec::Rel),
                Prec::Rel => (Prec::Add, Prec::Add),
                Prec::Add => (Prec::Add, Prec::Mul),
                _ => (Prec::Mul, Prec::Unary),
            };
            write_expr(f, left, lp)?;
            if *op == BinaryOp::Colon {
                f.write_str(": ")?;
            } else {
                write!(f, " {op} ")?;
            }
            write_expr(f, right, rp)
        }
        ExprKind::Unary { op, expr } => {
            write!(f, "{op}")?;
            // Signs do not stack in KQL: a nested sign gets parentheses, `-(-x)`.
            write_expr(f, expr, Prec::Postfix)
        }
        ExprKind::In {
            expr,
            negated,
            case_insensitive,
            list,
        } => {
            write_expr(f, expr, Prec::Str)?;
            f.write_str(match (negated, case_insensitive) {
                (false, false) => " in ",
                (true, false) => " !in ",
                (false, true) => " in~ ",
                (true, true) => " !in~ ",
            })?;
            write_list(f, list)
        }
        ExprKind::HasAny { expr, list } => {
            write_expr(f, expr, Prec::Str)?;
            f.write_str(" has_any ")?;
            write_list(f, list)
        }
        ExprKind::HasAll { expr, list } => {
            write_expr(f, expr, Prec::Str)?;
            f.write_str(" has_all ")?;
            write_list(f, list)
        }
        ExprKind::Between {
            expr,
            negated,
            low,
            high,
        } => {
            write_expr(f, expr, Prec::Str)?;
            f.write_str(if *negated {
                " !between ("
            } else {
                " between ("
            })?;
            write_expr(f, low, Prec::Add)?;
            f.write_str(" .. ")?;
            write_expr(f, high, Prec::Add)?;
            f.write_str(")")
        }
        ExprKind::Call { name, args } => {
            f.write_str(&quote_callee(&name.name))?;
            write_args(f, &name.name, args)
        }
        ExprKind::MemberCall { expr, name, args } => {
            write_expr(f, expr, Prec::Postfix)?;
            write!(f, ".{}", quote_callee(&name.name))?;
            write_args(f, &name.name, args)
        }
        ExprKind::Member { expr, name } => {
            write_expr(f, expr, Prec::Postfix)?;
            write!(f, ".{name}")
        }
        ExprKind::MemberWildcard { expr, pattern } => {
            write_expr(f, expr, Prec::Postfix)?;
            write!(f, ".{pattern}")
        }
        ExprKind::Index { expr, index } => {
            write_expr(f, expr, Prec::Postfix)?;
            f.write_str("[")?;
            write_expr(f, index, Prec::Or)?;
            f.write_str("]")
        }
        ExprKind::Paren(inner) => {
            f.write_str("(")?;
            write_expr(f, inner, Prec::Pipe)?;
            f.write_str(")")
        }
        ExprKind::TypeOf(spec) => match spec {
            TypeSpec::Scalar(t) => write!(f, "typeof({})", raw_name(&t.name)),
            TypeSpec::Tabular(s) => write!(f, "typeof{s}"),
        },
        ExprKind::Pipe { input, op } => {
            write_expr(f, input, Prec::Pipe)?;
            write!(f, " | {op}")
        }
        ExprKind::Datatable { schema, values } => {
            f.write_str("datatable(")?;
            comma_list(f, schema)?;
            f.write_str(")[")?;
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_expr(f, v, Prec::Or)?;
            }
            f.write_str("]")
        }
        ExprKind::Print(cols) => {
            f.write_str("print")?;
            if !cols.is_empty() {
                f.write_str(" ")?;
                comma_list(f, cols)?;
            }
            Ok(())
        }
        ExprKind::Range {
            name,
            from,
            to,
            step,
        } => {
            write!(f, "range {name} from ")?;
            write_expr(f, from, Prec::Or)?;
            f.write_str(" to ")?;
            write_expr(f, to, Prec::Or)?;
            f.write_str(" step ")?;
            write_expr(f, step, Prec::Or)
        }
        ExprKind::Union(u) => write!(f, "{u}"),
        ExprKind::Find(x) => write!(f, "{x}"),
        ExprKind::Search(x) => write!(f, "{x}"),
        ExprKind::Evaluate(x) => write!(f, "{x}"),
        ExprKind::Externaldata { schema, uris, with } => {
            f.write_str("externaldata (")?;
            comma_list(f, schema)?;
            f.write_str(") [")?;
            comma_list(f, uris)?;
            f.write_str("]")?;
            with_props(f, with)
        }
        ExprKind::Lambda(l) => write!(f, "{l}"),
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write_expr(f, self, Prec::Pipe)
    }
}

impl Display for Arg {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        match self {
            Arg::Positional(e) => write_expr(f, e, Prec::Or),
            Arg::Named { name, value } => {
                write!(f, "{name} = ")?;
                write_expr(f, value, Prec::Or)
            }
        }
    }
}

impl Display for NamedExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        match self.names.as_slice() {
            [] => {}
            [one] => write!(f, "{one} = ")?,
            many => {
                f.write_str("(")?;
                comma_list(f, many)?;
                f.write_str(") = ")?;
            }
        }
        write_expr(f, &self.expr, Prec::Or)
    }
}

impl Display for Schema {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        f.write_str("(")?;
        if self.wildcard {
            f.write_str("*")?;
            if !self.columns.is_empty() {
                f.write_str(", ")?;
            }
        }
        comma_list(f, &self.columns)?;
        f.write_str(")")
    }
}

impl Display for ColumnDecl {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write!(f, "{}:{}", self.name, raw_name(&self.ty.name))
    }
}

impl Display for Param {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write!(f, "{}:", self.name)?;
        match &self.ty {
            ParamType::Scalar(t) => f.write_str(&raw_name(&t.name))?,
            ParamType::Tabular(s) => write!(f, "{s}")?,
        }
        if let Some(d) = &self.default {
            f.write_str(" = ")?;
            write_expr(f, d, Prec::Or)?;
        }
        Ok(())
    }
}

impl Display for Lambda {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        if self.is_view {
            f.write_str("view ")?;
        }
        f.write_str("(")?;
        comma_list(f, &self.params)?;
        f.write_str(") { ")?;
        write_statements(f, &self.body, "; ")?;
        if let Some(last) = self.body.last()
            && !matches!(last.kind, StatementKind::Expr(_))
        {
            f.write_str(";")?;
        }
        f.write_str(" }")
    }
}

impl Display for Property {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        // Property names are bare words to Kusto (`with (title = "t")`).
        write!(f, "{} = ", raw_name(&self.name.name))?;
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write_expr(f, v, Prec::Or)?;
        }
        Ok(())
    }
}

impl Display for OpParam {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        // Parameter names are keywords-like (`kind`, `hint.strategy`): never quoted.
        write!(f, "{}=", self.name.name)?;
        write_param_value(f, &self.value)
    }
}

/// Parameter values are bare words (`kind=leftouter`) or literals.
fn write_param_value(f: &mut Formatter<'_>, v: &Expr) -> R {
    match &v.kind {
        ExprKind::Ident(i) => f.write_str(&raw_name(&i.name)),
        _ => write_expr(f, v, Prec::Postfix),
    }
}

// ---------------------------------------------------------------------------------------------
// Literals
// ---------------------------------------------------------------------------------------------

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write!(f, "{}", self.kind)
    }
}

fn write_real(f: &mut Formatter<'_>, v: f64, in_dynamic: bool) -> R {
    if v.is_nan() {
        f.write_str("real(nan)")
    } else if v.is_infinite() {
        f.write_str(if v > 0.0 { "real(+inf)" } else { "real(-inf)" })
    } else if v.is_sign_negative() && !in_dynamic {
        write!(f, "real({v:?})")
    } else {
        write!(f, "{v:?}")
    }
}

/// Canonical text of a timespan in ticks, e.g. `1d`, `90m`, `150ms`, `7tick`.
pub(crate) fn timespan_text(ticks: i64) -> String {
    let t = i128::from(ticks);
    let units: [(i128, &str); 7] = [
        (i128::from(ticks::DAY), "d"),
        (i128::from(ticks::HOUR), "h"),
        (i128::from(ticks::MINUTE), "m"),
        (i128::from(ticks::SECOND), "s"),
        (i128::from(ticks::MILLISECOND), "ms"),
        (i128::from(ticks::MICROSECOND), "microsecond"),
        (1, "tick"),
    ];
    let a = t.abs();
    let sign = if t < 0 { "-" } else { "" };
    if a == 0 {
        return "0s".to_string();
    }
    for (n, name) in units {
        if a % n == 0 {
            return format!("{sign}{}{name}", a / n);
        }
    }
    format!("{sign}{a}tick")
}

impl Display for LiteralKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        match self {
            LiteralKind::Long(v) if *v < 0 => write!(f, "long({v})"),
            LiteralKind::Long(v) => write!(f, "{v}"),
            LiteralKind::Int(v) => write!(f, "int({v})"),
            LiteralKind::Real(v) => write_real(f, *v, false),
            LiteralKind::Decimal(s) => write!(f, "decimal({s})"),
            LiteralKind::Bool(b) => write!(f, "{b}"),
            LiteralKind::String(s) => f.write_str(&quote_string(s)),
            LiteralKind::ObfuscatedString(s) => write!(f, "h{}", quote_string(s)),
            LiteralKind::Datetime(s) => write!(f, "datetime({s})"),
            LiteralKind::Timespan(t) if *t < 0 => write!(f, "timespan({})", timespan_text(*t)),
            LiteralKind::Timespan(t) => f.write_str(&timespan_text(*t)),
            LiteralKind::Guid(s) => write!(f, "guid({s})"),
            LiteralKind::Dynamic(v) => write!(f, "dynamic({v})"),
            LiteralKind::TypedNull(t) => write!(f, "{t}(null)"),
        }
    }
}

impl Display for DynValue {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        match self {
            DynValue::Null => f.write_str("null"),
            DynValue::Bool(b) => write!(f, "{b}"),
            DynValue::Long(v) => write!(f, "{v}"),
            DynValue::Real(v) => write_real(f, *v, true),
            DynValue::String(s) => f.write_str(&quote_string(s)),
            DynValue::Datetime(s) => write!(f, "datetime({s})"),
            DynValue::Timespan(t) => write!(f, "timespan({})", timespan_text(*t)),
            DynValue::Guid(s) => write!(f, "guid({s})"),
            DynValue::Array(items) => {
                f.write_str("[")?;
                comma_list(f, items)?;
                f.write_str("]")
            }
            DynValue::Object(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {v}", quote_string(k))?;
                }
                f.write_str("}")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------------------------

impl Display for Operator {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write!(f, "{}", self.kind)
    }
}

fn named_list(f: &mut Formatter<'_>, items: &[NamedExpr]) -> R {
    comma_list(f, items)
}

fn expr_list(f: &mut Formatter<'_>, items: &[Expr]) -> R {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_expr(f, e, Prec::Or)?;
    }
    Ok(())
}

fn write_sort_key(f: &mut Formatter<'_>, k: &SortKey) -> R {
    write_expr(f, &k.expr, Prec::Or)?;
    match k.desc {
        Some(true) => f.write_str(" desc")?,
        Some(false) => f.write_str(" asc")?,
        None => {}
    }
    match k.nulls_first {
        Some(true) => f.write_str(" nulls first")?,
        Some(false) => f.write_str(" nulls last")?,
        None => {}
    }
    Ok(())
}

impl Display for SortKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write_sort_key(f, self)
    }
}

impl Display for OperatorKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        use OperatorKind::*;
        match self {
            Where(e) => {
                f.write_str("where ")?;
                write_expr(f, e, Prec::Or)
            }
            Project(cols) => {
                f.write_str("project ")?;
                named_list(f, cols)
            }
            ProjectAway(cols) => {
                f.write_str("project-away ")?;
                expr_list(f, cols)
            }
            ProjectKeep(cols) => {
                f.write_str("project-keep ")?;
                expr_list(f, cols)
            }
            ProjectByNames(specs) => {
                f.write_str("project-by-names ")?;
                expr_list(f, specs)
            }
            ProjectRename(items) => {
                f.write_str("project-rename ")?;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} = {}", it.new, it.old)?;
                }
                Ok(())
            }
            ProjectReorder(items) => {
                f.write_str("project-reorder ")?;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_expr(f, &it.column, Prec::Or)?;
                    if let Some(o) = it.order {
                        f.write_str(match o {
                            ReorderOrder::Asc => " asc",
                            ReorderOrder::Desc => " desc",
                            ReorderOrder::GrannyAsc => " granny-asc",
                            ReorderOrder::GrannyDesc => " granny-desc",
                        })?;
                    }
                }
                Ok(())
            }
            Extend(cols) => {
                f.write_str("extend ")?;
                named_list(f, cols)
            }
            Summarize(s) => {
                f.write_str("summarize")?;
                params_list(f, &s.hints)?;
                if !s.aggregates.is_empty() {
                    f.write_str(" ")?;
                    named_list(f, &s.aggregates)?;
                }
                if !s.by.is_empty() {
                    f.write_str(" by ")?;
                    named_list(f, &s.by)?;
                }
                Ok(())
            }
            Count => f.write_str("count"),
            CountAs(name) => write!(f, "count as {name}"),
            Take(e) => {
                f.write_str("take ")?;
                write_expr(f, e, Prec::Or)
            }
            Top { count, by } => {
                f.write_str("top ")?;
                write_expr(f, count, Prec::Or)?;
                f.write_str(" by ")?;
                write_sort_key(f, by)
            }
            TopNested(clauses) => {
                for (i, c) in clauses.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str("top-nested ")?;
                    if let Some(n) = &c.count {
                        write_expr(f, n, Prec::Or)?;
                        f.write_str(" ")?;
                    }
                    write!(f, "of {}", c.of)?;
                    if let Some(o) = &c.others {
                        f.write_str(" with others = ")?;
                        write_expr(f, o, Prec::Or)?;
                    }
                    write!(f, " by {}", c.by)?;
                    match c.desc {
                        Some(true) => f.write_str(" desc")?,
                        Some(false) => f.write_str(" asc")?,
                        None => {}
                    }
                }
                Ok(())
            }
            TopHitters { count, of, by } => {
                f.write_str("top-hitters ")?;
                write_expr(f, count, Prec::Or)?;
                f.write_str(" of ")?;
                write_expr(f, of, Prec::Or)?;
                if let Some(b) = by {
                    f.write_str(" by ")?;
                    write_expr(f, b, Prec::Or)?;
                }
                Ok(())
            }
            Sort { params, by } => {
                f.write_str("sort")?;
                params_list(f, params)?;
                f.write_str(" by ")?;
                comma_list(f, by)
            }
            Distinct { params, columns } => {
                f.write_str("distinct")?;
                params_list(f, params)?;
                f.write_str(" ")?;
                named_list(f, columns)
            }
            Join(j) => {
                f.write_str("join")?;
                write_join(f, j)
            }
            Lookup(j) => {
                f.write_str("lookup")?;
                write_join(f, j)
            }
            Union(u) => write!(f, "{u}"),
            As { params, name } => {
                f.write_str("as")?;
                params_list(f, params)?;
                write!(f, " {name}")
            }
            Getschema => f.write_str("getschema"),
            MvExpand(m) => {
                f.write_str("mv-expand")?;
                params_list(f, &m.params)?;
                f.write_str(" ")?;
                comma_list(f, &m.items)?;
                if let Some(l) = &m.limit {
                    f.write_str(" limit ")?;
                    write_expr(f, l, Prec::Or)?;
                }
                Ok(())
            }
            MvApply(m) => {
                f.write_str("mv-apply")?;
                params_list(f, &m.params)?;
                f.write_str(" ")?;
                comma_list(f, &m.items)?;
                if let Some(l) = &m.limit {
                    f.write_str(" limit ")?;
                    write_expr(f, l, Prec::Or)?;
                }
                f.write_str(" on (")?;
                ops_list(f, &m.on)?;
                f.write_str(")")
            }
            Parse(p) => {
                f.write_str(if p.is_where { "parse-where" } else { "parse" })?;
                params_list(f, &p.params)?;
                f.write_str(" ")?;
                write_expr(f, &p.expr, Prec::Or)?;
                f.write_str(" with")?;
                for item in &p.pattern {
                    match item {
                        ParsePatternItem::Star(_) => f.write_str(" *")?,
                        ParsePatternItem::Literal(l) => write!(f, " {l}")?,
                        ParsePatternItem::Column { name, ty } => {
                            write!(f, " {name}")?;
                            if let Some(t) = ty {
                                write!(f, ":{}", raw_name(&t.name))?;
                            }
                        }
                    }
                }
                Ok(())
            }
            ParseKv {
                expr,
                columns,
                with,
            } => {
                f.write_str("parse-kv ")?;
                write_expr(f, expr, Prec::Or)?;
                f.write_str(" as (")?;
                comma_list(f, columns)?;
                f.write_str(")")?;
                with_props(f, with)
            }
            Evaluate(e) => write!(f, "{e}"),
            MakeSeries(m) => {
                f.write_str("make-series")?;
                params_list(f, &m.params)?;
                f.write_str(" ")?;
                comma_list(f, &m.aggregates)?;
                f.write_str(" on ")?;
                write_expr(f, &m.on, Prec::Or)?;
                match &m.range {
                    MakeSeriesRange::FromToStep { from, to, step } => {
                        if let Some(a) = from {
                            f.write_str(" from ")?;
                            write_expr(f, a, Prec::Or)?;
                        }
                        if let Some(b) = to {
                            f.write_str(" to ")?;
                            write_expr(f, b, Prec::Or)?;
                        }
                        f.write_str(" step ")?;
                        write_expr(f, step, Prec::Or)?;
                    }
                    MakeSeriesRange::InRange { start, stop, step } => {
                        f.write_str(" in range(")?;
                        write_expr(f, start, Prec::Or)?;
                        f.write_str(", ")?;
                        write_expr(f, stop, Prec::Or)?;
                        f.write_str(", ")?;
                        write_expr(f, step, Prec::Or)?;
                        f.write_str(")")?;
                    }
                }
                if !m.by.is_empty() {
                    f.write_str(" by ")?;
                    named_list(f, &m.by)?;
                }
                Ok(())
            }
            Serialize(cols) => {
                f.write_str("serialize")?;
                if !cols.is_empty() {
                    f.write_str(" ")?;
                    named_list(f, cols)?;
                }
                Ok(())
            }
            Sample(n) => {
                f.write_str("sample ")?;
                write_expr(f, n, Prec::Or)
            }
            SampleDistinct { count, of } => {
                f.write_str("sample-distinct ")?;
                write_expr(f, count, Prec::Or)?;
                f.write_str(" of ")?;
                write_expr(f, of, Prec::Or)
            }
            Search(s) => write!(f, "{s}"),
            Find(x) => write!(f, "{x}"),
            Render {
                chart,
                with,
                legacy,
            } => {
                write!(f, "render {}", raw_name(&chart.name))?;
                if *legacy {
                    for p in with {
                        write!(f, " {}=", p.name.name)?;
                        for (i, v) in p.values.iter().enumerate() {
                            if i > 0 {
                                f.write_str(", ")?;
                            }
                            write_param_value(f, v)?;
                        }
                    }
                    Ok(())
                } else {
                    with_props(f, with)
                }
            }
            Invoke(e) => {
                f.write_str("invoke ")?;
                write_expr(f, e, Prec::Postfix)
            }
            Fork(branches) => {
                f.write_str("fork")?;
                for b in branches {
                    f.write_str(" ")?;
                    if let Some(n) = &b.name {
                        write!(f, "{n} = ")?;
                    }
                    f.write_str("(")?;
                    ops_list(f, &b.ops)?;
                    f.write_str(")")?;
                }
                Ok(())
            }
            Facet { by, with } => {
                f.write_str("facet by ")?;
                comma_list(f, by)?;
                if !with.is_empty() {
                    f.write_str(" with (")?;
                    ops_list(f, with)?;
                    f.write_str(")")?;
                }
                Ok(())
            }
            Partition(p) => {
                f.write_str("partition")?;
                params_list(f, &p.params)?;
                f.write_str(" by ")?;
                write_expr(f, &p.by, Prec::Or)?;
                match &p.body {
                    PartitionBody::Operators(ops) => {
                        f.write_str(" (")?;
                        ops_list(f, ops)?;
                        f.write_str(")")
                    }
                    PartitionBody::Expr(e) => {
                        f.write_str(" { ")?;
                        write_expr(f, e, Prec::Pipe)?;
                        f.write_str(" }")
                    }
                }
            }
            Scan(s) => write!(f, "{s}"),
            Reduce { params, by, with } => {
                f.write_str("reduce")?;
                params_list(f, params)?;
                f.write_str(" by ")?;
                write_expr(f, by, Prec::Or)?;
                if !with.is_empty() {
                    f.write_str(" with ")?;
                    comma_list(f, with)?;
                }
                Ok(())
            }
            Consume(params) => {
                f.write_str("consume")?;
                params_list(f, params)
            }
            MakeGraph(g) => {
                write!(f, "make-graph {} --> {}", g.source, g.target)?;
                for (i, n) in g.nodes.iter().enumerate() {
                    f.write_str(if i == 0 { " with " } else { ", " })?;
                    write_expr(f, &n.table, Prec::Postfix)?;
                    write!(f, " on {}", n.id)?;
                }
                if let Some(id) = &g.node_id {
                    write!(f, " with_node_id={id}")?;
                }
                if let Some((c, ops)) = &g.partitioned_by {
                    write!(f, " partitioned-by {c} (")?;
                    ops_list(f, ops)?;
                    f.write_str(")")?;
                }
                Ok(())
            }
            GraphMatch(g) | GraphShortestPaths(g) => {
                f.write_str(if matches!(self, GraphMatch(_)) { "graph-match" } else { "graph-shortest-paths" })?;
                params_list(f, &g.params)?;
                f.write_str(" ")?;
                comma_list(f, &g.patterns)?;
                if let Some(p) = &g.predicate {
                    f.write_str(" where ")?;
                    write_expr(f, p, Prec::Or)?;
                }
                if !g.project.is_empty() {
                    f.write_str(" project ")?;
                    comma_list(f, &g.project)?;
                }
                Ok(())
            }
            GraphMarkComponents(params) => {
                f.write_str("graph-mark-components")?;
                params_list(f, params)
            }
            GraphToTable(items) => {
                f.write_str("graph-to-table ")?;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(if it.edges { "edges" } else { "nodes" })?;
                    if let Some(a) = &it.alias {
                        write!(f, " as {a}")?;
                    }
                    for (k, v) in &it.params {
                        write!(f, " {k}={v}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Display for GraphPattern {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        let node = |f: &mut Formatter<'_>, n: &Option<Ident>| match n {
            Some(n) => write!(f, "({n})"),
            None => f.write_str("()"),
        };
        for (i, n) in self.nodes.iter().enumerate() {
            node(f, n)?;
            if let Some(e) = self.edges.get(i) {
                let inner = match (&e.name, e.range) {
                    (None, None) => None,
                    (name, range) => Some(format!(
                        "{}{}",
                        name.as_ref().map(ToString::to_string).unwrap_or_default(),
                        range.map(|(a, b)| format!("*{a}..{b}")).unwrap_or_default()
                    )),
                };
                match (e.direction, inner) {
                    (EdgeDirection::Forward, None) => f.write_str("-->")?,
                    (EdgeDirection::Backward, None) => f.write_str("<--")?,
                    (EdgeDirection::Any, None) => f.write_str("--")?,
                    (EdgeDirection::Forward, Some(x)) => write!(f, "-[{x}]->")?,
                    (EdgeDirection::Backward, Some(x)) => write!(f, "<-[{x}]-")?,
                    (EdgeDirection::Any, Some(x)) => write!(f, "-[{x}]-")?,
                }
            }
        }
        Ok(())
    }
}

fn write_join(f: &mut Formatter<'_>, j: &Join) -> R {
    params_list(f, &j.params)?;
    f.write_str(" ")?;
    write_expr(f, &j.right, Prec::Postfix)?;
    if j.on.is_empty() {
        return Ok(());
    }
    f.write_str(" on ")?;
    expr_list(f, &j.on)
}

/// Prints `name = expr`, bracketing a name that the lexer would otherwise read as a
/// parameter of the operator `kw` (`mv-expand ['kind'] = x`).
fn write_named_guarded(f: &mut Formatter<'_>, e: &NamedExpr, kw: crate::lexer::Kw) -> R {
    match e.names.as_slice() {
        [one] if crate::lexer::is_param_name_of(kw, &one.name) => {
            write!(f, "[{}] = ", quote_string(&one.name))?;
            write_expr(f, &e.expr, Prec::Or)
        }
        _ => write!(f, "{e}"),
    }
}

impl Display for MvExpandItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write_named_guarded(f, &self.expr, crate::lexer::Kw::MvExpand)?;
        if let Some(t) = &self.to_type {
            write!(f, " to typeof({})", raw_name(&t.name))?;
        }
        Ok(())
    }
}

impl Display for MakeSeriesAgg {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write_named_guarded(f, &self.expr, crate::lexer::Kw::MakeSeries)?;
        if let Some(d) = &self.default {
            f.write_str(" default = ")?;
            write_expr(f, d, Prec::Or)?;
        }
        Ok(())
    }
}

fn write_tables(f: &mut Formatter<'_>, tables: &[Expr]) -> R {
    if !tables.is_empty() {
        f.write_str(" in (")?;
        expr_list(f, tables)?;
        f.write_str(")")?;
    }
    Ok(())
}

impl Display for Union {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        f.write_str("union")?;
        params_list(f, &self.params)?;
        f.write_str(" ")?;
        expr_list(f, &self.tables)
    }
}

impl Display for Search {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        f.write_str("search")?;
        params_list(f, &self.params)?;
        write_tables(f, &self.tables)?;
        f.write_str(" ")?;
        write_expr(f, &self.predicate, Prec::Or)
    }
}

impl Display for Find {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        f.write_str("find")?;
        params_list(f, &self.params)?;
        write_tables(f, &self.tables)?;
        f.write_str(" where ")?;
        write_expr(f, &self.predicate, Prec::Or)?;
        match &self.project {
            None => Ok(()),
            Some(FindProject::Smart) => f.write_str(" project-smart"),
            Some(FindProject::Columns(cols)) => {
                f.write_str(" project ")?;
                expr_list(f, cols)
            }
        }
    }
}

impl Display for Evaluate {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        f.write_str("evaluate")?;
        params_list(f, &self.params)?;
        f.write_str(" ")?;
        write_expr(f, &self.call, Prec::Postfix)?;
        match &self.schema {
            Some(s) => write!(f, " : {s}"),
            None => Ok(()),
        }
    }
}

impl Display for Scan {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        f.write_str("scan")?;
        params_list(f, &self.params)?;
        if !self.order_by.is_empty() {
            f.write_str(" order by ")?;
            comma_list(f, &self.order_by)?;
        }
        if !self.partition_by.is_empty() {
            f.write_str(" partition by ")?;
            expr_list(f, &self.partition_by)?;
        }
        if !self.declare.is_empty() {
            f.write_str(" declare (")?;
            comma_list(f, &self.declare)?;
            f.write_str(")")?;
        }
        f.write_str(" with (")?;
        for s in &self.steps {
            write!(f, " {s}")?;
        }
        f.write_str(" )")
    }
}

impl Display for ScanStep {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write!(f, "step {}", self.name)?;
        if self.optional {
            f.write_str(" optional")?;
        }
        if let Some(o) = &self.output {
            let name: Cow<'_, str> = if o.name == "last" {
                Cow::Borrowed(&o.name)
            } else {
                raw_name(&o.name)
            };
            write!(f, " output={name}")?;
        }
        f.write_str(": ")?;
        write_expr(f, &self.condition, Prec::Or)?;
        if !self.assignments.is_empty() {
            f.write_str(" => ")?;
            for (i, (n, e)) in self.assignments.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{n} = ")?;
                write_expr(f, e, Prec::Or)?;
            }
        }
        f.write_str(";")
    }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

impl Display for Command {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write!(f, "{}", self.kind)?;
        let _query = CommandMode::set(false);
        for op in &self.pipe {
            write!(f, " | {op}")?;
        }
        Ok(())
    }
}

impl Display for TableDef {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        write!(f, "{} (", self.name)?;
        comma_list(f, &self.columns)?;
        f.write_str(")")
    }
}

impl Display for PolicyTarget {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        match self {
            PolicyTarget::Table(t) => write!(f, "table {t}"),
            PolicyTarget::AllTables => f.write_str("table *"),
            PolicyTarget::Tables(ts) => {
                f.write_str("tables (")?;
                comma_list(f, ts)?;
                f.write_str(")")
            }
            PolicyTarget::MaterializedView(v) => write!(f, "materialized-view {v}"),
            PolicyTarget::Database(d) => write!(f, "database {d}"),
        }
    }
}

impl Display for SecurableEntity {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        match self {
            SecurableEntity::Database(None) => f.write_str("database"),
            SecurableEntity::Database(Some(n)) => write!(f, "database {n}"),
            SecurableEntity::Table(t) => write!(f, "table {t}"),
            SecurableEntity::Function(n) => write!(f, "function {n}"),
            SecurableEntity::Cluster => f.write_str("cluster"),
            SecurableEntity::MaterializedView(n) => write!(f, "materialized-view {n}"),
            SecurableEntity::ExternalTable(n) => write!(f, "external table {n}"),
        }
    }
}

impl Display for CommandKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        use CommandKind::*;
        let _cmd = CommandMode::set(true);
        match self {
            CreateDatabase {
                name,
                persistence,
                if_not_exists,
            } => {
                write!(f, ".create database {name}")?;
                match persistence {
                    None => {}
                    Some(DatabasePersistence::Volatile) => f.write_str(" volatile")?,
                    Some(DatabasePersistence::Persist(paths)) => {
                        f.write_str(" persist (")?;
                        comma_list(f, paths)?;
                        f.write_str(")")?;
                    }
                }
                if *if_not_exists {
                    f.write_str(" ifnotexists")?;
                }
                Ok(())
            }
            DropDatabase { name, if_exists } => {
                write!(f, ".drop database {name}")?;
                if *if_exists {
                    f.write_str(" ifexists")?;
                }
                Ok(())
            }
            CreateTable { merge, table, with } => {
                write!(
                    f,
                    ".{} table {table}",
                    if *merge { "create-merge" } else { "create" }
                )?;
                with_props(f, with)
            }
            CreateTables {
                merge,
                tables,
                with,
            } => {
                write!(
                    f,
                    ".{} tables ",
                    if *merge { "create-merge" } else { "create" }
                )?;
                comma_list(f, tables)?;
                with_props(f, with)
            }
            DropTable { name, if_exists } => {
                write!(f, ".drop table {name}")?;
                if *if_exists {
                    f.write_str(" ifexists")?;
                }
                Ok(())
            }
            DropTables { names, if_exists } => {
                f.write_str(".drop tables (")?;
                comma_list(f, names)?;
                f.write_str(")")?;
                if *if_exists {
                    f.write_str(" ifexists")?;
                }
                Ok(())
            }
            ShowTables { details } => {
                f.write_str(".show tables")?;
                if *details {
                    f.write_str(" details")?;
                }
                Ok(())
            }
            ShowTablesSubset { names, details } => {
                f.write_str(".show tables (")?;
                comma_list(f, names)?;
                f.write_str(")")?;
                if *details {
                    f.write_str(" details")?;
                }
                Ok(())
            }
            ShowDatabasesSubset { names, details } => {
                f.write_str(".show databases")?;
                if !names.is_empty() {
                    f.write_str(" (")?;
                    for (i, n) in names.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        f.write_str(&quote_ident(&n.name))?;
                    }
                    f.write_str(")")?;
                }
                if *details {
                    f.write_str(" details")?;
                }
                Ok(())
            }
            CreateTableBasedOn { name, source, with } => {
                write!(f, ".create table {name} based-on {source}")?;
                with_props(f, with)
            }
            DropFunctions { names, if_exists } => {
                f.write_str(".drop functions (")?;
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&quote_ident(&n.name))?;
                }
                f.write_str(")")?;
                if *if_exists {
                    f.write_str(" ifexists")?;
                }
                Ok(())
            }
            ShowTable { name } => write!(f, ".show table {name}"),
            ShowTableSchema { name, format } => {
                write!(f, ".show table {name}")?;
                match format {
                    SchemaFormat::Json => f.write_str(" schema as json"),
                    // `.show table T schema` alone is not KQL; csl is written `cslschema`.
                    SchemaFormat::Default | SchemaFormat::Csl | SchemaFormat::CslScript => {
                        f.write_str(" cslschema")
                    }
                }
            }
            ShowTableDetails { name } => write!(f, ".show table {name} details"),
            ShowDatabases => f.write_str(".show databases"),
            ShowDatabaseSchema { name, format, with } => {
                f.write_str(".show database")?;
                if let Some(n) = name {
                    write!(f, " {n}")?;
                }
                f.write_str(match format {
                    SchemaFormat::Default => " schema",
                    SchemaFormat::Json => " schema as json",
                    SchemaFormat::Csl => " schema as csl",
                    SchemaFormat::CslScript => " schema as csl script",
                })?;
                with_props(f, with)
            }
            ShowFunctions => f.write_str(".show functions"),
            ShowFunction { name } => write!(f, ".show function {name}"),
            IngestInline { table, with, data } => {
                write!(f, ".ingest inline into table {table}")?;
                with_props(f, with)?;
                // The lexer drops the spaces after `<|`, so one here reads back the same.
                if data.is_empty() { f.write_str(" <|") } else { write!(f, " <| {data}") }
            }
            Ingest {
                is_async,
                table,
                sources,
                with,
            } => {
                f.write_str(".ingest")?;
                if *is_async {
                    f.write_str(" async")?;
                }
                write!(f, " into table {table} (")?;
                comma_list(f, sources)?;
                f.write_str(")")?;
                with_props(f, with)
            }
            TableFromQuery {
                mode,
                is_async,
                table,
                with,
                query,
            } => {
                f.write_str(match mode {
                    TableWriteMode::Set => ".set",
                    TableWriteMode::Append => ".append",
                    TableWriteMode::SetOrAppend => ".set-or-append",
                    TableWriteMode::SetOrReplace => ".set-or-replace",
                })?;
                if *is_async {
                    f.write_str(" async")?;
                }
                write!(f, " {table}")?;
                with_props(f, with)?;
                let _query = CommandMode::set(false);
                write!(f, " <| {query}")
            }
            CreateFunction {
                mode,
                if_not_exists,
                with,
                name,
                params,
                body,
                ..
            } => {
                f.write_str(match mode {
                    FunctionWriteMode::Create => ".create function",
                    FunctionWriteMode::CreateOrAlter => ".create-or-alter function",
                    FunctionWriteMode::Alter => ".alter function",
                })?;
                if *if_not_exists {
                    f.write_str(" ifnotexists")?;
                }
                with_props(f, with)?;
                write!(f, " {name}(")?;
                comma_list(f, params)?;
                f.write_str(") { ")?;
                let _body = CommandMode::set(false);
                write_statements(f, body, "; ")?;
                if let Some(last) = body.last()
                    && !matches!(last.kind, StatementKind::Expr(_))
                {
                    f.write_str(";")?;
                }
                f.write_str(" }")
            }
            DropFunction { name, if_exists } => {
                write!(f, ".drop function {name}")?;
                if *if_exists {
                    f.write_str(" ifexists")?;
                }
                Ok(())
            }
            AlterRowLevelSecurity {
                target,
                enable,
                with,
                query,
            } => {
                write!(
                    f,
                    ".alter {target} policy row_level_security {}",
                    if *enable { "enable" } else { "disable" }
                )?;
                with_props(f, with)?;
                write!(f, " {}", quote_string(query))
            }
            ShowRowLevelSecurity { target } => {
                write!(f, ".show {target} policy row_level_security")
            }
            DeleteRowLevelSecurity { target } => {
                write!(f, ".delete {target} policy row_level_security")
            }
            AlterRestrictedViewAccess { target, enable } => {
                write!(f, ".alter {target} policy restricted_view_access {enable}")
            }
            ShowRestrictedViewAccess { target } => {
                write!(f, ".show {target} policy restricted_view_access")
            }
            DeleteRestrictedViewAccess { target } => {
                write!(f, ".delete {target} policy restricted_view_access")
            }
            ChangePrincipals {
                action,
                entity,
                role,
                principals,
                none,
                skip_results,
                notes,
            } => {
                f.write_str(match action {
                    PrincipalAction::Add => ".add",
                    PrincipalAction::Drop => ".drop",
                    PrincipalAction::Set => ".set",
                })?;
                write!(f, " {entity} {}", raw_name(&role.name))?;
                if *none {
                    f.write_str(" none")?;
                } else {
                    f.write_str(" (")?;
                    comma_list(f, principals)?;
                    f.write_str(")")?;
                }
                if *skip_results {
                    f.write_str(" skip-results")?;
                }
                if let Some(n) = notes {
                    write!(f, " {n}")?;
                }
                Ok(())
            }
            ShowPrincipals { entity } => write!(f, ".show {entity} principals"),
            ShowPrincipalRoles {
                entity,
                principal,
                with,
            } => {
                f.write_str(".show")?;
                if let Some(e) = entity {
                    write!(f, " {e}")?;
                }
                f.write_str(" principal")?;
                if let Some(p) = principal {
                    write!(f, " {p}")?;
                }
                f.write_str(" roles")?;
                with_props(f, with)
            }
            ClearGroupMembershipCache { with } => {
                f.write_str(".clear cluster cache groupmembership")?;
                with_props(f, with)
            }
            ShowIngestionFailures { with } => {
                f.write_str(".show ingestion failures")?;
                with_props(f, with)
            }
            CreateMaterializedView {
                if_not_exists,
                with,
                name,
                source,
                query,
            } => {
                f.write_str(".create")?;
                if *if_not_exists {
                    f.write_str(" ifnotexists")?;
                }
                f.write_str(" materialized-view")?;
                with_props(f, with)?;
                write!(f, " {name} on table {source} {{ ")?;
                let _body = CommandMode::set(false);
                write_statements(f, &query.statements, "; ")?;
                if let Some(last) = query.statements.last()
                    && !matches!(last.kind, StatementKind::Expr(_))
                {
                    f.write_str(";")?;
                }
                f.write_str(" }")
            }
            ShowMaterializedViews => f.write_str(".show materialized-views"),
            ShowMaterializedView { name } => write!(f, ".show materialized-view {name}"),
            DropMaterializedView { name, if_exists } => {
                write!(f, ".drop materialized-view {name}")?;
                if *if_exists {
                    f.write_str(" ifexists")?;
                }
                Ok(())
            }
            EnableMaterializedView { name, enable, with } => {
                write!(f, ".{} materialized-view {name}", if *enable { "enable" } else { "disable" })?;
                with_props(f, with)
            }
            ShowExtents { scope, hot, tags } => {
                f.write_str(".show ")?;
                match scope {
                    ExtentScope::Table(t) => write!(f, "table {t}")?,
                    ExtentScope::Tables(ts) => {
                        f.write_str("tables (")?;
                        comma_list(f, ts)?;
                        f.write_str(")")?;
                    }
                    ExtentScope::Database(None) => f.write_str("database")?,
                    ExtentScope::Database(Some(d)) => write!(f, "database {d}")?,
                    ExtentScope::Cluster => f.write_str("cluster")?,
                }
                f.write_str(" extents")?;
                if *hot {
                    f.write_str(" hot")?;
                }
                for (i, t) in tags.iter().enumerate() {
                    f.write_str(if i == 0 { " where " } else { " and " })?;
                    write!(f, "tags {} {}", t.op, t.value)?;
                }
                Ok(())
            }
            DropExtents { ids, table, all_tables, older } => {
                f.write_str(".drop extents")?;
                if !ids.is_empty() {
                    f.write_str(" (")?;
                    comma_list(f, ids)?;
                    f.write_str(")")?;
                }
                if let Some((n, unit)) = older {
                    write!(f, " older {n} {unit}")?;
                }
                if *all_tables {
                    f.write_str(" from all tables")?;
                } else if let Some(t) = table {
                    write!(f, " from {t}")?;
                }
                Ok(())
            }
            DropExtentsFrom { whatif, source } => {
                f.write_str(".drop extents")?;
                if *whatif {
                    f.write_str(" whatif")?;
                }
                match source {
                    ExtentSource::Command(c) => write!(f, " <| {c}"),
                    ExtentSource::Query(q) => {
                        let _query = CommandMode::set(false);
                        write!(f, " <| {q}")
                    }
                }
            }
            AlterCachingPolicy { target, hot } => write!(f, ".alter {target} policy caching hot = {}", timespan_text(*hot)),
            AlterRetentionPolicy { target, merge, softdelete, recoverability, json } => {
                write!(f, ".{} {target} policy retention", if *merge { "alter-merge" } else { "alter" })?;
                if let Some(j) = json {
                    return write!(f, " {j}");
                }
                if let Some(sd) = softdelete {
                    write!(f, " softdelete = {}", timespan_text(*sd))?;
                }
                if let Some(r) = recoverability {
                    write!(f, " recoverability = {r}")?;
                }
                Ok(())
            }
            ShowDataPolicy { target, kind } => write!(f, ".show {target} policy {kind}"),
            AlterEncryptionPolicy { policy } => write!(f, ".alter cluster policy encryption {policy}"),
            ShowEncryptionPolicy => f.write_str(".show cluster policy encryption"),
            DeleteEncryptionPolicy => f.write_str(".delete cluster policy encryption"),
            DeleteDataPolicy { target, kind } => write!(f, ".delete {target} policy {kind}"),
            RenameTable { name, new_name } => write!(f, ".rename table {name} to {new_name}"),
            AlterMergeTable { table, with } => {
                write!(f, ".alter-merge table {table}")?;
                with_props(f, with)
            }
            CreateIngestionMapping { or_alter, table, kind, name, mapping } => write!(
                f,
                ".{} table {table} ingestion {} mapping {name} {mapping}",
                if *or_alter { "create-or-alter" } else { "create" },
                kind.name
            ),
            ShowIngestionMappings { table, kind, name } => {
                write!(f, ".show table {table} ingestion")?;
                if let Some(k) = kind {
                    write!(f, " {}", k.name)?;
                }
                match name {
                    Some(n) => write!(f, " mapping {n}"),
                    None => f.write_str(" mappings"),
                }
            }
            DropIngestionMapping { table, kind, name } => write!(f, ".drop table {table} ingestion {} mapping {name}", kind.name),
        }
    }
}

impl Display for DataPolicyKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> R {
        f.write_str(match self {
            DataPolicyKind::Caching => "caching",
            DataPolicyKind::Retention => "retention",
        })
    }
}

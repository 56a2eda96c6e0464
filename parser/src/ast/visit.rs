//! Walking the AST: [`Visitor`] (by shared reference) here, and
//! [`VisitorMut`](super::visit_mut::VisitorMut) (by mutable reference) in
//! [`visit_mut`](super::visit_mut), in the style of `syn::visit`.
//!
//! A visitor has one `visit_*` method per kind of node. Each one's default calls the free
//! `walk_*` function of the same name, which visits every child of the node in source order:
//! every expression, operator, statement and name below it, including lambda and function
//! bodies, `let` values, and the subqueries of `join`, `lookup`, `union`, `toscalar`,
//! `materialize`, `in (...)`, `mv-apply`, `fork`, `facet`, `partition` and the queries embedded
//! in management commands. A visitor overrides the methods of the nodes it looks at, and calls
//! the `walk_*` function from its override to keep going below, or not, to stop there.
//!
//! The walks destructure every node completely, without `..` and without a `_ =>` arm: adding
//! a field or a variant to the AST does not compile until the walks handle it, so no traversal
//! built on them can silently miss the new node.
//!
//! What they do not reach: the text of a row-level security policy in
//! `.alter ... policy row_level_security` (a string, parsed when the policy is validated), the
//! values inside `dynamic(...)` literals, and spans.
//!
//! ```
//! use kustodian_parser::ast::{Expr, ExprKind, Request};
//! use kustodian_parser::ast::visit::{self, Visitor};
//!
//! /// The names of the functions a request calls.
//! #[derive(Default)]
//! struct Calls(Vec<String>);
//!
//! impl<'ast> Visitor<'ast> for Calls {
//!     fn visit_expr(&mut self, e: &'ast Expr) {
//!         if let ExprKind::Call { name, .. } = &e.kind {
//!             self.0.push(name.name.clone());
//!         }
//!         visit::walk_expr(self, e);
//!     }
//! }
//!
//! let req = kustodian_parser::parse("T | where x > toscalar(U | summarize max(y))").unwrap();
//! let mut calls = Calls::default();
//! calls.visit_request(&req);
//! assert_eq!(calls.0, ["toscalar", "max"]);
//! ```

#![allow(clippy::too_many_lines)]

use super::*;

/// Defines a visitor trait and its walk functions. `Visitor` and `VisitorMut` are the same
/// code over `&'ast` and `&mut` references; match ergonomics make every pattern below bind
/// references of the right kind, so one text serves both.
macro_rules! visitor {
    (
        $(#[$attr:meta])*
        pub trait $Trait:ident $(<$lt:lifetime>)?;
        ref = [$($r:tt)+];
    ) => {
        $(#[$attr])*
        pub trait $Trait $(<$lt>)? {
            fn visit_request(&mut self, r: $($r)+ Request) {
                walk_request(self, r)
            }
            fn visit_query(&mut self, q: $($r)+ Query) {
                walk_query(self, q)
            }
            fn visit_statement(&mut self, s: $($r)+ Statement) {
                walk_statement(self, s)
            }
            fn visit_expr(&mut self, e: $($r)+ Expr) {
                walk_expr(self, e)
            }
            /// Every name: column and table references, but also `let` names, output column
            /// names, function names, member names, parameter and type names...
            fn visit_ident(&mut self, _i: $($r)+ Ident) {}
            fn visit_qualified_name(&mut self, n: $($r)+ QualifiedName) {
                walk_qualified_name(self, n)
            }
            fn visit_literal(&mut self, _l: $($r)+ Literal) {}
            fn visit_arg(&mut self, a: $($r)+ Arg) {
                walk_arg(self, a)
            }
            fn visit_named_expr(&mut self, n: $($r)+ NamedExpr) {
                walk_named_expr(self, n)
            }
            fn visit_type_spec(&mut self, t: $($r)+ TypeSpec) {
                walk_type_spec(self, t)
            }
            fn visit_schema(&mut self, s: $($r)+ Schema) {
                walk_schema(self, s)
            }
            fn visit_column_decl(&mut self, c: $($r)+ ColumnDecl) {
                walk_column_decl(self, c)
            }
            fn visit_param(&mut self, p: $($r)+ Param) {
                walk_param(self, p)
            }
            fn visit_lambda(&mut self, l: $($r)+ Lambda) {
                walk_lambda(self, l)
            }
            fn visit_property(&mut self, p: $($r)+ Property) {
                walk_property(self, p)
            }
            fn visit_op_param(&mut self, p: $($r)+ OpParam) {
                walk_op_param(self, p)
            }
            fn visit_operator(&mut self, o: $($r)+ Operator) {
                walk_operator(self, o)
            }
            fn visit_rename_item(&mut self, r: $($r)+ RenameItem) {
                walk_rename_item(self, r)
            }
            fn visit_reorder_item(&mut self, r: $($r)+ ReorderItem) {
                walk_reorder_item(self, r)
            }
            fn visit_summarize(&mut self, s: $($r)+ Summarize) {
                walk_summarize(self, s)
            }
            fn visit_sort_key(&mut self, k: $($r)+ SortKey) {
                walk_sort_key(self, k)
            }
            fn visit_top_nested_clause(&mut self, c: $($r)+ TopNestedClause) {
                walk_top_nested_clause(self, c)
            }
            /// `join` and `lookup`.
            fn visit_join(&mut self, j: $($r)+ Join) {
                walk_join(self, j)
            }
            /// `union` as an operator and as a source.
            fn visit_union(&mut self, u: $($r)+ Union) {
                walk_union(self, u)
            }
            fn visit_mv_expand(&mut self, m: $($r)+ MvExpand) {
                walk_mv_expand(self, m)
            }
            fn visit_mv_expand_item(&mut self, i: $($r)+ MvExpandItem) {
                walk_mv_expand_item(self, i)
            }
            fn visit_mv_apply(&mut self, m: $($r)+ MvApply) {
                walk_mv_apply(self, m)
            }
            fn visit_parse(&mut self, p: $($r)+ Parse) {
                walk_parse(self, p)
            }
            fn visit_parse_pattern_item(&mut self, i: $($r)+ ParsePatternItem) {
                walk_parse_pattern_item(self, i)
            }
            /// `evaluate` as an operator and as a source.
            fn visit_evaluate(&mut self, e: $($r)+ Evaluate) {
                walk_evaluate(self, e)
            }
            fn visit_make_series(&mut self, m: $($r)+ MakeSeries) {
                walk_make_series(self, m)
            }
            fn visit_make_series_agg(&mut self, a: $($r)+ MakeSeriesAgg) {
                walk_make_series_agg(self, a)
            }
            fn visit_make_series_range(&mut self, r: $($r)+ MakeSeriesRange) {
                walk_make_series_range(self, r)
            }
            /// `search` as an operator and as a source.
            fn visit_search(&mut self, s: $($r)+ Search) {
                walk_search(self, s)
            }
            /// `find` as an operator and as a source.
            fn visit_find(&mut self, f: $($r)+ Find) {
                walk_find(self, f)
            }
            fn visit_fork_branch(&mut self, b: $($r)+ ForkBranch) {
                walk_fork_branch(self, b)
            }
            fn visit_partition(&mut self, p: $($r)+ Partition) {
                walk_partition(self, p)
            }
            fn visit_scan(&mut self, s: $($r)+ Scan) {
                walk_scan(self, s)
            }
            fn visit_scan_step(&mut self, s: $($r)+ ScanStep) {
                walk_scan_step(self, s)
            }
            fn visit_command(&mut self, c: $($r)+ Command) {
                walk_command(self, c)
            }
            fn visit_table_def(&mut self, t: $($r)+ TableDef) {
                walk_table_def(self, t)
            }
            fn visit_policy_target(&mut self, t: $($r)+ PolicyTarget) {
                walk_policy_target(self, t)
            }
            fn visit_securable_entity(&mut self, e: $($r)+ SecurableEntity) {
                walk_securable_entity(self, e)
            }
        }

        pub fn walk_request<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, r: $($r)+ Request) {
            match r {
                Request::Query(q) => v.visit_query(q),
                Request::Command(c) => v.visit_command(c),
            }
        }

        pub fn walk_query<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, q: $($r)+ Query) {
            let Query { statements, span: _ } = q;
            for s in statements {
                v.visit_statement(s);
            }
        }

        pub fn walk_statement<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, s: $($r)+ Statement) {
            let Statement { kind, span: _ } = s;
            match kind {
                StatementKind::Let { name, value } => {
                    v.visit_ident(name);
                    v.visit_expr(value);
                }
                StatementKind::Set { name, value } => {
                    v.visit_ident(name);
                    if let Some(value) = value {
                        v.visit_expr(value);
                    }
                }
                StatementKind::DeclareQueryParameters(params) => {
                    for p in params {
                        v.visit_param(p);
                    }
                }
                StatementKind::DeclarePattern { name } => v.visit_ident(name),
                StatementKind::RestrictAccess(items) => {
                    for e in items {
                        v.visit_expr(e);
                    }
                }
                StatementKind::AliasDatabase { name, value } => {
                    v.visit_ident(name);
                    v.visit_expr(value);
                }
                StatementKind::Expr(e) => v.visit_expr(e),
            }
        }

        pub fn walk_expr<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, e: $($r)+ Expr) {
            let Expr { kind, span: _ } = e;
            match kind {
                ExprKind::Ident(i) => v.visit_ident(i),
                ExprKind::Literal(l) => v.visit_literal(l),
                ExprKind::Star | ExprKind::Wildcard(_) | ExprKind::JoinSide(_) => {}
                ExprKind::Binary { op: _, left, right } => {
                    v.visit_expr(left);
                    v.visit_expr(right);
                }
                ExprKind::Unary { op: _, expr } => v.visit_expr(expr),
                ExprKind::In { expr, negated: _, case_insensitive: _, list }
                | ExprKind::HasAny { expr, list }
                | ExprKind::HasAll { expr, list } => {
                    v.visit_expr(expr);
                    for x in list {
                        v.visit_expr(x);
                    }
                }
                ExprKind::Between { expr, negated: _, low, high } => {
                    v.visit_expr(expr);
                    v.visit_expr(low);
                    v.visit_expr(high);
                }
                ExprKind::Call { name, args } => {
                    v.visit_ident(name);
                    for a in args {
                        v.visit_arg(a);
                    }
                }
                ExprKind::MemberCall { expr, name, args } => {
                    v.visit_expr(expr);
                    v.visit_ident(name);
                    for a in args {
                        v.visit_arg(a);
                    }
                }
                ExprKind::Member { expr, name } => {
                    v.visit_expr(expr);
                    v.visit_ident(name);
                }
                ExprKind::MemberWildcard { expr, pattern: _ } => v.visit_expr(expr),
                ExprKind::Index { expr, index } => {
                    v.visit_expr(expr);
                    v.visit_expr(index);
                }
                ExprKind::Paren(inner) => v.visit_expr(inner),
                ExprKind::TypeOf(t) => v.visit_type_spec(t),
                ExprKind::Pipe { input, op } => {
                    v.visit_expr(input);
                    v.visit_operator(op);
                }
                ExprKind::Datatable { schema, values } => {
                    for c in schema {
                        v.visit_column_decl(c);
                    }
                    for x in values {
                        v.visit_expr(x);
                    }
                }
                ExprKind::Print(items) => {
                    for n in items {
                        v.visit_named_expr(n);
                    }
                }
                ExprKind::Range { name, from, to, step } => {
                    v.visit_ident(name);
                    v.visit_expr(from);
                    v.visit_expr(to);
                    v.visit_expr(step);
                }
                ExprKind::Union(u) => v.visit_union(u),
                ExprKind::Find(f) => v.visit_find(f),
                ExprKind::Search(s) => v.visit_search(s),
                ExprKind::Evaluate(x) => v.visit_evaluate(x),
                ExprKind::Externaldata { schema, uris, with } => {
                    for c in schema {
                        v.visit_column_decl(c);
                    }
                    for u in uris {
                        v.visit_literal(u);
                    }
                    for p in with {
                        v.visit_property(p);
                    }
                }
                ExprKind::Lambda(l) => v.visit_lambda(l),
            }
        }

        pub fn walk_qualified_name<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, n: $($r)+ QualifiedName) {
            let QualifiedName { database, name, span: _ } = n;
            if let Some(d) = database {
                v.visit_ident(d);
            }
            v.visit_ident(name);
        }

        pub fn walk_arg<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, a: $($r)+ Arg) {
            match a {
                Arg::Positional(e) => v.visit_expr(e),
                Arg::Named { name, value } => {
                    v.visit_ident(name);
                    v.visit_expr(value);
                }
            }
        }

        pub fn walk_named_expr<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, n: $($r)+ NamedExpr) {
            let NamedExpr { names, expr, span: _ } = n;
            for i in names {
                v.visit_ident(i);
            }
            v.visit_expr(expr);
        }

        pub fn walk_type_spec<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, t: $($r)+ TypeSpec) {
            match t {
                TypeSpec::Scalar(ty) => v.visit_ident(ty),
                TypeSpec::Tabular(s) => v.visit_schema(s),
            }
        }

        pub fn walk_schema<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, s: $($r)+ Schema) {
            let Schema { wildcard: _, columns, span: _ } = s;
            for c in columns {
                v.visit_column_decl(c);
            }
        }

        pub fn walk_column_decl<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, c: $($r)+ ColumnDecl) {
            let ColumnDecl { name, ty, span: _ } = c;
            v.visit_ident(name);
            v.visit_ident(ty);
        }

        pub fn walk_param<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, p: $($r)+ Param) {
            let Param { name, ty, default, span: _ } = p;
            v.visit_ident(name);
            match ty {
                ParamType::Scalar(t) => v.visit_ident(t),
                ParamType::Tabular(s) => v.visit_schema(s),
            }
            if let Some(d) = default {
                v.visit_expr(d);
            }
        }

        pub fn walk_lambda<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, l: $($r)+ Lambda) {
            let Lambda { params, body, is_view: _, body_span: _ } = l;
            for p in params {
                v.visit_param(p);
            }
            for s in body {
                v.visit_statement(s);
            }
        }

        pub fn walk_property<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, p: $($r)+ Property) {
            let Property { name, values, span: _ } = p;
            v.visit_ident(name);
            for x in values {
                v.visit_expr(x);
            }
        }

        pub fn walk_op_param<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, p: $($r)+ OpParam) {
            let OpParam { name, value, span: _ } = p;
            v.visit_ident(name);
            v.visit_expr(value);
        }

        pub fn walk_operator<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, o: $($r)+ Operator) {
            let Operator { kind, span: _ } = o;
            match kind {
                OperatorKind::Where(e)
                | OperatorKind::Take(e)
                | OperatorKind::Sample(e)
                | OperatorKind::Invoke(e) => v.visit_expr(e),
                OperatorKind::Project(items)
                | OperatorKind::Extend(items)
                | OperatorKind::Serialize(items) => {
                    for n in items {
                        v.visit_named_expr(n);
                    }
                }
                OperatorKind::ProjectAway(items) | OperatorKind::ProjectKeep(items) | OperatorKind::ProjectByNames(items) => {
                    for e in items {
                        v.visit_expr(e);
                    }
                }
                OperatorKind::ProjectRename(items) => {
                    for r in items {
                        v.visit_rename_item(r);
                    }
                }
                OperatorKind::ProjectReorder(items) => {
                    for r in items {
                        v.visit_reorder_item(r);
                    }
                }
                OperatorKind::Summarize(s) => v.visit_summarize(s),
                OperatorKind::Count | OperatorKind::Getschema => {}
                OperatorKind::CountAs(name) => v.visit_ident(name),
                OperatorKind::Top { count, by } => {
                    v.visit_expr(count);
                    v.visit_sort_key(by);
                }
                OperatorKind::TopNested(clauses) => {
                    for c in clauses {
                        v.visit_top_nested_clause(c);
                    }
                }
                OperatorKind::TopHitters { count, of, by } => {
                    v.visit_expr(count);
                    v.visit_expr(of);
                    if let Some(by) = by {
                        v.visit_expr(by);
                    }
                }
                OperatorKind::Sort { params, by } => {
                    for p in params {
                        v.visit_op_param(p);
                    }
                    for k in by {
                        v.visit_sort_key(k);
                    }
                }
                OperatorKind::Distinct { params, columns } => {
                    for p in params {
                        v.visit_op_param(p);
                    }
                    for n in columns {
                        v.visit_named_expr(n);
                    }
                }
                OperatorKind::Join(j) | OperatorKind::Lookup(j) => v.visit_join(j),
                OperatorKind::Union(u) => v.visit_union(u),
                OperatorKind::As { params, name } => {
                    for p in params {
                        v.visit_op_param(p);
                    }
                    v.visit_ident(name);
                }
                OperatorKind::MvExpand(m) => v.visit_mv_expand(m),
                OperatorKind::MvApply(m) => v.visit_mv_apply(m),
                OperatorKind::Parse(p) => v.visit_parse(p),
                OperatorKind::ParseKv { expr, columns, with } => {
                    v.visit_expr(expr);
                    for c in columns {
                        v.visit_column_decl(c);
                    }
                    for p in with {
                        v.visit_property(p);
                    }
                }
                OperatorKind::Evaluate(x) => v.visit_evaluate(x),
                OperatorKind::MakeSeries(m) => v.visit_make_series(m),
                OperatorKind::MakeGraph(MakeGraph { source, target, nodes, node_id, partitioned_by }) => {
                    v.visit_ident(source);
                    v.visit_ident(target);
                    for GraphNodes { table, id } in nodes {
                        v.visit_expr(table);
                        v.visit_ident(id);
                    }
                    if let Some(id) = node_id {
                        v.visit_ident(id);
                    }
                    if let Some((c, ops)) = partitioned_by {
                        v.visit_ident(c);
                        for o in ops {
                            v.visit_operator(o);
                        }
                    }
                }
                OperatorKind::GraphMatch(GraphMatch { params, patterns: _, predicate, project })
                | OperatorKind::GraphShortestPaths(GraphMatch { params, patterns: _, predicate, project }) => {
                    for p in params {
                        v.visit_op_param(p);
                    }
                    if let Some(e) = predicate {
                        v.visit_expr(e);
                    }
                    for n in project {
                        v.visit_named_expr(n);
                    }
                }
                OperatorKind::GraphToTable(_) => {}
                OperatorKind::GraphMarkComponents(params) => {
                    for p in params {
                        v.visit_op_param(p);
                    }
                }
                OperatorKind::SampleDistinct { count, of } => {
                    v.visit_expr(count);
                    v.visit_expr(of);
                }
                OperatorKind::Search(s) => v.visit_search(s),
                OperatorKind::Find(f) => v.visit_find(f),
                OperatorKind::Render { chart, with, legacy: _ } => {
                    v.visit_ident(chart);
                    for p in with {
                        v.visit_property(p);
                    }
                }
                OperatorKind::Fork(branches) => {
                    for b in branches {
                        v.visit_fork_branch(b);
                    }
                }
                OperatorKind::Facet { by, with } => {
                    for i in by {
                        v.visit_ident(i);
                    }
                    for o in with {
                        v.visit_operator(o);
                    }
                }
                OperatorKind::Partition(p) => v.visit_partition(p),
                OperatorKind::Scan(s) => v.visit_scan(s),
                OperatorKind::Reduce { params, by, with } => {
                    for p in params {
                        v.visit_op_param(p);
                    }
                    v.visit_expr(by);
                    for p in with {
                        v.visit_property(p);
                    }
                }
                OperatorKind::Consume(params) => {
                    for p in params {
                        v.visit_op_param(p);
                    }
                }
            }
        }

        pub fn walk_rename_item<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, r: $($r)+ RenameItem) {
            let RenameItem { new, old, span: _ } = r;
            v.visit_ident(new);
            v.visit_ident(old);
        }

        pub fn walk_reorder_item<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, r: $($r)+ ReorderItem) {
            let ReorderItem { column, order: _, span: _ } = r;
            v.visit_expr(column);
        }

        pub fn walk_summarize<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, s: $($r)+ Summarize) {
            let Summarize { hints, aggregates, by } = s;
            for p in hints {
                v.visit_op_param(p);
            }
            for n in aggregates {
                v.visit_named_expr(n);
            }
            for n in by {
                v.visit_named_expr(n);
            }
        }

        pub fn walk_sort_key<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, k: $($r)+ SortKey) {
            let SortKey { expr, desc: _, nulls_first: _, span: _ } = k;
            v.visit_expr(expr);
        }

        pub fn walk_top_nested_clause<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, c: $($r)+ TopNestedClause) {
            let TopNestedClause { count, of, others, by, desc: _, span: _ } = c;
            if let Some(n) = count {
                v.visit_expr(n);
            }
            v.visit_named_expr(of);
            if let Some(o) = others {
                v.visit_expr(o);
            }
            v.visit_named_expr(by);
        }

        pub fn walk_join<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, j: $($r)+ Join) {
            let Join { params, right, on } = j;
            for p in params {
                v.visit_op_param(p);
            }
            v.visit_expr(right);
            for c in on {
                v.visit_expr(c);
            }
        }

        pub fn walk_union<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, u: $($r)+ Union) {
            let Union { params, tables } = u;
            for p in params {
                v.visit_op_param(p);
            }
            for t in tables {
                v.visit_expr(t);
            }
        }

        pub fn walk_mv_expand<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, m: $($r)+ MvExpand) {
            let MvExpand { params, items, limit } = m;
            for p in params {
                v.visit_op_param(p);
            }
            for i in items {
                v.visit_mv_expand_item(i);
            }
            if let Some(n) = limit {
                v.visit_expr(n);
            }
        }

        pub fn walk_mv_expand_item<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, i: $($r)+ MvExpandItem) {
            let MvExpandItem { expr, to_type, span: _ } = i;
            v.visit_named_expr(expr);
            if let Some(t) = to_type {
                v.visit_ident(t);
            }
        }

        pub fn walk_mv_apply<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, m: $($r)+ MvApply) {
            let MvApply { params, items, limit, on } = m;
            for p in params {
                v.visit_op_param(p);
            }
            for i in items {
                v.visit_mv_expand_item(i);
            }
            if let Some(n) = limit {
                v.visit_expr(n);
            }
            for o in on {
                v.visit_operator(o);
            }
        }

        pub fn walk_parse<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, p: $($r)+ Parse) {
            let Parse { is_where: _, params, expr, pattern } = p;
            for x in params {
                v.visit_op_param(x);
            }
            v.visit_expr(expr);
            for i in pattern {
                v.visit_parse_pattern_item(i);
            }
        }

        pub fn walk_parse_pattern_item<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, i: $($r)+ ParsePatternItem) {
            match i {
                ParsePatternItem::Star(_) => {}
                ParsePatternItem::Literal(l) => v.visit_literal(l),
                ParsePatternItem::Column { name, ty } => {
                    v.visit_ident(name);
                    if let Some(t) = ty {
                        v.visit_ident(t);
                    }
                }
            }
        }

        pub fn walk_evaluate<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, e: $($r)+ Evaluate) {
            let Evaluate { params, call, schema: _ } = e;
            for p in params {
                v.visit_op_param(p);
            }
            v.visit_expr(call);
        }

        pub fn walk_make_series<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, m: $($r)+ MakeSeries) {
            let MakeSeries { params, aggregates, on, range, by } = m;
            for p in params {
                v.visit_op_param(p);
            }
            for a in aggregates {
                v.visit_make_series_agg(a);
            }
            v.visit_expr(on);
            v.visit_make_series_range(range);
            for n in by {
                v.visit_named_expr(n);
            }
        }

        pub fn walk_make_series_agg<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, a: $($r)+ MakeSeriesAgg) {
            let MakeSeriesAgg { expr, default, span: _ } = a;
            v.visit_named_expr(expr);
            if let Some(d) = default {
                v.visit_expr(d);
            }
        }

        pub fn walk_make_series_range<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, r: $($r)+ MakeSeriesRange) {
            match r {
                MakeSeriesRange::FromToStep { from, to, step } => {
                    if let Some(f) = from {
                        v.visit_expr(f);
                    }
                    if let Some(t) = to {
                        v.visit_expr(t);
                    }
                    v.visit_expr(step);
                }
                MakeSeriesRange::InRange { start, stop, step } => {
                    v.visit_expr(start);
                    v.visit_expr(stop);
                    v.visit_expr(step);
                }
            }
        }

        pub fn walk_search<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, s: $($r)+ Search) {
            let Search { params, tables, predicate } = s;
            for p in params {
                v.visit_op_param(p);
            }
            for t in tables {
                v.visit_expr(t);
            }
            v.visit_expr(predicate);
        }

        pub fn walk_find<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, f: $($r)+ Find) {
            let Find { params, tables, predicate, project } = f;
            for p in params {
                v.visit_op_param(p);
            }
            for t in tables {
                v.visit_expr(t);
            }
            v.visit_expr(predicate);
            match project {
                Some(FindProject::Columns(cols)) => {
                    for c in cols {
                        v.visit_expr(c);
                    }
                }
                Some(FindProject::Smart) | None => {}
            }
        }

        pub fn walk_fork_branch<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, b: $($r)+ ForkBranch) {
            let ForkBranch { name, ops, span: _ } = b;
            if let Some(n) = name {
                v.visit_ident(n);
            }
            for o in ops {
                v.visit_operator(o);
            }
        }

        pub fn walk_partition<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, p: $($r)+ Partition) {
            let Partition { params, by, body } = p;
            for x in params {
                v.visit_op_param(x);
            }
            v.visit_expr(by);
            match body {
                PartitionBody::Operators(ops) => {
                    for o in ops {
                        v.visit_operator(o);
                    }
                }
                PartitionBody::Expr(e) => v.visit_expr(e),
            }
        }

        pub fn walk_scan<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, s: $($r)+ Scan) {
            let Scan { params, order_by, partition_by, declare, steps } = s;
            for p in params {
                v.visit_op_param(p);
            }
            for k in order_by {
                v.visit_sort_key(k);
            }
            for e in partition_by {
                v.visit_expr(e);
            }
            for p in declare {
                v.visit_param(p);
            }
            for st in steps {
                v.visit_scan_step(st);
            }
        }

        pub fn walk_scan_step<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, s: $($r)+ ScanStep) {
            let ScanStep { name, optional: _, output, condition, assignments, span: _ } = s;
            v.visit_ident(name);
            if let Some(o) = output {
                v.visit_ident(o);
            }
            v.visit_expr(condition);
            for (column, value) in assignments {
                v.visit_ident(column);
                v.visit_expr(value);
            }
        }

        pub fn walk_command<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, c: $($r)+ Command) {
            let Command { kind, pipe, span: _ } = c;
            match kind {
                CommandKind::CreateDatabase { name, persistence, if_not_exists: _ } => {
                    v.visit_ident(name);
                    match persistence {
                        Some(DatabasePersistence::Persist(paths)) => {
                            for p in paths {
                                v.visit_literal(p);
                            }
                        }
                        Some(DatabasePersistence::Volatile) | None => {}
                    }
                }
                CommandKind::DropDatabase { name, if_exists: _ }
                | CommandKind::ShowFunction { name }
                | CommandKind::DropFunction { name, if_exists: _ }
                | CommandKind::ShowMaterializedView { name }
                | CommandKind::DropMaterializedView { name, if_exists: _ } => v.visit_ident(name),
                CommandKind::CreateTable { merge: _, table, with } => {
                    v.visit_table_def(table);
                    for p in with {
                        v.visit_property(p);
                    }
                }
                CommandKind::CreateTables { merge: _, tables, with } => {
                    for t in tables {
                        v.visit_table_def(t);
                    }
                    for p in with {
                        v.visit_property(p);
                    }
                }
                CommandKind::CreateTableBasedOn { name, source, with } => {
                    v.visit_qualified_name(name);
                    v.visit_qualified_name(source);
                    for p in with {
                        v.visit_property(p);
                    }
                }
                CommandKind::DropTable { name, if_exists: _ }
                | CommandKind::ShowTable { name }
                | CommandKind::ShowTableSchema { name, format: _ }
                | CommandKind::ShowTableDetails { name } => v.visit_qualified_name(name),
                CommandKind::DropTables { names, if_exists: _ }
                | CommandKind::ShowTablesSubset { names, details: _ } => {
                    for n in names {
                        v.visit_qualified_name(n);
                    }
                }
                CommandKind::ShowTables { details: _ }
                | CommandKind::ShowDatabases
                | CommandKind::ShowFunctions
                | CommandKind::ShowMaterializedViews => {}
                CommandKind::ShowDatabasesSubset { names, details: _ }
                | CommandKind::DropFunctions { names, if_exists: _ } => {
                    for n in names {
                        v.visit_ident(n);
                    }
                }
                CommandKind::ShowDatabaseSchema { name, format: _, with } => {
                    if let Some(n) = name {
                        v.visit_ident(n);
                    }
                    for p in with {
                        v.visit_property(p);
                    }
                }
                CommandKind::IngestInline { table, with, data: _ } => {
                    v.visit_qualified_name(table);
                    for p in with {
                        v.visit_property(p);
                    }
                }
                CommandKind::Ingest { is_async: _, table, sources, with } => {
                    v.visit_qualified_name(table);
                    for s in sources {
                        v.visit_literal(s);
                    }
                    for p in with {
                        v.visit_property(p);
                    }
                }
                CommandKind::TableFromQuery { mode: _, is_async: _, table, with, query } => {
                    v.visit_qualified_name(table);
                    for p in with {
                        v.visit_property(p);
                    }
                    v.visit_query(query);
                }
                CommandKind::CreateFunction {
                    mode: _,
                    if_not_exists: _,
                    with,
                    name,
                    params,
                    body,
                    body_span: _,
                } => {
                    for p in with {
                        v.visit_property(p);
                    }
                    v.visit_ident(name);
                    for p in params {
                        v.visit_param(p);
                    }
                    for s in body {
                        v.visit_statement(s);
                    }
                }
                // The policy's query is text here; it is parsed when the policy is validated.
                CommandKind::AlterRowLevelSecurity { target, enable: _, with, query: _ } => {
                    v.visit_policy_target(target);
                    for p in with {
                        v.visit_property(p);
                    }
                }
                CommandKind::ShowRowLevelSecurity { target }
                | CommandKind::DeleteRowLevelSecurity { target }
                | CommandKind::AlterRestrictedViewAccess { target, enable: _ }
                | CommandKind::ShowRestrictedViewAccess { target }
                | CommandKind::DeleteRestrictedViewAccess { target } => v.visit_policy_target(target),
                CommandKind::ChangePrincipals {
                    action: _,
                    entity,
                    role,
                    principals,
                    none: _,
                    skip_results: _,
                    notes,
                } => {
                    v.visit_securable_entity(entity);
                    v.visit_ident(role);
                    for p in principals {
                        v.visit_literal(p);
                    }
                    if let Some(n) = notes {
                        v.visit_literal(n);
                    }
                }
                CommandKind::ShowPrincipals { entity } => v.visit_securable_entity(entity),
                CommandKind::ShowPrincipalRoles { entity, principal, with } => {
                    if let Some(e) = entity {
                        v.visit_securable_entity(e);
                    }
                    if let Some(p) = principal {
                        v.visit_literal(p);
                    }
                    for p in with {
                        v.visit_property(p);
                    }
                }
                CommandKind::ClearGroupMembershipCache { with }
                | CommandKind::ShowIngestionFailures { with } => {
                    for p in with {
                        v.visit_property(p);
                    }
                }
                CommandKind::CreateMaterializedView { if_not_exists: _, with, name, source, query } => {
                    for p in with {
                        v.visit_property(p);
                    }
                    v.visit_ident(name);
                    v.visit_ident(source);
                    v.visit_query(query);
                }
                CommandKind::EnableMaterializedView { name, enable: _, with } => {
                    v.visit_ident(name);
                    for p in with {
                        v.visit_property(p);
                    }
                }
                CommandKind::ShowExtents { scope, hot: _, tags } => {
                    match scope {
                        ExtentScope::Table(n) => v.visit_qualified_name(n),
                        ExtentScope::Tables(names) => {
                            for n in names {
                                v.visit_qualified_name(n);
                            }
                        }
                        ExtentScope::Database(Some(n)) => v.visit_ident(n),
                        ExtentScope::Database(None) | ExtentScope::Cluster => {}
                    }
                    for TagFilter { op: _, value, span: _ } in tags {
                        v.visit_literal(value);
                    }
                }
                CommandKind::DropExtents { ids, table, all_tables: _, older } => {
                    for id in ids {
                        v.visit_literal(id);
                    }
                    if let Some(t) = table {
                        v.visit_qualified_name(t);
                    }
                    if let Some((_, unit)) = older {
                        v.visit_ident(unit);
                    }
                }
                CommandKind::DropExtentsFrom { whatif: _, source } => match source {
                    ExtentSource::Command(c) => v.visit_command(c),
                    ExtentSource::Query(q) => v.visit_query(q),
                },
                CommandKind::AlterCachingPolicy { target, hot: _ }
                | CommandKind::ShowDataPolicy { target, kind: _ }
                | CommandKind::DeleteDataPolicy { target, kind: _ } => v.visit_policy_target(target),
                CommandKind::AlterEncryptionPolicy { policy } => v.visit_literal(policy),
                CommandKind::ShowEncryptionPolicy | CommandKind::DeleteEncryptionPolicy => {}
                CommandKind::AlterRetentionPolicy { target, merge: _, softdelete: _, recoverability, json } => {
                    v.visit_policy_target(target);
                    if let Some(r) = recoverability {
                        v.visit_ident(r);
                    }
                    if let Some(j) = json {
                        v.visit_literal(j);
                    }
                }
                CommandKind::RenameTable { name, new_name } => {
                    v.visit_qualified_name(name);
                    v.visit_ident(new_name);
                }
                CommandKind::AlterMergeTable { table, with } => {
                    v.visit_table_def(table);
                    for p in with {
                        v.visit_property(p);
                    }
                }
                CommandKind::CreateIngestionMapping { or_alter: _, table, kind, name, mapping } => {
                    v.visit_qualified_name(table);
                    v.visit_ident(kind);
                    v.visit_literal(name);
                    v.visit_literal(mapping);
                }
                CommandKind::ShowIngestionMappings { table, kind, name } => {
                    v.visit_qualified_name(table);
                    if let Some(k) = kind {
                        v.visit_ident(k);
                    }
                    if let Some(n) = name {
                        v.visit_literal(n);
                    }
                }
                CommandKind::DropIngestionMapping { table, kind, name } => {
                    v.visit_qualified_name(table);
                    v.visit_ident(kind);
                    v.visit_literal(name);
                }
            }
            for o in pipe {
                v.visit_operator(o);
            }
        }

        pub fn walk_table_def<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, t: $($r)+ TableDef) {
            let TableDef { name, columns, span: _ } = t;
            v.visit_qualified_name(name);
            for c in columns {
                v.visit_column_decl(c);
            }
        }

        pub fn walk_policy_target<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, t: $($r)+ PolicyTarget) {
            match t {
                PolicyTarget::Table(n) | PolicyTarget::MaterializedView(n) => v.visit_qualified_name(n),
                PolicyTarget::AllTables => {}
                PolicyTarget::Database(n) => v.visit_ident(n),
                PolicyTarget::Tables(names) => {
                    for n in names {
                        v.visit_qualified_name(n);
                    }
                }
            }
        }

        pub fn walk_securable_entity<$($lt,)? V: $Trait$(<$lt>)? + ?Sized>(v: &mut V, e: $($r)+ SecurableEntity) {
            match e {
                SecurableEntity::Database(name) => {
                    if let Some(n) = name {
                        v.visit_ident(n);
                    }
                }
                SecurableEntity::Table(n) => v.visit_qualified_name(n),
                SecurableEntity::Function(n)
                | SecurableEntity::MaterializedView(n)
                | SecurableEntity::ExternalTable(n) => v.visit_ident(n),
                SecurableEntity::Cluster => {}
            }
        }
    };
}

pub(crate) use visitor;

visitor! {
    /// A walk over the AST by shared reference; `'ast` lets a visitor keep references to the
    /// nodes it finds. See the [module documentation](self).
    pub trait Visitor<'ast>;
    ref = [&'ast];
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::visit_mut::{self, VisitorMut};
    use super::*;

    fn parse(text: &str) -> Request {
        crate::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// The column and table references (`ExprKind::Ident`) a walk reaches.
    #[derive(Default)]
    struct Refs(Vec<String>);

    impl<'ast> Visitor<'ast> for Refs {
        fn visit_expr(&mut self, e: &'ast Expr) {
            if let ExprKind::Ident(i) = &e.kind {
                self.0.push(i.name.clone());
            }
            walk_expr(self, e);
        }
    }

    /// Renames every reference `needle` to `found`.
    struct Rename;

    impl VisitorMut for Rename {
        fn visit_expr(&mut self, e: &mut Expr) {
            if let ExprKind::Ident(i) = &mut e.kind
                && i.name == "needle"
            {
                i.name = "found".into();
            }
            visit_mut::walk_expr(self, e);
        }
    }

    /// Each text holds one reference `needle`, somewhere a walk must reach.
    const PLACES: &[&str] = &[
        // Operators' expressions.
        "T | where needle > 1",
        "T | summarize count() by needle",
        "T | summarize sum(needle) by k",
        "T | summarize count() by bin(needle, 1h)",
        "T | extend x = needle",
        "T | project x = strlen(needle)",
        "T | project-away needle",
        "T | project-keep needle",
        "T | project-reorder needle asc",
        "T | top 3 by needle desc",
        "T | take needle",
        "T | sample needle",
        "T | sort by needle asc",
        "T | distinct needle",
        "T | serialize x = needle",
        "T | top-nested 3 of needle by count()",
        "T | top-nested 3 of k with others = needle by count()",
        "T | top-hitters 3 of k by needle",
        "T | sample-distinct 3 of needle",
        "T | mv-expand needle",
        "T | mv-expand x = needle to typeof(long)",
        "T | mv-expand d limit needle",
        "T | mv-apply x = d on (where x > needle)",
        "T | parse needle with 'a' x:long",
        "T | parse-kv needle as (a:string) with (pair_delimiter=',')",
        "T | make-series count() default = needle on ts step 1h",
        "T | make-series count() on needle from 0 to 10 step 1",
        "T | make-series count() on ts in range(needle, 10, 1)",
        "T | make-series count() on ts step 1h by needle",
        "T | render timechart with (ycolumns = needle)",
        "T | reduce by needle",
        "T | scan with (step s: needle > 1;)",
        "T | scan with (step s: x > 1 => y = needle;)",
        "T | scan order by needle with (step s: x > 1;)",
        "T | scan partition by needle with (step s: x > 1;)",
        "T | scan declare (y:long = needle) with (step s: x > 1;)",
        "T | evaluate bag_unpack(needle)",
        "T | invoke f(needle)",
        "T | sort hint.strategy = needle by x",
        // Subqueries.
        "T | join kind=inner (U | where needle > 1) on k",
        "T | join (U) on $left.a == $right.b, needle",
        "T | lookup (needle) on k",
        "T | union (U | where needle > 1)",
        "union T, (needle | take 1)",
        "T | where x in (U | where needle > 1 | project x)",
        "T | where x has_any (U | project needle)",
        "T | where x has_all (needle)",
        "T | where x between (needle .. 10)",
        "T | where x > toscalar(U | summarize max(needle))",
        "let m = materialize(T | where needle > 1); m",
        "T | fork (where needle > 1) (take 1)",
        "T | fork a = (where needle > 1)",
        "T | facet by k with (where needle > 1)",
        "T | partition by k (where needle > 1)",
        "T | partition by k { U | where needle > 1 }",
        "T | partition by needle (take 1)",
        "search in (T) needle: 'x'",
        "T | search needle: 'x'",
        "find in (T) where needle > 1 project x",
        "find in (T) where x > 1 project needle",
        // Statements, lambdas and functions.
        "let x = needle; x",
        "let f = (a:long) { a + needle }; T | extend y = f(1)",
        "let f = (a:long = needle) { a }; T | extend y = f()",
        "let f = () { let inner = needle; T | where x > inner }; f()",
        "let v = view () { T | where needle > 1 }; v",
        "set query_now = needle; T",
        "restrict access to (needle); T",
        "declare query_parameters(p:long = needle); T",
        "print x = needle",
        "range x from needle to 10 step 1",
        "T | where needle.b[0] > 1",
        "T | where d[needle] > 1",
        "T | where f(a = needle)",
        "T | where -needle > 1",
        "T | where (needle)",
        "database('db').T | where needle > 1",
        // Commands.
        ".set T <| U | where needle > 1",
        ".append T <| needle",
        ".create function f() { T | where needle > 1 }",
        ".create function f(a:long = needle) { a }",
        ".create materialized-view V on table T { T | summarize count() by needle }",
        ".show tables | where needle > 1",
    ];

    #[test]
    fn both_walks_reach_every_place() {
        for text in PLACES {
            let mut req = parse(text);
            let mut refs = Refs::default();
            refs.visit_request(&req);
            assert!(refs.0.iter().any(|n| n == "needle"), "Visitor missed it in {text:?}: {:?}", refs.0);
            Rename.visit_request(&mut req);
            let printed = req.to_string();
            assert!(
                !printed.contains("needle") && printed.contains("found"),
                "VisitorMut missed it in {text:?}: {printed}"
            );
        }
    }

    #[test]
    fn a_walk_goes_in_source_order_and_can_stop() {
        let req = parse("T | where a > 1 | extend b = c | join (U | where d > 1) on e");
        let mut refs = Refs::default();
        refs.visit_request(&req);
        assert_eq!(refs.0, ["T", "a", "c", "U", "d", "e"]);

        /// Stays out of subqueries.
        #[derive(Default)]
        struct Outer(Refs);
        impl<'ast> Visitor<'ast> for Outer {
            fn visit_join(&mut self, j: &'ast Join) {
                for c in &j.on {
                    self.visit_expr(c);
                }
            }
            fn visit_expr(&mut self, e: &'ast Expr) {
                if let ExprKind::Ident(i) = &e.kind {
                    self.0.0.push(i.name.clone());
                }
                walk_expr(self, e);
            }
        }
        let mut outer = Outer::default();
        outer.visit_request(&req);
        assert_eq!(outer.0.0, ["T", "a", "c", "e"]);
    }

    /// Counts every name a walk reaches.
    #[derive(Default)]
    struct Names(usize);

    impl Visitor<'_> for Names {
        fn visit_ident(&mut self, _: &Ident) {
            self.0 += 1;
        }
    }

    impl VisitorMut for Names {
        fn visit_ident(&mut self, _: &mut Ident) {
            self.0 += 1;
        }
    }

    /// Names in the serialized AST: objects whose `name` is a string are [`Ident`]s.
    fn serialized_names(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Object(m) => {
                usize::from(m.get("name").is_some_and(serde_json::Value::is_string))
                    + m.values().map(serialized_names).sum::<usize>()
            }
            serde_json::Value::Array(a) => a.iter().map(serialized_names).sum(),
            _ => 0,
        }
    }

    /// Every name of every request of the parse corpus is reached, by both walks: a walk that
    /// skipped a field would skip its names.
    #[test]
    fn the_walks_reach_every_name_of_the_parse_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/parse/ok");
        let mut cases = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "kql") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut req = parse(&text);
            let expected = serialized_names(&serde_json::to_value(&req).unwrap());
            let mut names = Names::default();
            Visitor::visit_request(&mut names, &req);
            assert_eq!(names.0, expected, "{}", path.display());
            let mut names = Names::default();
            VisitorMut::visit_request(&mut names, &mut req);
            assert_eq!(names.0, expected, "{}", path.display());
            cases += 1;
        }
        assert!(cases > 300, "only {cases} corpus cases");
    }
}

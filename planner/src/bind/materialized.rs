//! `materialized_view("V" [, max_age])`: reads a materialized view through
//! [`Binder::resolve_table`], the one choke point (its RLS policy is substituted there).

use kustodian_parser::ast::{self, ExprKind, Span};

use super::{Binder, Rel, Scope};
use crate::error::Result;

impl<'a> Binder<'a> {
    /// Kustodian's materialized views are always fully materialized (no delta), so `max_age`
    /// changes nothing; it must still be a timespan when given.
    pub(crate) fn bind_materialized_view(&mut self, args: &[ast::Arg], span: Span, scope: &Scope) -> Result<Rel> {
        let (first, rest) = match args {
            [first, rest @ ..] if rest.len() <= 1 => (first, rest),
            _ => return Err(self.semantic("materialized_view() takes a view name and an optional max_age", span)),
        };
        let name = match &first.expr().kind {
            ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => s.clone(),
            _ => {
                let v = self.bind_scalar(first.expr(), None, scope)?;
                match super::scalar::const_string(&v) {
                    Some(s) => s,
                    None => return Err(self.semantic("materialized_view() takes a constant string", span)),
                }
            }
        };
        if let Some(age) = rest.first() {
            let v = self.bind_scalar(age.expr(), None, scope)?;
            if v.ty != crate::types::KqlType::Timespan {
                return Err(self.semantic("materialized_view()'s max_age must be a timespan", span));
            }
        }
        let db = self.database.clone();
        match self.catalog.table(&db, &name)? {
            Some(info) if info.materialized_view => self.resolve_table(&db, &name, span),
            _ => Err(self.semantic(format!("unknown materialized view '{name}' in database '{db}'"), span)),
        }
    }
}

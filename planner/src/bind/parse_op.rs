//! The `parse` / `parse-where` operators: the pattern becomes one regex whose extracted
//! columns are named capture groups (so capture groups in a `kind=regex` pattern's own text
//! do not shift them); each column is converted to its declared type (string by default).

use datafusion::logical_expr::{Expr as DfExpr, lit, when};
use kustodian_parser::ast::{self, Span};

use super::sources::param_word;
use super::{Binder, Rel, Scope};
use crate::error::Result;
use crate::functions::{self, TypedExpr};
use crate::types::{KqlColumn, KqlSchema, KqlType};

#[derive(Clone, Copy, PartialEq, Eq)]
enum ParseKind {
    Simple,
    Relaxed,
    Regex,
}

impl<'a> Binder<'a> {
    /// `parse` / `parse-where`.
    ///
    /// * `simple` (default): literals match exactly, `*` and string columns are lazy (the last
    ///   one runs to the end). The match is strict: when a typed column fails to convert, all
    ///   the extracted columns of the row are null (empty for strings).
    /// * `relaxed`: as `simple`, but a typed column that fails to convert is null on its own.
    /// * `regex`: literals are regexes; `*` and string columns are greedy unless `flags=U`
    ///   (numbers are always matched whole). Strict like `simple`.
    ///
    /// Rows that do not match get empty strings and nulls (`parse`) or are dropped
    /// (`parse-where`).
    pub(super) fn plan_parse(&mut self, rel: Rel, p: &ast::Parse, scope: &Scope, span: Span) -> Result<Rel> {
        let mut kind = "simple".to_string();
        let mut flags = String::new();
        for prm in &p.params {
            match prm.name.name.to_ascii_lowercase().as_str() {
                "kind" => kind = param_word(&prm.value).unwrap_or_default().to_ascii_lowercase(),
                "flags" => flags = param_word(&prm.value).unwrap_or_default(),
                _ => return Err(self.semantic(format!("unknown parse parameter '{}'", prm.name.name), prm.span)),
            }
        }
        let kind = match kind.as_str() {
            "simple" => ParseKind::Simple,
            "relaxed" => ParseKind::Relaxed,
            "regex" => ParseKind::Regex,
            other => return Err(self.semantic(format!("unknown parse kind '{other}'"), span)),
        };
        let mut re = String::new();
        let mut ungreedy = false;
        if kind == ParseKind::Regex {
            let mut f = String::new();
            for c in flags.chars() {
                if matches!(c, 'i' | 'm' | 's' | 'U' | 'x') && !f.contains(c) {
                    f.push(c);
                }
            }
            ungreedy = f.contains('U');
            if !f.is_empty() {
                re.push_str(&format!("(?{f})"));
            }
        }
        re.push('^');
        let mut columns: Vec<(String, KqlType)> = Vec::new();
        let n = p.pattern.len();
        for (i, item) in p.pattern.iter().enumerate() {
            let last = i + 1 == n;
            match item {
                ast::ParsePatternItem::Star(_) => re.push_str(match kind {
                    // Greedy; `flags=U` swaps it to lazy.
                    ParseKind::Regex => "(?:.*)",
                    _ if last => "(?:.*)",
                    _ => "(?:.*?)",
                }),
                ast::ParsePatternItem::Literal(l) => {
                    let text = match &l.kind {
                        ast::LiteralKind::String(t) | ast::LiteralKind::ObfuscatedString(t) => t.clone(),
                        _ => return Err(self.semantic("parse patterns hold string constants", l.span)),
                    };
                    if kind == ParseKind::Regex {
                        re.push_str(&format!("(?:{text})"));
                    } else {
                        re.push_str(&regex::escape(&text));
                    }
                }
                ast::ParsePatternItem::Column { name, ty } => {
                    let t = match ty {
                        Some(t) => self.type_name(t)?,
                        None => KqlType::String,
                    };
                    let number = match t {
                        KqlType::Long | KqlType::Int => Some(r"-?\d+"),
                        KqlType::Real => Some(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"),
                        _ => None,
                    };
                    let body = match (number, kind) {
                        // A number is matched whole, also under `flags=U`.
                        (Some(num), ParseKind::Regex) if ungreedy => format!("(?-U:{num})"),
                        (Some(num), ParseKind::Relaxed) => format!("{num}|.*?"),
                        (Some(num), _) => num.to_string(),
                        (None, ParseKind::Regex) => ".*".to_string(),
                        (None, _) if last => ".*".to_string(),
                        (None, _) => ".*?".to_string(),
                    };
                    re.push_str(&format!("(?P<kqlparse{}>{body})", columns.len()));
                    if last && number.is_none() {
                        re.push('$');
                    }
                    columns.push((name.name.clone(), t));
                }
            }
        }
        if columns.is_empty() {
            return Err(self.semantic("the parse pattern names no columns", span));
        }
        // The extracted columns' group numbers, after any groups of the pattern's own regexes.
        let compiled = regex::Regex::new(&re)
            .map_err(|e| self.semantic(format!("parse: invalid regular expression in the pattern: {e}"), span))?;
        let group_of = |k: usize| -> Option<usize> {
            let want = format!("kqlparse{k}");
            compiled.capture_names().position(|n| n == Some(want.as_str()))
        };
        let text = self.bind_scalar(&p.expr, Some(&rel), scope)?;
        let text = if text.ty == KqlType::String { text } else { functions::lower_cast(text, KqlType::String)? };
        let re_lit = TypedExpr::new(lit(re.clone()), KqlType::String);
        let mut new_cols: Vec<(String, TypedExpr)> = Vec::new();
        for (k, (name, t)) in columns.iter().enumerate() {
            let g = group_of(k).ok_or_else(|| self.semantic("parse: internal capture group missing", span))?;
            let mut args = vec![re_lit.clone(), TypedExpr::new(lit(g as i64), KqlType::Long), text.clone()];
            if *t != KqlType::String {
                args.push(super::scalar::null_of(*t)?);
            }
            let e = functions::lower_scalar_call("extract", args, &self.fctx)?;
            new_cols.push((name.clone(), e));
        }
        // Strict kinds: the row parses only when every typed column converts.
        let strict = kind != ParseKind::Relaxed;
        let all_converted = if strict {
            new_cols
                .iter()
                .filter(|(_, e)| e.ty != KqlType::String)
                .map(|(_, e)| DfExpr::IsNotNull(Box::new(e.expr.clone())))
                .reduce(|a, b| a.and(b))
        } else {
            None
        };
        let mut rel = rel;
        if p.is_where {
            let m = functions::lower_binary(functions::BinaryOp::MatchesRegex, text.clone(), re_lit.clone())?;
            let mut pred = m.expr;
            if let Some(ok) = &all_converted {
                pred = pred.and(ok.clone());
            }
            let plan = rel.builder().filter(pred)?.build()?;
            rel = Rel::new(plan, rel.schema);
        } else if let Some(ok) = &all_converted {
            let mut guarded = Vec::new();
            for (n, e) in new_cols {
                let fail = if e.ty == KqlType::String { lit("") } else { super::scalar::null_of(e.ty)?.expr };
                let g = when(ok.clone(), e.expr).otherwise(fail)?;
                guarded.push((n, TypedExpr::new(g, e.ty)));
            }
            new_cols = guarded;
        }
        let mut exprs = Vec::new();
        let mut cols: Vec<KqlColumn> = Vec::new();
        for c in &rel.schema.columns {
            match new_cols.iter().position(|(n, _)| n == &c.name) {
                Some(i) => {
                    let (n, e) = new_cols.remove(i);
                    exprs.push(e.expr.alias(n.clone()));
                    cols.push(KqlColumn::new(n, e.ty));
                }
                None => {
                    exprs.push(rel.col(&c.name)?.expr.alias(c.name.clone()));
                    cols.push(c.clone());
                }
            }
        }
        for (n, e) in new_cols {
            exprs.push(e.expr.alias(n.clone()));
            cols.push(KqlColumn::new(n, e.ty));
        }
        let plan = super::project(rel.plan.clone(), exprs)?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn named_groups_follow_user_groups() {
        let re = regex::Regex::new(r"^(?:x(a)b)(?P<kqlparse0>-?\d+)").unwrap();
        let idx = re.capture_names().position(|n| n == Some("kqlparse0")).unwrap();
        assert_eq!(idx, 2);
        assert_eq!(&re.captures("xab12").unwrap()[idx], "12");
    }
}

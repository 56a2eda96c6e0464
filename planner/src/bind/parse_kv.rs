//! The `parse-kv` operator: extracts listed keys from a string in key/value form.
//!
//! Three modes, chosen by the `with (...)` properties:
//! * specified delimiters (`pair_delimiter` and `kv_delimiter`, optionally `quote`, `escape`,
//!   `greedy=true`): the text is read pair by pair; quoted keys and values may hold delimiters;
//!   in greedy mode an unquoted value runs up to the next key (a pair delimiter followed by a
//!   key and the kv delimiter) or the end of the text;
//! * no delimiters (optionally `quote`, `escape`): any non-alphanumeric character delimits; a
//!   listed key is found as a whole term and its value is the next term (or quoted string);
//! * `regex`: a regular expression with exactly two capture groups, key and value.
//!
//! The first appearance of a key wins; keys and unquoted values are trimmed. One UDF parses the
//! text once per row into a struct of string fields (one per listed key, null when missing);
//! each field is then converted to its declared type (null when it does not convert; a
//! missing string is empty).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray, StringBuilder, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Expr as DfExpr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit};
use kustodian_parser::ast::{self, Span};

use super::{Binder, Rel, Scope};
use crate::error::Result;
use crate::functions::{self, TypedExpr};
use crate::types::{KqlColumn, KqlSchema, KqlType};

/// How the text is split into keys and values.
#[derive(Debug, Clone)]
enum Mode {
    Delimited { pair: String, kv: String, greedy: bool },
    Auto,
    Regex(regex::Regex),
}

/// A parse-kv configuration: the mode, quote pairs (open, close) and escape characters.
#[derive(Debug, Clone)]
struct KvConfig {
    mode: Mode,
    quotes: Vec<(char, char)>,
    escapes: Vec<char>,
}

/// The UDF: text to a struct of one nullable string field per listed key.
#[derive(Debug)]
struct ParseKvUdf {
    /// Identity for equality and hashing: the configuration and keys, printed.
    id: String,
    signature: Signature,
    cfg: Arc<KvConfig>,
    keys: Vec<String>,
    ret: DataType,
}

impl PartialEq for ParseKvUdf {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for ParseKvUdf {}
impl Hash for ParseKvUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

fn field_name(i: usize) -> String {
    format!("k{i}")
}

impl ScalarUDFImpl for ParseKvUdf {
    fn name(&self) -> &str {
        "kql_parse_kv"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.ret.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(datafusion::error::DataFusionError::Internal("parse-kv needs its text".into()));
        };
        let arr = arg.clone().into_array(args.number_rows)?;
        let arr = if arr.data_type() == &DataType::Utf8 { arr } else { datafusion::arrow::compute::cast(&arr, &DataType::Utf8)? };
        let Some(text) = arr.as_any().downcast_ref::<StringArray>() else {
            return Err(datafusion::error::DataFusionError::Internal("parse-kv: text is not Utf8".into()));
        };
        let mut builders: Vec<StringBuilder> = self.keys.iter().map(|_| StringBuilder::new()).collect();
        for i in 0..text.len() {
            let values = if text.is_null(i) { vec![None; self.keys.len()] } else { extract(text.value(i), &self.cfg, &self.keys) };
            for (b, v) in builders.iter_mut().zip(values) {
                b.append_option(v);
            }
        }
        let fields: Fields = (0..self.keys.len()).map(|i| Field::new(field_name(i), DataType::Utf8, true)).collect();
        let arrays: Vec<ArrayRef> = builders.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef).collect();
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(fields, arrays, None)?)))
    }
}

/// One field of the parsed struct, as a string. (A UDF rather than `get_field`, which the
/// optimizer would push into the projection that computes the struct.)
#[derive(Debug, PartialEq, Eq, Hash)]
struct KvFieldUdf {
    index: usize,
    signature: Signature,
}

impl ScalarUDFImpl for KvFieldUdf {
    fn name(&self) -> &str {
        "kql_parse_kv_field"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(datafusion::error::DataFusionError::Internal("parse-kv field needs its struct".into()));
        };
        let arr = arg.clone().into_array(args.number_rows)?;
        let Some(st) = arr.as_any().downcast_ref::<StructArray>() else {
            return Err(datafusion::error::DataFusionError::Internal("parse-kv field: not a struct".into()));
        };
        if self.index >= st.num_columns() {
            return Err(datafusion::error::DataFusionError::Internal("parse-kv field: index out of range".into()));
        }
        Ok(ColumnarValue::Array(Arc::clone(st.column(self.index))))
    }
}

// ------------------------------------------------------------------------------------ extraction

fn is_ws(c: char) -> bool {
    c.is_whitespace()
}

/// Reads a quoted string whose opening quote is at byte `p`; returns the content (escapes
/// applied) and the position after the closing quote (or the end of the text).
fn read_quoted(text: &str, p: usize, close: char, escapes: &[char]) -> (String, usize) {
    let mut out = String::new();
    let mut it = text[p..].char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        if escapes.contains(&c) {
            if let Some((_, n)) = it.next() {
                out.push(n);
                continue;
            }
            return (out, text.len());
        }
        if c == close {
            return (out, p + i + c.len_utf8());
        }
        out.push(c);
    }
    (out, text.len())
}

fn quote_at(text: &str, p: usize, cfg: &KvConfig) -> Option<char> {
    let c = text[p..].chars().next()?;
    cfg.quotes.iter().find(|(o, _)| *o == c).map(|(_, cl)| *cl)
}

fn char_len_at(text: &str, p: usize) -> usize {
    text[p..].chars().next().map_or(1, char::len_utf8)
}

/// Skips whitespace that does not start a delimiter.
fn skip_ws(text: &str, mut p: usize, delims: &[&str]) -> usize {
    while p < text.len() {
        let rest = &text[p..];
        let Some(c) = rest.chars().next() else { break };
        if !is_ws(c) || delims.iter().any(|d| rest.starts_with(d)) {
            break;
        }
        p += c.len_utf8();
    }
    p
}

/// The first position at or after `p` where one of `delims` starts (or the end).
fn find_any(text: &str, mut p: usize, delims: &[&str]) -> usize {
    while p < text.len() {
        if delims.iter().any(|d| text[p..].starts_with(d)) {
            return p;
        }
        p += char_len_at(text, p);
    }
    text.len()
}

/// Reads a key at `p`: quoted or up to the next delimiter. Returns it and the position after.
fn read_key(text: &str, p: usize, pair: &str, kv: &str, cfg: &KvConfig) -> (String, usize) {
    if let Some(close) = quote_at(text, p, cfg) {
        let (k, np) = read_quoted(text, p, close, &cfg.escapes);
        return (k, skip_ws(text, np, &[pair, kv]));
    }
    let end = find_any(text, p, &[pair, kv]);
    (text[p..end].trim().to_string(), end)
}

/// Greedy mode: does a key followed by the kv delimiter start at `p`?
fn key_follows(text: &str, p: usize, pair: &str, kv: &str, cfg: &KvConfig) -> bool {
    let p = skip_ws(text, p, &[pair, kv]);
    if p >= text.len() {
        return false;
    }
    let (k, np) = read_key(text, p, pair, kv, cfg);
    !k.is_empty() && text[np..].starts_with(kv)
}

fn extract_delimited(text: &str, pair: &str, kv: &str, greedy: bool, cfg: &KvConfig, found: &mut dyn FnMut(String, String) -> bool) {
    let delims = [pair, kv];
    let mut p = 0;
    while p < text.len() {
        p = skip_ws(text, p, &delims);
        if p >= text.len() {
            break;
        }
        if text[p..].starts_with(pair) {
            p += pair.len();
            continue;
        }
        let (key, np) = read_key(text, p, pair, kv, cfg);
        p = np;
        if !text[p..].starts_with(kv) {
            // A key without a value: skip to the next pair.
            p = find_any(text, p, &[pair]);
            continue;
        }
        p = skip_ws(text, p + kv.len(), &[pair]);
        let value = if let Some(close) = quote_at(text, p, cfg) {
            let (v, np) = read_quoted(text, p, close, &cfg.escapes);
            p = find_any(text, np, &[pair]);
            v
        } else if greedy {
            let mut q = p;
            loop {
                q = find_any(text, q, &[pair]);
                if q >= text.len() || key_follows(text, q + pair.len(), pair, kv, cfg) {
                    break;
                }
                q += pair.len();
            }
            let v = text[p..q].trim().to_string();
            p = q;
            v
        } else {
            let end = find_any(text, p, &[pair]);
            let v = text[p..end].trim().to_string();
            p = end;
            v
        };
        if found(key, value) {
            return;
        }
    }
}

fn is_term(c: char) -> bool {
    c.is_alphanumeric()
}

/// No delimiters: each listed key is found as a whole term; its value is the next term or a
/// quoted string after the non-alphanumeric characters that follow it.
fn extract_auto(text: &str, key: &str, cfg: &KvConfig) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut from = 0;
    while let Some(off) = text[from..].find(key) {
        let start = from + off;
        let end = start + key.len();
        from = start + char_len_at(text, start);
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if before.is_some_and(is_term) || after.is_some_and(is_term) {
            continue;
        }
        let mut p = end;
        // A quoted key: skip its closing quote.
        if let Some(b) = before
            && let Some((_, close)) = cfg.quotes.iter().find(|(o, _)| *o == b)
            && after == Some(*close)
        {
            p += close.len_utf8();
        }
        // The delimiters between key and value.
        let mut saw_delim = p > end;
        while p < text.len() {
            if quote_at(text, p, cfg).is_some() {
                break;
            }
            let c = text[p..].chars().next()?;
            if is_term(c) {
                break;
            }
            saw_delim = true;
            p += c.len_utf8();
        }
        if !saw_delim || p >= text.len() {
            continue;
        }
        if let Some(close) = quote_at(text, p, cfg) {
            return Some(read_quoted(text, p, close, &cfg.escapes).0);
        }
        let vend = text[p..].find(|c: char| !is_term(c)).map_or(text.len(), |i| p + i);
        return Some(text[p..vend].to_string());
    }
    None
}

/// The values of `keys` in `text` (None: the key does not appear).
fn extract(text: &str, cfg: &KvConfig, keys: &[String]) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = vec![None; keys.len()];
    if let Mode::Auto = cfg.mode {
        for (i, key) in keys.iter().enumerate() {
            if let Some(j) = keys[..i].iter().position(|k| k == key) {
                out[i] = out[j].clone();
            } else {
                out[i] = extract_auto(text, key, cfg);
            }
        }
        return out;
    }
    let mut remaining = keys.len();
    let mut found = |k: String, v: String| -> bool {
        for (i, key) in keys.iter().enumerate() {
            if *key == k && out[i].is_none() {
                out[i] = Some(v.clone());
                remaining -= 1;
            }
        }
        remaining == 0
    };
    match &cfg.mode {
        Mode::Delimited { pair, kv, greedy } => extract_delimited(text, pair, kv, *greedy, cfg, &mut found),
        Mode::Regex(re) => {
            for caps in re.captures_iter(text) {
                let (Some(k), Some(v)) = (caps.get(1), caps.get(2)) else { continue };
                if found(k.as_str().trim().to_string(), v.as_str().trim().to_string()) {
                    break;
                }
            }
        }
        Mode::Auto => {}
    }
    out
}

// ------------------------------------------------------------------------------------ binding

impl<'a> Binder<'a> {
    /// A constant string property value.
    fn kv_string(&mut self, e: &ast::Expr, what: &str, scope: &Scope) -> Result<String> {
        let v = self.bind_scalar(e, None, scope)?;
        super::scalar::const_string(&v).ok_or_else(|| self.semantic(format!("parse-kv: {what} must be a constant string"), e.span))
    }

    /// `parse-kv Expr as (Key:type, ...) [with (...)]`
    pub(super) fn plan_parse_kv(
        &mut self,
        rel: Rel,
        expr: &ast::Expr,
        columns: &[ast::ColumnDecl],
        with: &[ast::Property],
        scope: &Scope,
        span: Span,
    ) -> Result<Rel> {
        let mut pair: Option<String> = None;
        let mut kv: Option<String> = None;
        let mut regex_text: Option<String> = None;
        let mut greedy = false;
        let mut quotes: Vec<(char, char)> = Vec::new();
        let mut escapes: Vec<char> = Vec::new();
        for prop in with {
            let name = prop.name.name.to_ascii_lowercase();
            for v in &prop.values {
                match name.as_str() {
                    "pair_delimiter" => pair = Some(self.kv_string(v, "pair_delimiter", scope)?),
                    "kv_delimiter" => kv = Some(self.kv_string(v, "kv_delimiter", scope)?),
                    "regex" => regex_text = Some(self.kv_string(v, "regex", scope)?),
                    "quote" => {
                        let q = self.kv_string(v, "quote", scope)?;
                        let cs: Vec<char> = q.chars().collect();
                        match cs.as_slice() {
                            [c] => quotes.push((*c, *c)),
                            [o, c] => quotes.push((*o, *c)),
                            _ => return Err(self.semantic("parse-kv: quote takes one or two characters", v.span)),
                        }
                    }
                    "escape" => {
                        let q = self.kv_string(v, "escape", scope)?;
                        let cs: Vec<char> = q.chars().collect();
                        match cs.as_slice() {
                            [c] => escapes.push(*c),
                            _ => return Err(self.semantic("parse-kv: escape takes one character", v.span)),
                        }
                    }
                    "greedy" => {
                        let b = self.bind_scalar(v, None, scope)?;
                        greedy = match super::scalar::const_value(&b) {
                            Some(ScalarValue::Boolean(Some(x))) => x,
                            _ => return Err(self.semantic("parse-kv: greedy must be true or false", v.span)),
                        };
                    }
                    _ => return Err(self.semantic(format!("unknown parse-kv property '{}'", prop.name.name), prop.span)),
                }
            }
        }
        let mode = match (pair, kv, regex_text) {
            (None, None, Some(r)) => {
                if greedy || !quotes.is_empty() || !escapes.is_empty() {
                    return Err(self.semantic("parse-kv: regex cannot be combined with quote, escape or greedy", span));
                }
                let re = regex::RegexBuilder::new(&r)
                    .size_limit(1 << 22)
                    .build()
                    .map_err(|e| self.semantic(format!("parse-kv: invalid regex: {e}"), span))?;
                if re.captures_len() != 3 {
                    return Err(self.semantic("parse-kv: the regex must have exactly two capturing groups (key and value)", span));
                }
                Mode::Regex(re)
            }
            (Some(p), Some(k), None) => {
                if p.is_empty() || k.is_empty() {
                    return Err(self.semantic("parse-kv: delimiters must not be empty", span));
                }
                Mode::Delimited { pair: p, kv: k, greedy }
            }
            (None, None, None) => {
                if greedy {
                    return Err(self.semantic("parse-kv: greedy needs pair_delimiter and kv_delimiter", span));
                }
                Mode::Auto
            }
            (_, _, Some(_)) => return Err(self.semantic("parse-kv: regex cannot be combined with delimiters", span)),
            _ => return Err(self.semantic("parse-kv: pair_delimiter and kv_delimiter must be given together", span)),
        };
        let cfg = KvConfig { mode, quotes, escapes };

        let mut keys: Vec<(String, KqlType)> = Vec::new();
        for c in columns {
            keys.push((c.name.name.clone(), self.type_name(&c.ty)?));
        }
        if keys.is_empty() {
            return Err(self.semantic("parse-kv needs at least one key", span));
        }
        let text = self.bind_scalar(expr, Some(&rel), scope)?;
        let text = if text.ty == KqlType::String { text } else { functions::lower_cast(text, KqlType::String)? };

        let key_names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
        let fields: Fields = (0..keys.len()).map(|i| Field::new(field_name(i), DataType::Utf8, true)).collect();
        let ret = DataType::Struct(fields);
        let id = format!("{cfg:?}|{key_names:?}");
        let udf = ParseKvUdf {
            id,
            signature: Signature::any(1, Volatility::Immutable),
            cfg: Arc::new(cfg),
            keys: key_names,
            ret,
        };
        let call = ScalarUDF::new_from_impl(udf).call(vec![text.expr]);

        // First the input columns and the parsed struct, then the typed keys.
        let taken0 = rel.names();
        let tmp = Binder::unique_name("__parse_kv", &taken0);
        let mut exprs: Vec<DfExpr> = Vec::new();
        for c in &rel.schema.columns {
            exprs.push(rel.col(&c.name)?.expr.alias(c.name.clone()));
        }
        exprs.push(call.alias(tmp.clone()));
        let staged = super::project(rel.plan.clone(), exprs)?;
        let mut cols: Vec<KqlColumn> = rel.schema.columns.clone();
        let mut out: Vec<DfExpr> = Vec::new();
        for c in &rel.schema.columns {
            out.push(super::column_expr(&staged, &c.name).alias(c.name.clone()));
        }
        let st = super::column_expr(&staged, &tmp);
        for (i, (name, ty)) in keys.iter().enumerate() {
            let field = KvFieldUdf { index: i, signature: Signature::any(1, Volatility::Immutable) };
            let raw = TypedExpr::new(ScalarUDF::new_from_impl(field).call(vec![st.clone()]), KqlType::String);
            let v = if *ty == KqlType::String {
                // A missing string is empty.
                TypedExpr::new(crate::functions::coalesce(vec![raw.expr, lit("")]), KqlType::String)
            } else {
                functions::lower_cast(raw, *ty)?
            };
            let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            let col = Binder::unique_name(name, &taken);
            out.push(v.expr.alias(col.clone()));
            cols.push(KqlColumn::new(col, *ty));
        }
        let plan = super::project(staged, out)?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(mode: Mode, quotes: &[(char, char)], escapes: &[char]) -> KvConfig {
        KvConfig { mode, quotes: quotes.to_vec(), escapes: escapes.to_vec() }
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    fn delim(pair: &str, kv: &str, greedy: bool) -> Mode {
        Mode::Delimited { pair: pair.into(), kv: kv.into(), greedy }
    }

    #[test]
    fn delimited_trims_and_takes_first() {
        let c = cfg(delim(",", ":", false), &[], &[]);
        let r = extract("ThreadId:458745723, Machine:Node001, Text: The service is up, Level: Info, Text: x", &c, &keys(&["Text", "ThreadId", "Nope"]));
        assert_eq!(r, vec![Some("The service is up".into()), Some("458745723".into()), None]);
    }

    #[test]
    fn quoted_keys_values_and_escapes() {
        let c = cfg(delim(" ", "=", false), &[('"', '"')], &['\\']);
        let r = extract(r#"a=1 failure="the host sent \"bye!\"" "event time"=2021-01-01T10:00:54"#, &c, &keys(&["failure", "event time", "a"]));
        assert_eq!(r, vec![Some(r#"the host sent "bye!""#.into()), Some("2021-01-01T10:00:54".into()), Some("1".into())]);
        let c = cfg(delim(" ", "=", false), &[('(', ')')], &[]);
        let r = extract("failure=(connection aborted) (event time)=(2021-01-01 10:00:54)", &c, &keys(&["failure", "event time"]));
        assert_eq!(r, vec![Some("connection aborted".into()), Some("2021-01-01 10:00:54".into())]);
    }

    #[test]
    fn greedy_runs_to_next_key() {
        let text = "name=John Doe phone=555 5555 city=New York";
        let k = keys(&["name", "phone", "city"]);
        let r = extract(text, &cfg(delim(" ", "=", false), &[], &[]), &k);
        assert_eq!(r, vec![Some("John".into()), Some("555".into()), Some("New".into())]);
        let r = extract(text, &cfg(delim(" ", "=", true), &[], &[]), &k);
        assert_eq!(r, vec![Some("John Doe".into()), Some("555 5555".into()), Some("New York".into())]);
    }

    #[test]
    fn auto_mode() {
        let c = cfg(Mode::Auto, &[('\'', '\'')], &['\\']);
        let r = extract(
            r"2021-01-01T10:00:34 [INFO] ThreadId:458745723, Machine:Node001, Text: 'The service \' is up'",
            &c,
            &keys(&["Text", "ThreadId", "Machine", "INFO"]),
        );
        assert_eq!(r, vec![Some("The service ' is up".into()), Some("458745723".into()), Some("Node001".into()), Some("ThreadId".into())]);
    }

    #[test]
    fn regex_mode() {
        let re = regex::Regex::new(r#""([\w ]+)\s*:\s*([^"]*)""#).unwrap();
        let c = cfg(Mode::Regex(re), &[], &[]);
        let r = extract(r#"["referer url: https://h/?a=1", "request url: x"]"#, &c, &keys(&["request url", "referer url"]));
        assert_eq!(r, vec![Some("x".into()), Some("https://h/?a=1".into())]);
    }
}

//! The shape of dynamic values: `dynamic_to_json` (canonical text, keys sorted), `treepath`
//! (the paths of a value's nodes) and the `buildschema` aggregate (the union of the values'
//! schemas).

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};
use serde_json::{Map, Value as Json};

use super::aggregate::{AggregateLowering, suffix};
use super::args::{all_to, typed};
use super::conversion::lower_cast;
use super::json::{each_json, json_of, out};
use super::udf::{RowState, s_str};
use super::{FunctionContext, TypedExpr};
use crate::error::Result;
use crate::types::KqlType;

// ---------- dynamic_to_json ----------

/// `j` with the keys of every bag sorted (ordinally), arrays in their order.
fn sorted_keys(j: Json) -> Json {
    match j {
        Json::Object(m) => {
            let mut entries: Vec<(String, Json)> = m.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(entries.into_iter().collect())
        }
        Json::Array(a) => Json::Array(a.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

fn dynamic_to_json_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    // A null dynamic is the JSON text `null`, as Kusto writes it.
    let j = args.first().and_then(json_of).unwrap_or(Json::Null);
    s_str(Some(sorted_keys(j).to_string()))
}

/// `dynamic_to_json(d)`: canonical JSON text, the keys of every bag sorted, so that two equal
/// bags give equal strings.
pub(super) fn lower_dynamic_to_json(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(typed(name, KqlType::String, dynamic_to_json_row, all_to(args, KqlType::Dynamic)?))
}

// ---------- treepath ----------

/// Appends the path of every node under `j` (a bag's properties as `['key']`, an array's
/// elements as one `[0]`), in the order first met.
fn tree_paths(j: &Json, prefix: &str, out: &mut Vec<String>) {
    let push = |p: String, out: &mut Vec<String>| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    match j {
        Json::Object(m) => {
            for (k, v) in m {
                let p = format!("{prefix}['{}']", k.replace('\'', "\\'"));
                push(p.clone(), out);
                tree_paths(v, &p, out);
            }
        }
        Json::Array(a) if !a.is_empty() => {
            let p = format!("{prefix}[0]");
            push(p.clone(), out);
            for v in a {
                tree_paths(v, &p, out);
            }
        }
        _ => {}
    }
}

fn treepath_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(j) = args.first().and_then(json_of) else { return s_str(None) };
    let mut paths = Vec::new();
    tree_paths(&j, "", &mut paths);
    out(Some(Json::Array(paths.into_iter().map(Json::String).collect())))
}

/// `treepath(d)`: the paths of the nodes of a dynamic value, as the reference lists them
/// (`['prop1']`, `['prop1'][0]`, `['listProperty'][0]['x']`).
pub(super) fn lower_treepath(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(typed(name, KqlType::Dynamic, treepath_row, all_to(args, KqlType::Dynamic)?))
}

// ---------- buildschema ----------

/// The key that stands for an array's elements in a schema.
const INDEXER: &str = "`indexer`";

/// The alternatives of one schema: scalar type names and at most one bag (arrays are bags of
/// their `indexer`), in the order first met.
#[derive(Debug, Default, Clone, PartialEq)]
struct Alternatives {
    scalars: Vec<String>,
    bag: Option<Vec<(String, Alternatives)>>,
    /// Where the bag came among the alternatives.
    bag_at: usize,
}

impl Alternatives {
    /// How many names and keys the schema holds (its memory, roughly).
    fn nodes(&self) -> usize {
        self.scalars.len() + self.bag.as_ref().map_or(0, |b| b.iter().map(|(_, a)| 1 + a.nodes()).sum())
    }

    fn is_empty(&self) -> bool {
        self.scalars.is_empty() && self.bag.is_none()
    }

    fn add_scalar(&mut self, t: &str) {
        if !self.scalars.iter().any(|s| s == t) {
            self.scalars.push(t.to_string());
        }
    }

    fn bag_mut(&mut self) -> &mut Vec<(String, Alternatives)> {
        if self.bag.is_none() {
            self.bag_at = self.scalars.len();
        }
        self.bag.get_or_insert_with(Vec::new)
    }

    fn entry(bag: &mut Vec<(String, Alternatives)>, key: &str) -> usize {
        match bag.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                bag.push((key.to_string(), Alternatives::default()));
                bag.len() - 1
            }
        }
    }

    /// Adds the schema of a value.
    fn add_value(&mut self, j: &Json) {
        match j {
            Json::Null => {}
            Json::Bool(_) => self.add_scalar("bool"),
            Json::Number(n) if n.is_i64() || n.is_u64() => self.add_scalar("long"),
            Json::Number(_) => self.add_scalar("double"),
            Json::String(_) => self.add_scalar("string"),
            Json::Array(a) => {
                if a.iter().all(Json::is_null) {
                    return;
                }
                let bag = self.bag_mut();
                let i = Self::entry(bag, INDEXER);
                for v in a {
                    bag[i].1.add_value(v);
                }
            }
            Json::Object(m) => {
                let bag = self.bag_mut();
                for (k, v) in m {
                    let i = Self::entry(bag, k);
                    bag[i].1.add_value(v);
                }
            }
        }
    }

    /// Adds a schema as [`Self::to_json`] wrote it (a partial aggregate's state).
    fn add_schema(&mut self, j: &Json) {
        match j {
            Json::String(t) => self.add_scalar(t),
            Json::Array(alts) => alts.iter().for_each(|a| self.add_schema(a)),
            Json::Object(m) => {
                let bag = self.bag_mut();
                for (k, v) in m {
                    let i = Self::entry(bag, k);
                    bag[i].1.add_schema(v);
                }
            }
            _ => {}
        }
    }

    /// One alternative as itself, several as an array of them.
    fn to_json(&self) -> Json {
        let mut alts: Vec<Json> = self.scalars.iter().map(|s| Json::String(s.clone())).collect();
        if let Some(bag) = &self.bag {
            let m: Map<String, Json> =
                bag.iter().filter(|(_, a)| !a.is_empty()).map(|(k, a)| (k.clone(), a.to_json())).collect();
            alts.insert(self.bag_at.min(alts.len()), Json::Object(m));
        }
        match alts.len() {
            1 => alts.remove(0),
            _ => Json::Array(alts),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BuildSchema {
    signature: Signature,
}

impl AggregateUDFImpl for BuildSchema {
    fn name(&self) -> &str {
        "kql_buildschema"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn accumulator(&self, _: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(BuildSchemaAcc::default()))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[schema]", args.name), DataType::Utf8, true))])
    }
}

#[derive(Debug, Default)]
struct BuildSchemaAcc {
    schema: Alternatives,
}

impl BuildSchemaAcc {
    fn result(&self) -> ScalarValue {
        // No value (or only nulls): a null schema, as the reference's empty summarize shows.
        if self.schema.is_empty() {
            return ScalarValue::Utf8(None);
        }
        ScalarValue::Utf8(Some(self.schema.to_json().to_string()))
    }
}

impl Accumulator for BuildSchemaAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        if let Some(a) = values.first() {
            let schema = &mut self.schema;
            each_json(a, |j| schema.add_value(&j));
        }
        Ok(())
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(self.result())
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.schema.nodes() * 64
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![self.result()])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        if let Some(a) = states.first() {
            let schema = &mut self.schema;
            each_json(a, |j| schema.add_schema(&j));
        }
        Ok(())
    }
}

/// `buildschema(d)`: the minimal schema that admits every value of `d` (Kusto's rules: a
/// property's types in the order first met, one bag merged key by key, an array as a bag of
/// its `` `indexer` ``). Named `schema_d`.
pub(super) fn lower_buildschema(_: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let v = lower_cast(args.remove(0), KqlType::Dynamic)?;
    let udaf = AggregateUDF::new_from_impl(BuildSchema { signature: Signature::any(1, Volatility::Immutable) });
    Ok(AggregateLowering { expr: udaf.call(vec![v.expr]), ty: KqlType::Dynamic, default_name: format!("schema_{}", suffix(&arg_names)) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn schema_of(values: &[&str]) -> String {
        let mut a = Alternatives::default();
        for v in values {
            a.add_value(&serde_json::from_str(v).unwrap());
        }
        a.to_json().to_string()
    }

    #[test]
    fn buildschema_as_documented() {
        // The reference's example.
        let s = schema_of(&[
            r#"{"x":1, "y":3.5}"#,
            r#"{"x":"somevalue", "z":[1, 2, 3]}"#,
            r#"{"y":{"w":"zzz"}, "t":["aa", "bb"], "z":["foo"]}"#,
        ]);
        assert_eq!(s, r#"{"x":["long","string"],"y":["double",{"w":"string"}],"z":{"`indexer`":["long","string"]},"t":{"`indexer`":"string"}}"#);
        // A partial state merges back to the same schema.
        let mut merged = Alternatives::default();
        merged.add_schema(&serde_json::from_str(&s).unwrap());
        assert_eq!(merged.to_json().to_string(), s);
    }

    #[test]
    fn treepath_as_documented() {
        let paths = |t: &str| {
            let mut out = Vec::new();
            tree_paths(&serde_json::from_str(t).unwrap(), "", &mut out);
            out
        };
        assert_eq!(paths(r#"{"a":"b", "c":123}"#), ["['a']", "['c']"]);
        assert_eq!(paths(r#"{"prop1":[1,2,3,4], "prop2":"value2"}"#), ["['prop1']", "['prop1'][0]", "['prop2']"]);
        assert_eq!(
            paths(r#"{"listProperty":[100,200,300,"abcde",{"x":"y"}]}"#),
            ["['listProperty']", "['listProperty'][0]", "['listProperty'][0]['x']"]
        );
    }
}

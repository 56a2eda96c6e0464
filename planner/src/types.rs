//! KQL scalar types and their Arrow representation.
//!
//! Kusto's `dynamic` is carried as its JSON text in a `Utf8` column; the binder tracks the KQL
//! type of every column beside the Arrow schema, so a `Utf8` column is known to be `string`,
//! `guid` or `dynamic` without inspecting data. Stored columns carry the KQL type in the Arrow
//! field metadata under [`KQL_TYPE_KEY`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use serde::{Deserialize, Serialize};

/// Arrow field-metadata key holding the KQL type name of a column.
pub const KQL_TYPE_KEY: &str = "kusto.type";

/// Decimal precision and scale used for KQL `decimal` (Kusto: 128-bit, 34 digits).
pub const DECIMAL_PRECISION: u8 = 38;
pub const DECIMAL_SCALE: i8 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KqlType {
    Bool,
    Int,
    Long,
    Real,
    Decimal,
    String,
    Datetime,
    Timespan,
    Guid,
    Dynamic,
}

impl KqlType {
    /// Parses a KQL type name, including Kusto's synonyms (`boolean`, `int64`, `double`, `date`,
    /// `time`, `uniqueid`, `int32`).
    pub fn from_name(name: &str) -> Option<KqlType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "bool" | "boolean" => KqlType::Bool,
            "int" | "int32" => KqlType::Int,
            "long" | "int64" => KqlType::Long,
            "real" | "double" | "float" => KqlType::Real,
            "decimal" => KqlType::Decimal,
            "string" => KqlType::String,
            "datetime" | "date" => KqlType::Datetime,
            "timespan" | "time" => KqlType::Timespan,
            "guid" | "uniqueid" => KqlType::Guid,
            "dynamic" => KqlType::Dynamic,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            KqlType::Bool => "bool",
            KqlType::Int => "int",
            KqlType::Long => "long",
            KqlType::Real => "real",
            KqlType::Decimal => "decimal",
            KqlType::String => "string",
            KqlType::Datetime => "datetime",
            KqlType::Timespan => "timespan",
            KqlType::Guid => "guid",
            KqlType::Dynamic => "dynamic",
        }
    }

    /// The Arrow type that carries values of this KQL type.
    pub fn arrow_type(self) -> DataType {
        match self {
            KqlType::Bool => DataType::Boolean,
            KqlType::Int => DataType::Int32,
            KqlType::Long => DataType::Int64,
            KqlType::Real => DataType::Float64,
            KqlType::Decimal => DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
            KqlType::String | KqlType::Guid | KqlType::Dynamic => DataType::Utf8,
            KqlType::Datetime => DataType::Timestamp(TimeUnit::Nanosecond, None),
            KqlType::Timespan => DataType::Duration(TimeUnit::Nanosecond),
        }
    }

    /// Best KQL reading of an Arrow type (used for data that arrives without metadata).
    pub fn from_arrow(dt: &DataType) -> Option<KqlType> {
        Some(match dt {
            DataType::Boolean => KqlType::Bool,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => KqlType::Int,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => KqlType::Long,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => KqlType::Real,
            DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => KqlType::Decimal,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => KqlType::String,
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => KqlType::Datetime,
            DataType::Duration(_) => KqlType::Timespan,
            _ => return None,
        })
    }

    /// An Arrow field of this type, tagged with the KQL type name.
    pub fn field(self, name: &str) -> Field {
        Field::new(name, self.arrow_type(), true)
            .with_metadata(HashMap::from([(KQL_TYPE_KEY.to_string(), self.name().to_string())]))
    }

    /// Reads the KQL type of an Arrow field: metadata first, then the Arrow type.
    pub fn of_field(field: &Field) -> Option<KqlType> {
        field
            .metadata()
            .get(KQL_TYPE_KEY)
            .and_then(|n| KqlType::from_name(n))
            .or_else(|| KqlType::from_arrow(field.data_type()))
    }

    /// The .NET type name Kusto reports for the type (`getschema`, `.show table T schema as json`).
    pub fn dotnet_name(self) -> &'static str {
        match self {
            KqlType::Bool => "System.Boolean",
            KqlType::Int => "System.Int32",
            KqlType::Long => "System.Int64",
            KqlType::Real => "System.Double",
            KqlType::Decimal => "System.Data.SqlTypes.SqlDecimal",
            KqlType::String => "System.String",
            KqlType::Datetime => "System.DateTime",
            KqlType::Timespan => "System.TimeSpan",
            KqlType::Guid => "System.Guid",
            KqlType::Dynamic => "System.Object",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, KqlType::Int | KqlType::Long | KqlType::Real | KqlType::Decimal)
    }
}

impl fmt::Display for KqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A column of a KQL result or table schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KqlColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: KqlType,
}

impl KqlColumn {
    pub fn new(name: impl Into<String>, ty: KqlType) -> Self {
        KqlColumn { name: name.into(), ty }
    }
}

/// An ordered KQL schema: what the binder tracks beside the Arrow schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KqlSchema {
    pub columns: Vec<KqlColumn>,
}

impl KqlSchema {
    pub fn new(columns: Vec<KqlColumn>) -> Self {
        KqlSchema { columns }
    }

    pub fn arrow_schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        Arc::new(datafusion::arrow::datatypes::Schema::new(
            self.columns.iter().map(|c| c.ty.field(&c.name)).collect::<Vec<_>>(),
        ))
    }

    pub fn from_arrow(schema: &datafusion::arrow::datatypes::Schema) -> Self {
        KqlSchema {
            columns: schema
                .fields()
                .iter()
                .map(|f| KqlColumn::new(f.name().clone(), KqlType::of_field(f).unwrap_or(KqlType::Dynamic)))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&KqlColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Kusto's schema notation: `(Id:long, Name:string)`.
    pub fn to_kql(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| format!("{}:{}", c.name, c.ty)).collect();
        format!("({})", cols.join(", "))
    }
}

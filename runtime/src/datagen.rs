//! A deterministic data generator for benchmarks and tests (`kustodian gen`).
//!
//! `T(Id: long, Region: string, Owner: string, Amount: real, Ts: datetime)`: `Id` counts from 0,
//! `Region` is one of ten values `r0`..`r9`, `Owner` one of 1000 principals
//! (`aaduser=user0000@contoso.com`..), `Amount` a real in [0, 1000) with two decimals, `Ts` a
//! whole second in 2026. The same seed and row count always give the same rows, whatever the
//! output format. `UserRegions(User: string, Region: string)` maps every owner to two regions, for
//! mapping-table and join-based entitlement policies.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use kustodian_planner::{KqlColumn, KqlSchema, KqlType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, RuntimeError};

/// Number of distinct `Region` values.
pub const REGIONS: u64 = 10;
/// Number of distinct `Owner` principals.
pub const OWNERS: u64 = 1000;
/// Rows per generated batch.
pub const BATCH_ROWS: usize = 64 * 1024;
/// 2026-01-01T00:00:00Z in seconds since the Unix epoch.
const YEAR_START_SECS: i64 = 1_767_225_600;
const YEAR_SECS: i64 = 365 * 24 * 3600;

/// The KQL schema of the generated table `T`.
pub fn schema() -> KqlSchema {
    KqlSchema::new(vec![
        KqlColumn::new("Id", KqlType::Long),
        KqlColumn::new("Region", KqlType::String),
        KqlColumn::new("Owner", KqlType::String),
        KqlColumn::new("Amount", KqlType::Real),
        KqlColumn::new("Ts", KqlType::Datetime),
    ])
}

/// The `.create table` command for the generated table.
pub const CREATE_T: &str = ".create table T (Id: long, Region: string, Owner: string, Amount: real, Ts: datetime)";
/// The `.create table` command for the generated mapping table.
pub const CREATE_USER_REGIONS: &str = ".create table UserRegions (User: string, Region: string)";

/// The principal FQN of owner `i` (0-based).
pub fn owner(i: u64) -> String {
    format!("aaduser=user{i:04}@contoso.com")
}

/// The two regions owner `i` is entitled to in `UserRegions`.
pub fn owner_regions(i: u64) -> [String; 2] {
    let a = i % REGIONS;
    let b = (i * 7 + 3) % REGIONS;
    let b = if a == b { (b + 1) % REGIONS } else { b };
    [format!("r{a}"), format!("r{b}")]
}

/// Generates `T` in batches of at most [`BATCH_ROWS`] rows.
pub struct Generator {
    rng: ChaCha8Rng,
    next_id: u64,
    rows: u64,
    schema: SchemaRef,
    owners: Vec<String>,
    regions: Vec<String>,
}

impl Generator {
    pub fn new(rows: u64, seed: u64) -> Generator {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_id: 0,
            rows,
            schema: schema().arrow_schema(),
            owners: (0..OWNERS).map(owner).collect(),
            regions: (0..REGIONS).map(|r| format!("r{r}")).collect(),
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn batch(&mut self, n: usize) -> Result<RecordBatch> {
        let mut id = Int64Builder::with_capacity(n);
        let mut region = StringBuilder::with_capacity(n, n * 2);
        let mut owner = StringBuilder::with_capacity(n, n * 28);
        let mut amount = Float64Builder::with_capacity(n);
        let mut ts = TimestampNanosecondBuilder::with_capacity(n).with_timezone_opt(timestamp_tz(&self.schema));
        for _ in 0..n {
            id.append_value(self.next_id as i64);
            self.next_id += 1;
            let r = self.rng.random_range(0..REGIONS) as usize;
            let o = self.rng.random_range(0..OWNERS) as usize;
            let cents = self.rng.random_range(0..100_000i64);
            let secs = self.rng.random_range(0..YEAR_SECS);
            region.append_value(&self.regions[r]);
            owner.append_value(&self.owners[o]);
            amount.append_value(cents as f64 / 100.0);
            ts.append_value((YEAR_START_SECS + secs) * 1_000_000_000);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(region.finish()),
            Arc::new(owner.finish()),
            Arc::new(amount.finish()),
            Arc::new(ts.finish()),
        ];
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), cols)?)
    }
}

impl Iterator for Generator {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let left = self.rows - self.next_id;
        if left == 0 {
            return None;
        }
        Some(self.batch(left.min(BATCH_ROWS as u64) as usize))
    }
}

fn timestamp_tz(schema: &SchemaRef) -> Option<Arc<str>> {
    match schema.field(4).data_type() {
        datafusion::arrow::datatypes::DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    pub files: Vec<PathBuf>,
    /// A script that creates the tables and ingests the Parquet files (or the CSV files when
    /// no Parquet was written) into the current database.
    pub script: PathBuf,
}

/// Which files [`generate`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    pub csv: bool,
    pub parquet: bool,
}

/// Writes `T` (`rows` rows) and `UserRegions` into `dir` as `T.csv`/`T.parquet` and
/// `UserRegions.csv`, plus `ingest.kql`.
pub fn generate(dir: &Path, rows: u64, seed: u64, formats: Formats) -> Result<Generated> {
    fs::create_dir_all(dir)?;
    let dir = fs::canonicalize(dir)?;
    let mut files = Vec::new();
    if formats.parquet {
        let path = dir.join("T.parquet");
        write_parquet(&path, Generator::new(rows, seed))?;
        files.push(path);
    }
    if formats.csv {
        let path = dir.join("T.csv");
        write_csv(&path, Generator::new(rows, seed))?;
        files.push(path);
    }
    let regions = dir.join("UserRegions.csv");
    let mut w = BufWriter::new(File::create(&regions)?);
    writeln!(w, "User,Region")?;
    for i in 0..OWNERS {
        for r in owner_regions(i) {
            writeln!(w, "{},{r}", owner(i))?;
        }
    }
    w.flush()?;
    files.push(regions.clone());

    let (data_file, format) = if formats.parquet { ("T.parquet", "parquet") } else { ("T.csv", "csv") };
    let header = if format == "csv" { ", ignoreFirstRecord=true" } else { "" };
    let script = dir.join("ingest.kql");
    let text = format!(
        "{CREATE_T}\n\n.ingest into table T ('{}') with (format='{format}'{header})\n\n{CREATE_USER_REGIONS}\n\n\
         .ingest into table UserRegions ('{}') with (format='csv', ignoreFirstRecord=true)\n",
        kql_path(&dir.join(data_file)),
        kql_path(&regions),
    );
    fs::write(&script, text)?;
    Ok(Generated { files, script })
}

/// A path inside a single-quoted KQL string literal.
fn kql_path(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\").replace('\'', "\\'")
}

fn write_parquet(path: &Path, gen_: Generator) -> Result<()> {
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp)?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let schema = Arc::clone(gen_.schema());
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(parquet_err)?;
    for batch in gen_ {
        writer.write(&batch?).map_err(parquet_err)?;
    }
    writer.close().map_err(parquet_err)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

fn write_csv(path: &Path, gen_: Generator) -> Result<()> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampNanosecondType};
    let tmp = path.with_extension("csv.tmp");
    let mut w = csv::Writer::from_writer(BufWriter::new(File::create(&tmp)?));
    let csv_err = |e: csv::Error| RuntimeError::Internal(format!("writing CSV: {e}"));
    w.write_record(["Id", "Region", "Owner", "Amount", "Ts"]).map_err(csv_err)?;
    for batch in gen_ {
        let b = batch?;
        let id = b.column(0).as_primitive::<Int64Type>();
        let region = b.column(1).as_string::<i32>();
        let owner = b.column(2).as_string::<i32>();
        let amount = b.column(3).as_primitive::<Float64Type>();
        let ts = b.column(4).as_primitive::<TimestampNanosecondType>();
        for i in 0..b.num_rows() {
            let t = chrono::DateTime::from_timestamp_nanos(ts.value(i));
            w.write_record([
                id.value(i).to_string(),
                region.value(i).to_string(),
                owner.value(i).to_string(),
                format!("{:.2}", amount.value(i)),
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ])
            .map_err(csv_err)?;
        }
    }
    w.flush()?;
    drop(w);
    fs::rename(&tmp, path)?;
    Ok(())
}

fn parquet_err(e: datafusion::parquet::errors::ParquetError) -> RuntimeError {
    RuntimeError::Internal(format!("writing Parquet: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let a: Vec<RecordBatch> = Generator::new(70_000, 7).collect::<Result<_>>().unwrap();
        let b: Vec<RecordBatch> = Generator::new(70_000, 7).collect::<Result<_>>().unwrap();
        let c: Vec<RecordBatch> = Generator::new(70_000, 8).collect::<Result<_>>().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.iter().map(|b| b.num_rows()).sum::<usize>(), 70_000);
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn owners_have_two_distinct_regions() {
        for i in 0..OWNERS {
            let [x, y] = owner_regions(i);
            assert_ne!(x, y, "owner {i}");
        }
    }
}

//! The bundled sample database (`corpus/sample/`), embedded in the binary so `kustodian shell`
//! and `run` work from any directory.

use crate::cluster::Cluster;
use crate::request::RequestOptions;
use crate::error::{Result, RuntimeError};
use crate::script::split_script;

/// The built-in first admin of the in-memory sample cluster.
pub const SAMPLE_ADMIN: &str = "aaduser=admin@contoso.com";
pub const SAMPLE_DATABASE: &str = "ContosoSales";
/// The sample's people and groups as a local directory (users by UPN, the sales managers'
/// group with its object id and members): what a server on the sample maps tokens with.
pub const DIRECTORY: &str = include_str!("../../corpus/sample/directory.json");

const SCHEMA: &str = include_str!("../../corpus/sample/schema.kql");
const DATA: &str = include_str!("../../corpus/sample/data.kql");
const SECURITY: Option<&str> = Some(include_str!("../../corpus/sample/security.kql"));

/// The sample's scripts by their path in the repository, as they were loaded (what `kustodian
/// lint` points its findings into).
pub const SCRIPTS: [(&str, &str); 3] = [
    ("corpus/sample/schema.kql", SCHEMA),
    ("corpus/sample/data.kql", DATA),
    ("corpus/sample/security.kql", include_str!("../../corpus/sample/security.kql")),
];

const FILES: &[(&str, &str)] = &[
    ("data/customers.csv", include_str!("../../corpus/sample/data/customers.csv")),
    ("data/sales.csv", include_str!("../../corpus/sample/data/sales.csv")),
    ("data/products.csv", include_str!("../../corpus/sample/data/products.csv")),
    ("data/salespeople.csv", include_str!("../../corpus/sample/data/salespeople.csv")),
    ("data/userregions.csv", include_str!("../../corpus/sample/data/userregions.csv")),
    ("data/secrets.csv", include_str!("../../corpus/sample/data/secrets.csv")),
];

/// Loads the sample into an empty in-memory cluster, running its scripts as the built-in admin.
pub(crate) async fn load(cluster: &Cluster) -> Result<()> {
    let opts = RequestOptions::default();
    cluster.execute(&format!(".create database {SAMPLE_DATABASE}"), &opts).await?;
    let opts = RequestOptions { database: Some(SAMPLE_DATABASE.into()), ..Default::default() };
    for script in [Some(SCHEMA), Some(DATA), SECURITY].into_iter().flatten() {
        for req in split_script(script) {
            let text = embed_paths(&req.text)?;
            cluster
                .execute(&text, &opts)
                .await
                .map_err(|e| RuntimeError::Internal(format!("loading the sample database failed at line {}: {e}", req.line)))?;
        }
    }
    Ok(())
}

/// Replaces `.ingest into table T ('data/x.csv') ...` by an inline ingestion of the embedded file.
fn embed_paths(text: &str) -> Result<String> {
    let trimmed = strip_comments(text);
    if !trimmed.starts_with(".ingest into") {
        return Ok(text.to_string());
    }
    for (path, content) in FILES {
        if trimmed.contains(&format!("'{path}'")) {
            let table = trimmed
                .split_whitespace()
                .nth(3)
                .ok_or_else(|| RuntimeError::Internal(format!("bad sample ingestion: {trimmed}")))?;
            // The files have a header line (ignoreFirstRecord=true).
            let body = content.split_once('\n').map(|(_, rest)| rest).unwrap_or("");
            return Ok(format!(".ingest inline into table {table} <|\n{body}"));
        }
    }
    Err(RuntimeError::Internal(format!("sample ingestion names an unknown file: {trimmed}")))
}

fn strip_comments(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n").trim().to_string()
}

impl Cluster {
    /// A new cluster directory `dir` holding the bundled sample database (its tables on disk).
    pub async fn sample_in(dir: &std::path::Path) -> Result<Cluster> {
        let cluster = Cluster::init(dir, SAMPLE_ADMIN)?;
        load(&cluster).await?;
        Ok(cluster)
    }

    /// An in-memory cluster holding the bundled sample database.
    pub async fn sample() -> Result<Cluster> {
        let cluster = Cluster::in_memory(SAMPLE_ADMIN, "built-in admin of the in-memory sample")?;
        load(&cluster).await?;
        Ok(cluster)
    }
}

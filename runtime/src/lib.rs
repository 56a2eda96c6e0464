//! Kustodian runtime: cluster state, authorization, management commands, ingestion, storage,
//! sessions and execution. Rendering of results and errors happens only in the binary.

pub mod auth;
pub mod catalog;
pub mod coverage;
pub mod lint;
pub mod cluster;
pub mod datagen;
mod commands;
pub mod encoding;
pub mod materialized;
pub mod meta;
pub mod names;
pub mod error;
pub mod ingest;
pub mod keys;
pub mod output;
pub mod overhead;
mod policy;
mod plan_cache;
pub mod request;
pub mod sample;
mod schema_script;
pub mod script;
#[cfg(feature = "server")]
pub mod server;
pub mod storage;
mod view_as;
pub mod extents;

pub use cluster::Cluster;
pub use request::{Analysis, Explanation, Identity, Prepared, RequestOptions};
pub use error::{ErrorCode, Result, RuntimeError};
pub use output::{QueryOutput, QueryStream};
pub use script::{ScriptRequest, split_script};

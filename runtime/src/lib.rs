//! Kustodian runtime: cluster state, authorization, management commands, ingestion, storage,
//! sessions and execution. Rendering of results and errors happens only in the binary.

pub mod cluster;
pub mod error;
pub mod ingest;
pub mod output;
pub mod storage;

pub use error::{ErrorCode, Result, RuntimeError};
pub use output::QueryOutput;
pub use cluster::{Cluster, Explanation, Identity, RequestOptions};

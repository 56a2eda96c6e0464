//! The management commands a server answers itself, because they are about the service rather
//! than a database: `.show queries`, `.show running queries`, `.cancel query`, `.show version`,
//! `.show cluster`. Every other command goes to the engine.

use serde_json::{Value, json};

use super::errors::ApiError;
use super::frames;
use super::http::ServerState;
use crate::Identity;
use kustodian_planner::KqlType;

/// A server-scoped command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCommand {
    ShowQueries { running_only: bool },
    CancelQuery { client_request_id: String },
    ShowVersion,
    ShowCluster,
}

impl ServerCommand {
    /// Recognizes a server-scoped command (keywords case-insensitive, as Kusto's); `None` for
    /// anything else, which the engine parses.
    pub fn parse(text: &str) -> Option<ServerCommand> {
        let text = text.trim().trim_end_matches(';').trim();
        let rest = text.strip_prefix('.')?;
        let words: Vec<&str> = rest.split_whitespace().collect();
        let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        match lower.as_slice() {
            ["show", "queries"] => Some(ServerCommand::ShowQueries { running_only: false }),
            ["show", "running", "queries"] => Some(ServerCommand::ShowQueries { running_only: true }),
            ["show", "version"] => Some(ServerCommand::ShowVersion),
            ["show", "cluster"] => Some(ServerCommand::ShowCluster),
            ["cancel", "query", ..] => {
                // `.cancel query "<ClientRequestId>" [with (reason = "...")]`
                let after = rest.trim_start()[6..].trim_start()[5..].trim_start();
                let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
                let end = after[1..].find(quote)? + 1;
                Some(ServerCommand::CancelQuery { client_request_id: after[1..end].to_string() })
            }
            _ => None,
        }
    }
}

fn cols(list: &[(&str, KqlType)]) -> Vec<(String, KqlType)> {
    list.iter().map(|(n, t)| (n.to_string(), *t)).collect()
}

/// Runs a server-scoped command for `identity`, answering a v1 table.
pub async fn run(state: &ServerState, identity: &Identity, _client_request_id: &str, cmd: ServerCommand) -> Result<Value, ApiError> {
    // Monitors and admins of the cluster see and cancel everyone's queries; others their own.
    let monitor = state.cluster.may_monitor(identity).map_err(|e| ApiError::from_runtime(&e))?;
    let own = (!monitor).then_some(identity.principal.as_str());
    match cmd {
        ServerCommand::ShowQueries { running_only } => {
            let columns = cols(&[
                ("ClientActivityId", KqlType::String),
                ("Text", KqlType::String),
                ("Database", KqlType::String),
                ("StartedOn", KqlType::Datetime),
                ("LastUpdatedOn", KqlType::Datetime),
                ("Duration", KqlType::Timespan),
                ("State", KqlType::String),
                ("RootActivityId", KqlType::Guid),
                ("User", KqlType::String),
                ("FailureReason", KqlType::String),
                ("Application", KqlType::String),
                ("Principal", KqlType::String),
            ]);
            let now = chrono::Utc::now();
            let rows = state
                .queries
                .list(own)
                .into_iter()
                .filter(|e| !running_only || e.finished.is_none())
                .map(|e| {
                    let updated = e.finished.map(|(t, _)| t).unwrap_or(now);
                    let nanos = |t: chrono::DateTime<chrono::Utc>| crate::encoding::datetime_v2(t.timestamp_nanos_opt().unwrap_or_default());
                    json!([
                        e.client_request_id,
                        e.text,
                        e.database,
                        nanos(e.started_on),
                        nanos(updated),
                        crate::encoding::timespan(i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
                        e.state,
                        e.activity_id,
                        e.principal,
                        e.failure,
                        e.application,
                        e.principal,
                    ])
                })
                .collect();
            Ok(frames::v1_table("Table_0", &columns, rows))
        }
        ServerCommand::CancelQuery { client_request_id } => {
            if !state.queries.cancel(&client_request_id, own) {
                // The same answer whether the query is someone else's or does not exist.
                return Err(ApiError::bad_request(format!("no running query of yours has the client request id '{client_request_id}'")));
            }
            let columns = cols(&[("RunningQueryCanceled", KqlType::Bool), ("ReasonPhrase", KqlType::String)]);
            Ok(frames::v1_table("Table_0", &columns, vec![json!([true, "Canceled by .cancel query"])]))
        }
        ServerCommand::ShowVersion => {
            let columns = cols(&[
                ("BuildVersion", KqlType::String),
                ("BuildTime", KqlType::Datetime),
                ("ServiceType", KqlType::String),
                ("ProductVersion", KqlType::String),
                ("ServiceOffering", KqlType::String),
            ]);
            let version = env!("CARGO_PKG_VERSION");
            let started = crate::encoding::datetime_v2(state.started.timestamp_nanos_opt().unwrap_or_default());
            Ok(frames::v1_table("Table_0", &columns, vec![json!([version, started, "Engine", format!("Kustodian {version}"), "{\"Type\":\"Kustodian\"}"])]))
        }
        ServerCommand::ShowCluster => {
            if !monitor {
                return Err(ApiError::from_runtime(&crate::RuntimeError::Forbidden(format!(
                    "principal '{}' may not run '.show cluster': it needs the AllDatabasesMonitor or AllDatabasesAdmin role",
                    identity.principal
                ))));
            }
            let columns = cols(&[
                ("NodeId", KqlType::String),
                ("Address", KqlType::String),
                ("Name", KqlType::String),
                ("StartTime", KqlType::Datetime),
                ("IsAdmin", KqlType::Bool),
                ("ProcessorCount", KqlType::Int),
                ("ProductVersion", KqlType::String),
            ]);
            let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let started = crate::encoding::datetime_v2(state.started.timestamp_nanos_opt().unwrap_or_default());
            Ok(frames::v1_table(
                "Table_0",
                &columns,
                vec![json!(["kustodian-0", state.address, "KUSTODIAN", started, true, cpus, format!("Kustodian {}", env!("CARGO_PKG_VERSION"))])],
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_server_commands_only() {
        assert_eq!(ServerCommand::parse(".show queries"), Some(ServerCommand::ShowQueries { running_only: false }));
        assert_eq!(ServerCommand::parse("  .SHOW  running Queries ;"), Some(ServerCommand::ShowQueries { running_only: true }));
        assert_eq!(ServerCommand::parse(".show version"), Some(ServerCommand::ShowVersion));
        assert_eq!(
            ServerCommand::parse(".cancel query \"KPC.execute;1\" with (reason = \"x\")"),
            Some(ServerCommand::CancelQuery { client_request_id: "KPC.execute;1".into() })
        );
        assert_eq!(ServerCommand::parse(".cancel query"), None);
        assert_eq!(ServerCommand::parse(".show tables"), None);
        assert_eq!(ServerCommand::parse(".show queries | where x"), None);
    }
}

//! Starting and stopping a server: bind, serve over HTTP or TLS, and stop gracefully (running
//! requests finish, new connections are refused) when asked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use axum_server::accept::NoDelayAcceptor;

use super::audit::AuditLog;
use super::config::ServerConfig;
use super::dev_issuer::DevIssuer;
use super::directory::Directory;
use super::gate::Authenticator;
use super::http::{ServerState, router};
use super::network::NetworkPolicy;
use super::queries::Queries;
use super::token::TokenValidator;
use crate::{Cluster, Result, RuntimeError};

/// How to run a server.
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub config: ServerConfig,
    /// Where the server keeps its own files: the dev issuer's key and, unless the config
    /// says otherwise, the audit log (the cluster directory, or `~/.kustodian` for the
    /// in-memory sample).
    pub state_dir: PathBuf,
    /// PEM certificate chain and key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve without authentication, every caller being this principal (loopback only).
    pub no_auth_as: Option<String>,
    /// The directory to use when the config names none (the sample's).
    pub directory: Option<Directory>,
    /// Requests running at once at most (more get 429).
    pub max_concurrent: usize,
    /// Request bodies larger than this get 413.
    pub max_body: usize,
}

impl ServeOptions {
    pub fn new(listen: SocketAddr, config: ServerConfig, state_dir: PathBuf) -> Self {
        ServeOptions { listen, config, state_dir, directory: None, tls: None, no_auth_as: None, max_concurrent: 64, max_body: 4 * 1024 * 1024 }
    }
}

/// A server that is listening.
pub struct Server {
    pub local_addr: SocketAddr,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds and starts serving in the background.
    pub async fn start(cluster: Arc<Cluster>, mut opts: ServeOptions) -> Result<Server> {
        let auth = match &opts.no_auth_as {
            Some(principal) => {
                if !opts.listen.ip().is_loopback() {
                    return Err(RuntimeError::bad_request(format!(
                        "--no-auth is only allowed on a loopback address, not {}",
                        opts.listen.ip()
                    )));
                }
                Authenticator::anonymous(principal)?
            }
            None => {
                let bad = |e: &dyn std::fmt::Display| RuntimeError::bad_request(e.to_string());
                let dev = match opts.config.auth.dev_issuer {
                    true => Some(DevIssuer::open_or_create(&opts.state_dir).map_err(|e| bad(&e))?),
                    false => None,
                };
                let validator =
                    TokenValidator::from_config(&opts.config.auth, opts.config.network.outbound_policy(), dev.as_ref()).map_err(|e| bad(&e))?;
                let directory = match &opts.config.directory.path {
                    Some(p) => Some(Directory::load(p).map_err(|e| bad(&e))?),
                    None => opts.directory.take(),
                };
                Authenticator::Tokens { validator: Box::new(validator), directory: directory.map(Box::new) }
            }
        };
        let network = NetworkPolicy::from_config(&opts.config.network).map_err(|e| RuntimeError::bad_request(e.to_string()))?;
        std::fs::create_dir_all(&opts.state_dir)?;
        let audit_path = opts.config.audit.path_in(&opts.state_dir);
        let audit = Some(AuditLog::open(&audit_path)?);
        if let Some(keys) = cluster.keyring() {
            // Every use of a key is a line of the audit log too (appends from another handle
            // are safe: one O_APPEND write per line).
            let log = AuditLog::open(&audit_path)?;
            keys.on_event(Box::new(move |event, key, subject, outcome| {
                let text = format!("{event} {} {}", key.unwrap_or("-"), subject.unwrap_or("-"));
                let status = if outcome == "Succeeded" { 200 } else { 412 };
                let code = if outcome == "Succeeded" { format!("{event}:Succeeded") } else { format!("{event}:{outcome}") };
                let mut r = super::audit::AuditRecord::new(uuid::Uuid::new_v4().to_string(), &text, super::audit::RequestKind::Key, super::audit::Outcome::failed(status, code));
                r.key_event = Some(super::audit::KeyEvent { event: event.into(), key: key.map(str::to_string), subject: subject.map(str::to_string) });
                if let Err(e) = log.append(&r) {
                    tracing::error!("audit log: {e}");
                }
            }));
        }
        let state = Arc::new(ServerState {
            cluster,
            auth,
            network,
            audit,
            queries: Queries::default(),
            slots: Arc::new(Semaphore::new(opts.max_concurrent.max(1))),
            max_body: opts.max_body,
            started: chrono::Utc::now(),
            address: opts.listen.to_string(),
        });
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        let listener = std::net::TcpListener::bind(opts.listen)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        // TCP_NODELAY on every connection: a response goes out as headers then body, and with
        // Nagle's algorithm the body waits for the client's delayed ACK (40 ms per request on
        // Linux, which capped 32 keep-alive clients at 720 requests/s).
        let task = match &opts.tls {
            Some((cert, key)) => {
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(|e| RuntimeError::bad_request(format!("TLS certificate or key: {e}")))?;
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(NoDelayAcceptor::new());
                let server = axum_server::from_tcp(listener).acceptor(acceptor).handle(handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
            None => {
                let server = axum_server::from_tcp(listener).acceptor(NoDelayAcceptor::new()).handle(handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
        };
        Ok(Server { local_addr, handle, task })
    }

    /// Stops accepting connections and waits up to `grace` for running requests to finish.
    pub async fn shutdown(self, grace: Duration) -> Result<()> {
        self.handle.graceful_shutdown(Some(grace));
        match self.task.await {
            Ok(r) => Ok(r?),
            Err(e) => Err(RuntimeError::Internal(format!("the server task failed: {e}"))),
        }
    }

    /// Serves until the process is asked to stop (Ctrl-C or SIGTERM), then stops gracefully.
    pub async fn run_until_signal(self, grace: Duration) -> Result<()> {
        shutdown_signal().await;
        self.shutdown(grace).await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

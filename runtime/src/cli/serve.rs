//! `kustodian serve` (Kusto's REST API over a cluster) and `kustodian token` (tokens of the
//! local dev issuer, to try the server without Entra).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use kustodian_runtime::server::config::ServerConfig;
use kustodian_runtime::server::dev_issuer::{DevIssuer, DevSubject, MintRequest};
use kustodian_runtime::server::directory::Directory;
use kustodian_runtime::server::{ServeOptions, Server};
use kustodian_runtime::{Cluster, ErrorCode};

use super::report::Failure;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Cluster directory; without it, an in-memory cluster with the bundled sample database.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Server configuration (TOML: issuers, network rules, directory, audit log). Without it,
    /// only the local dev issuer's tokens are accepted.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// No authentication: every caller is --as PRINCIPAL (only on a loopback address).
    #[arg(long, requires = "principal")]
    no_auth: bool,
    /// The principal of every caller with --no-auth.
    #[arg(long = "as", value_name = "PRINCIPAL", requires = "no_auth")]
    principal: Option<String>,
    /// Requests running at once at most; more are refused with 429.
    #[arg(long, default_value_t = 64)]
    max_concurrent: usize,
    /// A directory `.ingest into table T ('path')` may read files below (repeatable).
    #[arg(long = "ingest-root", value_name = "DIR")]
    ingest_roots: Vec<PathBuf>,
    /// Memory for hot extents decoded in memory (a cluster directory), in MiB; 0: none.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    hot_cache_mib: u64,
    /// Seconds between two applications of the retention policies (a cluster directory).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    retention_interval: u64,
    /// Seconds between two checks that the cluster can use its encryption keys (a cluster
    /// directory): a refusal suspends it, an answer resumes it. 0: only when a key is used.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    key_check_interval: u64,
}

#[derive(Debug, Args)]
pub struct PlaygroundArgs {
    /// Loopback address to listen on (port 0: any free port).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Who uses the page (default: the sample's admin, who may view as anyone).
    #[arg(long = "as", value_name = "PRINCIPAL")]
    principal: Option<String>,
}

/// `kustodian playground`: the page over the bundled sample, on loopback, without
/// authentication (every caller is --as, by default the sample's admin).
pub fn playground(args: &PlaygroundArgs) -> Result<(), Failure> {
    if !args.listen.ip().is_loopback() {
        return Err(failure(format!("the playground listens on a loopback address only, not {}", args.listen.ip())));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Failure::new(ErrorCode::Internal, e.to_string()))?;
    runtime.block_on(async {
        let cluster = Cluster::sample().await.map_err(|e| Failure::new(e.code(), e.to_string()))?;
        let principal = args.principal.clone().unwrap_or_else(|| kustodian_runtime::sample::SAMPLE_ADMIN.to_string());
        let mut opts = ServeOptions::new(args.listen, ServerConfig::default(), state_dir(None));
        opts.no_auth_as = Some(principal.clone());
        let server = Server::start(Arc::new(cluster), opts).await.map_err(|e| Failure::new(e.code(), e.to_string()))?;
        println!("kustodian playground: http://{}/playground (as {principal}; Ctrl-C stops it)", server.local_addr);
        use std::io::Write;
        let _ = std::io::stdout().flush();
        server.run_until_signal(Duration::from_secs(5)).await.map_err(|e| Failure::new(e.code(), e.to_string()))
    })
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Cluster directory whose dev issuer signs (the same as `serve --data`).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// A user, by UPN (alice@contoso.com).
    #[arg(long, value_name = "UPN", conflicts_with = "app", required_unless_present = "app")]
    user: Option<String>,
    /// An application (or managed identity), by application id.
    #[arg(long, value_name = "APP_ID")]
    app: Option<String>,
    /// A group claim (repeatable): a group's object id, email or name.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Lifetime (`1h`, `30m`, `00:10:00`).
    #[arg(long, default_value = "1h", value_parser = parse_lifetime)]
    expires: Duration,
    /// Say in `amr` that the user signed in with multi-factor authentication.
    #[arg(long)]
    mfa: bool,
}

fn parse_lifetime(s: &str) -> Result<Duration, String> {
    kustodian_runtime::server::body::parse_timeout(s).ok_or_else(|| format!("'{s}' is not a lifetime (1h, 30m, 00:10:00)"))
}

/// Where the dev issuer's key and the default audit log live: the cluster directory, or
/// `$KUSTODIAN_HOME` (default `~/.kustodian`) for the in-memory sample.
fn state_dir(data: Option<&Path>) -> PathBuf {
    if let Some(d) = data {
        return d.to_path_buf();
    }
    if let Some(h) = std::env::var_os("KUSTODIAN_HOME") {
        return PathBuf::from(h);
    }
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".kustodian")
}

fn failure(e: impl std::fmt::Display) -> Failure {
    Failure::new(ErrorCode::BadRequest, e.to_string())
}

pub fn token(args: &TokenArgs) -> Result<(), Failure> {
    let dir = state_dir(args.data.as_deref());
    let issuer = DevIssuer::open_or_create(&dir).map_err(failure)?;
    let subject = match (&args.user, &args.app) {
        (Some(u), _) => DevSubject::User(u.clone()),
        (None, Some(a)) => DevSubject::App(a.clone()),
        (None, None) => return Err(failure("give --user UPN or --app APP_ID")),
    };
    let mut req = MintRequest::new(subject);
    req.groups = args.groups.clone();
    req.expires_in = args.expires;
    req.mfa = args.mfa;
    let token = issuer.mint_with(&req).map_err(failure)?;
    println!("{token}");
    Ok(())
}

/// Runs `task` on the cluster every `secs` seconds (never when 0), from `secs` from now.
fn every<F, Fut>(cluster: &Arc<Cluster>, secs: u64, task: F)
where
    F: Fn(Arc<Cluster>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    if secs == 0 {
        return;
    }
    let c = Arc::clone(cluster);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(secs));
        tick.tick().await;
        loop {
            tick.tick().await;
            task(Arc::clone(&c)).await;
        }
    });
}

pub fn serve(args: &ServeArgs) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Failure::new(ErrorCode::Internal, e.to_string()))?;
    runtime.block_on(async {
        let config = match &args.config {
            Some(path) => ServerConfig::load(path).map_err(failure)?,
            None => {
                let mut c = ServerConfig::default();
                c.auth.dev_issuer = true;
                c
            }
        };
        let mut directory = None;
        let cluster = match &args.data {
            // A revoked key suspends the server, which resumes when access returns.
            Some(dir) => Cluster::open_or_suspended(dir),
            None => {
                // The sample's people and groups: its roles and policies name groups by email,
                // tokens carry group object ids.
                if config.directory.path.is_none() {
                    directory = Some(Directory::parse(kustodian_runtime::sample::DIRECTORY).map_err(failure)?);
                }
                Cluster::sample().await
            }
        }
        .map_err(|e| Failure::new(e.code(), e.to_string()))?;
        let cluster = cluster
            .with_ingestion_roots(&args.ingest_roots)
            .map_err(|e| Failure::new(e.code(), e.to_string()))?
            .with_hot_cache(args.hot_cache_mib.saturating_mul(1 << 20));
        let mut opts = ServeOptions::new(args.listen, config, state_dir(args.data.as_deref()));
        opts.directory = directory;
        opts.tls = args.tls_cert.clone().zip(args.tls_key.clone());
        opts.no_auth_as = if args.no_auth { args.principal.clone() } else { None };
        opts.max_concurrent = args.max_concurrent;
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        let cluster = Arc::new(cluster);
        if args.data.is_some() {
            // Retention runs as time passes, not only at open and on its command. A failure
            // (another writer's conflict, a read-only directory) waits for the next tick;
            // nothing was changed.
            every(&cluster, args.retention_interval, |c| async move {
                let _ = c.enforce_retention().await;
            });
            // Key access: a revoked key suspends the cluster, a restored one resumes it.
            every(&cluster, args.key_check_interval, |c| async move {
                let _ = c.check_keys();
            });
        }
        let server = Server::start(cluster, opts).await.map_err(|e| Failure::new(e.code(), e.to_string()))?;
        println!("kustodian serve: listening on {scheme}://{}", server.local_addr);
        if args.no_auth {
            println!("kustodian serve: no authentication, every caller is {}", args.principal.as_deref().unwrap_or_default());
        } else if args.config.is_none() {
            println!("kustodian serve: accepting tokens of the local dev issuer (kustodian token --user UPN)");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        server.run_until_signal(Duration::from_secs(30)).await.map_err(|e| Failure::new(e.code(), e.to_string()))
    })
}

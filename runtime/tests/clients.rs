//! The official Kusto clients, unmodified, against `kustodian serve` on the bundled sample:
//! Python's `azure-kusto-data` (with pandas) and Node's `azure-kusto-data`. The test starts the
//! `kustodian` binary as a user would (`serve --listen 127.0.0.1:0`, dev issuer), mints tokens
//! for four principals with `kustodian token`, and runs `clients/python_client.py` and
//! `clients/node_client.mjs`, which print one PASS/FAIL line per check.
//!
//! The clients are installed on first use under the cargo target directory (a Python venv and
//! an npm prefix, pinned versions), so `cargo test` needs the package registries once. A failed
//! install fails the test: nothing is skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PYTHON_PACKAGES: &[&str] = &["azure-kusto-data[pandas]==6.0.4"];
const NODE_PACKAGE: &str = "azure-kusto-data@7.0.4";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("kusto-clients")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Python with azure-kusto-data and pandas, installed into a venv on first use.
fn python() -> PathBuf {
    let venv = clients_dir().join("venv");
    let py = venv.join("bin").join("python");
    let ready = py.exists()
        && Command::new(&py).args(["-c", "import azure.kusto.data, pandas"]).output().is_ok_and(|o| o.status.success());
    if !ready {
        std::fs::create_dir_all(clients_dir()).unwrap();
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv");
        run(Command::new(&py).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(PYTHON_PACKAGES), "pip install azure-kusto-data");
    }
    py
}

/// node_modules holding the npm azure-kusto-data package, installed on first use.
fn node_modules() -> PathBuf {
    let prefix = clients_dir().join("node");
    let modules = prefix.join("node_modules");
    if !modules.join("azure-kusto-data").join("package.json").exists() {
        std::fs::create_dir_all(&prefix).unwrap();
        run(Command::new("npm").args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"]).arg(&prefix).arg(NODE_PACKAGE), "npm install azure-kusto-data");
    }
    modules
}

struct Served {
    child: Child,
    url: String,
    home: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// `kustodian serve` on the sample, on a free loopback port; its state (the dev issuer's
    /// key, the audit log) in a fresh `KUSTODIAN_HOME`.
    fn start() -> Served {
        let home = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kustodian"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("KUSTODIAN_HOME", home.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            assert!(Instant::now() < deadline, "kustodian serve did not say where it listens");
            let line = lines.next().expect("kustodian serve exited before listening").unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Served { child, url, home }
    }

    fn token(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_kustodian")).arg("token").args(args).env("KUSTODIAN_HOME", self.home.path()).output().unwrap();
        assert!(out.status.success(), "kustodian token {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// URL, then the tokens of the admin, alice, bob and dave (with the managers' group claim).
    fn client_args(&self) -> Vec<String> {
        vec![
            self.url.clone(),
            self.token(&["--user", "admin@contoso.com"]),
            self.token(&["--user", "alice@contoso.com"]),
            self.token(&["--user", "bob@contoso.com"]),
            self.token(&["--user", "dave@contoso.com", "--group", "sales_managers@contoso.com"]),
        ]
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("clients").join(name)
}

/// Runs a client script; every check must PASS, and there must be as many as expected.
fn check_output(what: &str, cmd: &mut Command, at_least: usize) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{what}:\n{stdout}");
    let passed = stdout.lines().filter(|l| l.starts_with("PASS ")).count();
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(
        out.status.success() && failed.is_empty() && passed >= at_least,
        "{what}: {passed} passed, failed: {failed:#?}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_client_queries_as_four_principals() {
    let py = python();
    let served = Served::start();
    check_output("python azure-kusto-data", Command::new(py).arg(script("python_client.py")).args(served.client_args()), 22);
}

#[test]
fn the_node_client_queries_as_four_principals() {
    let modules = node_modules();
    let served = Served::start();
    check_output(
        "node azure-kusto-data",
        Command::new("node").arg(script("node_client.mjs")).args(served.client_args()).env("KUSTO_NODE_MODULES", modules),
        9,
    );
}

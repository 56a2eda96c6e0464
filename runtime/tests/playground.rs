//! The playground: its API over HTTP (two principals side by side, "view as" only for a Table
//! Admin of every table read, the caller as themselves otherwise), its assets, and the page in
//! a real browser (headless Chromium) running a query as two principals, with screenshots kept
//! in `target/playground-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use kustodian_runtime::Cluster;
use kustodian_runtime::server::config::ServerConfig;
use kustodian_runtime::server::dev_issuer::{DevIssuer, DevSubject, MintRequest};
use kustodian_runtime::server::directory::Directory;
use kustodian_runtime::server::{ServeOptions, Server};
use serde_json::{Value, json};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    _server: Server,
    url: String,
    issuer: DevIssuer,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::default();
    config.auth.dev_issuer = true;
    let mut opts = ServeOptions::new("127.0.0.1:0".parse().unwrap(), config, dir.path().to_path_buf());
    opts.directory = Some(Directory::parse(kustodian_runtime::sample::DIRECTORY).unwrap());
    let server = Server::start(Arc::new(Cluster::sample().await.unwrap()), opts).await.unwrap();
    let url = format!("http://127.0.0.1:{}", server.local_addr.port());
    let issuer = DevIssuer::open_or_create(dir.path()).unwrap();
    Fixture { _dir: dir, _server: server, url, issuer }
}

impl Fixture {
    fn token(&self, upn: &str) -> String {
        self.issuer.mint_with(&MintRequest::new(DevSubject::User(upn.into()))).unwrap()
    }

    async fn run(&self, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = reqwest::Client::new().post(format!("{}/playground/api/run", self.url)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }
}

const CARDS: &str = "Customers | where CustomerId <= 3 | project CustomerId, Name, CreditCardNumber";

fn rows(result: &Value) -> Vec<Vec<String>> {
    serde_json::from_value(result["rows"].clone()).unwrap()
}

#[test]
fn an_admin_compares_two_principals() {
    rt().block_on(async {
        let f = start().await;
        let admin = f.token("admin@contoso.com");
        let body = json!({"db": "ContosoSales", "csl": CARDS, "as": [
            {"principal": "aaduser=bob@contoso.com"},
            {"principal": "aaduser=dave@contoso.com", "groups": ["aadgroup=sales_managers@contoso.com"]},
        ]});
        let (status, v) = f.run(Some(&admin), body).await;
        assert_eq!(status, 200, "{v}");
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(rows(&results[0])[0], ["1", "Olivia Novak", "************4894"]);
        assert_eq!(rows(&results[1])[0], ["1", "Olivia Novak", "4669894923054894"]);
        for r in results {
            assert_eq!(r["policies"][0], "RowLevelSecurity on [ContosoSales].[Customers]: CustomersPolicy");
            assert!(r["effective_kql"].as_str().unwrap().starts_with("let __rls_ContosoSales_Customers = view () { CustomersPolicy };"));
            assert!(r["plan"].as_str().unwrap().contains("BarrierExec: table=[ContosoSales].[Customers]"), "{r}");
        }
    });
}

#[test]
fn anyone_else_uses_the_page_as_themselves() {
    rt().block_on(async {
        let f = start().await;
        let bob = f.token("bob@contoso.com");
        // As himself: his own answer, masked.
        let (status, v) = f.run(Some(&bob), json!({"db": "ContosoSales", "csl": CARDS})).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(rows(&v["results"][0])[0][2], "************4894");
        // As a manager, or as alice: refused before anything runs, naming him and the role.
        for target in [json!({"principal": "aaduser=alice@contoso.com"}), json!({"principal": "aaduser=dave@contoso.com", "groups": ["aadgroup=sales_managers@contoso.com"]})] {
            let (status, v) = f.run(Some(&bob), json!({"db": "ContosoSales", "csl": CARDS, "as": [target]})).await;
            assert_eq!(status, 403, "{v}");
            let message = v["error"]["message"].as_str().unwrap();
            assert!(message.contains("Table Admin") && message.contains("table 'Customers'"), "{message}");
            assert!(!v.to_string().contains("4669894923054894") && v.get("results").is_none(), "{v}");
        }
        // A manager may read every row, but is no Table Admin: no "view as" either.
        let dave = f.token("dave@contoso.com");
        let (status, _) = f.run(Some(&dave), json!({"db": "ContosoSales", "csl": "Sales | count", "as": [{"principal": "aaduser=alice@contoso.com"}]})).await;
        assert_eq!(status, 403);
        // Without a token: 401. A command: 400.
        assert_eq!(f.run(None, json!({"csl": "print 1"})).await.0, 401);
        assert_eq!(f.run(Some(&bob), json!({"db": "ContosoSales", "csl": ".show tables"})).await.0, 400);
    });
}

#[test]
fn the_page_and_its_assets_are_served_from_the_binary() {
    rt().block_on(async {
        let f = start().await;
        let get = |path: &str| reqwest::get(format!("{}{path}", f.url));
        let page = get("/playground").await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        let html = page.text().await.unwrap();
        assert!(html.contains("<script src=\"/playground/app.js\" defer></script>"));
        assert!(!html.contains("http://") && !html.contains("https://"), "nothing loaded from elsewhere");
        let js = get("/playground/app.js").await.unwrap();
        assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
        assert!(!js.text().await.unwrap().contains("https://"));
        assert_eq!(get("/playground/app.css").await.unwrap().status(), 200);
    });
}

/// The Chromium binary: `$CHROMIUM`, or `chromium` / `chromium-browser` on the PATH.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!("the playground's browser test needs Chromium: apt-get install chromium (or set CHROMIUM); .ci/run installs it");
}

struct Playground(Child);

impl Drop for Playground {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kustodian playground` on a free port; its URL.
fn playground(home: &Path) -> (Playground, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kustodian"))
        .args(["playground", "--listen", "127.0.0.1:0"])
        .env("KUSTODIAN_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no URL in {line:?}")).to_string();
    (Playground(child), url)
}

fn browse(args: &[&str], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=15000"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap()
}

#[test]
fn in_a_browser_one_query_as_two_principals() {
    let home = tempfile::tempdir().unwrap();
    let (_server, url) = playground(home.path());
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let page = format!(
        "{url}#db=ContosoSales&q={}&as={}&as={}",
        enc(CARDS),
        enc("aaduser=bob@contoso.com"),
        enc("aaduser=dave@contoso.com|aadgroup=sales_managers@contoso.com")
    );
    let out = browse(&["--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("data-state=\"done\""), "the page did not finish its run: {dom}\n{}", String::from_utf8_lossy(&out.stderr));
    let table = |principal: &str| -> String {
        let start = dom.find(&format!("<table class=\"grid\" data-principal=\"{principal}\">")).unwrap_or_else(|| panic!("no table for {principal}: {dom}"));
        let end = dom[start..].find("</table>").unwrap() + start;
        dom[start..end].to_string()
    };
    let bob = table("aaduser=bob@contoso.com");
    let dave = table("aaduser=dave@contoso.com");
    assert_eq!(bob.matches("<tr class=\"row").count(), 3, "{bob}");
    assert!(bob.contains("<td>1</td><td>Olivia Novak</td><td>************4894</td>"), "{bob}");
    assert!(dave.contains("<td>1</td><td>Olivia Novak</td><td class=\"cell-diff\">4669894923054894</td>"), "{dave}");
    assert!(dom.contains("<mark class=\"barrier\">"), "the plan marks its barriers");
    assert!(dom.contains("<span class=\"tok-keyword\">where</span>"), "the query is highlighted");

    // Screenshots, kept as test artifacts.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../playground-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("who-sees-what.png");
    let out = browse(&["--window-size=1400,900", &format!("--screenshot={}", shot.display())], &page);
    assert!(shot.metadata().map(|m| m.len() > 10_000).unwrap_or(false), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
}

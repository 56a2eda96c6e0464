//! `kustodian serve` over HTTP, in-process on the bundled sample with the dev issuer: Kusto's
//! v2 frames and v1 tables, OneApi errors with their HTTP codes, policies per principal,
//! result limits, network rules before authentication, the audit log, `.show queries`, and
//! many clients at once.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kustodian_runtime::Cluster;
use kustodian_runtime::server::config::ServerConfig;
use kustodian_runtime::server::dev_issuer::{DevIssuer, DevSubject, MintRequest};
use kustodian_runtime::server::directory::Directory;
use kustodian_runtime::server::{ServeOptions, Server};
use serde_json::{Value, json};

struct Fixture {
    _dir: tempfile::TempDir,
    server: Option<Server>,
    url: String,
    issuer: DevIssuer,
    audit: std::path::PathBuf,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}

async fn start(config_toml: &str, listen: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::parse(config_toml, Path::new("test.toml")).unwrap();
    config.auth.dev_issuer = true;
    let cluster = Cluster::sample().await.unwrap();
    let mut opts = ServeOptions::new(listen.parse().unwrap(), config, dir.path().to_path_buf());
    opts.directory = Some(Directory::parse(kustodian_runtime::sample::DIRECTORY).unwrap());
    opts.max_body = 64 * 1024;
    let server = Server::start(Arc::new(cluster), opts).await.unwrap();
    let url = format!("http://127.0.0.1:{}", server.local_addr.port());
    let issuer = DevIssuer::open_or_create(dir.path()).unwrap();
    let audit = dir.path().join("audit.log");
    Fixture { _dir: dir, server: Some(server), url, issuer, audit }
}

impl Fixture {
    fn token(&self, upn: &str, groups: &[&str]) -> String {
        let mut req = MintRequest::new(DevSubject::User(upn.into()));
        req.groups = groups.iter().map(|g| g.to_string()).collect();
        self.issuer.mint_with(&req).unwrap()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        post_from(None, &self.url, path, token, body).await
    }

    async fn query(&self, token: &str, csl: &str) -> (u16, Value) {
        let (s, _, v) = self.post("/v2/rest/query", Some(token), json!({"db": "ContosoSales", "csl": csl})).await;
        (s, v)
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::from_secs(5)).await.unwrap();
        }
    }
}

async fn post_from(local: Option<IpAddr>, url: &str, path: &str, token: Option<&str>, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut b = reqwest::Client::builder();
    if let Some(ip) = local {
        b = b.local_address(ip);
    }
    let client = b.build().unwrap();
    let mut req = client.post(format!("{url}{path}")).json(&body).header("x-ms-client-request-id", "test;1");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// The rows of the v2 PrimaryResult table.
fn primary(frames: &Value) -> Vec<Value> {
    let t = frames.as_array().unwrap().iter().find(|f| f["TableKind"] == "PrimaryResult").expect("a PrimaryResult table");
    t["Rows"].as_array().unwrap().clone()
}

fn completion(frames: &Value) -> &Value {
    frames.as_array().unwrap().last().unwrap()
}

#[test]
fn v2_frames_and_policies_for_two_principals() {
    rt().block_on(async {
        let f = start("", "127.0.0.1:0").await;
        let (status, headers, frames) =
            f.post("/v2/rest/query", Some(&f.token("admin@contoso.com", &[])), json!({"db": "ContosoSales", "csl": "Sales | count"})).await;
        assert_eq!(status, 200, "{frames}");
        assert_eq!(headers["x-ms-client-request-id"], "test;1");
        assert!(headers.contains_key("x-ms-activity-id"));
        let kinds: Vec<&str> = frames.as_array().unwrap().iter().map(|f| f["FrameType"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["DataSetHeader", "DataTable", "DataTable", "DataTable", "DataSetCompletion"]);
        assert_eq!(primary(&frames), vec![json!([400])]);
        assert_eq!(completion(&frames)["HasErrors"], false);

        // alice: a viewer, card numbers masked; dave with the managers' group claim: all.
        let (_, alice) = f.query(&f.token("alice@contoso.com", &[]), "Customers | take 3 | project CreditCardNumber").await;
        assert!(primary(&alice).iter().all(|r| r[0].as_str().unwrap().starts_with("****")), "{alice}");
        let (_, dave) = f.query(&f.token("dave@contoso.com", &["sales_managers@contoso.com"]), "Customers | take 3 | project CreditCardNumber").await;
        assert!(primary(&dave).iter().all(|r| !r[0].as_str().unwrap().starts_with('*')), "{dave}");

        // current_principal() is the token's object-id FQN; the details carry the UPN.
        let (_, me) = f.query(&f.token("alice@contoso.com", &[]), "print p = current_principal(), d = current_principal_details()").await;
        let row = &primary(&me)[0];
        assert!(row[0].as_str().unwrap().starts_with("aaduser=") && row[0].as_str().unwrap().contains(';'), "{row}");
        assert_eq!(row[1]["UserPrincipalName"], "alice@contoso.com");
        f.stop().await;
    });
}

/// The bundled sample answers the same through the server, for a caller identified by a token
/// (`aaduser=<object id>;<tenant>`), as through the command line's `--as aaduser=<upn>`: the
/// policies see the same principal, so every table shows each principal the same rows.
#[test]
fn the_sample_answers_as_on_the_command_line() {
    use datafusion::arrow::array::{Array, Int64Array};
    use kustodian_runtime::{Identity, RequestOptions};
    rt().block_on(async {
        let f = start("", "127.0.0.1:0").await;
        let cli = Cluster::sample().await.unwrap();
        let queries = [
            "Sales | count",
            "Sales | where SalesPersonAadUser =~ 'aaduser=alice@contoso.com' | count",
            "SalesPeople | count",
            "Customers | where CreditCardNumber startswith '*' | count",
            "MySales() | count",
        ];
        let mut seen_own_rows = 0;
        for (user, groups) in [("alice", vec![]), ("bob", vec![]), ("erin", vec![]), ("dave", vec!["sales_managers@contoso.com"])] {
            let upn = format!("{user}@contoso.com");
            let token = f.token(&upn, &groups);
            let mut who = Identity::new(format!("aaduser={upn}"));
            who.groups = groups.iter().map(|g| format!("aadgroup={g}")).collect();
            for q in queries {
                let (status, frames) = f.query(&token, q).await;
                assert_eq!(status, 200, "{user}: {q}: {frames}");
                let served = primary(&frames)[0][0].as_i64().unwrap();
                let opts = RequestOptions { database: Some("ContosoSales".into()), identity: Some(who.clone()), ..Default::default() };
                let out = cli.execute(q, &opts).await.unwrap();
                let col = out.batches[0].column(0);
                let local = col.as_any().downcast_ref::<Int64Array>().unwrap().value(0);
                assert_eq!(served, local, "{user}: {q}");
                if user == "alice" && q.starts_with("Sales | where") {
                    seen_own_rows = served;
                }
            }
        }
        assert!(seen_own_rows > 0, "alice sees her own sales through the server");
        f.stop().await;
    });
}

#[test]
fn errors_are_oneapi_bodies_with_kusto_status_codes() {
    rt().block_on(async {
        let f = start("", "127.0.0.1:0").await;
        let bob = f.token("bob@contoso.com", &[]);
        let (s, v) = f.query(&bob, "Secrets").await;
        assert_eq!(s, 403, "{v}");
        assert_eq!(v["error"]["code"], "Forbidden");
        assert!(v["error"]["@message"].as_str().unwrap().contains("aaduser="), "{v}");
        let (s, v) = f.query(&bob, "Sales | where").await;
        assert_eq!(s, 400);
        assert!(v["error"]["@message"].as_str().unwrap().starts_with("Syntax error"), "{v}");
        let (s, v) = f.query(&bob, "Sales | where NoSuchColumn > 1").await;
        assert_eq!(s, 400);
        assert!(v["error"]["@message"].as_str().unwrap().contains("Semantic error:"), "{v}");
        // Commands go to /v1/rest/mgmt.
        let (s, _) = f.query(&bob, ".show tables").await;
        assert_eq!(s, 400);
        // No token, a bad token: 401 with a OneApi body, and nothing runs.
        let (s, _, v) = f.post("/v2/rest/query", None, json!({"db": "ContosoSales", "csl": "print 1"})).await;
        assert_eq!((s, v["error"]["code"].as_str()), (401, Some("Unauthorized")));
        let (s, _, _) = f.post("/v2/rest/query", Some("eyJhbGciOiJub25lIn0.e30."), json!({"csl": "print 1"})).await;
        assert_eq!(s, 401);
        let (s, _, v) = f.post("/v2/rest/nothing", Some(&bob), json!({"csl": "print 1"})).await;
        assert_eq!((s, v["error"]["code"].as_str()), (404, Some("NotFound")));
        // A body over the limit: 413.
        let big = "x".repeat(100 * 1024);
        let (s, _, v) = f.post("/v2/rest/query", Some(&bob), json!({"csl": format!("print '{big}'")})).await;
        assert_eq!((s, v["error"]["code"].as_str()), (413, Some("PayloadTooLarge")));
        f.stop().await;
    });
}

#[test]
fn result_limits_cut_with_a_partial_failure() {
    rt().block_on(async {
        let f = start("", "127.0.0.1:0").await;
        let admin = f.token("admin@contoso.com", &[]);
        let props = |o: Value| json!({"db": "ContosoSales", "csl": "range x from 1 to 20 step 1", "properties": json!({"Options": o}).to_string()});
        let (_, _, v) = f.post("/v2/rest/query", Some(&admin), props(json!({"truncationmaxrecords": 5}))).await;
        let rows = primary(&v);
        assert_eq!(rows.len(), 6, "5 rows and the error row: {v}");
        assert_eq!(rows[5]["OneApiErrors"][0]["error"]["code"], "LimitsExceeded");
        assert_eq!(completion(&v)["HasErrors"], true);
        let (_, _, v) = f.post("/v2/rest/query", Some(&admin), props(json!({"truncationmaxrecords": 5, "notruncation": true}))).await;
        assert_eq!(primary(&v).len(), 20);
        let (_, _, v) = f.post("/v2/rest/query", Some(&admin), props(json!({"query_take_max_records": 3}))).await;
        assert_eq!((primary(&v).len(), completion(&v)["HasErrors"].as_bool()), (3, Some(false)));
        f.stop().await;
    });
}

#[test]
fn management_over_v1_and_the_audit_log() {
    rt().block_on(async {
        let f = start("", "127.0.0.1:0").await;
        let admin = f.token("admin@contoso.com", &[]);
        let alice = f.token("alice@contoso.com", &[]);
        let (s, _, v) = f.post("/v1/rest/mgmt", Some(&admin), json!({"db": "ContosoSales", "csl": ".show tables"})).await;
        assert_eq!(s, 200, "{v}");
        let t = &v["Tables"][0];
        assert_eq!(t["TableName"], "Table_0");
        assert!(t["Columns"][0]["DataType"].is_string() && t["Columns"][0]["ColumnType"].is_string());
        // alice's own queries only; the admin (AllDatabasesAdmin) sees hers too.
        f.query(&alice, "Sales | take 1").await;
        let (_, _, mine) = f.post("/v1/rest/mgmt", Some(&alice), json!({"csl": ".show queries"})).await;
        let (_, _, all) = f.post("/v1/rest/mgmt", Some(&admin), json!({"csl": ".show queries"})).await;
        let texts = |v: &Value| v["Tables"][0]["Rows"].as_array().unwrap().iter().map(|r| r[1].as_str().unwrap().to_string()).collect::<Vec<_>>();
        assert!(texts(&mine).iter().all(|t| t != ".show tables"), "alice sees only hers: {:?}", texts(&mine));
        assert!(texts(&mine).iter().any(|t| t == "Sales | take 1"));
        assert!(texts(&all).iter().any(|t| t == "Sales | take 1") && texts(&all).iter().any(|t| t == ".show tables"));
        let (s, _, v) = f.post("/v1/rest/mgmt", Some(&alice), json!({"csl": ".show cluster"})).await;
        assert_eq!(s, 403, "{v}");
        // Every request is one line; no token and no request text in it.
        let log = std::fs::read_to_string(&f.audit).unwrap();
        assert!(log.lines().count() >= 5, "{log}");
        assert!(!log.contains(&alice) && !log.contains("Sales | take 1"), "text is hashed, tokens never written");
        let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let q = lines.iter().find(|l| l["kind"] == "query" && l["tables"].as_array().is_some_and(|t| !t.is_empty())).expect("a query record");
        assert!(q["policies"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().contains("Sales")), "{q}");
        f.stop().await;
    });
}

#[test]
fn network_rules_come_before_authentication() {
    rt().block_on(async {
        let f = start("[network]\nallowed_ip_ranges = [\"127.0.0.2/32\"]\n", "0.0.0.0:0").await;
        let url = f.url.clone();
        let token = f.token("admin@contoso.com", &[]);
        let body = json!({"db": "ContosoSales", "csl": "print 1"});
        let (s, _, _) = post_from(Some("127.0.0.2".parse().unwrap()), &url, "/v2/rest/query", Some(&token), body.clone()).await;
        assert_eq!(s, 200);
        let (s, _, v) = post_from(Some("127.0.0.3".parse().unwrap()), &url, "/v2/rest/query", Some(&token), body.clone()).await;
        assert_eq!((s, v["error"]["code"].as_str()), (403, Some("Forbidden")), "{v}");
        // Refused before authentication: no token gives 403 too, not 401.
        let (s, _, _) = post_from(Some("127.0.0.3".parse().unwrap()), &url, "/v2/rest/query", None, body.clone()).await;
        assert_eq!(s, 403);
        // A forged X-Forwarded-For from an untrusted peer changes nothing.
        let client = reqwest::Client::builder().local_address("127.0.0.3".parse::<IpAddr>().unwrap()).build().unwrap();
        let r = client.post(format!("{url}/v2/rest/query")).bearer_auth(&token).header("x-forwarded-for", "127.0.0.2").json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 403);
        f.stop().await;
        let f = start("[network]\npublic_network_access = \"Disabled\"\n", "127.0.0.1:0").await;
        let (s, _, _) = f.post("/v2/rest/query", Some(&f.token("admin@contoso.com", &[])), body).await;
        assert_eq!(s, 403);
        f.stop().await;
    });
}

#[test]
fn many_clients_at_once_each_see_their_own_rows() {
    rt().block_on(async {
        let f = Arc::new(start("", "127.0.0.1:0").await);
        let people: [(&str, &[&str], bool); 3] =
            [("alice@contoso.com", &[], true), ("dave@contoso.com", &["sales_managers@contoso.com"], false), ("bob@contoso.com", &[], true)];
        let mut tasks = Vec::new();
        let started = std::time::Instant::now();
        for i in 0..32 {
            let f = Arc::clone(&f);
            let (upn, groups, masked) = people[i % people.len()];
            let token = f.token(upn, groups);
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                for n in 0..64 {
                    let t = std::time::Instant::now();
                    if n % 2 == 1 {
                        // Own rows: a sales person sees only her own sales, the manager everyone's.
                        let (s, v) = f.query(&token, "Sales | summarize count() by SalesPersonAadUser").await;
                        latencies.push(t.elapsed());
                        assert_eq!(s, 200, "{upn}: {v}");
                        let sellers: Vec<String> = primary(&v).iter().map(|r| r[0].as_str().unwrap().to_string()).collect();
                        if masked {
                            assert_eq!(sellers, vec![format!("aaduser={upn}")], "{upn} saw {sellers:?}");
                        } else {
                            assert_eq!(sellers.len(), 5, "{upn} saw {sellers:?}");
                        }
                        continue;
                    }
                    let (s, v) = f.query(&token, "Customers | take 5 | project CreditCardNumber").await;
                    latencies.push(t.elapsed());
                    assert_eq!(s, 200, "{upn}: {v}");
                    let rows = primary(&v);
                    assert_eq!(rows.len(), 5);
                    assert!(rows.iter().all(|r| r[0].as_str().unwrap().starts_with("****") == masked), "{upn} saw {rows:?}");
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let elapsed = started.elapsed();
        all.sort();
        // Figures for the record, never asserted.
        eprintln!(
            "load: {} requests by 32 clients in {:.2} s: {:.0} req/s, p50 {:?}, p99 {:?}",
            all.len(),
            elapsed.as_secs_f64(),
            all.len() as f64 / elapsed.as_secs_f64(),
            all[all.len() / 2],
            all[all.len() * 99 / 100]
        );
    });
}

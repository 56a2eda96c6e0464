//! What an authenticated caller carries beyond its FQN, and what a request carries beyond its
//! text: aliases (a token user's UPN beside its object id, a group's email beside its id) that
//! role assignments and `current_principal_is_member_of` match, `current_principal_details()`
//! from the credentials, and query parameters, which are values, never code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_planner::PrincipalDetails;
use kustodian_runtime::{Cluster, Identity, QueryOutput, RequestOptions};
use kustodian_tests::{cells, rt};

const ADMIN: &str = "aaduser=admin@contoso.com";
const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const ALICE_OID: &str = "aaduser=0a11ce00-0000-4000-8000-000000000001;11111111-2222-3333-4444-555555555555";
const BOB_OID: &str = "aaduser=0b0b0000-0000-4000-8000-000000000002;11111111-2222-3333-4444-555555555555";
const MANAGERS_ID: &str = "aadgroup=9a9a0000-0000-4000-8000-000000000009;11111111-2222-3333-4444-555555555555";

fn cluster() -> Cluster {
    let c = Cluster::in_memory(ADMIN, "first admin").unwrap();
    for cmd in [
        ".create database Db",
        ".create table T (Owner:string, V:long)",
        ".ingest inline into table T <|\nalice@contoso.com,1\nbob@contoso.com,2\nalice@contoso.com,3",
        // Assignments made with UPNs and a group email, as people write them.
        ".add database Db viewers ('aaduser=alice@contoso.com', 'aaduser=bob@contoso.com')",
        ".add database Db viewers ('aadgroup=managers@contoso.com')",
        ".alter table T policy row_level_security enable \"T | where current_principal_is_member_of('aadgroup=managers@contoso.com') or Owner == tostring(current_principal_details()['UserPrincipalName'])\"",
    ] {
        rt().block_on(c.execute(cmd, &RequestOptions { database: Some("Db".into()), ..Default::default() })).unwrap_or_else(|e| panic!("{cmd}: {e}"));
    }
    c
}

/// A token user: canonical object-id FQN, its UPN as an alias and in the details.
fn token_user(oid_fqn: &str, upn: &str, groups: &[(&str, &str)], mfa: bool) -> Identity {
    Identity {
        principal: oid_fqn.into(),
        groups: groups.iter().map(|(id, _)| id.to_string()).collect(),
        aliases: std::iter::once(format!("aaduser={upn}")).chain(groups.iter().map(|(_, email)| format!("aadgroup={email}"))).collect(),
        details: PrincipalDetails {
            upn: Some(upn.into()),
            display_name: Some(upn.split('@').next().unwrap_or(upn).into()),
            mfa,
            identity_provider: Some(format!("https://login.microsoftonline.com/{TENANT}/v2.0")),
        },
    }
}

fn run(c: &Cluster, who: &Identity, text: &str) -> Result<QueryOutput, (String, String)> {
    let o = RequestOptions { database: Some("Db".into()), identity: Some(who.clone()), ..Default::default() };
    rt().block_on(c.execute(text, &o)).map_err(|e| (e.code().as_str().to_string(), e.to_string()))
}

fn with_params(c: &Cluster, who: &Identity, params: &[(&str, &str)], text: &str) -> Result<QueryOutput, (String, String)> {
    let o = RequestOptions {
        database: Some("Db".into()),
        identity: Some(who.clone()),
        parameters: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    rt().block_on(c.execute(text, &o)).map_err(|e| (e.code().as_str().to_string(), e.to_string()))
}

#[test]
fn upn_role_assignments_match_a_token_user_through_its_alias() {
    let c = cluster();
    let alice = token_user(ALICE_OID, "alice@contoso.com", &[], false);
    let bob = token_user(BOB_OID, "bob@contoso.com", &[], false);
    assert_eq!(cells(&run(&c, &alice, "T | summarize sum(V)").unwrap()), vec![vec!["4".to_string()]]);
    assert_eq!(cells(&run(&c, &bob, "T | summarize sum(V)").unwrap()), vec![vec!["2".to_string()]]);
    // Without the alias, the object id holds no role: Forbidden, naming the principal.
    let stranger = Identity::new(ALICE_OID);
    let (code, msg) = run(&c, &stranger, "T | count").unwrap_err();
    assert_eq!(code, "Forbidden", "{msg}");
    assert!(msg.contains("0a11ce00-0000-4000-8000-000000000001"), "{msg}");
}

#[test]
fn a_group_id_claim_matches_the_group_email_through_its_alias() {
    let c = cluster();
    let dave = token_user("aaduser=0da0e000-0000-4000-8000-000000000004;11111111-2222-3333-4444-555555555555", "dave@contoso.com", &[(MANAGERS_ID, "managers@contoso.com")], true);
    // dave holds no role himself: the group's viewer role (assigned by email) lets him read,
    // and the policy's membership test (by email) shows him every row.
    assert_eq!(cells(&run(&c, &dave, "T | summarize sum(V)").unwrap()), vec![vec!["6".to_string()]]);
    let member = cells(&run(&c, &dave, "print current_principal_is_member_of('aadgroup=managers@contoso.com'), current_principal_is_member_of('aaduser=dave@contoso.com'), current_principal_is_member_of('aaduser=alice@contoso.com')").unwrap());
    assert_eq!(member, vec![vec!["true".to_string(), "true".to_string(), "false".to_string()]]);
    let alice = token_user(ALICE_OID, "alice@contoso.com", &[], false);
    let member = cells(&run(&c, &alice, "print current_principal_is_member_of('aadgroup=managers@contoso.com')").unwrap());
    assert_eq!(member, vec![vec!["false".to_string()]]);
}

#[test]
fn current_principal_is_canonical_and_details_come_from_the_credentials() {
    let c = cluster();
    let alice = token_user(ALICE_OID, "alice@contoso.com", &[], true);
    let row = cells(&run(&c, &alice, "print p = current_principal(), d = current_principal_details()").unwrap()).remove(0);
    assert_eq!(row[0], ALICE_OID);
    let d: serde_json::Value = serde_json::from_str(&row[1]).unwrap();
    assert_eq!(d["UserPrincipalName"], "alice@contoso.com");
    assert_eq!(d["Mfa"], "True");
    assert_eq!(d["DisplayName"], "alice (upn: alice@contoso.com)");
    assert_eq!(d["Authority"], TENANT);
    let bob = token_user(BOB_OID, "bob@contoso.com", &[], false);
    let d: serde_json::Value = serde_json::from_str(&cells(&run(&c, &bob, "print current_principal_details()").unwrap())[0][0]).unwrap();
    assert_eq!((d["UserPrincipalName"].as_str(), d["Mfa"].as_str()), (Some("bob@contoso.com"), Some("False")));
}

#[test]
fn query_parameters_are_values_of_their_declared_type() {
    let c = cluster();
    let alice = token_user(ALICE_OID, "alice@contoso.com", &[], false);
    let q = "declare query_parameters(who:string, least:long = 0, since:datetime = datetime(2000-01-01), d:timespan = 1h); T | where V >= least | project Owner, V, s = since, d";
    let out = cells(&with_params(&c, &alice, &[("who", "x"), ("least", "3"), ("since", "2024-05-06"), ("d", "2d")], q).unwrap());
    assert_eq!(out, vec![vec!["alice@contoso.com".to_string(), "3".into(), "2024-05-06T00:00:00".into(), "PT172800S".into()]]);
    // A string parameter is the text as given, quotes and all: never parsed.
    let out = cells(&with_params(&c, &alice, &[("who", "x' or 1==1 or '")], "declare query_parameters(who:string); print who").unwrap());
    assert_eq!(out, vec![vec!["x' or 1==1 or '".to_string()]]);
    // Other types take one literal: an expression is refused, whatever it would read.
    for bad in ["toscalar(T | count)", "1 + 1", "now()", "abc"] {
        let (code, msg) = with_params(&c, &alice, &[("least", bad)], "declare query_parameters(least:long); print least").unwrap_err();
        assert_eq!(code, "SemanticError", "{bad}: {msg}");
        assert!(msg.contains("query parameter 'least'"), "{msg}");
    }
    let (code, msg) = run(&c, &alice, "declare query_parameters(least:long); print least").unwrap_err();
    assert_eq!(code, "SemanticError");
    assert!(msg.contains("has no value"), "{msg}");
    // Different values give different answers (the plan cache keys on them).
    let q = "declare query_parameters(least:long); T | where V >= least | count";
    assert_eq!(cells(&with_params(&c, &alice, &[("least", "1")], q).unwrap()), vec![vec!["2".to_string()]]);
    assert_eq!(cells(&with_params(&c, &alice, &[("least", "2")], q).unwrap()), vec![vec!["1".to_string()]]);
    let bob = token_user(BOB_OID, "bob@contoso.com", &[], false);
    assert_eq!(cells(&with_params(&c, &bob, &[("least", "1")], q).unwrap()), vec![vec!["1".to_string()]]);
}

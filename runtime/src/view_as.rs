//! Seeing a query's answer as another principal ("view as", the playground's "who sees what"):
//! allowed only to a caller who could read every table the query involves without its
//! policies, a Table Admin of each, as `overhead` requires for its baseline.

use std::collections::BTreeSet;

use crate::auth::{Action, Needs, allows, check};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::request::{Identity, RequestOptions};

impl Cluster {
    /// Authorizes the caller of `caller` to see the answer of `text` as `target`. The caller
    /// is always allowed to see it as themselves (the same principal with no group claim the
    /// caller lacks); anyone else needs Table Admin of every table the query reads, through
    /// functions and policies, as the caller's own plan of the query finds them. The query is
    /// planned as the caller first, so a caller who may not run it learns nothing more.
    pub async fn authorize_view_as(&self, text: &str, caller: &RequestOptions, target: &Identity) -> Result<()> {
        let database = self.database_for(caller)?;
        let (who, _) = self.request_context(caller, &database)?;
        let target_opts = RequestOptions { identity: Some(target.clone()), ..caller.clone() };
        let (them, _) = self.request_context(&target_opts, &database)?;
        let same = who.principal.matches(&them.principal) && them.groups.iter().all(|g| who.groups.iter().any(|c| c.matches(g)));
        if same {
            return Ok(());
        }
        let prepared = self.prepare(text, caller).await?;
        let snap = self.snapshot();
        let tables: BTreeSet<(String, String)> = prepared.tables.iter().map(|t| (t.database.clone(), t.table.clone())).collect();
        for (db, table) in tables {
            check(
                allows(&snap.meta, &who, &Action::AdminTable(&db, &table)),
                &who,
                &format!(
                    "see the answer of a query as '{}' (the query reads table '{table}' in database '{db}')",
                    them.principal.fqn()
                ),
                Needs::TableAdmin,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn opts(principal: &str, groups: &[&str]) -> RequestOptions {
        RequestOptions {
            database: Some("ContosoSales".into()),
            identity: Some(Identity { principal: principal.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..Default::default() }),
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn only_table_admins_view_as_someone_else() {
        let cluster = Cluster::sample().await.unwrap();
        let alice = Identity::new("aaduser=alice@contoso.com");
        let manager = Identity { principal: "aaduser=bob@contoso.com".into(), groups: vec!["aadgroup=sales_managers@contoso.com".into()], ..Default::default() };
        // The admin may see anyone's answer.
        cluster.authorize_view_as("Sales | count", &opts("aaduser=admin@contoso.com", &[]), &alice).await.unwrap();
        // bob may see his own, not alice's, and may not add a group claim he lacks.
        let bob = opts("aaduser=bob@contoso.com", &[]);
        cluster.authorize_view_as("Sales | count", &bob, &Identity::new("aaduser=BOB@contoso.com")).await.unwrap();
        for target in [&alice, &manager] {
            let e = cluster.authorize_view_as("Sales | count", &bob, target).await.unwrap_err();
            assert_eq!(e.code(), ErrorCode::Forbidden);
            let m = e.to_string();
            assert!(m.contains("aaduser=bob@contoso.com") && m.contains("Table Admin") && m.contains("table 'Sales'"), "{m}");
        }
        // A manager may not view as alice either: reading every row is not administering the table.
        let dave = opts("aaduser=dave@contoso.com", &["aadgroup=sales_managers@contoso.com"]);
        assert_eq!(cluster.authorize_view_as("Sales | count", &dave, &alice).await.unwrap_err().code(), ErrorCode::Forbidden);
        // A query the caller may not run is refused as the caller's own: nothing about the target.
        let e = cluster.authorize_view_as("Secrets | count", &bob, &alice).await.unwrap_err();
        assert!(e.to_string().contains("restricted view access"), "{e}");
    }
}

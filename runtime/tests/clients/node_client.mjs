// The official Node Kusto client (npm azure-kusto-data) against `kustodian serve`.
// Run by runtime/tests/clients.rs: node node_client.mjs URL ADMIN_TOKEN ALICE_TOKEN BOB_TOKEN MANAGER_TOKEN
// Prints one line per check and exits 1 if any failed.
import { createRequire } from "node:module";
const require = createRequire(process.env.KUSTO_NODE_MODULES + "/");
const { Client, KustoConnectionStringBuilder } = require("azure-kusto-data");

const [url, admin, alice, bob, manager] = process.argv.slice(2);
const DB = "ContosoSales";
let failures = 0;

function check(name, ok, detail) {
  console.log((ok ? "PASS " : "FAIL ") + name + (ok ? "" : `  [${JSON.stringify(detail)}]`));
  if (!ok) failures++;
}

const client = (token) => new Client(KustoConnectionStringBuilder.withAccessToken(url, token));
async function rows(token, q) {
  const res = await client(token).execute(DB, q);
  return [...res.primaryResults[0].rows()].map((r) => r.toJSON());
}

try {
  const all = await rows(admin, "Sales | count");
  const own = await rows(alice, "Sales | distinct SalesPersonAadUser");
  const mgr = await rows(manager, "Sales | count");
  check("admin sees every sale", all[0].Count === 400, all);
  check("alice sees only her own sales", own.length === 1 && own[0].SalesPersonAadUser === "aaduser=alice@contoso.com", own);
  const bobs = await rows(bob, "Sales | distinct SalesPersonAadUser");
  check("bob sees only his own sales", bobs.length === 1 && bobs[0].SalesPersonAadUser === "aaduser=bob@contoso.com", bobs);
  check("a manager (group claim) sees every sale", mgr[0].Count === all[0].Count, mgr);

  const cards = await rows(alice, "Customers | take 3 | project CreditCardNumber");
  check("alice sees masked card numbers", cards.every((r) => r.CreditCardNumber.startsWith("****")), cards);

  const typed = await rows(admin, "print l = 1, d = datetime(2024-01-02), y = dynamic({'a': 1}), n = long(null)");
  check("types: long, datetime, dynamic, null", typed[0].l === 1 && typed[0].d instanceof Date && typed[0].y.a === 1 && typed[0].n === null, typed);

  const mgmt = await client(admin).executeMgmt(DB, ".show tables");
  const names = [...mgmt.primaryResults[0].rows()].map((r) => r.toJSON().TableName);
  check(".show tables over /v1/rest/mgmt", names.includes("Sales"), names);

  try {
    await rows(bob, "Secrets");
    check("bob may not read Secrets", false, "no error");
  } catch (e) {
    check("bob may not read Secrets: Forbidden", String(e.message || e).includes("Forbidden") || e.response?.status === 403 || e.statusCode === 403, String(e));
  }
  try {
    await rows("not-a-token", "print 1");
    check("bad token refused", false, "no error");
  } catch (e) {
    check("bad token refused with 401", String(e).includes("401") || e.response?.status === 401 || e.statusCode === 401, String(e));
  }
} catch (e) {
  check("unexpected error", false, String(e && e.stack ? e.stack : e));
}
process.exit(failures ? 1 : 0);

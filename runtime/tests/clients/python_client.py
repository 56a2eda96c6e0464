#!/usr/bin/env python3
"""The official Python Kusto client (azure-kusto-data) against `kustodian serve`.

Run by runtime/tests/clients.rs, which starts the server on the bundled sample and mints the
tokens: python_client.py URL ADMIN_TOKEN ALICE_TOKEN BOB_TOKEN MANAGER_TOKEN
Prints one line per check and exits 1 if any failed.
"""
import sys

from azure.kusto.data import ClientRequestProperties, KustoClient, KustoConnectionStringBuilder
from azure.kusto.data.exceptions import KustoApiError, KustoServiceError
from azure.kusto.data.helpers import dataframe_from_result_table

url, admin, alice, bob, manager = sys.argv[1:6]
DB = "ContosoSales"
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f"  [{detail}]"), flush=True)
    if not ok:
        failures += 1


def client(token):
    return KustoClient(KustoConnectionStringBuilder.with_aad_user_token_authentication(url, token))


def rows(c, q, crp=None):
    return [list(r) for r in c.execute_query(DB, q, crp).primary_results[0]]


# Row-level security per principal: the same query, three answers.
admin_n = rows(client(admin), "Sales | count")[0][0]
alice_sellers = rows(client(alice), "Sales | distinct SalesPersonAadUser")
bob_sellers = rows(client(bob), "Sales | distinct SalesPersonAadUser")
manager_n = rows(client(manager), "Sales | count")[0][0]
check("admin sees every sale", admin_n == 400, admin_n)
check("alice sees only her own sales", alice_sellers == [["aaduser=alice@contoso.com"]], alice_sellers)
check("bob sees only his own sales", bob_sellers == [["aaduser=bob@contoso.com"]], bob_sellers)
check("a manager (group claim) sees every sale", manager_n == admin_n, manager_n)

# current_principal() and its details as ADX gives them for a token.
me = rows(client(alice), "print p = current_principal(), d = current_principal_details()")[0]
check("current_principal() is aaduser=<oid>;<tid>", me[0].startswith("aaduser=") and ";" in me[0], me[0])
check("current_principal_details() has the UPN", isinstance(me[1], dict) and me[1].get("UserPrincipalName") == "alice@contoso.com", me[1])

# Masking: card numbers hidden from alice, shown to the manager.
cards_alice = rows(client(alice), "Customers | take 3 | project CreditCardNumber")
cards_manager = rows(client(manager), "Customers | take 3 | project CreditCardNumber")
check("alice sees masked card numbers", all(r[0].startswith("****") for r in cards_alice), cards_alice)
check("the manager sees card numbers", all(not r[0].startswith("*") for r in cards_manager), cards_manager)

# Types come back as the client's types.
typed = client(admin).execute_query(DB, "print l = 1, r = 2.5, s = 'x', b = true, d = datetime(2024-01-02 03:04:05.1234567), t = 1d, g = guid(5f1c7e5a-2d3b-4c1e-9a6b-1f2e3d4c5b6a), y = dynamic({'a': [1, 2]}), n = long(null)").primary_results[0]
r = typed[0]
import datetime as dt
check("long, real, string, bool", (r["l"], r["r"], r["s"], r["b"]) == (1, 2.5, "x", True), list(r))
check("datetime is a tz-aware datetime", r["d"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone.utc), r["d"])
check("timespan is a timedelta", r["t"] == dt.timedelta(days=1), r["t"])
check("dynamic is the JSON value", r["y"] == {"a": [1, 2]}, r["y"])
check("null is None", r["n"] is None, r["n"])
df = dataframe_from_result_table(typed)
check("dataframe_from_result_table", str(df["l"].dtype) == "Int64" and "datetime64" in str(df["d"].dtype), df.dtypes.to_dict())

# A result larger than one frame streams through whole.
big = client(admin).execute_query(DB, "range x from 1 to 200000 step 1 | extend s = strcat('row', x)").primary_results[0]
check("a 200,000-row result arrives whole", len(big) == 200000 and big[199999]["s"] == "row200000", len(big))

# Request properties: query parameters and a server timeout.
crp = ClientRequestProperties()
crp.set_parameter("region", "West")
crp.set_option("servertimeout", dt.timedelta(minutes=1))
p = rows(client(admin), "declare query_parameters(region:string); SalesPeople | where Region == region | count", crp)
check("query parameters reach the query", p[0][0] >= 1, p)

# Management commands over /v1/rest/mgmt.
tables = client(admin).execute_mgmt(DB, ".show tables").primary_results[0]
names = sorted(r["TableName"] for r in tables)
check(".show tables (admin)", "Sales" in names and "Secrets" in names, names)
ver = client(alice).execute_mgmt(DB, ".show version").primary_results[0]
check(".show version", ver[0]["ProductVersion"].startswith("Kustodian"), list(ver[0]))

# Errors arrive as the client's own exception types, without naming hidden things.
try:
    rows(client(bob), "Secrets")
    check("bob may not read Secrets", False, "no error")
except KustoApiError as e:
    check("bob may not read Secrets: KustoApiError Forbidden", e.get_api_error().code == "Forbidden", str(e))
try:
    rows(client(alice), "Sales | where NoSuchColumn > 1")
    check("semantic error", False, "no error")
except KustoApiError as e:
    check("semantic error: KustoApiError, is_semantic_error()", e.is_semantic_error(), str(e))
try:
    rows(client(alice), "Sales | where")
    check("syntax error", False, "no error")
except KustoApiError as e:
    check("syntax error names line and column", "1:" in str(e) or "line 1" in str(e), str(e))
try:
    rows(client("not-a-token"), "print 1")
    check("bad token refused", False, "no error")
except KustoServiceError as e:
    check("bad token refused with 401", "401" in str(e), str(e))

sys.exit(1 if failures else 0)

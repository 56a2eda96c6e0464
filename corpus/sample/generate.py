#!/usr/bin/env python3
"""Regenerates the CSV files of the ContosoSales sample database (corpus/sample/data/*.csv).

Deterministic: a fixed seed and no dependence on the clock, so running it again yields the
same bytes. Usage: python3 corpus/sample/generate.py
"""
import csv
import os
import random
from datetime import datetime, timedelta

SEED = 20240101
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

REGIONS = ["East", "West", "North", "South"]

# The sales force. Sales rows carry the seller's principal FQN (what current_principal()
# returns), the mapping tables carry the UPN (current_principal_details()["UserPrincipalName"]).
SALES_PEOPLE = [
    # AadUser (UPN), Name, Manager, Region
    ("alice@contoso.com", "Alice Anders", "dave@contoso.com", "East"),
    ("bob@contoso.com", "Bob Brown", "dave@contoso.com", "West"),
    ("carol@contoso.com", "Carol Chen", "dave@contoso.com", "North"),
    ("frank@contoso.com", "Frank Fischer", "dave@contoso.com", "South"),
    ("grace@contoso.com", "Grace Garcia", "dave@contoso.com", "East"),
]

# Who may see which region (the RLS mapping table). Dave manages every region; Erin, the
# analyst, has no row: region-mapped policies show her nothing.
USER_REGIONS = [(upn, region) for upn, _, _, region in SALES_PEOPLE] + [
    ("dave@contoso.com", r) for r in REGIONS
]

PRODUCTS = [
    # Product, Category, Price
    ("Contoso Laptop 13", "Computers", 899.0),
    ("Contoso Laptop 15", "Computers", 1299.0),
    ("Contoso Desktop Pro", "Computers", 1499.0),
    ("Contoso Tablet", "Computers", 499.0),
    ("Fabrikam Monitor 24", "Accessories", 189.0),
    ("Fabrikam Monitor 27", "Accessories", 329.0),
    ("Fabrikam Keyboard", "Accessories", 49.0),
    ("Fabrikam Mouse", "Accessories", 25.0),
    ("Litware Office Suite", "Software", 149.0),
    ("Litware Antivirus", "Software", 39.5),
    ("Northwind Headphones", "Audio", 79.0),
    ("Northwind Speaker", "Audio", 119.0),
]

FIRST = ["Ava", "Liam", "Mia", "Noah", "Emma", "Lucas", "Olivia", "Mateo", "Sofia", "Elias",
         "Hanna", "Jonas", "Chloe", "Hugo", "Lena", "Paul", "Yuki", "Kenji", "Priya", "Arjun"]
LAST = ["Smith", "Müller", "Dubois", "Rossi", "Garcia", "Kowalski", "Tanaka", "Sato", "Patel",
        "Khan", "Johnson", "Moreau", "Bianchi", "Silva", "Novak", "Larsen", "Nguyen", "Okafor"]
COUNTRIES = ["United States", "Canada", "Germany", "France", "Italy", "Spain", "Japan", "India",
             "Brazil", "United Kingdom"]

SECRETS = [
    ("PaymentsApiKey", "sk_live_51Hx9TzQ2eZvKYlo2C0ntos0", "aaduser=dave@contoso.com"),
    ("WarehouseDbPassword", "W4reh0use!2024", "aaduser=dave@contoso.com"),
    ("SmtpRelayToken", "smtp-7f3a9c1e-relay", "aaduser=erin@contoso.com"),
    ("PartnerPortalKey", "pp-00112233445566778899", "aaduser=alice@contoso.com"),
]


def luhn_complete(prefix15: str) -> str:
    """Appends the Luhn check digit, so card numbers are well-formed (and entirely fake)."""
    total = 0
    for i, ch in enumerate(reversed(prefix15)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return prefix15 + str((10 - total % 10) % 10)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def write(name, header, rows):
    with open(os.path.join(DATA, name), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def main():
    rng = random.Random(SEED)
    os.makedirs(DATA, exist_ok=True)

    customers = []
    used = set()
    for cid in range(1, 61):
        while True:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            if (first, last) not in used:
                used.add((first, last))
                break
        ascii_last = last.replace("ü", "ue")
        # Two customers never gave an e-mail address (empty string, for isempty()).
        email = "" if cid in (17, 42) else f"{first.lower()}.{ascii_last.lower()}@example.com"
        card = luhn_complete("4" + "".join(str(rng.randrange(10)) for _ in range(14)))
        signup = datetime(2021, 1, 1) + timedelta(days=rng.randrange(3 * 365), seconds=rng.randrange(86400))
        customers.append((cid, f"{first} {last}", email, rng.choice(COUNTRIES), card, iso(signup)))
    write("customers.csv", ["CustomerId", "Name", "Email", "Country", "CreditCardNumber", "SignupDate"], customers)

    sales = []
    start = datetime(2024, 1, 1)
    stamps = sorted(start + timedelta(seconds=rng.randrange(366 * 86400)) for _ in range(400))
    for i, ts in enumerate(stamps, start=1):
        upn, _, _, region = rng.choice(SALES_PEOPLE)
        product, _, price = rng.choice(PRODUCTS)
        qty = rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 10])
        discount = rng.choice([0, 0, 0, 5, 10, 15])
        amount = round(price * qty * (100 - discount) / 100, 2)
        sales.append((1000 + i, rng.randrange(1, 61), product, region, "aaduser=" + upn, amount, qty, iso(ts)))
    write("sales.csv", ["SaleId", "CustomerId", "Product", "Region", "SalesPersonAadUser", "Amount", "Quantity", "Timestamp"], sales)

    write("products.csv", ["Product", "Category", "Price"], PRODUCTS)
    write("salespeople.csv", ["AadUser", "Name", "Manager", "Region"], SALES_PEOPLE)
    write("userregions.csv", ["User", "Region"], USER_REGIONS)
    write("secrets.csv", ["Name", "Value", "Owner"], SECRETS)


if __name__ == "__main__":
    main()

"""Regenerate the sample files (deterministic): python samples/make_samples.py"""

from __future__ import annotations

import csv
import json
import random
import string
from pathlib import Path

HERE = Path(__file__).parent
FIRST = ["Amy", "Bruno", "Chloé", "Dmitri", "Elif", "Fatima", "Grégoire", "Hana", "Ivan", "Jonas",
         "Kenji", "Lucía", "Mateus", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Søren", "Tomás"]
LAST = ["Dakota", "Silva", "Müller", "Nakamura", "O'Brien", "Kowalski", "Dubois", "Rossi",
        "García", "Andersen", "Yılmaz", "Novak", "Costa", "Lindqvist", "Moreau", "Haddad"]
CITIES = [("Paris", "FR", "75011"), ("Lyon", "FR", "69002"), ("São Paulo", "BR", "01310-100"),
          ("Berlin", "DE", "10115"), ("San Jose", "US", "95110"), ("Lisboa", "PT", "1100-148")]


def pkey(rng: random.Random) -> str:
    return "@" + "".join(rng.choices(string.ascii_letters + string.digits + "-_", k=40))


def profile(rng: random.Random, i: int) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, country, zip_code = rng.choice(CITIES)
    return {
        "PKey": pkey(rng),
        "firstName": first,
        "lastName": last,
        "email": f"{first.lower()}.{i}@example.com",
        "phone": "+33 1 " + " ".join(str(rng.randint(10, 99)) for _ in range(3)) + f" 0{i % 10}",
        "mobilePhone": "",
        "birthDate": f"19{rng.randint(50, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "gender": rng.choice(["female", "male", "unknown"]),
        "preferredLanguage": rng.choice(["fr_fr", "en_us", "pt_br", "de_de"]),
        "blackListEmail": rng.random() < 0.1,
        "cusLoyaltyPoints": rng.randint(0, 5000),
        "cusCustomerId": f"{rng.randint(0, 99999):07d}",
        "location": {"address1": f"{rng.randint(1, 200)} rue des Lilas", "city": city,
                     "countryCode": country, "zipCode": zip_code, "stateCode": ""},
        "age": rng.randint(18, 80),
        "created": "2019-03-14 09:21:07.000Z",
        "lastModified": "2024-11-02 17:45:12.000Z",
    }


def schema(profiles: list[dict]) -> dict:
    """The sandbox's resource metadata: inferred from the profiles, with Adobe's data policy
    on names and the enumerations of gender and language."""
    from batchpatch.sandbox.schema import infer

    content = infer(profiles)
    for name in ("firstName", "lastName"):
        content[name]["dataPolicy"] = "smartCase"
    for name, values in (("gender", ["female", "male", "unknown"]),
                         ("preferredLanguage", ["fr_fr", "en_us", "pt_br", "de_de"])):
        content[name] = {**content[name], "type": "enumeration", "resType": "string",
                         "values": {v: {"value": v, "label": v.replace("_", " ").title()}
                                    for v in values}}
    return content


def main() -> None:
    rng = random.Random(20261128)
    profiles = [profile(rng, i) for i in range(400)]
    (HERE / "profiles.json").write_text(json.dumps(profiles, indent=1, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    (HERE / "schema.json").write_text(json.dumps(schema(profiles), indent=1) + "\n")
    columns = ["PKey", "email", "phone", "location.city", "cusLoyaltyPoints", "blackListEmail",
               "firstName", "gender"]
    rows: list[list[str]] = []
    for i, p in enumerate(profiles[:280]):
        kind = i % 4
        if kind == 0:  # already right (the name in lower case: smartCase makes it the same)
            rows.append([p["PKey"], p["email"], p["phone"], p["location"]["city"],
                         str(p["cusLoyaltyPoints"]), str(p["blackListEmail"]).lower(),
                         p["firstName"].lower(), p["gender"].upper()])
        elif kind == 1:  # new phone and a double first name typed carelessly
            rows.append([p["PKey"], "", f"+33 6 {i:02d} 00 00 {i % 97:02d}", "", "", "",
                         f"{p['firstName'].lower()}-MARIA", ""])
        elif kind == 2:  # moved: city changes, the rest of location must survive
            points = str(p["cusLoyaltyPoints"] + 100)
            rows.append([p["PKey"], "", "", "Marseille, Vieux-Port", points, "", "", ""])
        else:  # unsubscribed, fixed email
            rows.append([p["PKey"], p["email"].replace("@example.com", "@example.org"), "", "", "",
                         "yes", "", ""])
    for i in range(12):  # keys the API does not know
        rows.append([pkey(rng), f"ghost{i}@example.com", "", "", "", "", "", ""])
    rows.insert(150, [profiles[300]["PKey"], "", "", "", "lots", "", "", ""])  # invalid integer
    with open(HERE / "fixes.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows[:200])
        fh.write(f"{profiles[301]['PKey']},only-two-cells\n")  # a ragged line: invalid
        writer.writerows(rows[200:])


if __name__ == "__main__":
    main()

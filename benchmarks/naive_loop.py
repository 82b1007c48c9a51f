"""What a data engineer writes first: a sequential `requests` loop, GET-PATCH-GET per row.
Run: python naive_loop.py URL_TEMPLATE KEYS_FILE"""

from __future__ import annotations

import json
import sys
import time

import requests


def main(template: str, keys: list[str]) -> float:
    started = time.perf_counter()
    with requests.Session() as session:
        for key in keys:
            url = template.replace("{pkey}", key)
            session.get(url).json()
            href = session.patch(url, json={"phone": "naive-" + key}).json()["href"]
            session.get(href).json()
    return len(keys) / (time.perf_counter() - started)


if __name__ == "__main__":
    with open(sys.argv[2]) as fh:
        keys = json.load(fh)
    print(json.dumps({"rows_per_s": main(sys.argv[1], keys)}))

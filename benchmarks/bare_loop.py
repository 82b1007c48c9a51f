"""The floor any Python client pays: a bare aiohttp GET-PATCH-GET loop, N workers, no retries,
no rate limit, no files. Run: python bare_loop.py URL_TEMPLATE KEYS_FILE CONCURRENCY"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def main(template: str, keys: list[str], concurrency: int) -> float:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in keys:
        queue.put_nowait(key)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            key = queue.get_nowait()
            url = template.replace("{pkey}", key)
            async with session.get(url) as resp:
                await resp.json()
            async with session.patch(url, json={"phone": "bare-" + key}) as resp:
                href = (await resp.json())["href"]
            async with session.get(href) as resp:
                await resp.json()

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
    return len(keys) / (time.perf_counter() - started)


if __name__ == "__main__":
    url, keys_file, conc = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(keys_file) as fh:
        keys = json.load(fh)
    print(json.dumps({"rows_per_s": asyncio.run(main(url, keys, conc))}))

"""The strongest plain client: the bare aiohttp GET-PATCH-GET loop of bare_loop.py on uvloop,
with orjson for every body. Run: python bare_loop_fast.py URL_TEMPLATE KEYS_FILE CONCURRENCY"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
import orjson
import uvloop


async def main(template: str, keys: list[str], concurrency: int) -> float:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in keys:
        queue.put_nowait(key)
    headers = {"Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            key = queue.get_nowait()
            url = template.replace("{pkey}", key)
            async with session.get(url) as resp:
                orjson.loads(await resp.read())
            body = orjson.dumps({"phone": "bare-" + key})
            async with session.patch(url, data=body, headers=headers) as resp:
                href = orjson.loads(await resp.read())["href"]
            async with session.get(href) as resp:
                orjson.loads(await resp.read())

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
    return len(keys) / (time.perf_counter() - started)


if __name__ == "__main__":
    url, keys_file, conc = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(keys_file) as fh:
        keys = json.load(fh)
    print(json.dumps({"rows_per_s": uvloop.run(main(url, keys, conc))}))

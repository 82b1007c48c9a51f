"""The outage forwarder (tests/forwarder.py) between a client and the sandbox: it forwards,
resets (or refuses) while down and counts the attempts, and forwards again on the same port."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest
from forwarder import Forwarder

ONE = "/demo/campaign/profileAndServices/profile/@p00001"


def target(sandbox: Any) -> tuple[str, int]:
    host, port = sandbox.url.removeprefix("http://").split(":")
    return host, int(port)


def get(url: str) -> tuple[int, Any]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def test_forwards_requests_and_answers_both_ways(sandbox) -> None:
    with Forwarder(*target(sandbox)) as fwd:
        assert fwd.url == f"http://127.0.0.1:{fwd.port}" and fwd.port != target(sandbox)[1]
        status, body = get(fwd.url + ONE)
        assert status == 200 and body["content"][0]["PKey"] == "@p00001"
        request = urllib.request.Request(fwd.url + ONE, method="PATCH",
                                         data=json.dumps({"phone": "x" * 200_000}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
        assert fwd.connection_attempts == 2 and fwd.reset_attempts == 0
    assert sandbox.profiles_now()["@p00001"]["phone"] == "x" * 200_000
    assert sandbox.stats()["counts"] == {"GET 200": 1, "PATCH 200": 1}


def test_down_resets_open_and_new_connections_counting_each_then_up(sandbox) -> None:
    with Forwarder(*target(sandbox)) as fwd:
        kept = http.client.HTTPConnection("127.0.0.1", fwd.port, timeout=10)
        kept.request("GET", ONE)
        assert kept.getresponse().read()  # a keep-alive connection, open through the outage
        port = fwd.port
        fwd.down()
        with pytest.raises(OSError):
            kept.request("GET", ONE)
            kept.getresponse()
        for _ in range(3):
            with pytest.raises(OSError):
                get(fwd.url + ONE)
        assert fwd.reset_attempts == 3 and fwd.connection_attempts == 4
        assert sandbox.stats()["total"] == 1  # nothing got through during the outage
        fwd.up()
        assert get(fwd.url + ONE)[0] == 200 and fwd.port == port
        assert fwd.reset_attempts == 3 and fwd.connection_attempts == 5


def test_refuse_mode_stops_listening_then_listens_on_the_same_port(sandbox) -> None:
    with Forwarder(*target(sandbox)) as fwd:
        port = fwd.port
        fwd.down(refuse=True)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        assert fwd.connection_attempts == 0  # refused in the kernel: not seen
        fwd.up()
        assert get(f"http://127.0.0.1:{port}" + ONE)[0] == 200


def test_a_timed_outage_ends_by_itself_and_attempts_per_second_can_be_measured(
        sandbox, tmp_path) -> None:
    """A client in another process retries every 0.1 s until it gets through."""
    client = tmp_path / "client.py"
    client.write_text(
        "import sys, time, urllib.request\n"
        "deadline = time.monotonic() + 20\n"
        "while time.monotonic() < deadline:\n"
        "    try:\n"
        "        urllib.request.urlopen(sys.argv[1], timeout=5).read()\n"
        "        sys.exit(0)\n"
        "    except OSError:\n"
        "        time.sleep(0.1)\n"
        "sys.exit(1)\n")
    with Forwarder(*target(sandbox)) as fwd:
        fwd.down(seconds=1.5)
        began = time.monotonic()
        proc = subprocess.run([sys.executable, str(client), fwd.url + ONE], timeout=60)
        assert proc.returncode == 0
        assert time.monotonic() - began >= 1.0 and not fwd.is_down
        during = fwd.attempt_times(during_outage=True)
        assert len(during) >= 3 and len(fwd.attempt_times(during_outage=False)) == 1
        per_second = (len(during) - 1) / (during[-1] - during[0])
        assert 2 <= per_second <= 15  # about the client's 10/s, loosely
    assert sandbox.stats()["counts"] == {"GET 200": 1}

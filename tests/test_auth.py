"""Adobe IMS OAuth Server-to-Server: token exchange, refresh, single-flight, aborts, and secrets
kept out of every output. End to end against the sandbox's token endpoint."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from conftest import by_row, make_profiles, read_results, run_cli, write_csv
from test_reliability import start_cli, wait_for_records

from batchpatch.auth import ImsAuth, refresh_margin
from batchpatch.counters import Counters
from batchpatch.errors import AuthFailed, Unreachable
from batchpatch.secret import Secret
from batchpatch.transport import MemoryTransport, respond

SECRET = "s3cr3t-Client-Value-0042"
CLIENT = "batchpatch-client-id"


def ims_args(sandbox) -> list[str]:
    return ["--base-url", sandbox.url, "--org", "demo", "--client-id", CLIENT,
            "--ims-url", sandbox.url + "/ims/token/v3", "--concurrency", "8"]


def outputs(tmp_path: Path, *procs: subprocess.CompletedProcess[str]) -> str:
    """Everything batchpatch wrote: streams and every file in the run's folder."""
    text = "".join(p.stdout + p.stderr for p in procs)
    for path in tmp_path.iterdir():
        if path.is_file():
            text += path.read_text(errors="replace")
    return text


def test_refresh_margin_is_proportional() -> None:
    assert refresh_margin(86399) == 300  # a 24-hour token: five minutes early
    assert refresh_margin(10) == 1.0  # a 10-second token: a second early
    assert refresh_margin(3) == pytest.approx(0.3)


IMS = "https://ims.example/ims/token/v3"


async def test_concurrent_401s_make_one_token_request() -> None:
    transport = MemoryTransport.script(respond(200, {"access_token": "t1", "expires_in": 3600}))
    counters = Counters()
    auth = ImsAuth(transport, CLIENT, Secret(SECRET), ims_url=IMS, counters=counters)
    headers = await auth.headers()
    assert headers == {"Authorization": "Bearer t1", "X-Api-Key": CLIENT}
    generation = auth.generation
    await asyncio.gather(*(auth.unauthorized(generation, "expired") for _ in range(20)))
    assert counters.token_requests == len(transport.requests) == 2  # first, and one refresh
    request = transport.requests[0]
    assert (request.method, request.url) == ("POST", IMS)
    form = parse_qs(request.body.decode())
    assert form["grant_type"] == ["client_credentials"] and form["client_secret"] == [SECRET]


async def test_ims_refusal_is_auth_failed_without_the_secret() -> None:
    transport = MemoryTransport.script(respond(401, {
        "error": "invalid_client", "error_description": f"bad secret {SECRET}"}))
    auth = ImsAuth(transport, CLIENT, Secret(SECRET), ims_url=IMS)
    with pytest.raises(AuthFailed) as info:
        await auth.headers()
    assert CLIENT in str(info.value) and "invalid" in str(info.value)
    assert SECRET not in str(info.value)


async def test_ims_redirect_is_not_followed_and_aborts() -> None:
    transport = MemoryTransport.script(respond(307, headers={"Location": "https://evil.test/t"}))
    auth = ImsAuth(transport, CLIENT, Secret(SECRET), ims_url=IMS)
    with pytest.raises(AuthFailed, match=r"redirect .*evil\.test.*not followed"):
        await auth.headers()
    assert len(transport.requests) == 1  # the form (and its secret) went nowhere else


@pytest.mark.parametrize("expires_in", ["soon", None, -5, "NaN", "inf", True, [1]])
async def test_an_unreadable_token_lifetime_still_gives_a_token(expires_in: object) -> None:
    body = {"access_token": "t1"} if expires_in is None else {
        "access_token": "t1", "expires_in": expires_in}
    transport = MemoryTransport.script(respond(200, json=None, body=json.dumps(body).encode()))
    auth = ImsAuth(transport, CLIENT, Secret(SECRET), ims_url=IMS)
    assert (await auth.headers())["Authorization"] == "Bearer t1"


@pytest.mark.parametrize("token", ["", "a b", "t1\r", None, 42])
async def test_an_unusable_access_token_aborts(token: object) -> None:
    transport = MemoryTransport.script(respond(200, {"access_token": token, "expires_in": 60}))
    auth = ImsAuth(transport, CLIENT, Secret(SECRET), ims_url=IMS)
    with pytest.raises(AuthFailed, match="no usable access_token"):
        await auth.headers()


async def test_ims_unreachable_is_retried_then_aborts() -> None:
    transport = MemoryTransport.script(Unreachable("POST https://ims.example failed"))
    auth = ImsAuth(transport, CLIENT, Secret(SECRET), ims_url=IMS, sleep=_no_sleep)
    with pytest.raises(AuthFailed, match="cannot reach IMS"):
        await auth.headers()
    assert len(transport.requests) == ImsAuth.ATTEMPTS


async def _no_sleep(seconds: float) -> None:
    return None


def test_short_tokens_over_many_lifetimes(sandbox_process, tmp_path: Path) -> None:
    n = 350
    sandbox_process.reset(make_profiles(n), client_id=CLIENT, client_secret=SECRET,
                          token_lifetime=3)
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"],
                      [[f"@p{i:05d}", f"9{i}"] for i in range(n)])
    started = time.monotonic()
    proc = run_cli("run", fixes, *ims_args(sandbox_process), "--rate", "100",
                   env={"BATCHPATCH_CLIENT_SECRET": SECRET})
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started > 9  # over three token lifetimes
    assert {r["status"] for r in read_results(tmp_path / "f.results.jsonl")} == {"updated"}
    stats = sandbox_process.stats()
    summary = json.loads((tmp_path / "f.summary.json").read_text())
    assert 3 <= summary["token_requests"] <= 8
    assert stats["counts"].get("POST 200") == summary["token_requests"]
    unauthorized = sum(v for k, v in stats["counts"].items() if k.endswith(" 401"))
    assert unauthorized <= 8
    assert SECRET not in outputs(tmp_path, proc)


def test_wrong_secret_exits_3_sends_no_patch_and_shows_no_secret(sandbox,
                                                                 tmp_path: Path) -> None:
    sandbox.configure(client_id=CLIENT, client_secret=SECRET)
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [["@p00001", "1"]])
    wrong = "Wrong-Secret-Value-9876"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(wrong + "\n")
    proc = run_cli("run", fixes, *ims_args(sandbox), "--client-secret-file", secret_file, "-v")
    assert proc.returncode == 3, proc.stderr
    assert f"IMS refused client id {CLIENT}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(k.startswith("PATCH") for k in sandbox.stats()["counts"])
    secret_file.unlink()
    assert wrong not in outputs(tmp_path, proc)


def test_print_config_masks_secrets(tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [["@p00001", "1"]])
    config = tmp_path / "bp.toml"
    config.write_text('base_url = "https://mc.adobe.io"\norg = "acme"\nrate = 25\n'
                      '[profiles.stage]\norg = "acme-mkt-stage"\n')
    proc = run_cli("run", fixes, "--config", config, "--profile", "stage", "--client-id",
                   CLIENT, "--token", "tok-Visible-Nowhere", "--concurrency", "4",
                   "--print-config", env={"BATCHPATCH_CLIENT_SECRET": SECRET,
                                          "BATCHPATCH_RATE": "50"})
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["org"] == "acme-mkt-stage" and shown["concurrency"] == 4
    assert shown["rate"] == 50.0  # the environment wins over the file
    assert shown["sources"]["rate"] == "env" and shown["sources"]["org"] == "file"
    assert shown["client_secret"] == "***" and shown["token"] == "***"
    assert SECRET not in proc.stdout and "tok-Visible-Nowhere" not in proc.stdout
    helped = run_cli("run", "--help", env={"BATCHPATCH_CLIENT_SECRET": SECRET,
                                           "BATCHPATCH_TOKEN": "tok-Visible-Nowhere"})
    assert helped.returncode == 0 and "--client-secret-file" in helped.stdout
    assert SECRET not in helped.stdout and "tok-Visible-Nowhere" not in helped.stdout


def test_revoked_credentials_mid_run_abort_then_resume(sandbox_process, tmp_path: Path) -> None:
    n = 300
    sandbox_process.reset(make_profiles(n), client_id=CLIENT, client_secret=SECRET,
                          latency_ms=10)
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"],
                      [[f"@p{i:05d}", f"9{i}"] for i in range(n)])
    results = tmp_path / "f.results.jsonl"
    proc = start_cli("run", fixes, *ims_args(sandbox_process), "--rate", "0",
                     env={"BATCHPATCH_CLIENT_SECRET": SECRET})
    wait_for_records(results, 30, proc)
    sandbox_process.configure(client_secret="rotated-Secret-1111", revoke_tokens=True)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    assert "IMS refused" in stderr
    # once the credentials were refused, only the requests already in flight were answered:
    # at most one per worker, and the one token request that failed
    times = sorted(sandbox_process.stats(times=True)["times"])  # by arrival
    first_refusal = next(i for i, (_, label) in enumerate(times) if label == "401")
    assert len(times) - first_refusal <= 8 + 2, times[first_refusal:]
    unauthorized = sum(v for k, v in sandbox_process.stats()["counts"].items()
                       if k.endswith(" 401"))
    assert unauthorized <= 8 + 1
    done = len(read_results(results))
    assert 30 <= done < n
    again = run_cli("run", fixes, *ims_args(sandbox_process), "--resume", "--rate", "0",
                    env={"BATCHPATCH_CLIENT_SECRET": "rotated-Secret-1111"})
    assert again.returncode == 0, again.stderr
    assert sorted(by_row(read_results(results))) == list(range(2, n + 2))
    state = sandbox_process.profiles_now()
    assert all(state[f"@p{i:05d}"]["phone"] == f"9{i}" for i in range(n))

"""Credentials stay with the target; batchpatch works behind corporate proxies and private CAs.

End to end, the real command against real servers on loopback:
- the sandbox (HTTP, and HTTPS with certificates from a CA made here with trustme), with the
  knobs that redirect (`chaos` redirect kinds, `redirect_hops`, `ims_redirect`) and that echo
  a request's headers and body into error answers (`echo_request`);
- a second server at another origin (another port) that records whatever reaches it
  (tests/recorder.py): it must receive nothing;
- a real forward proxy (proxy.py, tests/forward_proxy.py) that alone resolves the
  `*.batchpatch.test` names: a run against such a target succeeds only through the proxy, and
  the proxy lists every request it forwarded;
- a TCP forwarder in front of an HTTPS sandbox (tests/forwarder.py) that counts connections,
  even those whose TLS handshake fails before the sandbox sees a request.

Every test that can leak a secret searches every output (streams, results, failures, summary,
logs in text and JSON, the HTML and Markdown report, the undo file) for any 8 characters in a
row of the token, the API key, the client secret and the proxy password, as given and as a URL
or a form would encode them.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import trustme
from conftest import make_profiles, read_results, write_csv
from forward_proxy import ForwardProxy
from forwarder import Forwarder
from recorder import Recorder

from batchpatch.auth import ImsAuth
from batchpatch.errors import AuthFailed
from batchpatch.sandbox.process import SandboxProcess
from batchpatch.secret import Secret
from batchpatch.transport import MemoryTransport, respond

# Secrets look random, so that 8 characters of one never occur in an output by chance.
TOKEN = "tokQz7Wm2Rk9Lp4Xv8Nd"
API_KEY = "keyHd3Jt6Bc1Fs5Gy0Ua"
CLIENT_ID = "batchpatch-net-client"
CLIENT_SECRET = "cs/Vn8+Pq2=Tw5&Ye9Zr"  # characters a form body and a URL encode
PROXY_USER = "corpuser"
PROXY_PASSWORD = "pxQ7@w9:Lb2tRf"  # '@' and ':' must be percent-encoded in a proxy URL
PROXY_BASIC = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
WINDOW = 8
#: names only the proxy resolves (tests/proxy_plugin.py)
API_HOST, IMS_HOST = "api.batchpatch.test", "ims.batchpatch.test"
CONCURRENCY = 2
#: every run: unlimited rate, few workers, and no long wait on a target that does not answer
#: (that is what a test of a broken build sees: it must fail, not hang)
PACE = ["--rate", "0", "--concurrency", str(CONCURRENCY), "--max-outage", "2"]


# -- helpers ---------------------------------------------------------------------------------
def bp(*args: str | Path, env: dict[str, str] | None = None,
       timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m batchpatch ARGS` in a clean environment: none of the caller's BATCHPATCH_*,
    proxy or CA variables (a CI machine may have them), then `env`."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("BATCHPATCH_") and "proxy" not in k.lower()
             and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    clean.update(env or {})
    return subprocess.run([sys.executable, "-m", "batchpatch", *map(str, args)],
                          capture_output=True, text=True, env=clean, timeout=timeout)


def everything(folder: Path, *procs: subprocess.CompletedProcess[str]) -> str:
    """What batchpatch wrote: the processes' streams and every file under `folder`."""
    text = "".join(p.stdout + p.stderr for p in procs)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            text += path.read_bytes().decode("utf-8", "replace")
    return text


def assert_holds_none_of(text: str, *secrets: str) -> None:
    """No WINDOW characters in a row of any secret, as given, URL- or form-encoded, appear."""
    for secret in secrets:
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            for i in range(len(form) - WINDOW + 1):
                piece = form[i:i + WINDOW]
                assert piece not in text, f"{piece!r} (part of a secret) was written: ..." \
                    f"{text[max(0, text.find(piece) - 80):text.find(piece) + 40]!r}"


def fixes(folder: Path, name: str = "f.csv",
          rows: list[list[str]] | None = None) -> Path:
    """Three rows that change a phone (the sandbox's first profiles)."""
    return write_csv(folder / name, ["PKey", "phone"],
                     rows or [[f"@p{i:05d}", f"+33 6 55 00 00 0{i}"] for i in range(1, 4)])


def static_env() -> dict[str, str]:
    return {"BATCHPATCH_TOKEN": TOKEN, "BATCHPATCH_API_KEY": API_KEY}


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def aborted_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "aborted:" in line]


def records_in(path: Path) -> list[dict[str, Any]]:
    """The results file's records in input order; none when the run stopped before it was
    opened (an abort on the first request, the metadata GET)."""
    return sorted(read_results(path), key=lambda r: r["row"]) if path.exists() else []


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture
def other() -> Iterator[Recorder]:
    """A server at another origin (same scheme and host, another port)."""
    with Recorder() as recorder:
        yield recorder


@pytest.fixture(scope="module")
def proxy_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    with ForwardProxy(tmp_path_factory.mktemp("proxy"),
                      basic_auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        yield proxy


@pytest.fixture
def proxy(proxy_process: ForwardProxy) -> ForwardProxy:
    """The proxy (it asks for PROXY_USER / PROXY_PASSWORD), its list of forwarded requests
    emptied."""
    proxy_process.forward_log.unlink(missing_ok=True)
    return proxy_process


@dataclass(frozen=True)
class Pki:
    """A CA made for the tests, and certificates for the sandbox: (cert, key) file pairs."""

    ca: Path
    good: tuple[Path, Path]  # for 127.0.0.1 and API_HOST, signed by `ca`
    other_name: tuple[Path, Path]  # for another host name only, signed by `ca`
    expired: tuple[Path, Path]  # for 127.0.0.1, signed by `ca`, expired yesterday
    not_yet_valid: tuple[Path, Path]  # for 127.0.0.1, signed by `ca`, valid from tomorrow
    unknown_ca: tuple[Path, Path]  # for 127.0.0.1, signed by a CA nobody trusts


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, stranger = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    now = datetime.datetime.now(datetime.UTC)
    issued = {
        "good": ca.issue_cert("127.0.0.1", API_HOST),
        "other_name": ca.issue_cert("elsewhere.example"),
        "expired": ca.issue_cert("127.0.0.1", not_before=now - datetime.timedelta(days=30),
                                 not_after=now - datetime.timedelta(days=1)),
        "not_yet_valid": ca.issue_cert("127.0.0.1", not_before=now + datetime.timedelta(days=1),
                                       not_after=now + datetime.timedelta(days=30)),
        "unknown_ca": stranger.issue_cert("127.0.0.1"),
    }
    pairs = {}
    for name, cert in issued.items():
        pair = folder / f"{name}.pem", folder / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(pair[0]))
        cert.private_key_pem.write_to_path(str(pair[1]))
        pairs[name] = pair
    return Pki(folder / "ca.pem", **pairs)


def https_sandbox(folder: Path, pair: tuple[Path, Path], cafile: Path | None) -> SandboxProcess:
    profiles = folder / "profiles.json"
    if not profiles.exists():
        profiles.write_text(json.dumps(make_profiles(10)))
    return SandboxProcess(profiles, "--tls-cert", str(pair[0]), "--tls-key", str(pair[1]),
                          cafile=cafile)


@pytest.fixture(scope="module")
def tls_sandbox_process(tmp_path_factory: pytest.TempPathFactory,
                        pki: Pki) -> Iterator[SandboxProcess]:
    with https_sandbox(tmp_path_factory.mktemp("tls"), pki.good, pki.ca) as sandbox:
        yield sandbox


@pytest.fixture
def tls_sandbox(tls_sandbox_process: SandboxProcess) -> SandboxProcess:
    """An HTTPS sandbox whose certificate (127.0.0.1 and API_HOST) only `pki.ca` vouches for."""
    tls_sandbox_process.reset(make_profiles(10))
    return tls_sandbox_process


# == 1. Redirects never take credentials elsewhere ===========================================
def test_a_get_redirected_to_another_origin_is_not_followed(
        sandbox: SandboxProcess, other: Recorder, tmp_path: Path) -> None:
    sandbox.reset(make_profiles(10), token=TOKEN, api_key=API_KEY, chaos=1.0,
                  chaos_kinds=["redirect_elsewhere"], chaos_methods=["GET"],
                  chaos_elsewhere=other.url)
    proc = bp("run", fixes(tmp_path), "--base-url", sandbox.url, "--org", "demo", *PACE, "-v",
              env=static_env())
    assert proc.returncode == 1, proc.stderr
    records = records_in(tmp_path / "f.results.jsonl")
    assert [r["status"] for r in records] == ["failed"] * 3
    assert all(f"redirected to another origin ({other.url})" in r["error"]
               and "not followed" in r["error"] for r in records), records
    assert other.connections == 0 and other.requests == []  # not even the metadata GET
    assert not any(k.startswith("PATCH") for k in sandbox.stats()["counts"])
    assert_holds_none_of(everything(tmp_path, proc), TOKEN, API_KEY)


def test_a_patch_answered_307_to_another_origin_is_not_followed(
        sandbox: SandboxProcess, other: Recorder, tmp_path: Path) -> None:
    sandbox.reset(make_profiles(10), token=TOKEN, api_key=API_KEY, chaos=1.0,
                  chaos_kinds=["redirect_elsewhere"], chaos_methods=["PATCH"],
                  chaos_elsewhere=other.url, redirect_status=307)
    wanted = "+33 6 98 76 54 32"
    rows = [["@p00001", wanted], ["@p00002", wanted]]
    proc = bp("run", fixes(tmp_path, rows=rows), "--base-url", sandbox.url, "--org", "demo",
              *PACE, env=static_env())
    assert proc.returncode == 1, proc.stderr
    records = records_in(tmp_path / "f.results.jsonl")
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert all(r["http_status"] == 307 and other.url in r["error"] for r in records), records
    assert all(r["changed"] == {"phone": ["0000000001" if r["row"] == 2 else "0000000002",
                                          wanted]} for r in records)  # undo still covers it
    assert other.connections == 0 and other.requests == []  # the body never went there
    assert sandbox.stats()["counts"]["PATCH 307"] == 2
    assert {p["phone"] for k, p in sandbox.profiles_now().items()
            if k in ("@p00001", "@p00002")} == {"0000000001", "0000000002"}


def test_a_same_origin_redirect_on_get_is_followed_for_up_to_three_hops(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    sandbox.reset(make_profiles(10), redirect_hops=3)  # every GET: 3 hops, then the answer
    proc = bp("run", fixes(tmp_path), "--base-url", sandbox.url, "--org", "demo", *PACE)
    assert proc.returncode == 0, proc.stderr
    records = records_in(tmp_path / "f.results.jsonl")
    assert [r["status"] for r in records] == ["updated"] * 3
    counts = sandbox.stats()["counts"]
    # the metadata GET, then per row the GET and the read-back: 3 hops each, all followed
    assert counts["GET 302"] == 3 * counts["GET 200"] == 3 * (1 + 2 * 3)
    assert sandbox.profiles_now()["@p00003"]["phone"] == "+33 6 55 00 00 03"


@pytest.mark.parametrize("knobs", [
    {"redirect_hops": 4},  # one hop too many
    {"chaos": 1.0, "chaos_kinds": ["redirect_self"], "chaos_methods": ["GET"]},  # a loop
], ids=["four-hops", "loop"])
def test_a_get_redirected_more_than_three_times_fails_its_row(
        sandbox: SandboxProcess, tmp_path: Path, knobs: dict[str, object]) -> None:
    sandbox.reset(make_profiles(10), **knobs)
    proc = bp("run", fixes(tmp_path), "--base-url", sandbox.url, "--org", "demo", *PACE,
              "--schema", "none")
    assert proc.returncode == 1, proc.stderr
    records = records_in(tmp_path / "f.results.jsonl")
    assert [r["status"] for r in records] == ["failed"] * 3
    assert all("more than 3 redirects" in r["error"] for r in records), records
    assert all(r["attempts"] == 4 for r in records)  # the GET and 3 hops, no more
    assert sandbox.stats()["counts"] == {"GET 302": 3 * 4}


def test_a_same_origin_redirect_on_patch_is_not_followed(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    sandbox.reset(make_profiles(10), redirect_hops=1, redirect_methods=["PATCH"],
                  redirect_status=308)
    proc = bp("run", fixes(tmp_path), "--base-url", sandbox.url, "--org", "demo", *PACE)
    assert proc.returncode == 1, proc.stderr
    records = records_in(tmp_path / "f.results.jsonl")
    assert all(r["status"] == "failed" and "only GETs follow redirects" in r["error"]
               for r in records), records
    assert sandbox.stats()["counts"]["PATCH 308"] == 3 and not sandbox.stats()["patches"]


def test_ims_answering_307_elsewhere_aborts_and_the_form_goes_nowhere(
        sandbox: SandboxProcess, other: Recorder, tmp_path: Path) -> None:
    sandbox.reset(make_profiles(10), client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                  ims_redirect=other.url + "/ims/token/v3", redirect_status=307)
    proc = bp("run", fixes(tmp_path), "--base-url", sandbox.url, "--org", "demo", *PACE,
              "--client-id", CLIENT_ID, "--ims-url", sandbox.url + "/ims/token/v3",
              env={"BATCHPATCH_CLIENT_SECRET": CLIENT_SECRET})
    assert proc.returncode == 3, proc.stderr
    [line] = aborted_lines(proc.stderr)
    assert f"redirect (307) to {other.url}; not followed" in line and "--ims-url" in line
    assert other.connections == 0 and other.requests == []  # the client secret stayed here
    assert sandbox.stats()["counts"] == {"POST 307": 1}  # asked once; no API request at all
    assert records_in(tmp_path / "f.results.jsonl") == []
    assert_holds_none_of(everything(tmp_path, proc), CLIENT_SECRET)


# == 2. Secrets an API echoes back are masked everywhere =====================================
def echo_rows(folder: Path, name: str, phone: str = "+33 6 01 02 03 0") -> Path:
    """Two rows that succeed, and rows whose error answers echo the request: not found (404),
    and a key the API cannot parse (500)."""
    return fixes(folder, name, [["@p00001", phone + "1"], ["@nobody", "1"],
                                ["not-a-pkey", "2"], ["@p00002", phone + "2"]])


def report_and_undo(results: Path) -> list[subprocess.CompletedProcess[str]]:
    stem = results.name.removesuffix(".results.jsonl")
    done = [bp("report", results, "-o", results.with_name(f"{stem}.report.html")),
            bp("report", results, "-o", results.with_name(f"{stem}.report.md")),
            bp("undo", results, "-o", results.with_name(f"{stem}.undo.jsonl"))]
    assert [p.returncode for p in done] == [0, 0, 0], [p.stderr for p in done]
    return done


def test_secrets_an_api_echoes_are_masked_in_every_output(
        sandbox: SandboxProcess, proxy: ForwardProxy, tmp_path: Path) -> None:
    sandbox.reset(make_profiles(10), token=TOKEN, api_key=API_KEY, echo_request=True)
    target = ["--base-url", f"http://{API_HOST}:{port_of(sandbox.url)}", "--org", "demo",
              "--proxy", proxy.url_with_auth, *PACE]
    text = bp("run", echo_rows(tmp_path, "text.csv"), *target, "-vv", env=static_env())
    as_json = bp("run", echo_rows(tmp_path, "json.csv", "+33 7 01 02 03 0"), *target, "-vv",
                 "--log-format", "json", env=static_env())
    for proc in (text, as_json):
        assert proc.returncode == 1, proc.stderr
    records = records_in(tmp_path / "text.results.jsonl")
    assert [r["status"] for r in records] == ["updated", "not_found", "failed", "updated"]
    assert [r["status"] for r in records_in(tmp_path / "json.results.jsonl")] == [
        r["status"] for r in records]
    # the API did echo our headers, and what reached the record is masked
    assert all("Authorization: Bearer ***; X-Api-Key: ***" in r["error"]
               for r in records if r["error"]), records
    assert any('"level":"debug"' in line and "Bearer ***" in line
               for line in as_json.stderr.splitlines())  # -vv logs the attempt in JSON too
    assert len(proxy.forwarded()) == sandbox.stats()["total"] == 2 * 9  # all of them
    done = [text, as_json, *report_and_undo(tmp_path / "text.results.jsonl"),
            *report_and_undo(tmp_path / "json.results.jsonl")]
    assert_holds_none_of(everything(tmp_path, *done), TOKEN, API_KEY, PROXY_PASSWORD)


def test_an_abort_on_an_answer_echoing_the_secrets_masks_them(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    wrong_key = "keyWr0ngZx8Cv6Bn4Mq"
    sandbox.reset(make_profiles(10), token=TOKEN, api_key=API_KEY, echo_request=True)
    procs = [bp("run", fixes(tmp_path, f"{fmt}.csv"), "--base-url", sandbox.url, "--org", "demo",
                *PACE, "--schema", "none", "--log-format", fmt, "-vv",
                env={"BATCHPATCH_TOKEN": TOKEN, "BATCHPATCH_API_KEY": wrong_key})
             for fmt in ("text", "json")]
    for proc in procs:
        assert proc.returncode == 3, proc.stderr
        [line] = aborted_lines(proc.stderr)
        assert "the API refused access (403)" in line and "X-Api-Key: ***" in line, line
    summary = json.loads((tmp_path / "text.summary.json").read_text())
    assert "Bearer ***" in summary["aborted"]
    done = [*procs, *report_and_undo(tmp_path / "text.results.jsonl")]
    assert_holds_none_of(everything(tmp_path, *done), TOKEN, wrong_key)


def test_ims_secrets_echoed_are_masked(sandbox: SandboxProcess, tmp_path: Path) -> None:
    sandbox.reset(make_profiles(10), client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                  echo_request=True)
    ims = ["--base-url", sandbox.url, "--org", "demo", *PACE, "--client-id", CLIENT_ID,
           "--ims-url", sandbox.url + "/ims/token/v3", "-vv"]
    wrong = "cs/Wr0ng+Qx5=Zk8&Hb2"
    refused = bp("run", fixes(tmp_path, "refused.csv"), *ims,
                 env={"BATCHPATCH_CLIENT_SECRET": wrong})
    assert refused.returncode == 3, refused.stderr
    [line] = aborted_lines(refused.stderr)
    assert f"IMS refused client id {CLIENT_ID}" in line and "client_secret=***" in line, line
    granted = bp("run", echo_rows(tmp_path, "granted.csv"), *ims, "--log-format", "json",
                 env={"BATCHPATCH_CLIENT_SECRET": CLIENT_SECRET})
    assert granted.returncode == 1, granted.stderr
    records = records_in(tmp_path / "granted.results.jsonl")
    assert [r["status"] for r in records] == ["updated", "not_found", "failed", "updated"]
    assert "Authorization: Bearer ***" in records[1]["error"]
    done = [refused, granted, *report_and_undo(tmp_path / "granted.results.jsonl")]
    out = everything(tmp_path, *done)
    assert "sbx-" not in out  # the access tokens IMS issued (the sandbox's start with sbx-)
    assert_holds_none_of(out, CLIENT_SECRET, wrong)


def test_a_long_token_cut_by_the_message_limit_is_still_masked(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    jwt_like = "eyJ" + "".join(f"{i:03d}Qk" for i in range(200))  # ~1000 characters
    sandbox.reset(make_profiles(10), token=jwt_like, api_key=API_KEY, echo_request=True)
    proc = bp("run", fixes(tmp_path, rows=[["@nobody", "1"]]), "--base-url", sandbox.url,
              "--org", "demo", *PACE, "-vv",
              env={"BATCHPATCH_TOKEN": jwt_like, "BATCHPATCH_API_KEY": API_KEY})
    assert proc.returncode == 1, proc.stderr
    [record] = records_in(tmp_path / "f.results.jsonl")
    assert record["status"] == "not_found" and "Authorization: Bearer " in record["error"]
    assert_holds_none_of(everything(tmp_path, proc), jwt_like)


async def test_an_ims_error_page_cut_short_still_masks_the_secret() -> None:
    secret = "cs-" + "Zq8Wv3Lm" * 40  # a long secret, echoed in a page that is not JSON
    page = ("<html><body>Bad gateway; the request was: grant_type=client_credentials&"
            f"client_secret={secret}</body></html>").encode()
    transport = MemoryTransport.script(respond(400, body=page))
    auth = ImsAuth(transport, CLIENT_ID, Secret(secret), ims_url="https://ims.example/t")
    with pytest.raises(AuthFailed) as refused:
        await auth.headers()
    assert "IMS refused client id" in refused.value.message
    assert_holds_none_of(refused.value.message, secret)


# == 3. Proxies ================================================================================
def proxied_target(sandbox: SandboxProcess, scheme: str = "http") -> list[str]:
    """The sandbox under a name only the proxy resolves."""
    return ["--base-url", f"{scheme}://{API_HOST}:{port_of(sandbox.url)}", "--org", "demo"]


def test_the_proxy_flag_carries_every_request_ims_included(
        sandbox: SandboxProcess, proxy: ForwardProxy, tmp_path: Path) -> None:
    sandbox.reset(make_profiles(10), client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    port = port_of(sandbox.url)
    proc = bp("run", fixes(tmp_path), *proxied_target(sandbox), *PACE, "-vv",
              "--proxy", proxy.url_with_auth, "--client-id", CLIENT_ID,
              "--ims-url", f"http://{IMS_HOST}:{port}/ims/token/v3",
              env={"BATCHPATCH_CLIENT_SECRET": CLIENT_SECRET})
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in records_in(tmp_path / "f.results.jsonl")] == ["updated"] * 3
    forwarded = proxy.forwarded()
    assert forwarded.count(f"POST {IMS_HOST}:{port}/ims/token/v3") == 1
    api = [line for line in forwarded if f" {API_HOST}:{port}/demo/" in line]
    assert len(api) == sum(sandbox.stats()["counts"].values()) - 1 == 1 + 3 * 3
    assert_holds_none_of(everything(tmp_path, proc), PROXY_PASSWORD, CLIENT_SECRET, PROXY_BASIC)


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"])
def test_the_environment_proxy_for_the_targets_scheme_is_used(
        variable: str, sandbox: SandboxProcess, tls_sandbox: SandboxProcess, pki: Pki,
        proxy: ForwardProxy, tmp_path: Path) -> None:
    https = variable.lower() == "https_proxy"
    target = tls_sandbox if https else sandbox
    extra = ["--ca-bundle", str(pki.ca)] if https else []
    proc = bp("run", fixes(tmp_path), *proxied_target(target, "https" if https else "http"),
              *PACE, *extra, "-vv", env={variable: proxy.url_with_auth})
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in records_in(tmp_path / "f.results.jsonl")] == ["updated"] * 3
    port = port_of(target.url)
    forwarded = proxy.forwarded()
    if https:  # a tunnel per connection (CONNECT), the TLS inside it verified with the CA
        assert forwarded and set(forwarded) == {f"CONNECT {API_HOST}:{port}"}
    else:
        assert len(forwarded) == 1 + 3 * 3 and all(f" {API_HOST}:{port}/" in f
                                                   for f in forwarded)
    assert_holds_none_of(everything(tmp_path, proc), PROXY_PASSWORD, PROXY_BASIC)


@pytest.mark.parametrize("variable", ["NO_PROXY", "no_proxy"])
def test_no_proxy_exempts_the_target(
        variable: str, sandbox: SandboxProcess, proxy: ForwardProxy, tmp_path: Path) -> None:
    proc = bp("run", fixes(tmp_path), "--base-url", sandbox.url, "--org", "demo", *PACE,
              env={"HTTP_PROXY": proxy.url_with_auth, variable: "localhost,127.0.0.1"})
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in records_in(tmp_path / "f.results.jsonl")] == ["updated"] * 3
    assert proxy.forwarded() == []  # straight to the target


@pytest.mark.parametrize("how", ["flag", "env"])
def test_print_config_shows_the_proxy_masked(
        how: str, sandbox: SandboxProcess, proxy: ForwardProxy, tmp_path: Path) -> None:
    given = proxy.url_with_auth
    flags, env = (["--proxy", given], {}) if how == "flag" else ([], {"HTTPS_PROXY": given,
                                                                     "HTTP_PROXY": given})
    proc = bp("run", fixes(tmp_path), *proxied_target(sandbox), "--client-id", CLIENT_ID,
              "--ims-url", "https://ims.example/ims/token/v3", *flags, "--print-config",
              env={**env, "BATCHPATCH_CLIENT_SECRET": CLIENT_SECRET})
    assert proc.returncode == 0, proc.stderr
    network = json.loads(proc.stdout)["network"]
    masked = f"http://{PROXY_USER}:***@127.0.0.1:{proxy.port}"
    assert network["proxy_for_api"] == masked and network["proxy_for_ims"] == masked
    assert_holds_none_of(proc.stdout + proc.stderr, PROXY_PASSWORD, CLIENT_SECRET)
    exempt = bp("run", fixes(tmp_path), "--base-url", sandbox.url, "--org", "demo", *flags,
                "--print-config", env={**env, "NO_PROXY": "127.0.0.1"})
    assert json.loads(exempt.stdout)["network"]["proxy_for_api"] == "none (direct)"


@pytest.mark.parametrize("how", [
    "env",
    "flag",
])
def test_proxy_credentials_echoed_by_the_api_are_masked(
        how: str, sandbox: SandboxProcess, proxy: ForwardProxy, tmp_path: Path) -> None:
    sandbox.reset(make_profiles(10), echo_request=True)
    flags, env = (["--proxy", proxy.url_with_auth], {}) if how == "flag" else (
        [], {"HTTP_PROXY": proxy.url_with_auth})
    rows = [[f"@nobody{i}", "1"] for i in range(4)]
    proc = bp("run", fixes(tmp_path, rows=rows), "--url-template",
              f"http://{API_HOST}:{port_of(sandbox.url)}/rest/profiles/{{pkey}}",
              "--rate", "0", "--concurrency", "1", "--max-outage", "2", *flags, "-vv",
              env=env)
    assert proc.returncode == 1, proc.stderr
    errors = [r["error"] for r in records_in(tmp_path / "f.results.jsonl")]
    assert any("Proxy-Authorization: Basic ***" in e for e in errors), errors  # it was echoed
    assert_holds_none_of(everything(tmp_path, proc), PROXY_PASSWORD, PROXY_BASIC)


# == 4. TLS: private CAs, and certificates that do not verify ================================
@pytest.mark.parametrize("how", ["--ca-bundle", "SSL_CERT_FILE"])
def test_a_private_ca_is_trusted_from_the_flag_or_the_environment(
        how: str, tls_sandbox: SandboxProcess, pki: Pki, tmp_path: Path) -> None:
    flags, env = (["--ca-bundle", str(pki.ca)], {}) if how == "--ca-bundle" else (
        [], {"SSL_CERT_FILE": str(pki.ca)})
    target = ["--base-url", tls_sandbox.url, "--org", "demo"]
    shown = bp("run", fixes(tmp_path), *target, *flags, "--print-config", env=env)
    assert json.loads(shown.stdout)["network"]["ca_bundle"] == f"{pki.ca} ({how})"
    proc = bp("run", fixes(tmp_path), *target, *PACE, *flags, env=env)
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in records_in(tmp_path / "f.results.jsonl")] == ["updated"] * 3
    assert tls_sandbox.profiles_now()["@p00002"]["phone"] == "+33 6 55 00 00 02"


UNKNOWN_CA = ("its certificate is signed by a CA this machine does not trust (unknown CA); "
              "give the company CA with --ca-bundle FILE (or SSL_CERT_FILE)")


@pytest.mark.parametrize(("certificate", "trusted", "words"), [
    ("good", False, UNKNOWN_CA),  # the CA is not given
    ("unknown_ca", True, UNKNOWN_CA),  # another CA is given
    ("other_name", True, "its certificate is for another host name (hostname mismatch); use "
     "the host name the certificate names in the URL (a CA bundle cannot change it)"),
    ("expired", True, "its certificate has expired; the server's certificate must be renewed "
     "(or this machine's clock is wrong)"),
    ("not_yet_valid", True, "its certificate is not valid yet; check this machine's clock"),
], ids=["ca-not-given", "unknown-ca", "hostname-mismatch", "expired", "not-yet-valid"])
@pytest.mark.parametrize("schema", ["auto", "none"])  # the first request: metadata, or rows
def test_a_certificate_that_does_not_verify_aborts_at_once(
        certificate: str, trusted: bool, words: str, schema: str, pki: Pki, tmp_path: Path) -> None:
    rows = [[f"@p{i:05d}", f"+33 6 00 00 00 {i:02d}"] for i in range(6)]
    # (the sandbox's control calls skip verification: its certificate is the one under test)
    with https_sandbox(tmp_path, getattr(pki, certificate), None) as sandbox, \
            Forwarder("127.0.0.1", port_of(sandbox.url), scheme="https") as door:
        proc = bp("run", fixes(tmp_path, rows=rows), "--base-url", door.url, "--org", "demo",
                  *PACE, "--schema", schema, *(["--ca-bundle", str(pki.ca)] if trusted else []))
        assert proc.returncode == 3, proc.stderr
        [line] = aborted_lines(proc.stderr)
        assert line == f"batchpatch: aborted: TLS: cannot verify 127.0.0.1: {words}"
        assert 1 <= door.connection_attempts <= CONCURRENCY  # no retry, no new connection
        assert sandbox.stats()["total"] == 0  # no request got as far as the API
    assert records_in(tmp_path / "f.results.jsonl") == []  # no row blamed for it
    summary = json.loads((tmp_path / "f.summary.json").read_text())
    assert summary["exit_code"] == 3 and summary["failed"] == 0


def test_https_to_a_server_without_tls_says_so(sandbox: SandboxProcess, tmp_path: Path) -> None:
    plain = sandbox.url.replace("http://", "https://")  # the sandbox speaks plain HTTP
    proc = bp("run", fixes(tmp_path), "--base-url", plain, "--org", "demo", *PACE)
    assert proc.returncode == 3, proc.stderr
    [line] = aborted_lines(proc.stderr)
    assert line.startswith(f"batchpatch: aborted: TLS: 127.0.0.1:{port_of(plain)} does not "
                           "speak TLS") and "http:// or https://" in line, line
    assert "--ca-bundle" not in line  # no CA would help
    assert records_in(tmp_path / "f.results.jsonl") == []


def test_an_abort_on_the_first_request_counts_every_row_as_without_a_record(
        tls_sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc = bp("run", fixes(tmp_path), "--base-url", tls_sandbox.url, "--org", "demo", *PACE)
    assert proc.returncode == 3 and "TLS: cannot verify" in proc.stderr, proc.stderr
    assert "~3 rows have no record yet" in proc.stderr
    assert json.loads((tmp_path / "f.summary.json").read_text())["rows_without_record"] == 3


def test_an_untrusted_certificate_behind_a_proxy_aborts_the_same_way(
        tls_sandbox: SandboxProcess, proxy: ForwardProxy, tmp_path: Path) -> None:
    proc = bp("run", fixes(tmp_path), *proxied_target(tls_sandbox, "https"), *PACE,
              env={"HTTPS_PROXY": proxy.url_with_auth})
    assert proc.returncode == 3, proc.stderr
    [line] = aborted_lines(proc.stderr)
    assert f"TLS: cannot verify {API_HOST}: its certificate is signed by a CA this machine " \
        "does not trust (unknown CA)" in line and "--ca-bundle" in line
    assert proxy.forwarded() and set(proxy.forwarded()) == {
        f"CONNECT {API_HOST}:{port_of(tls_sandbox.url)}"}
    assert records_in(tmp_path / "f.results.jsonl") == []


def test_a_tls_abort_writes_no_traceback(pki: Pki, tmp_path: Path) -> None:
    rows = [[f"@p{i % 10:05d}", f"+33 6 00 00 00 {i:02d}"] for i in range(16)]
    with https_sandbox(tmp_path, pki.unknown_ca, pki.ca) as sandbox:
        for _ in range(10):  # the race is lost about half the time: ten runs, all clean
            proc = bp("run", fixes(tmp_path, rows=rows), "--base-url", sandbox.url,
                      "--org", "demo", "--rate", "0", "--concurrency", "8", "--schema", "none")
            assert proc.returncode == 3, proc.stderr
            assert "Traceback" not in proc.stderr and "never retrieved" not in proc.stderr, \
                proc.stderr


# == 5. A proxy that refuses our credentials =================================================
def wrong_password_proxy(proxy: ForwardProxy) -> str:
    return proxy.url_with_auth.replace(quote(PROXY_PASSWORD, safe=""), "nOtTheRightOne")


@pytest.mark.parametrize("route", ["api-over-https", "ims-over-http"])
def test_a_proxy_refusing_our_credentials_aborts_at_once(
        route: str, sandbox: SandboxProcess, tls_sandbox: SandboxProcess, pki: Pki,
        proxy: ForwardProxy, tmp_path: Path) -> None:
    if route == "api-over-https":  # the proxy answers the CONNECT with 407
        args = [*proxied_target(tls_sandbox, "https"), "--ca-bundle", str(pki.ca)]
        env = {"HTTPS_PROXY": wrong_password_proxy(proxy)}
    else:  # the proxy answers the token request itself with 407
        port = port_of(sandbox.url)
        sandbox.reset(make_profiles(10), client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        args = [*proxied_target(sandbox), "--client-id", CLIENT_ID,
                "--ims-url", f"http://{IMS_HOST}:{port}/ims/token/v3"]
        env = {"HTTP_PROXY": wrong_password_proxy(proxy),
               "BATCHPATCH_CLIENT_SECRET": CLIENT_SECRET}
    proc = bp("run", fixes(tmp_path), *args, *PACE, env=env)
    assert proc.returncode == 3, proc.stderr
    [line] = aborted_lines(proc.stderr)
    assert "refused our credentials (407 Proxy Authentication Required)" in line, line
    assert f"the proxy http://127.0.0.1:{proxy.port} refused" in line
    assert "--proxy or HTTPS_PROXY/HTTP_PROXY" in line and "nOtTheRightOne" not in line
    assert "stopped answering" not in proc.stderr  # not mistaken for an outage
    assert records_in(tmp_path / "f.results.jsonl") == []  # no row blamed for it
    assert proxy.forwarded() == []


def test_a_proxy_refusing_our_credentials_for_plain_http_aborts_at_once(
        sandbox: SandboxProcess, proxy: ForwardProxy, tmp_path: Path) -> None:
    proc = bp("run", fixes(tmp_path), *proxied_target(sandbox), *PACE,
              env={"HTTP_PROXY": wrong_password_proxy(proxy)})
    assert proc.returncode == 3, proc.stderr
    [line] = aborted_lines(proc.stderr)
    assert "refused our credentials (407" in line and "--proxy" in line, line
    assert f"the proxy http://127.0.0.1:{proxy.port} refused" in line  # which proxy
    assert records_in(tmp_path / "f.results.jsonl") == []

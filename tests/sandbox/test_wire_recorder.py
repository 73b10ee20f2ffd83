"""``record_requests``: the sandbox records what clients send, without credentials."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from genesys_sandbox import SandboxConfig
from genesys_sandbox.__main__ import parse_args
from tests.sandbox.org import Org


def _recorded(org: Org) -> dict:
    return org.http.get("/sandbox/requests").json()


def test_off_by_default_and_nothing_is_recorded(org: Org) -> None:
    org.ok("GET", "/outbound/contactlists")
    assert _recorded(org) == {"enabled": False, "count": 0, "requests": []}


def test_every_api_and_oauth_request_is_recorded_as_sent(org_factory: Callable[..., Org]) -> None:
    org = org_factory(SandboxConfig(record_requests=True))  # its token request is recorded
    org.api("POST", "/outbound/contactlists?x=1&x=2", json={"name": "n", "bad": [1]})
    org.api("GET", "/no/such/path")
    org.http.get("/sandbox/clock")  # admin: not recorded
    got = _recorded(org)
    assert (got["enabled"], got["count"]) == (True, 3)
    token, create, unknown = got["requests"]
    assert [r["seq"] for r in got["requests"]] == [1, 2, 3]
    assert (token["method"], token["path"], token["auth_scheme"]) == (
        "POST",
        "/oauth/token",
        "Basic",
    )
    assert "grant_type=client_credentials" in token["body_text"]
    assert create["route"] == "/api/v2/outbound/contactlists"
    assert create["query"] == [["x", "1"], ["x", "2"]]
    assert create["json"] == {"name": "n", "bad": [1]}
    assert (create["auth_scheme"], create["content_type"]) == ("Bearer", "application/json")
    assert create["status"] == 400  # the sandbox refused it; it is evidence all the same
    assert (unknown["route"], unknown["status"]) == (None, 404)
    for entry in got["requests"]:
        assert "authorization" not in entry["headers"]
        assert org.token not in json.dumps(entry)
    org.http.post("/sandbox/reset").raise_for_status()
    assert _recorded(org)["count"] == 0


def test_form_secrets_are_masked(org_factory: Callable[..., Org]) -> None:
    org = org_factory(SandboxConfig(record_requests=True), token=False)
    form = {"grant_type": "client_credentials", "client_id": "sandbox-client"}
    form["client_secret"] = "sandbox-secret"
    assert org.http.post("/oauth/token", data=form).status_code == 200
    basic = base64.b64encode(b"sandbox-client:sandbox-secret").decode()
    org.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    text = json.dumps(_recorded(org))
    assert "sandbox-secret" not in text
    assert basic not in text
    assert "client_secret=%2A%2A%2A" in text


def test_the_cli_flag_turns_recording_on() -> None:
    assert parse_args([]).record_requests is False
    assert parse_args(["--record-requests"]).record_requests is True
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = [sys.executable, "-m", "genesys_sandbox", "--port", str(port), "--record-requests"]
    server = subprocess.Popen([*command, "--log-level", "warning"], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/sandbox/clock").raise_for_status()
                break
            except httpx.TransportError:
                assert server.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.1)
        httpx.get(f"{url}/api/v2/outbound/contactlists")  # 401 without a token: recorded
        got = httpx.get(f"{url}/sandbox/requests").json()
        assert got["enabled"] is True
        assert [(r["path"], r["status"], r["auth_scheme"]) for r in got["requests"]] == [
            ("/api/v2/outbound/contactlists", 401, None)
        ]
    finally:
        server.terminate()
        server.wait(timeout=20)

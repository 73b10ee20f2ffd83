import base64
import json

import httpx
import pytest

from tasks.genesys import (
    AuthFailed,
    DownloadFailed,
    GenesysClient,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    TokenBucket,
    TokenRefused,
    TransientServerError,
    add_body,
    client_from_settings,
    hosts_for,
)
from tasks.settings import GenesysSettings


class FakeGenesys:
    """A tiny stateful stand-in: a script of answers per path, and a record of what came in."""

    def __init__(self, script: dict[str, list] | None = None, token_ttl: int = 86400) -> None:
        self.script = script or {}
        self.token_ttl = token_ttl
        self.tokens = 0
        self.calls: list[tuple[str, str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.tokens += 1
            assert request.headers["Authorization"].startswith("Basic ")
            assert request.content == b"grant_type=client_credentials"
            return httpx.Response(
                200,
                json={
                    "access_token": f"t{self.tokens}",
                    "token_type": "bearer",
                    "expires_in": self.token_ttl,
                },
            )
        self.calls.append((request.method, request.url.path, request.headers.get("Authorization")))
        answers = self.script.get(request.url.path, [])
        answer = answers.pop(0) if answers else httpx.Response(200, json={"ok": True})
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer


def _client(fake: FakeGenesys, **kwargs) -> GenesysClient:
    sleeps: list[float] = []
    client = GenesysClient(
        api_base="https://api.example.test",
        login_base="https://login.example.test",
        client_id="id",
        client_secret="secret",
        transport=httpx.MockTransport(fake),
        sleep=sleeps.append,
        **kwargs,
    )
    client.sleeps = sleeps  # type: ignore[attr-defined]
    return client


def _error(status: int, code: str, **headers) -> httpx.Response:
    return httpx.Response(
        status, json={"message": "m", "code": code, "status": status}, headers=headers
    )


def test_token_is_fetched_once_and_reused() -> None:
    fake = FakeGenesys()
    client = _client(fake)
    for _ in range(3):
        client.get_campaign("c1")
    assert fake.tokens == 1
    assert {c[2] for c in fake.calls} == {"Bearer t1"}


def test_401_fetches_a_new_token_once_and_replays() -> None:
    fake = FakeGenesys(
        {"/api/v2/outbound/messagingcampaigns/c1": [_error(401, "credentials.expired")]}
    )
    client = _client(fake)
    assert client.get_campaign("c1") == {"ok": True}
    assert fake.tokens == 2
    assert [c[2] for c in fake.calls] == ["Bearer t1", "Bearer t2"]


def test_token_near_expiry_is_renewed_before_use() -> None:
    fake = FakeGenesys(token_ttl=30)
    client = _client(fake)
    client.get_campaign("c1")
    client.get_campaign("c1")
    assert fake.tokens == 2


def test_bad_credentials_fail_without_retry() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client", "description": "bad"})

    client = GenesysClient(
        api_base="https://api.example.test",
        login_base="https://login.example.test",
        client_id="id",
        client_secret="wrong",
        transport=httpx.MockTransport(refuse),
        sleep=lambda s: None,
    )
    with pytest.raises(AuthFailed) as info:
        client.get_campaign("c1")
    assert "wrong" not in str(info.value)


def test_429_waits_retry_after_then_succeeds() -> None:
    path = "/api/v2/outbound/messagingcampaigns/c1"
    fake = FakeGenesys(
        {
            path: [
                _error(429, "too.many.requests", **{"Retry-After": "7"}),
                httpx.Response(200, json={"id": "c1"}),
            ]
        }
    )
    client = _client(fake)
    assert client.get_campaign("c1") == {"id": "c1"}
    assert 7 <= client.sleeps[0] < 7.5
    assert client.stats["rate_limited"] == 1


def test_429_forever_gives_up_after_the_budget() -> None:
    path = "/api/v2/outbound/messagingcampaigns/c1"
    fake = FakeGenesys(
        {path: [_error(429, "too.many.requests", **{"Retry-After": "1"}) for _ in range(10)]}
    )
    client = _client(fake, max_attempts=4)
    with pytest.raises(RateLimited):
        client.get_campaign("c1")
    assert len(fake.calls) == 4


@pytest.mark.parametrize(
    ("failure", "idempotent_ok"),
    [
        (httpx.Response(503, json={"code": "service.unavailable"}), True),
        (httpx.Response(502, json={}), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("dropped"), True),
    ],
    ids=["503", "502", "timeout", "dropped-connection"],
)
def test_transient_failures_are_retried_with_backoff_on_idempotent_calls(
    failure, idempotent_ok
) -> None:
    # the bulk lookup is idempotent (adds are not: see test_an_add_that_lost_its_connection...)
    path = "/api/v2/outbound/contactlists/l1/contacts/bulk"
    fake = FakeGenesys({path: [failure, failure, httpx.Response(200, json=[{"id": "k1"}])]})
    client = _client(fake)
    assert client.get_contacts("l1", ["k1"]) == [{"id": "k1"}]
    assert len(fake.calls) == 3
    assert len(client.sleeps) == 2
    assert all(0 <= s <= 30 for s in client.sleeps)


@pytest.mark.parametrize(
    "failure",
    [httpx.RemoteProtocolError("dropped"), httpx.Response(500, json={})],
    ids=["dropped-connection", "500"],
)
def test_non_idempotent_send_is_never_replayed(failure) -> None:
    fake = FakeGenesys({"/api/v2/conversations/messages/agentless": [failure]})
    client = _client(fake)
    with pytest.raises(OutcomeUnknown):
        client.send_agentless_sms("+13175550100", "+13175550123", "hi")
    assert len(fake.calls) == 1


def test_503_on_a_non_idempotent_call_is_retried_because_nothing_was_done() -> None:
    fake = FakeGenesys(
        {
            "/api/v2/conversations/messages/agentless": [
                httpx.Response(503, json={}),
                httpx.Response(202, json={"id": "m1", "conversationId": "c1"}),
            ]
        }
    )
    assert _client(fake).send_agentless_sms("+13175550100", "+13175550123", "hi")["id"] == "m1"


@pytest.mark.parametrize("status", [400, 403, 404, 409, 413], ids=lambda s: str(s))
def test_permanent_errors_are_not_retried_and_keep_the_code(status) -> None:
    path = "/api/v2/outbound/contactlists/l1/contacts"
    fake = FakeGenesys({path: [_error(status, "some.code", **{"ININ-Correlation-Id": "corr-1"})]})
    with pytest.raises(RequestRejected) as info:
        _client(fake).add_contacts("l1", [{"id": "k1", "data": {}}])
    assert (info.value.status, info.value.code, info.value.correlation_id) == (
        status,
        "some.code",
        "corr-1",
    )
    assert len(fake.calls) == 1


def test_create_after_a_lost_connection_is_settled_by_name() -> None:
    listing = {"entities": [{"id": "L1", "name": "reminders-sms-contacts"}], "pageCount": 1}
    fake = FakeGenesys(
        {
            "/api/v2/outbound/contactlists": [
                httpx.RemoteProtocolError("dropped after commit"),
                httpx.Response(200, json=listing),
            ]
        }
    )
    found = _client(fake).create_contact_list(
        "reminders-sms-contacts", ["Phone"], phone_columns=[("Phone", None)]
    )
    assert found["id"] == "L1"
    assert [c[0] for c in fake.calls] == ["POST", "GET"]


def test_add_contacts_sends_upsert_with_priority_and_never_clears_system_data() -> None:
    seen = {}

    def capture(request: httpx.Request) -> httpx.Response:
        seen["params"] = dict(request.url.params)
        seen["body"] = json.loads(request.content)
        return httpx.Response(200, json=seen["body"])

    fake = FakeGenesys({"/api/v2/outbound/contactlists/l1/contacts": [capture]})
    _client(fake).add_contacts("l1", [{"id": "key-1", "data": {"Phone": "+13175550123"}}])
    assert seen["params"] == {"priority": "true", "doNotQueue": "false"}
    assert seen["body"] == [
        {"id": "key-1", "contactListId": "l1", "data": {"Phone": "+13175550123"}, "callable": True}
    ]


TRICKY = ['say "hi"', "back\\slash", "tab\tnew\nline\r", "\x00\x1f\x7f", "é 日本 🙂", "", "/</"]


def test_a_frame_of_contacts_is_sent_as_the_same_json_as_dicts() -> None:
    import polars as pl

    contacts = [
        {"id": f"k{i}", "data": {"Phone": "+13175550123", "Message": text, "Zone": None}}
        for i, text in enumerate(TRICKY)
    ]
    frame = pl.DataFrame(
        {"id": [c["id"] for c in contacts], "data": [c["data"] for c in contacts]},
        schema={
            "id": pl.String,
            "data": pl.Struct({"Phone": pl.String, "Message": pl.String, "Zone": pl.String}),
        },
    )
    from_dicts = json.loads(add_body("l1", contacts))
    assert json.loads(add_body("l1", frame)) == from_dicts
    assert from_dicts[1] == {
        "id": "k1",
        "contactListId": "l1",
        "data": {"Phone": "+13175550123", "Message": TRICKY[1], "Zone": None},
        "callable": True,
    }
    assert add_body("l1", frame.head(0)) == b"[]"
    seen = {}

    def capture(request: httpx.Request) -> httpx.Response:
        seen["type"] = request.headers["content-type"]
        seen["body"] = json.loads(request.content)
        return httpx.Response(200, json=[])

    fake = FakeGenesys({"/api/v2/outbound/contactlists/l1/contacts": [capture]})
    assert _client(fake).add_contacts("l1", frame, read_back=False) == []
    assert seen == {"type": "application/json", "body": from_dicts}


def test_more_than_1000_contacts_is_refused_client_side() -> None:
    with pytest.raises(ValueError, match="1000"):
        _client(FakeGenesys()).add_contacts("l1", [{"id": str(i), "data": {}} for i in range(1001)])


def test_listing_pages_use_the_maximum_page_size() -> None:
    pages = [
        httpx.Response(200, json={"entities": [{"id": "a", "name": "x"}], "pageCount": 2}),
        httpx.Response(200, json={"entities": [{"id": "b", "name": "wanted"}], "pageCount": 2}),
    ]
    fake = FakeGenesys({"/api/v2/outbound/messagingcampaigns": pages})
    assert _client(fake).find_campaign("wanted")["id"] == "b"


def test_token_bucket_spaces_requests_at_the_configured_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(60, clock=lambda: now[0], sleep=sleep)
    for _ in range(90):
        bucket.acquire()
    assert now[0] == pytest.approx(84.0, abs=0.01)
    burst = TokenBucket(60, burst=60, clock=lambda: now[0], sleep=sleep)
    start = now[0]
    for _ in range(90):
        burst.acquire()
    assert now[0] - start == pytest.approx(30.0, abs=0.01)


@pytest.mark.parametrize(
    ("region", "base", "expected"),
    [
        ("us-east-1", None, ("https://api.mypurecloud.com", "https://login.mypurecloud.com")),
        ("eu-central-1", None, ("https://api.mypurecloud.de", "https://login.mypurecloud.de")),
        (None, "http://127.0.0.1:8765/", ("http://127.0.0.1:8765", "http://127.0.0.1:8765")),
        (
            None,
            "https://api.usw2.pure.cloud",
            ("https://api.usw2.pure.cloud", "https://login.usw2.pure.cloud"),
        ),
    ],
    ids=["us-east-1", "eu-central-1", "sandbox", "explicit-api-host"],
)
def test_hosts_for(region, base, expected) -> None:
    assert hosts_for(region, base) == expected


def test_unknown_region_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Genesys region"):
        hosts_for("mars-1", None)


def test_transient_error_after_the_budget() -> None:
    path = "/api/v2/outbound/messagingcampaigns/c1"
    fake = FakeGenesys({path: [httpx.Response(503, json={}) for _ in range(10)]})
    with pytest.raises(TransientServerError):
        _client(fake, max_attempts=3).get_campaign("c1")


# --- where credentials travel (issue 8, items 7 and 9) ---------------------------------------

SECRET = "s3cr3t-Zq9-not-in-any-default"
TOKEN = "tok-4f1d-only-for-the-api"
API, LOGIN = "api.mypurecloud.ie", "login.mypurecloud.ie"
SIGNED = (
    "https://exports.s3.eu-west-1.amazonaws.test/org/D.csv?X-Amz-Signature=abc&X-Amz-Expires=60"
)
EXPORT_CSV = b'\xef\xbb\xbf"inin-outbound-id","Phone"\n"k1","+13175550001"\n"k2","+13175550002"\n'


class Recorder:
    """A MockTransport handler playing a real org: login host, API host, signed storage host.

    ``download`` is the answer of ``GET /api/v2/downloads/D``; the storage host refuses any
    request that carries an Authorization header (as S3 does) and answers ``storage`` in turn.
    """

    def __init__(self, download: list[httpx.Response], storage: list[httpx.Response] | None = None):
        self.requests: list[httpx.Request] = []
        self.download = download
        self.storage = storage or [httpx.Response(200, content=EXPORT_CSV)]
        self.export_polls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        host, path = request.url.host, request.url.path
        if host == LOGIN and path == "/oauth/token":
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 86400})
        if host == API:
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return httpx.Response(401, json={"code": "authentication.required"})
            if path.endswith("/export") and request.method == "POST":
                return httpx.Response(200, json={"id": "L"})
            if path.endswith("/export"):
                return httpx.Response(200, json={"uri": f"https://{API}/api/v2/downloads/D"})
            if path == "/api/v2/downloads/D":
                return self.download.pop(0)
        if host == "exports.s3.eu-west-1.amazonaws.test":
            if "authorization" in request.headers:
                return httpx.Response(400, text="<Error><Code>InvalidArgument</Code></Error>")
            return self.storage.pop(0)
        return httpx.Response(599, text=f"unexpected {request.method} {request.url}")


def carries(request: httpx.Request, needle: str) -> bool:
    """Whether ``needle`` appears anywhere in a request: URL, headers (Basic decoded), body."""
    blob = [str(request.url), request.content.decode("latin-1")]
    for key, value in request.headers.multi_items():
        blob.append(f"{key}: {value}")
        if key.lower() == "authorization" and value.lower().startswith("basic "):
            blob.append(base64.b64decode(value[6:]).decode("latin-1"))
    return needle in "\n".join(blob)


def _region_client(recorder: Recorder) -> GenesysClient:
    settings = GenesysSettings(region="eu-west-1", client_id="cid")
    client = client_from_settings(settings, SECRET, transport=httpx.MockTransport(recorder))
    client._sleep = lambda _s: None  # type: ignore[method-assign]
    return client


@pytest.mark.parametrize(
    "download",
    [
        httpx.Response(303, headers={"Location": SIGNED}),
        httpx.Response(302, headers={"Location": SIGNED}),
        httpx.Response(307, headers={"Location": SIGNED}),
        httpx.Response(200, json={"url": SIGNED}),
    ],
    ids=["303", "302", "307", "issueRedirect=false-json"],
)
def test_export_follows_the_redirect_and_the_credentials_stay_home(download) -> None:
    recorder = Recorder([download])
    with _region_client(recorder) as client:
        rows = client.export_contact_list("L", poll_seconds=0)
    assert rows == [
        {"inin-outbound-id": "k1", "Phone": "+13175550001"},
        {"inin-outbound-id": "k2", "Phone": "+13175550002"},
    ]
    with_secret = [r for r in recorder.requests if carries(r, SECRET)]
    assert [(r.method, r.url.host, r.url.path) for r in with_secret] == [
        ("POST", LOGIN, "/oauth/token")
    ]
    with_token = {r.url.host for r in recorder.requests if carries(r, TOKEN)}
    assert with_token == {API}
    signed = [r for r in recorder.requests if r.url.host.startswith("exports.")]
    assert len(signed) == 1
    assert "authorization" not in signed[0].headers
    assert str(signed[0].url) == SIGNED


def test_an_empty_download_is_a_clear_error_not_stopiteration() -> None:
    # a 303 that httpx does not follow used to reach the CSV parser as an empty body
    recorder = Recorder([httpx.Response(303, headers={"Location": SIGNED})])
    recorder.storage = [httpx.Response(200, content=b"")]
    with _region_client(recorder) as client, pytest.raises(DownloadFailed, match="empty"):
        client.export_contact_list("L", poll_seconds=0)


def test_an_expired_signed_url_is_fetched_anew_once() -> None:
    recorder = Recorder(
        [httpx.Response(303, headers={"Location": SIGNED}) for _ in range(2)],
        [httpx.Response(403, text="Request has expired"), httpx.Response(200, content=EXPORT_CSV)],
    )
    with _region_client(recorder) as client:
        assert len(client.export_contact_list("L", poll_seconds=0)) == 2
    assert [r.url.path for r in recorder.requests].count("/api/v2/downloads/D") == 2


def test_a_signed_url_over_plain_http_is_refused_before_any_request() -> None:
    plain = "http://exports.s3.eu-west-1.amazonaws.test/org/D.csv?sig=1"
    recorder = Recorder([httpx.Response(303, headers={"Location": plain})])
    with _region_client(recorder) as client, pytest.raises(DownloadFailed, match="https"):
        client.export_contact_list("L", poll_seconds=0)
    assert not [r for r in recorder.requests if r.url.host.startswith("exports.")]


def test_once_the_download_left_the_api_origin_the_token_is_never_sent_again() -> None:
    back_home = httpx.Response(302, headers={"Location": f"https://{API}/api/v2/downloads/D"})
    recorder = Recorder(
        [httpx.Response(303, headers={"Location": SIGNED}) for _ in range(2)],
        [back_home, back_home],
    )
    with _region_client(recorder) as client, pytest.raises(DownloadFailed):
        client.export_contact_list("L", poll_seconds=0)
    # each request right after a signed-host answer is the redirect back to the API host
    followed = [
        nxt
        for hop, nxt in zip(recorder.requests, recorder.requests[1:], strict=False)
        if hop.url.host.startswith("exports.")
    ]
    assert [r.url.host for r in followed] == [API, API]
    assert not any(carries(r, TOKEN) for r in followed)


def test_download_redirect_loops_end() -> None:
    loop = "https://exports.s3.eu-west-1.amazonaws.test/loop"
    recorder = Recorder(
        [httpx.Response(303, headers={"Location": SIGNED})],
        [httpx.Response(302, headers={"Location": loop}) for _ in range(10)],
    )
    with _region_client(recorder) as client, pytest.raises(DownloadFailed, match="hops"):
        client.export_contact_list("L", poll_seconds=0)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/steal",
        f"http://{API}/api/v2/outbound/contactlists",  # same host, other scheme
        f"https://{API}:8443/api/v2/outbound/contactlists",  # same host, other port
        f"https://{LOGIN}/api/v2/outbound/contactlists",
    ],
)
def test_the_auth_flow_refuses_to_attach_the_token_to_another_origin(url) -> None:
    recorder = Recorder([])
    client = _region_client(recorder)
    other = httpx.Client(auth=client.auth, transport=httpx.MockTransport(recorder))
    with pytest.raises(TokenRefused):
        other.get(url)
    other.close()
    client.close()
    assert recorder.requests == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_the_token_endpoint_is_not_followed_with_the_secret(status) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        if request.url.host == LOGIN:
            return httpx.Response(status, headers={"Location": "https://evil.example/oauth/token"})
        return httpx.Response(200, json={"access_token": "stolen", "expires_in": 86400})

    settings = GenesysSettings(region="eu-west-1", client_id="cid")
    client = client_from_settings(settings, SECRET, transport=httpx.MockTransport(handler))
    with pytest.raises(AuthFailed, match="redirect"):
        client.get_campaign("c1")
    client.close()
    assert [r.url.host for r in seen] == [LOGIN]
    assert not any(carries(r, SECRET) for r in seen if r.url.host != LOGIN)


@pytest.mark.parametrize(
    "base", ["http://example.com", "http://api.mypurecloud.com", "http://localhost.evil.example"]
)
def test_a_plain_http_base_off_loopback_is_refused(base) -> None:
    with pytest.raises(ValueError, match="https"):
        GenesysClient(api_base=base, login_base=base, client_id="i", client_secret=SECRET)


def test_an_add_that_lost_its_connection_is_not_replayed() -> None:
    fake = FakeGenesys(
        {"/api/v2/outbound/contactlists/l1/contacts": [httpx.RemoteProtocolError("dropped")]}
    )
    with pytest.raises(OutcomeUnknown):
        _client(fake).add_contacts("l1", [{"id": "k1", "data": {"Phone": "+13175550123"}}])
    assert [c[:2] for c in fake.calls] == [("POST", "/api/v2/outbound/contactlists/l1/contacts")]


def test_a_re_add_can_keep_the_queue_position() -> None:
    seen = {}

    def capture(request: httpx.Request) -> httpx.Response:
        seen["params"] = dict(request.url.params)
        return httpx.Response(200, json=[])

    fake = FakeGenesys({"/api/v2/outbound/contactlists/l1/contacts": [capture]})
    _client(fake).add_contacts("l1", [{"id": "k", "data": {}}], do_not_queue=True)
    assert seen["params"]["doNotQueue"] == "true"


def test_mark_uncontactable_sets_both_flags_keeps_data_and_never_requeues() -> None:
    seen = {}

    def capture(request: httpx.Request) -> httpx.Response:
        seen["params"] = dict(request.url.params)
        seen["body"] = json.loads(request.content)
        return httpx.Response(200, json=seen["body"])

    fake = FakeGenesys(
        {
            "/api/v2/outbound/contactlists/l1/contacts": [
                httpx.RemoteProtocolError("dropped"),
                capture,
            ]
        }
    )
    _client(fake).mark_uncontactable("l1", [{"id": "k1", "data": {"Phone": "+13175550123"}}])
    # same flags twice give the same state: safe to send again after a lost connection
    assert len(fake.calls) == 2
    assert seen["params"] == {"priority": "false", "doNotQueue": "true"}
    assert seen["body"] == [
        {
            "id": "k1",
            "contactListId": "l1",
            "data": {"Phone": "+13175550123"},
            "callable": False,
            "contactableStatus": {"SMS": {"contactable": False}, "Email": {"contactable": False}},
        }
    ]


def test_the_rule_set_is_found_by_name_before_it_is_created() -> None:
    listing = {"entities": [{"id": "RS", "name": "r-uncontactable"}], "pageCount": 1}
    fake = FakeGenesys({"/api/v2/outbound/digitalrulesets": [httpx.Response(200, json=listing)]})
    found = _client(fake).ensure_digital_rule_set({"name": "r-uncontactable", "rules": []})
    assert found["id"] == "RS"
    assert [c[0] for c in fake.calls] == ["GET"]

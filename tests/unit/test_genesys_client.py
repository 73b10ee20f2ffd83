import json

import httpx
import pytest

from tasks.genesys import (
    AuthFailed,
    GenesysClient,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    TokenBucket,
    TransientServerError,
    hosts_for,
)


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
    path = "/api/v2/outbound/contactlists/l1/contacts"
    fake = FakeGenesys({path: [failure, failure, httpx.Response(200, json=[{"id": "k1"}])]})
    client = _client(fake)
    assert client.add_contacts("l1", [{"id": "k1", "data": {"Phone": "+1"}}]) == [{"id": "k1"}]
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

"""Typed httpx client for the Genesys Cloud endpoints the pipeline uses.

Errors (all :class:`tasks.errors.GenesysError`)::

    GenesysError
    ├── AuthFailed            the token endpoint refused the client credentials (never retried)
    ├── RequestRejected       a permanent 4xx (400 validation, 403, 404, 409, 413): not retried;
    │                         carries status, Genesys ``code`` and correlation id
    ├── RateLimited           429 after the retry budget (carries Retry-After)
    ├── TransientServerError  5xx after the retry budget
    ├── OutcomeUnknown        the connection broke during a request that is not idempotent:
    │                         the server may or may not have done it; the caller settles it
    │                         by a lookup before anything is sent again
    ├── TokenRefused          a request would have carried the bearer token to a host other
    │                         than the API origin: refused before anything is sent
    └── DownloadFailed        an export download that cannot be fetched safely or is empty

Behaviour on the wire:

- OAuth client credentials (:class:`ClientCredentialsAuth`, an ``httpx.Auth``): the token is
  cached until 60 s before ``expires_in`` and fetched anew, once, on a 401.
- Where credentials travel: the client secret only to ``<login base>/oauth/token`` (the
  region's login host, or the configured base URL for the sandbox); the bearer token only to
  the API origin (scheme, host, port of the API base), enforced inside the auth flow. Bases
  must be https unless their host is loopback. Redirects are never followed by httpx: a 3xx
  from the token endpoint is :class:`AuthFailed`; the export download follows Genesys'
  redirect by hand and fetches the signed URL it names with a plain request, no token.
- A client-side token bucket keeps under ``requests_per_minute`` (Genesys: 300 per token).
- Retries (tenacity): 429 waits ``Retry-After``; 503 (rejected before any work) is always
  retried; other 5xx, timeouts and broken connections are retried with exponential back-off
  and jitter only for idempotent requests; the budget is ``max_attempts`` per call.
- A 202 from the agentless endpoint means accepted, not delivered.

No log line or exception message carries a token, a secret, a phone number or an address.
"""

from __future__ import annotations

import csv
import io
import json
import random
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import polars as pl
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from tasks.errors import ConfigurationError, GenesysError
from tasks.masking import mask_text
from tasks.settings import GenesysSettings
from tasks.transport import is_loopback_host, origin_of, require_https_or_loopback

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "LISTINGS",
    "MAX_CONTACTS_PER_ADD",
    "MAX_PAGE_SIZE",
    "REGIONS",
    "UNCONTACTABLE_STATUS",
    "AuthFailed",
    "ClientCredentialsAuth",
    "DownloadFailed",
    "GenesysClient",
    "OutcomeUnknown",
    "RateLimited",
    "RequestRejected",
    "TokenBucket",
    "TokenRefused",
    "TransientServerError",
    "add_body",
    "attempted",
    "client_from_settings",
    "hosts_for",
    "is_uncontactable",
]

MAX_CONTACTS_PER_ADD = 1000
LISTINGS: dict[str, str] = {
    "campaigns": "/outbound/messagingcampaigns",
    "contact_lists": "/outbound/contactlists",
    "dnc_lists": "/outbound/dnclists",
    "time_sets": "/outbound/callabletimesets",
    "rule_sets": "/outbound/digitalrulesets",
    "libraries": "/responsemanagement/libraries",
}
UNCONTACTABLE_STATUS: dict[str, dict[str, bool]] = {
    "SMS": {"contactable": False},
    "Email": {"contactable": False},
}
MAX_PAGE_SIZE = 100
MAX_DOWNLOAD_HOPS = 5
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5)

REGIONS: dict[str, str] = {
    "us-east-1": "mypurecloud.com",
    "us-east-2": "use2.us-gov-pure.cloud",
    "us-west-2": "usw2.pure.cloud",
    "ca-central-1": "cac1.pure.cloud",
    "sa-east-1": "sae1.pure.cloud",
    "mx-central-1": "mxc1.pure.cloud",
    "eu-west-1": "mypurecloud.ie",
    "eu-west-2": "euw2.pure.cloud",
    "eu-central-1": "mypurecloud.de",
    "eu-central-2": "euc2.pure.cloud",
    "eusc-de-east-1": "edee1.eusc-pure.cloud",
    "me-central-1": "mec1.pure.cloud",
    "ap-south-1": "aps1.pure.cloud",
    "ap-southeast-1": "apse1.pure.cloud",
    "ap-southeast-2": "mypurecloud.com.au",
    "ap-northeast-1": "mypurecloud.jp",
    "ap-northeast-2": "apne2.pure.cloud",
    "ap-northeast-3": "apne3.pure.cloud",
}
"""Genesys Cloud region -> domain; the API is ``https://api.<domain>``, OAuth
``https://login.<domain>``."""


def hosts_for(region: str | None, base_url: str | None) -> tuple[str, str]:
    """(API base URL, login base URL) for a region name, or for an explicit base URL.

    An explicit URL containing ``//api.`` gets its login host by replacing that with
    ``//login.`` (as the official SDK does); any other URL (the sandbox) serves both.
    """
    if base_url:
        base = base_url.rstrip("/")
        return base, base.replace("//api.", "//login.") if "//api." in base else base
    if region not in REGIONS:
        raise ValueError(f"unknown Genesys region {region!r}; known: {', '.join(REGIONS)}")
    domain = REGIONS[region]
    return f"https://api.{domain}", f"https://login.{domain}"


class AuthFailed(GenesysError):
    """The OAuth token endpoint refused the client credentials."""


class RequestRejected(GenesysError):
    """A permanent error answer (4xx other than 401/429)."""

    def __init__(self, status: int, code: str, message: str, correlation_id: str | None) -> None:
        self.status = status
        self.code = code
        self.correlation_id = correlation_id
        super().__init__(
            f"Genesys answered {status} {code}: {mask_text(message)} (correlation {correlation_id})"
        )


class RateLimited(GenesysError):
    def __init__(self, retry_after: float, correlation_id: str | None = None) -> None:
        self.retry_after = retry_after
        self.correlation_id = correlation_id
        super().__init__(f"rate limited; retry after {retry_after:g} s")


class TransientServerError(GenesysError):
    def __init__(self, status: int, correlation_id: str | None = None) -> None:
        self.status = status
        self.correlation_id = correlation_id
        super().__init__(f"Genesys answered {status} (transient)")


class OutcomeUnknown(GenesysError):
    """A non-idempotent request may or may not have been carried out."""

    def __init__(self, method: str, path: str, cause: str) -> None:
        self.method = method
        self.path = path
        super().__init__(f"{method} {path}: connection lost ({cause}); outcome unknown")


class TokenRefused(GenesysError):
    """The auth flow refused to attach the bearer token to a request for another origin."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"refused to send the Genesys bearer token to {host!r}: not the API origin"
        )


class DownloadFailed(GenesysError):
    """An export download could not be fetched safely, or its file was empty."""


class TokenBucket:
    """Blocking token bucket: ``per_minute`` acquisitions per minute on average, bursts of at
    most ``burst`` (default a tenth of a minute's worth). It starts full, so a 60 s window can
    hold up to ``per_minute + burst`` acquisitions (330 at 300/min); a 429 beyond the org's
    limit is retried after its Retry-After (see the module docstring)."""

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.capacity = float(max(burst if burst is not None else per_minute // 10, 1))
        self.rate = max(per_minute, 1) / 60.0
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.updated = clock()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            self.sleep(wait)


class ClientCredentialsAuth(httpx.Auth):
    """OAuth 2 client credentials for Genesys Cloud, cached until shortly before expiry.

    The secret goes only to ``<login_base>/oauth/token``; the bearer token only to requests
    for the origin of ``api_base`` (default: the login base's, the sandbox layout). Any other
    request raises :class:`TokenRefused` before it is sent. A token endpoint that answers
    anything but 200 (a redirect included: it is never followed) is :class:`AuthFailed`.
    """

    requires_response_body = True

    def __init__(
        self,
        login_base: str,
        client_id: str,
        client_secret: str,
        *,
        api_base: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin_seconds: float = 60.0,
    ) -> None:
        require_https_or_loopback(login_base.rstrip("/"), "the Genesys login base URL")
        require_https_or_loopback((api_base or login_base).rstrip("/"), "the Genesys API base URL")
        self._token_url = f"{login_base.rstrip('/')}/oauth/token"
        self._api_origin = origin_of(api_base or login_base)
        self._credentials = httpx.BasicAuth(client_id, client_secret)
        self._clock = clock
        self._margin = refresh_margin_seconds
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.tokens_fetched = 0

    def _token_request(self) -> httpx.Request:
        request = httpx.Request("POST", self._token_url, data={"grant_type": "client_credentials"})
        return next(self._credentials.auth_flow(request))

    def _store(self, response: httpx.Response) -> None:
        if response.is_redirect:
            raise AuthFailed(
                f"token endpoint answered {response.status_code} (a redirect); not followed, "
                "the client secret is only sent to the configured login host"
            )
        if response.status_code != 200:
            raise AuthFailed(
                f"token endpoint answered {response.status_code}; check the client id and secret"
            )
        body = response.json()
        self._token = body["access_token"]
        self._expires_at = self._clock() + float(body.get("expires_in", 86400)) - self._margin
        self.tokens_fetched += 1

    def _valid(self) -> str | None:
        return self._token if self._token and self._clock() < self._expires_at else None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if origin_of(str(request.url)) != self._api_origin:
            raise TokenRefused(request.url.host)
        with self._lock:
            token = self._valid()
        if token is None:
            self._store((yield self._token_request()))
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            with self._lock:
                if self._token == token:
                    self._token = None
            self._store((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    @property
    def token(self) -> str | None:
        return self._token

    def expire(self) -> None:
        """Forget the cached token (tests; a key rotation)."""
        self._token = None


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    idempotent: bool


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RateLimited | TransientServerError | _RetryableTransport)


class _RetryableTransport(Exception):
    """A transport failure on an idempotent request: safe to send again."""

    def __init__(self, cause: Exception) -> None:
        self.cause = cause
        super().__init__(type(cause).__name__)


LOOKUP_PAGE_SIZE = 100
"""Page size of the conversation details query of a lookup (PagingSpec; 100 is the usual
maximum of Genesys query pages)."""


@dataclass
class SmsLookup:
    """What :meth:`GenesysClient.find_agentless_sms` saw: the messages whose body matches
    (``{"conversationId", "id", "message"}``), how many conversations were candidates and
    how many messages (or conversations) could not be read."""

    matches: list[dict[str, Any]] = field(default_factory=list)
    candidates: int = 0
    unreadable: int = 0


def _iso_z(moment: datetime) -> str:
    moment = moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _has_sms_session(conversation: dict[str, Any], from_address: str, to_address: str) -> bool:
    """Does an analytics conversation hold an outbound SMS session from -> to (either form of
    the address)?"""
    for participant in conversation.get("participants") or []:
        for session in participant.get("sessions") or []:
            if str(session.get("direction") or "").lower() != "outbound":
                continue
            if str(session.get("messageType") or "").lower() != "sms":
                continue
            to = str(session.get("addressTo") or "").removeprefix("tel:")
            sender = str(session.get("addressFrom") or "").removeprefix("tel:")
            if to == to_address and sender in ("", from_address.removeprefix("tel:")):
                return True
    return False


_JSON_CONTENT = {"Content-Type": "application/json"}


def add_body(contact_list_id: str, contacts: Sequence[dict[str, Any]] | pl.DataFrame) -> bytes:
    """The JSON body of an add: ``[{"id", "contactListId", "data", "callable": true}, ...]``.

    A frame (``id``, ``data`` struct) is encoded by polars, column-wise, with no Python object
    per contact (a tenth of the CPU of dicts through ``json.dumps`` for 1,000 contacts); a
    list of dicts is encoded by ``json.dumps`` as httpx would. Both give the same JSON for the
    same contacts (tests/unit/test_genesys_client.py)."""
    if isinstance(contacts, pl.DataFrame):
        if contacts.height == 0:
            return b"[]"
        rows = contacts.select(
            pl.struct(
                pl.col("id"),
                pl.lit(contact_list_id).alias("contactListId"),
                pl.col("data"),
                pl.lit(True).alias("callable"),
            )
            .struct.json_encode()
            .str.join(",")
        ).item()
        return f"[{rows}]".encode()
    body = [
        {"id": c["id"], "contactListId": contact_list_id, "data": c["data"], "callable": True}
        for c in contacts
    ]
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class GenesysClient:
    """The Genesys Cloud operations the pipeline needs. One instance per OAuth client."""

    def __init__(
        self,
        *,
        api_base: str,
        login_base: str,
        client_id: str,
        client_secret: str,
        requests_per_minute: int = 300,
        max_attempts: int = 6,
        max_backoff_seconds: float = 30.0,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[str, str], None] | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        self.auth = ClientCredentialsAuth(login_base, client_id, client_secret, api_base=api_base)
        self._api_root = httpx.URL(api_base.rstrip("/") + "/api/v2/")
        self._http = httpx.Client(
            base_url=api_base.rstrip("/"),
            auth=self.auth,
            timeout=timeout,
            limits=limits or DEFAULT_LIMITS,
            transport=transport,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "payment-reminders"},
        )
        self._timeout = timeout
        self._transport = transport
        self._plain: httpx.Client | None = None
        self._bucket = TokenBucket(requests_per_minute, sleep=sleep)
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff_seconds
        self._on_request = on_request
        self._rng = random.Random()
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "rate_limited": 0}

    def fetch_token(self) -> None:
        """Fetch the OAuth token now (one POST to the login host). A service calls it as it
        starts, so that its first concurrent requests do not each fetch one."""
        self.auth._store(self._http.send(self.auth._token_request(), auth=None))

    def close(self) -> None:
        self._http.close()
        if self._plain is not None:
            self._plain.close()

    def __enter__(self) -> GenesysClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            return exc.retry_after + self._rng.uniform(0, 0.25)
        backoff = min(self._max_backoff, 0.5 * 2 ** (state.attempt_number - 1))
        return self._rng.uniform(0, backoff)

    def _send_once(self, call: _Call, **kwargs: Any) -> httpx.Response:
        self._bucket.acquire()
        if self._on_request:
            self._on_request("request", call.path)
        self.stats["requests"] += 1
        try:
            response = self._http.request(call.method, f"/api/v2{call.path}", **kwargs)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            self.stats["transport_errors"] = self.stats.get("transport_errors", 0) + 1
            if call.idempotent:
                raise _RetryableTransport(exc) from exc
            raise OutcomeUnknown(call.method, call.path, type(exc).__name__) from None
        if self._on_request:
            self._on_request("response", call.path)
        correlation = response.headers.get("ININ-Correlation-Id")
        by_status = f"http_{response.status_code}"  # answers by status, for the run artifact
        self.stats[by_status] = self.stats.get(by_status, 0) + 1
        if response.status_code == 429:
            self.stats["rate_limited"] += 1
            raise RateLimited(_retry_after(response), correlation)
        if response.status_code == 503 or (response.status_code >= 500 and call.idempotent):
            raise TransientServerError(response.status_code, correlation)
        if response.status_code >= 500:
            raise OutcomeUnknown(call.method, call.path, f"HTTP {response.status_code}")
        if response.status_code == 401:
            raise AuthFailed("Genesys refused a freshly fetched token (401)")
        if response.status_code >= 400:
            code, message = _error_fields(response)
            raise RequestRejected(response.status_code, code, message, correlation)
        return response

    def _request(
        self, method: str, path: str, *, idempotent: bool, **kwargs: Any
    ) -> httpx.Response:
        call = _Call(method, path, idempotent)
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda _s: self.stats.__setitem__("retries", self.stats["retries"] + 1),
        )
        try:
            return retrying(self._send_once, call, **kwargs)
        except _RetryableTransport as exc:
            raise TransientServerError(0) from exc.cause

    def _json(self, method: str, path: str, *, idempotent: bool, **kwargs: Any) -> Any:
        response = self._request(method, path, idempotent=idempotent, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _pages(self, path: str, params: dict[str, Any]) -> Iterable[dict[str, Any]]:
        page = 1
        while True:
            body = self._json(
                "GET",
                path,
                idempotent=True,
                params=params | {"pageSize": MAX_PAGE_SIZE, "pageNumber": page},
            )
            yield from body.get("entities") or []
            if page >= int(body.get("pageCount") or 1):
                return
            page += 1

    def _find_by_name(self, path: str, name: str) -> dict[str, Any] | None:
        for entity in self._pages(path, {"name": name}):
            if entity.get("name") == name:
                return entity
        return None

    def _create_settled(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a named entity; a lost connection is settled by looking the name up."""
        try:
            return self._json("POST", path, idempotent=False, json=body)
        except OutcomeUnknown:
            found = self._find_by_name(path, body["name"])
            if found is None:
                return self._json("POST", path, idempotent=False, json=body)
            return found

    def _find_in_pages(
        self, path: str, name: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The entity named ``name`` among every page of a listing without a name filter."""
        for entity in self._pages(path, params or {}):
            if entity.get("name") == name:
                return entity
        return None

    # --- response management: content templates (libraries and responses) ---

    def create_library(self, name: str) -> dict[str, Any]:
        """Create a response library; a lost connection is settled by looking the name up."""
        path = "/responsemanagement/libraries"
        try:
            return self._json("POST", path, idempotent=False, json={"name": name})
        except OutcomeUnknown:
            found = self.find_library(name)
            return (
                found
                if found is not None
                else self._json("POST", path, idempotent=False, json={"name": name})
            )

    def find_library(self, name: str) -> dict[str, Any] | None:
        return self._find_in_pages("/responsemanagement/libraries", name)

    def get_library(self, library_id: str) -> dict[str, Any]:
        return self._json("GET", f"/responsemanagement/libraries/{library_id}", idempotent=True)

    def delete_library(self, library_id: str) -> None:
        self._request("DELETE", f"/responsemanagement/libraries/{library_id}", idempotent=True)

    def ensure_library(self, name: str) -> dict[str, Any]:
        """The library named ``name``: found, else created."""
        return self.find_library(name) or self.create_library(name)

    def list_responses(self, library_id: str) -> list[dict[str, Any]]:
        return list(self._pages("/responsemanagement/responses", {"libraryId": library_id}))

    def find_response(self, library_id: str, name: str) -> dict[str, Any] | None:
        return self._find_in_pages("/responsemanagement/responses", name, {"libraryId": library_id})

    def get_response(self, response_id: str) -> dict[str, Any]:
        return self._json("GET", f"/responsemanagement/responses/{response_id}", idempotent=True)

    def create_response(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a response (``name``, ``libraries``, ``texts``, ...); a lost connection is
        settled by looking the name up in its (first) library."""
        path = "/responsemanagement/responses"
        try:
            return self._json("POST", path, idempotent=False, json=body)
        except OutcomeUnknown:
            found = self.find_response(body["libraries"][0]["id"], body["name"])
            return (
                found
                if found is not None
                else self._json("POST", path, idempotent=False, json=body)
            )

    def put_response(self, response_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a response; ``body["version"]`` must be the current version (else 409)."""
        return self._json(
            "PUT", f"/responsemanagement/responses/{response_id}", idempotent=False, json=body
        )

    def delete_response(self, response_id: str) -> None:
        self._request("DELETE", f"/responsemanagement/responses/{response_id}", idempotent=True)

    def ensure_response(self, body: dict[str, Any]) -> dict[str, Any]:
        """The response named ``body["name"]`` in ``body["libraries"][0]`` as ``body`` says:
        created when missing, updated (PUT with the current version) when its texts,
        substitutions or type differ, else returned as found. A version conflict or a lost
        connection on the update is settled by reading the response again."""
        library_id = body["libraries"][0]["id"]
        for _ in range(3):
            found = self.find_response(library_id, body["name"])
            if found is None:
                return self.create_response(body)
            current = self.get_response(found["id"])
            if _response_matches(current, body):
                return current
            try:
                return self.put_response(
                    current["id"], body | {"id": current["id"], "version": current["version"]}
                )
            except OutcomeUnknown:
                continue
            except RequestRejected as exc:
                if exc.status != 409:
                    raise
        current = self.get_response(found["id"])
        if not _response_matches(current, body):
            raise GenesysError(f"response {body['name']!r} could not be brought up to date")
        return current

    def find_contact_list(self, name: str) -> dict[str, Any] | None:
        return self._find_by_name("/outbound/contactlists", name)

    def get_contact_list(self, contact_list_id: str) -> dict[str, Any]:
        return self._json("GET", f"/outbound/contactlists/{contact_list_id}", idempotent=True)

    def create_contact_list(
        self,
        name: str,
        columns: Sequence[str],
        *,
        phone_columns: Sequence[tuple[str, str | None]] = (),
        email_columns: Sequence[tuple[str, str | None]] = (),
    ) -> dict[str, Any]:
        """Create a contact list; ``*_columns`` are (column, zone column or None) pairs."""
        body: dict[str, Any] = {"name": name, "columnNames": list(columns)}
        if phone_columns:
            body["phoneColumns"] = [
                {"columnName": c, "type": "cell"} | ({"callableTimeColumn": z} if z else {})
                for c, z in phone_columns
            ]
        if email_columns:
            body["emailColumns"] = [
                {"columnName": c, "type": "personal"} | ({"contactableTimeColumn": z} if z else {})
                for c, z in email_columns
            ]
        return self._create_settled("/outbound/contactlists", body)

    def delete_contact_list(self, contact_list_id: str) -> None:
        self._request("DELETE", f"/outbound/contactlists/{contact_list_id}", idempotent=True)

    def add_contacts(
        self,
        contact_list_id: str,
        contacts: Sequence[dict[str, Any]] | pl.DataFrame,
        *,
        priority: bool = True,
        do_not_queue: bool = False,
        read_back: bool = True,
    ) -> list[dict[str, Any]]:
        """Add up to 1,000 contacts (``{"id": ..., "data": {...}}``, or a frame of ``id`` and
        a ``data`` struct, whose body is encoded column-wise) to a list; returns the contacts
        as Genesys wrote them, or ``[]`` with ``read_back=False`` (the answer is not decoded:
        a push that only needs the 2xx saves the client a large JSON parse).

        New contacts go in with ``doNotQueue=false``: queued under both readings of the
        parameter for new contacts (no effect / wait for a recycle). Re-adding a contact that
        exists with ``doNotQueue=false`` re-queues it, which a real org may message again, so
        callers add only contacts they know are missing and pass ``do_not_queue=True`` for any
        re-add. ``clearSystemData`` is never set. Not idempotent: a lost connection (or a 5xx
        other than 503) raises :class:`OutcomeUnknown`; settle it with :meth:`get_contacts`.
        """
        if len(contacts) > MAX_CONTACTS_PER_ADD:
            raise ValueError(f"at most {MAX_CONTACTS_PER_ADD} contacts per request")
        path = f"/outbound/contactlists/{contact_list_id}/contacts"
        params = {"priority": str(priority).lower(), "doNotQueue": str(do_not_queue).lower()}
        body = {"content": add_body(contact_list_id, contacts), "headers": _JSON_CONTENT}
        if not read_back:
            self._request("POST", path, idempotent=False, params=params, **body)
            return []
        return self._json("POST", path, idempotent=False, params=params, **body)

    def mark_uncontactable(
        self, contact_list_id: str, contacts: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Make existing contacts uncontactable: ``callable=false`` and ``contactableStatus``
        SMS and Email ``contactable=false``, written by a bulk upsert with ``doNotQueue=true``
        (the queue position is never renewed) that carries each contact's own ``data``.

        Setting the same flags twice gives the same state, so this is retried like an
        idempotent call. Verify with :meth:`get_contacts` (see :func:`is_uncontactable`).
        """
        written: list[dict[str, Any]] = []
        for start in range(0, len(contacts), MAX_CONTACTS_PER_ADD):
            body = [
                {
                    "id": c["id"],
                    "contactListId": contact_list_id,
                    "data": c["data"],
                    "callable": False,
                    "contactableStatus": UNCONTACTABLE_STATUS,
                }
                for c in contacts[start : start + MAX_CONTACTS_PER_ADD]
            ]
            written += (
                self._json(
                    "POST",
                    f"/outbound/contactlists/{contact_list_id}/contacts",
                    idempotent=True,
                    params={"priority": "false", "doNotQueue": "true"},
                    json=body,
                )
                or []
            )
        return written

    def get_contacts(self, contact_list_id: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The contacts among ``ids`` that exist in the list."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), MAX_CONTACTS_PER_ADD):
            chunk = list(ids[start : start + MAX_CONTACTS_PER_ADD])
            found += (
                self._json(
                    "POST",
                    f"/outbound/contactlists/{contact_list_id}/contacts/bulk",
                    idempotent=True,
                    json=chunk,
                )
                or []
            )
        return found

    def update_contact(self, contact_list_id: str, contact: dict[str, Any]) -> dict[str, Any]:
        return self._json(
            "PUT",
            f"/outbound/contactlists/{contact_list_id}/contacts/{contact['id']}",
            idempotent=True,
            json={"id": contact["id"], "contactListId": contact_list_id, "data": contact["data"]}
            | {k: contact[k] for k in ("callable", "contactableStatus") if k in contact},
        )

    def delete_contacts(self, contact_list_id: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 100):
            chunk = ",".join(ids[start : start + 100])
            self._request(
                "DELETE",
                f"/outbound/contactlists/{contact_list_id}/contacts",
                idempotent=True,
                params={"contactIds": chunk},
            )

    def create_dnc_list(self, name: str, contact_method: str = "Any") -> dict[str, Any]:
        return self._create_settled(
            "/outbound/dnclists",
            {"name": name, "dncSourceType": "rds", "contactMethod": contact_method},
        )

    def find_dnc_list(self, name: str) -> dict[str, Any] | None:
        return self._find_by_name("/outbound/dnclists", name)

    def add_dnc_phone_numbers(self, dnc_list_id: str, numbers: Sequence[str]) -> None:
        self._patch_dnc(dnc_list_id, "phonenumbers", "phoneNumbers", numbers)

    def add_dnc_email_addresses(self, dnc_list_id: str, addresses: Sequence[str]) -> None:
        self._patch_dnc(dnc_list_id, "emailaddresses", "emailAddresses", addresses)

    def _patch_dnc(self, dnc_list_id: str, resource: str, key: str, values: Sequence[str]) -> None:
        """Add entries to an internal DNC list; Add is a set union, so replays are harmless."""
        for start in range(0, len(values), MAX_CONTACTS_PER_ADD):
            self._request(
                "PATCH",
                f"/outbound/dnclists/{dnc_list_id}/{resource}",
                idempotent=True,
                json={"action": "Add", key: list(values[start : start + MAX_CONTACTS_PER_ADD])},
            )

    def ensure_callable_time_set(
        self, name: str, zones: Iterable[str], start: str, stop: str
    ) -> dict[str, Any]:
        """A callable time set with one slot per zone and weekday; grown when zones are new."""
        wanted = sorted(set(zones))
        times = [
            {
                "timeZoneId": zone,
                "timeSlots": [
                    {"startTime": start, "stopTime": stop, "day": day} for day in range(1, 8)
                ],
            }
            for zone in wanted
        ]
        path = "/outbound/callabletimesets"
        existing = self._find_by_name(path, name)
        if existing is None:
            return self._create_settled(path, {"name": name, "callableTimes": times})
        have = sorted(t["timeZoneId"] for t in existing.get("callableTimes", []))
        if set(wanted) <= set(have):  # grown only: a push with fewer zones rewrites nothing
            return existing
        merged = sorted(set(have) | set(wanted))
        body = existing | {
            "callableTimes": [t for t in times if t["timeZoneId"] in merged]
            + [t for t in existing.get("callableTimes", []) if t["timeZoneId"] not in wanted]
        }
        return self._json("PUT", f"{path}/{existing['id']}", idempotent=False, json=body)

    def find_campaign(self, name: str) -> dict[str, Any] | None:
        return self._find_by_name("/outbound/messagingcampaigns", name)

    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        return self._json("GET", f"/outbound/messagingcampaigns/{campaign_id}", idempotent=True)

    def create_messaging_campaign(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._create_settled("/outbound/messagingcampaigns", body)

    def _update_campaign(
        self, campaign_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any]:
        """Read-modify-write a campaign: ``change`` returns the new body, or None when the
        campaign is already as wanted. A version conflict or a lost connection is settled by
        reading the campaign again, so a PUT that did land is never applied twice."""
        for _ in range(3):
            campaign = self.get_campaign(campaign_id)
            body = change(campaign)
            if body is None:
                return campaign
            try:
                return self._json(
                    "PUT",
                    f"/outbound/messagingcampaigns/{campaign_id}",
                    idempotent=False,
                    json=body,
                )
            except OutcomeUnknown:
                continue
            except RequestRejected as exc:
                if exc.status != 409 or "version" not in exc.code:
                    raise
        return self.get_campaign(campaign_id)

    def set_campaign_status(self, campaign_id: str, status: str) -> dict[str, Any]:
        """Turn a campaign ``on`` or ``off`` (PUT with the current version), settled by GET."""
        return self._update_campaign(
            campaign_id,
            lambda c: None if c.get("campaignStatus") == status else c | {"campaignStatus": status},
        )

    def ensure_campaign_dnc_lists(self, campaign_id: str, dnc_list_ids: Sequence[str]) -> None:
        """Make sure a campaign references these DNC lists (PUT with version, settled by GET)."""

        def add_lists(campaign: dict[str, Any]) -> dict[str, Any] | None:
            have = {ref["id"] for ref in campaign.get("dncLists") or []}
            if set(dnc_list_ids) <= have:
                return None
            return campaign | {"dncLists": [{"id": i} for i in sorted(have | set(dnc_list_ids))]}

        self._update_campaign(campaign_id, add_lists)

    def ensure_campaign_rule_sets(self, campaign_id: str, rule_set_ids: Sequence[str]) -> None:
        """Make sure a campaign references these digital rule sets (PUT with version)."""

        def add_sets(campaign: dict[str, Any]) -> dict[str, Any] | None:
            have = {ref["id"] for ref in campaign.get("ruleSets") or []}
            if set(rule_set_ids) <= have:
                return None
            return campaign | {"ruleSets": [{"id": i} for i in sorted(have | set(rule_set_ids))]}

        self._update_campaign(campaign_id, add_sets)

    def ensure_campaign_content_template(self, campaign_id: str, response_id: str) -> None:
        """Make an e-mail campaign's ``emailConfig.contentTemplate`` this response (PUT with
        version, settled by GET)."""

        def point(campaign: dict[str, Any]) -> dict[str, Any] | None:
            config = campaign.get("emailConfig") or {}
            if (config.get("contentTemplate") or {}).get("id") == response_id:
                return None
            return campaign | {"emailConfig": config | {"contentTemplate": {"id": response_id}}}

        self._update_campaign(campaign_id, point)

    def delete_campaign(self, campaign_id: str) -> None:
        self._request("DELETE", f"/outbound/messagingcampaigns/{campaign_id}", idempotent=True)

    def delete_dnc_list(self, dnc_list_id: str) -> None:
        self._request("DELETE", f"/outbound/dnclists/{dnc_list_id}", idempotent=True)

    def find_callable_time_set(self, name: str) -> dict[str, Any] | None:
        return self._find_by_name("/outbound/callabletimesets", name)

    def delete_callable_time_set(self, time_set_id: str) -> None:
        self._request("DELETE", f"/outbound/callabletimesets/{time_set_id}", idempotent=True)

    def delete_digital_rule_set(self, rule_set_id: str) -> None:
        self._request("DELETE", f"/outbound/digitalrulesets/{rule_set_id}", idempotent=True)

    def list_named(self, kind: str) -> list[dict[str, Any]]:
        """Every entity of one kind (``campaigns``, ``contact_lists``, ``dnc_lists``,
        ``time_sets``, ``rule_sets``, ``libraries``), all pages."""
        return list(self._pages(LISTINGS[kind], {}))

    def switch_campaign_contact_list(self, campaign_id: str, contact_list_id: str) -> None:
        """Point a campaign at another contact list (read-modify-write with version)."""
        self._update_campaign(
            campaign_id,
            lambda c: (
                None
                if (c.get("contactList") or {}).get("id") == contact_list_id
                else c | {"contactList": {"id": contact_list_id}}
            ),
        )

    def recycle_campaign(self, campaign_id: str) -> None:
        """``DELETE .../progress``: reset the campaign's progress and recycle it."""
        self._request(
            "DELETE", f"/outbound/messagingcampaigns/{campaign_id}/progress", idempotent=True
        )

    def find_digital_rule_set(self, name: str) -> dict[str, Any] | None:
        return self._find_by_name("/outbound/digitalrulesets", name)

    def ensure_digital_rule_set(self, body: dict[str, Any]) -> dict[str, Any]:
        """The digital rule set named ``body["name"]``: found by name, else created (a lost
        connection on the create is settled by name)."""
        found = self.find_digital_rule_set(body["name"])
        if found is not None:
            return found
        return self._create_settled("/outbound/digitalrulesets", body)

    def campaign_progress(self, campaign_id: str) -> dict[str, Any]:
        return self._json(
            "GET", f"/outbound/messagingcampaigns/{campaign_id}/progress", idempotent=True
        )

    def send_agentless_sms(self, from_address: str, to_address: str, text: str) -> dict[str, Any]:
        """Send one SMS through the agentless API. 202 = accepted, not delivered.

        Not idempotent: a lost connection raises :class:`OutcomeUnknown`, never a resend.
        """
        return self._json(
            "POST",
            "/conversations/messages/agentless",
            idempotent=False,
            json={
                "fromAddress": from_address,
                "toAddress": to_address,
                "toAddressMessengerType": "sms",
                "textBody": text,
            },
        )

    def get_message(self, conversation_id: str, message_id: str) -> dict[str, Any]:
        return self._json(
            "GET",
            f"/conversations/messages/{conversation_id}/messages/{message_id}",
            idempotent=True,
        )

    # --- settling an agentless send whose outcome is unknown, by lookup (issue 12) ---------

    def query_conversation_details(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/v2/analytics/conversations/details/query`` (a ConversationQuery); a
        query, so safe to retry."""
        return self._json(
            "POST", "/analytics/conversations/details/query", idempotent=True, json=body
        )

    def get_message_conversation(self, conversation_id: str) -> dict[str, Any]:
        """``GET /api/v2/conversations/messages/{conversationId}`` (a MessageConversation)."""
        return self._json("GET", f"/conversations/messages/{conversation_id}", idempotent=True)

    def find_agentless_sms(
        self, from_address: str, to_address: str, text: str, *, start: datetime, end: datetime
    ) -> SmsLookup:
        """Look for an agentless SMS ``from_address`` -> ``to_address`` with body ``text``
        sent in [start, end) (naive UTC), without sending anything.

        1. ``POST /analytics/conversations/details/query``: conversations in the interval with
           a session ``mediaType`` message, ``messageType`` sms, ``direction`` outbound and
           ``addressTo`` the number (as E.164 or as a ``tel:`` URI: analytics' form of the
           address is not documented, so both are asked for and compared without ``tel:``),
           every page.
        2. For each: ``GET /conversations/messages/{conversationId}`` lists its message ids;
           ``GET .../messages/{messageId}`` gives the MessageData, whose
           ``normalizedMessage.text`` (SDK 269; ``textBody`` in older shapes) is compared
           with ``text``.

        The caller decides: one match = found; none with every candidate read = not found
        (only meaningful once analytics has caught up); several, or none while a candidate
        could not be read = ambiguous."""
        interval = f"{_iso_z(start)}/{_iso_z(end)}"
        plain = to_address.removeprefix("tel:")
        body: dict[str, Any] = {
            "interval": interval,
            "order": "asc",
            "orderBy": "conversationStart",
            "segmentFilters": [
                {
                    "type": "and",
                    "predicates": [
                        {
                            "type": "dimension",
                            "dimension": "mediaType",
                            "operator": "matches",
                            "value": "message",
                        },
                        {
                            "type": "dimension",
                            "dimension": "messageType",
                            "operator": "matches",
                            "value": "sms",
                        },
                        {
                            "type": "dimension",
                            "dimension": "direction",
                            "operator": "matches",
                            "value": "outbound",
                        },
                    ],
                },
                {
                    "type": "or",
                    "predicates": [
                        {
                            "type": "dimension",
                            "dimension": "addressTo",
                            "operator": "matches",
                            "value": v,
                        }
                        for v in (plain, f"tel:{plain}")
                    ],
                },
            ],
        }
        conversations: list[str] = []
        page = 1
        while True:
            answer = self.query_conversation_details(
                body | {"paging": {"pageSize": LOOKUP_PAGE_SIZE, "pageNumber": page}}
            )
            found = (answer or {}).get("conversations") or []
            for conv in found:
                if _has_sms_session(conv, from_address, plain):
                    conversations.append(str(conv.get("conversationId")))
            total = int((answer or {}).get("totalHits") or 0)
            if len(found) < LOOKUP_PAGE_SIZE or page * LOOKUP_PAGE_SIZE >= total:
                break
            page += 1
        result = SmsLookup(candidates=len(conversations))
        for conversation_id in conversations:
            try:
                conv = self.get_message_conversation(conversation_id)
            except RequestRejected:
                result.unreadable += 1
                continue
            ids = [
                str(m.get("messageId"))
                for p in conv.get("participants") or []
                for m in p.get("messages") or []
                if m.get("messageId")
            ]
            if not ids:
                result.unreadable += 1
            for message_id in dict.fromkeys(ids):
                try:
                    data = self.get_message(conversation_id, message_id)
                except RequestRejected:
                    result.unreadable += 1
                    continue
                if str(data.get("direction") or "outbound").lower() != "outbound":
                    continue
                seen = (data.get("normalizedMessage") or {}).get("text")
                if seen is None:
                    seen = data.get("textBody")
                if seen is None:
                    result.unreadable += 1
                elif seen == text:
                    result.matches.append(
                        {"conversationId": conversation_id, "id": message_id, "message": data}
                    )
        return result

    def export_contact_list(
        self, contact_list_id: str, *, poll_seconds: float = 2.0, timeout_seconds: float = 300.0
    ) -> list[dict[str, str]]:
        """Export a contact list and return its CSV rows (header tolerant of BOM and quotes).

        POST ``.../export``, poll GET ``.../export?download=false`` for ``{uri}``, then
        :meth:`download` that URI (Genesys answers a redirect to a signed URL on another host).
        """
        path = f"/outbound/contactlists/{contact_list_id}/export"
        self._request("POST", path, idempotent=True, json=None)
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                body = self._json("GET", path, idempotent=True, params={"download": "false"})
                break
            except RequestRejected as exc:
                if exc.code != "no.available.list.export.uri" or time.monotonic() > deadline:
                    raise
                self._sleep(poll_seconds)
        uri = body.get("uri") if isinstance(body, dict) else None
        if not isinstance(uri, str) or not uri:
            raise DownloadFailed("the export answer carried no download uri")
        return _csv_rows(self.download(uri))

    def download(self, uri: str) -> bytes:
        """The bytes behind a Genesys download URI (``/api/v2/downloads/{id}``).

        Each hop is fetched by hand: a request for the API origin under ``/api/v2`` goes through
        the authenticated client (token, rate limit, retries); anything else (the signed URL a
        redirect or a ``{"url"}`` answer names) through a plain client without the token, and
        only over https unless the host is loopback. Once a hop has left the API origin the
        token is never sent again. A signed URL that answers 403 (expired) is fetched anew
        once from the download URI.
        """
        last: Exception | None = None
        for _ in range(2):
            try:
                return self._follow_download(uri)
            except _SignedUrlRejected as exc:
                last = exc
        raise DownloadFailed(f"the signed download URL was refused twice ({last})")

    def _follow_download(self, uri: str) -> bytes:
        url = self._api_root.join(uri)
        trusted = True
        for _ in range(MAX_DOWNLOAD_HOPS):
            api = trusted and self._is_api_url(url)
            trusted = api
            response = self._api_get(url) if api else self._foreign_get(url)
            if response.is_redirect:
                url = url.join(response.headers["Location"])
                continue
            if response.status_code >= 400:
                if not api and response.status_code in (401, 403):
                    raise _SignedUrlRejected(response.status_code)
                raise RequestRejected(response.status_code, "export.download", "", None)
            pointer = _url_answer(response) if api else None
            if pointer is not None:
                url = url.join(pointer)
                continue
            return response.content
        raise DownloadFailed(f"the export download took more than {MAX_DOWNLOAD_HOPS} hops")

    def _is_api_url(self, url: httpx.URL) -> bool:
        return origin_of(str(url)) == origin_of(str(self._api_root)) and url.path.startswith(
            self._api_root.path
        )

    def _api_get(self, url: httpx.URL) -> httpx.Response:
        relative = "/" + url.path[len(self._api_root.path) :]
        return self._request("GET", relative, idempotent=True, params=url.params)

    def _foreign_get(self, url: httpx.URL) -> httpx.Response:
        if url.scheme != "https" and not (url.scheme == "http" and is_loopback_host(url.host)):
            raise DownloadFailed(
                f"refused to fetch a download over {url.scheme or 'no scheme'} from "
                f"{url.host!r}: signed URLs must be https (http only on a loopback host)"
            )
        if self._plain is None:
            self._plain = httpx.Client(
                timeout=self._timeout,
                limits=DEFAULT_LIMITS,
                transport=self._transport,
                follow_redirects=False,
                headers={"User-Agent": "payment-reminders"},
            )
        try:
            return self._plain.get(url)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise TransientServerError(0) from exc

    # --- issue 12: agentless e-mail, DNC removal, Architect data tables -----------------

    def send_agentless_email(
        self, from_email: str, from_name: str, to_address: str, subject: str, text: str
    ) -> dict[str, Any]:
        """Send one e-mail through the agentless API (``senderType`` Outbound).

        Not idempotent: a lost connection raises :class:`OutcomeUnknown`, never a resend.
        """
        return self._json(
            "POST",
            "/conversations/emails/agentless",
            idempotent=False,
            json={
                "senderType": "Outbound",
                "fromAddress": {"email": from_email, "name": from_name},
                "toAddresses": [{"email": to_address}],
                "subject": subject,
                "textBody": text,
            },
        )

    def remove_dnc_phone_numbers(self, dnc_list_id: str, numbers: Sequence[str]) -> None:
        """Remove numbers from an internal DNC list (an opt-in again); a replay is harmless."""
        for start in range(0, len(numbers), MAX_CONTACTS_PER_ADD):
            self._request(
                "PATCH",
                f"/outbound/dnclists/{dnc_list_id}/phonenumbers",
                idempotent=True,
                json={
                    "action": "Remove",
                    "phoneNumbers": list(numbers[start : start + MAX_CONTACTS_PER_ADD]),
                },
            )

    def find_datatable(self, name: str) -> dict[str, Any] | None:
        """The Architect data table named ``name`` (with its schema), or None."""
        for entity in self._pages("/flows/datatables", {"name": name, "expand": "schema"}):
            if entity.get("name") == name:
                return entity
        return None

    def create_datatable(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /flows/datatables; a lost connection is settled by looking the name up."""
        try:
            return self._json("POST", "/flows/datatables", idempotent=False, json=body)
        except OutcomeUnknown:
            found = self.find_datatable(body["name"])
            if found is None:
                return self._json("POST", "/flows/datatables", idempotent=False, json=body)
            return found

    def datatable_rows(self, datatable_id: str) -> list[dict[str, Any]]:
        """Every row of a data table (full rows, ``showbrief=false``)."""
        return list(self._pages(f"/flows/datatables/{datatable_id}/rows", {"showbrief": "false"}))

    def create_datatable_row(self, datatable_id: str, row: dict[str, Any]) -> dict[str, Any]:
        return self._json(
            "POST", f"/flows/datatables/{datatable_id}/rows", idempotent=False, json=row
        )

    def update_datatable_row(self, datatable_id: str, row: dict[str, Any]) -> dict[str, Any]:
        """PUT a whole row (``key`` names it); a replay writes the same values again."""
        return self._json(
            "PUT",
            f"/flows/datatables/{datatable_id}/rows/{quote(str(row['key']), safe='')}",
            idempotent=True,
            json=row,
        )


class _SignedUrlRejected(Exception):
    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"HTTP {status}")


def _url_answer(response: httpx.Response) -> str | None:
    """The ``url`` of a ``{"url": ...}`` answer (``issueRedirect=false``), else None."""
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    url = body.get("url") if isinstance(body, dict) else None
    return url if isinstance(url, str) and url else None


def _csv_rows(content: bytes) -> list[dict[str, str]]:
    text = content.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    first = next(reader, None)
    if first is None:
        raise DownloadFailed("the export file is empty (no header row)")
    header = [h.strip().strip('"') for h in first]
    return [dict(zip(header, row, strict=False)) for row in reader]


def _texts_key(texts: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted(
        (
            str(t.get("type") or "body"),
            str(t.get("contentType") or "text/plain"),
            str(t.get("content") or ""),
        )
        for t in texts
    )


def _response_matches(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """A stored response already says what ``wanted`` says (texts, substitutions, type)."""

    def subs(r: dict[str, Any]) -> list[tuple[str, str]]:
        # ids and defaults decide the rendering; a description is not compared (cosmetic)
        return sorted(
            (str(s["id"]), str(s.get("defaultValue") or "")) for s in r.get("substitutions") or []
        )

    return (
        _texts_key(current.get("texts") or []) == _texts_key(wanted.get("texts") or [])
        and subs(current) == subs(wanted)
        and current.get("responseType") == wanted.get("responseType")
    )


def is_uncontactable(contact: dict[str, Any]) -> bool:
    """A contact as Genesys returns it is verified uncontactable: ``callable`` is false and
    every digital media it has a status for (SMS, Email) says ``contactable`` false, with at
    least one such status (both flags checked: either alone is not taken as proof)."""
    if contact.get("callable") is not False:
        return False
    statuses = contact.get("contactableStatus") or {}
    digital = [statuses[m] for m in ("SMS", "Email") if m in statuses]
    return bool(digital) and all((s or {}).get("contactable") is False for s in digital)


def attempted(contact: dict[str, Any]) -> list[dict[str, Any]]:
    """The message evaluations (attempts) Genesys recorded on a contact, SMS and e-mail."""
    found: list[dict[str, Any]] = []
    for key in ("latestSmsEvaluations", "latestEmailEvaluations"):
        found += [e for e in (contact.get(key) or {}).values() if e]
    return found


def client_from_settings(
    settings: GenesysSettings,
    client_secret: str,
    *,
    transport: httpx.BaseTransport | None = None,
    on_request: Callable[[str, str], None] | None = None,
    connections: int | None = None,
) -> GenesysClient:
    """The one wiring spot: a client for the configured region or base URL. ``connections``:
    the persistent connection pool's size (kept alive), for a caller that sends from that
    many threads at once (default 10, 5 kept alive)."""
    if not settings.client_id:
        raise ConfigurationError("genesys.client_id is not set (REMINDERS_GENESYS__CLIENT_ID)")
    if not settings.region and not settings.base_url:
        raise ConfigurationError("set genesys.region (a real org) or genesys.base_url")
    api_base, login_base = hosts_for(settings.region, settings.base_url)
    return GenesysClient(
        api_base=api_base,
        login_base=login_base,
        client_id=settings.client_id,
        client_secret=client_secret,
        requests_per_minute=settings.requests_per_minute,
        max_attempts=settings.max_attempts,
        timeout=httpx.Timeout(settings.timeout_seconds, connect=10.0),
        transport=transport,
        on_request=on_request,
        limits=pool_limits(connections) if connections else None,
    )


def pool_limits(connections: int) -> httpx.Limits:
    """A connection pool of ``connections``, all kept alive (one per sending thread, so no
    thread waits for a connection and none is reopened per request)."""
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _error_fields(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "unknown", response.reason_phrase
    if not isinstance(body, dict):
        return "unknown", response.reason_phrase
    return str(body.get("code") or body.get("error") or "unknown"), str(
        body.get("message") or body.get("description") or ""
    )[:300]

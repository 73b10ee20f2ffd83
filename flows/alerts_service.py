"""The alerts service: an ASGI app for billing webhooks and inbound SMS, plus its worker.

Started by one command, ``reminders alerts serve`` (uvicorn). Endpoints:

``POST /events``
    A billing event (``tasks.alerts`` module docstring: headers, body, checks). 202
    ``{"event_id", "status": "accepted"}`` once the event is committed; 4xx
    ``{"error": <code>, "message"}`` otherwise (413, 401, 400, 422, 409 replay).
``POST /inbound/genesys``
    For an Architect inbound-message flow's data action (Web Services Data Action, POST, a
    static ``Authorization: Bearer <alerts.inbound_token>`` credential). Request::

        {"messageId": "<Message.Id>", "fromAddress": "<Message.SenderAddress, E.164>",
         "toAddress": "<Message.RecipientAddress>", "text": "<Message.Message.body>"}

    Response (the flow's output contract; every field always present)::

        {"action": "opt_out|opt_in|help|payment_link|callback_request|none",
         "keyword": "STOP" | "", "reply": "<text to send back>" | "", "handled": true}

    Example flow: *Inbound Message* flow on the SMS number -> *Call Data Action*
    ``reminders-inbound-keyword`` with the four inputs above -> *Decision* ``handled and
    action != "none"`` -> yes: *Send Response* ``reply`` (if not blank) and *Disconnect*; no:
    *Transfer to ACD* (a person reads free text). The data table ``reminders-consent`` (see
    ``flows/consent_sync.py``) lets the flow check consent itself before any outbound reply.
``POST /inbound/twilio``
    Twilio's inbound webhook (form fields ``MessageSid``, ``From``, ``To``, ``Body``), validated
    with ``X-Twilio-Signature`` over ``alerts.public_base_url`` + path + query (the URL Twilio
    called, rebuilt behind a proxy). Answers TwiML ``<Response><Message>reply</Message>``.
``GET /health``
    Alert counts per state.

The hot path: the request hands its event to the writer thread, which group-commits whatever
events have queued in one transaction that also decides their alerts with the planning rules
(consent directory cached per process, folded again when ``consent_events`` changes: checked
by version) and commits the send intents; the dispatcher sends them at once on a pool sharing
the client's persistent connections (before the waiting requests get their 202), and one
recorder thread records the answers in groups. Nothing on that path
polls. Failpoints ``alerts.after_intent`` and ``alerts.after_call`` (``REMINDERS_FAILPOINT``)
kill the process there, for tests/e2e/test_alerts_kill.py.

The worker thread (every ``alerts.worker_interval_seconds``, or when woken): events -> alert
rows for what the hot path left (and payment_received -> cancel the invoice's pending
reminders), held -> ready when the window opens, unknown -> settled by lookup, ready -> sent
through the agentless API (retries), accepted -> polled, recorded inbound consent -> Genesys
DNC list. At start-up alerts left ``sending`` by a kill become ``unknown`` (then looked up).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from sqlalchemy.engine import Connection, Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tasks.alerts import (
    AlertEvent,
    Directory,
    WebhookRejected,
    accept_events,
    alert_counts,
    cancel_for_payments,
    parse_event,
    poll_accepted,
    process_events,
    record_answers,
    recover_in_flight,
    release_held,
    send_context,
    send_due,
    send_one,
    settle_unknown,
    store_events,
    verify_signature,
    verify_twilio,
)
from tasks.failpoints import failpoint
from tasks.genesys import GenesysClient
from tasks.inbound import apply_inbound, handle_inbound
from tasks.render import TemplateSet
from tasks.settings import Settings

__all__ = ["AlertService", "create_alerts_app", "serve"]

log = logging.getLogger("reminders.alerts")


ACCEPT_GRACE_SECONDS = 5.0
"""With a client, the worker decides an event only this long after it was stored (the
accepting transaction decides it; the worker takes what an error there left)."""


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class EventWriter:
    """Group commit: requests hand their event to one writer thread, which commits whatever
    has queued up in one transaction (``commit(batch) -> stored flags``) and then releases
    every waiting request (so each 202 is still given only after its event is durable)."""

    def __init__(
        self,
        commit: Callable[[list[tuple[AlertEvent, bytes]]], list[bool]],
        max_batch: int = 500,
    ) -> None:
        self._commit, self._max = commit, max_batch
        self._queue: queue.Queue[tuple[AlertEvent, bytes, Future[bool]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="alerts-writer", daemon=True)
        self._thread.start()

    def submit(self, event: AlertEvent, payload: bytes) -> Future[bool]:
        future: Future[bool] = Future()
        self._queue.put((event, payload, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = _drain(self._queue, first, self._max, None)
            try:
                stored = self._commit([(e, p) for e, p, _ in batch])
            except Exception as exc:  # the requests answer 503; the billing system retries
                for _e, _p, future in batch:
                    future.set_exception(exc)
                continue
            for (_e, _p, future), ok in zip(batch, stored, strict=True):
                future.set_result(ok)


def _drain(
    source: queue.Queue[Any], first: Any, most: int, close: Any, *, linger: float = 0.0
) -> list[Any]:
    """``first`` and whatever else has queued up, at most ``most`` items (waiting up to
    ``linger`` seconds after ``first`` for more); a ``close`` marker met on the way is put
    back for the thread's next ``get``."""
    batch = [first]
    deadline = time.monotonic() + linger
    while len(batch) < most:
        try:
            wait = deadline - time.monotonic()
            item = source.get(timeout=wait) if wait > 0 else source.get_nowait()
        except queue.Empty:
            break
        if item is close:
            source.put(close)
            break
        batch.append(item)
    return batch


RECORD_LINGER_SECONDS = 0.05
"""The recorder waits this long after an answer for more, to record them in one transaction
(answers are not on the way to the send or the 202; fewer commits leave the CPU to both)."""


class Dispatcher:
    """Sends alerts whose intent is committed, at once, and records the answers in groups.

    ``submit(row)`` runs the agentless call on a pool of ``concurrency`` threads (the client's
    persistent connection pool and rate limit are shared); each answer goes to one recorder
    thread, which records whatever answers have arrived in one transaction
    (``record(rows, answers)``). :meth:`flush` waits until every submitted row is recorded."""

    def __init__(
        self,
        call: Callable[[dict[str, Any]], Any],
        record: Callable[[list[dict[str, Any]], list[Any]], None],
        concurrency: int,
        max_batch: int = 500,
    ) -> None:
        self._call, self._record, self._max = call, record, max_batch
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="alerts-send")
        self._answers: queue.Queue[tuple[dict[str, Any], Any] | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="alerts-recorder", daemon=True)
        self._thread.start()

    def submit(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self._idle:
            self._pending += len(rows)
        for row in rows:
            self._pool.submit(self._send, row)

    def _send(self, row: dict[str, Any]) -> None:
        try:
            answer = self._call(row)
        except BaseException as exc:  # recorded as unknown: the request may have left
            self._answers.put((row, exc))
            if not isinstance(exc, Exception):
                raise
            return
        failpoint("alerts.after_call")  # Genesys has it; the answer is not recorded yet
        self._answers.put((row, answer))

    def _run(self) -> None:
        while True:
            first = self._answers.get()
            if first is None:
                return
            batch = _drain(self._answers, first, self._max, None, linger=RECORD_LINGER_SECONDS)
            try:
                self._record([r for r, _ in batch], [a for _, a in batch])
            except Exception:  # rows stay `sending`: the next start settles them by lookup
                log.exception("recording %d agentless answers failed", len(batch))
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every submitted row has been recorded; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        self.flush()
        self._pool.shutdown(wait=True)
        self._answers.put(None)
        self._thread.join(timeout=30)


@dataclass
class AlertService:
    """Everything the app and its worker share."""

    engine: Engine
    directory: Directory
    templates: TemplateSet
    settings: Settings
    client: GenesysClient | None
    clock: Callable[[], datetime] = utc_now
    stats: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _consent_changed: threading.Event = field(default_factory=threading.Event)
    _wake: threading.Event = field(default_factory=threading.Event)
    _last_poll: float = 0.0
    _writer: EventWriter | None = None
    _pool: ThreadPoolExecutor | None = None
    _dispatcher: Dispatcher | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _conns: dict[str, Connection] = field(default_factory=dict)

    def current_directory(self, bind: Engine | Connection | None = None) -> Directory:
        """The directory, folded again if captured consent changed (an inbound keyword in
        this process, or any writer of ``consent_events``: checked by version), read on
        ``bind`` (the engine by default; the accepting transaction's connection, so the
        decision and the consent it was made with are one snapshot)."""
        bind = self.engine if bind is None else bind
        if self._consent_changed.is_set():
            self._consent_changed.clear()
            self.directory = self.directory.refreshed(bind, now=self.clock())
        else:
            self.directory = self.directory.current(bind, now=self.clock())
        return self.directory

    def _ctx(self, now: datetime) -> dict[str, Any]:
        s = self.settings
        return send_context(
            self.directory,
            self.templates,
            alerts=s.alerts,
            cadence=s.cadence,
            render=s.render,
            now=now,
        )

    def _commit_batch(self, batch: list[tuple[AlertEvent, bytes]]) -> list[bool]:
        """The writer's group commit. With a client: one transaction stores the events,
        decides their alerts (the planning rules) and commits the send intents
        (:func:`accept_events`); the intents go to the dispatcher at once, before the 202s are
        released. Should deciding fail, the events alone are committed (the 202s still hold:
        the worker decides them after ``ACCEPT_GRACE_SECONDS``). Without a client the worker
        decides them. No polling and no other thread between the webhook and the send."""
        now = self.clock()
        if self.client is None:
            stored = store_events(self.engine, batch, now=now)
            if any(stored):
                self.wake()
            return stored
        s = self.settings
        try:
            accepted = accept_events(
                self._kept("writer"),
                batch,
                now=now,
                directory=self.current_directory,
                templates=self.templates,
                alerts=s.alerts,
                cadence=s.cadence,
                render=s.render,
            )
        except Exception:  # a store failure raises again below (the requests answer 503)
            log.exception("deciding %d events failed: stored only, the worker decides", len(batch))
            self._drop("writer")
            return store_events(self.engine, batch, now=now)
        if accepted.to_send:
            failpoint("alerts.after_intent")  # intents committed, nothing sent yet
            self._get_dispatcher().submit(accepted.to_send)
        return accepted.stored

    def _get_dispatcher(self) -> Dispatcher:
        with self._lock:
            if self._dispatcher is None:
                client = self.client
                assert client is not None
                genesys = self.settings.genesys
                self._dispatcher = Dispatcher(
                    lambda row: send_one(client, genesys, row),
                    lambda rows, answers: self._record(rows, answers),
                    self.settings.alerts.send_concurrency,
                )
            return self._dispatcher

    def _kept(self, role: str) -> Connection:
        """The connection one thread (``writer``, ``recorder``) keeps for its transactions:
        no pool checkout, check-in and reset per group. Dropped after an error."""
        conn = self._conns.get(role)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conns[role] = self.engine.connect()
        return conn

    def _drop(self, role: str) -> None:
        conn = self._conns.pop(role, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _record(self, rows: list[dict[str, Any]], answers: list[Any]) -> None:
        now = self.clock()
        try:
            result = record_answers(
                self._kept("recorder"), rows, answers, ctx=self._ctx(now), now=now
            )
        except Exception:
            self._drop("recorder")
            raise
        if result.retried or result.unknown:
            self.wake()  # a row to retry or to settle by lookup

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every alert sent on accept has its answer recorded (an accepted
        event's decision is committed before its 202)."""
        return self._dispatcher.flush(timeout) if self._dispatcher is not None else True

    def tick(self) -> dict[str, Any]:
        """One pass of the worker (also called directly by tests)."""
        self.flush()
        now = self.clock()
        a, s = self.settings.alerts, self.settings
        directory = self.current_directory()
        processed = process_events(
            self.engine,
            directory,
            self.templates,
            alerts=a,
            cadence=s.cadence,
            render=s.render,
            now=now,
            # with a client the accepting transaction decides; the worker takes what an error
            # left (a crash cannot: events and intents commit together)
            min_age_seconds=ACCEPT_GRACE_SECONDS if self.client is not None else 0.0,
        )
        cancelled = cancel_for_payments(self.engine, self.client, processed.paid_events, now=now)
        released = release_held(self.engine, now=now)
        out: dict[str, Any] = {
            "events": processed.events,
            "held": processed.held,
            "released": released,
            "reminders_cancelled": cancelled,
        }
        if self.client is not None:
            out["settled"] = settle_unknown(
                self.engine, self.client, alerts=a, genesys=s.genesys, now=now
            ).__dict__
            sent = send_due(
                self.engine,
                self.client,
                directory,
                self.templates,
                alerts=a,
                cadence=s.cadence,
                render=s.render,
                genesys=s.genesys,
                now=now,
                pool=self._send_pool(),
            )
            out["send"] = sent.__dict__
            if time.monotonic() - self._last_poll >= a.poll_interval_seconds:
                self._last_poll = time.monotonic()
                out["poll"] = poll_accepted(
                    self.engine,
                    self.client,
                    directory,
                    self.templates,
                    alerts=a,
                    cadence=s.cadence,
                    render=s.render,
                    now=now,
                ).__dict__
            out["inbound_applied"] = apply_inbound(
                self.engine, self.client, directory, genesys=s.genesys, now=now
            )
        return out

    def _send_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.settings.alerts.send_concurrency, thread_name_prefix="alerts-retry"
            )
        return self._pool

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.tick()
            except Exception:  # the worker must outlive one bad tick; the row stays to retry
                log.exception("alerts worker tick failed")
            # the work on the hot path is done by the writer and the dispatcher; the worker
            # (cancels, holds, retries, lookups, polls) runs every interval or when woken
            self._wake.wait(self.settings.alerts.worker_interval_seconds)

    def start(self) -> None:
        recover_in_flight(self.engine, now=self.clock())
        # every customer's part of a decision computed once, before the first webhook (after a
        # consent change the new directory computes them as their events come)
        self.current_directory().warm(self.settings.cadence)
        if self.client is not None:
            # the token now, and the writer's and dispatcher's threads: not on the first events
            try:
                self.client.fetch_token()
            except Exception as exc:  # the first send fetches it (and fails as it would)
                log.warning("fetching the Genesys token at start failed: %s", exc)
            self._get_dispatcher()
        with self._lock:
            if self._writer is None:
                self._writer = EventWriter(self._commit_batch)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alerts-worker", daemon=True)
        self._thread.start()

    def store(self, event: AlertEvent, payload: bytes) -> bool:
        """Durably store one event (group-committed with concurrent ones); False = replay."""
        return self.submit(event, payload).result(timeout=30)

    def submit(self, event: AlertEvent, payload: bytes) -> Future[bool]:
        """Hand one event to the writer; the future is True once it is committed (False: a
        replay). The request awaits it on the event loop: no thread per waiting request."""
        with self._lock:
            if self._writer is None:
                self._writer = EventWriter(self._commit_batch)
            writer = self._writer
        return writer.submit(event, payload)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._dispatcher is not None:
            self._dispatcher.close()
            self._dispatcher = None
        for role in list(self._conns):  # their threads are done
            self._drop(role)


def _error(exc: WebhookRejected) -> JSONResponse:
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status)


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise WebhookRejected(400, "body_invalid", "Content-Length is not a number")
        if int(declared) > limit:
            raise WebhookRejected(413, "body_too_large", f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRejected(413, "body_too_large", f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def create_alerts_app(
    service: AlertService, *, run_worker: bool = True, own_process: bool = False
) -> Starlette:
    """The ASGI app over ``service`` (its worker runs for the app's lifetime if asked).
    ``own_process``: the app is the process (``reminders alerts serve``): once the service
    has started, :func:`freeze_start_up_heap`."""
    alerts = service.settings.alerts

    async def events(request: Request) -> Response:
        try:
            body = await _bounded_body(request, alerts.max_body_bytes)
            secret = _secret(alerts.signing_secret)
            if not secret:
                raise WebhookRejected(503, "not_configured", "alerts.signing_secret is not set")
            verify_signature(
                secret,
                timestamp=request.headers.get("x-reminders-timestamp"),
                signature=request.headers.get("x-reminders-signature"),
                body=body,
                now=service.clock(),
                tolerance_seconds=alerts.tolerance_seconds,
            )
            event = parse_event(body)
            try:
                stored = await asyncio.wait_for(
                    asyncio.wrap_future(service.submit(event, body)), timeout=30
                )
            except Exception:
                log.exception("event not stored")
                raise WebhookRejected(503, "store_unavailable", "try again later") from None
            if not stored:
                raise WebhookRejected(409, "event_replayed", "this event id was already accepted")
        except WebhookRejected as exc:
            return _error(exc)
        return JSONResponse({"event_id": event.event_id, "status": "accepted"}, status_code=202)

    async def inbound_genesys(request: Request) -> Response:
        try:
            body = await _bounded_body(request, alerts.max_body_bytes)
            token = _secret(alerts.inbound_token)
            if not token:
                raise WebhookRejected(503, "not_configured", "alerts.inbound_token is not set")
            offered = request.headers.get("authorization", "")
            if not hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
                raise WebhookRejected(401, "unauthorized", "bad or missing bearer token")
            import json

            try:
                data = json.loads(body)
            except ValueError:
                raise WebhookRejected(422, "message_invalid", "body is not JSON") from None
            if not isinstance(data, dict):
                raise WebhookRejected(422, "message_invalid", "body must be a JSON object")
            message_id, sender = data.get("messageId"), data.get("fromAddress")
            if not isinstance(message_id, str) or not message_id or not isinstance(sender, str):
                raise WebhookRejected(422, "message_invalid", "messageId and fromAddress needed")
            text = data.get("text")
            result = await run_in_threadpool(
                lambda: handle_inbound(
                    service.engine,
                    service.directory,
                    source="genesys",
                    message_id=message_id,
                    from_address=sender,
                    to_address=data.get("toAddress"),
                    text=text if isinstance(text, str) else None,
                    now=service.clock(),
                    alerts=alerts,
                    render=service.settings.render,
                )
            )
        except WebhookRejected as exc:
            return _error(exc)
        if result.match.status:
            service._consent_changed.set()
        return JSONResponse(
            {
                "action": result.match.action,
                "keyword": result.match.keyword or "",
                "reply": result.reply or "",
                "handled": True,
            }
        )

    async def inbound_twilio(request: Request) -> Response:
        try:
            body = await _bounded_body(request, alerts.max_body_bytes)
            token = _secret(alerts.twilio_auth_token)
            if not token:
                raise WebhookRejected(503, "not_configured", "alerts.twilio_auth_token is not set")
            try:
                pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                raise WebhookRejected(400, "body_invalid", "form body is not UTF-8") from None
            params: dict[str, list[str]] = {}
            for k, v in pairs:
                params.setdefault(k, []).append(v)
            base = (alerts.public_base_url or str(request.base_url)).rstrip("/")
            url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if not verify_twilio(token, url, params, request.headers.get("x-twilio-signature")):
                raise WebhookRejected(403, "signature_invalid", "X-Twilio-Signature mismatch")
            sid, sender = params.get("MessageSid", [""])[0], params.get("From", [""])[0]
            if not sid or not sender:
                raise WebhookRejected(422, "message_invalid", "MessageSid and From needed")
            result = await run_in_threadpool(
                lambda: handle_inbound(
                    service.engine,
                    service.directory,
                    source="twilio",
                    message_id=sid,
                    from_address=sender,
                    to_address=params.get("To", [None])[0],
                    text=params.get("Body", [""])[0],
                    now=service.clock(),
                    alerts=alerts,
                    render=service.settings.render,
                )
            )
        except WebhookRejected as exc:
            return _error(exc)
        if result.match.status:
            service._consent_changed.set()
        twiml = '<?xml version="1.0" encoding="UTF-8"?><Response>'
        if result.reply:
            twiml += f"<Message>{escape(result.reply)}</Message>"
        twiml += "</Response>"
        return Response(twiml, media_type="application/xml")

    async def health(request: Request) -> Response:
        counts = await run_in_threadpool(alert_counts, service.engine)
        return JSONResponse({"status": "ok", "alerts": counts, "events": counts.pop("_events")})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if run_worker:
            service.start()
        if own_process:
            freeze_start_up_heap()
        try:
            yield
        finally:
            if run_worker:
                service.stop()

    app = Starlette(
        routes=[
            Route("/events", events, methods=["POST"]),
            Route("/inbound/genesys", inbound_genesys, methods=["POST"]),
            Route("/inbound/twilio", inbound_twilio, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    return app


def service_from_settings(
    settings: Settings, *, with_client: bool = True, now: datetime | None = None
) -> AlertService:
    """Wire the service from settings: the warehouse, the directory from the sources (extract
    -> normalize -> consent_state with captured consent), the templates, the Genesys client."""
    from flows.common import genesys_secret
    from tasks.alerts import directory_from_frames
    from tasks.extract import extract_sources
    from tasks.genesys import client_from_settings
    from tasks.normalize import normalize
    from tasks.render import load_templates
    from tasks.warehouse import make_engine, migrate

    engine = make_engine(
        settings.warehouse.url.get_secret_value(), schema=settings.warehouse.db_schema
    )
    migrate(engine)
    now = now or utc_now()
    fresh = normalize(extract_sources(settings.sources), as_of=now, parsing=settings.parsing)
    directory = directory_from_frames(
        fresh.customers, fresh.consent_events, unclear=fresh.consent_unclear, as_of=now
    ).refreshed(engine, now=now)
    client = (
        client_from_settings(
            settings.genesys,
            genesys_secret(settings.genesys),
            # one kept-alive connection per sending thread (hot path + retries)
            connections=2 * settings.alerts.send_concurrency,
        )
        if with_client
        else None
    )
    return AlertService(
        engine, directory, load_templates(settings.render.templates_dir), settings, client
    )


GC_YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation in the service process
(Python's default is 700: a collection every few requests)."""


def freeze_start_up_heap() -> None:
    """Collect once, then move every object left (modules, settings, the directory and its
    cached choices, the pools) out of the cyclic collector's reach (``gc.freeze``), and
    collect the young generation less often. Without this every full collection walks the
    whole start-up heap while holding the GIL (about 170 000 objects after the imports alone:
    ~100 ms); with it, none ran while benchmarks/alerts_latency.py drove 200 events/s for
    10 s. For the service's own process only: a shared process keeps its collector as is."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def limit_duckdb_threads(engine: Engine, threads: int | None) -> None:
    """Cap DuckDB's worker threads for this process's warehouse (the service runs many tiny
    transactions: more threads only spin and take CPU from the requests). No-op elsewhere."""
    if threads is None or engine.dialect.name != "duckdb":
        return
    with engine.begin() as conn:
        conn.exec_driver_sql(f"set threads = {int(threads)}")


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8780) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    service = service_from_settings(settings)
    # its own process: cap DuckDB's threads there (not in a shared process such as the demo)
    limit_duckdb_threads(service.engine, settings.alerts.duckdb_threads)
    app = create_alerts_app(service, own_process=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")

"""Finding agentless messages again: the conversation details query and the conversation.

Contract
--------
* ``POST /api/v2/analytics/conversations/details/query`` (SDK ``ConversationQuery`` ->
  ``AnalyticsConversationQueryResponse``): ``interval`` ``"<start>/<end>"`` (required, ISO-8601)
  selects conversations whose ``conversationStart`` lies in it; ``segmentFilters`` (each
  ``{type and|or, predicates, clauses}``, all filters must hold) with ``dimension`` predicates
  (``operator`` matches / exists / notExists) over ``mediaType``, ``messageType``,
  ``direction``, ``addressTo``, ``addressFrom`` and ``purpose``; any other dimension, a
  ``metric`` / ``property`` predicate or a non-empty ``conversationFilters`` is refused 400
  ``not.modelled`` (never silently ignored); ``paging`` ``{pageSize 1..100, pageNumber}``;
  ``order`` asc|desc by ``conversationStart``. The answer is ``{"conversations": [...],
  "totalHits": n}``, without ``conversations`` when nothing matched.
* The data are the org's agentless SMS conversations: participant ``api`` (the sender, the
  Genesys name of agentless API messages) and ``customer``, each with one ``message`` session
  (``messageType`` sms, ``direction`` outbound, ``addressFrom``, ``addressTo``). Switches
  (BEHAVIOUR.md rows 64-66): ``analytics_address_format`` ``e164`` (default) / ``tel_uri``: how a
  session's addresses read; ``analytics_lag_seconds`` (default 0): a message is in the
  details data only this many (virtual) seconds after it was sent.
* ``GET /api/v2/conversations/messages/{conversationId}`` (SDK ``MessageConversation``): the
  conversation at once (no lag), its participants with ``messages`` [{``messageId``,
  ``messageURI``, ``messageStatus``, ``messageTime``}].
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genesys_sandbox.clock import iso, parse_instant
from genesys_sandbox.errors import ApiError, bad_request, invalid_value, not_found
from genesys_sandbox.routes.common import MAX_PAGE_SIZE, ok, read_json, req_object, sandbox_of
from genesys_sandbox.store import AgentlessMessage, Store
from genesys_sandbox.views import message_data

__all__ = ["routes"]

MODELLED_DIMENSIONS = (
    "mediaType",
    "messageType",
    "direction",
    "addressTo",
    "addressFrom",
    "purpose",
)


def _not_modelled(what: str) -> ApiError:
    return ApiError(400, "not.modelled", f"{what} is not modelled by the sandbox.")


def _address(store: Store, number: str) -> str:
    return f"tel:{number}" if store.config.analytics_address_format == "tel_uri" else number


def _conversations(store: Store) -> dict[str, list[AgentlessMessage]]:
    lag = timedelta(seconds=store.config.analytics_lag_seconds)
    grouped: dict[str, list[AgentlessMessage]] = {}
    for message in store.messages.values():
        if message.sent_at + lag <= store.now:
            grouped.setdefault(message.conversation_id, []).append(message)
    return grouped


def _session(store: Store, message: AgentlessMessage) -> dict[str, Any]:
    return {
        "mediaType": "message",
        "messageType": "sms",
        "direction": "outbound",
        "addressFrom": _address(store, message.from_address),
        "addressTo": _address(store, message.to_address),
        "sessionId": f"{message.id}-s",
        "segments": [
            {
                "segmentStart": iso(message.sent_at),
                "segmentEnd": iso(message.sent_at),
                "segmentType": "interact",
            }
        ],
    }


def _analytics_view(store: Store, conversation_id: str, messages: list[AgentlessMessage]) -> dict:
    first = min(m.sent_at for m in messages)
    return {
        "conversationId": conversation_id,
        "conversationStart": iso(first),
        "conversationEnd": iso(max(m.sent_at for m in messages)),
        "originatingDirection": "outbound",
        "participants": [
            {
                "participantId": f"{conversation_id}-{purpose}",
                "purpose": purpose,
                "sessions": [_session(store, m) for m in messages],
            }
            for purpose in ("api", "customer")
        ],
    }


def _predicate_holds(view: dict[str, Any], predicate: dict[str, Any]) -> bool:
    kind = predicate.get("type", "dimension")
    if kind != "dimension":
        raise _not_modelled(f"A '{kind}' predicate")
    dimension = predicate.get("dimension")
    if dimension not in MODELLED_DIMENSIONS:
        raise _not_modelled(f"The dimension '{dimension}'")
    operator = predicate.get("operator", "matches")
    if operator not in ("matches", "exists", "notExists"):
        raise invalid_value(f"Unknown operator '{operator}'.", "operator")
    values = [
        p.get("purpose") if dimension == "purpose" else s.get(dimension)
        for p in view["participants"]
        for s in p["sessions"]
    ]
    if operator == "exists":
        return any(v is not None for v in values)
    if operator == "notExists":
        return all(v is None for v in values)
    return predicate.get("value") in values


def _filter_holds(view: dict[str, Any], flt: Any) -> bool:
    flt = req_object(flt, "segmentFilters[]")
    kind = flt.get("type")
    if kind not in ("and", "or"):
        raise invalid_value("A filter's type must be 'and' or 'or'.", "type")
    results = [
        _predicate_holds(view, req_object(p, "predicate")) for p in flt.get("predicates") or []
    ]
    results += [_filter_holds(view, c) for c in flt.get("clauses") or []]
    if not results:
        return True
    return all(results) if kind == "and" else any(results)


async def details_query(request: Request) -> Response:
    body = req_object(await read_json(request))
    interval = body.get("interval")
    if not isinstance(interval, str) or interval.count("/") != 1:
        raise bad_request("interval is required as '<start>/<end>' (ISO-8601).", "interval")
    try:
        start, end = (parse_instant(part) for part in interval.split("/"))
    except ValueError:
        raise invalid_value(
            f"interval '{interval}' is not two ISO-8601 instants.", "interval"
        ) from None
    if end <= start:
        raise invalid_value("interval end must be after its start.", "interval")
    if body.get("conversationFilters"):
        raise _not_modelled("conversationFilters")
    paging = body.get("paging") or {}
    size, number = int(paging.get("pageSize", 25)), int(paging.get("pageNumber", 1))
    if not 1 <= size <= MAX_PAGE_SIZE or number < 1:
        raise invalid_value(f"paging: pageSize 1..{MAX_PAGE_SIZE}, pageNumber from 1.", "paging")
    filters = body.get("segmentFilters") or []
    if not isinstance(filters, list):
        raise invalid_value("segmentFilters must be a list.", "segmentFilters")
    for flt in filters:  # refuse what is not modelled even when no conversation is there
        _filter_holds({"participants": []}, flt)
    sandbox = sandbox_of(request)
    with sandbox.lock:
        store = sandbox.store
        views = [
            _analytics_view(store, cid, messages)
            for cid, messages in _conversations(store).items()
            if start <= min(m.sent_at for m in messages) < end
        ]
        hits = [v for v in views if all(_filter_holds(v, f) for f in filters)]
    hits.sort(key=lambda v: v["conversationStart"], reverse=body.get("order") == "desc")
    chunk = hits[(number - 1) * size : number * size]
    answer: dict[str, Any] = {"totalHits": len(hits)}
    if chunk:
        answer["conversations"] = chunk
    return ok(answer)


async def get_conversation(request: Request) -> Response:
    conversation_id = request.path_params["conversationId"]
    sandbox = sandbox_of(request)
    with sandbox.lock:
        store = sandbox.store
        messages = sorted(
            (m for m in store.messages.values() if m.conversation_id == conversation_id),
            key=lambda m: m.sent_at,
        )
        if not messages:
            raise not_found("conversation", conversation_id)
        listed = [
            {
                "messageId": m.id,
                "messageURI": f"/api/v2/conversations/messages/{conversation_id}/messages/{m.id}",
                "messageStatus": message_data(store, m, store.now)["status"],
                "messageTime": iso(m.sent_at),
            }
            for m in messages
        ]
        first = messages[0]
        view = {
            "id": conversation_id,
            "participants": [
                {
                    "id": f"{conversation_id}-api",
                    "purpose": "api",
                    "direction": "outbound",
                    "fromAddress": {"addressNormalized": first.from_address},
                    "toAddress": {"addressNormalized": first.to_address},
                    "messages": listed,
                },
                {
                    "id": f"{conversation_id}-customer",
                    "purpose": "customer",
                    "address": first.to_address,
                    "direction": "outbound",
                },
            ],
            "selfUri": f"/api/v2/conversations/messages/{conversation_id}",
        }
    return ok(view)


routes = [
    Route("/api/v2/analytics/conversations/details/query", details_query, methods=["POST"]),
    Route("/api/v2/conversations/messages/{conversationId}", get_conversation, methods=["GET"]),
]

"""``/api/v2/responsemanagement``: libraries and responses (campaign content templates).

Contract (shapes: SDK ``Library``, ``Response``, ``ResponseText``, ``ResponseSubstitution``)
-----------------------------------------------------------------------------------
* Libraries: POST (``name`` required, unique), GET list (paged), GET/DELETE by id.  A library
  that still holds responses cannot be deleted (409 ``resource.in.use``, chosen here).
* Responses: POST needs ``name``, ``libraries`` (existing library refs) and ``texts``
  (``content``; ``contentType`` text/plain | text/html; ``type`` body | subject);
  ``responseType`` one of the SDK values; ``substitutions`` ``{id, description,
  defaultValue}``.  GET ``/responses?libraryId=`` (required) lists a library's responses;
  GET/PUT (current ``version``, 409 ``version.mismatch``)/DELETE by id.  A response used as a
  campaign's ``contentTemplate`` cannot be deleted (409 ``resource.in.use``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genesys_sandbox.clock import iso
from genesys_sandbox.errors import ApiError, bad_request, invalid_value, name_exists, not_found
from genesys_sandbox.routes.common import (
    check_version,
    empty,
    ok,
    page,
    read_json,
    req_list,
    req_object,
    req_str,
    sandbox_of,
)
from genesys_sandbox.store import Store, new_id

__all__ = ["RESPONSE_TYPES", "routes"]

BASE = "/api/v2/responsemanagement"
RESPONSE_TYPES = (
    "MessagingTemplate",
    "CampaignSmsTemplate",
    "CampaignEmailTemplate",
    "Footer",
    "Form",
    "AppleInvitation",
)
CONTENT_TYPES = ("text/plain", "text/html")
TEXT_TYPES = ("body", "subject")


class _Named:
    def __init__(self, entity: dict[str, Any]) -> None:
        self.id = entity["id"]
        self.name = entity["name"]
        self.date_created = entity["_created"]
        self.date_modified = entity["_created"]


def _public(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if not k.startswith("_")}


def _library_or_404(store: Store, library_id: str) -> dict[str, Any]:
    library = store.libraries.get(library_id)
    if library is None:
        raise not_found("library", library_id)
    return library


def _response_or_404(store: Store, response_id: str) -> dict[str, Any]:
    response = store.responses.get(response_id)
    if response is None:
        raise not_found("response", response_id)
    return response


async def create_library(request: Request) -> Response:
    body = req_object(await read_json(request))
    name = req_str(body, "name")
    response_type = body.get("responseType")
    if response_type is not None and response_type not in RESPONSE_TYPES:
        raise invalid_value(f"Unknown responseType '{response_type}'.", "responseType")
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        if any(lib["name"].casefold() == name.casefold() for lib in store.libraries.values()):
            raise name_exists("library", name)
        library_id = new_id()
        library: dict[str, Any] = {"id": library_id, "name": name, "version": 1}
        library["dateCreated"] = iso(store.now)
        if response_type is not None:
            library["responseType"] = response_type
        library["selfUri"] = f"{BASE}/libraries/{library_id}"
        library["_created"] = store.now
        store.libraries[library_id] = library
        return ok(_public(library))


async def list_libraries(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        items = [_Named(lib) for lib in sandbox.store.libraries.values()]
        store = sandbox.store
        return ok(page(request, items, lambda n: _public(store.libraries[n.id])))


async def get_library(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        return ok(_public(_library_or_404(sandbox.store, request.path_params["libraryId"])))


async def delete_library(request: Request) -> Response:
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        library = _library_or_404(store, request.path_params["libraryId"])
        if any(library["id"] in _library_ids(r) for r in store.responses.values()):
            raise ApiError(409, "resource.in.use", "The library still holds responses.")
        del store.libraries[library["id"]]
    return empty(204)


def _library_ids(response: dict[str, Any]) -> list[str]:
    return [lib["id"] for lib in response.get("libraries") or []]


def _parse_response(body: dict[str, Any], store: Store) -> dict[str, Any]:
    name = req_str(body, "name")
    refs = req_list(body.get("libraries"), "libraries") if body.get("libraries") else []
    if not refs:
        raise bad_request("The field 'libraries' is required.", "libraries")
    libraries = []
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
            raise invalid_value(f"libraries[{i}] must be a reference {{id}}.", "libraries")
        library = store.libraries.get(ref["id"])
        if library is None:
            raise invalid_value(f"Library {ref['id']} does not exist.", "libraries")
        libraries.append(
            {"id": library["id"], "name": library["name"], "selfUri": library["selfUri"]}
        )
    raw_texts = body.get("texts")
    if not isinstance(raw_texts, list) or not raw_texts:
        raise bad_request("The field 'texts' is required.", "texts")
    texts = []
    for i, raw in enumerate(raw_texts):
        text = req_object(raw, f"texts[{i}]")
        content = text.get("content")
        if not isinstance(content, str):
            raise bad_request(f"texts[{i}].content is required.", "texts")
        content_type = text.get("contentType", "text/plain")
        if content_type not in CONTENT_TYPES:
            raise invalid_value(f"texts[{i}].contentType must be text/plain or text/html.", "texts")
        out = {"content": content, "contentType": content_type}
        if text.get("type") is not None:
            if text["type"] not in TEXT_TYPES:
                raise invalid_value(f"texts[{i}].type must be body or subject.", "texts")
            out["type"] = text["type"]
        texts.append(out)
    response_type = body.get("responseType")
    if response_type is not None and response_type not in RESPONSE_TYPES:
        raise invalid_value(f"Unknown responseType '{response_type}'.", "responseType")
    substitutions = []
    for i, raw in enumerate(body.get("substitutions") or []):
        sub = req_object(raw, f"substitutions[{i}]")
        sub_id = req_str(sub, "id", f"substitutions[{i}].id")
        out_sub = {"id": sub_id}
        for key in ("description", "defaultValue"):
            if sub.get(key) is not None:
                if not isinstance(sub[key], str):
                    raise invalid_value(f"substitutions[{i}].{key} must be a string.", key)
                out_sub[key] = sub[key]
        substitutions.append(out_sub)
    fields: dict[str, Any] = {"name": name, "libraries": libraries, "texts": texts}
    if body.get("interactionType") is not None:
        if body["interactionType"] not in ("chat", "email", "twitter"):
            raise invalid_value("Unknown interactionType.", "interactionType")
        fields["interactionType"] = body["interactionType"]
    fields["substitutions"] = substitutions
    if response_type is not None:
        fields["responseType"] = response_type
    return fields


async def create_response(request: Request) -> Response:
    body = req_object(await read_json(request))
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        fields = _parse_response(body, store)
        response_id = new_id()
        response = {"id": response_id, "version": 1, **fields, "dateCreated": iso(store.now)}
        response["selfUri"] = f"{BASE}/responses/{response_id}"
        store.responses[response_id] = response
        return ok(dict(response))


async def list_responses(request: Request) -> Response:
    library_id = request.query_params.get("libraryId")
    if not library_id:
        raise bad_request("Query parameter 'libraryId' is required.", "libraryId")
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        _library_or_404(store, library_id)
        items = [
            _Named({**r, "_created": store.now})
            for r in store.responses.values()
            if library_id in _library_ids(r)
        ]
        return ok(page(request, items, lambda n: dict(store.responses[n.id])))


async def get_response(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        return ok(dict(_response_or_404(sandbox.store, request.path_params["responseId"])))


async def put_response(request: Request) -> Response:
    body = req_object(await read_json(request))
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        response = _response_or_404(store, request.path_params["responseId"])
        check_version(body, response["version"], "response")
        fields = _parse_response(body, store)
        for key in ("interactionType", "responseType"):
            response.pop(key, None)
        response.update(fields)
        response["version"] += 1
        return ok(dict(response))


def template_users(store: Store, response_id: str) -> list[str]:
    users = []
    for campaign in store.campaigns.values():
        config = campaign.sms_config or campaign.email_config or {}
        if (config.get("contentTemplate") or {}).get("id") == response_id:
            users.append(campaign.name)
    return users


async def delete_response(request: Request) -> Response:
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        response = _response_or_404(store, request.path_params["responseId"])
        users = template_users(store, response["id"])
        if users:
            raise ApiError(
                409,
                "resource.in.use",
                f"The response is the content template of campaign(s): {', '.join(users)}.",
            )
        del store.responses[response["id"]]
    return empty(204)


routes = [
    Route(BASE + "/libraries", create_library, methods=["POST"]),
    Route(BASE + "/libraries", list_libraries, methods=["GET"]),
    Route(BASE + "/libraries/{libraryId}", get_library, methods=["GET"]),
    Route(BASE + "/libraries/{libraryId}", delete_library, methods=["DELETE"]),
    Route(BASE + "/responses", create_response, methods=["POST"]),
    Route(BASE + "/responses", list_responses, methods=["GET"]),
    Route(BASE + "/responses/{responseId}", get_response, methods=["GET"]),
    Route(BASE + "/responses/{responseId}", put_response, methods=["PUT"]),
    Route(BASE + "/responses/{responseId}", delete_response, methods=["DELETE"]),
]

"""Request parsing, validation and paging shared by the Genesys routes.

Contract
--------
* Bodies: an empty body and the literal ``null`` (what the SDK sends on body-less POSTs) both
  read as ``None``.  A non-empty body must be JSON (``application/json`` or ``*+json``; 415
  otherwise) and parse (400 ``bad.request`` otherwise).
* List-valued query parameters accept the SDK's comma-joined form and repeated keys alike.
* Listings: ``pageSize`` 1..100 (default 25; larger is 400 ``invalid.value``), ``pageNumber``
  from 1; the body carries ``entities, pageSize, pageNumber, total, pageCount, firstUri,
  selfUri, lastUri`` and ``nextUri``/``previousUri`` when such a page exists.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from genesys_sandbox.clock import parse_instant
from genesys_sandbox.errors import ApiError, bad_request, invalid_value
from genesys_sandbox.runtime import Sandbox

__all__ = [
    "E164",
    "MAX_PAGE_SIZE",
    "check_version",
    "empty",
    "name_filter",
    "ok",
    "opt_bool",
    "opt_instant",
    "opt_str",
    "page",
    "query_bool",
    "query_list",
    "read_json",
    "ref_id",
    "req_list",
    "req_object",
    "req_str",
    "sandbox_of",
]

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 25
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def sandbox_of(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


# orjson writes the same JSON value as the standard encoder (compact UTF-8, keys in order),
# an order of magnitude faster: a 1,000-contact add answers ~600 kB. What it would encode
# differently (datetimes, dataclasses, subclasses) or refuses (non-str keys, ints past 64
# bits) goes to the standard encoder, so every answer, and every failure, stays what it was.
_PASSTHROUGH = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def ok(data: Any, status: int = 200) -> Response:
    try:
        body = orjson.dumps(data, option=_PASSTHROUGH)
    except TypeError:
        return JSONResponse(data, status_code=status)
    return Response(body, status_code=status, media_type="application/json")


def empty(status: int = 204) -> Response:
    return Response(status_code=status)


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(
            415, "unsupported.media.type", f"Content type '{content_type}' is not supported."
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass  # the standard parser decides (it also reads NaN, big ints, UTF-16/32 bodies)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"Unable to parse the request body as JSON: {exc}") from exc


def req_object(body: Any, what: str = "request body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(f"The {what} must be a JSON object.")
    return body


def req_list(body: Any, what: str = "request body") -> list[Any]:
    if not isinstance(body, list):
        raise bad_request(f"The {what} must be a JSON array.")
    return body


def req_str(obj: dict[str, Any], key: str, path: str | None = None) -> str:
    value = obj.get(key)
    name = path or key
    if value is None or (isinstance(value, str) and not value.strip()):
        raise bad_request(f"The field '{name}' is required.", name)
    if not isinstance(value, str):
        raise invalid_value(f"The field '{name}' must be a string.", name)
    return value


def opt_str(obj: dict[str, Any], key: str, path: str | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_value(f"The field '{path or key}' must be a string.", path or key)
    return value


def opt_bool(obj: dict[str, Any], key: str, default: bool) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_value(f"The field '{key}' must be a boolean.", key)
    return value


def ref_id(obj: dict[str, Any], key: str, path: str | None = None) -> str | None:
    """The ``id`` of an optional ``{"id": ...}`` reference."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
        raise invalid_value(f"The field '{path or key}' must be a reference {{id}}.", path or key)
    return str(value["id"])


def opt_instant(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise ApiError(
            400, "invalid.date", f"'{name}' is not a valid date-time.", field=name
        ) from exc


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise invalid_value(f"Query parameter '{name}' must be true or false.", name)


def query_list(request: Request, name: str) -> list[str]:
    return [
        part.strip()
        for value in request.query_params.getlist(name)
        for part in value.split(",")
        if part.strip()
    ]


def _query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise invalid_value(f"Query parameter '{name}' must be an integer.", name) from exc


def name_filter(request: Request) -> Callable[[str], bool]:
    """Genesys' ``name`` + ``filterType`` (Equals | Contains | Prefix, default Prefix)."""
    name = request.query_params.get("name")
    if not name:
        return lambda _: True
    kind = (request.query_params.get("filterType") or "Prefix").lower()
    folded = name.casefold()
    if kind == "equals":
        return lambda value: value.casefold() == folded
    if kind == "contains":
        return lambda value: folded in value.casefold()
    if kind == "prefix":
        return lambda value: value.casefold().startswith(folded)
    raise invalid_value(f"Unsupported filterType '{kind}'.", "filterType")


def page(
    request: Request, items: Iterable[Any], render: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """A Genesys listing body over ``items`` (already filtered) for this request's paging."""
    size = _query_int(request, "pageSize", DEFAULT_PAGE_SIZE)
    number = _query_int(request, "pageNumber", 1)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise invalid_value(f"pageSize must be between 1 and {MAX_PAGE_SIZE}.", "pageSize")
    if number < 1:
        raise invalid_value("pageNumber must be 1 or more.", "pageNumber")
    sort_by = request.query_params.get("sortBy")
    ordered = list(items)
    if sort_by:
        attribute = {"name": "name", "datecreated": "date_created", "datemodified": "date_modified"}
        if sort_by.lower() not in attribute:
            raise invalid_value(f"Unsupported sortBy '{sort_by}'.", "sortBy")
        descending = (request.query_params.get("sortOrder") or "ascending").lower() in (
            "descending",
            "desc",
        )
        key = attribute[sort_by.lower()]
        ordered.sort(
            key=lambda e: getattr(e, key).casefold() if key == "name" else getattr(e, key),
            reverse=descending,
        )
    total = len(ordered)
    count = math.ceil(total / size)
    chunk = ordered[(number - 1) * size : number * size]
    params = {
        k: v for k, v in request.query_params.multi_items() if k not in ("pageSize", "pageNumber")
    }

    def uri(n: int) -> str:
        query = urlencode([*params.items(), ("pageSize", size), ("pageNumber", n)])
        return f"{request.url.path}?{query}"

    body: dict[str, Any] = {
        "entities": [render(e) for e in chunk],
        "pageSize": size,
        "pageNumber": number,
        "total": total,
        "firstUri": uri(1),
        "selfUri": uri(number),
        "lastUri": uri(max(count, 1)),
    }
    if number < count:
        body["nextUri"] = uri(number + 1)
    if 1 < number <= count + 1:
        body["previousUri"] = uri(number - 1)
    body["pageCount"] = count
    return body


def check_version(body: dict[str, Any], current: int, what: str) -> None:
    """PUT needs the current ``version``: missing is 400, stale is 409 ``version.mismatch``."""
    version = body.get("version")
    if version is None:
        raise bad_request(f"The {what} version is required for an update.", "version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise invalid_value("The field 'version' must be an integer.", "version")
    if version != current:
        raise ApiError(
            409,
            "version.mismatch",
            f"The {what} version {version} does not match the current version {current}.",
            field="version",
        )

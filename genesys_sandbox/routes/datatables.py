"""Architect data tables: ``/api/v2/flows/datatables`` and their rows.

Contract (paths, query parameters and shapes of the SDK 269 ``ArchitectApi``:
``post_flows_datatables``, ``get_flows_datatables`` (``name``, ``expand``, paging),
``get_flows_datatable`` (``expand``), ``delete_flows_datatable``, ``get_flows_datatable_rows``
(``showbrief``, paging), ``post_flows_datatable_rows``, ``get_flows_datatable_row``,
``put_flows_datatable_row``, ``delete_flows_datatable_row``; models ``DataTable``,
``JsonSchemaDocument``, ``DataTablesDomainEntityListing``, ``DataTableRowEntityListing``):

* A table's ``schema`` is a JSON schema of ``type`` ``object`` whose ``properties`` hold a
  string ``key`` (the row's primary key, required) and columns of type ``string``,
  ``integer``, ``number`` or ``boolean``; ``additionalProperties`` is false. The schema is in
  an answer only with ``expand=schema``. Names are unique (case-insensitive, 400
  ``name.already.exists``).
* A row is a JSON object: ``key`` plus any declared column with a value of its type; an
  undeclared column or a wrong type is 400 ``invalid.value``. POST of an existing key is 409
  ``conflict``; PUT replaces the row named in the path (its ``key``, if given, must match);
  ``showbrief`` (default true) lists rows as ``{"key"}`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genesys_sandbox.errors import ApiError, bad_request, invalid_value, name_exists, not_found
from genesys_sandbox.routes.common import (
    empty,
    name_filter,
    ok,
    page,
    query_bool,
    read_json,
    req_object,
    req_str,
    sandbox_of,
)
from genesys_sandbox.store import HOME_DIVISION, Store, new_id

__all__ = ["routes"]

BASE = "/api/v2/flows/datatables"
TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@dataclass
class DataTable:
    id: str
    name: str
    description: str | None
    schema: dict[str, Any]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)


def _tables(store: Store) -> dict[str, DataTable]:
    return store.datatables


def _view(table: DataTable, *, with_schema: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"id": table.id, "name": table.name}
    if table.description is not None:
        body["description"] = table.description
    body["division"] = dict(HOME_DIVISION)
    if with_schema:
        body["schema"] = table.schema
    body["selfUri"] = f"{BASE}/{table.id}"
    return body


def _check_schema(raw: Any) -> dict[str, Any]:
    schema = req_object(raw, "schema")
    if schema.get("type", "object") != "object":
        raise invalid_value("schema.type must be 'object'.", "schema.type")
    properties = schema.get("properties")
    if not isinstance(properties, dict) or "key" not in properties:
        raise bad_request("schema.properties must declare the 'key' column.", "schema.properties")
    for name, column in properties.items():
        if not isinstance(column, dict) or column.get("type") not in TYPES:
            raise invalid_value(
                f"column '{name}' needs a type of {', '.join(TYPES)}.", "schema.properties"
            )
    if properties["key"].get("type") != "string":
        raise invalid_value("the 'key' column must be a string.", "schema.properties.key")
    out = {
        "$schema": schema.get("$schema") or "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "required": sorted(set(schema.get("required") or []) | {"key"}),
        "properties": properties,
        "additionalProperties": False,
    }
    for extra in ("title", "description"):
        if isinstance(schema.get(extra), str):
            out[extra] = schema[extra]
    return out


def _check_row(table: DataTable, raw: Any) -> dict[str, Any]:
    row = req_object(raw, "row")
    properties = table.schema["properties"]
    for name, value in row.items():
        if name not in properties:
            raise invalid_value(f"column '{name}' is not in the table's schema.", name)
        wanted = TYPES[properties[name]["type"]]
        if isinstance(value, bool) and bool not in wanted:
            raise invalid_value(f"column '{name}' must be {properties[name]['type']}.", name)
        if not isinstance(value, wanted):
            raise invalid_value(f"column '{name}' must be {properties[name]['type']}.", name)
    for name in table.schema.get("required") or []:
        if row.get(name) in (None, ""):
            raise bad_request(f"column '{name}' is required.", name)
    return dict(row)


def _table_or_404(store: Store, table_id: str) -> DataTable:
    table = _tables(store).get(table_id)
    if table is None:
        raise not_found("data table", table_id)
    return table


async def create_table(request: Request) -> Response:
    body = req_object(await read_json(request))
    name = req_str(body, "name")
    schema = _check_schema(body.get("schema"))
    description = body.get("description")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        tables = _tables(sandbox.store)
        if any(t.name.casefold() == name.casefold() for t in tables.values()):
            raise name_exists("data table", name)
        table = DataTable(
            new_id(), name, description if isinstance(description, str) else None, schema
        )
        tables[table.id] = table
        return ok(_view(table, with_schema=True))


def _expand_schema(request: Request) -> bool:
    return "schema" in (request.query_params.get("expand") or "").split(",")


async def list_tables(request: Request) -> Response:
    sandbox = sandbox_of(request)
    matches = name_filter(request)
    with_schema = _expand_schema(request)
    with sandbox.lock:
        items = [t for t in _tables(sandbox.store).values() if matches(t.name)]
        return ok(page(request, items, lambda t: _view(t, with_schema=with_schema)))


async def get_table(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        table = _table_or_404(sandbox.store, request.path_params["datatableId"])
        return ok(_view(table, with_schema=_expand_schema(request)))


async def delete_table(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        table = _table_or_404(sandbox.store, request.path_params["datatableId"])
        del _tables(sandbox.store)[table.id]
    return empty(204)


async def list_rows(request: Request) -> Response:
    brief = query_bool(request, "showbrief", True)
    sandbox = sandbox_of(request)
    with sandbox.lock:
        table = _table_or_404(sandbox.store, request.path_params["datatableId"])
        rows = [table.rows[k] for k in sorted(table.rows)]
        return ok(page(request, rows, lambda r: {"key": r["key"]} if brief else dict(r)))


async def create_row(request: Request) -> Response:
    body = await read_json(request)
    sandbox = sandbox_of(request)
    with sandbox.lock:
        table = _table_or_404(sandbox.store, request.path_params["datatableId"])
        row = _check_row(table, body)
        if row["key"] in table.rows:
            raise ApiError(409, "conflict", f"A row with key '{row['key']}' already exists.")
        table.rows[row["key"]] = row
        return ok(dict(row))


async def get_row(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        table = _table_or_404(sandbox.store, request.path_params["datatableId"])
        row = table.rows.get(request.path_params["rowId"])
        if row is None:
            raise not_found("data table row", request.path_params["rowId"])
        return ok(dict(row))


async def put_row(request: Request) -> Response:
    body = req_object(await read_json(request), "row")
    key = request.path_params["rowId"]
    sandbox = sandbox_of(request)
    with sandbox.lock:
        table = _table_or_404(sandbox.store, request.path_params["datatableId"])
        if key not in table.rows:
            raise not_found("data table row", key)
        if body.get("key", key) != key:
            raise invalid_value("the row's key does not match the path.", "key")
        row = _check_row(table, {**body, "key": key})
        table.rows[key] = row
        return ok(dict(row))


async def delete_row(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        table = _table_or_404(sandbox.store, request.path_params["datatableId"])
        if table.rows.pop(request.path_params["rowId"], None) is None:
            raise not_found("data table row", request.path_params["rowId"])
    return empty(204)


routes = [
    Route(BASE, create_table, methods=["POST"]),
    Route(BASE, list_tables, methods=["GET"]),
    Route(BASE + "/{datatableId}", get_table, methods=["GET"]),
    Route(BASE + "/{datatableId}", delete_table, methods=["DELETE"]),
    Route(BASE + "/{datatableId}/rows", list_rows, methods=["GET"]),
    Route(BASE + "/{datatableId}/rows", create_row, methods=["POST"]),
    Route(BASE + "/{datatableId}/rows/{rowId}", get_row, methods=["GET"]),
    Route(BASE + "/{datatableId}/rows/{rowId}", put_row, methods=["PUT"]),
    Route(BASE + "/{datatableId}/rows/{rowId}", delete_row, methods=["DELETE"]),
]

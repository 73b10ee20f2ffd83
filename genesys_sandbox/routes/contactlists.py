"""``/api/v2/outbound/contactlists``: lists, contacts, export, and the download link.

Contract (beyond the Genesys shapes, see ``views``)
-------------------------------------------------
* A list needs a unique ``name`` (400 ``name.already.exists``), 1..50 ``columnNames`` (unique,
  at most 128 characters), and at least one phone or e-mail column (at most 10 phone columns);
  every column named by ``phoneColumns``/``emailColumns`` and their time-zone columns must be
  in ``columnNames``.  PUT keeps ``columnNames`` and ``phoneColumns`` (400
  ``cannot.update.column.names`` / ``cannot.update.phone.columns``) and needs the current
  ``version`` (409 ``version.mismatch``).  A list used by a campaign cannot be deleted (409).
* Adding contacts: 1..1000 per request (more is 413 ``request.entity.too.large``); each has
  ``contactListId`` = the list and ``data`` keyed by the list's columns with cells of at most
  512 characters; ``id`` is optional (1..128 characters, no ``/`` or ``,``).  An existing id
  is updated: data replaced, system data kept unless ``clearSystemData=true`` (which clears
  attempts and callable/contactable status too, row 27), queue position renewed unless
  ``doNotQueue=true``; a renewed contact is reached again in the current pass under
  ``readd_requeued=recontact`` (not under ``keep_attempted``).  A NEW contact added with
  ``doNotQueue=true`` waits for a recycle under ``donotqueue_new=wait_for_recycle``.
* Limits (``max_contacts_per_list``, ``max_contacts_per_org``, ``max_lists_per_org``): an add
  or create over a limit is refused whole with 400 ``max.contacts.per.list.exceeded`` /
  ``max.contacts.per.org.exceeded`` / ``max.contact.lists.per.org.exceeded`` (status and
  codes chosen here: no public source).
* Deletes of contacts (bulk and single) answer 200 with no body; under
  ``delete_in_use=keep`` they keep the contacts of a list in use (``in_use_scope``: any
  campaign references the list, or a running one does), as the SDK says.
* ``PUT .../contacts/{id}``: ``data`` optional (kept); ``callable``, ``phoneNumberStatus``
  and ``contactableStatus`` (per media, contact level and ``columnStatus``) replace the
  stored flags.
* Export: POST snapshots the list; the first GET of ``/export`` answers 404
  ``no.available.list.export.uri``, later ones ``{uri, exportTimestamp}`` (``download=true``:
  a 303 to that URI).  The URI is ``/api/v2/downloads/{id}`` on the API host, which answers
  as a real org does: a redirect to a signed URL on another host (see ``routes.downloads``).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from genesys_sandbox.clock import iso
from genesys_sandbox.errors import ApiError, bad_request, invalid_value, name_exists, not_found
from genesys_sandbox.export import export_csv
from genesys_sandbox.routes.common import (
    check_version,
    empty,
    name_filter,
    ok,
    opt_str,
    page,
    query_bool,
    query_list,
    read_json,
    req_list,
    req_object,
    req_str,
    sandbox_of,
)
from genesys_sandbox.store import Contact, ContactList, ExportJob, Store, new_id
from genesys_sandbox.views import contact_list_view, contact_view

__all__ = ["routes"]

MAX_COLUMNS = 50
MAX_COLUMN_NAME = 128
MAX_PHONE_COLUMNS = 10
MAX_CELL = 512
MAX_CONTACTS_PER_ADD = 1000
CONTACT_ID = re.compile(r"^[^/,\s][^/,]{0,127}$")
ECHOED = (
    "whatsAppColumns",
    "previewModeColumnName",
    "previewModeAcceptedValues",
    "attemptLimits",
    "automaticTimeZoneMapping",
    "zipCodeColumnName",
    "columnDataTypeSpecifications",
    "trimWhitespace",
    "retentionType",
    "retentionDays",
    "dateExpiration",
    "timeZone",
)
RETENTION_TYPES = ("Never", "Today", "RetentionDays")
CONTACT_RETENTION_TYPES = (*RETENTION_TYPES, "DateExpiration")


def _columns(body: dict[str, Any]) -> list[str]:
    names = body.get("columnNames")
    if not names:
        raise bad_request("The field 'columnNames' is required.", "columnNames")
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise invalid_value("'columnNames' must be a list of non-empty strings.", "columnNames")
    if len(names) > MAX_COLUMNS:
        raise invalid_value(
            f"A contact list can have at most {MAX_COLUMNS} columns; got {len(names)}.",
            "columnNames",
        )
    if any(len(n) > MAX_COLUMN_NAME for n in names):
        raise invalid_value(
            f"Column names can have at most {MAX_COLUMN_NAME} characters.", "columnNames"
        )
    if len({n.casefold() for n in names}) != len(names):
        raise invalid_value("Column names must be unique.", "columnNames")
    return list(names)


def _address_columns(
    body: dict[str, Any], key: str, zone_key: str, columns: list[str]
) -> list[dict[str, str]]:
    raw = body.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid_value(f"'{key}' must be a list.", key)
    specs: list[dict[str, str]] = []
    for i, item in enumerate(raw):
        spec = req_object(item, f"{key}[{i}]")
        name = req_str(spec, "columnName", f"{key}[{i}].columnName")
        if name not in columns:
            raise invalid_value(f"'{name}' in {key} is not a column of the list.", key)
        out = {"columnName": name}
        for field in ("type", zone_key, f"{zone_key}Name"):
            value = opt_str(spec, field, f"{key}[{i}].{field}")
            if value is not None:
                out[field] = value
        zone = out.get(zone_key)
        if zone is not None and zone not in columns:
            raise invalid_value(f"{zone_key} '{zone}' is not a column of the list.", key)
        specs.append(out)
    if len({s["columnName"] for s in specs}) != len(specs):
        raise invalid_value(f"A column appears twice in {key}.", key)
    return specs


def _parse_list(
    body: dict[str, Any],
) -> tuple[str, list[str], list[dict[str, str]], list[dict[str, str]], dict[str, Any]]:
    name = req_str(body, "name")
    columns = _columns(body)
    phones = _address_columns(body, "phoneColumns", "callableTimeColumn", columns)
    emails = _address_columns(body, "emailColumns", "contactableTimeColumn", columns)
    if not phones and not emails:
        raise bad_request("A contact list needs phoneColumns or emailColumns.", "phoneColumns")
    if len(phones) > MAX_PHONE_COLUMNS:
        raise invalid_value(f"At most {MAX_PHONE_COLUMNS} phone columns.", "phoneColumns")
    extra = {k: body[k] for k in ECHOED if body.get(k) is not None}
    if extra.get("automaticTimeZoneMapping") is True and any(
        "callableTimeColumn" in p for p in phones
    ):
        raise invalid_value(
            "callableTimeColumn is not allowed with automaticTimeZoneMapping.", "phoneColumns"
        )
    if "retentionType" in extra and extra["retentionType"] not in RETENTION_TYPES:
        raise invalid_value("Unknown retentionType.", "retentionType")
    return name, columns, phones, emails, extra


def _list_or_404(store: Store, list_id: str) -> ContactList:
    cl = store.contact_lists.get(list_id)
    if cl is None:
        raise not_found("contact list", list_id)
    return cl


async def create_list(request: Request) -> Response:
    body = req_object(await read_json(request))
    name, columns, phones, emails, extra = _parse_list(body)
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        if store.name_taken(store.contact_lists, name):
            raise name_exists("contact list", name)
        limit = store.config.max_lists_per_org
        if len(store.contact_lists) >= limit:
            raise ApiError(
                400,
                "max.contact.lists.per.org.exceeded",
                f"The organization already has the maximum of {limit} contact lists.",
            )
        cl = ContactList(new_id(), name, columns, phones, emails, extra, store.now, store.now)
        store.contact_lists[cl.id] = cl
        return ok(contact_list_view(cl))


async def list_lists(request: Request) -> Response:
    sandbox = sandbox_of(request)
    matches = name_filter(request)
    ids = set(query_list(request, "id"))
    with sandbox.lock:
        items = [
            cl
            for cl in sandbox.store.contact_lists.values()
            if matches(cl.name) and (not ids or cl.id in ids)
        ]
        return ok(page(request, items, contact_list_view))


async def delete_lists(request: Request) -> Response:
    ids = query_list(request, "id")
    if not ids:
        raise bad_request("Query parameter 'id' is required.", "id")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        for list_id in ids:
            _ensure_unused(sandbox.store, list_id)
        for list_id in ids:
            sandbox.store.contact_lists.pop(list_id, None)
    return empty(204)


def _ensure_unused(store: Store, list_id: str) -> None:
    users = [c.name for c in store.campaigns.values() if c.contact_list_id == list_id]
    if users:
        raise ApiError(
            409, "resource.in.use", f"The contact list is used by campaign(s): {', '.join(users)}."
        )


async def get_list(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        return ok(contact_list_view(_list_or_404(sandbox.store, request.path_params["listId"])))


async def put_list(request: Request) -> Response:
    body = req_object(await read_json(request))
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        cl = _list_or_404(store, request.path_params["listId"])
        check_version(body, cl.version, "contact list")
        name, columns, phones, emails, extra = _parse_list(body)
        if store.name_taken(store.contact_lists, name, except_id=cl.id):
            raise name_exists("contact list", name)
        if columns != cl.column_names:
            raise ApiError(
                400,
                "cannot.update.column.names",
                "An attempt was made to update a ContactList in an invalid way. "
                "Details: Column names are different",
            )
        if [p["columnName"] for p in phones] != cl.phone_column_names:
            raise ApiError(
                400,
                "cannot.update.phone.columns",
                "An attempt was made to update a ContactList in an invalid way. "
                "Details: Phone number columns are different",
            )
        cl.name, cl.phone_columns, cl.email_columns, cl.extra = name, phones, emails, extra
        cl.version += 1
        cl.date_modified = store.now
        return ok(contact_list_view(cl))


async def delete_list(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        cl = _list_or_404(sandbox.store, request.path_params["listId"])
        _ensure_unused(sandbox.store, cl.id)
        del sandbox.store.contact_lists[cl.id]
    return empty(200)


def _cell(value: Any, column: str) -> str:
    if type(value) is str and len(value) <= MAX_CELL:  # the usual cell, checked first
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    else:
        raise invalid_value(f"The value of column '{column}' must be a scalar.", f"data.{column}")
    if len(text) > MAX_CELL:
        raise invalid_value(
            f"The value of column '{column}' is longer than {MAX_CELL} characters.",
            f"data.{column}",
        )
    return text


def _contact_fields(
    cl: ContactList, raw: dict[str, Any], where: str, current: Contact | None = None
) -> dict[str, Any]:
    data = raw.get("data")
    if data is None and current is not None:
        data = dict(current.data)
    if data is None:
        raise bad_request(f"'{where}.data' is required.", f"{where}.data")
    if not isinstance(data, dict):
        raise invalid_value(f"'{where}.data' must be an object.", f"{where}.data")
    unknown = [k for k in data if k not in cl.column_names]
    if unknown:
        raise invalid_value(
            f"Contact data has columns the list does not have: {', '.join(map(str, unknown))}.",
            f"{where}.data",
        )
    fields: dict[str, Any] = {"data": {k: _cell(v, k) for k, v in data.items()}}
    if raw.get("callable") is not None:
        if not isinstance(raw["callable"], bool):
            raise invalid_value("'callable' must be a boolean.", f"{where}.callable")
        fields["callable"] = raw["callable"]
    status = raw.get("phoneNumberStatus")
    if status is not None:
        if not isinstance(status, dict) or not all(isinstance(v, dict) for v in status.values()):
            raise invalid_value("'phoneNumberStatus' must map columns to {callable}.", where)
        fields["phone_number_status"] = {
            k: v.get("callable") is not False for k, v in status.items()
        }
    contactable = raw.get("contactableStatus")
    if contactable is not None:
        if not isinstance(contactable, dict) or not all(
            isinstance(v, dict) for v in contactable.values()
        ):
            raise invalid_value("'contactableStatus' must map media to {contactable}.", where)
        unknown_media = sorted(set(contactable) - {"Voice", "SMS", "Email", "WhatsApp"})
        if unknown_media:
            raise invalid_value(f"Unknown media type '{unknown_media[0]}'.", where)
        fields["contactable_status"] = {
            media: {
                k: (dict(v) if k == "columnStatus" and isinstance(v, dict) else v)
                for k, v in status.items()
                if k in ("contactable", "columnStatus")
            }
            for media, status in contactable.items()
        }
    retention = {
        k: raw[k]
        for k in ("retentionType", "retentionDays", "dateExpiration")
        if raw.get(k) is not None
    }
    if "retentionType" in retention and retention["retentionType"] not in CONTACT_RETENTION_TYPES:
        raise invalid_value("Unknown retentionType.", f"{where}.retentionType")
    fields["retention"] = retention
    return fields


def _apply(contact: Contact, fields: dict[str, Any]) -> None:
    contact.data = fields["data"]
    if fields["retention"] or "keep_retention" not in fields:
        contact.retention = fields["retention"]
    if "callable" in fields:
        contact.callable = fields["callable"]
    if "phone_number_status" in fields:
        contact.phone_number_status = fields["phone_number_status"]
    if "contactable_status" in fields:
        contact.contactable_status = fields["contactable_status"]


async def add_contacts(request: Request) -> Response:
    body = req_list(await read_json(request))
    if not body:
        raise bad_request("At least one contact is required.")
    if len(body) > MAX_CONTACTS_PER_ADD:
        raise ApiError(
            413,
            "request.entity.too.large",
            f"At most {MAX_CONTACTS_PER_ADD} contacts can be added per request; got {len(body)}.",
        )
    priority = query_bool(request, "priority")
    clear = query_bool(request, "clearSystemData")
    keep_place = query_bool(request, "doNotQueue")
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        cl = _list_or_404(store, request.path_params["listId"])
        parsed: list[tuple[str | None, dict[str, Any]]] = []
        for i, item in enumerate(body):
            raw = req_object(item, f"contact [{i}]")
            list_id = raw.get("contactListId")
            if list_id is None:
                raise bad_request(f"'[{i}].contactListId' is required.", f"[{i}].contactListId")
            if list_id != cl.id:
                raise invalid_value(
                    f"'[{i}].contactListId' does not match the contact list.",
                    f"[{i}].contactListId",
                )
            contact_id = raw.get("id")
            if contact_id is not None and (
                not isinstance(contact_id, str) or not CONTACT_ID.match(contact_id)
            ):
                raise invalid_value(f"'[{i}].id' is not a valid contact id.", f"[{i}].id")
            parsed.append((contact_id, _contact_fields(cl, raw, f"[{i}]")))
        _check_size(store, cl, [cid for cid, _ in parsed])
        config = store.config
        users = [c for c in store.campaigns.values() if c.contact_list_id == cl.id]
        batch = store.next_queue_seq()
        written: list[Contact] = []
        for index, (contact_id, fields) in enumerate(parsed):
            queue_key = (0, -batch, index) if priority else (1, batch, index)
            existing = cl.contacts.get(contact_id) if contact_id else None
            if existing is None:
                contact = Contact(contact_id or new_id().replace("-", ""), {}, store.now, queue_key)
                contact.priority = priority
                contact.hold_until_recycle = (
                    keep_place and config.donotqueue_new == "wait_for_recycle"
                )
                cl.contacts[contact.id] = contact
            else:
                contact = existing
                if clear:
                    contact.clear_system_data()
                    for campaign in users:
                        campaign.handled.discard(contact.id)
                        campaign.skipped.pop(contact.id, None)
                if not keep_place:
                    contact.queue_key, contact.priority = queue_key, priority
                    contact.hold_until_recycle = False
                    if config.readd_requeued == "recontact":
                        for campaign in users:
                            campaign.handled.discard(contact.id)
                            campaign.skipped.pop(contact.id, None)
            _apply(contact, fields)
            written.append(contact)
        return ok([contact_view(cl, c) for c in written])


def _check_size(store: Store, cl: ContactList, ids: list[str | None]) -> None:
    """Refuse a whole add that would pass the per-list or per-org contact limit."""
    new = len({i for i in ids if i is not None and i not in cl.contacts})
    new += sum(1 for i in ids if i is None)
    if not new:
        return
    config = store.config
    if len(cl.contacts) + new > config.max_contacts_per_list:
        raise ApiError(
            400,
            "max.contacts.per.list.exceeded",
            f"Adding {new} contacts would pass the limit of {config.max_contacts_per_list} "
            f"contacts per contact list ({len(cl.contacts)} now).",
        )
    org_total = sum(len(c.contacts) for c in store.contact_lists.values())
    if org_total + new > config.max_contacts_per_org:
        raise ApiError(
            400,
            "max.contacts.per.org.exceeded",
            f"Adding {new} contacts would pass the limit of {config.max_contacts_per_org} "
            f"contacts per organization ({org_total} now).",
        )


def _in_use(store: Store, list_id: str) -> bool:
    """Whether ``delete_in_use=keep`` keeps the list's contacts (see ``in_use_scope``)."""
    if store.config.delete_in_use == "delete":
        return False
    running = store.config.in_use_scope == "running_campaign"
    return any(
        c.contact_list_id == list_id and (not running or c.status in ("on", "stopping"))
        for c in store.campaigns.values()
    )


async def delete_contacts(request: Request) -> Response:
    ids = query_list(request, "contactIds")
    if not ids:
        raise bad_request("Query parameter 'contactIds' is required.", "contactIds")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        cl = _list_or_404(sandbox.store, request.path_params["listId"])
        if not _in_use(sandbox.store, cl.id):
            for contact_id in ids:
                cl.contacts.pop(contact_id, None)
    return empty(200)


async def bulk_get(request: Request) -> Response:
    body = req_list(await read_json(request))
    if not all(isinstance(i, str) for i in body):
        raise invalid_value("The body must be a list of contact ids.")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        cl = _list_or_404(sandbox.store, request.path_params["listId"])
        return ok([contact_view(cl, cl.contacts[i]) for i in body if i in cl.contacts])


async def search_contacts(request: Request) -> Response:
    body = req_object(await read_json(request) or {})
    if body.get("criteria") or body.get("contactListFilterId"):
        raise invalid_value("The sandbox supports contact search without filters only.")
    size = body.get("pageSize", 25)
    number = body.get("pageNumber", 1)
    if not isinstance(size, int) or not 1 <= size <= 100:
        raise invalid_value("pageSize must be between 1 and 100.", "pageSize")
    if not isinstance(number, int) or number < 1:
        raise invalid_value("pageNumber must be 1 or more.", "pageNumber")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        cl = _list_or_404(sandbox.store, request.path_params["listId"])
        contacts = list(cl.contacts.values())
        chunk = contacts[(number - 1) * size : number * size]
        total = len(contacts)
        return ok(
            {
                "entities": [contact_view(cl, c) for c in chunk],
                "pageSize": size,
                "pageNumber": number,
                "total": total,
                "contactsCount": total,
                "pageCount": -(-total // size),
            }
        )


def _contact_or_404(cl: ContactList, contact_id: str) -> Contact:
    contact = cl.contacts.get(contact_id)
    if contact is None:
        raise not_found("contact", contact_id)
    return contact


async def get_contact(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        cl = _list_or_404(sandbox.store, request.path_params["listId"])
        return ok(contact_view(cl, _contact_or_404(cl, request.path_params["contactId"])))


async def put_contact(request: Request) -> Response:
    raw = req_object(await read_json(request))
    sandbox = sandbox_of(request)
    with sandbox.lock:
        cl = _list_or_404(sandbox.store, request.path_params["listId"])
        contact = _contact_or_404(cl, request.path_params["contactId"])
        if raw.get("id") not in (None, contact.id):
            raise invalid_value("The body id does not match the contact.", "id")
        if raw.get("contactListId") not in (None, cl.id):
            raise invalid_value("The body contactListId does not match.", "contactListId")
        fields = _contact_fields(cl, raw, "body", contact)
        fields["keep_retention"] = True
        _apply(contact, fields)
        return ok(contact_view(cl, contact))


async def delete_contact(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        cl = _list_or_404(sandbox.store, request.path_params["listId"])
        _contact_or_404(cl, request.path_params["contactId"])
        if not _in_use(sandbox.store, cl.id):
            del cl.contacts[request.path_params["contactId"]]
    return empty(200)


async def clear_list(request: Request) -> Response:
    await read_json(request)
    sandbox = sandbox_of(request)
    with sandbox.lock:
        _list_or_404(sandbox.store, request.path_params["listId"]).contacts.clear()
    return empty(204)


async def start_export(request: Request) -> Response:
    body = await read_json(request)
    wanted: set[str] | None = None
    if body is not None:
        body = req_object(body)
        if body.get("criteria") or body.get("contactListFilterId"):
            raise invalid_value("The sandbox exports whole lists or contactIds only.")
        if body.get("contactIds") is not None:
            wanted = set(req_list(body["contactIds"], "contactIds"))
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        cl = _list_or_404(store, request.path_params["listId"])
        contacts = [c for c in cl.contacts.values() if wanted is None or c.id in wanted]
        job = ExportJob(new_id(), export_csv(cl, contacts), store.now)
        cl.export = job
        store.downloads[job.download_id] = job.content
        return ok(
            {"id": cl.id, "name": cl.name, "selfUri": f"/api/v2/outbound/contactlists/{cl.id}"}
        )


async def get_export(request: Request) -> Response:
    download = query_bool(request, "download")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        cl = _list_or_404(sandbox.store, request.path_params["listId"])
        job = cl.export
        if job is not None:
            job.polls += 1
        if job is None or job.polls < 2:
            raise ApiError(
                404,
                "no.available.list.export.uri",
                f"There is no available download URI for contact list {cl.id}.",
            )
        uri = f"{str(request.base_url).rstrip('/')}/api/v2/downloads/{job.download_id}"
        if download:
            return RedirectResponse(uri, status_code=303)
        return ok({"uri": uri, "exportTimestamp": iso(job.created_at)})


BASE = "/api/v2/outbound/contactlists"
routes = [
    Route(BASE, create_list, methods=["POST"]),
    Route(BASE, list_lists, methods=["GET"]),
    Route(BASE, delete_lists, methods=["DELETE"]),
    Route(BASE + "/{listId}", get_list, methods=["GET"]),
    Route(BASE + "/{listId}", put_list, methods=["PUT"]),
    Route(BASE + "/{listId}", delete_list, methods=["DELETE"]),
    Route(BASE + "/{listId}/clear", clear_list, methods=["POST"]),
    Route(BASE + "/{listId}/contacts", add_contacts, methods=["POST"]),
    Route(BASE + "/{listId}/contacts", delete_contacts, methods=["DELETE"]),
    Route(BASE + "/{listId}/contacts/bulk", bulk_get, methods=["POST"]),
    Route(BASE + "/{listId}/contacts/search", search_contacts, methods=["POST"]),
    Route(BASE + "/{listId}/contacts/{contactId}", get_contact, methods=["GET"]),
    Route(BASE + "/{listId}/contacts/{contactId}", put_contact, methods=["PUT"]),
    Route(BASE + "/{listId}/contacts/{contactId}", delete_contact, methods=["DELETE"]),
    Route(BASE + "/{listId}/export", start_export, methods=["POST"]),
    Route(BASE + "/{listId}/export", get_export, methods=["GET"]),
]

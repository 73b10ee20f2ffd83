"""Contact-list export files, laid out as Genesys writes them.

Contract: UTF-8 with a byte-order mark, every field quoted, ``\\n`` line ends.  Columns:
``inin-outbound-id``, the list's ``columnNames`` in order, ``ContactCallable``,
``ContactableBySms``, ``ContactableByEmail`` (``1``/``0``), then per phone column X
``SmsLastAttempt-X`` (ISO-8601 of the last SMS attempt, empty if none) and ``SmsLastResult-X``
(the wrap-up code of the last attempt or skip code, see :mod:`genesys_sandbox.wrapups`).
Rows follow the list's insertion order.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from genesys_sandbox.store import Contact, ContactList

__all__ = ["export_csv", "export_header"]


def export_header(cl: ContactList) -> list[str]:
    header = ["inin-outbound-id", *cl.column_names]
    header += ["ContactCallable", "ContactableBySms", "ContactableByEmail"]
    for column in cl.phone_column_names:
        header += [f"SmsLastAttempt-{column}", f"SmsLastResult-{column}"]
    return header


def _flag(value: bool) -> str:
    return "1" if value else "0"


def export_csv(cl: ContactList, contacts: Iterable[Contact]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(export_header(cl))
    phones, emails = cl.phone_column_names, cl.email_column_names
    for contact in contacts:
        row = [contact.id, *(contact.data.get(c, "") for c in cl.column_names)]
        row += [
            _flag(contact.callable),
            _flag(any(contact.contactable("SMS", c) for c in phones)),
            _flag(any(contact.contactable("Email", c) for c in emails)),
        ]
        for column in phones:
            evaluation = contact.sms_evaluations.get(column) or {}
            row += [evaluation.get("timestamp", ""), evaluation.get("wrapupCodeId", "")]
        writer.writerow(row)
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")

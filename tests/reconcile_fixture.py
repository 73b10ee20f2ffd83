"""A hand-built reconciliation case: outbox messages, Genesys attempts, carrier records, a rate
card and a carrier invoice, covering every reconcile_message status. The expected answers in
the tests are derived from the comments here, not from the code's output."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

import polars as pl
from sqlalchemy.engine import Connection

from tasks.attempts import ATTEMPT_COLUMNS, load_attempts
from tasks.reconcile import load_rates
from tasks.warehouse import write_frame

D = date(2026, 11, 23)
D3 = D + timedelta(3)
X = "contact_list_export"
AS_OF = datetime(2026, 11, 27, 12, 0)  # the latest carrier load: sends before 11-24 12:00 final
US = 7_900  # micro-USD per segment to +1
UK = 45_000  # micro-USD per segment to +44


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def at(day: date, hhmm: str, seconds: int = 0) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, h, m, seconds)


# key, phone, attempt time, outcome class, segments, wave, source, carrier id on the attempt
ATTEMPTS = [
    ("m01", "+12125550101", at(D, "14:00"), "sent", 1, "W1", "contact_list_export", None),
    # the same attempt read a second time through a contact lookup: one attempt, not two
    ("m01", "+12125550101", at(D, "14:00"), "sent", 1, "W1", "contact_lookup", None),
    ("m02", "+12125550102", at(D, "14:05"), "sent", 1, "W1", "contact_list_export", None),
    ("m04", "+12125550104", at(D, "14:10"), "sent", 2, "W1", "contact_list_export", None),
    ("m05", "+12125550105", at(D, "14:20"), "sent", 1, "W1", "contact_list_export", None),
    ("m06", "+12125550106", at(D, "14:30"), "sent", 1, "W2", "contact_list_export", None),
    ("m07", "+12125550106", at(D, "14:31"), "unknown", 1, "W2", "contact_list_export", None),
    ("m08", "+12125550108", at(D, "16:00"), "sent", 1, "W2", "contact_list_export", None),
    ("m09", "+12125550108", at(D, "16:01"), "sent", 1, "W2", "contact_list_export", None),
    ("m10", "+12125550110", at(D3, "10:00"), "sent", 1, "W3", X, None),
    ("m11", "+12125550111", at(D3, "10:05"), "sent", 1, "W3", X, None),
    ("m12", "+12125550112", at(D, "14:40"), "sent", 1, "W2", "agentless", "SM12"),
    ("m13", "+12125550112", at(D, "17:59"), "sent", 1, "W2", "contact_list_export", None),
    ("m14", "+447700900014", at(D, "14:50"), "sent", 1, "W2", "contact_list_export", None),
    ("m15", "+12125550115", at(D, "14:55"), "sent", 1, "W2", "contact_list_export", None),
    ("m16", "+12125550116", at(D, "15:10"), "sent", 1, "W2", "contact_list_export", None),
    ("m17", "+12125550117", at(D, "15:20"), "skipped", 1, "W2", "contact_list_export", None),
    ("m18", "+12125550118", at(D, "15:30"), "failed", 1, "W2", "contact_list_export", None),
    ("m19", "+12125550119", at(D, "15:40"), "sent", 2, "W2", "contact_list_export", None),
    ("m21", "+447700900021", at(D, "14:00"), "sent", 2, "W4", "contact_list_export", None),
]

# carrier id, part, parts total, phone, sent at, status class, error, segments, price, final,
# body of (message key whose body it carries; None = the layout has no body)
CARRIER = [
    # C1: m01, 30 s after the attempt: matched, delivered
    ("SM01", 1, 1, "+12125550101", at(D, "14:00", 30), "delivered", None, 1, US, True, "m01"),
    # C3: nobody attempted it: billed_not_attempted
    ("SM03", 1, 1, "+12125550103", at(D, "15:00"), "delivered", None, 1, US, True, None),
    # C4: m04 has 2 segments, the carrier says 2 but charges for 1: price_mismatch
    ("SM04", 1, 1, "+12125550104", at(D, "14:11"), "delivered", None, 2, US, True, "m04"),
    # C5: m05 has 1 segment, the carrier counted 2 (and charges 2 correctly): segment_mismatch
    ("SM05", 1, 1, "+12125550105", at(D, "14:21"), "delivered", None, 2, 2 * US, True, "m05"),
    # C6: within the window of both m06 and m07 (same phone, no body): ambiguous_match x 3
    ("SM06", 1, 1, "+12125550106", at(D, "14:32"), "delivered", None, 1, US, True, None),
    # C8: within the window of m08 and m09, but carries m09's body: matched to m09 only;
    # m08 is attempted_not_billed
    ("SM08", 1, 1, "+12125550108", at(D, "16:02"), "delivered", None, 1, US, True, "m09"),
    # C11: m11, priced later (price null, status accepted), inside 72 h: pending_final
    ("SM11", 1, 1, "+12125550111", at(D3, "10:05", 20), "accepted", None, 1, None, False, "m11"),
    # C12: m12 carries SM12 (agentless providerMessageId): matched by id although sent at 18:00;
    # being taken by id, it is no candidate for m13 (17:59, same phone): m13 attempted_not_billed
    ("SM12", 1, 1, "+12125550112", at(D, "18:00"), "delivered", None, 1, US, True, None),
    # C14: m14 to the UK, undelivered (30003), charged the UK rate: matched, undelivered
    (
        "SM14",
        1,
        1,
        "+447700900014",
        at(D, "14:50", 5),
        "undelivered",
        "30003",
        1,
        UK,
        True,
        "m14",
    ),
    # C15: m15 failed at the carrier (21211), charged 0: matched, undelivered
    ("SM15", 1, 1, "+12125550115", at(D, "14:55", 5), "failed", "21211", 1, 0, True, "m15"),
    # C16: m16, delivered, price still provisional long after 72 h: price_mismatch
    ("SM16", 1, 1, "+12125550116", at(D, "15:10", 5), "delivered", None, 1, US, False, "m16"),
    # C19: m19 (2 segments) billed as two parts of one message: matched, 2 segments, 2 x US
    ("SM19", 1, 2, "+12125550119", at(D, "15:40", 5), "delivered", None, 1, US, True, "m19"),
    ("SM19", 2, 2, "+12125550119", at(D, "15:40", 6), "delivered", None, 1, US, True, "m19"),
]
# C20: a Vonage message in October nobody attempted, no Vonage invoice: billed_not_attempted
VONAGE = ("V20", "+447700900020", datetime(2026, 10, 15, 9, 0), 18_200, "EUR")
# Vonage reports one receipt per part, each with its own id and our client-ref: V21a + V21b
# (client-ref m21, a second apart) are one 2-part message matched to m21 (sender_reference);
# V22 to the same phone a minute later names another reference: not m21's, billed_not_attempted
VONAGE_PARTS = [
    ("V21a", "m21", "+447700900021", at(D, "14:00", 30), 9_100),
    ("V21b", "m21", "+447700900021", at(D, "14:00", 31), 9_100),
    ("V22", "other-ref", "+447700900021", at(D, "14:01", 0), 9_100),
]

EXPECTED_STATUS = {
    "matched": 7,  # m01, m09, m12, m14, m15, m19, m21
    "attempted_not_billed": 3,  # m02, m08, m13
    "billed_not_attempted": 3,  # SM03, V20, V22
    "price_mismatch": 2,  # m04, m16
    "segment_mismatch": 1,  # m05
    "pending_final": 2,  # m10, m11
    "ambiguous_match": 3,  # m06, m07, SM06
}
EXPECTED_DELIVERED = {"m01", "m04", "m05", "m09", "m12", "m16", "m19", "m21"}
EXPECTED_UNDELIVERED = {"m14", "m15"}
# November Twilio prices: final C1 C3 C4 C6 C8 C12 (6 x US) + C5 (2 US) + C14 (UK) + C15 (0)
# + C19 (2 US); provisional C16 (US); C11 unpriced
NOV_FINAL = 6 * US + 2 * US + UK + 0 + 2 * US
NOV_PROVISIONAL = US
NOV_INVOICE = NOV_FINAL + NOV_PROVISIONAL + US  # the invoice holds one unexplained US charge


def body(key: str) -> str:
    return f"Reminder {key}: your payment is due. Reply STOP to opt out."


def messages_frame() -> pl.DataFrame:
    keys = sorted({a[0] for a in ATTEMPTS})
    waves = {a[0]: a[5] for a in ATTEMPTS}
    phones = {a[0]: a[1] for a in ATTEMPTS}
    segs = {a[0]: a[4] for a in ATTEMPTS}
    t = datetime(2026, 11, 23, 13, 0)
    return pl.DataFrame(
        {
            "message_key": keys,
            "customer_id": [f"C{k[1:]}" for k in keys],
            "channel": ["sms"] * len(keys),
            "local_send_date": [D] * len(keys),
            "time_zone": ["America/New_York"] * len(keys),
            "candidate_zones": ["America/New_York"] * len(keys),
            "send_at_local": [t] * len(keys),
            "send_at_utc": [t] * len(keys),
            "window_start_utc": [t] * len(keys),
            "window_end_utc": [t + timedelta(hours=8)] * len(keys),
            "wave_id": [waves[k] for k in keys],
            "slot": [0] * len(keys),
            "wave_start_utc": [t] * len(keys),
            "to_address": [phones[k] for k in keys],
            "template": ["sms_due_today"] * len(keys),
            "body": [body(k) for k in keys],
            "segments": [segs[k] for k in keys],
            "invoice_ids": [f'["I{k[1:]}"]' for k in keys],
            "invoice_count": [1] * len(keys),
            "cadence_step": [0] * len(keys),
            "amount_total_minor": [1000] * len(keys),
            "currency": ["USD"] * len(keys),
            "link_token": [f"tok{k}" for k in keys],
            "state": ["sent"] * len(keys),
            "first_run_id": ["r0"] * len(keys),
            "last_run_id": ["r0"] * len(keys),
            "created_at_utc": [t] * len(keys),
            "updated_at_utc": [t] * len(keys),
            "genesys_contact_list_id": ["L1"] * len(keys),
            "genesys_campaign_id": ["CAMP1"] * len(keys),
        }
    )


def attempts_frame() -> pl.DataFrame:
    rows = []
    for key, phone, when, outcome, segments, _wave, source, carrier_id in ATTEMPTS:
        rows.append(
            {
                "message_key": key,
                "customer_id": f"C{key[1:]}",
                "invoice_ids": f'["I{key[1:]}"]',
                "channel": "sms",
                "source": source,
                "genesys_contact_list_id": None if source == "agentless" else "L1",
                "genesys_campaign_id": None if source == "agentless" else "CAMP1",
                "genesys_conversation_id": "CONV12" if source == "agentless" else None,
                "genesys_message_id": "MSG12" if source == "agentless" else None,
                "attempted_at_utc": when,
                "wrapup_code": {
                    "sent": "OUTBOUND-MESSAGE-SENT",
                    "unknown": "OUTBOUND-STUCK-CONTACT",
                    "failed": "OUTBOUND-MESSAGE-FAILED",
                    "skipped": "ININ-OUTBOUND-ON-DO-NOT-CALL-LIST",
                }[outcome],
                "outcome_class": outcome,
                "to_address": phone,
                "body_sha256": sha(body(key)),
                "segments": segments,
                "carrier_message_id": carrier_id,
                "attempt_day": when.date(),
                "load_id": "load-1",
                "loaded_at_utc": AS_OF,
            }
        )
    return pl.DataFrame(rows, schema=ATTEMPT_COLUMNS)


def carrier_frame() -> pl.DataFrame:
    rows = []
    for i, (sid, part, total, phone, sent, status, error, segs, price, final, body_of) in enumerate(
        CARRIER, start=1
    ):
        rows.append(
            {
                "carrier": "twilio",
                "carrier_message_id": sid,
                "part_index": part,
                "parts_total": total,
                "account_ref": "AC1",
                "from_address": "+13175550100",
                "to_address": phone,
                "direction": "outbound-api",
                "status": status,
                "status_class": status,
                "error_code": error,
                "num_segments": segs,
                "price_micros": price,
                "price_currency": "USD",
                "price_final": final,
                "sent_at_utc": sent,
                "updated_at_utc": sent + timedelta(minutes=10),
                "sender_reference": None,
                "body_sha256": sha(body(body_of)) if body_of else None,
                "source_file": "twilio-2026-11.jsonl",
                "source_row": i,
                "loaded_at_utc": AS_OF,
                "load_id": "carrier-load-1",
            }
        )
    sid, phone, sent, price, currency = VONAGE
    rows.append(
        rows[0]
        | {
            "carrier": "vonage",
            "carrier_message_id": sid,
            "part_index": 1,
            "parts_total": 1,
            "to_address": phone,
            "status": "delivered",
            "status_class": "delivered",
            "error_code": None,
            "num_segments": 1,
            "price_micros": price,
            "price_currency": currency,
            "price_final": True,
            "sent_at_utc": sent,
            "updated_at_utc": sent,
            "body_sha256": None,
            "source_file": "vonage-dlr.csv",
            "source_row": 1,
            "loaded_at_utc": datetime(2026, 10, 16),
        }
    )
    for i, (sid, ref, phone, sent, price) in enumerate(VONAGE_PARTS, start=2):
        rows.append(
            rows[-1]
            | {
                "carrier_message_id": sid,
                "to_address": phone,
                "sender_reference": ref,
                "price_micros": price,
                "sent_at_utc": sent,
                "updated_at_utc": sent,
                "source_row": i,
                "loaded_at_utc": AS_OF,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col("part_index", "parts_total", "num_segments", "source_row").cast(pl.Int32),
        pl.col("price_micros").cast(pl.Int64),
    )


def rates_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "carrier": ["twilio", "twilio", "twilio"],
            "destination_prefix": ["+1", "+44", "+1"],
            "price_micros_per_segment": [US, UK, 5_000],
            "currency": ["USD", "USD", "USD"],
            # an older, cheaper +1 rate that ended before November: never chosen
            "valid_from": [date(2026, 1, 1), date(2026, 1, 1), date(2025, 1, 1)],
            "valid_to": [None, None, date(2026, 1, 1)],
        },
        schema_overrides={"valid_to": pl.Date},
    )


def invoices_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "carrier": ["twilio", "twilio"],
            "period_start": [date(2026, 11, 1)] * 2,
            "period_end": [date(2026, 11, 30)] * 2,
            "category": ["sms-outbound", "sms-outbound-other"],
            "account_ref": ["AC1", "AC1"],
            "count": [14, 1],
            "count_unit": ["messages", "messages"],
            "amount_micros": [NOV_INVOICE - US, US],
            "currency": ["USD", "USD"],
            "source_file": ["usage-2026-11.json"] * 2,
            "source_row": [1, 2],
            "loaded_at_utc": [AS_OF] * 2,
            "load_id": ["invoice-load-1"] * 2,
        }
    )


def load_all(conn: Connection, *, attempts: pl.DataFrame | None = None) -> None:
    write_frame(conn, "messages", messages_frame())
    load_attempts(conn, attempts_frame() if attempts is None else attempts)
    write_frame(conn, "carrier_records", carrier_frame())
    load_rates(conn, rates_frame())
    write_frame(conn, "carrier_invoices", invoices_frame())

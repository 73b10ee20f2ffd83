"""The oracle's per-rule checks of one build-reminders run, and its report table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from tests.oracle.raw import RawTable, read_raw
from tests.oracle.rules import (
    consent_verdict,
    e164,
    find_pans,
    parse_instant,
    plain_amount,
    strict_date,
    zones_for,
)

__all__ = ["INPUTS", "RULES", "OracleSettings", "format_report", "oracle_report"]

INPUTS = ("customers", "invoices", "consent_events", "contact_history")
RULES = (
    "1_time",
    "2_consent",
    "3_payable",
    "4_frequency_24h",
    "5_max_attempts",
    "6_one_per_day",
    "7_cadence",
    "8_accounting",
    "9_no_pan",
    "10_phone",
)


@dataclass(frozen=True)
class OracleSettings:
    window: tuple[time, time] = (time(8, 0), time(16, 0))
    legal: tuple[time, time] = (time(8, 0), time(21, 0))
    steps: tuple[int, ...] = (-7, -1, 3, 7)
    max_attempts_per_invoice: int = 3
    frequency_cap_hours: int = 24
    channel_order: tuple[str, ...] = ("sms", "email")


@dataclass
class _Tally:
    checked: int = 0
    violations: int = 0
    examples: list[str] = field(default_factory=list)

    def check(self, ok: bool, example: str) -> None:
        self.checked += 1
        if not ok:
            self.violations += 1
            if len(self.examples) < 3:
                self.examples.append(example)


def _strip(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _customers(raw: RawTable, quarantined_rows: set[int]) -> dict[str, dict]:
    """customer_id -> the current version, with the reasons it must not be messaged."""
    versions: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for i, row in enumerate(raw.rows):
        cid = _strip(row.get("customer_id"))
        if cid is not None:
            versions[cid].append((i, row))
    out: dict[str, dict] = {}
    for cid, rows in versions.items():
        stamp = {i: parse_instant(r.get("updated_at")) for i, r in rows}
        dated = [(stamp[i], i, r) for i, r in rows if stamp[i] is not None]
        problems = []
        if dated:
            latest = max(d for d, _, _ in dated)
            top = [(i, r) for d, i, r in dated if d == latest]
        else:
            top = rows
        if len({tuple(sorted(r.items())) for _, r in top}) > 1:
            problems.append("versions_conflict")
        index, row = top[-1]
        if any(i in raw.undecodable for i, _ in rows):
            problems.append("encoding_invalid")
        if index in quarantined_rows:
            problems.append("row_quarantined")
        out[cid] = {"row": row, "index": index, "problems": problems}
    return out


def _invoices(raw: RawTable) -> dict[str, list[tuple[int, dict]]]:
    by_id: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for i, row in enumerate(raw.rows):
        iid = _strip(row.get("invoice_id"))
        if iid is not None:
            by_id[iid].append((i, row))
    return by_id


def _payable_problems(
    rows: list[tuple[int, dict]], customer_id: str, as_of: datetime, undecodable: frozenset[int]
) -> list[str]:
    problems = []
    owners = {_strip(r.get("customer_id")) for _, r in rows}
    if len(owners) > 1:
        problems.append("id_shared_between_customers")
    if customer_id not in owners:
        problems.append("not_this_customer")
    if any(i in undecodable for i, _ in rows):
        problems.append("encoding_invalid")
    stamps = [(parse_instant(r.get("updated_at")), r) for _, r in rows]
    dated = [(d, r) for d, r in stamps if d is not None]
    if dated:
        latest = max(d for d, _ in dated)
        top = [r for d, r in dated if d == latest]
    else:
        top = [r for _, r in rows]
    if len({tuple(sorted(r.items())) for r in top}) > 1:
        problems.append("versions_conflict")
    row = top[-1]
    status = (row.get("status") or "").strip().lower()
    if status not in {"open", "partially_paid"}:
        problems.append(f"status={status}")
    paid = row.get("paid_at")
    if _strip(paid) is not None:
        at = parse_instant(paid)
        if at is None or at <= as_of:
            problems.append("paid_at<=as_of")
    if plain_amount(row.get("amount_due")) is None:
        problems.append(f"amount={row.get('amount_due')!r}")
    if strict_date(row.get("due_date")) is None:
        problems.append(f"due_date={row.get('due_date')!r}")
    return problems


def oracle_report(
    sample_dir: Path,
    tables: Mapping[str, pl.DataFrame],
    run_id: str,
    as_of: datetime,
    settings: OracleSettings | None = None,
) -> pl.DataFrame:
    """Per rule: how many things were checked, how many violate it, up to 3 examples.

    ``tables`` holds the warehouse's runs, decisions, quarantine and messages tables.
    """
    cfg = settings or OracleSettings()
    as_of = _utc(as_of)
    raw = {name: read_raw(Path(sample_dir) / f"{name}.csv") for name in INPUTS}
    tally = {rule: _Tally() for rule in RULES}

    run = tables["runs"].filter(pl.col("run_id") == run_id).row(0, named=True)
    quarantine = tables["quarantine"].filter(pl.col("run_id") == run_id)
    row_q = quarantine.filter(pl.col("scope") == "row")
    decisions = tables["decisions"].filter(pl.col("run_id") == run_id)
    messages = tables["messages"].filter(
        (pl.col("last_run_id") == run_id) & (pl.col("state").is_in(["planned", "ready"]))
    )
    planned = decisions.filter(pl.col("status") == "planned")

    # 8. accounting
    acc = tally["8_accounting"]
    for name in INPUTS:
        mine = raw[name].count
        q_rows = row_q.filter(pl.col("source") == name)["source_row"]
        acc.check(run[f"{name}_in"] == mine, f"{name}: file has {mine}, runs {run[f'{name}_in']}")
        acc.check(
            run[f"{name}_quarantined"] == q_rows.len() == q_rows.n_unique(),
            f"{name}: runs quarantined {run[f'{name}_quarantined']}, rows {q_rows.len()}"
            f" ({q_rows.n_unique()} distinct)",
        )
        acc.check(
            q_rows.is_between(0, mine - 1).all(), f"{name}: quarantined source_row out of range"
        )
    n_inv = raw["invoices"].count
    acc.check(decisions.height == 2 * n_inv, f"decisions {decisions.height} != 2 x {n_inv}")
    per_row = decisions.group_by("invoice_row").len()
    acc.check(
        per_row.height == n_inv and per_row["len"].eq(2).all(),
        "not exactly two decisions per invoice row",
    )
    total = run["decisions_planned"] + run["decisions_excluded"] + run["decisions_quarantined"]
    acc.check(total == decisions.height, f"runs decisions {total} != {decisions.height}")
    keys = set(messages["message_key"])
    missing = set(planned["message_key"].drop_nulls()) - keys
    acc.check(not missing, f"{len(missing)} planned decisions without a message")

    # the oracle's view of the inputs
    quarantined_customers = set(row_q.filter(pl.col("source") == "customers")["source_row"])
    customers = _customers(raw["customers"], quarantined_customers)
    invoices = _invoices(raw["invoices"])
    consent: dict[str, list[tuple[str | None, str | None, str | None]]] = defaultdict(list)
    for row in raw["consent_events"].rows:
        consent[_strip(row.get("customer_id")) or ""].append(
            (row.get("channel"), row.get("status"), row.get("occurred_at"))
        )
    history: dict[str, list[tuple[datetime, str | None]]] = defaultdict(list)
    by_invoice: dict[str, int] = defaultdict(int)
    no_invoice: dict[str, int] = defaultdict(int)
    for row in raw["contact_history"].rows:
        cid = _strip(row.get("customer_id")) or ""
        at = parse_instant(row.get("attempted_at"))
        iid = _strip(row.get("invoice_id"))
        if at is not None:
            history[cid].append((at, iid))
        if iid is not None:
            by_invoice[iid] += 1
        else:
            no_invoice[cid] += 1
    phone_owners: dict[str, set[str]] = defaultdict(set)
    for cid, info in customers.items():
        if "row_quarantined" in info["problems"]:
            continue
        number = e164(info["row"].get("phone"), info["row"].get("country"))
        if number is not None:
            phone_owners[number].add(cid)

    sends: dict[str, list[datetime]] = defaultdict(list)
    for m in messages.iter_rows(named=True):
        sends[m["customer_id"]].append(_utc(m["send_at_utc"]))

    day_count = messages.group_by("customer_id", "local_send_date").len()
    for cid, day, n in day_count.iter_rows():
        tally["6_one_per_day"].check(n == 1, f"{cid} {day}: {n} messages")
    tally["6_one_per_day"].check(
        messages["message_key"].n_unique() == messages.height, "duplicate message keys"
    )

    for m in messages.iter_rows(named=True):
        cid, channel = m["customer_id"], m["channel"]
        send = _utc(m["send_at_utc"])
        info = customers.get(cid)
        label = f"{cid}/{channel}"
        # 1. time
        if info is None:
            tally["1_time"].check(False, f"{label}: unknown customer")
        else:
            row = info["row"]
            signal, zones = zones_for(
                row.get("preferred_timezone"),
                row.get("country"),
                row.get("postal_code"),
                row.get("phone"),
            )
            bad = []
            if not zones:
                bad.append("no zone")
            for zone in sorted(zones):
                local = send.astimezone(ZoneInfo(zone))
                t = local.time().replace(tzinfo=None)
                if not (cfg.window[0] <= t < cfg.window[1]) or not (
                    cfg.legal[0] <= t < cfg.legal[1]
                ):
                    bad.append(f"{zone} {t:%H:%M}")
                if local.date() != m["local_send_date"]:
                    bad.append(f"{zone} date {local.date()} != {m['local_send_date']}")
            tally["1_time"].check(
                not bad, f"{label} via {signal}: {bad[:3]} (pipeline: {m['candidate_zones'][:60]})"
            )
        # 2. consent
        verdict = consent_verdict(consent.get(cid, []), as_of)
        tally["2_consent"].check(
            verdict.get(channel, False),
            f"{label}: consent {verdict}",
        )
        # 3. payable, 5. attempts, 7. cadence
        ids = [i for i in (m["invoice_ids"] or "").split(",") if i]
        for iid in ids:
            problems = _payable_problems(
                invoices.get(iid, []), cid, as_of, raw["invoices"].undecodable
            )
            if iid not in invoices:
                problems.append("unknown invoice")
            tally["3_payable"].check(not problems, f"{label} {iid}: {problems}")
            attempts = by_invoice.get(iid, 0) + no_invoice.get(cid, 0)
            tally["5_max_attempts"].check(
                attempts < cfg.max_attempts_per_invoice, f"{label} {iid}: {attempts} attempts"
            )
            versions = invoices.get(iid, [])
            due = strict_date(versions[-1][1].get("due_date")) if versions else None
            step = (m["local_send_date"] - due).days if due else None
            tally["7_cadence"].check(
                step in cfg.steps, f"{label} {iid}: send {m['local_send_date']} due {due}"
            )
        if not ids:
            tally["3_payable"].check(False, f"{label}: no invoice ids")
        # 4. frequency cap
        cap = timedelta(hours=cfg.frequency_cap_hours)
        recent = [a for a, _ in history.get(cid, []) if send - cap < a <= send]
        others = [s for s in sends[cid] if s != send and abs(s - send) < cap]
        tally["4_frequency_24h"].check(
            not recent and not others, f"{label}: history {recent[:2]}, other sends {others[:2]}"
        )
        # 9. PAN
        pans = find_pans(m["body"]) + find_pans(m.get("subject"))
        tally["9_no_pan"].check(not pans, f"{label}: PAN {pans[:1]}")
        # 10. phone and customer validity
        problems = list(info["problems"]) if info else ["unknown customer"]
        if channel == "sms":
            to = m["to_address"] or ""
            if not (to.startswith("+") and to[1:].isdigit() and 8 <= len(to) <= 16):
                problems.append(f"not E.164: {to!r}")
            owners = phone_owners.get(to, set())
            if len(owners) > 1:
                problems.append(f"shared by {len(owners)} customers")
        tally["10_phone"].check(not problems, f"{label}: {problems}")

    return pl.DataFrame(
        {
            "rule": list(RULES),
            "checked": [tally[r].checked for r in RULES],
            "violations": [tally[r].violations for r in RULES],
            "examples": [" | ".join(tally[r].examples) for r in RULES],
        }
    )


def format_report(report: pl.DataFrame, title: str = "") -> str:
    """A plain-text table a human can read (and paste)."""
    lines = [title] if title else []
    lines.append(f"{'rule':<18} {'checked':>8} {'violations':>10}  example")
    for rule, checked, violations, examples in report.iter_rows():
        example = examples.split(" | ")[0][:150] if violations else ""
        lines.append(f"{rule:<18} {checked:>8} {violations:>10}  {example}")
    return "\n".join(lines)

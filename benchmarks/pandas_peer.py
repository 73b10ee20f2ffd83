"""A vectorised pandas peer of build-reminders' planning (issue 11 item 5), for the scale benchmark.

``plan(folder, as_of, phones)`` reads the four canonical CSVs of ``folder`` with pandas and
computes the planned set of a first run (empty outbox): one row per planned customer x invoice x
channel with its UTC send time. Its own code implements the row rules: trimming, versions
(latest ``updated_at`` wins, equal-timestamp conflicts, duplicates), the row-level quarantine
rules that decide whether a customer / invoice / consent / history row is accepted, the
e-mail check, the consent ledger, eligibility (payable, paid_at, balance, cadence step,
consent, phone / e-mail, shared lines, max attempts, frequency cap), the channel choice, the
render guards (PCI digit runs, SMS segments, Genesys cell size) and the stagger (even spread
per channel x zone x local date in message-key order).

What it does *not* re-implement, and takes as reference lookups instead (scalar functions,
one call per distinct value, exactly as the pipeline calls them):

- phone parsing: ``phones`` is the parsed phone table (raw, region -> e164, zones, line, ...),
  "phones pre-normalised" like the bare-polars bound;
- the time-zone resolution of one (preferred zone, country, postal code, phone zones)
  (``tasks.zones``), the state / province of a postal code and the holiday calendar of a
  country (``tasks.send_calendar``), the DST-safe local window of a zone set and date
  (``tasks.stagger.plan_allowed_send_date``), the Luhn scan of one text (``tasks.pci``) and the
  GSM-7 alphabet (``tasks.sms``).

No polars in here except to hand a distinct-values frame to ``build_calendar``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

STEPS = (-7, -1, 3, 7)
PAYABLE = ("open", "partially_paid")
KNOWN_STATUSES = {"open", "partially_paid", "paid", "void", "disputed", "written_off", "refunded"}
MAX_FIELD = 1000
MAX_AMOUNT = Decimal(1_000_000)
MAX_ATTEMPTS = 3
CAP = timedelta(hours=24)
CHANNEL_ORDER = {"sms": 0, "email": 1}
INT64_MAX = 2**63 - 1

CANONICAL = {
    "customers": (
        "customer_id",
        "full_name",
        "first_name",
        "last_name",
        "phone",
        "email",
        "country",
        "postal_code",
        "preferred_timezone",
        "locale",
        "preferred_channel",
        "updated_at",
    ),
    "invoices": (
        "invoice_id",
        "customer_id",
        "amount_due",
        "currency",
        "due_date",
        "status",
        "paid_at",
        "updated_at",
    ),
    "consent_events": ("customer_id", "channel", "status", "source", "occurred_at"),
    "contact_history": ("customer_id", "channel", "attempted_at", "outcome", "invoice_id"),
}

_SIMPLE_EMAIL = re.compile(
    r"[a-z0-9]+(?:[._%+-][a-z0-9]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_PLAIN = r"^[+-]?[0-9]+(?:\.[0-9]+)?$"
_ASCII_SPACE = " \t\n\r\x0b\x0c"


def read(folder: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(
        folder / f"{name}.csv",
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        encoding="utf-8",
        encoding_errors="replace",
    )
    for column in CANONICAL[name]:
        if column not in frame.columns:
            frame[column] = pd.Series(pd.NA, index=frame.index, dtype=object)
    frame = frame.astype(object).where(frame.notna(), None)
    return frame


def strip(s: pd.Series) -> pd.Series:
    out = s.str.strip()
    return out.where(out != "", None)


def parse_utc(s: pd.Series) -> pd.Series:
    """ISO-8601 text to naive UTC (NaT when unreadable)."""
    text = s.str.strip()
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    return parsed.dt.tz_localize(None).astype("datetime64[us]")


def shared_bad(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    """encoding_invalid (a replacement character from undecodable bytes) or field_too_long."""
    bad = pd.Series(False, index=frame.index)
    for c in columns:
        col = frame[c]
        lengths = col.str.len()
        bad |= (lengths > MAX_FIELD).fillna(False).astype(bool)
        bad |= col.str.contains("\ufffd", regex=False).fillna(False).astype(bool)
    return bad


def versions(frame: pd.DataFrame, key: str, ts: str, content: list[str], undated_ties: bool):
    """(conflict, duplicate) flags per row (see tasks.normalize's module docstring)."""
    conflict = pd.Series(False, index=frame.index)
    duplicate = pd.Series(False, index=frame.index)
    counts = frame[key].map(frame[key].value_counts())
    many = frame[frame[key].notna() & (counts > 1)].copy()
    if many.empty:
        return conflict, duplicate
    latest = many.groupby(key)[ts].transform("max")
    if undated_ties:
        top = (many[ts] == latest) | many[ts].isna() | latest.isna()
    else:
        top = latest.isna() | (many[ts] == latest)
    many["_top"] = top
    parts = [many[c].astype(object).where(many[c].notna(), "\x00").str.strip() for c in content]
    many["_content"] = parts[0].str.cat(parts[1:], sep="\x1f")
    distinct = many[many["_top"]].groupby(key)["_content"].nunique()
    many["_conflict"] = many[key].map(distinct).fillna(0) > 1
    many["_a"] = ~many["_top"]
    many["_b"] = many[ts].isna()
    many = many.sort_values([key, "_a", "_b", "source_row"])
    many["_rank"] = many.groupby(key).cumcount()
    conflict.loc[many.index] = many["_conflict"]
    duplicate.loc[many.index] = many["_rank"] > 0
    return conflict, duplicate


def normalize_email(raw: str | None) -> str | None:
    from email_validator import EmailNotValidError, validate_email

    if raw is None or not raw.strip():
        return None
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def emails(s: pd.Series) -> pd.Series:
    """Vectorised fast path for plain ASCII addresses, email-validator for the rest."""
    from email_validator import SPECIAL_USE_DOMAIN_NAMES

    address = s.str.strip().str.lower()
    local = address.str.partition("@")[0]
    domain = address.str.partition("@")[2]
    tld = address.str.rsplit(".", n=1).str[-1]
    fast = (
        address.str.fullmatch(_SIMPLE_EMAIL.pattern).fillna(False).astype(bool)
        & (address.str.len() <= 254)
        & (local.str.len() <= 64)
        & ~domain.str.contains("--", regex=False).fillna(False).astype(bool)
        & ~tld.isin(list(SPECIAL_USE_DOMAIN_NAMES))
    )
    out = address.where(fast, None)
    rest = s[~fast & s.notna()]
    if len(rest):
        answers = {v: normalize_email(v) for v in rest.unique()}
        out.loc[rest.index] = rest.map(answers)
    return out


def customers_accepted(raw: pd.DataFrame) -> pd.DataFrame:
    from tasks.zones import _zone_tab

    frame = raw.copy()
    frame["source_row"] = np.arange(len(frame))
    frame["customer_id"] = strip(frame["customer_id"])
    frame["_country"] = strip(frame["country"].str.strip().str.upper())
    frame["_updated_at"] = parse_utc(frame["updated_at"])
    content = [c for c in CANONICAL["customers"] if c != "updated_at"]
    conflict, duplicate = versions(frame, "customer_id", "_updated_at", content, False)
    bad = (
        shared_bad(raw, CANONICAL["customers"])
        | frame["customer_id"].isna()
        | conflict
        | duplicate
        | frame["_country"].isna()
        | ~frame["_country"].isin(list(_zone_tab()))
    )
    return frame[~bad]


def contact_fields(cust: pd.DataFrame, phones: pd.DataFrame) -> pd.DataFrame:
    from tasks.send_calendar import postal_subdivision
    from tasks.zones import resolve_zones

    table = phones.rename(columns={"raw": "phone", "region": "_country"})
    table = table[["phone", "_country", "e164", "zones", "calling_code", "line"]].copy()
    table["_zkey"] = table["zones"].map(lambda z: "|".join(z) if z is not None else "")
    frame = cust.merge(table.drop(columns="zones"), on=["phone", "_country"], how="left")
    frame["email_out"] = emails(frame["email"])
    keys = ["preferred_timezone", "_country", "postal_code", "_zkey", "calling_code"]
    distinct = frame[keys].drop_duplicates()

    def resolve(row: tuple) -> str:
        preferred, country, postal, zkey, code = row
        by_phone = tuple(zkey.split("|")) if isinstance(zkey, str) and zkey else ()
        code = None if code is None or pd.isna(code) else int(code)
        zones, _ = resolve_zones(preferred, country, postal, by_phone, code)
        return "|".join(zones)

    distinct["time_zones"] = [resolve(r) for r in distinct.itertuples(index=False, name=None)]
    frame = frame.merge(distinct, on=keys, how="left")
    pairs = frame[["_country", "postal_code"]].drop_duplicates()
    pairs["subdivision"] = [
        postal_subdivision(c, p) for c, p in pairs.itertuples(index=False, name=None)
    ]
    frame = frame.merge(pairs, on=["_country", "postal_code"], how="left")
    name = strip(frame["full_name"])
    joined = (
        frame["first_name"].str.strip().fillna("") + " " + frame["last_name"].str.strip().fillna("")
    ).str.strip()
    both = frame["first_name"].notna() & frame["last_name"].notna()
    alone = frame["first_name"].str.strip().fillna("") + frame["last_name"].str.strip().fillna("")
    joined = joined.where(both, alone)
    name = name.where(name.notna(), joined.where(joined != "", None))
    frame["full_name_out"] = name
    first = strip(frame["first_name"])
    frame["first_name_out"] = first.where(first.notna(), name.str.split(" ").str[0])
    # read through the consent channel table ("E-mail", "Text"), any other value kept as its key
    from tasks.consent import CHANNEL_KEYS

    pkey = strip(frame["preferred_channel"]).str.lower().str.replace(r"[\s\-_]+", "", regex=True)
    preferred = pkey.map(CHANNEL_KEYS)
    preferred = preferred.where(preferred.notna(), pkey)
    frame["preferred_channel_out"] = preferred.where(preferred != "", None)
    frame["locale_out"] = strip(frame["locale"])
    return frame


def invoices_accepted(raw: pd.DataFrame, accepted_ids: set[str]) -> pd.DataFrame:
    from babel.numbers import get_currency_precision, list_currencies

    frame = raw.copy()
    frame["source_row"] = np.arange(len(frame))
    frame["invoice_id"] = strip(frame["invoice_id"])
    frame["customer_id"] = strip(frame["customer_id"])
    frame["_currency"] = frame["currency"].str.strip().str.upper()
    frame["_status"] = frame["status"].str.strip().str.lower()
    frame["_updated_at"] = parse_utc(frame["updated_at"])
    frame["_paid_at"] = parse_utc(frame["paid_at"])
    paid_text = strip(frame["paid_at"])
    due_text = frame["due_date"].str.strip()
    due_ok = due_text.str.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").fillna(False).astype(bool)
    frame["_due"] = pd.to_datetime(due_text.where(due_ok), format="%Y-%m-%d", errors="coerce")
    currency_ok = frame["_currency"].isin(list(list_currencies()))
    # Amounts: plain decimals only; minor units exact, by string arithmetic.
    text = frame["amount_due"].str.strip(_ASCII_SPACE)
    plain = text.str.fullmatch(_PLAIN).fillna(False).astype(bool)
    currency = frame["_currency"].where(currency_ok)
    digits = currency.map({c: get_currency_precision(c) for c in currency.dropna().unique()})
    digits = digits.fillna(2).astype(int)
    negative = plain & text.str.startswith("-")
    body = text.where(plain, "0").str.lstrip("+-")
    whole = body.str.partition(".")[0].str.lstrip("0")
    frac = body.str.partition(".")[2]
    frac_kept = [f[:d].ljust(d, "0") for f, d in zip(frac, digits, strict=True)]
    frac_rest = [f[d:] for f, d in zip(frac, digits, strict=True)]
    precise = pd.Series([r.strip("0") == "" for r in frac_rest], index=frame.index)
    minor_text = whole + pd.Series(frac_kept, index=frame.index)
    max_minor_text = [str(int(MAX_AMOUNT.scaleb(d))) for d in digits]
    too_large = pd.Series(
        [
            len(m.lstrip("0")) > 18
            or int(m or "0") > min(int(x), INT64_MAX)
            or (int(m or "0") == int(x) and r.strip("0") != "")
            for m, x, r in zip(minor_text, max_minor_text, frac_rest, strict=True)
        ],
        index=frame.index,
    )
    zero = minor_text.str.lstrip("0") == ""
    amount_ok = plain & ~(negative & ~(zero & precise)) & precise & ~too_large
    frame["_positive"] = ~zero  # "-0" is plain and not negative (Decimal("-0") < 0 is False)
    owners = (
        frame[frame["invoice_id"].notna() & frame["customer_id"].notna()]
        .groupby("invoice_id")["customer_id"]
        .nunique()
    )
    frame["_owners"] = frame["invoice_id"].map(owners).fillna(0)
    content = [c for c in CANONICAL["invoices"] if c != "updated_at"]
    conflict, duplicate = versions(frame, "invoice_id", "_updated_at", content, True)
    bad = (
        shared_bad(raw, CANONICAL["invoices"])
        | frame["invoice_id"].isna()
        | (frame["_owners"] > 1)
        | conflict
        | duplicate
        | ~frame["customer_id"].isin(accepted_ids)
        | ~currency_ok
        | ~amount_ok
        | frame["_due"].isna()
        | ~frame["_status"].isin(KNOWN_STATUSES)
        | (paid_text.notna() & frame["_paid_at"].isna())
    )
    out = frame[~bad].copy()
    out["_minor"] = [int(m or "0") for m in minor_text[~bad]]
    return out


def consent_ledger(raw: pd.DataFrame, accepted_ids: set[str], as_of: datetime) -> pd.DataFrame:
    from tasks.consent import CHANNEL_KEYS, STATUS_KEYS

    frame = raw.copy()
    frame["customer_id"] = frame["customer_id"].str.strip()
    key = frame["channel"].str.strip().str.lower().str.replace(r"[\s\-_]+", "", regex=True)
    channel = key.map(CHANNEL_KEYS)
    channel = channel.where(channel.notna(), key)
    frame["_channel"] = channel.where(channel != "", None)
    skey = frame["status"].str.lower().str.replace(r"[^\w]+|_+", "", regex=True)
    frame["_status"] = skey.map(STATUS_KEYS)
    frame["_at"] = parse_utc(frame["occurred_at"])
    early = shared_bad(raw, CANONICAL["consent_events"]) | (
        frame["customer_id"].isna() | ~frame["customer_id"].isin(accepted_ids)
    )
    unreadable = ~early & (frame["_channel"].isna() | frame["_status"].isna() | frame["_at"].isna())
    unclear = set(frame.loc[unreadable, "customer_id"].dropna())
    events = frame[~early & ~unreadable]
    future = events["_at"] > pd.Timestamp(as_of)
    events = events[~((events["_status"] == "opt_in") & future)]
    expanded = events[["customer_id", "_channel", "_status", "_at"]].copy()
    expanded["_channel"] = expanded["_channel"].map(
        lambda c: ["sms", "email"] if c == "all" else [c]
    )
    expanded = expanded.explode("_channel")
    expanded["_out"] = expanded["_status"] == "opt_out"
    latest = (
        expanded.sort_values(["customer_id", "_channel", "_at", "_out"], kind="stable")
        .groupby(["customer_id", "_channel"], sort=False)
        .tail(1)
    )
    state = pd.DataFrame(index=pd.Index(sorted(set(latest["customer_id"]) | unclear)))
    state["global_out"] = latest.groupby("customer_id")["_out"].any()
    sms = latest[latest["_channel"] == "sms"].set_index("customer_id")["_status"]
    state["sms_in"] = sms == "opt_in"
    state["global_out"] = state["global_out"].fillna(False).astype(bool)
    state["sms_in"] = state["sms_in"].fillna(False).astype(bool)
    state["unclear"] = state.index.isin(list(unclear))
    state.index.name = "customer_id"
    return state.reset_index()


def history_rows(raw: pd.DataFrame, accepted_ids: set[str]) -> pd.DataFrame:
    frame = raw.copy()
    frame["customer_id"] = frame["customer_id"].str.strip()
    frame["_invoice_id"] = strip(frame["invoice_id"])
    frame["_at"] = parse_utc(frame["attempted_at"])
    bad = (
        shared_bad(raw, CANONICAL["contact_history"])
        | frame["customer_id"].isna()
        | ~frame["customer_id"].isin(accepted_ids)
        | frame["_at"].isna()
    )
    return frame[~bad]


def _none(value: object) -> object:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def send_dates(cust: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    import polars as pl

    from tasks.send_calendar import blocked_days, build_calendar, days_for
    from tasks.settings import WindowSettings
    from tasks.stagger import plan_allowed_send_date, zone_label

    groups = cust[["time_zones", "_country", "subdivision"]].drop_duplicates()
    first, last = as_of.date() - timedelta(days=2), as_of.date() + timedelta(days=4 + 14)
    pairs = pl.DataFrame(
        {
            "country": [_none(v) for v in groups["_country"]],
            "subdivision": [_none(v) for v in groups["subdivision"]],
        },
        schema={"country": pl.String, "subdivision": pl.String},
    )
    calendar = build_calendar(
        pairs.unique(), years=sorted({first.year, last.year}), span=(first, last)
    )
    blocked = blocked_days(calendar)
    window = WindowSettings()
    rows = []
    for zkey, country, sub in groups.itertuples(index=False, name=None):
        country, sub = _none(country), _none(sub)
        zones = zkey.split("|") if zkey else []
        found = None
        if zones:
            found = plan_allowed_send_date(
                zones, as_of, window, days_for(blocked, country, sub), horizon_days=14
            )
        if found:
            rows.append((zkey, country, sub, zone_label(zones), found[0], found[1], found[2]))
        else:
            rows.append((zkey, country, sub, None, None, None, None))
    return pd.DataFrame(
        rows,
        columns=[
            "time_zones",
            "_country",
            "subdivision",
            "time_zone",
            "local_date",
            "start",
            "end",
        ],
    )


def message_keys(customer: pd.Series, channel: pd.Series, day: pd.Series) -> list[str]:
    return [
        hashlib.sha256(f"{c}\x1f{ch}\x1f{d}".encode()).hexdigest()[:32]
        for c, ch, d in zip(customer, channel, day, strict=True)
    ]


def render_blocked(messages: pd.DataFrame) -> pd.Series:
    """True for messages the render guards stop (PCI digit run, SMS too long / too big cell)."""
    from babel.dates import format_date
    from babel.numbers import format_currency, get_currency_precision

    from tasks.pci import contains_pan
    from tasks.render import _locale, load_templates
    from tasks.sms import GSM7_BASIC, GSM7_EXTENSION

    name = messages["first_name_out"].where(
        messages["first_name_out"].notna() & (messages["first_name_out"] != ""),
        messages["full_name_out"],
    )
    name = name.fillna("").str.replace(r"[\x00-\x1f\x7f]", " ", regex=True).str.strip()
    name = name.where(name != "", "customer")
    gsm = "".join(sorted(GSM7_BASIC | GSM7_EXTENSION))
    plain_gsm = name.str.fullmatch("[" + re.escape(gsm) + "]*").astype(bool)
    digits = name.str.count(r"\d")
    suspect = (digits >= 13) | ~name.str.isascii()
    check = suspect | (messages["channel"].eq("sms") & (~plain_gsm | (name.str.len() > 250)))
    check |= name.str.len() > 400
    blocked = pd.Series(False, index=messages.index)
    templates = load_templates().templates
    for i in messages.index[check]:
        row = messages.loc[i]
        loc = _locale(row["locale_out"], "en_US")
        amount = " + ".join(
            format_currency(Decimal(m).scaleb(-get_currency_precision(c)), c, locale=loc)
            for c, m in sorted(row["amounts"].items())
        )
        values = {
            "CustomerName": name[i],
            "CompanyName": "Example Utilities",
            "SupportPhone": "+1 800 555 0100",
            "Amount": amount,
            "DueDate": format_date(row["due_min"], format="MM/dd/yyyy", locale=loc),
            "PaymentLink": "https://pay.example.com/r/" + "x" * 22,
            "InvoiceCount": str(row["count"]),
        }
        kind = "upcoming" if row["step"] < 0 else ("due_today" if row["step"] == 0 else "overdue")
        subject, body = templates[f"{row['channel']}_{kind}"].fill(values)
        if row["channel"] == "sms":
            ext = sum(ch in GSM7_EXTENSION for ch in body)
            if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body):
                units, single, multi = len(body) + ext, 160, 153
            else:
                units, single, multi = len(body) + sum(ord(ch) > 0xFFFF for ch in body), 70, 67
            segments = 1 if units <= single else -(-units // multi)
            if segments > 3 or len(body) > 765 or len(body) > 512:
                blocked[i] = True
                continue
        elif max(len(v) for v in values.values()) > 512:
            blocked[i] = True
            continue
        if contains_pan(body) or (subject is not None and contains_pan(subject)):
            blocked[i] = True
    return blocked


def plan(folder: Path, as_of: datetime, phones: pd.DataFrame) -> pd.DataFrame:
    """The planned set (customer_id, invoice_id, channel, send_at_utc) of a first run."""
    raw = {n: read(folder, n) for n in CANONICAL}
    cust = contact_fields(customers_accepted(raw["customers"]), phones)
    ids = set(cust["customer_id"])
    inv = invoices_accepted(raw["invoices"], ids)
    consent = consent_ledger(raw["consent_events"], ids, as_of)
    history = history_rows(raw["contact_history"], ids)

    dates = send_dates(cust, as_of)
    cust = cust.merge(dates, on=["time_zones", "_country", "subdivision"], how="left")
    lines = cust[cust["line"].notna()].groupby("line")["customer_id"].nunique()
    cust["_owners"] = cust["e164"].map(lines).fillna(0)

    frame = inv[
        ["invoice_id", "customer_id", "_status", "_paid_at", "_positive", "_due", "_minor"]
    ].merge(
        cust[
            [
                "customer_id",
                "e164",
                "email_out",
                "_owners",
                "time_zone",
                "time_zones",
                "local_date",
                "start",
                "end",
                "preferred_channel_out",
                "first_name_out",
                "full_name_out",
                "locale_out",
            ]
        ],
        on="customer_id",
        how="left",
    )
    frame = frame.merge(consent, on="customer_id", how="left")
    frame["_currency"] = inv["_currency"].to_numpy()
    local = pd.to_datetime(frame["local_date"])
    frame["step"] = (local - frame["_due"]).dt.days
    past = history[history["_at"] <= pd.Timestamp(as_of)]
    per_invoice = (
        past[past["_invoice_id"].notna()].groupby(["customer_id", "_invoice_id"]).size()
    ).rename("_hi")
    per_customer = past[past["_invoice_id"].isna()].groupby("customer_id").size().rename("_hc")
    frame = frame.merge(
        per_invoice.reset_index().rename(columns={"_invoice_id": "invoice_id"}),
        on=["customer_id", "invoice_id"],
        how="left",
    ).merge(per_customer.reset_index(), on="customer_id", how="left")
    attempts = frame["_hi"].fillna(0) + frame["_hc"].fillna(0)
    last_contact = history.groupby("customer_id")["_at"].max()
    start = pd.to_datetime(frame["start"])
    recent = frame["customer_id"].map(last_contact) > (start - CAP)

    base_ok = (
        frame["_status"].isin(PAYABLE)
        & ~(frame["_paid_at"].notna() & (frame["_paid_at"] <= pd.Timestamp(as_of)))
        & frame["_positive"]
        & frame["time_zone"].notna()
        & frame["step"].isin(STEPS)
        & ~frame["unclear"].fillna(False).astype(bool)
        & ~frame["global_out"].fillna(False).astype(bool)
        & (attempts < MAX_ATTEMPTS)
        & ~recent.fillna(False).astype(bool)
    )
    sms_ok = (
        base_ok
        & frame["sms_in"].fillna(False).astype(bool)
        & frame["e164"].notna()
        & ~(frame["_owners"] > 1)
    )
    email_ok = base_ok & frame["email_out"].notna()
    both = pd.concat(
        [frame[sms_ok].assign(channel="sms"), frame[email_ok].assign(channel="email")],
        ignore_index=True,
    )
    rank = (
        both["channel"]
        .map(CHANNEL_ORDER)
        .where(both["channel"] != both["preferred_channel_out"], -1)
    )
    chosen = both.assign(_rank=rank).sort_values(["customer_id", "_rank"], kind="stable")
    chosen = chosen.groupby("customer_id")["channel"].first()
    planned = both[both["channel"] == both["customer_id"].map(chosen)].copy()
    planned["message_key"] = message_keys(
        planned["customer_id"], planned["channel"], planned["local_date"].astype(str)
    )

    grouped = planned.groupby("message_key", sort=False)
    messages = grouped.agg(
        customer_id=("customer_id", "first"),
        channel=("channel", "first"),
        step=("step", "max"),
        due_min=("_due", "min"),
        count=("invoice_id", "size"),
        time_zone=("time_zone", "first"),
        local_date=("local_date", "first"),
        start=("start", "first"),
        end=("end", "first"),
        first_name_out=("first_name_out", "first"),
        full_name_out=("full_name_out", "first"),
        locale_out=("locale_out", "first"),
    )
    sums = planned.groupby(["message_key", "_currency"])["_minor"].sum()
    amounts: dict[str, dict[str, int]] = {}
    for (key, cur), minor in sums.items():
        amounts.setdefault(key, {})[cur] = int(minor)
    messages["amounts"] = messages.index.map(amounts)
    messages = messages[~render_blocked(messages)].reset_index()

    earliest = pd.Timestamp(as_of).floor("min") + pd.Timedelta(minutes=1)
    start = pd.to_datetime(messages["start"]).astype("datetime64[us]")
    end = pd.to_datetime(messages["end"]).astype("datetime64[us]")
    frm = start.where(start > earliest, earliest).astype("datetime64[us]")
    group = ["channel", "time_zone", "local_date"]
    messages = messages.assign(_s=start, _e=end, _f=frm)
    messages["_i"] = messages.groupby(group)["message_key"].rank(method="first") - 1
    messages["_n"] = messages.groupby(group)["message_key"].transform("size")
    span_us = (messages["_e"] - messages["_f"]).to_numpy().astype("int64")
    offset = (span_us * (messages["_i"].to_numpy() + 0.5) / messages["_n"].to_numpy()).astype(
        "int64"
    )
    send = messages["_f"].to_numpy().astype("datetime64[us]") + offset.astype("timedelta64[us]")
    messages["send_at_utc"] = pd.Series(send).dt.floor("s").to_numpy()
    out = planned.merge(messages[["message_key", "send_at_utc"]], on="message_key", how="inner")
    return (
        out[["customer_id", "invoice_id", "channel", "send_at_utc"]]
        .sort_values(["customer_id", "invoice_id", "channel"])
        .reset_index(drop=True)
    )


def main() -> None:
    """``python benchmarks/pandas_peer.py FOLDER AS_OF PHONES.parquet OUT.parquet``: plan,
    write the planned set, print one JSON line (seconds, peak RSS)."""
    import json
    import resource
    import sys
    import time

    folder, as_of, phones_path, out_path = sys.argv[1:5]
    phones = pd.read_parquet(phones_path)
    phones = phones.astype(object).where(phones.notna(), None)
    t = time.perf_counter()
    planned = plan(Path(folder), datetime.fromisoformat(as_of), phones)
    seconds = time.perf_counter() - t
    planned.to_parquet(out_path)
    print(
        json.dumps(
            {
                "total": round(seconds, 2),
                "planned": len(planned),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "pandas": pd.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Table-level data-quality gates: Great Expectations suites over the inputs and the plan.

Row rules (``data_quality.rules``) turn a bad row into a quarantine row; the gates here judge a
whole table and stop the run before anything reaches the outbox. Each gate is one row of
:data:`GATE_RULES` (rule id, input, GX expectation, default threshold, message template); a
threshold is overridden per rule in ``[quality.gates.thresholds]``.

The suites do not see raw personal data: each input gets a *gate frame* built here with polars
(one row per input row, ``source_row`` plus derived boolean / key columns such as
``phone_ok``), converted with ``to_pandas()`` (GX has no polars datasource) and validated in an
ephemeral GX context. Unexpected values are never listed (``partial_unexpected_count=0``), so
the Data Docs site holds counts, not phone numbers.

Great Expectations is imported lazily (about 2.7 s), only by :class:`GateValidator`.

Threshold semantics:

- ``share`` rules fail when the share of non-null gate values that are unexpected is above the
  threshold (GX ``mostly = 1 - threshold``); a threshold of 1 turns the rule off.
- ``shrink`` (``source_shrunk``) fails when an input has fewer rows than ``threshold`` x its
  row count in the last succeeded build-reminders run; skipped without such a run.
- ``exact`` rules (the plan's counts) have no threshold: the counts must add up.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl

__all__ = [
    "GATE_DEFAULTS",
    "GATE_RULES",
    "GateOutcome",
    "GateReport",
    "GateRule",
    "GateValidator",
    "consent_gate_frame",
    "customers_gate_frame",
    "decisions_gate_frame",
    "input_gate_frames",
    "invoices_gate_frame",
    "messages_gate_frame",
    "run_gates",
]

Kind = Literal["share", "shrink", "exact"]

E164 = r"^\+[1-9][0-9]{6,14}$"
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ADDRESS = rf"^(?:sms:{E164[1:-1]}|email:{EMAIL[1:-1]})$"
"""A planned ``<channel>:<to_address>``: an E.164 number for SMS, an address for e-mail."""

PHONE_INVALID_RULES = ("phone_unparseable", "phone_invalid")


@dataclass(frozen=True)
class GateRule:
    """One table-level rule. ``expectation`` is a GX 1.x expectation class name;
    ``column`` the gate-frame column (or columns, comma-separated) it reads."""

    rule_id: str
    input: str
    expectation: str
    column: str | None
    kind: Kind
    threshold: float | None
    message: str


GATE_RULES: tuple[GateRule, ...] = (
    *(
        GateRule(
            "source_shrunk",
            name,
            "ExpectTableRowCountToBeBetween",
            None,
            "shrink",
            0.5,
            "{input}: {observed} rows, fewer than {threshold:.0%} of the {previous} rows of the "
            "last succeeded run (at least {expected} expected)",
        )
        for name in ("customers", "invoices", "consent_events", "contact_history")
    ),
    GateRule(
        "phone_invalid_share",
        "customers",
        "ExpectColumnValuesToBeInSet",
        "phone_ok",
        "share",
        0.10,
        "{input}: {count} of {total} phone numbers are invalid or unparseable ({observed:.1%}), "
        "above the threshold of {threshold:.1%}",
    ),
    GateRule(
        "email_invalid_share",
        "customers",
        "ExpectColumnValuesToBeInSet",
        "email_ok",
        "share",
        0.10,
        "{input}: {count} of {total} e-mail addresses are invalid ({observed:.1%}), above the "
        "threshold of {threshold:.1%}",
    ),
    GateRule(
        "field_quarantine_share",
        "customers",
        "ExpectColumnValuesToBeInSet",
        "fields_ok",
        "share",
        0.50,
        "{input}: {count} of {total} accepted rows have a field quarantined ({observed:.1%}), "
        "above the threshold of {threshold:.1%} (a swapped column mapping?)",
    ),
    GateRule(
        "invoice_id_duplicate_share",
        "invoices",
        "ExpectColumnValuesToBeUnique",
        "invoice_id",
        "share",
        0.05,
        "{input}: {count} of {total} rows share their invoice_id with another row "
        "({observed:.1%}), above the threshold of {threshold:.1%}",
    ),
    GateRule(
        "amount_negative_share",
        "invoices",
        "ExpectColumnValuesToBeInSet",
        "amount_not_negative",
        "share",
        0.01,
        "{input}: {count} of {total} readable amounts are negative ({observed:.1%}), above the "
        "threshold of {threshold:.1%}",
    ),
    GateRule(
        "consent_in_future_share",
        "consent_events",
        "ExpectColumnValuesToBeInSet",
        "not_in_future",
        "share",
        0.01,
        "{input}: {count} of {total} readable events are dated after the run ({observed:.1%}), "
        "above the threshold of {threshold:.1%}",
    ),
    GateRule(
        "plan_zone_missing",
        "messages",
        "ExpectColumnValuesToNotBeNull",
        "time_zone",
        "share",
        0.0,
        "{input}: {count} of {total} planned messages have no time zone",
    ),
    GateRule(
        "plan_outside_window",
        "messages",
        "ExpectColumnValuesToBeInSet",
        "in_window",
        "share",
        0.0,
        "{input}: {count} of {total} planned messages are sent outside their local window in "
        "at least one candidate zone",
    ),
    GateRule(
        "plan_address_invalid",
        "messages",
        "ExpectColumnValuesToMatchRegex",
        "address",
        "share",
        0.0,
        "{input}: {count} of {total} planned messages have no valid E.164 number / e-mail "
        "address for their channel",
    ),
    GateRule(
        "plan_one_per_customer_day",
        "messages",
        "ExpectCompoundColumnsToBeUnique",
        "customer_id,local_send_date",
        "share",
        0.0,
        "{input}: {count} of {total} planned messages share a customer and local day with "
        "another message",
    ),
    GateRule(
        "plan_messages_count",
        "messages",
        "ExpectTableRowCountToEqual",
        None,
        "exact",
        None,
        "{input}: {observed} messages, but the planned decisions name {expected} message keys",
    ),
    GateRule(
        "plan_decisions_count",
        "decisions",
        "ExpectTableRowCountToEqual",
        None,
        "exact",
        None,
        "{input}: {observed} decisions, but {expected} invoice rows x channels came in",
    ),
)
"""Every table-level rule, by input. Input gates run before planning; the ``messages`` and
``decisions`` (planned output) gates run on the plan before anything is saved."""

GATE_DEFAULTS: dict[str, float] = {
    r.rule_id: r.threshold for r in GATE_RULES if r.threshold is not None
}
"""Default threshold per overridable rule id (``[quality.gates.thresholds]``)."""

INPUT_SUITES = ("customers", "invoices", "consent_events", "contact_history")
PLAN_SUITES = ("messages", "decisions")


@dataclass(frozen=True)
class GateOutcome:
    """One rule's result. ``observed`` is a share (share rules) or a row count."""

    rule_id: str
    input: str
    success: bool
    observed: float | int | None
    threshold: float | None
    count: int | None = None
    total: int | None = None
    expected: int | None = None
    previous: int | None = None
    message: str = ""


# --- gate frames (pure polars) ----------------------------------------------------------------


def customers_gate_frame(
    raw: pl.DataFrame, customers: pl.DataFrame, quarantine: pl.DataFrame
) -> pl.DataFrame:
    """One row per raw customer row: ``phone_ok``, ``email_ok``, ``fields_ok`` (null for rows
    that were quarantined whole, or for a phone / e-mail not given)."""
    fields = quarantine.filter((pl.col("source") == "customers") & (pl.col("scope") == "field"))
    per_row = fields.group_by("source_row").agg(
        pl.col("rule").is_in(PHONE_INVALID_RULES).any().alias("_bad_phone"),
        (pl.col("rule") == "email_invalid").any().alias("_bad_email"),
        pl.lit(True).alias("_any"),
    )
    given = raw.select(
        "source_row",
        (pl.col("phone").str.strip_chars().fill_null("") != "").alias("_phone_given"),
        (pl.col("email").str.strip_chars().fill_null("") != "").alias("_email_given"),
    )
    accepted = customers.select("source_row", pl.lit(True).alias("_accepted"))
    row = pl.col("source_row").cast(pl.Int32)
    frame = (
        given.with_columns(row)
        .join(accepted.with_columns(row), on="source_row", how="left")
        .join(per_row.with_columns(row), on="source_row", how="left")
    )
    ok = pl.col("_accepted").fill_null(False)
    return frame.select(
        "source_row",
        pl.when(ok & pl.col("_phone_given"))
        .then(~pl.col("_bad_phone").fill_null(False))
        .alias("phone_ok"),
        pl.when(ok & pl.col("_email_given"))
        .then(~pl.col("_bad_email").fill_null(False))
        .alias("email_ok"),
        pl.when(ok).then(~pl.col("_any").fill_null(False)).alias("fields_ok"),
    )


def invoices_gate_frame(raw: pl.DataFrame) -> pl.DataFrame:
    """One row per raw invoice row: the trimmed ``invoice_id`` and ``amount_not_negative``
    (null where the amount does not read as a number)."""
    amount = pl.col("amount_due").str.strip_chars().cast(pl.Float64, strict=False)
    return raw.select(
        "source_row",
        pl.col("invoice_id").str.strip_chars().replace("", None).alias("invoice_id"),
        pl.when(amount.is_nan()).then(None).otherwise(amount >= 0).alias("amount_not_negative"),
    )


def consent_gate_frame(raw: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """One row per raw consent row: ``not_in_future`` (null where occurred_at is unreadable)."""
    from tasks.normalize import parse_utc

    return raw.select("source_row", (parse_utc("occurred_at") <= as_of).alias("not_in_future"))


def input_gate_frames(
    frames: Mapping[str, pl.DataFrame],
    customers: pl.DataFrame,
    quarantine: pl.DataFrame,
    as_of: datetime,
) -> dict[str, pl.DataFrame]:
    """The gate frame of every input (raw frames by name, the accepted customers, quarantine)."""
    return {
        "customers": customers_gate_frame(frames["customers"], customers, quarantine),
        "invoices": invoices_gate_frame(frames["invoices"]),
        "consent_events": consent_gate_frame(frames["consent_events"], as_of),
        "contact_history": frames["contact_history"].select("source_row"),
    }


def _local(utc: pl.Expr, zone: str) -> pl.Expr:
    return utc.dt.replace_time_zone("UTC").dt.convert_time_zone(zone).dt.replace_time_zone(None)


def messages_gate_frame(messages: pl.DataFrame, window_start: Any, window_end: Any) -> pl.DataFrame:
    """One row per planned message: ``time_zone``, ``in_window`` (the UTC send time falls on the
    local send date, inside [start, end) local time, in *every* candidate zone), ``address``
    (``<channel>:<to_address>``), ``customer_id``, ``local_send_date``.

    Re-derived from ``send_at_utc`` and the candidate zones, independently of the stagger.
    """
    base = messages.select(
        pl.int_range(0, pl.len(), dtype=pl.Int64).alias("_row"),
        "send_at_utc",
        "local_send_date",
        pl.coalesce(pl.col("candidate_zones"), pl.col("time_zone")).str.split("|").alias("_zone"),
    ).explode("_zone", empty_as_null=True)
    checks = [pl.DataFrame(schema={"_row": pl.Int64, "_ok": pl.Boolean})]
    for (zone,), part in base.filter(pl.col("_zone").is_not_null()).group_by("_zone"):
        try:
            local = _local(pl.col("send_at_utc"), str(zone))
            checks.append(
                part.select(
                    "_row",
                    (
                        (local.dt.date() == pl.col("local_send_date"))
                        & (local.dt.time() >= window_start)
                        & (local.dt.time() < window_end)
                    )
                    .fill_null(False)
                    .alias("_ok"),
                )
            )
        except pl.exceptions.PolarsError:
            checks.append(part.select("_row", pl.lit(False).alias("_ok")))
    # A message without any zone is outside every window.
    zoneless = base.filter(pl.col("_zone").is_null()).select("_row", pl.lit(True).alias("_none"))
    ok = (
        pl.concat(checks)
        .group_by("_row")
        .agg(pl.col("_ok").all())
        .join(zoneless, on="_row", how="full", coalesce=True)
        .select("_row", (pl.col("_ok").fill_null(False) & pl.col("_none").is_null()))
        .rename({"_ok": "in_window"})
    )
    return (
        messages.select(
            pl.int_range(0, pl.len(), dtype=pl.Int64).alias("_row"),
            "time_zone",
            pl.concat_str([pl.col("channel"), pl.col("to_address").fill_null("")], separator=":")
            .fill_null("")
            .alias("address"),
            "customer_id",
            "local_send_date",
        )
        .join(ok, on="_row", how="left")
        .with_columns(pl.col("in_window").fill_null(False))
        .drop("_row")
    )


def decisions_gate_frame(decisions: pl.DataFrame) -> pl.DataFrame:
    return decisions.select("invoice_row", "channel", "status")


# --- running the suites (GX, imported lazily) -------------------------------------------------


def _expectation(gxe: Any, rule: GateRule, threshold: float | None, expected: int | None) -> Any:
    cls = getattr(gxe, rule.expectation)
    meta = {"rule_id": rule.rule_id}
    if rule.kind == "share":
        mostly = max(0.0, min(1.0, 1.0 - (threshold or 0.0)))
        if rule.expectation == "ExpectColumnValuesToBeInSet":
            return cls(column=rule.column, value_set=[True], mostly=mostly, meta=meta)
        if rule.expectation == "ExpectColumnValuesToMatchRegex":
            return cls(column=rule.column, regex=ADDRESS, mostly=mostly, meta=meta)
        if rule.expectation == "ExpectCompoundColumnsToBeUnique":
            return cls(column_list=(rule.column or "").split(","), mostly=mostly, meta=meta)
        return cls(column=rule.column, mostly=mostly, meta=meta)
    if rule.kind == "shrink":
        return cls(min_value=expected, meta=meta)
    return cls(value=expected, meta=meta)


class GateValidator:
    """An ephemeral GX context for one run; with ``docs_dir``, a local Data Docs site there.

    ``validate`` may be called several times (inputs, then the plan); every suite lands in the
    same site, whose ``index.html`` is :attr:`docs_index`.
    """

    def __init__(self, docs_dir: Path | None = None) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        self._gx = gx
        self._gxe = gxe
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        self.docs_dir = docs_dir
        self._sites: list[str] = []
        if docs_dir is not None:
            docs_dir.mkdir(parents=True, exist_ok=True)
            self.context.add_data_docs_site(
                site_name="run",
                site_config={
                    "class_name": "SiteBuilder",
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(docs_dir),
                    },
                },
            )
            self._sites = ["run"]
        self._source = self.context.data_sources.add_pandas("reminders")

    @property
    def docs_index(self) -> Path | None:
        return None if self.docs_dir is None else self.docs_dir / "index.html"

    def validate(
        self, suite_name: str, frame: pl.DataFrame, expectations: Sequence[Any]
    ) -> dict[str, dict[str, Any]]:
        """Run ``expectations`` on ``frame``; per rule id: {"success", "result"}."""
        gx = self._gx
        asset = self._source.add_dataframe_asset(suite_name)
        batch = asset.add_batch_definition_whole_dataframe("whole")
        suite = self.context.suites.add(gx.ExpectationSuite(name=suite_name))
        for expectation in expectations:
            suite.add_expectation(expectation)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
        )
        actions = (
            [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=self._sites)]
            if self._sites
            else []
        )
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(
                name=suite_name,
                validation_definitions=[definition],
                actions=actions,
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0},
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame.to_pandas()})
        out: dict[str, dict[str, Any]] = {}
        for run in result.run_results.values():
            for item in run.results:
                rule_id = (item.expectation_config.meta or {}).get("rule_id")
                out[str(rule_id)] = {"success": bool(item.success), "result": dict(item.result)}
        return out


def _outcome(
    rule: GateRule,
    threshold: float | None,
    found: dict[str, Any],
    *,
    expected: int | None = None,
    previous: int | None = None,
) -> GateOutcome:
    result = found["result"]
    count = total = None
    if rule.kind == "share":
        count = int(result.get("unexpected_count") or 0)
        total = int(result.get("element_count") or 0) - int(result.get("missing_count") or 0)
        if rule.expectation == "ExpectColumnValuesToNotBeNull":
            total = int(result.get("element_count") or 0)
        observed: float | int | None = count / total if total else 0.0
    else:
        observed = result.get("observed_value")
    outcome = GateOutcome(
        rule.rule_id,
        rule.input,
        found["success"],
        observed,
        threshold,
        count=count,
        total=total,
        expected=expected,
        previous=previous,
    )
    message = rule.message.format(
        input=rule.input,
        observed=observed,
        threshold=threshold or 0.0,
        count=count,
        total=total,
        expected=expected,
        previous=previous,
    )
    return GateOutcome(**{**outcome.__dict__, "message": f"{rule.rule_id}: {message}"})


def run_gates(
    validator: GateValidator,
    frames: Mapping[str, pl.DataFrame],
    *,
    thresholds: Mapping[str, float] | None = None,
    previous_rows: Mapping[str, int] | None = None,
    expected_rows: Mapping[str, int] | None = None,
) -> list[GateOutcome]:
    """Validate each gate frame (by input name) with its rules; one suite per input.

    ``previous_rows`` (rows per input of the last succeeded run) feeds ``source_shrunk``;
    ``expected_rows`` (rows per plan frame) feeds the ``exact`` rules.
    """
    chosen = GATE_DEFAULTS | dict(thresholds or {})
    previous_rows = previous_rows or {}
    expected_rows = expected_rows or {}
    outcomes: list[GateOutcome] = []
    for name, frame in frames.items():
        planned: list[tuple[GateRule, float | None, int | None, int | None]] = []
        for rule in GATE_RULES:
            if rule.input != name:
                continue
            threshold = chosen.get(rule.rule_id) if rule.threshold is not None else None
            expected = previous = None
            if rule.kind == "shrink":
                previous = previous_rows.get(name)
                if not previous:
                    continue
                expected = math.ceil((threshold or 0.0) * previous)
            elif rule.kind == "exact":
                if name not in expected_rows:
                    continue
                expected = expected_rows[name]
            planned.append((rule, threshold, expected, previous))
        if not planned:
            continue
        found = validator.validate(
            name,
            frame,
            [_expectation(validator._gxe, r, t, e) for r, t, e, _ in planned],
        )
        outcomes += [
            _outcome(r, t, found[r.rule_id], expected=e, previous=p) for r, t, e, p in planned
        ]
    return outcomes


@dataclass
class GateReport:
    """What the flow keeps of the gates: every outcome and the Data Docs index."""

    outcomes: list[GateOutcome] = field(default_factory=list)
    docs_index: Path | None = None

    @property
    def failures(self) -> list[GateOutcome]:
        return [o for o in self.outcomes if not o.success]

    def markdown(self, run_id: str) -> str:
        lines = [
            f"# Data-quality gates, run {run_id}",
            "",
            f"Data Docs: [{self.docs_index}]({self.docs_index.as_uri()})"
            if self.docs_index
            else "Data Docs: not built",
            "",
            "| rule | input | result | observed | threshold |",
            "|---|---|---|---:|---:|",
        ]
        for o in self.outcomes:
            observed = f"{o.observed:.2%}" if isinstance(o.observed, float) else str(o.observed)
            threshold = "" if o.threshold is None else f"{o.threshold:.2%}"
            result = "pass" if o.success else "**FAIL**"
            lines.append(f"| {o.rule_id} | {o.input} | {result} | {observed} | {threshold} |")
        lines += ["", *[f"- {o.message}" for o in self.failures]]
        return "\n".join(lines)

"""Item 6 of issue 11: a build split into two customer-id partitions decides as one run."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from tasks.eligibility import PRIOR_SCHEMA, phone_line_owners
from tasks.extract import INPUTS, Extracted, canonicalize
from tasks.normalize import invoice_owners, normalize
from tasks.partition import split_extracted
from tasks.plan import build_plan
from tasks.render import load_templates
from tasks.sample_data import generate
from tasks.settings import Settings
from tests import factories as f

AS_OF = datetime(2026, 11, 23, 6, 0)
KEY = ["invoice_row", "channel"]
COMPARED = [
    "invoice_id",
    "customer_id",
    "status",
    "reason",
    "detail",
    "message_key",
    "time_zone",
    "local_send_date",
    "cadence_step",
]


def _extracted(n: int) -> Extracted:
    data = generate(n, seed=11, as_of=AS_OF.date())
    frames = {name: canonicalize(getattr(data, name), name, {}) for name in INPUTS}
    return Extracted(frames)


def _plan(extracted: Extracted, **global_facts: pl.DataFrame) -> pl.DataFrame:
    owners = global_facts.pop("invoice_owner_table", None)
    normalized = normalize(extracted, as_of=AS_OF, invoice_owner_table=owners)
    plan = build_plan(
        extracted,
        normalized,
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=AS_OF,
        settings=Settings(),
        templates=load_templates(),
        new_token=lambda: "tok",
        **global_facts,
    )
    assert plan.accounting.ok, plan.accounting.problems
    return plan.decisions


def test_two_partitions_decide_as_one_run() -> None:
    whole = _extracted(3_000)
    one = _plan(whole)
    parts = split_extracted(whole, 2)
    for name in INPUTS:  # every row in exactly one partition
        rows = pl.concat([p.frames[name]["source_row"] for p in parts]).sort()
        assert rows.equals(whole.frames[name]["source_row"].sort())
    assert all(p.frames["customers"].height > 0 for p in parts)
    # The global pass: invoice owners over all raw invoices, line owners over every
    # partition's normalized customers.
    owners = invoice_owners(whole.frames["invoices"])
    customers = pl.concat(
        [normalize(p, as_of=AS_OF, invoice_owner_table=owners).customers for p in parts]
    )
    lines = phone_line_owners(customers)
    split = pl.concat([_plan(p, invoice_owner_table=owners, line_owners=lines) for p in parts])
    assert split.height == one.height
    got = split.sort(KEY).select(*KEY, *COMPARED)
    want = one.sort(KEY).select(*KEY, *COMPARED)
    assert got.equals(want)
    # Something was decided each way, and cross-customer rules were exercised.
    reasons = set(one["reason"].drop_nulls().to_list())
    assert one.filter(pl.col("status") == "planned").height > 0
    assert {"phone_shared", "invoice_id_conflict"} & reasons


def test_the_sample_crosses_partitions_so_the_global_pass_is_needed() -> None:
    """Without the global pass, shared lines and invoice conflicts split over the partitions
    are missed: the sample exercises both, so the test above can fail."""
    whole = _extracted(3_000)
    one = _plan(whole).select(*KEY, "reason")
    split = pl.concat([_plan(p) for p in split_extracted(whole, 2)]).select(*KEY, "reason")
    differ = one.join(split, on=KEY, suffix="_split").filter(
        pl.col("reason") != pl.col("reason_split")
    )
    assert {"phone_shared", "invoice_id_conflict"} <= set(differ["reason"].to_list())


def test_ids_that_differ_only_in_case_share_a_partition() -> None:
    """customer_id_case_mismatch compares a consent row's id with the customers of its own
    partition: 'ana-3' must land where 'ANA-3' is, or a partitioned build sends the reminder
    a single run holds back as consent_unclear."""
    ids = [f"ANA-{i}" for i in range(12)]
    customers = [
        f.customer(customer_id=c, phone=f"+1 212 555 01{i:02d}") for i, c in enumerate(ids)
    ]
    invoices = [f.invoice(c) for c in ids]
    consent = [f.consent(c, "sms") for c in ids] + [
        f.consent(c.lower(), "sms", "opt_out", occurred_at="2026-11-01T00:00:00Z") for c in ids
    ]
    whole = f.extracted(customers, invoices, consent)
    one = _plan(whole).sort(KEY).select(*KEY, "reason")
    assert set(one["reason"]) == {"consent_unclear"}
    split = pl.concat([_plan(p) for p in split_extracted(whole, 4) if p.frames["customers"].height])
    assert split.sort(KEY).select(*KEY, "reason").equals(one)

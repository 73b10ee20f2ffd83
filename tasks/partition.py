"""Partitioned builds: one tenant's inputs split by customer-id hash, planned part by part.

A 20-million-customer tenant does not fit one machine's plan in seconds; it is split into
``parts`` partitions by a stable hash of the trimmed, lower-cased customer_id (SHA-256, so
every process, machine and polars version agrees; ids that differ only in case share a
partition, as the consent rule ``customer_id_case_mismatch`` needs), each planned by its own
Prefect subflow run writing its partition of the warehouse. Every row of every source travels
with its customer_id (a row with no customer_id goes to partition 0, where it is quarantined
as it would be anyway).

Two rules look across customers, so each partition gets them from a small global pass first:
an invoice_id under several customer_ids (:func:`tasks.normalize.invoice_owners` over all raw
invoices) and a phone line given by several customers
(:func:`tasks.eligibility.phone_line_owners` over every partition's normalized customers).
With both, the decisions of the partitions together are the decisions of one run (tested).
"""

from __future__ import annotations

import polars as pl

from tasks.eligibility import sha256_hex32
from tasks.extract import Extracted

__all__ = ["partition_expr", "split_extracted"]


def partition_expr(customer_id: pl.Expr, parts: int) -> pl.Expr:
    """The partition (0 .. parts-1) of each customer_id: stable across processes."""
    key = customer_id.cast(pl.String).str.strip_chars()
    hashed = key.str.to_lowercase().map_batches(sha256_hex32, return_dtype=pl.String)
    bucket = hashed.str.slice(0, 8).str.to_integer(base=16) % parts
    return pl.when(key.is_null() | (key == "")).then(0).otherwise(bucket).cast(pl.Int32)


def split_extracted(extracted: Extracted, parts: int) -> list[Extracted]:
    """``extracted`` as ``parts`` snapshots, every row in exactly one (source_row kept)."""
    tagged = {
        name: frame.with_columns(partition_expr(pl.col("customer_id"), parts).alias("_part"))
        for name, frame in extracted.frames.items()
    }
    return [
        Extracted(
            {n: f.filter(pl.col("_part") == p).drop("_part") for n, f in tagged.items()},
            dict(extracted.decode_errors),
        )
        for p in range(parts)
    ]

"""The analysts' read-only copy of a DuckDB warehouse.

DuckDB lets one process write a file and nobody else open it meanwhile, so an analyst holding
the warehouse open (even read-only) would fail the next flow on the file lock. Instead, every
run that writes a DuckDB warehouse publishes ``<name>.analyst.duckdb`` next to it once it is
done (under the writer lock, from the closed, checkpointed file): copied to a temporary name
and renamed over the old copy, so an analyst connection that is open keeps reading the
previous copy and the next one sees the new. Analysts open only the copy:
``duckdb.connect("data/warehouse.analyst.duckdb", read_only=True)``. PostgreSQL warehouses
need no copy (MVCC: readers never block writers).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import sqlalchemy as sa

__all__ = ["analyst_snapshot_path", "publish_analyst_snapshot"]


def analyst_snapshot_path(url: str) -> Path | None:
    """``<warehouse>.analyst.duckdb`` of a DuckDB file URL; None for other warehouses."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "duckdb" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return path.with_name(f"{path.stem}.analyst{path.suffix or '.duckdb'}")


def publish_analyst_snapshot(url: str) -> Path | None:
    """Copy the (closed) DuckDB warehouse of ``url`` to its analyst snapshot atomically;
    returns the snapshot's path (None: not a DuckDB file, or no file yet)."""
    target = analyst_snapshot_path(url)
    if target is None:
        return None
    source = Path(sa.engine.make_url(url).database or "")
    if not source.exists():
        return None
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)
    return target

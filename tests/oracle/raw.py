"""Read the raw CSV inputs strictly: bytes, UTF-8 decoded row by row, the csv module."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RawTable", "read_raw"]


@dataclass(frozen=True)
class RawTable:
    """Data rows (header excluded) as dicts; ``undecodable`` holds the indexes of bad rows."""

    rows: list[dict[str, str | None]]
    undecodable: frozenset[int]

    @property
    def count(self) -> int:
        return len(self.rows)


def _bad(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def read_raw(path: Path) -> RawTable:
    """Every data row of ``path``; a row with bytes that are not UTF-8 is kept but flagged.

    Empty fields are ``None`` (the generator writes nulls as empty fields).
    """
    if not Path(path).exists():
        return RawTable([], frozenset())
    text = Path(path).read_bytes().decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return RawTable([], frozenset())
    rows: list[dict[str, str | None]] = []
    bad: set[int] = set()
    for i, record in enumerate(reader):
        if any(_bad(field) for field in record):
            bad.add(i)
        padded = record + [""] * (len(header) - len(record))
        rows.append({h: (v if v != "" else None) for h, v in zip(header, padded, strict=False)})
    return RawTable(rows, frozenset(bad))

"""Exceptions raised by the pipeline.

    ReminderError
    ├── ConfigurationError          settings that cannot be used (bad window, unknown column)
    ├── SourceError                 an input source cannot be read or lacks a mapped column
    ├── DataQualityError
    │   ├── QuarantineThresholdExceeded   too many rejected rows: the run stops before pushing
    │   ├── AccountingError               rows in != planned + excluded + quarantined
    │   └── GateFailed                    a table-level gate (data_quality.gates) failed
    └── GenesysError                (the Genesys client issue fills this branch)

Messages never carry a phone number, an e-mail address or a secret: they name the source,
the rule and counts, and point at the warehouse rows that hold the details.
"""

from __future__ import annotations

__all__ = [
    "AccountingError",
    "ConfigurationError",
    "DataQualityError",
    "GateFailed",
    "GenesysError",
    "QuarantineThresholdExceeded",
    "ReminderError",
    "SourceError",
]


class ReminderError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigurationError(ReminderError):
    """Settings that validate as types but cannot be used together."""


class SourceError(ReminderError):
    """An input source is missing, unreadable, or lacks a mapped column."""


class DataQualityError(ReminderError):
    """The input data broke a run-level rule."""


class QuarantineThresholdExceeded(DataQualityError):
    """The share of quarantined rows of a source is above the configured maximum."""

    def __init__(self, source: str, quarantined: int, total: int, max_share: float) -> None:
        self.source = source
        self.quarantined = quarantined
        self.total = total
        self.max_share = max_share
        share = quarantined / total if total else 0.0
        super().__init__(
            f"{source}: {quarantined} of {total} rows quarantined ({share:.1%}), "
            f"above the maximum of {max_share:.1%}; nothing was pushed. "
            "See the quarantine table for rules and reasons."
        )


class AccountingError(DataQualityError):
    """Rows were lost between input and decisions."""


class GateFailed(DataQualityError):
    """One or more table-level gates failed: the run stops before the outbox is written.

    ``failures`` are :class:`data_quality.gates.GateOutcome` rows; the message names each
    rule, its observed value and its threshold, and where the Data Docs are.
    """

    def __init__(self, stage: str, failures: list, docs_index: object = None) -> None:
        self.stage = stage
        self.failures = failures
        self.docs_index = docs_index
        lines = "; ".join(f.message for f in failures)
        where = f" Data Docs: {docs_index}." if docs_index else ""
        super().__init__(
            f"{len(failures)} {stage} gate(s) failed, nothing was written to the outbox: "
            f"{lines}.{where}"
        )


class GenesysError(ReminderError):
    """Base of the Genesys client errors."""

"""Exceptions raised by the pipeline.

    ReminderError
    ├── ConfigurationError          settings that cannot be used (bad window, unknown column)
    ├── SourceError                 an input source cannot be read or lacks a mapped column
    ├── DataQualityError
    │   ├── QuarantineThresholdExceeded   too many rejected rows: the run stops before pushing
    │   ├── AccountingError               rows in != planned + excluded + quarantined
    │   └── GateFailed                    a table-level gate (data_quality.gates) failed
    ├── GenesysError                (the Genesys client issue fills this branch)
    └── TransientError              worth a retry: a lock held, a connection lost, a 5xx

Only transient errors are retried (:func:`is_transient`, :func:`retry_transient` as a Prefect
``retry_condition_fn``): network and connection errors, timeouts, database lock and
connection failures, HTTP 429/5xx. A configuration or data error (any other
:class:`ReminderError`, a missing file, a wrong column) fails the run at once.

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
    "OutboxConflict",
    "QuarantineThresholdExceeded",
    "ReminderError",
    "SourceError",
    "TransientError",
    "is_transient",
    "retry_transient",
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


class OutboxConflict(ReminderError):
    """Messages a step moved were not all in the state it expected: something else changed
    them. The transaction is rolled back; the next push settles them from Genesys."""


class TransientError(ReminderError):
    """A failure that may pass on its own (a lock held, a connection lost): worth a retry."""


_TRANSIENT_TEXT = ("could not set lock", "conflicting lock", "database is locked", "timeout")


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: :class:`TransientError`, connection and timeout errors
    (builtin, httpx, SQLAlchemy ``OperationalError`` / invalidated connections), DuckDB lock
    errors and HTTP 429/5xx answers; False for every other error, configuration and data
    errors included."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, ReminderError):
        status = getattr(exc, "status", None)
        return isinstance(status, int) and (status == 429 or status >= 500)
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    module = type(exc).__module__
    if module.startswith("httpx"):
        import httpx

        if isinstance(exc, httpx.TransportError):
            return True
        if isinstance(exc, httpx.HTTPStatusError):
            code = exc.response.status_code
            return code == 429 or code >= 500
        return False
    if module.startswith("sqlalchemy"):
        import sqlalchemy as sa

        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, sa.exc.OperationalError):
            return True
        orig = getattr(exc, "orig", None)
        return orig is not None and is_transient(orig)
    if module.startswith("duckdb") or module.startswith("_duckdb"):
        return any(text in str(exc).lower() for text in _TRANSIENT_TEXT)
    return False


def retry_transient(task: object, task_run: object, state: object) -> bool:
    """A Prefect ``retry_condition_fn``: retry a failed task run only if its error is
    transient (:func:`is_transient`)."""
    try:
        state.result()  # type: ignore[attr-defined]
    except Exception as exc:
        return is_transient(exc)
    return False

"""Which errors are retried: transient ones only (tasks.errors.is_transient)."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from tasks.errors import (
    ConfigurationError,
    QuarantineThresholdExceeded,
    SourceError,
    TransientError,
    is_transient,
)


def _status_error(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://api.example/x")
    return httpx.HTTPStatusError("x", request=request, response=httpx.Response(code))


@pytest.mark.parametrize(
    "exc",
    [
        TransientError("lock"),
        ConnectionResetError(),
        TimeoutError(),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        _status_error(503),
        _status_error(429),
        sa.exc.OperationalError("select 1", {}, Exception("server closed the connection")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient_errors_are_retried(exc) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        SourceError("customers: file /x.csv does not exist"),
        ConfigurationError("window.start"),
        QuarantineThresholdExceeded("invoices", 5, 10, 0.25),
        FileNotFoundError("/x.csv"),
        KeyError("phone"),
        ValueError("not a date-time"),
        _status_error(400),
        sa.exc.ProgrammingError("select x", {}, Exception('column "x" does not exist')),
    ],
    ids=lambda e: type(e).__name__,
)
def test_configuration_and_data_errors_are_not_retried(exc) -> None:
    assert not is_transient(exc)

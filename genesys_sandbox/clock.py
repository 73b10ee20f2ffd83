"""Time formats of the two wire protocols the sandbox speaks, on naive-UTC datetimes.

Contract: every datetime inside the sandbox is naive and means UTC.  Genesys writes ISO-8601
with milliseconds and ``Z``; Twilio writes RFC 2822 with ``+0000``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

__all__ = ["iso", "parse_instant", "rfc2822"]


def iso(moment: datetime) -> str:
    """``2026-11-23T06:00:00.000Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rfc2822(moment: datetime) -> str:
    """``Mon, 23 Nov 2026 06:00:00 +0000``."""
    return format_datetime(moment.replace(tzinfo=UTC, microsecond=0))


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant (``Z``/offset, optional seconds) to naive UTC.

    A value without an offset is taken as UTC.  Raises ``ValueError`` when unparseable.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("expected an ISO-8601 date-time string")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed

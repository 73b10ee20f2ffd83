"""Masking of personal data in log lines.

:func:`mask_phone` and :func:`mask_email` are for code that deliberately mentions one address.
:class:`MaskingFilter` is the safety net: installed on a handler (the CLI installs it on the
root and Prefect handlers), it rewrites any card number (PAN), phone-like digit run and e-mail
address in every record before it is written, including Prefect's own run logs.

Also masked: registered secret values (:func:`register_secret`; settings register every
``SecretStr`` they load), the password of any ``scheme://user:password@host`` URL, and
national-format phone numbers (a trunk ``0`` followed by 8-13 more digits, or any bare run
of 10-15 digits) besides E.164 and NANP ``(416) 555-0123``. The filter rewrites the message,
the formatted traceback (``exc_text``) and ``stack_info``, so an exception that carries an
address is masked wherever it is logged; :func:`mask_exception` does the same to an exception
object before it leaves a flow (Prefect copies its text into the run's state message).

Order in :func:`mask_text`: PANs first (:func:`tasks.pci.mask_pans`, all but the last four
digits become ``•``), then e-mail addresses, then phones. The PAN guard must see the whole
number: the phone pattern can match part of a card number (``411 111 1111`` of
``411 111 1111 111111``) and, run first, would leave the rest in clear and too few digits
for the PAN guard to recognise it.
"""

from __future__ import annotations

import contextlib
import logging
import re

from tasks.pci import mask_pans

__all__ = [
    "MaskingFilter",
    "install_masking",
    "mask_email",
    "mask_exception",
    "mask_phone",
    "mask_text",
    "register_secret",
]

_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-])[\w.-]*\.([A-Za-z]{2,})\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d(?:[\s().-]?\d){6,16}|\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4})(?![\w])"
    # national formats: trunk 0 then 8-13 digits in groups (020 7946 0958, 0412 345 678,
    # 06 12 34 56 78, (030) 1234567), or a bare run of 10-15 digits (4165550123)
    r"|(?<![\w+.:/-])(?:\(?0\d{1,4}\)?(?:[\s.-]?\d){7,12}|\d{10,15})(?![\w:])"
)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^\s:/@]*:)(?P<pw>[^\s@/]+)(?=@)")
_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` (a password, a client secret) wherever it appears in a log line."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def mask_phone(phone: str | None) -> str:
    """'+14165550123' -> '+1•••••••123': the country code's first digit and the last three."""
    if not phone:
        return ""
    digits = [c for c in phone if c.isdigit()]
    if len(digits) <= 4:
        return "•" * len(digits)
    prefix = "+" if phone.strip().startswith("+") else ""
    return f"{prefix}{digits[0]}{'•' * (len(digits) - 4)}{''.join(digits[-3:])}"


def mask_email(email: str | None) -> str:
    """'ana.silva@example.com' -> 'a•••@e•••.com'."""
    if not email or "@" not in email:
        return "•••" if email else ""
    local, _, domain = email.partition("@")
    tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
    return f"{local[:1]}•••@{domain[:1]}•••.{tld}"


def mask_text(text: str) -> str:
    """Mask every card number, e-mail address and phone-like digit run in free text."""
    text = mask_pans(text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "•••")
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}•••", text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}•••@{m.group(2)}•••.{m.group(3)}", text)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)


class MaskingFilter(logging.Filter):
    """A logging filter that masks personal data and secrets in the formatted message, the
    traceback and the stack of every record it sees."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the record, mask its template
            message = str(record.msg)
        masked = mask_text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def mask_exception(exc: BaseException) -> BaseException:
    """``exc`` with personal data and secrets masked in its text (its ``args`` rewritten in
    place, its type kept); if its text is computed some other way and still leaks, a
    :class:`MaskedError` of the masked text chained to it."""
    text = str(exc)
    masked = mask_text(text)
    if masked == text:
        return exc
    with contextlib.suppress(AttributeError, TypeError):
        exc.args = tuple(mask_text(a) if isinstance(a, str) else a for a in exc.args)
    if str(exc) == masked or mask_text(str(exc)) == str(exc):
        return exc
    return MaskedError(f"{type(exc).__name__}: {masked}")


class MaskedError(Exception):
    """The masked text of an exception whose own text could not be masked in place."""


def _all_handlers() -> list[logging.Handler]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    return [h for lg in loggers for h in lg.handlers]


def install_masking() -> None:
    """Attach :class:`MaskingFilter` to every handler of every logger (console, Prefect's API
    handlers, ``prefect.extra``): the safety net for a process whose Prefect logging was not
    configured with ``flows/logging.yml``. Idempotent."""
    for handler in _all_handlers():
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())

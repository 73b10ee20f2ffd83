"""Masking of personal data in log lines.

:func:`mask_phone` and :func:`mask_email` are for code that deliberately mentions one address.
:class:`MaskingFilter` is the safety net: installed on a handler (the CLI installs it on the
root and Prefect handlers), it rewrites any card number (PAN), phone-like digit run and e-mail
address in every record before it is written, including Prefect's own run logs.

Order in :func:`mask_text`: PANs first (:func:`tasks.pci.mask_pans`, all but the last four
digits become ``•``), then e-mail addresses, then phones. The PAN guard must see the whole
number: the phone pattern can match part of a card number (``411 111 1111`` of
``411 111 1111 111111``) and, run first, would leave the rest in clear and too few digits
for the PAN guard to recognise it.
"""

from __future__ import annotations

import logging
import re

from tasks.pci import mask_pans

__all__ = ["MaskingFilter", "install_masking", "mask_email", "mask_phone", "mask_text"]

_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-])[\w.-]*\.([A-Za-z]{2,})\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d(?:[\s().-]?\d){6,16}|\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4})(?![\w])"
)


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
    text = _EMAIL.sub(lambda m: f"{m.group(1)}•••@{m.group(2)}•••.{m.group(3)}", text)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)


class MaskingFilter(logging.Filter):
    """A logging filter that masks personal data in the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_masking() -> None:
    """Attach :class:`MaskingFilter` to every handler of the root and ``prefect`` loggers."""
    for name in ("", "prefect"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, MaskingFilter) for f in handler.filters):
                handler.addFilter(MaskingFilter())

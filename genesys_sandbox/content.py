"""Message content from response-management templates (BEHAVIOUR.md rows 51-53).

Contract
--------
* A ``CampaignSmsTemplate`` response gives the SMS text (its ``body`` text, else its first
  text); a ``CampaignEmailTemplate`` response gives the e-mail ``subject`` (text/plain) and
  ``body`` (text/plain and/or text/html).
* ``template_rendering=substitute`` (default): every ``{{Name}}`` placeholder (spaces inside
  the braces allowed) becomes the contact column ``Name``, else the ``defaultValue`` of the
  response's substitution ``Name``, else the empty string.  ``literal``: the template text
  is sent as written.  (Placeholder syntax and column mapping: no public source.)
* E-mail content comes only from ``emailConfig.contentTemplate``; contact columns named
  ``Subject``/``Body``/``Message`` are never read.  Without a template
  (``email_without_template=send_empty``) the mail is sent with empty subject and body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["PLACEHOLDER", "Content", "email_content", "render", "sms_template_text"]

PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


@dataclass(frozen=True)
class Content:
    subject: str
    body: str
    html: str | None = None


def render(text: str, data: dict[str, str], response: dict[str, Any], mode: str) -> str:
    if mode == "literal":
        return text
    defaults = {s["id"]: s.get("defaultValue") or "" for s in response.get("substitutions") or []}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if data.get(name):
            return data[name]
        return defaults.get(name, "")

    return PLACEHOLDER.sub(value, text)


def _text(response: dict[str, Any], kind: str, content_type: str | None = None) -> str | None:
    for text in response.get("texts") or []:
        if text.get("type", "body") == kind and (
            content_type is None or text.get("contentType") == content_type
        ):
            return str(text.get("content") or "")
    return None


def sms_template_text(response: dict[str, Any]) -> str:
    body = _text(response, "body")
    if body is None:
        texts = response.get("texts") or []
        body = str(texts[0].get("content") or "") if texts else ""
    return body


def email_content(response: dict[str, Any], data: dict[str, str], mode: str) -> Content:
    subject = _text(response, "subject") or ""
    plain = _text(response, "body", "text/plain")
    html = _text(response, "body", "text/html")
    body = plain if plain is not None else (html or "")
    return Content(
        subject=render(subject, data, response, mode),
        body=render(body, data, response, mode),
        html=render(html, data, response, mode) if html is not None else None,
    )

"""Where credentials may travel: loopback hosts, origins, and the https rule for base URLs.

* A host is *loopback* when it is ``localhost`` or an IP literal in ``127.0.0.0/8`` or ``::1``
  (``localhost.example.com`` or ``127.0.0.1.nip.io`` are not: they resolve elsewhere).
* A base URL that carries credentials (the Genesys API / login base) must be ``https``,
  except on a loopback host (the bundled sandbox); it has a host, no user info, no query and no
  fragment.
* An *origin* is (scheme, host, port) with the scheme's default port filled in: the unit the
  bearer token and the client secret are bound to.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "origin_of", "require_https_or_loopback"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback_host(host: str | None) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1`` (brackets allowed); anything else is not."""
    if not host:
        return False
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute URL, lower-cased, default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return scheme, host, port


def require_https_or_loopback(url: str, what: str) -> str:
    """``url`` if it may carry credentials; else ``ValueError`` naming ``what`` and the rule."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"{what} {url!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{what} must be an absolute https:// URL, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{what} must not carry user info (credentials go in their own fields)")
    if parts.query or parts.fragment:
        raise ValueError(f"{what} must not have a query or fragment, got {url!r}")
    if scheme != "https" and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"{what} must use https:// (plain http is only allowed on a loopback host: "
            f"127.0.0.0/8, ::1, localhost); got {url!r}"
        )
    return url

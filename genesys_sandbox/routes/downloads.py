"""``/api/v2/downloads/{id}`` and the signed URL it points at, as a real org serves them.

Contract
--------
* ``GET /api/v2/downloads/{downloadId}`` (bearer token, behind the gate like every API path):
  404 ``not.found`` for an unknown id; by default (``issueRedirect`` true) a 303 whose
  ``Location`` is a signed URL; with ``issueRedirect=false`` 200 ``{"url": <signed URL>}``
  (the SDK's ``UrlResponse``).
* The signed URL is ``<scheme>://<download host>:<port>/signed-downloads/{id}?Expires=<t>&
  Signature=<hex>``: another origin than the API (see ``SandboxConfig.download_host``), so a
  client that sends its bearer token only to the API origin never sends it here.  The
  signature is an HMAC over host, id and expiry with a key of this app.
* ``GET /signed-downloads/{id}`` needs no token and, like a storage service, refuses a request
  that carries an ``Authorization`` header (400 ``InvalidArgument``, counted in
  ``/sandbox/stats`` as ``signed_download_with_authorization``), a wrong host or signature
  (403 ``SignatureDoesNotMatch``), an expired URL (403 ``AccessDenied``, ``Request has
  expired``; real time, ``SandboxConfig.monotonic``) and an unknown id (404 ``NoSuchKey``).
  Errors are S3-style XML.  Otherwise 200 ``text/csv`` with the export file.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from genesys_sandbox.errors import not_found
from genesys_sandbox.routes.common import query_bool, sandbox_of
from genesys_sandbox.runtime import Sandbox

__all__ = ["routes", "signed_host"]

SIGNED_PATH = "/signed-downloads"


def signed_host(api_host: str, configured: str | None) -> str:
    """The host of signed URLs: configured, else the other loopback name, else ``files.<host>``."""
    if configured:
        return configured
    return {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(api_host, f"files.{api_host}")


def _signature(sandbox: Sandbox, host: str, download_id: str, expires: int) -> str:
    message = f"{host}\n{download_id}\n{expires}".encode()
    return hmac.new(sandbox.signing_key, message, hashlib.sha256).hexdigest()


def _xml_error(status: int, code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


async def get_download(request: Request) -> Response:
    sandbox = sandbox_of(request)
    download_id = request.path_params["downloadId"]
    redirect = query_bool(request, "issueRedirect", default=True)
    with sandbox.lock:
        known = download_id in sandbox.store.downloads
        expires = int(sandbox.config.monotonic() + sandbox.config.download_url_ttl_seconds)
    if not known:
        raise not_found("download", download_id)
    api_host = request.url.hostname or "localhost"
    host = signed_host(api_host, sandbox.config.download_host)
    query = urlencode(
        {"Expires": expires, "Signature": _signature(sandbox, host, download_id, expires)}
    )
    netloc = f"{host}:{request.url.port}" if request.url.port else host
    url = f"{request.url.scheme}://{netloc}{SIGNED_PATH}/{download_id}?{query}"
    if redirect:
        return RedirectResponse(url, status_code=303)
    return JSONResponse({"url": url})


async def get_signed(request: Request) -> Response:
    sandbox = sandbox_of(request)
    download_id = request.path_params["downloadId"]
    if "authorization" in request.headers:
        with sandbox.lock:
            sandbox.stats.signed_download_with_authorization += 1
        return _xml_error(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the Signature query parameter or the "
            "Authorization header should be specified",
        )
    try:
        expires = int(request.query_params.get("Expires", ""))
    except ValueError:
        expires = -1
    given = request.query_params.get("Signature", "")
    wanted = _signature(sandbox, request.url.hostname or "", download_id, expires)
    with sandbox.lock:
        if expires < 0 or not hmac.compare_digest(given, wanted):
            sandbox.stats.signed_download_bad_signature += 1
            return _xml_error(403, "SignatureDoesNotMatch", "The request signature is invalid.")
        if sandbox.config.monotonic() >= expires:
            sandbox.stats.signed_download_expired += 1
            return _xml_error(403, "AccessDenied", "Request has expired")
        content = sandbox.store.downloads.get(download_id)
        if content is not None:
            sandbox.stats.signed_downloads += 1
    if content is None:
        return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{download_id}.csv"'},
    )


routes = [
    Route("/api/v2/downloads/{downloadId}", get_download, methods=["GET"]),
    Route(SIGNED_PATH + "/{downloadId}", get_signed, methods=["GET"]),
]

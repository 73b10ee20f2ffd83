"""``POST /oauth/token``: the client-credentials grant, as the Genesys login host answers it.

Contract: form body ``grant_type=client_credentials``; the client authenticates with
``Authorization: Basic base64(id:secret)`` (or ``client_id``/``client_secret`` form fields).
200 ``{access_token, token_type: "bearer", expires_in}``; unknown client or wrong secret is
401 ``{"error": "invalid_client", "description"}``; another grant is 400
``unsupported_grant_type``.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from genesys_sandbox.auth import parse_basic_auth
from genesys_sandbox.routes.common import sandbox_of

__all__ = ["routes"]


async def token(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    credentials = parse_basic_auth(request.headers.get("authorization"))
    if credentials is None and "client_id" in form:
        credentials = (form["client_id"][0], form.get("client_secret", [""])[0])
    sandbox = sandbox_of(request)
    config = sandbox.config
    if credentials is None or config.clients.get(credentials[0]) != credentials[1]:
        return JSONResponse(
            {"error": "invalid_client", "description": "client credentials are invalid"},
            status_code=401,
        )
    grant = form.get("grant_type", [""])[0]
    if grant != "client_credentials":
        return JSONResponse(
            {"error": "unsupported_grant_type", "description": f"grant type '{grant}'"},
            status_code=400,
        )
    with sandbox.lock:
        issued = sandbox.tokens.issue(credentials[0], config.token_ttl_seconds)
        sandbox.stats.tokens_issued += 1
    return JSONResponse(
        {
            "access_token": issued.value,
            "token_type": "bearer",
            "expires_in": config.token_ttl_seconds,
        }
    )


routes = [Route("/oauth/token", token, methods=["POST"])]

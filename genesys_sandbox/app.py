"""The sandbox as an ASGI app: ``create_app(config)``.

Contract: every ``/api/v2`` answer — success or error, including unknown paths (404
``not.found``) and wrong methods (405) — carries ``ININ-Correlation-Id``; errors are Genesys
``ErrorBody`` JSON.  State lives in ``app.state.sandbox`` (:class:`~genesys_sandbox.runtime.
Sandbox`); the wire recording (off by default) in ``app.state.requests``.  Product code
never imports this package; tests and the demo serve it on 127.0.0.1.
"""

from __future__ import annotations

import uuid

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from genesys_sandbox.config import SandboxConfig
from genesys_sandbox.errors import ApiError
from genesys_sandbox.gate import ApiGate, quiet_injected_drops
from genesys_sandbox.routes import all_routes
from genesys_sandbox.runtime import Sandbox
from genesys_sandbox.wire import RequestLog, RequestRecorder

__all__ = ["create_app"]

_HTTP_CODES = {404: "not.found", 405: "method.not.allowed"}


def _correlation(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", "") or uuid.uuid4())


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response(_correlation(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith("/api/v2"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    code = _HTTP_CODES.get(exc.status_code, "bad.request")
    err = ApiError(exc.status_code, code, f"{exc.detail}: {request.method} {request.url.path}")
    return err.response(_correlation(request))


async def _server_error(request: Request, exc: Exception) -> Response:
    err = ApiError(500, "internal.server.error", "The sandbox failed to process the request.")
    return err.response(_correlation(request))


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """A fresh sandbox org with ``config`` (defaults: see :class:`SandboxConfig`)."""
    sandbox = Sandbox(config or SandboxConfig())
    quiet_injected_drops()
    routes = all_routes()
    requests = RequestLog(enabled=sandbox.config.record_requests)
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestRecorder, log=requests, routes=routes),
            Middleware(ApiGate, sandbox=sandbox),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.sandbox = sandbox
    app.state.requests = requests
    return app

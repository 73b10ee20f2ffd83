"""Run the sandbox for tests and demos: over real HTTP, or in process.

Contract
--------
* ``with serve(app) as url:`` serves ``app`` under uvicorn on 127.0.0.1 in a background
  thread, yields ``http://127.0.0.1:<free port>`` once it accepts connections, and stops the
  server (joining its thread) on exit.  Use it where the wire matters: dropped connections,
  the official SDK, other processes.
* ``asgi_client(app)`` is a synchronous ``httpx.Client`` that calls ``app`` in process (its
  own event loop, no sockets); app exceptions propagate to the caller.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.types import ASGIApp

__all__ = ["asgi_client", "serve"]


class _InProcessTransport(httpx.BaseTransport):
    def __init__(self, app: ASGIApp) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            response = await self._inner.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self._loop.run_until_complete(call())

    def close(self) -> None:
        self._loop.close()


def asgi_client(app: ASGIApp, *, base_url: str = "http://sandbox.test") -> httpx.Client:
    return httpx.Client(transport=_InProcessTransport(app), base_url=base_url)


@contextmanager
def serve(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="h11",
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"sandbox-{host}:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)

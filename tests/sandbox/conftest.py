"""Fixtures for the sandbox tests: in-process orgs and a sandbox served by uvicorn."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from genesys_sandbox import SandboxConfig, create_app
from genesys_sandbox.testing import asgi_client, serve
from tests.sandbox.org import FakeClock, Org


@pytest.fixture
def org_factory() -> Iterator[Callable[..., Org]]:
    made: list[Org] = []

    def make(config: SandboxConfig | None = None, *, token: bool = True) -> Org:
        app = create_app(config)
        org = Org(app, asgi_client(app))
        if token:
            org.new_token()
        made.append(org)
        return org

    yield make
    for org in made:
        org.http.close()


@pytest.fixture
def org(org_factory: Callable[..., Org]) -> Org:
    return org_factory()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox_server() -> Iterator[str]:
    """A default sandbox served by uvicorn on 127.0.0.1; yields its base URL."""
    with serve(create_app(SandboxConfig())) as url:
        yield url

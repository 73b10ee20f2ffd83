"""The sandbox's routes, one module per Genesys resource plus ``admin`` (``/sandbox/*``)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from genesys_sandbox.routes import (
    admin,
    analytics,
    campaigns,
    contactlists,
    conversations,
    datatables,
    dnclists,
    downloads,
    oauth,
    responses,
    rulesets,
    timesets,
)

__all__ = ["all_routes"]


def all_routes() -> list[BaseRoute]:
    return [
        *oauth.routes,
        *contactlists.routes,
        *downloads.routes,
        *dnclists.routes,
        *timesets.routes,
        *rulesets.routes,
        *campaigns.routes,
        *conversations.routes,
        *analytics.routes,
        *responses.routes,
        *datatables.routes,
        *admin.routes,
    ]

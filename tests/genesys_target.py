"""Where the Genesys integration tests run: the bundled sandbox (default, as in CI) or, with
``GENESYS_TEST_ORG=1``, a real Genesys Cloud org.

Real org: credentials and region come from the environment (``REMINDERS_GENESYS__REGION``,
``__CLIENT_ID``, ``__CLIENT_SECRET``, ``__SMS_SENDER``, ``__EMAIL_FROM_DOMAIN_ID``); every
object the tests create is named ``reminders-test-<run uuid>-...`` (``genesys.name_prefix``)
and :func:`cleanup` deletes everything under that prefix afterwards (campaigns turned off,
then deleted; contact lists, DNC lists, time sets, rule sets, responses, libraries). Tests that
need the sandbox's admin endpoints (virtual clock, ledger, faults, switches) are skipped there.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from tasks.errors import GenesysError
from tasks.genesys import GenesysClient
from tasks.settings import GenesysSettings

__all__ = [
    "CLEANUP_ORDER",
    "REAL_ORG_SWITCH",
    "REAL_ORG_VARIABLES",
    "SANDBOX_ONLY_REASON",
    "Target",
    "cleanup",
    "target_from_env",
]

log = logging.getLogger(__name__)

REAL_ORG_SWITCH = "GENESYS_TEST_ORG"
REAL_ORG_VARIABLES = (
    "REMINDERS_GENESYS__REGION",
    "REMINDERS_GENESYS__CLIENT_ID",
    "REMINDERS_GENESYS__CLIENT_SECRET",
    "REMINDERS_GENESYS__SMS_SENDER",
    "REMINDERS_GENESYS__EMAIL_FROM_DOMAIN_ID",
)
SANDBOX_ONLY_REASON = (
    "needs the sandbox's admin endpoints (virtual clock, ledger, faults or switches); "
    f"skipped on a real org ({REAL_ORG_SWITCH}=1)"
)
CLEANUP_ORDER = (
    "campaigns",
    "contact_lists",
    "dnc_lists",
    "time_sets",
    "rule_sets",
    "responses",
    "libraries",
)
"""Dependants first: a campaign holds lists, sets and its content template; a response holds
its library."""

_ENVIRONMENT = dict(os.environ)  # read at import: the test fixtures clear REMINDERS_* later


@dataclass(frozen=True)
class Target:
    real: bool
    settings: GenesysSettings
    secret: str
    prefix: str

    def name(self, suffix: str) -> str:
        """A test object's name: under the run's prefix on a real org."""
        return f"{self.prefix}-{suffix}" if self.real else suffix


def target_from_env(
    env: Mapping[str, str] | None = None, *, sandbox_url: str | None = None, run: str | None = None
) -> Target:
    """The target the switch selects. ``env`` defaults to the environment at import time."""
    env = _ENVIRONMENT if env is None else env
    if env.get(REAL_ORG_SWITCH, "") not in ("1", "true", "yes"):
        settings = GenesysSettings(
            base_url=sandbox_url, client_id="sandbox-client", requests_per_minute=6000
        )
        return Target(False, settings, "sandbox-secret", settings.name_prefix)
    missing = [v for v in REAL_ORG_VARIABLES if not env.get(v)]
    if missing:
        raise RuntimeError(f"{REAL_ORG_SWITCH}=1 needs {', '.join(missing)}")
    prefix = f"reminders-test-{run or uuid.uuid4().hex[:12]}"
    settings = GenesysSettings(
        region=env["REMINDERS_GENESYS__REGION"],
        client_id=env["REMINDERS_GENESYS__CLIENT_ID"],
        sms_sender=env["REMINDERS_GENESYS__SMS_SENDER"],
        email_from_domain_id=env["REMINDERS_GENESYS__EMAIL_FROM_DOMAIN_ID"],
        name_prefix=prefix,
        messages_per_minute=10,
    )
    return Target(True, settings, env["REMINDERS_GENESYS__CLIENT_SECRET"], prefix)


def _mine(entity: dict, prefix: str) -> bool:
    return str(entity.get("name") or "").startswith(prefix + "-")


def cleanup(client: GenesysClient, prefix: str) -> list[tuple[str, str]]:
    """Delete every object named ``<prefix>-...``, in :data:`CLEANUP_ORDER`; returns the
    (kind, name) pairs deleted. Campaigns are turned off first. A failed delete is logged and
    the rest goes on (the object keeps its prefix, so a later run can find it)."""
    if not prefix.startswith("reminders-test-"):
        raise ValueError(f"refusing to clean up outside a test prefix: {prefix!r}")
    deleted: list[tuple[str, str]] = []
    libraries = [lib for lib in client.list_named("libraries") if _mine(lib, prefix)]
    for kind in CLEANUP_ORDER:
        if kind == "responses":
            entities = [r for lib in libraries for r in client.list_responses(lib["id"])]
        elif kind == "libraries":
            entities = libraries
        else:
            entities = [e for e in client.list_named(kind) if _mine(e, prefix)]
        for entity in entities:
            try:
                _delete(client, kind, entity)
                deleted.append((kind, str(entity["name"])))
            except GenesysError as exc:
                log.warning("cleanup: %s %s not deleted: %s", kind, entity.get("name"), exc)
    return deleted


def _delete(client: GenesysClient, kind: str, entity: dict) -> None:
    if kind == "campaigns":
        if entity.get("campaignStatus") not in ("off", None):
            client.set_campaign_status(entity["id"], "off")
        client.delete_campaign(entity["id"])
    elif kind == "contact_lists":
        client.delete_contact_list(entity["id"])
    elif kind == "dnc_lists":
        client.delete_dnc_list(entity["id"])
    elif kind == "time_sets":
        client.delete_callable_time_set(entity["id"])
    elif kind == "rule_sets":
        client.delete_digital_rule_set(entity["id"])
    elif kind == "responses":
        client.delete_response(entity["id"])
    else:
        client.delete_library(entity["id"])

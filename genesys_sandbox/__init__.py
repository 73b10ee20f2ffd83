"""A Genesys Cloud sandbox: an ASGI app speaking the Platform API wire format on 127.0.0.1.

It serves the OAuth client-credentials grant, outbound contact lists and contacts, DNC lists,
callable time sets, messaging campaigns and agentless messages with Genesys' JSON shapes,
error bodies and limits; injects faults (429, 503, latency, dropped connections, token
expiry); runs campaigns on a virtual clock; and keeps a ledger of every message plus the
carrier's (Twilio-layout) records.  See ``/sandbox/*`` in :mod:`genesys_sandbox.routes.admin`.
"""

from __future__ import annotations

from genesys_sandbox.app import create_app
from genesys_sandbox.config import Faults, SandboxConfig

__all__ = ["Faults", "SandboxConfig", "create_app"]

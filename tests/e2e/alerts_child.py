"""The alerts service as its own process, for the SIGKILL test (tests/e2e/test_alerts_kill.py).

    python -m tests.e2e.alerts_child <warehouse-url> <sandbox-url> <port> <zone>

Wired like ``flows.alerts_service.service_from_settings`` (warehouse, directory, templates,
Genesys client, uvicorn with the worker running) but over one fixed customer, so no source
files are needed. ``REMINDERS_FAILPOINT`` arms one failpoint, as ``reminders alerts serve``
does.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime

import uvicorn

from flows.alerts_service import AlertService, create_alerts_app
from tasks.alerts import directory_from_frames
from tasks.failpoints import arm
from tasks.genesys import GenesysClient
from tasks.render import load_templates
from tasks.warehouse import make_engine, migrate
from tests.alerts_support import alert_settings, consent, customers

NUMBER = "+13175551000"


def main() -> None:
    warehouse, sandbox, port, zone = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    arm(os.environ.get("REMINDERS_FAILPOINT"))
    engine = make_engine(warehouse)
    migrate(engine)
    people = customers([{"customer_id": "C1", "phone_e164": NUMBER, "time_zones": [zone]}])
    events = consent([("C1", "sms", "opt_in", datetime(2026, 1, 1))])
    settings = alert_settings(
        poll_interval_seconds=3600,
        lookup_delay_seconds=0.5,
    )
    client = GenesysClient(
        api_base=sandbox,
        login_base=sandbox,
        client_id="sandbox-client",
        client_secret="sandbox-secret",
        requests_per_minute=6000,
        max_attempts=2,
        max_backoff_seconds=0.05,
    )
    service = AlertService(
        engine, directory_from_frames(people, events), load_templates(), settings, client
    )
    uvicorn.run(create_alerts_app(service), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()

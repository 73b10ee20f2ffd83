"""The client's agentless lookup against the sandbox under both readings of each switch.

``analytics_address_format``: analytics may write an SMS session's address as E.164 or as a
``tel:`` URI (no public source settles it); ``analytics_lag_seconds``: detail data may lag
the send. The client must find the message under every reading, never invent one, and
report several messages with one body as several (the caller holds them for a person).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import httpx
import pytest

from genesys_sandbox import SandboxConfig, create_app
from genesys_sandbox.testing import serve
from tasks.genesys import GenesysClient, RequestRejected

AT = datetime(2026, 11, 23, 15, 0)
SENDER, TO = "+13175550100", "+13175557777"


@contextmanager
def _sandbox(**switches: object) -> Iterator[tuple[GenesysClient, httpx.Client]]:
    config = SandboxConfig(clock_start=AT)
    config.set_switches(switches)
    with serve(create_app(config)) as url, httpx.Client(base_url=url) as admin:
        client = GenesysClient(
            api_base=url,
            login_base=url,
            client_id="sandbox-client",
            client_secret="sandbox-secret",
            sleep=lambda _s: None,
        )
        yield client, admin
        client.close()


def _find(client: GenesysClient, text: str, until: datetime = AT):
    return client.find_agentless_sms(
        SENDER, TO, text, start=AT - timedelta(minutes=2), end=until + timedelta(minutes=2)
    )


@pytest.mark.parametrize("address_format", ["e164", "tel_uri"])
def test_found_under_either_address_form(address_format: str) -> None:
    with _sandbox(analytics_address_format=address_format) as (client, _admin):
        sent = client.send_agentless_sms(SENDER, TO, "Payment received: $7.00")
        client.send_agentless_sms(SENDER, TO, "another alert, another body")
        found = _find(client, "Payment received: $7.00")
        assert [m["id"] for m in found.matches] == [sent["id"]]
        assert found.matches[0]["conversationId"] == sent["conversationId"]
        assert (found.candidates, found.unreadable) == (2, 0)
        assert _find(client, "never sent").matches == []
        # asking for one form only misses the other reading: why the client asks for both
        only_e164 = client.query_conversation_details(
            {
                "interval": "2026-11-23T00:00:00.000Z/2026-11-24T00:00:00.000Z",
                "segmentFilters": [
                    {"type": "and", "predicates": [{"dimension": "addressTo", "value": TO}]}
                ],
            }
        )
        assert only_e164["totalHits"] == (2 if address_format == "e164" else 0)


def test_lagging_details_find_nothing_until_they_catch_up() -> None:
    with _sandbox(analytics_lag_seconds=90) as (client, admin):
        client.send_agentless_sms(SENDER, TO, "late")
        assert _find(client, "late").candidates == 0  # looks like "not sent": it is not
        admin.post("/sandbox/run", json={"until": (AT + timedelta(seconds=91)).isoformat() + "Z"})
        assert len(_find(client, "late", AT + timedelta(seconds=91)).matches) == 1


def test_two_messages_with_one_body_are_both_reported() -> None:
    with _sandbox() as (client, _admin):
        client.send_agentless_sms(SENDER, TO, "twice")
        client.send_agentless_sms(SENDER, TO, "twice")
        assert len(_find(client, "twice").matches) == 2


def test_unmodelled_query_parts_are_refused() -> None:
    with _sandbox() as (client, _admin):
        for predicate in ({"dimension": "queueId", "value": "q"}, {"type": "metric"}):
            with pytest.raises(RequestRejected) as caught:
                client.query_conversation_details(
                    {
                        "interval": "2026-11-23T00:00:00Z/2026-11-24T00:00:00Z",
                        "segmentFilters": [{"type": "and", "predicates": [predicate]}],
                    }
                )
            assert (caught.value.status, caught.value.code) == (400, "not.modelled")

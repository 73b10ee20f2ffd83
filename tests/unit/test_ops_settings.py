"""No secrets in flow parameters; required settings fail at start with one line; prefect.yaml
declares per deployment the environment each flow needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from flows.common import settings_with
from tasks.errors import ConfigurationError
from tasks.settings import Settings, missing_settings, secret_override_paths

PREFECT_YAML = Path(__file__).resolve().parents[2] / "prefect.yaml"


@pytest.mark.parametrize(
    ("overrides", "paths"),
    [
        ({"genesys": {"client_secret": "x"}}, ["genesys.client_secret"]),
        ({"warehouse": {"url": "postgresql://u:pw@db/wh"}}, ["warehouse.url"]),
        ({"sources": {"sql_url": "postgresql+psycopg://r:s3@crm/crm"}}, ["sources.sql_url"]),
        ({"sources": {"customers": {"url": "mysql://a:b@h/d"}}}, ["sources.customers.url"]),
        ({"alerts": {"api_token": "t"}}, ["alerts.api_token"]),
        ({"x": {"db_password": "p"}}, ["x.db_password"]),
    ],
)
def test_secret_bearing_overrides_are_found(overrides, paths) -> None:
    assert secret_override_paths(overrides) == paths


@pytest.mark.parametrize(
    "overrides",
    [
        {"genesys": {"client_secret_block": "genesys-client-secret", "client_id": "abc"}},
        {"warehouse": {"url": "postgresql+psycopg://reminders@db:5432/wh", "url_block": "b"}},
        {"warehouse": {"url": "duckdb:///data/w.duckdb"}},
        {"genesys": {"client_secret": None}},
        {"cadence": {"steps": [-7, -1, 3]}},
    ],
)
def test_overrides_without_secrets_pass(overrides) -> None:
    assert secret_override_paths(overrides) == []


def test_settings_with_refuses_a_secret_in_overrides_naming_the_key() -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings_with({"genesys": {"client_secret": "hunter2-secret"}})
    message = str(caught.value)
    assert "genesys.client_secret" in message
    assert "hunter2-secret" not in message
    assert "\n" not in message


def test_missing_genesys_settings_fail_with_one_line_naming_them() -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings_with(None, flow="push-waves", needs=("genesys",))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("push-waves cannot start: missing settings ")
    for name in (
        "REMINDERS_GENESYS__CLIENT_ID",
        "REMINDERS_GENESYS__CLIENT_SECRET",
        "REMINDERS_GENESYS__REGION",
    ):
        assert name in message


def test_a_secret_block_satisfies_the_secret_requirement(monkeypatch) -> None:
    monkeypatch.setenv("REMINDERS_GENESYS__CLIENT_ID", "cid")
    monkeypatch.setenv("REMINDERS_GENESYS__REGION", "us-east-1")
    monkeypatch.setenv("REMINDERS_GENESYS__CLIENT_SECRET_BLOCK", "genesys-client-secret")
    assert settings_with(None, needs=("genesys",)).genesys.client_id == "cid"


def _deployments() -> list[dict]:
    return yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


NEEDS = {
    "flows/push_waves.py:push_waves": ("genesys",),
    "flows/collect_outcomes.py:collect_outcomes": ("genesys",),
}


@pytest.mark.parametrize("deployment", _deployments(), ids=lambda d: d["name"])
def test_each_deployment_declares_the_environment_its_flow_needs(deployment, monkeypatch) -> None:
    env = deployment["work_pool"]["job_variables"]["env"]
    assert env["PREFECT_LOGGING_SETTINGS_PATH"].endswith("/flows/logging.yml")
    for name, value in env.items():
        assert not re.search(r"secret|password", name, re.I) or name.endswith("_BLOCK"), name
        if name.startswith("REMINDERS_") and name != "REMINDERS_CONFIG":
            # a deploy-time template stands for a value the deployer supplies
            monkeypatch.setenv(name, "us-east-1" if "{{" in str(value) else str(value))
    settings = Settings()
    assert missing_settings(settings, NEEDS.get(deployment["entrypoint"], ())) == []


def test_run_instant_outside_prefect() -> None:
    from datetime import datetime, timedelta

    from flows.common import run_instant, utc_now

    assert run_instant("2026-11-23T06:00:00Z") == (datetime(2026, 11, 23, 6), "parameter")
    before = utc_now()
    at, source = run_instant(None)
    assert source == "clock"
    assert before <= at <= utc_now() + timedelta(seconds=1)

"""error_text: the masked ``Type: message`` of an error for ``runs.error``, the CLI's error
line and the failure artifact; a cut is marked, a GateFailed is never cut (its message ends
with the Data Docs path)."""

from __future__ import annotations

from types import SimpleNamespace

from flows.common import error_text
from tasks.errors import GateFailed


def test_a_long_error_is_cut_and_says_so() -> None:
    text = error_text(ValueError("x" * 1000), 400)
    assert text.startswith("ValueError: xxx")
    assert text.endswith("... [cut, 1012 characters]")
    assert len(text) == 400 + len("... [cut, 1012 characters]")
    assert error_text(ValueError("short"), 400) == "ValueError: short"


def test_a_gate_failure_is_never_cut_so_the_data_docs_path_survives() -> None:
    failures = [
        SimpleNamespace(message=f"rule_{i}: customers: 958 of 958 values are bad (100.0%), "
                        "above the threshold of 10.0%")
        for i in range(6)
    ]  # fmt: skip
    docs = "/srv/reminders/data/data_docs/ff42ed4e-0177-4506-9d10-6b67a99a8ac0/index.html"
    exc = GateFailed("input", failures, docs)
    text = error_text(exc, 400)
    assert len(text) > 400
    assert text == f"GateFailed: {exc}"
    assert text.endswith(f"Data Docs: {docs}.")
    assert "rule_5: customers: 958 of 958" in text

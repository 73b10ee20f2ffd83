"""Prefect's API log handler for the project's loggers (see ``flows/logging.yml``)."""

from __future__ import annotations

import logging

from prefect.logging.handlers import APILogHandler

__all__ = ["RunAPILogHandler"]


class RunAPILogHandler(APILogHandler):
    """Prefect's API log handler that drops records emitted outside a flow or task run
    (``reminders push --no-prefect``, unit tests) instead of warning about them."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "flow_run_id", None) is None:
            from prefect.context import FlowRunContext, TaskRunContext

            if FlowRunContext.get() is None and TaskRunContext.get() is None:
                return
        super().emit(record)

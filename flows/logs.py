"""Logging under Prefect: where the project's logging configuration is.

``flows/logging.yml`` is Prefect's default configuration with
:class:`tasks.masking.MaskingFilter` on every handler (console, API, worker API, debug) and the
project's loggers (``reminders``, ``tasks``, ``flows``, ``data_quality``) wired to the flow
run's API logs (:class:`flows.log_handlers.RunAPILogHandler`) and the console. Prefect reads
the file when ``PREFECT_LOGGING_SETTINGS_PATH`` names it: :func:`use_project_logging` sets that
(unless set already) before Prefect is imported (the CLI), and prefect.yaml sets it for every
deployment's flow-run process under ``prefect worker``. Importing :mod:`flows.common` also
attaches the filter to every handler that exists by then (:func:`tasks.masking.install_masking`),
so a process started without the variable is still masked. This module does not import Prefect.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LOGGING_CONFIG", "use_project_logging"]

LOGGING_CONFIG = Path(__file__).with_name("logging.yml")


def use_project_logging() -> None:
    """Point Prefect at ``flows/logging.yml`` (call before ``import prefect`` configures
    logging; an explicit ``PREFECT_LOGGING_SETTINGS_PATH`` wins)."""
    os.environ.setdefault("PREFECT_LOGGING_SETTINGS_PATH", str(LOGGING_CONFIG))

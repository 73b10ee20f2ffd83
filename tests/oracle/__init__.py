"""An independent oracle for the planning rules of issue 7.

It judges the pipeline's warehouse output from the raw input files, with code written from the
rule text (``rules.py``: zones, consent, payability, PANs; ``raw.py``: strict reading of the
CSV files; ``check.py``: the per-rule checks and the report). It imports nothing from
``tasks/``, ``flows/`` or ``data_quality/``.
"""

from tests.oracle.check import OracleSettings, format_report, oracle_report

__all__ = ["OracleSettings", "format_report", "oracle_report"]

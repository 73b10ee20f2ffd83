"""The sandbox's own (carrier-side) SMS segment count, and the sandbox's independence.

Expected values come from 3GPP TS 23.038 (the default alphabet and extension table, written
here as the code points of the Unicode consortium's GSM 03.38 mapping, not taken from the code
under test), from Twilio's segment calculator examples, and from arithmetic on the 140-octet
payload (160/153 septets, 70/67 UCS-2 units).
"""

from __future__ import annotations

import ast
import math
import random
from pathlib import Path

import pytest

from genesys_sandbox.segments import carrier_segments

# TS 23.038 6.2.1 default alphabet as Unicode code points, position 0x00..0x7F (0x1B = escape).
DEFAULT_CODE_POINTS = [
    0x40, 0xA3, 0x24, 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, 0x0A, 0xD8, 0xF8, 0x0D, 0xC5, 0xE5,
    0x394, 0x5F, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, None, 0xC6, 0xE6,
    0xDF, 0xC9,
    0x20, 0x21, 0x22, 0x23, 0xA4, *range(0x25, 0x40),
    0xA1, *range(0x41, 0x5B), 0xC4, 0xD6, 0xD1, 0xDC, 0xA7,
    0xBF, *range(0x61, 0x7B), 0xE4, 0xF6, 0xF1, 0xFC, 0xE0,
]  # fmt: skip
# TS 23.038 6.2.1.1 extension table (ESC + code): FF ^ { } \ [ ~ ] | €
EXTENSION_CODE_POINTS = [0x0C, 0x5E, 0x7B, 0x7D, 0x5C, 0x5B, 0x7E, 0x5D, 0x7C, 0x20AC]

BASIC = [chr(c) for c in DEFAULT_CODE_POINTS if c is not None]
EXTENDED = [chr(c) for c in EXTENSION_CODE_POINTS]


def test_the_tables_have_the_sizes_the_standard_gives() -> None:
    assert len(DEFAULT_CODE_POINTS) == 128
    assert len(set(BASIC)) == 127
    assert not set(BASIC) & set(EXTENDED)


@pytest.mark.parametrize("char", BASIC, ids=[f"U+{ord(c):04X}" for c in BASIC])
def test_every_default_alphabet_character_is_one_septet(char: str) -> None:
    fits = carrier_segments(char * 160)
    assert (fits.encoding, fits.units, fits.parts) == ("GSM-7", 160, (160,))
    over = carrier_segments(char * 161)
    assert (over.units, over.parts) == (161, (153, 8))


@pytest.mark.parametrize("char", EXTENDED, ids=[f"U+{ord(c):04X}" for c in EXTENDED])
def test_every_extension_character_is_two_septets_and_never_split(char: str) -> None:
    fits = carrier_segments(char * 80)
    assert (fits.encoding, fits.units, fits.parts) == ("GSM-7", 160, (160,))
    # 81 escapes = 162 septets: 76 pairs (152) fill part one, the 77th would need 154 > 153.
    over = carrier_segments(char * 81)
    assert (over.units, over.parts) == (162, (152, 10))


@pytest.mark.parametrize(
    "char",
    ["`", "ç", "á", "’", "“", "…", "–", "\u00a0", "\t", "😀", "Ж", "中"],
)
def test_one_character_outside_both_tables_makes_the_whole_message_ucs2(char: str) -> None:
    units = 2 if ord(char) > 0xFFFF else 1
    result = carrier_segments("Payment due " + char)
    assert result.encoding == "UCS-2"
    assert result.units == 12 + units
    assert result.count == 1


# Twilio's segment calculator examples and the worked table of carriers-and-compliance.md 3.
VECTORS = [
    ("Hi Ana, your payment of $120.00 is due 05/12. Reply STOP to opt out.", "GSM-7", 68, (68,)),
    ("x" * 160, "GSM-7", 160, (160,)),
    ("x" * 161, "GSM-7", 161, (153, 8)),
    ("x" * 306, "GSM-7", 306, (153, 153)),
    ("x" * 307, "GSM-7", 307, (153, 153, 1)),
    ("Balance €" + "x" * 151, "GSM-7", 161, (153, 8)),
    ("x" * 152 + "€" + "x" * 152, "GSM-7", 306, (152, 153, 1)),
    ("’" + "x" * 69, "UCS-2", 70, (70,)),
    ("’" + "x" * 70, "UCS-2", 71, (67, 4)),
    ("’" + "x" * 133, "UCS-2", 134, (67, 67)),
    ("’" + "x" * 134, "UCS-2", 135, (67, 67, 1)),
    ("Paid 😀", "UCS-2", 7, (7,)),
    ("👍🏽", "UCS-2", 4, (4,)),
    ("’" + "x" * 65 + "😀" + "x" * 66, "UCS-2", 134, (66, 67, 1)),
    ("😀" * 35, "UCS-2", 70, (70,)),
    ("😀" * 36, "UCS-2", 72, (66, 6)),
    ("", "GSM-7", 0, ()),
]


@pytest.mark.parametrize(("body", "encoding", "units", "parts"), VECTORS)
def test_published_vectors(body: str, encoding: str, units: int, parts: tuple[int, ...]) -> None:
    result = carrier_segments(body)
    assert (result.encoding, result.units, result.parts, result.count) == (
        encoding,
        units,
        parts,
        len(parts),
    )


def test_parts_respect_the_payload_on_random_bodies() -> None:
    rng = random.Random(7)
    alphabet = ["a", "€", "{", "é", "’", "😀", " ", "\n"]
    for _ in range(300):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400)))
        result = carrier_segments(body)
        per_part = 153 if result.encoding == "GSM-7" else 67
        assert sum(result.parts) == result.units
        if result.count > 1:
            assert max(result.parts) <= per_part
            assert result.count >= math.ceil(result.units / per_part)
            # a part is only short of the limit by less than the widest character (2 units)
            assert all(p >= per_part - 1 for p in result.parts[:-1])


# --- independence: nothing under genesys_sandbox/ imports the product -----------------------

FORBIDDEN = ("tasks", "flows", "data_quality")
SANDBOX = Path(__file__).resolve().parents[2] / "genesys_sandbox"


def product_imports(source: str) -> list[str]:
    """Every module named by an import statement or a literal dynamic import in ``source``
    whose top-level package is one of the product's."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names = [first.value]
        found += [n for n in names if n.split(".")[0] in FORBIDDEN]
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from tasks.sms import segment", ["tasks.sms"]),
        ("import flows.push_waves as p", ["flows.push_waves"]),
        ("def f():\n    import data_quality\n", ["data_quality"]),
        ("import importlib\nimportlib.import_module('tasks.sms')", ["tasks.sms"]),
        ("__import__('flows')", ["flows"]),
        ("from genesys_sandbox.segments import carrier_segments\nimport taskset", []),
        ("from . import store", []),
    ],
)
def test_the_import_checker_sees_product_imports(source: str, expected: list[str]) -> None:
    assert product_imports(source) == expected


def test_nothing_under_genesys_sandbox_imports_the_product() -> None:
    files = sorted(SANDBOX.rglob("*.py"))
    assert len(files) > 10  # the walk found the package
    offenders = {
        str(path.relative_to(SANDBOX)): hits
        for path in files
        if (hits := product_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


@pytest.mark.parametrize(("body", "encoding", "units", "parts"), [v for v in VECTORS if v[0]])
def test_the_product_count_agrees_with_the_carrier_on_the_vectors(
    body: str, encoding: str, units: int, parts: tuple[int, ...]
) -> None:
    # Two independent implementations of the same rules; the reconciliation of billed
    # segments compares them, so on the published vectors they must both be right.
    from tasks.sms import segment

    product = segment(body)
    assert (product.encoding, product.units, product.count) == (encoding, units, len(parts))

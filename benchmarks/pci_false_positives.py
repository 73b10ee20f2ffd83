"""Benchmark the PCI guard: false-positive rate on realistic reminder bodies, and scan speed.

    ./dev bench benchmarks/pci_false_positives.py --bodies 100000

Renders N messages with the bundled templates through ``tasks.render.render_messages`` (the
real guard, the real ``secrets.token_urlsafe`` payment-link tokens) from realistic values: names
from the sample-data name pools (Latin, accented, Cyrillic, Devanagari, CJK, Hangul, Maori),
locales and currencies of many countries (babel formats the amounts: grouping, NBSP, narrow
NBSP, Arabic and Persian digits where the locale uses them), one to three currencies per
message, due dates over two years, invoice counts 1-12 and every cadence step. None of these
bodies contains a card number, so every block is a false positive. Then:

* false positives: bodies (or e-mail subjects) with a PAN hit, whatever their render status,
  and messages whose render status is ``pci_pan``; each hit is printed with its context;
* near misses: bodies with a digit run of 13+ digits (a run that is checked at all);
* scan throughput of ``find_pans`` over the rendered texts (bodies per second, MB/s), and of
  ``mask_pans`` (what the log filter and the quarantine run);
* the same false-positive count for the variants of the settings an operator can change
  (support phone of another country, other date formats), and for 1,000,000 payment links.

Prints figures only; there are no assertions. Speed depends on the machine's load.
"""

from __future__ import annotations

import argparse
import random
import secrets
import time
from datetime import date, timedelta

import polars as pl

from tasks.pci import _NON_DIGITS, _RUN, contains_pan, find_pans, fold_text, mask_pans
from tasks.render import load_templates, render_messages
from tasks.sample_data import _name_pools
from tasks.settings import RenderSettings

# locale -> currencies a customer there is billed in (the first is the usual one)
LOCALES: dict[str, tuple[str, ...]] = {
    "en_US": ("USD", "CAD", "EUR"),
    "es_US": ("USD", "MXN"),
    "en_CA": ("CAD", "USD"),
    "fr_CA": ("CAD", "USD"),
    "en_GB": ("GBP", "EUR"),
    "en_IN": ("INR", "USD"),
    "hi_IN": ("INR",),
    "ne_NP": ("NPR", "INR"),
    "en_AU": ("AUD", "NZD"),
    "en_NZ": ("NZD", "AUD"),
    "mi_NZ": ("NZD",),
    "de_DE": ("EUR", "CHF"),
    "de_CH": ("CHF", "EUR"),
    "fr_FR": ("EUR",),
    "es_MX": ("MXN", "USD"),
    "ja_JP": ("JPY", "USD"),
    "ko_KR": ("KRW",),
    "zh_CN": ("CNY", "HKD"),
    "ru_RU": ("RUB",),
    "uk_UA": ("UAH", "EUR"),
    "id_ID": ("IDR",),
    "ar_EG": ("EGP", "USD"),
    "ar_SA": ("SAR",),
    "fa_IR": ("IRR",),
    "bn_BD": ("BDT",),
    "th_TH": ("THB",),
    "pt_BR": ("BRL",),
}
# a typical bill in major units, per currency (amounts spread log-uniformly 0.02x .. 20x)
TYPICAL = {
    "USD": 120,
    "CAD": 150,
    "EUR": 110,
    "GBP": 95,
    "INR": 4_500,
    "NPR": 7_000,
    "AUD": 180,
    "NZD": 190,
    "CHF": 110,
    "MXN": 2_000,
    "JPY": 15_000,
    "KRW": 150_000,
    "CNY": 800,
    "HKD": 900,
    "RUB": 9_000,
    "UAH": 4_000,
    "IDR": 1_500_000,
    "EGP": 3_000,
    "SAR": 450,
    "IRR": 5_000_000,
    "BDT": 12_000,
    "THB": 3_500,
    "BRL": 600,
}
ZERO_DECIMAL = {"JPY", "KRW", "IDR", "IRR"}
STEPS = (-7, -3, -1, 0, 1, 3, 7, 14, 30)


def messages(n: int, rng: random.Random) -> pl.DataFrame:
    pools = _name_pools()
    firsts = pools["first"].to_list()
    fulls = [f"{a} {b}" for a, b in zip(pools["first"], pools["last"], strict=True)]
    locales = list(LOCALES)
    rows = []
    for i in range(n):
        locale = rng.choice(locales)
        k = rng.choices((1, 2, 3), weights=(85, 12, 3))[0]
        currencies = sorted(set(rng.sample(LOCALES[locale], min(k, len(LOCALES[locale])))))
        amounts = []
        for c in currencies:
            major = TYPICAL[c] * 10 ** rng.uniform(-1.7, 1.3)
            amounts.append(int(major) if c in ZERO_DECIMAL else int(major * 100))
        who = rng.randrange(len(firsts))
        rows.append(
            {
                "message_key": f"m{i}",
                "channel": rng.choice(("sms", "email")),
                "cadence_step": rng.choice(STEPS),
                "due_date": date(2026, 1, 1) + timedelta(days=rng.randrange(730)),
                "invoice_count": rng.choices(range(1, 9), weights=(60, 20, 8, 4, 2, 2, 1, 1))[0]
                if rng.random() < 0.999
                else rng.randrange(13, 200),
                "first_name": firsts[who] if rng.random() < 0.85 else None,
                "full_name": fulls[who],
                "locale": locale,
                "currencies": currencies,
                "amounts_minor": amounts,
            }
        )
    return pl.DataFrame(rows)


def runs_of(text: str) -> list[str]:
    return [_NON_DIGITS.sub("", m.group()) for m in _RUN.finditer(fold_text(text))]


def report_false_positives(label: str, out: pl.DataFrame, *, show: int = 10) -> int:
    texts = list(zip(out["body"], out["subject"], out["render_status"], strict=True))
    blocked = [(b, s) for b, s, _ in texts if contains_pan(b) or (s and contains_pan(s))]
    status = sum(1 for *_, st in texts if st == "pci_pan")
    long_runs = sum(
        1 for b, s, _ in texts if any(len(r) >= 13 for r in runs_of(b + "\n" + (s or "")))
    )
    n = len(texts)
    print(
        f"{label}: {n} bodies, false positives {len(blocked)} ({len(blocked) / n:.4%}), "
        f"render_status pci_pan {status}, bodies with a 13+ digit run {long_runs}"
    )
    for body, subject in blocked[:show]:
        hits = find_pans(body) + find_pans(subject or "")
        print(f"    hit {hits} in {(subject + ' | ') if subject else ''}{body!r}")
    return len(blocked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bodies", type=int, default=100_000)
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    templates = load_templates()

    frame = messages(args.bodies, rng)
    t = time.perf_counter()
    out = render_messages(frame, templates=templates, settings=RenderSettings())
    render_s = time.perf_counter() - t
    print(f"rendered {out.height} messages in {render_s:.1f} s (guard included)")
    print("statuses:", dict(out["render_status"].value_counts().iter_rows()))
    report_false_positives("default settings", out)

    texts = [t for b, s in zip(out["body"], out["subject"], strict=True) for t in (b, s) if t]
    chars = sum(len(t) for t in texts)
    non_ascii = sum(1 for t in texts if not t.isascii())
    t = time.perf_counter()
    for text in texts:
        find_pans(text)
    scan_s = time.perf_counter() - t
    print(
        f"find_pans: {len(texts)} texts ({non_ascii} non-ASCII), {chars / 1e6:.1f} M chars in "
        f"{scan_s:.2f} s: {len(texts) / scan_s:,.0f} texts/s, {chars / scan_s / 1e6:.1f} M chars/s"
    )
    t = time.perf_counter()
    for text in texts:
        mask_pans(text)
    mask_s = time.perf_counter() - t
    print(f"mask_pans: {len(texts) / mask_s:,.0f} texts/s")
    carded = [f"{text} card 4111 1111 1111 1111" for text in texts[:20_000]]
    t = time.perf_counter()
    found = sum(1 for text in carded if contains_pan(text))
    hit_s = time.perf_counter() - t
    print(
        f"find_pans on texts with a card appended: {found}/{len(carded)} found, "
        f"{len(carded) / hit_s:,.0f} texts/s"
    )

    sample = frame.head(min(args.bodies, 20_000))
    for label, settings in (
        ("support phone +44 20 7946 0958", RenderSettings(support_phone="+44 20 7946 0958")),
        ("support phone +86 10 6552 9988", RenderSettings(support_phone="+86 10 6552 9988")),
        ("support phone +1-800-555-0100", RenderSettings(support_phone="+1-800-555-0100")),
        ("date dd.MM.yyyy", RenderSettings(date_format="dd.MM.yyyy")),
        ("date yyyy-MM-dd", RenderSettings(date_format="yyyy-MM-dd")),
    ):
        report_false_positives(
            label, render_messages(sample, templates=templates, settings=settings), show=3
        )

    base = RenderSettings().payment_link_base
    link_hits = [
        link
        for link in (base + secrets.token_urlsafe(16) for _ in range(args.links))
        if contains_pan(f"Pay securely: {link} Reply STOP")
    ]
    print(
        f"payment links: {len(link_hits)} of {args.links} random token_urlsafe(16) links hit "
        f"({len(link_hits) / args.links:.6%}) {link_hits[:3]}"
    )


if __name__ == "__main__":
    main()

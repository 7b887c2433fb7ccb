"""The reconciliation report: a table for a person, JSON for tools, CSV for a spreadsheet.

The report is an operator's document: it names the entity ids behind every difference
(appointment, charge, payment, adjustment, journal ids and ledger documents), never patient
data. Amounts are minor units in JSON and CSV; the table shows them as decimals (counts,
unit ``XXX``, as whole numbers).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from carebus_shared.reconcile.domain import ROWS, VISITS, Difference, Figure, SiteDay

COUNT_UNIT: Final = "XXX"


def figures_json(result: SiteDay) -> dict[str, Any]:
    """The figures of one site and day: what the store keeps and ``json`` prints."""
    figures: dict[str, Any] = {}
    for row in ROWS:
        figure = result.figures[row]
        entry: dict[str, Any] = {"count": figure.count}
        if row == VISITS:
            entry["charged"] = figure.matched or 0
        else:
            entry["sums_minor"] = dict(sorted(figure.sums.items()))
        entry["posted"] = figure.posted
        if row != VISITS:
            entry["posted_sums_minor"] = dict(sorted(figure.posted_sums.items()))
        entry["confirmed"] = figure.confirmed
        figures[row] = entry
    return {
        "source": figures,
        "ledger": {
            "journals": result.journals,
            "postings": result.postings,
            "confirmed": result.confirmed,
            "accounts": [
                {"account": a, "currency": c, "debit_minor": d, "credit_minor": k}
                for (a, c), (d, k) in sorted(result.accounts.items())
            ],
        },
    }


def difference_json(d: Difference) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "state": "explained" if d.explained else "unexplained",
        "entity": d.entity,
        "entity_id": d.entity_id,
        "journal_ids": list(d.journal_ids),
        "documents": list(d.documents),
        "amount_minor": d.amount_minor,
        "currency": d.currency,
        "exception_id": d.exception_id,
        "explanation": d.explanation,
    }


def as_json(results: Sequence[SiteDay]) -> str:
    body = {
        "unexplained": sum(r.unexplained for r in results),
        "explained": sum(r.explained for r in results),
        "site_days": [
            {
                "site": r.site,
                "day": r.day.isoformat(),
                "unexplained": r.unexplained,
                "explained": r.explained,
                **figures_json(r),
                "differences": [difference_json(d) for d in r.differences],
            }
            for r in results
        ],
    }
    return msgspec.json.format(msgspec.json.encode(body), indent=1).decode()


# -- table ----------------------------------------------------------------------------------
def amount(minor: int, currency: str) -> str:
    if currency == COUNT_UNIT:
        return f"{minor:,}"
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) / 100:,.2f}"


def _sums(sums: dict[str, int]) -> str:
    if not sums:
        return ""
    if len(sums) == 1:
        (currency, minor), = sums.items()  # fmt: skip
        return f"{amount(minor, currency)} {currency}"
    return "; ".join(f"{amount(m, c)} {c}" for c, m in sorted(sums.items()))


def _figure_line(row: str, figure: Figure) -> str:
    extra = f"   ({figure.matched or 0} charged)" if row == VISITS else ""
    return (
        f"  {row:18} {figure.count:>7} {_sums(figure.sums):>18} {figure.posted:>8} "
        f"{_sums(figure.posted_sums):>18} {figure.confirmed:>10}{extra}"
    )


def _difference_line(d: Difference) -> str:
    parts = [f"{d.entity} {d.entity_id}"]
    if d.amount_minor is not None and d.currency:
        parts.append(f"{amount(d.amount_minor, d.currency)} {d.currency}")
    if d.journal_ids:
        parts.append(f"journal {', '.join(d.journal_ids)}")
    if d.documents:
        parts.append(f"documents {', '.join(d.documents)}")
    state = "explained  " if d.explained else "UNEXPLAINED"
    why = f"  — {d.explanation}" if d.explanation else ""
    return f"    {state} {d.kind:28} {'  '.join(parts)}{why}"


def as_table(results: Sequence[SiteDay]) -> str:
    unexplained = sum(r.unexplained for r in results)
    explained = sum(r.explained for r in results)
    lines = [
        f"reconciliation: {len(results)} site-day(s), {unexplained} unexplained and "
        f"{explained} explained difference(s)"
    ]
    for r in results:
        lines += [
            "",
            f"{r.day.isoformat()}  site {r.site}: {r.unexplained} unexplained, "
            f"{r.explained} explained",
            f"  {'source':18} {'count':>7} {'amount':>18} {'posted':>8} {'amount':>18} "
            f"{'confirmed':>10}",
        ]
        lines += [_figure_line(row, r.figures[row]) for row in ROWS]
        lines.append(
            f"  ledger: {r.journals} journal(s), {r.postings} posting(s), {r.confirmed} confirmed"
        )
        if r.accounts:
            lines.append(f"    {'account':8} {'unit':5} {'debit':>16} {'credit':>16}")
            lines += [
                f"    {a:8} {c:5} {amount(d, c):>16} {amount(k, c):>16}"
                for (a, c), (d, k) in sorted(r.accounts.items())
            ]
        if r.differences:
            lines.append("  differences")
            lines += [_difference_line(d) for d in r.differences]
    return "\n".join(lines)


# -- CSV ------------------------------------------------------------------------------------
CSV_COLUMNS: Final = (
    "row", "site", "day", "name", "currency", "count", "amount_minor", "posted",
    "posted_minor", "confirmed", "debit_minor", "credit_minor", "kind", "state", "entity",
    "entity_id", "journal_ids", "documents", "exception_id", "explanation",
)  # fmt: skip


def _csv_rows(r: SiteDay) -> list[dict[str, Any]]:
    at = {"site": r.site, "day": r.day.isoformat()}
    rows = []
    for name in ROWS:
        figure = r.figures[name]
        for currency in sorted(set(figure.sums) | set(figure.posted_sums)) or [""]:
            rows.append(
                {
                    "row": "figure",
                    **at,
                    "name": name,
                    "currency": currency,
                    "count": figure.count,
                    "amount_minor": figure.sums.get(currency, ""),
                    "posted": figure.posted,
                    "posted_minor": figure.posted_sums.get(currency, ""),
                    "confirmed": figure.confirmed,
                }
            )
    for (account, currency), (debit, credit) in sorted(r.accounts.items()):
        rows.append(
            {
                "row": "account",
                **at,
                "name": account,
                "currency": currency,
                "debit_minor": debit,
                "credit_minor": credit,
            }
        )
    for d in r.differences:
        data = difference_json(d)
        rows.append(
            {
                "row": "difference",
                **at,
                **data,
                "name": d.entity,
                "currency": d.currency or "",
                "amount_minor": "" if d.amount_minor is None else d.amount_minor,
                "journal_ids": " ".join(d.journal_ids),
                "documents": " ".join(d.documents),
            }
        )
    return rows


def as_csv(results: Sequence[SiteDay]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerows(_csv_rows(r))
    return out.getvalue()


RENDERERS: Final = {"table": as_table, "json": as_json, "csv": as_csv}

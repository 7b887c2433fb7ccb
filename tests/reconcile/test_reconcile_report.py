"""The report's three forms and the command's arguments (no servers)."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json

import pytest

from carebus_shared.cli import main as carebus
from carebus_shared.cli.reconcile import day, duration
from carebus_shared.reconcile.domain import (
    CHARGE,
    CHARGED_WITHOUT_POSTING,
    POSTED_TWICE,
    Difference,
    SiteDay,
)
from carebus_shared.reconcile.report import CSV_COLUMNS, as_csv, as_json, as_table

DAY = dt.date(2025, 3, 10)


def site_day() -> SiteDay:
    result = SiteDay("S1", DAY)
    charges = result.figures["charges"]
    charges.count, charges.sums, charges.posted, charges.posted_sums = (
        2,
        {"USD": 25000},
        1,
        {"USD": 12500},
    )
    result.journals, result.postings, result.confirmed = 1, 2, 1
    result.accounts[("4000", "USD")] = [0, 25000]
    result.accounts[("9040", "XXX")] = [3, 0]
    result.differences = [
        Difference(CHARGED_WITHOUT_POSTING, "S1", DAY, CHARGE, "CH2", amount_minor=12500,
                   currency="USD"),
        Difference(POSTED_TWICE, "S1", DAY, CHARGE, "CH1", ("JE-1",), ("GL-1", "GL-2"),
                   exception_id=4, explanation="exception 4: x (open)"),
    ]  # fmt: skip
    return result


def test_the_table_shows_figures_side_by_side_and_every_difference() -> None:
    table = as_table([site_day()])
    assert "1 unexplained and 1 explained" in table
    assert "2025-03-10  site S1: 1 unexplained, 1 explained" in table
    assert "charges                  2         250.00 USD        1         125.00 USD" in table
    assert "ledger: 1 journal(s), 2 posting(s), 1 confirmed" in table
    assert "9040     XXX                  3                0" in table  # counts stay counts
    assert "UNEXPLAINED charged_without_posting      charge CH2  125.00 USD" in table
    assert "journal JE-1  documents GL-1, GL-2  — exception 4: x (open)" in table


def test_json_and_csv_carry_the_same_in_minor_units() -> None:
    body = json.loads(as_json([site_day()]))
    assert (body["unexplained"], body["explained"]) == (1, 1)
    (one,) = body["site_days"]
    assert one["source"]["charges"] == {
        "count": 2, "sums_minor": {"USD": 25000}, "posted": 1,
        "posted_sums_minor": {"USD": 12500}, "confirmed": 0,
    }  # fmt: skip
    assert one["ledger"]["accounts"][0] == {
        "account": "4000", "currency": "USD", "debit_minor": 0, "credit_minor": 25000,
    }  # fmt: skip
    assert [d["state"] for d in one["differences"]] == ["unexplained", "explained"]
    rows = list(csv.DictReader(io.StringIO(as_csv([site_day()]))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert {r["row"] for r in rows} == {"figure", "account", "difference"}
    (twice,) = [r for r in rows if r["kind"] == POSTED_TWICE]
    assert (twice["entity_id"], twice["documents"], twice["exception_id"]) == (
        "CH1",
        "GL-1 GL-2",
        "4",
    )
    (charges,) = [r for r in rows if r["row"] == "figure" and r["name"] == "charges"]
    assert (charges["amount_minor"], charges["posted_minor"]) == ("25000", "12500")


def test_durations_and_days() -> None:
    assert duration("90s") == dt.timedelta(seconds=90)
    assert duration("15m") == dt.timedelta(minutes=15)
    assert duration("1h") == dt.timedelta(hours=1)
    assert duration("2d") == dt.timedelta(days=2)
    assert duration("0") == dt.timedelta(0)
    for bad in ("1w", "h", "-1h", "1.5h"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration(bad)
    assert day("2025-03-10") == DAY
    today = dt.datetime.now(dt.UTC).date()
    assert day("yesterday") == today - dt.timedelta(days=1)
    with pytest.raises(argparse.ArgumentTypeError):
        day("10/03/2025")


def test_every_with_a_date_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert carebus.main(["reconcile", "--every", "1h", "--date", "2025-03-10"]) == 2
    assert "drop --date" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        carebus.main(["reconcile", "--format", "xml"])
    assert exit_.value.code == 2

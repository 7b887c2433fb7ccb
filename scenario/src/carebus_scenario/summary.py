"""Text a newcomer reads: what was sent, what was posted, what was refused, the trial balance."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from carebus_scenario.endpoints import Endpoints
from carebus_scenario.generator import Scenario
from carebus_scenario.observe import Observation
from carebus_scenario.oracle import Balance, Expectation, LedgerKey
from carebus_scenario.player import PlayReport

Print = Callable[[str], None]

# Trial-balance columns: (account, heading); balances are debit minus credit.
TB_COLUMNS = (
    ("4000", "revenue 4000"),
    ("1200", "AR payer 1200"),
    ("1210", "AR patient 1210"),
    ("1010", "cash 1010"),
    ("4900", "contract 4900"),
    ("9040", "visits 9040"),
    ("9100", "forecast 9100"),
)


def dollars(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) / 100:,.2f}"


def _amount(ledger: dict[LedgerKey, Balance], site: str, account: str) -> str:
    found = [b for (s, a, _), b in ledger.items() if s == site and a == account]
    if not found:
        return "-"
    net = sum(b.net_minor for b in found)
    # Counts (unit XXX) are whole numbers; money is in dollars.
    return f"{net:,}" if account.startswith("90") else dollars(net)


def print_scenario(scenario: Scenario, expected: Expectation, out: Print) -> None:
    config = scenario.config
    channels = ", ".join(f"{n:,} {c}" for c, n in sorted(scenario.channels().items()))
    out(
        f"scenario: {config.sites} sites, {len(scenario.deliveries):,} inputs ({channels}), "
        f"{scenario.events:,} events; seed {config.seed}, day {config.day}"
    )
    faults = Counter(reason for (_, _, reason), n in expected.exceptions.items() for _ in range(n))
    out(
        f"oracle: {expected.journal_count:,} journals, "
        f"{sum(expected.exceptions.values()):,} exceptions "
        f"({', '.join(f'{r} {n}' for r, n in sorted(faults.items()))}), "
        f"{expected.outcomes['stale']} stale update(s) the mapper must skip"
    )


def print_summary(
    scenario: Scenario,
    expected: Expectation,
    report: PlayReport,
    observed: Observation,
    problems: list[str],
    endpoints: Endpoints,
    out: Print,
    logs: str = ".data/logs",
) -> None:
    duplicates = sum(1 for s in report.sent if s.delivery.duplicate)
    refused = sum(1 for s in report.sent if s.delivery.refusal is not None)
    seconds = max(0.001, report.finished_at - report.started_at)
    out("")
    out("== demo summary ==")
    out(
        f"inputs sent        {len(report.sent):,} in {seconds:,.1f} s "
        f"({report.events / seconds:,.0f} events/s offered)"
    )
    out(f"  accepted         {len(report.sent) - refused:,} (of which {duplicates} sent twice)")
    out(f"  refused          {refused}")
    for answer, n in sorted(report.answers().items()):
        out(f"    {answer:<22} {n:,}")
    out(
        f"journals posted    {observed.entry_count:,} (oracle: {expected.journal_count:,}); "
        f"unbalanced: {observed.unbalanced_entries}"
    )
    out(f"exceptions         {sum(observed.exceptions.values()):,} (oracle: "
        f"{sum(expected.exceptions.values()):,})")  # fmt: skip
    for (stage, category, reason), n in sorted(observed.exceptions.items()):
        out(f"    {stage:<34} {category:<11} {reason:<24} {n:>5}")
    by_site: dict[str, list[str]] = {}
    for (site, reason), n in sorted(observed.exceptions_by_site.items()):
        by_site.setdefault(site, []).append(f"{reason} {n}")
    out("  by site: " + "; ".join(f"{s}: {', '.join(r)}" for s, r in sorted(by_site.items())))
    if observed.quarantine:
        parked = ", ".join(f"{r} {n}" for r, n in sorted(observed.quarantine.items()))
        out(f"  quarantined (waiting for master data): {parked}")
    out("")
    out("trial balance per site (debit - credit; dollars, counts for 90xx)")
    sites = sorted({site for site, _, _ in observed.ledger})
    header = f"  {'site':<10}{'journals':>9}" + "".join(f"{h:>17}" for _, h in TB_COLUMNS)
    out(header)
    for site in sites:
        row = f"  {site:<10}{observed.entries.get(site, 0):>9,}"
        row += "".join(f"{_amount(observed.ledger, site, a):>17}" for a, _ in TB_COLUMNS)
        out(row)
    if endpoints.remittance_site in sites:
        out(
            f"  ({endpoints.remittance_site}: 835 postings that name no claim, e.g. a payer's "
            "interest (PLB); the rest are booked to their claim's site. "
            "CAREBUS_BILLING_ADAPTER_DEFAULT_SITE says where they go.)"
        )
    out("")
    if problems:
        out(f"the ledger differs from the oracle in {len(problems)} place(s):")
        for problem in problems[:20]:
            out(f"  {problem}")
    else:
        out("the ledger equals the oracle, per site and account, to the cent.")
    out("")
    out("where to look next")
    if endpoints.console_http:
        out(f"  console           {endpoints.console_http}/   (pipeline, exceptions, traces, "
            "quarantine, sites)")  # fmt: skip
    out(f"  quarantine        {endpoints.validator_http}/v1/quarantine")
    out("  exceptions        carebus exceptions list   (re-drive: carebus exceptions redrive ID)")
    out("  backlogs          carebus status")
    out(f"  reconciliation    carebus reconcile --date {scenario.config.day}   "
        "(scheduling, billing and the ledger side by side)")  # fmt: skip
    out("  ledger            psql: carebus_erp_poster.trial_balance_by_account, "
        "activity_by_site_day")  # fmt: skip
    out(f"  API docs          {endpoints.validator_http}/schema (each service serves /schema)")
    out(f"  logs              {logs}/<service>.log")

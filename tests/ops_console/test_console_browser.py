"""The ops console in a real browser (headless Debian chromium driven by Playwright), on the
real pipeline: the five services, the ops console and the ERP sandbox as processes on a NATS
server and a database of the test's own, fed a modest day of the demo's kind of traffic.

A person, through the console only (plus the master-data API for the fix itself):
- finds an appointment parked for an unknown provider, tries to release it (still parked),
  fixes the provider's cross-reference, and watches the appointment release and post in its
  trace;
- opens the unbalanced 835's exception, re-drives a corrected file, sees its claims posted,
  and once: a second re-drive is refused and the ERP holds no more journals than before.
The person signs in with their own API key (an operator's scopes); every action goes
through the confirm dialog and is recorded under their client's name. Screenshots
are saved under .data/console/; any console error or uncaught error in a page fails the test.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest

from carebus_scenario.config import SMALL
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.network import SIU_SOURCE
from carebus_scenario.observe import wait_quiet
from carebus_scenario.player import Player, load_masterdata
from carebus_scenario.stack import ServiceStack, provision_stack
from carebus_shared.auth.guard import CSRF_FIELD, SESSION_COOKIE, csrf_token
from carebus_shared.auth.scopes import ROLES
from carebus_shared.devstack.nats_server import NatsServer
from tests.support import auth
from tests.support.erp_poster import Sandbox
from tests.support.stacks import own_database

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / ".data" / "console"
ACTOR = "dana.ops"  # the person's client: the console records actions under this name
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
STEP_TIMEOUT_S = 45.0


def _chromium() -> str | None:
    for candidate in (os.environ.get("CAREBUS_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


CHROMIUM = _chromium()
if CHROMIUM is None:
    pytest.skip(
        "no chromium found (/usr/bin/chromium or on PATH): `make install` installs Debian's "
        "chromium where it can; the console's browser test needs it",
        allow_module_level=True,
    )
async_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")


@dataclass
class Suite:
    services: ServiceStack
    sandbox: Sandbox
    scenario: Scenario
    key: str  # the person's API key (an operator)

    @property
    def console(self) -> str:
        return self.services.http("ops-console")


@pytest.fixture
async def suite(
    database_url: str, private_nats: NatsServer, tmp_path: Path
) -> AsyncIterator[Suite]:
    scenario = generate(SMALL.with_(sites=2, appointments_per_site=10))
    async with own_database(database_url, "carebus_console") as db:
        await provision_stack(private_nats.url, db)
        sandbox = Sandbox(db, tmp_path / "sandbox.log", rate_limit=0, confirm_delay_s=0)
        await sandbox.start()
        services = ServiceStack(
            private_nats.url, db, tmp_path, remittance_site=SMALL.remittance_site,
            extra_env={"erp-poster": {
                "CAREBUS_ERP_POSTER_CONNECTOR": "http",
                "CAREBUS_ERP_POSTER_ERP_BASE_URL": sandbox.url,
                "CAREBUS_ERP_POSTER_CONFIRM_POLL_S": "0.5",
                "CAREBUS_ERP_POSTER_ERP_RATE_LIMIT_PER_S": "500",
            }},
        )  # fmt: skip
        # The console reaches the others where this stack put them (free ports).
        names = ("scheduling-adapter", "billing-adapter", "masterdata-validator", "mapper")
        services.env["ops-console"] |= {
            "CAREBUS_OPS_CONSOLE_SCHEDULING_ADAPTER_URL": services.http("scheduling-adapter"),
            "CAREBUS_OPS_CONSOLE_BILLING_ADAPTER_URL": services.http("billing-adapter"),
            "CAREBUS_OPS_CONSOLE_VALIDATOR_URL": services.http("masterdata-validator"),
            "CAREBUS_OPS_CONSOLE_SERVICE_URLS": ",".join(
                f"{name}={services.http(name)}" for name in (*names, "erp-poster")
            ),
        }
        try:
            await asyncio.to_thread(services.start)
            await load_masterdata(scenario.network, services.endpoints.validator_http)
            report = await Player(scenario, services.endpoints, tmp_path / "play").play()
            assert report.surprises == []
            await wait_quiet(private_nats.url, db, timeout_s=60)
            key = await auth.client(db, ACTOR, ROLES["operator"])
            yield Suite(services, sandbox, scenario, key)
        finally:
            await asyncio.to_thread(services.stop)
            sandbox.stop()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + STEP_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {STEP_TIMEOUT_S}s waiting for {what}")


async def confirm(page: Any, button: Any) -> None:
    """Press an action's button, confirm it in its dialog, wait for the result."""
    await button.click()
    dialog = page.locator("#confirm-dialog")
    await dialog.wait_for(state="visible")
    async with page.expect_navigation():
        await page.click("#confirm-ok")


def balanced(remittance: bytes) -> bytes:
    """The 835 with its misstated claim corrected: the claim whose CLP04 is a cent over its
    service lines' payments, and the BPR total with it."""
    segments = remittance.decode().split("~\n")
    claims: list[tuple[int, Decimal]] = []  # (segment index, stated - lines)
    for i, segment in enumerate(segments):
        fields = segment.split("*")
        if fields[0] == "CLP":
            claims.append((i, Decimal(fields[4])))
        elif fields[0] == "SVC" and claims:
            index, open_amount = claims[-1]
            claims[-1] = (index, open_amount - Decimal(fields[3]))
    misstated = [index for index, off in claims if off == Decimal("0.01")]
    assert len(misstated) == 1, "the unbalanced 835 has one claim a cent over its lines"

    def minus_a_cent(segment: str, position: int) -> str:
        fields = segment.split("*")
        fields[position] = str(Decimal(fields[position]) - Decimal("0.01"))
        return "*".join(fields)

    segments[misstated[0]] = minus_a_cent(segments[misstated[0]], 4)
    bpr = next(i for i, s in enumerate(segments) if s.startswith("BPR*"))
    segments[bpr] = minus_a_cent(segments[bpr], 2)
    return "~\n".join(segments).encode()


async def sandbox_journals(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM carebus_erp_sandbox.journal WHERE status <> 'rejected'"
            )
        )
    finally:
        await conn.close()


async def test_an_operator_fixes_a_parked_appointment_and_an_unbalanced_835(
    suite: Suite,
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1360, "height": 900})
            page.set_default_timeout(STEP_TIMEOUT_S * 1000)
            page.on(
                "console",
                lambda msg: (
                    errors.append(f"console {msg.type}: {msg.text}")
                    if msg.type == "error"
                    else None
                ),
            )
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("dialog", lambda dialog: errors.append(f"a script opened a {dialog.type}"))
            await _parked_appointment(page, suite)
            await _unbalanced_835(page, suite)
            await _what_the_console_refuses(page, suite)
        finally:
            await browser.close()
    assert errors == []


async def _sign_in(page: Any, suite: Suite) -> None:
    """Without a session the console leads to its sign-in page, then back where it was."""
    await page.goto(f"{suite.console}/console/sites")
    assert "/console/login" in page.url
    # A wrong key is refused (401, the form again); outside the browser, whose console would
    # rightly log the 401 as an error.
    async with httpx.AsyncClient(base_url=suite.console) as client:
        refused = await client.post("/console/login", data={"key": "cbk_not-a-key"})
    assert refused.status_code == 401
    assert "unknown or revoked" in refused.text
    assert "set-cookie" not in refused.headers
    await page.fill("input[name=key]", suite.key)
    async with page.expect_navigation():
        await page.click("form.login button[type=submit]")
    assert page.url.endswith("/console/sites")
    assert await page.locator("header .who").inner_text() == ACTOR


async def _parked_appointment(page: Any, suite: Suite) -> None:
    console = suite.console
    await _sign_in(page, suite)
    mapper = page.locator("#stages tbody tr[data-consumer='mapper'] td")
    # Its rate needs two samples of the ack floor (every 5 s): on a loaded machine the first
    # look may come before the second, and the page shows "–" until then.
    for _ in range(12):
        await page.goto(f"{console}/")
        if await mapper.nth(3).inner_text() != "–":
            break
        await asyncio.sleep(1.0)
    assert await mapper.nth(1).inner_text() == "VALIDATED"
    assert float(await mapper.nth(3).inner_text()) >= 0  # its rate, sampled while the day ran
    assert await mapper.nth(9).inner_text() == "ready"
    await page.screenshot(path=SHOTS / "pipeline.png", full_page=True)

    # The quarantine: the appointment waiting for an unknown provider's cross-reference.
    await page.click("nav >> text=Quarantine")
    row = page.locator("#parked tbody tr", has_text="unknown_provider").first
    appointment = await row.get_attribute("data-entity")
    assert appointment
    waiting = await row.locator("td").nth(6).inner_text()
    match = re.search(rf"xref:{SIU_SOURCE}:provider:(\S+?)(,|$)", waiting)
    assert match, f"the parked row names the cross-reference it waits for: {waiting!r}"
    await page.screenshot(path=SHOTS / "quarantine.png", full_page=True)

    # Released by hand before the fix: it stays parked, and the console says why.
    await confirm(page, row.get_by_role("button", name="Release"))
    assert await page.locator("#outcome").inner_text() == "Still unresolved"

    # Its trace: quarantined.
    await page.goto(f"{console}/console/trace/appointment/{appointment}")
    assert await page.locator("#standing").inner_text() == "quarantined"
    site = (await page.locator("h1 .hint").inner_text()).removeprefix("site ").strip()

    # The fix, through the master-data API: the unknown code is this site's provider.
    provider = next(s for s in suite.scenario.network.sites if s.code == site).providers[0]
    async with httpx.AsyncClient(
        base_url=suite.services.endpoints.validator_http, headers=auth.HEADERS
    ) as client:
        answer = await client.post(
            "/v1/cross-references",
            json={
                "source_system": SIU_SOURCE, "kind": "provider",
                "source_code": match.group(1), "canonical_id": provider.provider_id,
            },
        )  # fmt: skip
        assert answer.status_code == 201, answer.text

    # Released by itself, then posted (and confirmed by the ERP): the trace shows it.
    async def posted() -> bool:
        await page.reload()
        return await page.locator("#standing").inner_text() in ("posted", "confirmed")

    await eventually(posted, f"appointment {appointment} posted in its trace")
    own = page.locator(f"#timeline li[data-kind='appointment'][data-id='{appointment}']")
    stages = await own.evaluate_all("items => items.map(i => i.dataset.stage)")
    assert "quarantined" in stages
    assert "validated" in stages[stages.index("quarantined") :], "validated after the fix"
    await page.screenshot(path=SHOTS / "trace.png", full_page=True)

    await page.goto(f"{console}/console/quarantine")
    assert await page.locator(f"#parked tr[data-entity='{appointment}']").count() == 0


async def _unbalanced_835(page: Any, suite: Suite) -> None:
    console = suite.console
    await page.goto(f"{console}/console/exceptions")
    await page.fill("#filters input[name=reason]", "claim_unbalanced")
    async with page.expect_navigation():
        await page.click("#filters button[type=submit]")
    records = page.locator("#records tbody tr")
    assert await records.count() == 1
    await page.screenshot(path=SHOTS / "exceptions.png", full_page=True)
    async with page.expect_navigation():
        await records.first.locator("a").first.click()
    record_url = page.url
    assert await page.locator("#status").inner_text() == "open"

    unbalanced = next(
        d.payload
        for d in suite.scenario.deliveries
        if d.refusal is not None and d.refusal.reason == "claim_unbalanced"
    )
    before = await sandbox_journals(suite.services.database_url)
    await page.set_input_files(
        "#corrected-file",
        files=[{"name": "corrected.835", "mimeType": "text/plain", "buffer": balanced(unbalanced)}],
    )
    await confirm(page, page.get_by_role("button", name="Re-drive corrected"))
    assert await page.locator("#outcome").inner_text() == "Re-driven"
    await page.screenshot(path=SHOTS / "redriven.png", full_page=True)
    produced = page.locator("ul.links a", has_text="trace event")
    assert await produced.count() >= 1

    # What the corrected file produced: posted, and confirmed by the ERP.
    links = [await a.get_attribute("href") or "" for a in await produced.all()]

    async def all_posted() -> bool:
        for href in links:
            await page.goto(f"{console}{href}")
            if await page.locator("#standing").count() == 0:
                return False  # the tracker has not seen it yet
            if await page.locator("#standing").inner_text() not in ("posted", "confirmed"):
                return False
        return True

    await eventually(all_posted, "the corrected 835's entities posted")
    journals = 0
    for href in links:  # each journal of each entity posted once
        await page.goto(f"{console}{href}")
        linked = await page.locator("#linked tbody tr", has_text="journal").count()
        posted = page.locator("#timeline li[data-kind='journal'][data-stage='posted']")
        assert await posted.count() == linked
        journals += linked
    assert journals >= 1

    # Posted once: the record is closed (no action offered), and the ERP gets nothing more.
    after = await sandbox_journals(suite.services.database_url)
    assert after > before
    await page.goto(record_url)
    assert await page.locator("#status").inner_text() == "redriven"
    assert await page.locator("form[data-confirm]").count() == 0
    history = page.locator("#history tbody tr")
    assert ACTOR in await history.last.inner_text()
    assert "redriven" in await history.last.inner_text()
    await wait_quiet(suite.services.nats_url, suite.services.database_url, timeout_s=30)
    assert await sandbox_journals(suite.services.database_url) == after


async def _what_the_console_refuses(page: Any, suite: Suite) -> None:
    # The shared exceptions API is mounted beside the pages: the re-driven record is closed.
    async with httpx.AsyncClient(base_url=suite.console, headers=auth.HEADERS) as client:
        listed = (await client.get("/v1/exceptions", params={"reason": "claim_unbalanced"})).json()
    assert [item["status"] for item in listed["items"]] == ["redriven"]
    # Whatever a page shows is escaped: markup in a filter comes back as text.
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    await page.goto(f"{suite.console}/console/exceptions?{urlencode({'site': hostile})}")
    assert await page.locator("#filters input[name=site]").input_value() == hostile
    # An action without a session, without the session's CSRF token, or unconfirmed is
    # refused and changes nothing.
    await page.goto(f"{suite.console}/console/quarantine")
    parked = await page.locator("#parked tbody tr[data-parked]").count()
    assert parked >= 1, "the day leaves events parked (inactive provider, unknown payer)"
    first = await page.locator("#parked tbody tr[data-parked]").first.get_attribute("data-parked")
    action = f"/console/quarantine/{first}/discard"
    confirmed = {"confirmed": "yes", "note": "test"}
    async with httpx.AsyncClient(base_url=suite.console) as client:
        anonymous = await client.post(action, data=confirmed)
    async with httpx.AsyncClient(
        base_url=suite.console, cookies={SESSION_COOKIE: suite.key}
    ) as client:
        forged = await client.post(action, data=confirmed)
        token = {CSRF_FIELD: csrf_token(suite.key)}
        unconfirmed = await client.post(action, data={"note": "test", **token})
    assert anonymous.status_code in (302, 303)
    assert anonymous.headers["location"].startswith("/console/login")
    assert (forged.status_code, unconfirmed.status_code) == (403, 400)
    await page.reload()
    assert await page.locator("#parked tbody tr[data-parked]").count() == parked

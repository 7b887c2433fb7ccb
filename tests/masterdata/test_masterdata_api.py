"""The governed master-data API, against the service running as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats

from carebus_contracts import decode_message
from carebus_contracts.masterdata import ChangeKind, ProviderChanged
from carebus_masterdata_validator.domain.kinds import BY_NAME
from carebus_masterdata_validator.domain.npi import npi_check_digit_ok
from carebus_shared import audit
from tests.support.masterdata import VALID_NPIS, eventually, unique
from tests.support.service_process import ServiceProcess

SAMPLE_BAD_NPI = "9941339109"


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_a_stale_if_match_gets_412_and_nothing_changes(api: httpx.AsyncClient) -> None:
    payer_id = unique("PY-")
    body = {"payer_id": payer_id, "name": "Acme Health", "payer_class": "commercial"}
    created = await api.post("/v1/payers", json=body)
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'

    read = await api.get(f"/v1/payers/{payer_id}")
    etag = read.headers["etag"]
    first = await api.put(
        f"/v1/payers/{payer_id}",
        json={**body, "name": "Acme Health Plan"},
        headers={"If-Match": etag},
    )
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"2"'

    # A second steward still holds version 1.
    stale = await api.put(
        f"/v1/payers/{payer_id}",
        json={**body, "payer_class": "medicare"},
        headers={"If-Match": etag},
    )
    problem = _problem(stale, 412)
    assert problem["current_version"] == 2
    _problem(await api.put(f"/v1/payers/{payer_id}", json=body), 428)
    _problem(await api.post(f"/v1/payers/{payer_id}/deactivate", headers={"If-Match": etag}), 412)
    current = (await api.get(f"/v1/payers/{payer_id}")).json()
    assert (current["name"], current["payer_class"]) == ("Acme Health Plan", "commercial")

    # Who changed what, when, from what to what.
    history = (await api.get(f"/v1/payers/{payer_id}/history")).json()["items"]
    assert [(h["action"], h["version"], h["actor"]) for h in history] == [
        ("update", 2, "test-steward"),
        ("create", 1, "test-steward"),
    ]
    assert history[0]["before"]["name"] == "Acme Health"
    assert history[0]["after"]["name"] == "Acme Health Plan"

    deactivated = await api.post(
        f"/v1/payers/{payer_id}/deactivate", headers={"If-Match": first.headers["etag"]}
    )
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["active"] is False
    assert deactivated.headers["etag"] == '"3"'


def test_the_sample_npi_is_used_by_the_reference_samples(samples_dir: Path) -> None:
    # PROVENANCE.md: the SIU/PV1 samples carry this NPI, and it fails the Luhn check.
    siu = samples_dir / "hl7v2" / "microsoft-FHIR-Converter" / "data" / "SampleData" / "Hl7v2"
    assert any(SAMPLE_BAD_NPI in p.read_text("utf-8", "replace") for p in siu.glob("SIU*.hl7"))
    assert not npi_check_digit_ok(SAMPLE_BAD_NPI)


async def test_an_npi_failing_the_check_digit_is_refused(api: httpx.AsyncClient) -> None:
    provider_id = unique("P-")
    response = await api.post(
        "/v1/providers", json={"provider_id": provider_id, "npi": SAMPLE_BAD_NPI, "name": "X"}
    )
    problem = _problem(response, 422)
    assert problem["field"] == "npi"
    assert "check digit" in problem["errors"][0]["message"]
    assert (await api.get(f"/v1/providers/{provider_id}")).status_code == 404

    # Malformed (not ten digits): refused by the contract, naming the field too.
    problem = _problem(
        await api.post(
            "/v1/providers", json={"provider_id": provider_id, "npi": "12", "name": "X"}
        ),
        400,
    )
    assert problem["field"] == "npi"


async def test_references_must_exist_and_problems_name_the_field(api: httpx.AsyncClient) -> None:
    department = {"department_id": unique("D-"), "name": "Cardiology", "cost_centre_id": "NOPE"}
    problem = _problem(await api.post("/v1/departments", json=department), 422)
    assert problem["field"] == "cost_centre_id"
    location = {
        "location_id": unique("L-"),
        "name": "North",
        "place_of_service": "11",
        "time_zone": "Mars/Olympus",
    }
    assert _problem(await api.post("/v1/locations", json=location), 422)["field"] == "time_zone"
    payer = {
        "payer_id": unique("PY-"),
        "name": "P",
        "payer_class": "commercial",
        "valid_from": "2025-02-01",
        "valid_to": "2025-01-01",
    }
    assert _problem(await api.post("/v1/payers", json=payer), 422)["field"] == "valid_to"
    xref = {"source_system": "epic", "kind": "payer", "source_code": "X", "canonical_id": "NOPE"}
    assert _problem(await api.post("/v1/cross-references", json=xref), 422)["field"] == (
        "canonical_id"
    )
    assert _problem(await api.get("/v1/payers", params={"colour": "red"}), 400)["field"] == (
        "colour"
    )


def _csv(rows: list[str]) -> bytes:
    return ("provider_id,npi,name,active,valid_from,valid_to\n" + "\n".join(rows) + "\n").encode()


async def test_bulk_import_reports_every_row_and_writes_all_or_nothing(
    api: httpx.AsyncClient,
) -> None:
    ids = [unique("P-") for _ in range(4)]
    bad = _csv(
        [
            f"{ids[0]},{VALID_NPIS[4]},Alpha,true,2024-01-01,",
            f"{ids[1]},{SAMPLE_BAD_NPI},Beta,true,,",
            f"{ids[2]},1497758545x,Gamma,,,",
            f"{ids[0]},{VALID_NPIS[4]},Alpha again,,,",
        ]
    )
    response = await api.post(
        "/v1/providers/import", content=bad, headers={"Content-Type": "text/csv"}
    )
    report = _problem(response, 422)
    assert report["committed"] is False
    assert [(r["row"], r["status"]) for r in report["rows"]] == [
        (2, "created"),
        (3, "error"),
        (4, "error"),
        (5, "error"),
    ]
    assert [r["errors"][0]["field"] for r in report["rows"][1:]] == ["npi", "npi", "provider_id"]
    assert report["field"] == "npi"
    # Nothing was written, not even the good row.
    assert (await api.get(f"/v1/providers/{ids[0]}")).status_code == 404

    good = [
        {"provider_id": ids[0], "npi": VALID_NPIS[4], "name": "Alpha", "valid_from": "2024-01-01"},
        {"provider_id": ids[3], "npi": "1598721318", "name": "Delta"},
    ]
    dry = await api.post("/v1/providers/import", params={"dry_run": "true"}, json=good)
    assert dry.status_code == 200, dry.text
    assert (dry.json()["committed"], dry.json()["counts"]["created"]) == (False, 2)
    assert (await api.get(f"/v1/providers/{ids[0]}")).status_code == 404

    done = await api.post("/v1/providers/import", json=good)
    assert done.status_code == 200, done.text
    assert done.json()["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "error": 0}
    again = await api.post("/v1/providers/import", json=[good[0], {**good[1], "name": "D."}])
    assert again.json()["counts"] == {"created": 0, "updated": 1, "unchanged": 1, "error": 0}
    assert (await api.get(f"/v1/providers/{ids[3]}")).headers["etag"] == '"2"'


async def test_lists_page_and_filter(api: httpx.AsyncClient) -> None:
    prefix = unique("CC-")
    rows = [{"cost_centre_id": f"{prefix}-{i}", "name": f"Centre {prefix} {i}"} for i in range(5)]
    rows[4]["active"] = False  # type: ignore[assignment]
    assert (await api.post("/v1/cost-centres/import", json=rows)).status_code == 200
    seen: list[str] = []
    cursor = None
    for _ in range(10):  # bounded
        params = {"limit": "2", "q": prefix.lower(), "active": "true"}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/cost-centres", params=params)).json()
        seen += [item["cost_centre_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"{prefix}-{i}" for i in range(4)]


async def test_every_change_reaches_the_stream_and_the_kv_bucket(
    api: httpx.AsyncClient, md_nats_url: str
) -> None:
    provider_id = unique("P-")
    body = {"provider_id": provider_id, "npi": VALID_NPIS[0], "name": "Kv"}
    assert (await api.post("/v1/providers", json=body)).status_code == 201
    spec = BY_NAME["provider"]
    nc = await nats.connect(md_nats_url)
    try:
        kv = await nc.jetstream().key_value("masterdata_view")

        async def value() -> bytes | None:
            try:
                return (await kv.get(spec.kv_key(provider_id))).value
            except Exception:
                return None

        raw = await eventually(value, "the provider in the KV bucket")
        event = decode_message("masterdata.provider.changed.v1.ENTERPRISE", raw)
        assert isinstance(event, ProviderChanged)
        assert (event.provider.provider_id, event.entity_version) == (provider_id, 1)
        assert event.change is ChangeKind.UPSERTED
        stream = await nc.jetstream().get_last_msg("MASTERDATA", "masterdata.provider.>")
        assert stream.headers is not None
        assert stream.headers["Nats-Msg-Id"] == event.event_id
    finally:
        await nc.close()


async def test_openapi_documents_the_api(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/schema/openapi.json")).json()
    create = schema["paths"]["/v1/providers"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Provider"
    }
    assert "/v1/quarantine/{parked_id}/release" in schema["paths"]


def test_the_cli_imports_a_file(md_service: ServiceProcess, tmp_path: Path) -> None:
    payer = unique("PY-")
    path = tmp_path / "payers.csv"
    path.write_text(f"payer_id,name,payer_class\n{payer},CLI Payer,medicare\n")
    cli = Path(sys.executable).parent / "carebus-masterdata"
    done = subprocess.run(
        [str(cli), "import", str(path), "--kind", "payers", "--url", md_service.base],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["created"] == 1


async def test_the_audit_records_imports(api: httpx.AsyncClient, md_db: asyncpg.Connection) -> None:
    payer = unique("PY-")
    rows = [{"payer_id": payer, "name": "Audited", "payer_class": "self_pay"}]
    response = await api.post("/v1/payers/import", json=rows, headers={"X-Request-Id": "req-42"})
    assert response.status_code == 200
    row = await md_db.fetchrow(
        "SELECT actor, action, request_id, before, after FROM carebus_masterdata_validator.audit "
        "WHERE kind = 'payer' AND record_id = $1",
        payer,
    )
    assert (row["actor"], row["action"], row["request_id"], row["before"]) == (
        "test-steward",
        "import",
        "req-42",
        None,
    )
    assert json.loads(row["after"])["name"] == "Audited"
    [entry] = await audit.entries(md_db, action="masterdata_change", target_id=payer)
    assert (entry.actor, entry.target_kind, entry.outcome) == ("test-steward", "payer", "import")
    assert audit.detail_of(entry)["request_id"] == "req-42"
    # A dry run changes nothing, so it is not audited.
    other = unique("PY-")
    dry = [{"payer_id": other, "name": "Dry", "payer_class": "self_pay"}]
    assert (await api.post("/v1/payers/import?dry_run=true", json=dry)).status_code == 200
    assert await audit.entries(md_db, target_id=other) == []


async def test_numbers_past_bigint_are_refused_as_bad_input_not_a_server_error(
    api: httpx.AsyncClient,
) -> None:
    past_bigint = "99999999999999999999"
    _problem(await api.get(f"/v1/quarantine?cursor={past_bigint}"), 400)
    _problem(await api.get(f"/v1/quarantine/{past_bigint}"), 400)
    _problem(await api.post(f"/v1/quarantine/{past_bigint}/discard"), 400)
    _problem(await api.get("/v1/quarantine/12345678"), 404)


async def test_text_postgresql_cannot_store_is_a_422_naming_the_field(
    api: httpx.AsyncClient,
) -> None:
    payer = {"payer_id": unique("PY-"), "name": "Acme\u0000Health", "payer_class": "commercial"}
    refused = _problem(await api.post("/v1/payers", json=payer), 422)
    assert refused["field"] == "name"
    assert "Acme" not in refused["detail"]
    assert (await api.get(f"/v1/payers/{payer['payer_id']}")).status_code == 404


async def test_a_nul_in_a_query_or_path_parameter_is_a_400_naming_it(
    api: httpx.AsyncClient,
) -> None:
    refused = _problem(await api.get("/v1/cost-centres?active=true&q=%00C"), 400)
    assert refused["field"] == "q"
    _problem(await api.get("/v1/locations?cursor=6%00x"), 400)
    _problem(await api.get("/v1/payers/PY%00-1"), 400)


async def test_an_id_beyond_latin_1_gets_a_percent_encoded_location(
    api: httpx.AsyncClient,
) -> None:
    payer_id = unique("PY-\U0003ea59-")
    body = {"payer_id": payer_id, "name": "Acme", "payer_class": "commercial"}
    created = await api.post("/v1/payers", json=body)
    assert created.status_code == 201, created.text
    assert created.headers["location"].startswith("/v1/payers/PY-%F0%BE%A9%99-")
    assert (await api.get(created.headers["location"])).json()["payer_id"] == payer_id

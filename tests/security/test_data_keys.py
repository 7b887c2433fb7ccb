"""Envelope encryption of kept inputs (docs/decisions/028): sealed bytes hold no plaintext,
open with the key they name, fail clearly with any other, and rows written before
encryption still read; rotation keeps old rows readable."""

from __future__ import annotations

import argparse
import asyncio
import base64
from pathlib import Path

import asyncpg
import pytest

from carebus_shared import crypto
from carebus_shared.cli import keys
from carebus_shared.cli.provision import provision_database
from tests.support.billing import fresh_database

PHI = b"PID|1||QZXMRN778812^^^SITE01^MR||QZXCANARYFAMILY^QZXCANARYGIVEN||19020317"


def _ring(*ids: str) -> crypto.Keyring:
    return crypto.Keyring.parse(";".join(crypto.new_key_line(i) for i in ids))


def test_sealed_bytes_hold_no_plaintext_and_open_again() -> None:
    ring = _ring("k1")
    sealed = ring.seal(PHI)
    assert PHI not in sealed
    assert b"QZXMRN" not in sealed
    assert sealed.startswith(crypto.MAGIC)
    assert crypto.sealed_with(sealed) == "k1"
    assert ring.open(sealed) == PHI
    assert ring.seal(PHI) != sealed  # a fresh data key and nonce each time


def test_plaintext_written_before_encryption_reads_as_it_is() -> None:
    assert _ring("k1").open(PHI) == PHI
    assert crypto.sealed_with(PHI) is None


def test_a_wrong_or_missing_key_fails_naming_the_key_id() -> None:
    sealed = _ring("k1").seal(PHI)
    with pytest.raises(crypto.DataKeyError, match="'k1', which is not configured"):
        _ring("k2").open(sealed)
    impostor = crypto.Keyring.parse(crypto.new_key_line("k1"))  # same id, other key
    with pytest.raises(crypto.DataKeyError, match="does not open with data key 'k1'"):
        impostor.open(sealed)
    crypto.configure(None)
    try:
        with pytest.raises(crypto.DataKeyError, match="no key is configured"):
            crypto.unseal(sealed)
    finally:
        crypto.reset()


def test_a_changed_byte_is_refused() -> None:
    ring = _ring("k1")
    sealed = bytearray(ring.seal(PHI))
    sealed[-1] ^= 1
    with pytest.raises(crypto.DataKeyError):
        ring.open(bytes(sealed))


def test_rotation_seals_with_the_new_key_and_opens_the_old() -> None:
    old = _ring("2024")
    sealed_before = old.seal(PHI)
    rotated = crypto.Keyring.parse(f"{crypto.new_key_line('2025')};2024:{_b64(old.keys['2024'])}")
    assert rotated.current == "2025"
    assert rotated.open(sealed_before) == PHI
    assert crypto.sealed_with(rotated.seal(PHI)) == "2025"


def test_text_values_are_sealed_in_a_text_safe_form() -> None:
    crypto.configure(_ring("k1"))
    try:
        sealed = crypto.seal_text("QZXMRN778812")
        assert sealed is not None
        assert sealed.startswith(crypto.TEXT_PREFIX)
        assert "QZXMRN" not in sealed
        assert "\x00" not in sealed
        assert crypto.unseal_text(sealed) == "QZXMRN778812"
        assert crypto.unseal_text("plain old value") == "plain old value"
    finally:
        crypto.reset()


def test_keys_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    line = crypto.new_key_line("filekey")
    path = tmp_path / "data.key"
    path.write_text(f"# current first\n{line}\n")
    ring = crypto.load({crypto.KEY_FILE_ENV: str(path)})
    assert ring is not None
    assert ring.current == "filekey"
    assert crypto.load({}) is None
    with pytest.raises(crypto.DataKeyError, match="not 32 bytes"):
        crypto.load({crypto.KEY_ENV: "k:AAAA"})
    with pytest.raises(crypto.DataKeyError, match="id:base64"):
        crypto.load({crypto.KEY_ENV: "no-separator"})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_rewrap_reseals_every_sealed_column_under_the_current_key(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a rotation (new key first, old after it), `carebus keys rewrap` leaves nothing
    sealed with the old key (nor in plaintext) in any column that is sealed: the exception
    store's raw input and offending value, a parked event's raw input and failures, the
    claim index's patient reference. Then the old key can go."""
    old, new = crypto.new_key_line("old"), crypto.new_key_line("new")
    crypto.configure(crypto.Keyring.parse(old))
    async with fresh_database(database_url) as url:
        await provision_database(url, with_roles=False)
        conn = await asyncpg.connect(url)
        try:
            await _sealed_rows(conn)
            monkeypatch.setenv(crypto.KEY_ENV, f"{new};{old}")
            crypto.reset()
            said = await asyncio.to_thread(keys.run_keys, _rewrap_args(), url)
            assert said == 0
            crypto.configure(crypto.Keyring.parse(new))  # the old key dropped
            for table, column, text in _SEALED:
                values = await conn.fetch(f"SELECT {column} AS v FROM {table}")
                assert len(values) == 2, (table, column)
                for row in values:
                    blob = base64.b64decode(row["v"][len(crypto.TEXT_PREFIX) :]) if text else (
                        bytes(row["v"])
                    )  # fmt: skip
                    assert crypto.sealed_with(blob) == "new", (table, column)
                    assert b"QZX" in (crypto.unseal(blob) or b"")
        finally:
            await conn.close()
            crypto.reset()


_SEALED = (
    ("carebus_exceptions.exception_record", "raw", False),
    ("carebus_exceptions.exception_record", "offending_value", True),
    ("carebus_masterdata_validator.parked_event", "raw", False),
    ("carebus_masterdata_validator.parked_event", "failures", False),
    ("carebus_masterdata_validator.claim_index", "patient_ref", True),
)


def _rewrap_args() -> argparse.Namespace:
    return argparse.Namespace(action="rewrap")


async def _sealed_rows(conn: asyncpg.Connection) -> None:
    """Two rows of each: one sealed with the old key, one plaintext (from before a key)."""
    for n, seal in enumerate((True, False)):
        wrap = crypto.seal if seal else (lambda b: b)
        wrap_text = crypto.seal_text if seal else (lambda t: t)
        await conn.execute(
            "INSERT INTO carebus_exceptions.exception_record (dedupe_key, stage, category, "
            "reason, message, source, raw, offending_value) "
            "VALUES ($1, 'hl7', 'mapping', 'r', 'm', 'hl7', $2, $3)",
            f"d{n}", wrap(PHI), wrap_text("QZXDOB1902"),
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO carebus_masterdata_validator.parked_event (event_id, entity, stream, "
            "stream_seq, subject, headers, raw, event_type, site, reasons, failures, "
            "missing_keys) VALUES ($1, 'S:A', 'SCHEDULING', $2, 's', '{}', $3, 't', 'S', "
            "'{}', $4, '{}')",
            f"e{n}", n + 1, wrap(PHI), wrap(b'[{"offending_value": "QZXPROV"}]'),
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO carebus_masterdata_validator.claim_index (claim_id, site, "
            "patient_ref, first_event_id) VALUES ($1, 'S', $2, 'e')",
            f"C{n}", wrap_text("QZXMRN778812"),
        )  # fmt: skip

"""Envelope encryption of kept inputs (docs/decisions/028): sealed bytes hold no plaintext,
open with the key they name, fail clearly with any other, and rows written before
encryption still read; rotation keeps old rows readable."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from carebus_shared import crypto

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

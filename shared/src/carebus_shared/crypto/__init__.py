"""Envelope encryption of the raw inputs carebus keeps (docs/decisions/028).

Each payload gets its own AES-256-GCM data key; the data key is wrapped (RFC 3394 AES key
wrap) by a key-encryption key (KEK) named by an id, and the id travels with the ciphertext,
so KEKs can rotate: new payloads use the first (current) key, older ones still open with
any key still configured. The KEKs come from ``CAREBUS_DATA_KEY`` (``id:base64``, several
separated by ``;``) or the file ``CAREBUS_DATA_KEY_FILE`` (one ``id:base64`` a line); the
first is current. ``carebus keys new`` prints a fresh key line.

Sealed bytes start with :data:`MAGIC` (a NUL: no HL7, X12, CSV or JSON input does), so a
row written before encryption (plaintext) is read as it is. With no key configured, seal()
keeps plaintext (a service says so once at start: :func:`describe`).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

KEY_ENV: Final = "CAREBUS_DATA_KEY"
KEY_FILE_ENV: Final = "CAREBUS_DATA_KEY_FILE"
MAGIC: Final = b"\x00cbenc1"
TEXT_PREFIX: Final = "cbenc1:"  # the same, for text columns (PostgreSQL text takes no NUL)
_KEY_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,32}")
_NONCE_BYTES: Final = 12
_WRAPPED_BYTES: Final = 40  # a 32-byte data key wrapped


class DataKeyError(ValueError):
    """A key is missing, malformed or not the one a payload was sealed with."""


@dataclass(frozen=True)
class Keyring:
    """KEKs by id; ``current`` seals, every one opens."""

    current: str
    keys: dict[str, bytes]

    @classmethod
    def parse(cls, text: str, where: str = KEY_ENV) -> Keyring:
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for item in re.split(r"[;\n]", text):
            item = item.strip()
            if not item or item.startswith("#"):
                continue
            key_id, sep, encoded = item.partition(":")
            if not sep or not _KEY_ID.fullmatch(key_id):
                raise DataKeyError(f"{where}: each key is id:base64 (id of A-Z a-z 0-9 . _ -)")
            try:
                kek = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise DataKeyError(f"{where}: key {key_id} is not base64") from None
            if len(kek) != 32:
                raise DataKeyError(f"{where}: key {key_id} is not 32 bytes (AES-256)")
            keys[key_id] = kek
            order.append(key_id)
        if not order:
            raise DataKeyError(f"{where}: no key")
        return cls(order[0], keys)

    def seal(self, plain: bytes) -> bytes:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        kid = self.current.encode()
        wrapped = aes_key_wrap(self.keys[self.current], data_key)
        # The header is authenticated with the payload: a swapped key id fails to open.
        header = MAGIC + bytes([len(kid)]) + kid + wrapped
        return header + nonce + AESGCM(data_key).encrypt(nonce, plain, header)

    def open(self, blob: bytes) -> bytes:
        if not blob.startswith(MAGIC):
            return blob  # written before encryption
        at = len(MAGIC)
        kid_len = blob[at] if len(blob) > at else 0
        kid = blob[at + 1 : at + 1 + kid_len].decode(errors="replace")
        header_end = at + 1 + kid_len + _WRAPPED_BYTES
        if kid_len == 0 or len(blob) < header_end + _NONCE_BYTES + 16:
            raise DataKeyError("sealed payload is truncated")
        kek = self.keys.get(kid)
        if kek is None:
            raise DataKeyError(
                f"payload sealed with data key {kid!r}, which is not configured "
                f"({KEY_ENV} / {KEY_FILE_ENV} hold {', '.join(sorted(self.keys))})"
            )
        try:
            data_key = aes_key_unwrap(kek, blob[at + 1 + kid_len : header_end])
            nonce = blob[header_end : header_end + _NONCE_BYTES]
            return AESGCM(data_key).decrypt(
                nonce, blob[header_end + _NONCE_BYTES :], blob[:header_end]
            )
        except (InvalidUnwrap, InvalidTag):
            raise DataKeyError(
                f"payload does not open with data key {kid!r}: the key is not the one it was "
                "sealed with, or the bytes were changed"
            ) from None


def sealed_with(blob: bytes | None) -> str | None:
    """The key id a payload was sealed with; None for plaintext."""
    if not blob or not blob.startswith(MAGIC) or len(blob) <= len(MAGIC):
        return None
    kid_len = blob[len(MAGIC)]
    return blob[len(MAGIC) + 1 : len(MAGIC) + 1 + kid_len].decode(errors="replace")


def new_key_line(key_id: str) -> str:
    if not _KEY_ID.fullmatch(key_id):
        raise DataKeyError("a key id is 1-32 of A-Z a-z 0-9 . _ -")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


_UNSET: Final = object()
_keyring: Keyring | object | None = _UNSET


def load(environ: dict[str, str] | None = None) -> Keyring | None:
    """The keyring the environment names (the inline key wins over the file), or None."""
    env = os.environ if environ is None else environ
    inline = env.get(KEY_ENV, "").strip()
    if inline:
        return Keyring.parse(inline, KEY_ENV)
    path = env.get(KEY_FILE_ENV, "").strip()
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise DataKeyError(f"{KEY_FILE_ENV}: cannot read {path} ({exc.strerror})") from None
        return Keyring.parse(text, KEY_FILE_ENV)
    return None


def keyring() -> Keyring | None:
    """This process's keyring, read from the environment on first use."""
    global _keyring
    if _keyring is _UNSET:
        _keyring = load()
    return _keyring  # type: ignore[return-value]


def configure(ring: Keyring | None) -> None:
    """Use ``ring`` from now on (tests, `carebus keys rewrap`)."""
    global _keyring
    _keyring = ring


def reset() -> None:
    """Read the environment again on next use."""
    global _keyring
    _keyring = _UNSET


def describe() -> str:
    """One line for a service's start-up log: whether kept inputs are encrypted."""
    ring = keyring()
    if ring is None:
        return f"kept inputs are stored in plaintext: set {KEY_ENV} or {KEY_FILE_ENV}"
    return f"kept inputs are encrypted (data key {ring.current}, {len(ring.keys)} key(s))"


def seal(plain: bytes | None) -> bytes | None:
    """``plain`` sealed with the current key (unchanged when no key is configured)."""
    ring = keyring()
    if plain is None or ring is None:
        return plain
    return ring.seal(plain)


def unseal(blob: bytes | memoryview | None) -> bytes | None:
    """The plaintext of a sealed payload, or a plaintext one as it is."""
    if blob is None:
        return None
    data = bytes(blob)
    if not data.startswith(MAGIC):
        return data
    ring = keyring()
    if ring is None:
        raise DataKeyError(
            f"payload sealed with data key {sealed_with(data)!r}, but no key is configured "
            f"({KEY_ENV} or {KEY_FILE_ENV})"
        )
    return ring.open(data)


def seal_text(plain: str | None) -> str | None:
    """A text column's value sealed (base64 after :data:`TEXT_PREFIX`)."""
    sealed = seal(None if plain is None else plain.encode())
    if sealed is None or not sealed.startswith(MAGIC):
        return plain
    return TEXT_PREFIX + base64.b64encode(sealed).decode()


def unseal_text(value: str | None) -> str | None:
    if value is None or not value.startswith(TEXT_PREFIX):
        return value
    try:
        blob = base64.b64decode(value[len(TEXT_PREFIX) :], validate=True)
    except binascii.Error:
        return value  # not ours after all
    opened = unseal(blob)
    return None if opened is None else opened.decode(errors="replace")

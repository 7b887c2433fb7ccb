"""API keys: 256 random bits, shown once; only their SHA-256 is stored.

A key is looked up by its hash (a unique index), so no stored secret is ever compared
character by character with what a client sent. SHA-256 without a salt or a slow KDF is
enough for keys of 256 random bits (docs/decisions/023): nothing to guess, no dictionary.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

PREFIX: Final = "cbk_"


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)  # 32 bytes: 256 bits of entropy


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def fingerprint(digest: bytes) -> str:
    """What `clients list` shows to tell keys apart: never enough to use one."""
    return digest.hex()[:12]

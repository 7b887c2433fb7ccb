"""The calling side: the headers that carry a key, and where the command line finds one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from carebus_shared import audit
from carebus_shared.auth.principal import ON_BEHALF_ADDRESS_HEADER, ON_BEHALF_HEADER

API_KEY_ENV: Final = "CAREBUS_API_KEY"
# Where `carebus run` leaves its keys (mode 0600), under the data folder.
KEYS_DIR: Final = "keys"
ADMIN_KEY_FILE: Final = "admin.key"


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def acting_for(key: str | None, person: str) -> dict[str, str]:
    """A delegating client's headers (the console's key) naming the person who acts, and
    the address their request came from (bound by the guard), so the service that acts
    audits them as from there."""
    address = audit.client_address()
    where = {ON_BEHALF_ADDRESS_HEADER: address} if address else {}
    return {**bearer(key), ON_BEHALF_HEADER: person, **where}


def cli_key(data_dir: Path | None = None) -> str | None:
    """CAREBUS_API_KEY, else the admin key `carebus run` wrote under the data folder."""
    if os.environ.get(API_KEY_ENV):
        return os.environ[API_KEY_ENV].strip()
    folder = data_dir or Path(os.environ.get("CAREBUS_DATA_DIR", ".data"))
    try:
        return (folder / KEYS_DIR / ADMIN_KEY_FILE).read_text().strip() or None
    except OSError:
        return None

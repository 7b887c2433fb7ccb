"""Asking a service whether it is ready (its ``/health/ready``), for `carebus status` and the
ops console's pipeline view."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def readiness(base_url: str, timeout_s: float) -> tuple[bool, str]:
    """(ready, detail): "ok", the failing checks, "HTTP <code>", or "down". Blocking."""
    try:
        with urllib.request.urlopen(f"{base_url}/health/ready", timeout=timeout_s) as response:
            return response.status == 200, "ok" if response.status == 200 else "not ready"
    except urllib.error.HTTPError as exc:
        try:
            checks = json.loads(exc.read()).get("checks", {})
            failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
        except (ValueError, AttributeError):
            failing = ""
        return False, failing or f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError):
        return False, "down"

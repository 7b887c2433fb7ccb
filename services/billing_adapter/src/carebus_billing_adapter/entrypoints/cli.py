"""`carebus-billing`: run the billing adapter."""

from __future__ import annotations

import sys

from carebus_billing_adapter import app, config
from carebus_shared.runtime.cli import ServiceScript

SCRIPT = ServiceScript("carebus-billing", __doc__, config, app.build)
main = SCRIPT.main

if __name__ == "__main__":
    sys.exit(main())

"""`carebus-erp-poster`: run the ERP poster."""

from __future__ import annotations

import sys

from carebus_erp_poster import app, config
from carebus_shared.runtime.cli import ServiceScript

SCRIPT = ServiceScript("carebus-erp-poster", __doc__, config, app.build)
main = SCRIPT.main

if __name__ == "__main__":
    sys.exit(main())

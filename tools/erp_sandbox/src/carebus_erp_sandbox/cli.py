"""`carebus-erp-sandbox`: run the ERP sandbox, a cloud ERP journal API misbehaving on request."""

from __future__ import annotations

import sys

from carebus_erp_sandbox import app, config
from carebus_shared.runtime.cli import ServiceScript

# A bad outage window ("90-30") is found by build: printed, exit 2.
SCRIPT = ServiceScript(
    "carebus-erp-sandbox", __doc__, config, app.build, start_errors=(config.BadOutageWindow,)
)
main = SCRIPT.main

if __name__ == "__main__":
    sys.exit(main())

"""`carebus-outbound`: run the outbound feeds (`serve`, the default) or list their settings."""

from __future__ import annotations

import sys

from carebus_outbound import app, config
from carebus_shared.runtime.cli import ServiceScript

SCRIPT = ServiceScript("carebus-outbound", __doc__, config, app.build)
main = SCRIPT.main

if __name__ == "__main__":
    sys.exit(main())

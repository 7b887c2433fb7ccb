"""`carebus-ops-console`: run the ops console (`serve`, the default) or list its settings."""

from __future__ import annotations

import sys

from carebus_ops import app, config
from carebus_shared.runtime.cli import ServiceScript

SCRIPT = ServiceScript("carebus-ops-console", __doc__, config, app.build)
main = SCRIPT.main


if __name__ == "__main__":
    sys.exit(main())

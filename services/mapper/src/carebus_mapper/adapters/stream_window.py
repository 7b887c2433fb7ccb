"""Reading a window of a recorded stream: the shared reader (``carebus replay`` reads its
windows with it too), named here for the shadow replay."""

from __future__ import annotations

from carebus_shared.jetstream.window import Window, read_window

__all__ = ["Window", "read_window"]

"""Use cases of the scheduling adapter: plain async code over a :class:`Sink`."""

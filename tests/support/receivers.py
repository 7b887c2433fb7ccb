"""The mock receiving systems live in the scenario package (the `make run` demo runs them
too); the tests import them from here as before."""

from carebus_scenario.receivers import (
    MODES,
    HttpReceiver,
    MllpReceiver,
    Receiver,
    Receivers,
    mock_receivers,
)

__all__ = ["MODES", "HttpReceiver", "MllpReceiver", "Receiver", "Receivers", "mock_receivers"]

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest

from carebus_shared.config import Port, RuntimeSettings
from carebus_shared.settings import SettingsError, describe_settings, load_settings


class DemoSettings(RuntimeSettings, frozen=True, kw_only=True):
    http_port: Port = 8084
    api_key: str
    batch_size: Annotated[int, msgspec.Meta(gt=0)] = 100
    enabled: bool = True


def test_values_come_from_prefixed_and_shared_variables() -> None:
    env = {
        "NATS_URL": "nats://10.0.0.1:4222",
        "DEMO_HTTP_PORT": "9000",
        "DEMO_API_KEY": "k",
        "DEMO_ENABLED": "false",
    }
    settings = load_settings(DemoSettings, "DEMO_", env)
    assert settings.nats_url == "nats://10.0.0.1:4222"
    assert settings.http_port == 9000
    assert settings.enabled is False
    assert settings.batch_size == 100


def test_missing_required_variable_is_named() -> None:
    with pytest.raises(SettingsError, match=r"DEMO_API_KEY is required \(str\)"):
        load_settings(DemoSettings, "DEMO_", {})


def test_bad_values_name_each_variable_and_expectation() -> None:
    env = {"DEMO_API_KEY": "k", "DEMO_HTTP_PORT": "eighty", "DEMO_BATCH_SIZE": "0"}
    with pytest.raises(SettingsError) as caught:
        load_settings(DemoSettings, "DEMO_", env)
    message = str(caught.value)
    assert "DEMO_HTTP_PORT='eighty'" in message
    assert "Expected `int`" in message
    assert "DEMO_BATCH_SIZE='0'" in message
    assert ">= 1" in message or "> 0" in message


def test_port_out_of_range_is_refused() -> None:
    with pytest.raises(SettingsError, match="DEMO_HTTP_PORT='70000'"):
        load_settings(DemoSettings, "DEMO_", {"DEMO_API_KEY": "k", "DEMO_HTTP_PORT": "70000"})


def test_describe_lists_shared_variables_by_their_own_names() -> None:
    names = [row[0] for row in describe_settings(DemoSettings, "DEMO_")]
    assert "NATS_URL" in names
    assert "DATABASE_URL" in names
    assert "DEMO_API_KEY" in names

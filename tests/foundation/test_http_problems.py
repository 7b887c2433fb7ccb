"""Every error an HTTP route meets becomes a problem body; an unexpected one is a logged 500."""

from __future__ import annotations

import logging

import pytest
from litestar import get
from litestar.params import FromQuery
from litestar.testing import create_test_client

from carebus_shared.http.problems import EXCEPTION_HANDLERS, PROBLEM_JSON, REQUEST_ID_HEADER


@get("/boom")
async def boom() -> None:
    raise ZeroDivisionError("patient Jane Doe divided by zero")


@get("/database-down")
async def database_down() -> None:
    raise ConnectionRefusedError("connect call failed")


@get("/typed")
async def typed(n: FromQuery[int]) -> int:
    return n


def test_an_unexpected_error_is_a_500_problem_logged_with_its_traceback_and_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.ERROR, "carebus.http"),
        create_test_client(
            [boom], exception_handlers=EXCEPTION_HANDLERS, logging_config=None
        ) as client,
    ):
        response = client.get("/boom", headers={REQUEST_ID_HEADER: "req-42"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["request_id"] == "req-42" == response.headers[REQUEST_ID_HEADER]
    assert "Jane" not in response.text  # the error's text stays in the log, not the answer
    [record] = caplog.records
    assert getattr(record, "request_id", None) == "req-42"
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError


def test_a_request_id_that_is_not_a_plain_token_is_replaced() -> None:
    with create_test_client(
        [boom], exception_handlers=EXCEPTION_HANDLERS, logging_config=None
    ) as client:
        response = client.get("/boom", headers={REQUEST_ID_HEADER: "x" * 65})
    assert len(response.json()["request_id"]) == 32


def test_framework_errors_are_problem_bodies() -> None:
    with create_test_client(
        [typed], exception_handlers=EXCEPTION_HANDLERS, logging_config=None
    ) as client:
        missing = client.get("/nowhere")
        invalid = client.get("/typed?n=abc")
    assert (missing.status_code, missing.headers["content-type"]) == (404, PROBLEM_JSON)
    assert missing.json()["title"] == "Not Found"
    assert (invalid.status_code, invalid.headers["content-type"]) == (400, PROBLEM_JSON)
    assert invalid.json()["status"] == 400


def test_a_dependency_failure_is_a_logged_503_with_retry_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.WARNING, "carebus.http"),
        create_test_client(
            [database_down], exception_handlers=EXCEPTION_HANDLERS, logging_config=None
        ) as client,
    ):
        response = client.get("/database-down")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["request_id"] == response.headers[REQUEST_ID_HEADER]
    [record] = caplog.records
    assert record.exc_info is not None
    assert record.exc_info[0] is ConnectionRefusedError

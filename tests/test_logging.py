"""Tests for kctl_runtime.logging: formats, levels, stdlib capture, context and secret redaction."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog

from kctl_runtime.logging import REDACTED, configure_logging, get_logger, redact_secrets


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_level_timestamp_and_bound_context() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    with structlog.contextvars.bound_contextvars(
        controller="web", name="a", namespace="ns", reconcile_id="r1"
    ):
        get_logger("test").info("reconciled", replicas=3)
    (line,) = json_lines(out)
    assert line["event"] == "reconciled"
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")
    assert line["controller"] == "web"
    assert line["reconcile_id"] == "r1"
    assert line["replicas"] == 3
    assert line["logger"] == "test"


def test_secret_data_and_token_like_values_are_redacted_without_touching_the_object() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    secret = {
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"password": "aHVudGVyMg=="},
        "stringData": {"api": "hunter2"},
    }
    get_logger().info(
        "applying",
        obj=secret,
        token="abc.def",
        headers={"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.payload"},
        note="sent Bearer abcdefghijklmnop to the server",
        items=[{"client-key-data": "LS0t"}],
        secret_name="creds",
    )
    (line,) = json_lines(out)
    assert line["obj"]["data"] == {"password": REDACTED}
    assert line["obj"]["stringData"] == {"api": REDACTED}
    assert line["obj"]["metadata"] == {"name": "creds"}
    assert line["token"] == REDACTED
    assert line["headers"]["Authorization"] == REDACTED
    assert line["note"] == f"sent Bearer {REDACTED} to the server"
    assert line["items"] == [{"client-key-data": REDACTED}]
    assert line["secret_name"] == "creds"
    assert "hunter2" not in out.getvalue()
    assert "aHVudGVyMg==" not in out.getvalue()
    assert secret["data"] == {"password": "aHVudGVyMg=="}, "the caller's object must not be mutated"


def test_redaction_leaves_unrelated_values_identical() -> None:
    spec = {"replicas": 2, "labels": {"app": "web"}}
    event = redact_secrets(None, "info", {"event": "x", "spec": spec})
    assert event["spec"] is spec


def test_console_format_renders_key_value_pairs_without_colour_off_a_tty() -> None:
    out = io.StringIO()
    configure_logging("console", stream=out)
    get_logger().warning("slow reconcile", seconds=2)
    text = out.getvalue()
    assert "slow reconcile" in text
    assert "seconds=2" in text
    assert "\x1b[" not in text


def test_the_level_filters_lower_levels() -> None:
    out = io.StringIO()
    configure_logging("json", level="warning", stream=out)
    log = get_logger()
    log.info("hidden")
    log.warning("shown")
    assert [line["event"] for line in json_lines(out)] == ["shown"]


def test_standard_library_records_go_through_the_same_pipeline() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    logging.getLogger("kubernetes_asyncio.client.rest").warning("token=%s", "x")
    logging.getLogger("aiohttp.access").info("GET /healthz")
    lines = json_lines(out)
    assert [line["logger"] for line in lines] == ["kubernetes_asyncio.client.rest", "aiohttp.access"]
    assert lines[1]["event"] == "GET /healthz"


def test_configuring_twice_does_not_duplicate_stdlib_output() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    configure_logging("json", stream=out)
    logging.getLogger("x").warning("once")
    assert len(json_lines(out)) == 1


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="format"):
        configure_logging("xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level"):
        configure_logging(level="loud")

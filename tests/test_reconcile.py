"""Tests for kctl_runtime.reconcile: the request key, the result types and reconciler adaptation."""

from __future__ import annotations

import math

import pytest

from kctl_runtime.reconcile import Reconciler, Request, RequeueAfter, Result, TerminalError, as_reconciler


def test_a_request_prints_as_the_cache_key() -> None:
    assert str(Request("web", "prod")) == "prod/web"
    assert str(Request("node-1")) == "node-1"


def test_an_empty_namespace_means_cluster_scoped() -> None:
    assert Request("a", "") == Request("a")
    assert hash(Request("a", "")) == hash(Request("a", None))


def test_requests_sort_by_namespace_then_name_even_when_mixed_with_cluster_scoped_ones() -> None:
    mixed = [Request("b", "ns2"), Request("z"), Request("a", "ns2"), Request("c", "ns1")]
    assert sorted(mixed) == [Request("z"), Request("c", "ns1"), Request("a", "ns2"), Request("b", "ns2")]
    assert Request("a") <= Request("a")


def test_a_request_is_built_from_an_object() -> None:
    assert Request.from_object({"metadata": {"name": "x", "namespace": "n"}}) == Request("x", "n")
    assert Request.from_object({"metadata": {"name": "x"}}) == Request("x")


def test_a_request_needs_a_name() -> None:
    with pytest.raises(ValueError, match="name"):
        Request("")


def test_requeue_after_accepts_only_finite_non_negative_seconds() -> None:
    assert RequeueAfter(0).seconds == 0
    assert RequeueAfter(2.5).seconds == 2.5
    for bad in (-1, math.inf, math.nan):
        with pytest.raises(ValueError, match="finite"):
            RequeueAfter(bad)
    with pytest.raises(TypeError, match="number"):
        RequeueAfter("5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="number"):
        RequeueAfter(True)


def test_terminal_error_is_an_ordinary_exception_that_keeps_its_cause() -> None:
    def fail() -> None:
        try:
            raise KeyError("replicas")
        except KeyError as exc:
            raise TerminalError("spec.replicas is required") from exc

    with pytest.raises(TerminalError) as caught:
        fail()
    assert isinstance(caught.value.__cause__, KeyError)
    assert isinstance(caught.value, Exception)


async def test_a_plain_function_becomes_a_reconciler() -> None:
    async def fn(request: Request) -> Result:
        return RequeueAfter(1) if request.name == "later" else None

    reconciler = as_reconciler(fn)
    assert isinstance(reconciler, Reconciler)
    assert await reconciler.reconcile(Request("later")) == RequeueAfter(1)
    assert await reconciler.reconcile(Request("now")) is None


async def test_an_object_with_a_reconcile_method_is_used_as_is() -> None:
    class Mine:
        async def reconcile(self, request: Request) -> Result:
            return None

    mine = Mine()
    assert as_reconciler(mine) is mine
    with pytest.raises(TypeError, match="reconcile"):
        as_reconciler(42)  # type: ignore[arg-type]

"""Fixtures for the conformance scenarios (the `kube` fixture comes from the shipped plugin)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._support import Crd, create_crd, delete_crd

CrdFactory = Callable[..., Awaitable[Crd]]


@pytest.fixture
async def make_crd(kube: KubeTarget) -> AsyncIterator[CrdFactory]:
    """Create CRDs in unique groups for this test; they are deleted afterwards."""
    created: list[Crd] = []

    async def factory(**kwargs: Any) -> Crd:
        crd = await create_crd(kube, **kwargs)
        created.append(crd)
        return crd

    yield factory
    for crd in created:
        await delete_crd(kube, crd)

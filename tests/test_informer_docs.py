"""Every ``python`` block of docs/informer.md runs, against the API server, as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from kctl_runtime.testing.pytest_plugin import KubeTarget

DOC = Path(__file__).resolve().parent.parent / "docs" / "informer.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_informer_guide_has_runnable_snippets() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_each_snippet_of_the_informer_guide_runs(kube: KubeTarget, index: int) -> None:
    source = "async def snippet(api_client, namespace):\n" + textwrap.indent(BLOCKS[index], "    ")
    scope: dict[str, Any] = {}
    exec(compile(source, f"{DOC}#block{index}", "exec"), scope)
    with anyio.fail_after(30):
        await scope["snippet"](kube.api_client, kube.namespace)

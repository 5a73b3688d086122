"""pytest fixtures for testing controllers against a Kubernetes API: the fake one or a real one.

Installing kctl-runtime registers this plugin with pytest through its ``pytest11`` entry point: no
``conftest.py`` line is needed (an old ``pytest_plugins = ["kctl_runtime.testing.pytest_plugin"]``
still works and does not load it twice). In a project that requests none of its fixtures it only
adds the ``--backend`` option and the ``fake_only`` / ``real_only`` markers: no fixture runs and no
server starts (importing it imports kctl_runtime, about 0.3 s; kubernetes-asyncio's models load only
when a fixture makes a client).

Contract
--------
* ``kube`` — a :class:`~kctl_runtime.testing.target.KubeTarget` for one test, parametrized over the
  enabled backends: ``fake`` (the in-process :class:`~kctl_runtime.testing.fakeapi.FakeApiServer`,
  a fresh server per test) and ``real`` (one real control plane per session, started by
  :mod:`kctl_runtime.testing.envtest`). Each test gets a freshly created namespace
  (``kube.namespace``) and a fresh kubernetes-asyncio ``ApiClient`` (``kube.api_client``).
  Cluster-scoped objects a test creates must have unique names
  (:func:`~kctl_runtime.testing.helpers.unique_name`) because the real control plane is shared by
  the whole session.
* :meth:`~kctl_runtime.testing.target.KubeTarget.restart_api_server` restarts the API server under
  a test (fake: same port, same objects; real: same port, same etcd).
* ``fake_kube`` — the same, fake backend only (for fault injection and timing control).
* ``kube_pair`` — a fake target and, when the real backend is enabled and available, a real one (else
  ``None``), each with its own namespace: for differential tests that send the same requests to both
  and compare the answers.
* Both are pytest-asyncio fixtures declared explicitly, so they work under pytest-asyncio's
  ``strict`` mode (the default: mark async tests ``@pytest.mark.asyncio``) and ``auto`` mode alike,
  on a function-scoped event loop. Without pytest-asyncio installed (``pip install
  'kctl-runtime[test]'``) a test requesting them fails with one line saying so.
* ``$KCTL_ENVTEST_NODE_PORT_RANGE`` sets the Service node-port range of both backends (the fake's
  ``service_node_port_range``, kube-apiserver's ``--service-node-port-range``; default
  30000-32767): set it before the session, which shares one real control plane.
* Tests marked ``@pytest.mark.fake_only`` run only on the fake backend; ``real_only`` only on real.
* Backends: ``--backend fake,real`` or ``KCTL_TEST_BACKENDS``; default ``fake,real``. When the real
  control plane cannot start: in CI (``CI=true``) or with ``KCTL_REQUIRE_REAL=1`` the whole run fails
  with the reason; elsewhere the real-tier tests are skipped and one line says how to enable it
  (``KUBEBUILDER_ASSETS``, or ``python -m kctl_runtime.testing.envtest build``). Tests that start
  envtest themselves follow the same policy through :func:`real_tier_unavailable` and
  :func:`envtest_binaries`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from kctl_runtime.testing.helpers import eventually, unique_name
from kctl_runtime.testing.portrange import node_port_range_from_environment
from kctl_runtime.testing.target import KubeTarget, api_client_for

if TYPE_CHECKING:
    from kctl_runtime.testing.envtest import Binaries, ControlPlane

_async_fixture: Any
try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # the fixtures then fail with a clear message (module doc)
    _async_fixture = None

# Re-exported for tests written against this module before kctl_runtime.testing exported them.
__all__ = [
    "KubeTarget",
    "envtest_binaries",
    "eventually",
    "real_tier_required",
    "real_tier_unavailable",
    "unique_name",
]

_BACKENDS_KEY = pytest.StashKey[list[str]]()
_REAL_KEY = pytest.StashKey["ControlPlane | None"]()
_REAL_ERROR_KEY = pytest.StashKey[str | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kctl-runtime")
    group.addoption(
        "--backend",
        default=None,
        help="comma-separated API backends for the `kube` fixture: fake, real (default: fake,real "
        "or $KCTL_TEST_BACKENDS)",
    )


def real_tier_required() -> bool:
    """Whether a missing real tier fails the run (``CI=true``, ``KCTL_REQUIRE_REAL=1``) or skips."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("KCTL_REQUIRE_REAL") == "1"


def real_tier_unavailable(reason: object) -> NoReturn:
    """End the calling test because the real tier is missing: a failure when it is required, else a skip."""
    message = f"real control plane unavailable: {reason}"
    if real_tier_required():
        pytest.fail(message)
    pytest.skip(message)


def envtest_binaries() -> Binaries:
    """The envtest binaries for a test that runs them itself (:func:`real_tier_unavailable` without)."""
    from kctl_runtime.testing import envtest

    try:
        return envtest.Binaries.find()
    except envtest.EnvtestUnavailable as exc:
        real_tier_unavailable(exc)


def pytest_configure(config: pytest.Config) -> None:
    raw = config.getoption("--backend") or os.environ.get("KCTL_TEST_BACKENDS") or "fake,real"
    backends = [b.strip() for b in raw.split(",") if b.strip()]
    unknown = set(backends) - {"fake", "real"}
    if unknown:
        raise pytest.UsageError(f"unknown backend(s) {sorted(unknown)}; use fake and/or real")
    config.stash[_BACKENDS_KEY] = backends
    config.stash[_REAL_KEY] = None
    config.stash[_REAL_ERROR_KEY] = None
    for marker in ("fake_only", "real_only"):
        config.addinivalue_line("markers", f"{marker}: backend restriction for the `kube` fixture")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kube" not in metafunc.fixturenames:
        return
    configured: list[str] = metafunc.config.stash[_BACKENDS_KEY]
    backends = list(configured)
    if metafunc.definition.get_closest_marker("fake_only"):
        backends = [b for b in backends if b == "fake"]
    if metafunc.definition.get_closest_marker("real_only"):
        backends = [b for b in backends if b == "real"]
    if not backends:
        metafunc.parametrize(
            "kube",
            [pytest.param("none", marks=pytest.mark.skip(reason="no backend enabled"))],
            indirect=True,
        )
        return
    metafunc.parametrize("kube", backends, indirect=True)


def _start_real(config: pytest.Config) -> ControlPlane | None:
    if config.stash[_REAL_KEY] is not None:
        return config.stash[_REAL_KEY]
    if config.stash[_REAL_ERROR_KEY] is not None:
        return None
    from kctl_runtime.testing import envtest

    try:
        plane = envtest.ControlPlane.from_environment()
        plane.start()
    except envtest.EnvtestUnavailable as exc:
        config.stash[_REAL_ERROR_KEY] = str(exc)
        if real_tier_required():
            pytest.exit(f"real control plane required (CI) but unavailable: {exc}", returncode=3)
        return None
    config.stash[_REAL_KEY] = plane
    return plane


def pytest_unconfigure(config: pytest.Config) -> None:
    plane = config.stash.get(_REAL_KEY, None)
    if plane is not None:
        plane.stop()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    error = config.stash.get(_REAL_ERROR_KEY, None)
    if error:
        from kctl_runtime.testing.envtest import BUILD_HINT

        hint = "" if "KUBEBUILDER_ASSETS" in error else f" -- {BUILD_HINT}"
        terminalreporter.write_line(f"REAL TIER SKIPPED: {error}{hint}", yellow=True, bold=True)
    plane = config.stash.get(_REAL_KEY, None)
    if plane is not None:
        terminalreporter.write_line(f"real tier: {plane.describe()}")


async def _kube(request: pytest.FixtureRequest) -> AsyncIterator[KubeTarget]:
    """One API server (fake or real, by parametrization) and a fresh namespace for this test."""
    backend: str = request.param
    async with _target(request.config, backend) as target:
        yield target


async def _fake_kube(request: pytest.FixtureRequest) -> AsyncIterator[KubeTarget]:
    """The fake API server only: for fault injection and timing control."""
    async with _target(request.config, "fake") as target:
        yield target


def _without_pytest_asyncio(name: str) -> Callable[[], None]:
    def fail() -> None:
        pytest.fail(
            f"the `{name}` fixture is async and needs pytest-asyncio: pip install 'kctl-runtime[test]'",
            pytrace=False,
        )

    return fail


# pytest_asyncio.fixture, not pytest.fixture: pytest-asyncio's strict mode runs only the async
# fixtures it was told about.
if _async_fixture is not None:
    kube: Any = _async_fixture(_kube, name="kube")
    fake_kube: Any = _async_fixture(_fake_kube, name="fake_kube")
else:
    kube = pytest.fixture(_without_pytest_asyncio("kube"), name="kube")
    fake_kube = pytest.fixture(_without_pytest_asyncio("fake_kube"), name="fake_kube")


async def _kube_pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[KubeTarget, KubeTarget | None]]:
    """The fake API server and, when enabled and available, the real control plane, side by side."""
    async with _target(request.config, "fake") as fake:
        if "real" not in request.config.stash[_BACKENDS_KEY] or _start_real(request.config) is None:
            yield fake, None
            return
        async with _target(request.config, "real") as real:
            yield fake, real


if _async_fixture is not None:
    kube_pair: Any = _async_fixture(_kube_pair, name="kube_pair")
else:
    kube_pair = pytest.fixture(_without_pytest_asyncio("kube_pair"), name="kube_pair")


@contextlib.asynccontextmanager
async def _target(config: pytest.Config, backend: str) -> AsyncIterator[KubeTarget]:
    from kubernetes_asyncio import client

    if backend == "fake":
        from kctl_runtime.testing.fakeapi import FakeApiServer

        node_ports = str(node_port_range_from_environment())
        async with FakeApiServer(service_node_port_range=node_ports) as server:
            api = await api_client_for(server.kubeconfig_path)
            target = KubeTarget("fake", server.kubeconfig_path, api, "", fake=server)
            async with _namespace(target, client):
                yield target
        return
    plane = _start_real(config)
    if plane is None:
        pytest.skip(f"real control plane unavailable: {config.stash[_REAL_ERROR_KEY]}")
    api = await api_client_for(plane.kubeconfig_path)
    target = KubeTarget("real", plane.kubeconfig_path, api, "", plane=plane)
    async with _namespace(target, client):
        yield target


@contextlib.asynccontextmanager
async def _namespace(target: KubeTarget, client: Any) -> AsyncIterator[None]:
    core = client.CoreV1Api(target.api_client)
    name = unique_name("test")
    await core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    target.namespace = name
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await core.delete_namespace(name)
        for extra in target._clients:
            await extra.close()
        await target.api_client.close()

"""The User workflow end to end, on the fake API server and on a real kube-apiserver.

Add a user, move it to another group, remove it (finalizer), repair hand-made damage, conflicts,
restart and leader election: each test runs the real controllers in a Manager.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import structlog

from examples.user_controller.controller import FINALIZER, USERS, group_namespace
from examples.user_controller.tests.harness import (
    cleanup,
    get_or_none,
    install_crd,
    namespace_gone,
    running_controller,
    user,
)
from kctl_runtime.client import Client
from kctl_runtime.errors import Invalid
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.logging import configure_logging
from kctl_runtime.resource import CORE_EVENTS, NAMESPACES, SECRETS, SERVICEACCOUNTS
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name


@pytest.fixture
async def groups(kube: KubeTarget) -> AsyncIterator[list[str]]:
    """Unique group names for this test (namespaces are cluster-wide); cleaned up afterwards."""
    api = Client(kube.api_client)
    await install_crd(api)
    names = [unique_name("g") for _ in range(3)]
    yield names
    await cleanup(api, kube.namespace, names)


@pytest.fixture
def api(kube: KubeTarget) -> Client:
    return Client(kube.api_client)


async def account(
    api: Client, name: str, group: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(namespace, ServiceAccount, token Secret) of a user, asserting each exists."""
    ns_name = group_namespace(group)
    namespace = await get_or_none(api, NAMESPACES, ns_name, None)
    assert namespace is not None, f"namespace {ns_name} missing"
    sa = await get_or_none(api, SERVICEACCOUNTS, name, ns_name)
    assert sa is not None, f"ServiceAccount {ns_name}/{name} missing"
    secret = await get_or_none(api, SECRETS, f"{name}-token", ns_name)
    assert secret is not None, f"Secret {ns_name}/{name}-token missing"
    return namespace, sa, secret


async def test_a_new_user_gets_a_group_namespace_an_account_and_a_token_secret(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    group = groups[0]
    async with running_controller(kube):
        await api.create(USERS, user("tester3", kube.namespace, group))
        namespace, sa, secret = await eventually(lambda: account(api, "tester3", group), message="account")

        async def ready() -> dict[str, Any]:
            current = await api.get(USERS, "tester3", kube.namespace)
            status = current.get("status") or {}
            conditions = {c["type"]: c for c in status.get("conditions") or []}
            assert conditions.get("Ready", {}).get("status") == "True", status
            return current

        current = await eventually(ready, message="Ready=True")

    assert namespace["metadata"]["labels"]["kiamol"] == "ch20"
    assert sa["automountServiceAccountToken"] is False
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "tester3"
    assert FINALIZER in current["metadata"]["finalizers"]
    assert current["status"]["namespace"] == group_namespace(group)
    assert current["status"]["serviceAccount"] == "tester3"
    assert current["status"]["tokenSecret"] == "tester3-token"


@pytest.mark.real_only
async def test_the_cluster_fills_the_token_and_the_controller_never_logs_it(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    group = groups[0]
    captured = io.StringIO()
    configure_logging(format="json", level="debug", stream=captured)
    try:
        async with running_controller(kube):
            await api.create(USERS, user("tester3", kube.namespace, group))

            async def token() -> str:
                secret = await get_or_none(api, SECRETS, "tester3-token", group_namespace(group))
                assert secret is not None, "no token Secret yet"
                data = secret.get("data") or {}
                assert data.get("token"), "token not filled in yet"
                return base64.b64decode(data["token"]).decode()

            value = await eventually(token, timeout=30, message="the token controller fills the Secret")
            # Let the controller resync a few times with the token in place.
            await anyio.sleep(2.5)
    finally:
        structlog.reset_defaults()
        for handler in list(logging.getLogger().handlers):
            if handler.get_name() == "kctl_runtime":
                logging.getLogger().removeHandler(handler)
    logs = captured.getvalue()
    assert "tester3" in logs, "the controller logged nothing: this test would prove nothing"
    assert value not in logs
    assert base64.b64encode(value.encode()).decode() not in logs


async def test_changing_the_group_moves_the_account_and_removes_the_empty_old_namespace(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    old, new = groups[0], groups[1]
    async with running_controller(kube):
        await api.create(USERS, user("sre4", kube.namespace, old))
        await eventually(lambda: account(api, "sre4", old), message="account in the old group")
        await api.patch(USERS, "sre4", {"spec": {"group": new}}, namespace=kube.namespace)
        await eventually(lambda: account(api, "sre4", new), message="account in the new group")

        async def moved() -> bool:
            assert await get_or_none(api, SERVICEACCOUNTS, "sre4", group_namespace(old)) is None
            assert await get_or_none(api, SECRETS, "sre4-token", group_namespace(old)) is None
            current = await api.get(USERS, "sre4", kube.namespace)
            assert current["status"]["namespace"] == group_namespace(new)
            return True

        await eventually(moved, timeout=20, message="old account removed")
        await eventually(lambda: namespace_gone(api, old), timeout=20, message="empty old namespace deleted")


async def test_a_group_namespace_stays_while_another_user_is_in_it(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    group = groups[0]
    async with running_controller(kube):
        await api.create(USERS, user("tester3", kube.namespace, group))
        await api.create(USERS, user("tester4", kube.namespace, group))
        await eventually(lambda: account(api, "tester3", group), message="first account")
        await eventually(lambda: account(api, "tester4", group), message="second account")

        await api.delete(USERS, "tester3", namespace=kube.namespace)

        async def first_gone() -> bool:
            assert await get_or_none(api, USERS, "tester3", kube.namespace) is None, "User still there"
            assert await get_or_none(api, SERVICEACCOUNTS, "tester3", group_namespace(group)) is None
            assert await get_or_none(api, SECRETS, "tester3-token", group_namespace(group)) is None
            return True

        await eventually(first_gone, timeout=20, message="first user's account removed")
        await anyio.sleep(0.5)
        namespace, _, _ = await account(api, "tester4", group)
        assert not namespace["metadata"].get("deletionTimestamp"), "namespace deleted under a live user"

        await api.delete(USERS, "tester4", namespace=kube.namespace)
        await eventually(
            lambda: namespace_gone(api, group), timeout=20, message="last user gone: namespace gone"
        )
        assert await get_or_none(api, USERS, "tester4", kube.namespace) is None


@pytest.mark.parametrize("damage", ["ServiceAccount", "Secret"])
async def test_an_account_object_deleted_by_hand_comes_back(
    kube: KubeTarget, api: Client, groups: list[str], damage: str
) -> None:
    group = groups[0]
    ns = group_namespace(group)
    async with running_controller(kube, resync_seconds=1.0):
        await api.create(USERS, user("tester3", kube.namespace, group))
        _, sa, secret = await eventually(lambda: account(api, "tester3", group), message="account")
        if damage == "ServiceAccount":
            old_uid = sa["metadata"]["uid"]
            await api.delete(SERVICEACCOUNTS, "tester3", namespace=ns)
        else:
            old_uid = secret["metadata"]["uid"]
            await api.delete(SECRETS, "tester3-token", namespace=ns)

        async def repaired() -> bool:
            _, sa_now, secret_now = await account(api, "tester3", group)
            now = sa_now if damage == "ServiceAccount" else secret_now
            assert now["metadata"]["uid"] != old_uid, "not recreated yet"
            return True

        await eventually(repaired, timeout=20, message=f"{damage} recreated")


async def test_a_hand_edit_of_the_account_is_repaired(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    group = groups[0]
    ns = group_namespace(group)
    async with running_controller(kube):
        await api.create(USERS, user("tester3", kube.namespace, group))
        await eventually(lambda: account(api, "tester3", group), message="account")
        await api.patch(SERVICEACCOUNTS, "tester3", {"automountServiceAccountToken": True}, namespace=ns)

        async def repaired() -> bool:
            _, sa, _ = await account(api, "tester3", group)
            assert sa["automountServiceAccountToken"] is False
            return True

        await eventually(repaired, timeout=20, message="automount turned off again")


async def test_an_account_that_belongs_to_someone_else_is_a_reported_conflict(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    group = groups[0]
    ns = group_namespace(group)
    await api.create(NAMESPACES, {"metadata": {"name": ns}})
    await api.create(SERVICEACCOUNTS, {"metadata": {"name": "tester3", "namespace": ns}})
    async with running_controller(kube):
        await api.create(USERS, user("tester3", kube.namespace, group))

        async def conflict() -> dict[str, Any]:
            current = await api.get(USERS, "tester3", kube.namespace)
            conditions = {c["type"]: c for c in (current.get("status") or {}).get("conditions") or []}
            ready = conditions.get("Ready") or {}
            assert (ready.get("status"), ready.get("reason")) == ("False", "AccountConflict"), ready
            return ready

        await eventually(conflict, message="Ready=False reason AccountConflict")
        sa = await api.get(SERVICEACCOUNTS, "tester3", ns)
        assert "ch20.kiamol.net/user-uid" not in (sa["metadata"].get("labels") or {}), (
            "took over a foreign account"
        )
        assert await get_or_none(api, SECRETS, "tester3-token", ns) is None, (
            "minted a token for a foreign account"
        )

        await api.delete(USERS, "tester3", namespace=kube.namespace)
        await eventually(
            lambda: _gone(api, "tester3", kube.namespace),
            timeout=20,
            message="User deleted despite the conflict",
        )
    assert await get_or_none(api, SERVICEACCOUNTS, "tester3", ns) is not None, "deleted a foreign account"
    ns_obj = await api.get(NAMESPACES, ns)
    assert not ns_obj["metadata"].get("deletionTimestamp"), "deleted a namespace it did not create"


async def test_a_token_secret_name_taken_in_a_namespace_it_did_not_create_is_left_alone(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    """Adoption policy (issue 10 item 1): an existing namespace and a Secret the controller did not
    create are neither changed nor deleted, before or after the User goes."""
    group = groups[0]
    ns = group_namespace(group)
    await api.create(NAMESPACES, {"metadata": {"name": ns, "labels": {"team": "other"}}})
    theirs = await api.create(
        SECRETS, {"metadata": {"name": "tester3-token", "namespace": ns}, "stringData": {"k": "v"}}
    )
    async with running_controller(kube):
        await api.create(USERS, user("tester3", kube.namespace, group))

        async def conflict() -> dict[str, Any]:
            current = await api.get(USERS, "tester3", kube.namespace)
            conditions = {c["type"]: c for c in (current.get("status") or {}).get("conditions") or []}
            ready = conditions.get("Ready") or {}
            assert (ready.get("status"), ready.get("reason")) == ("False", "AccountConflict"), ready
            return ready

        ready = await eventually(conflict, message="Ready=False reason AccountConflict")
        assert "does not belong to this User" in ready["message"]

        async def warned() -> bool:
            events = await api.list(CORE_EVENTS, namespace=kube.namespace)
            assert [e for e in events if e.get("reason") == "AccountConflict" and e["type"] == "Warning"]
            return True

        await eventually(warned, message="a Warning event")
        await api.delete(USERS, "tester3", namespace=kube.namespace)
        await eventually(lambda: _gone(api, "tester3", kube.namespace), timeout=20, message="User deleted")
    secret = await api.get(SECRETS, "tester3-token", ns)
    assert secret["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"], "Secret written"
    namespace = await api.get(NAMESPACES, ns)
    assert not namespace["metadata"].get("deletionTimestamp"), "deleted a namespace it did not create"
    assert "app.kubernetes.io/managed-by" not in (namespace["metadata"].get("labels") or {})


async def _gone(api: Client, name: str, namespace: str) -> bool:
    assert await get_or_none(api, USERS, name, namespace) is None
    return True


async def test_the_crd_schema_rejects_a_group_that_cannot_name_a_namespace(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    with pytest.raises(Invalid):
        await api.create(USERS, user("tester3", kube.namespace, "Not_A_Label"))
    with pytest.raises(Invalid):
        await api.create(USERS, user("tester3", kube.namespace, "g" * 46))


async def test_a_restarted_controller_finishes_what_changed_while_it_was_down(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    a, b, c = groups
    async with running_controller(kube):
        await api.create(USERS, user("stay", kube.namespace, a))
        await api.create(USERS, user("leave", kube.namespace, b))
        await eventually(lambda: account(api, "stay", a), message="first account")
        await eventually(lambda: account(api, "leave", b), message="second account")
    # Down: one user moves, one is deleted (the finalizer keeps it until the controller is back).
    await api.patch(USERS, "stay", {"spec": {"group": c}}, namespace=kube.namespace)
    await api.delete(USERS, "leave", namespace=kube.namespace)
    leaving = await api.get(USERS, "leave", kube.namespace)
    assert leaving["metadata"].get("deletionTimestamp"), "the finalizer holds the User while we are down"
    async with running_controller(kube):

        async def converged() -> bool:
            await account(api, "stay", c)
            assert await get_or_none(api, SERVICEACCOUNTS, "stay", group_namespace(a)) is None
            assert await get_or_none(api, USERS, "leave", kube.namespace) is None
            assert await get_or_none(api, SERVICEACCOUNTS, "leave", group_namespace(b)) is None
            return True

        await eventually(converged, timeout=20, message="convergence after restart")
        await eventually(lambda: namespace_gone(api, a), timeout=20, message="namespace a collected")
        await eventually(lambda: namespace_gone(api, b), timeout=20, message="namespace b collected")


async def test_with_two_replicas_only_the_leader_reconciles_and_stopping_it_hands_over(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    lease = unique_name("user-lease")

    def config(identity: str) -> LeaderElectionConfig:
        return LeaderElectionConfig(
            lease_name=lease,
            lease_namespace=kube.namespace,
            identity=identity,
            lease_duration=6.0,
            renew_deadline=4.0,
            retry_period=0.5,
        )

    async with (
        running_controller(kube, leader_election=config("replica-a")) as first,
        running_controller(kube, leader_election=config("replica-b"), wait_leading=False) as second,
    ):
        await api.create(USERS, user("tester3", kube.namespace, groups[0]))
        await eventually(lambda: account(api, "tester3", groups[0]), message="account made by the leader")
        assert first.manager.is_leader
        assert not second.manager.is_leader
        assert first.reconciler.calls
        assert second.reconciler.calls == [], "the standby must not reconcile"

        first.manager.stop()

        async def second_leads() -> bool:
            return second.manager.is_leader

        await eventually(second_leads, timeout=15, message="the standby takes over")
        await api.create(USERS, user("tester4", kube.namespace, groups[1]))
        await eventually(lambda: account(api, "tester4", groups[1]), timeout=15, message="new leader works")
        assert second.reconciler.calls


async def test_a_user_outside_the_served_namespace_is_left_alone(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    other = unique_name("other")
    await api.create(NAMESPACES, {"metadata": {"name": other}})
    try:
        async with running_controller(kube):
            await api.create(USERS, user("outsider", other, groups[0]))
            await api.create(USERS, user("insider", kube.namespace, groups[1]))
            await eventually(lambda: account(api, "insider", groups[1]), message="the served user's account")
            await anyio.sleep(1.0)
            outsider = await api.get(USERS, "outsider", other)
            assert not outsider["metadata"].get("finalizers"), "touched a User outside its namespace"
            assert await get_or_none(api, NAMESPACES, group_namespace(groups[0]), None) is None
    finally:
        await api.delete(NAMESPACES, other, ignore_not_found=True)


async def test_two_users_of_the_same_name_in_one_group_conflict_instead_of_sharing_an_account(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    group = groups[0]
    other = unique_name("other")
    await api.create(NAMESPACES, {"metadata": {"name": other}})
    try:
        async with running_controller(kube):
            first = await api.create(USERS, user("alex", kube.namespace, group))
            _, sa, _ = await eventually(lambda: account(api, "alex", group), message="first account")
        # A second controller instance serves the other namespace; both act on the same group.
        async with running_controller(kube, namespace=other):
            await api.create(USERS, user("alex", other, group))

            async def conflict() -> bool:
                current = await api.get(USERS, "alex", other)
                conditions = {c["type"]: c for c in (current.get("status") or {}).get("conditions") or []}
                ready = conditions.get("Ready") or {}
                assert (ready.get("status"), ready.get("reason")) == ("False", "AccountConflict"), ready
                assert f"{kube.namespace}/alex" in ready.get("message", ""), ready
                return True

            await eventually(conflict, message="the second alex is told the account is taken")
        sa_now = await api.get(SERVICEACCOUNTS, "alex", group_namespace(group))
        assert sa_now["metadata"]["uid"] == sa["metadata"]["uid"]
        assert sa_now["metadata"]["labels"]["ch20.kiamol.net/user-uid"] == first["metadata"]["uid"]
    finally:
        await cleanup(api, other, [])
        await api.delete(NAMESPACES, other, ignore_not_found=True)


async def test_a_group_namespace_deleted_by_hand_is_rebuilt(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    group = groups[0]
    async with running_controller(kube, resync_seconds=1.0):
        await api.create(USERS, user("tester3", kube.namespace, group))
        namespace, _, _ = await eventually(lambda: account(api, "tester3", group), message="account")
        await api.delete(NAMESPACES, group_namespace(group))

        async def rebuilt() -> bool:
            ns, _, _ = await account(api, "tester3", group)
            assert ns["metadata"]["uid"] != namespace["metadata"]["uid"], "still the old namespace"
            assert not ns["metadata"].get("deletionTimestamp")
            return True

        await eventually(rebuilt, timeout=60, message="namespace, account and token rebuilt")


async def test_a_user_the_model_rejects_is_reported_once_keeps_its_account_and_is_still_cleaned_up(
    kube: KubeTarget, api: Client, groups: list[str]
) -> None:
    """Issue 12: a User that passed the API server's schema but does not parse into the model.

    The CRD's e-mail pattern forbids whitespace; kube-apiserver matches it with Go's regexp, whose
    ``\\s`` is ASCII-only, so a non-breaking space gets through, and the model (Unicode ``\\s``)
    refuses it. The reconciler reports it on the object, in one Warning event and one log line, goes
    on with other Users, does not retry it, leaves an existing account alone, still cleans up when
    the User is deleted (cleanup does not need the model), and serves the User once it is fixed."""
    group, ns = groups[0], kube.namespace
    bad_email = "bad\u00a0user@kiamol.net"

    async def ready(name: str) -> dict[str, Any]:
        current = await api.get(USERS, name, ns)
        conditions = {c["type"]: c for c in (current.get("status") or {}).get("conditions") or []}
        return conditions.get("Ready") or {}

    async def invalid(name: str) -> dict[str, Any]:
        condition = await ready(name)
        assert (condition.get("status"), condition.get("reason")) == ("False", "InvalidSpec"), condition
        return condition

    async def warnings(name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in await api.list(CORE_EVENTS, namespace=ns)
            if e["involvedObject"].get("name") == name and e.get("reason") == "InvalidSpec"
        ]

    async def warned(name: str) -> bool:
        assert await warnings(name), f"no InvalidSpec event for {name}"
        return True

    with structlog.testing.capture_logs() as logs:
        async with running_controller(kube) as running:
            await api.create(USERS, user("bad", ns, group, email=bad_email))  # the server accepts it
            await api.create(USERS, user("ann", ns, group))
            condition = await eventually(lambda: invalid("bad"), message="Ready=False reason InvalidSpec")
            assert condition["message"].startswith("the User does not match its model: spec.email:")
            assert condition["observedGeneration"] == 1
            await eventually(lambda: warned("bad"), message="a Warning event")
            await eventually(lambda: account(api, "ann", group), message="the good User served")
            await anyio.sleep(2.0)  # room for a requeue storm, or a second event
            calls = [r for r in running.reconciler.calls if r.name == "bad"]
            assert 1 <= len(calls) <= 4, calls  # the first, and the echoes of its own writes
            await anyio.sleep(1.5)
            assert [r for r in running.reconciler.calls if r.name == "bad"] == calls, "bad is retried"
            assert len(await warnings("bad")) == 1
            assert await get_or_none(api, SERVICEACCOUNTS, "bad", group_namespace(group)) is None

            # a User with an account that stops parsing: reported, its account left as it is
            await api.patch(USERS, "ann", {"spec": {"email": bad_email}}, namespace=ns)
            condition = await eventually(lambda: invalid("ann"), message="ann Ready=False InvalidSpec")
            assert condition["observedGeneration"] == 2
            await eventually(lambda: warned("ann"), message="a Warning event for ann")
            await account(api, "ann", group)
            # ... and deleted: cleanup works without the model
            await api.delete(USERS, "ann", namespace=ns)
            await eventually(lambda: _gone(api, "ann", ns), timeout=20, message="ann deleted")
            assert await get_or_none(api, SERVICEACCOUNTS, "ann", group_namespace(group)) is None
            assert await get_or_none(api, SECRETS, "ann-token", group_namespace(group)) is None

            # fixed by its owner: a new generation, reconciled again, served
            await api.patch(USERS, "bad", {"spec": {"email": "bad@kiamol.net"}}, namespace=ns)
            await eventually(lambda: account(api, "bad", group), message="the fixed User served")

            async def now_ready() -> bool:
                assert (await ready("bad")).get("status") == "True"
                return True

            await eventually(now_ready, message="the fixed User is Ready")
    terminal = [e for e in logs if "does not match its model" in str(e.get("error", ""))]
    assert len(terminal) == 2, terminal  # one for bad, one for ann
    for entry, name in zip(terminal, ("bad", "ann"), strict=True):
        assert entry["log_level"] == "warning"
        assert "exc_info" not in entry, "a parse failure is no bug: no traceback"
        assert entry["error"].startswith(f"User {ns}/{name} does not match its model: spec.email:")

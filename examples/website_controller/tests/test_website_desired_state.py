"""Unit tests of the Website controller's pure parts: parsing and validation, desired children, drift."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.website_controller.api import Website
from examples.website_controller.controller import (
    GIT_SYNC_IMAGE,
    WEBSITES,
    child_name,
    covers,
    desired_deployment,
    desired_service,
    redact_url,
    validate_website,
)
from kctl_runtime.customresource import InvalidObject


def raw(name: str = "kubia", **spec: Any) -> dict[str, Any]:
    """A Website as the API server sends it (a dict)."""
    body: dict[str, Any] = {"gitRepo": "https://github.com/luksa/kubia-website-example.git"}
    body.update(spec)
    return {
        "apiVersion": WEBSITES.api_version,
        "kind": "Website",
        "metadata": {"name": name, "namespace": "web", "uid": "1234-uid", "generation": 3},
        "spec": body,
    }


def website(name: str = "kubia", **spec: Any) -> Website:
    """The same, parsed into the model (what the reconciler works on)."""
    return Website.from_object(raw(name, **spec))


def problems(obj: dict[str, Any]) -> list[str]:
    """What the reconciler reports about ``obj``: the parse failures, else what validation finds."""
    try:
        return validate_website(Website.from_object(obj))
    except InvalidObject as exc:
        return exc.problems


def env_of(deployment: dict[str, Any], container: str) -> dict[str, str]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    (match,) = [c for c in containers if c["name"] == container]
    return {e["name"]: e["value"] for e in match["env"]}


def test_a_website_with_an_https_repo_and_defaults_is_valid() -> None:
    assert validate_website(website()) == []
    assert validate_website(website(branch="release/v1.2", replicas=0)) == []
    assert problems(raw(branch="release/v1.2", replicas=0)) == []


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"gitRepo": "http://example.com/site.git"}, "https://"),
        ({"gitRepo": "git://example.com/site.git"}, "https://"),
        ({"gitRepo": "ssh://example.com/site.git"}, "https://"),
        ({"gitRepo": "https://user:token@example.com/site.git"}, "credentials"),
        ({"gitRepo": "https://example.com/"}, "no repository path"),
        ({"gitRepo": "https://example.com/site.git#frag"}, "fragment"),
        ({"gitRepo": "https://example.com:99999/site.git"}, "not a valid URL"),
        ({"branch": "feature..x"}, "'..'"),
        ({"branch": "has space"}, "space"),
        ({"branch": "-rf"}, "starts with '-'"),
        ({"branch": "a/.hidden"}, "starts with '.'"),
        ({"branch": "x.lock"}, ".lock"),
        ({"branch": "trailing/"}, "empty path component"),
        ({"branch": "main."}, "ends with '.'"),
        ({"branch": "a@{1}"}, "reserved"),
        ({"branch": "what?"}, "contains"),
        # the model's constraints (the CRD has them too; a Website stored before they existed has not)
        ({"replicas": 11}, "spec.replicas: Input should be less than or equal to 10"),
        ({"replicas": -1}, "spec.replicas: Input should be greater than or equal to 0"),
        ({"replicas": 2.5}, "spec.replicas: Input should be a valid integer"),
        ({"gitRepo": "ftp://example.com/site.git"}, "spec.gitRepo: String should match pattern"),
        # a non-breaking space passes the CRD's pattern on the API server (Go's \s is ASCII) but
        # not the model's (Unicode \s): the reconciler reports it instead of cloning it
        ({"gitRepo": "https://example.com/my\u00a0site.git"}, "spec.gitRepo: String should match pattern"),
    ],
)
def test_an_invalid_spec_is_explained_not_raised(spec: dict[str, Any], fragment: str) -> None:
    found = problems(raw(**spec))
    assert found, f"{spec} should be invalid"
    assert any(fragment in p for p in found), found


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cr3t-t0ken@example.com/site.git",
        "http://user:s3cr3t-t0ken@example.com/site.git",
        "https://s3cr3t-t0ken@example.com/",
        "https://user:s3cr3t-t0ken@example.com:99999/site.git",
        "https://user:s3cr3t-t0ken@example.com:s3cr3t-t0ken/site.git",
        "https://user:s3cr3t-t0ken@[example.com/site.git",
        "https://user:s3cr3t-t0ken@/site.git",
        "user:s3cr3t-t0ken@example.com/site.git",
        "git://user:s3cr3t-t0ken@example.com/site.git?x=1#y",
    ],
)
def test_credentials_in_the_git_url_are_never_repeated_even_when_the_url_is_invalid(url: str) -> None:
    """Regression (issue 10 item 7): an otherwise invalid URL was echoed, token and all."""
    found = problems(raw(gitRepo=url))
    assert found
    assert not any("s3cr3t" in p for p in found), found
    assert "s3cr3t" not in redact_url(url)


def test_redaction_leaves_a_url_without_credentials_alone() -> None:
    for url in ("https://example.com/site.git", "https://example.com/a@b", "not a url", ""):
        assert redact_url(url) == url
    assert redact_url("https://u:p@h/x") == "https://***@h/x"


def test_a_name_that_cannot_name_a_service_is_invalid() -> None:
    assert validate_website(website(name="1st-site"))
    assert validate_website(website(name="a" * 56))
    assert validate_website(website(name="a" * 55)) == []
    assert validate_website(website(name="my.site"))


def test_a_website_without_spec_does_not_parse() -> None:
    assert problems({"metadata": {"name": "x"}}) == ["spec: Field required"]
    assert problems({"metadata": {"name": "x"}, "spec": {}}) == ["spec.gitRepo: Field required"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    name=st.text(max_size=70),
    spec=st.dictionaries(
        st.sampled_from(["gitRepo", "branch", "replicas", "other"]),
        json_values | st.text(max_size=80).map(lambda s: "https://" + s),
    ),
)
def test_parsing_and_validation_never_raise_whatever_the_user_writes(name: str, spec: dict[str, Any]) -> None:
    result = problems({"metadata": {"name": name}, "spec": spec})  # only InvalidObject is caught
    assert isinstance(result, list)
    assert all(isinstance(p, str) and p for p in result)


def test_the_deployment_clones_the_repo_and_serves_it_with_nginx() -> None:
    deployment = desired_deployment(website(branch="gh-pages", replicas=3))
    assert deployment["metadata"]["name"] == "kubia-website"
    assert deployment["metadata"]["namespace"] == "web"
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["app"] == "website"
    assert pod["metadata"]["labels"]["website"] == "kubia"
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "website", "website": "kubia"}
    env = env_of(deployment, "git-sync")
    assert env["GITSYNC_REPO"] == "https://github.com/luksa/kubia-website-example.git"
    assert env["GITSYNC_REF"] == "gh-pages"
    assert env["GITSYNC_ROOT"] == "/git"
    images = {c["name"]: c["image"] for c in pod["spec"]["containers"]}
    assert images["git-sync"] == GIT_SYNC_IMAGE
    assert GIT_SYNC_IMAGE.startswith("registry.k8s.io/git-sync/git-sync:v4.")
    assert "nginx" in images["nginx"]


def test_nginx_document_root_is_the_git_sync_link_on_the_shared_volume() -> None:
    pod = desired_deployment(website())["spec"]["template"]["spec"]
    mounts = {c["name"]: {m["name"]: m["mountPath"] for m in c["volumeMounts"]} for c in pod["containers"]}
    env = env_of(desired_deployment(website()), "git-sync")
    assert {v["name"] for v in pod["volumes"] if "emptyDir" in v} >= {"content"}
    # git-sync writes ROOT/LINK on the volume; nginx sees the same volume one level above html/.
    link_in_nginx = mounts["nginx"]["content"] + "/" + env["GITSYNC_LINK"]
    assert mounts["git-sync"]["content"] == env["GITSYNC_ROOT"]
    assert link_in_nginx == "/usr/share/nginx/html"


def test_the_branch_defaults_to_main_and_replicas_to_one() -> None:
    deployment = desired_deployment(website())
    assert env_of(deployment, "git-sync")["GITSYNC_REF"] == "main"
    assert deployment["spec"]["replicas"] == 1


def test_every_container_runs_restricted() -> None:
    pod = desired_deployment(website())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsUser"] != 0
        assert "limits" in container["resources"]


def test_both_children_are_controlled_by_the_website() -> None:
    for child in (desired_deployment(website()), desired_service(website())):
        (ref,) = child["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "extensions.example.com/v1",
            "kind": "Website",
            "name": "kubia",
            "uid": "1234-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }


def test_the_service_is_a_node_port_on_80_selecting_the_websites_pods() -> None:
    service = desired_service(website())
    assert service["metadata"]["name"] == child_name("kubia") == "kubia-website"
    assert service["spec"]["type"] == "NodePort"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert port["targetPort"] == "http"
    assert "nodePort" not in port  # allocated by the API server, never fought over
    assert service["spec"]["selector"]["website"] == "kubia"
    pod_labels = desired_deployment(website())["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_builders_are_pure() -> None:
    w = website()
    before = w.model_copy(deep=True)
    assert desired_deployment(w) == desired_deployment(w)
    assert desired_service(w) == desired_service(w)
    assert w == before


def server_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server hands back: our fields plus defaults, other managers' fields and status."""
    actual = copy.deepcopy(obj)
    actual["metadata"].update(resourceVersion="42", uid="child-uid", generation=1)
    actual["metadata"]["labels"]["team"] = "web"
    spec = actual["spec"]
    if obj["kind"] == "Deployment":
        spec["strategy"] = {"type": "RollingUpdate"}
        for container in spec["template"]["spec"]["containers"]:
            container.update(terminationMessagePath="/dev/termination-log", imagePullPolicy="IfNotPresent")
        spec["template"]["spec"]["containers"].append({"name": "istio-proxy", "image": "proxy"})
        actual["status"] = {"replicas": 1}
    else:
        spec["clusterIP"] = "10.96.0.10"
        spec["ports"][0]["nodePort"] = 31234
    return actual


def test_a_child_with_only_server_defaults_and_foreign_fields_is_not_drift() -> None:
    for desired in (desired_deployment(website()), desired_service(website())):
        assert covers(server_view(desired), desired)


def test_a_changed_or_missing_managed_field_is_drift() -> None:
    desired = desired_deployment(website())
    actual = server_view(desired)
    actual["spec"]["replicas"] = 5
    assert not covers(actual, desired)

    actual = server_view(desired)
    actual["spec"]["template"]["spec"]["containers"][1]["env"][0]["value"] = "https://evil.example/x.git"
    assert not covers(actual, desired)

    actual = server_view(desired)
    del actual["metadata"]["labels"]["website"]
    assert not covers(actual, desired)

    actual = server_view(desired)
    actual["spec"]["template"]["spec"]["containers"] = [
        c for c in actual["spec"]["template"]["spec"]["containers"] if c["name"] != "git-sync"
    ]
    assert not covers(actual, desired)

    service = desired_service(website())
    actual = server_view(service)
    actual["spec"]["type"] = "ClusterIP"
    assert not covers(actual, service)


def test_covers_compares_json_numbers_by_value_and_never_bools_as_numbers() -> None:
    assert covers({"a": 1.0}, {"a": 1})
    assert not covers({"a": True}, {"a": 1})
    assert not covers({"a": "1"}, {"a": 1})
    assert not covers([1, 2], [1])
    assert covers([1, 2], [1, 2])

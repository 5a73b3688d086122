"""Label and field selectors behave as apimachinery's labels.Parse / fields.ParseSelector."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kctl_runtime.testing.fakeapi.selectors import (
    FieldSelector,
    LabelRequirement,
    LabelSelector,
    SelectorError,
    check_supported,
    escape_field_value,
    field_value,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
    supported_fields,
    validate_label_key,
    validate_label_value,
)
from kctl_runtime.testing.pytest_plugin import KubeTarget

# ---------------------------------------------------------------------------------------------
# label selectors: parsing
# ---------------------------------------------------------------------------------------------

VALID_SELECTORS = [
    "",
    "x=a",
    "x=a,y=b,z=c",
    "x!=a,y=b",
    "x==a",
    "x=",
    "x=,z= ",
    "x= ,z= ",
    "!x",
    "x",
    "x>1",
    "x<1",
    "x in (foo,,baz),y,z notin ()",
    "x in (foo,bar,baz),y,!z",
    "x notin (foo)",
    "  x  in  ( a , b )  ",
    "x in ( in, notin )",
    "example.com/app=web",
    "app.kubernetes.io/name in (a,b)",
    "x=a\t,\ty=b",
    "x\n=\na",
]

INVALID_SELECTORS = [
    "x=a||y=b",
    "x==a==b",
    "!x=a",
    "x<a",
    "x>-1",
    "x>1.1",
    "x>1,z<5.0",
    "x in (a",
    "x in a",
    "x in (a b)",
    "=a",
    ",",
    "x,",
    "x=a,",
    "x=a b",
    "x@=a",
    "a/b/c",
    "/a",
    "a/",
    "-a",
    "x=a-",
    "x=" + "v" * 64,
    "k" * 64,
    "x in (a,-b)",
    "x!!=a",
    "(x)",
    "x notin",
]


@pytest.mark.parametrize("text", VALID_SELECTORS)
def test_a_selector_the_apiserver_accepts_parses(text: str) -> None:
    parse_label_selector(text)


def test_a_garbled_value_fails_validation_before_the_comma_check() -> None:
    # apimachinery reads "a||y" as the value of x and rejects it as a label value.
    with pytest.raises(
        SelectorError, match=r'^unable to parse requirement: values\[0\]\[x\]: Invalid value: "a\|\|y"'
    ):
        parse_label_selector("x=a||y=b")
    with pytest.raises(SelectorError, match=r'^unable to parse requirement: <nil>: Invalid value: "x@"'):
        parse_label_selector("x@=a")


@pytest.mark.parametrize("text", INVALID_SELECTORS)
def test_a_selector_the_apiserver_rejects_raises_selector_error(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(text)


def test_selector_error_is_a_value_error() -> None:
    assert issubclass(SelectorError, ValueError)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("z=c,y=b,x=a", "x=a,y=b,z=c"),
        ("x==a", "x==a"),
        ("x!=a", "x!=a"),
        ("x= ,z= ", "x=,z="),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("x in (c,b,a)", "x in (a,b,c)"),
        ("x in (a,a)", "x in (a)"),
        ("!x", "!x"),
        ("x>1", "x>1"),
        ("x<1", "x<1"),
        ("value in (in)", "value in (in)"),
    ],
)
def test_selectors_render_in_the_canonical_go_form(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("x==a==b", "found '==', expected: ',' or 'end of string'"),
        ("x in a", "unable to parse requirement: found 'a' expected: '('"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        ("x=a,", "found '', expected: identifier after ','"),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
        ("x notin", "unable to parse requirement: found '' expected: '('"),
        (
            "x<a",
            'unable to parse requirement: values[0]: Invalid value: "a": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "a/b/c",
            'unable to parse requirement: <nil>: Invalid value: "a/b/c": a valid label key must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')",
        ),
        ("/a", 'unable to parse requirement: <nil>: Invalid value: "/a": prefix part must be non-empty'),
        (
            "k" * 64,
            f'unable to parse requirement: <nil>: Invalid value: "{"k" * 64}": '
            "name part must be no more than 63 bytes",
        ),
        (
            "x=a-",
            'unable to parse requirement: values[0][x]: Invalid value: "a-": a valid label must be an empty '
            "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation "
            "is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
    ],
)
def test_parse_errors_carry_apimachinery_messages(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_label_selector(text)
    assert str(err.value) == message


def test_a_too_long_value_reports_length_and_regex_together() -> None:
    with pytest.raises(SelectorError) as err:
        parse_label_selector("x=" + "v" * 63 + "-")
    assert "must be no more than 63 bytes; a valid label must be" in str(err.value)


def test_an_invalid_dns_prefix_is_reported_as_a_prefix_part_error() -> None:
    errs = validate_label_key("Example.com/app")
    assert len(errs) == 1
    assert errs[0].startswith("prefix part a lowercase RFC 1123 subdomain must consist of")
    assert validate_label_key("example.com/app") == []


def test_a_label_value_may_be_empty_but_not_end_with_a_newline() -> None:
    assert validate_label_value("") == []
    assert validate_label_value("abc\n") != []
    assert validate_label_key("abc\n") != []


# ---------------------------------------------------------------------------------------------
# label selectors: matching
# ---------------------------------------------------------------------------------------------

MATCH_CASES: list[tuple[str, dict[str, str], bool]] = [
    ("", {"x": "y"}, True),
    ("", {}, True),
    ("x=y", {"x": "y"}, True),
    ("x=y", {"x": "z"}, False),
    ("x=y", {}, False),
    ("x==y", {"x": "y"}, True),
    ("x!=y", {"x": "z"}, True),
    ("x!=y", {"x": "y"}, False),
    ("x!=y", {}, True),
    ("x=", {"x": ""}, True),
    ("x=", {}, False),
    ("x", {"x": ""}, True),
    ("x", {"y": "x"}, False),
    ("!x", {"y": "1"}, True),
    ("!x", {"x": "1"}, False),
    ("x in (a,b)", {"x": "b"}, True),
    ("x in (a,b)", {"x": "c"}, False),
    ("x in (a,b)", {}, False),
    ("x notin (a,b)", {"x": "c"}, True),
    ("x notin (a,b)", {"x": "a"}, False),
    ("x notin (a,b)", {}, True),
    ("x in ()", {"x": ""}, True),
    ("x>1", {"x": "2"}, True),
    ("x>1", {"x": "1"}, False),
    ("x>1", {"x": "abc"}, False),
    ("x>1", {}, False),
    ("x<1", {"x": "-5"}, True),
    ("x=a,y=b", {"x": "a", "y": "b", "z": "c"}, True),
    ("x=a,y=b", {"x": "a"}, False),
    ("x=a,!y", {"x": "a"}, True),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCH_CASES)
def test_label_selector_matching_follows_kubernetes_semantics(
    text: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_none_labels_behave_as_no_labels() -> None:
    assert parse_label_selector("x!=a").matches(None)
    assert not parse_label_selector("x").matches(None)


def test_empty_selector_reports_empty() -> None:
    assert parse_label_selector("").empty
    assert not parse_label_selector("x").empty


# ---------------------------------------------------------------------------------------------
# metav1.LabelSelector
# ---------------------------------------------------------------------------------------------


def test_a_null_label_selector_selects_nothing_and_an_empty_one_everything() -> None:
    assert not label_selector_from_dict(None).matches({"a": "b"})
    assert label_selector_from_dict({}).matches({"a": "b"})
    assert label_selector_from_dict({"matchLabels": {}, "matchExpressions": []}).empty


def test_match_labels_and_expressions_are_anded() -> None:
    sel = label_selector_from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert sel.matches({"app": "web", "tier": "fe", "team": "x"})
    assert not sel.matches({"app": "web", "tier": "fe", "team": "x", "legacy": "1"})
    assert not sel.matches({"app": "web", "tier": "fe", "team": "x", "env": "prod"})
    assert not sel.matches({"app": "web", "tier": "db", "team": "x"})
    assert not sel.matches({"app": "api", "tier": "fe", "team": "x"})
    assert str(sel) == "app=web,env notin (prod),!legacy,team,tier in (be,fe)"


@pytest.mark.parametrize(
    ("sel", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
            '"Gt" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            'values: Invalid value: ["x"]: values set must be empty for exists and does not exist',
        ),
    ],
)
def test_invalid_label_selector_dicts_are_rejected(sel: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError) as err:
        label_selector_from_dict(sel)
    assert str(err.value) == message


def test_invalid_match_labels_values_are_rejected() -> None:
    with pytest.raises(SelectorError, match=r"values\[0\]\[app\]: Invalid value: \"-x\""):
        label_selector_from_dict({"matchLabels": {"app": "-x"}})


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------

_alnum = st.sampled_from("abcxyzAZ019")
_name = st.one_of(
    _alnum,
    st.builds(lambda a, m, z: a + m + z, _alnum, st.text(alphabet="ab9-_.", max_size=8), _alnum),
)
_key = st.one_of(_name, st.builds(lambda p, n: f"{p}.io/{n}", st.sampled_from(["ex", "k8s", "a-b"]), _name))
_value = st.one_of(st.just(""), _name, st.sampled_from(["in", "notin"]))


@st.composite
def requirements(draw: st.DrawFn) -> LabelRequirement:
    key = draw(_key)
    op = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"]))
    if op in ("exists", "!"):
        return LabelRequirement(key, op)
    if op in ("gt", "lt"):
        return LabelRequirement(key, op, (str(draw(st.integers(0, 1000))),))
    if op in ("in", "notin"):
        return LabelRequirement(key, op, tuple(sorted(draw(st.sets(_value, min_size=1, max_size=4)))))
    return LabelRequirement(key, op, (draw(_value),))


@given(st.lists(requirements(), max_size=5))
def test_printing_then_parsing_a_selector_gives_it_back(reqs: list[LabelRequirement]) -> None:
    sel = LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))
    again = parse_label_selector(str(sel))
    assert again == sel
    assert str(again) == str(sel)


def _oracle(req: LabelRequirement, labels: dict[str, str]) -> bool:
    has = req.key in labels
    v = labels.get(req.key, "")
    op = req.operator
    if op in ("=", "==", "in"):
        return has and v in req.values
    if op in ("!=", "notin"):
        return not has or v not in req.values
    if op == "exists":
        return has
    if op == "!":
        return not has
    if not has or not v.lstrip("-").isdigit():
        return False
    return int(v) > int(req.values[0]) if op == "gt" else int(v) < int(req.values[0])


@given(
    st.lists(requirements(), max_size=4),
    st.dictionaries(_key, st.one_of(_value, st.integers(-5, 5).map(str)), max_size=4),
)
def test_a_selector_matches_exactly_when_every_requirement_does(
    reqs: list[LabelRequirement], labels: dict[str, str]
) -> None:
    sel = LabelSelector(tuple(reqs))
    assert sel.matches(labels) == all(_oracle(r, labels) for r in reqs)


# ---------------------------------------------------------------------------------------------
# field selectors
# ---------------------------------------------------------------------------------------------

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web-0", "namespace": "default"},
    "spec": {"nodeName": "node-1"},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("metadata.name=web-0", True),
        ("metadata.name==web-0", True),
        ("metadata.name!=web-0", False),
        ("metadata.name=web-0,status.phase=Running", True),
        ("metadata.name=web-0,status.phase!=Running", False),
        ("spec.nodeName=", False),
        ("spec.nodeName!=", True),
        ("spec.schedulerName=", True),
        ("spec.hostNetwork=false", True),
        ("metadata.namespace=other", False),
    ],
)
def test_field_selector_matching(text: str, expected: bool) -> None:
    assert parse_field_selector(text).matches(POD) is expected


def test_field_selector_exposes_requirements_sorted_like_the_apiserver() -> None:
    sel = parse_field_selector("status.phase!=Failed,metadata.name==a")
    assert sel.requirements == [("metadata.name", "=", "a"), ("status.phase", "!=", "Failed")]
    assert sel.fields == frozenset({"metadata.name", "status.phase"})
    assert sel.requires_exact_match("metadata.name") == "a"
    assert sel.requires_exact_match("status.phase") is None


def test_escaped_commas_and_equals_are_part_of_the_value() -> None:
    sel = parse_field_selector(r"metadata.name=a\,b\=c\\d,status.phase=x")
    assert sel.requirements == [("metadata.name", "=", "a,b=c\\d"), ("status.phase", "=", "x")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        (r"a=b\x", "invalid field selector: invalid escape sequence: \\x"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    ],
)
def test_bad_field_selectors_carry_apimachinery_messages(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_field_selector(text)
    assert str(err.value) == message


def test_not_equal_is_found_before_equal_in_a_term() -> None:
    assert parse_field_selector("a!=b").requirements == [("a", "!=", "b")]
    assert parse_field_selector("a!b=c").requirements == [("a!b", "=", "c")]


@given(st.text(max_size=20))
def test_escaping_a_field_value_round_trips_through_the_parser(value: str) -> None:
    sel = parse_field_selector("metadata.name=" + escape_field_value(value))
    assert sel.requirements == [("metadata.name", "=", value)]
    assert parse_field_selector(str(sel)) == sel


def test_event_source_field_compares_the_source_component() -> None:
    ev = {"source": {"component": "kubelet"}, "type": "Warning"}
    assert field_value(ev, "source") == "kubelet"
    assert parse_field_selector("source=kubelet,type=Warning").matches(ev)


def test_non_string_field_values_are_formatted_like_go() -> None:
    assert field_value({"spec": {"hostNetwork": True}}, "spec.hostNetwork") == "true"
    assert field_value({"status": {"replicas": 3}}, "status.replicas") == "3"
    assert field_value({}, "status.replicas") == "0"


def test_supported_fields_follow_kube_apiserver() -> None:
    assert supported_fields("example.com", "widgets") == {"metadata.name", "metadata.namespace"}
    assert supported_fields("", "configmaps") == {"metadata.name", "metadata.namespace"}
    assert {"spec.nodeName", "status.podIPs"} <= supported_fields("", "pods")
    assert "type" in supported_fields("", "secrets")
    assert "involvedObject.uid" in supported_fields("", "events")
    assert "regarding.name" in supported_fields("events.k8s.io", "events")
    assert supported_fields("", "namespaces") == {"metadata.name", "status.phase"}
    assert "metadata.namespace" not in supported_fields("", "nodes")
    assert "status.replicas" not in supported_fields("apps", "replicasets")
    assert "spec.nodeName" not in supported_fields("", "services")


@pytest.mark.parametrize(
    ("group", "resource", "message"),
    [
        ("", "pods", "field label not supported: spec.foo"),
        ("example.com", "widgets", "field label not supported: spec.foo"),
        (
            "",
            "configmaps",
            '"spec.foo" is not a known field selector: only "metadata.name", "metadata.namespace"',
        ),
        (
            "apps",
            "deployments",
            '"spec.foo" is not a known field selector: only "metadata.name", "metadata.namespace"',
        ),
        ("batch", "jobs", 'field label "spec.foo" not supported for Job'),
    ],
)
def test_unsupported_field_labels_are_worded_per_resource_like_kube_apiserver(
    group: str, resource: str, message: str
) -> None:
    with pytest.raises(SelectorError) as err:
        check_supported(parse_field_selector("metadata.name=a,spec.foo=b"), group, resource)
    assert str(err.value) == message


def test_check_supported_reports_the_first_field_in_sorted_order_and_takes_extra_fields() -> None:
    check_supported(parse_field_selector("spec.nodeName=n,metadata.name=a"), "", "pods")
    with pytest.raises(SelectorError, match=r"^field label not supported: a$"):
        check_supported(parse_field_selector("spec.foo=x,a=b"), "", "pods")
    check_supported(parse_field_selector("spec.color=red"), "example.com", "widgets", extra=["spec.color"])


def test_an_empty_field_selector_matches_everything() -> None:
    assert FieldSelector().matches({})
    assert parse_field_selector("").empty


@given(st.text(alphabet="ab=!(),<> \tin-./xyz0", max_size=25))
def test_any_label_selector_text_parses_or_raises_selector_error(text: str) -> None:
    try:
        sel = parse_label_selector(text)
    except SelectorError:
        return
    assert parse_label_selector(str(sel)) == sel


@given(st.text(alphabet="ab=!,\\. x", max_size=20))
def test_any_field_selector_text_parses_or_raises_selector_error(text: str) -> None:
    try:
        sel = parse_field_selector(text)
    except SelectorError:
        return
    # "==" prints as "=", which can sort differently, so compare the requirements as a set
    assert sorted(parse_field_selector(str(sel)).requirements) == sorted(sel.requirements)


# ---------------------------------------------------------------------------------------------
# differential: the same selectors against a real kube-apiserver (envtest tier)
# ---------------------------------------------------------------------------------------------


async def _real_get(kube: KubeTarget, path: str, query: list[tuple[str, str]]) -> tuple[int, Any]:
    response = await kube.api_client.call_api(
        path,
        "GET",
        query_params=query,
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    try:
        return response.status, json.loads(await response.read())
    finally:
        response.release()


REAL_LABEL_SELECTORS = [
    "x=a,y!=b",
    "x in (a,b),!z",
    "x=a||y=b",
    "x in a",
    "=a",
    "x=a,",
    "a/b/c",
    "/a",
    "k" * 64,
    "x=a-",
    "x<a",
    "x>1.1",
    "x in (a b)",
    "!x=a",
    "x@=a",
    "x notin",
    "x=" + "v" * 64,
    "Example.com/x",
]
REAL_FIELD_SELECTORS = [
    ("", "pods", "spec.nodeName=n,status.phase!=Running"),
    ("", "pods", "metadata.name"),
    ("", "pods", "a=b\\x"),
    ("", "pods", "a=b=c"),
    ("", "pods", "spec.foo=x"),
    ("", "configmaps", "spec.foo=x"),
    ("", "namespaces", "status.phase=Active"),
    ("", "namespaces", "metadata.namespace=x"),
    ("batch", "jobs", "status.successful=1,bad=1"),
    ("", "secrets", "type=Opaque"),
    ("apps", "replicasets", "status.replicas=1"),
    ("events.k8s.io", "events", "regarding.name=x,reportingController=y"),
]


@pytest.mark.real_only
async def test_label_selector_verdicts_and_messages_match_kube_apiserver(kube: KubeTarget) -> None:
    for text in REAL_LABEL_SELECTORS:
        status, body = await _real_get(
            kube, f"/api/v1/namespaces/{kube.namespace}/pods", [("labelSelector", text)]
        )
        try:
            parse_label_selector(text)
            mine: tuple[int, str | None] = (200, None)
        except SelectorError as e:
            mine = (400, str(e))
        assert (status, body.get("message") if status != 200 else None) == mine, text


def _collection(group: str, resource: str, namespace: str) -> str:
    prefix = "/api/v1" if not group else f"/apis/{group}/v1"
    cluster_scoped = resource in ("namespaces", "nodes", "certificatesigningrequests")
    return f"{prefix}/{resource}" if cluster_scoped else f"{prefix}/namespaces/{namespace}/{resource}"


@pytest.mark.real_only
async def test_field_selector_verdicts_and_messages_match_kube_apiserver(kube: KubeTarget) -> None:
    for group, resource, text in REAL_FIELD_SELECTORS:
        path = _collection(group, resource, kube.namespace)
        status, body = await _real_get(kube, path, [("fieldSelector", text)])
        try:
            check_supported(parse_field_selector(text), group, resource)
            mine: tuple[int, str | None] = (200, None)
        except SelectorError as e:
            mine = (400, str(e))
        assert (status, body.get("message") if status != 200 else None) == mine, (resource, text)

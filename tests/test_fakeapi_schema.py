"""Structural schema validation, defaulting and pruning behave as apiextensions-apiserver's."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kctl_runtime.testing.fakeapi.schema import (
    Cause,
    _go_float,
    apply_defaults,
    format_causes,
    prune,
    status_invalid,
    validate,
)
from kctl_runtime.testing.pytest_plugin import KubeTarget

WEBSITE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["gitRepo"],
            "properties": {
                "gitRepo": {"type": "string", "minLength": 1, "maxLength": 20, "pattern": "^https?://"},
                "replicas": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 5, "default": 1},
                "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "level": {"type": "integer", "enum": [1, 2]},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
                "ports": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "properties": {"port": {"type": "integer"}, "name": {"type": "string"}},
                    },
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "note": {"type": "string", "nullable": True},
                "when": {"type": "string", "format": "date-time"},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                },
            },
        },
    },
}


def website(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "extensions.example.com/v1",
        "kind": "Website",
        "metadata": {"name": "x"},
        "spec": {"gitRepo": "https://g", **spec},
    }


def test_a_valid_object_has_no_causes() -> None:
    obj = website(replicas=3, mode="a", port="http", tags=["x"], ports=[{"port": 80}], labels={"a": "b"})
    assert validate(obj, WEBSITE) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"gitRepo": None},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    "spec.gitRepo",
                    'Invalid value: "null": spec.gitRepo in body must be of type string: "null"',
                )
            ],
        ),
        (
            {"replicas": "3"},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    "spec.replicas",
                    'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
                )
            ],
        ),
        (
            {"replicas": 2.5},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    "spec.replicas",
                    'Invalid value: "float64": spec.replicas in body must be of type int32: "float64"',
                ),
                Cause(
                    "FieldValueInvalid",
                    "<nil>",
                    'Invalid value: "": Checked value must be of type integer with format int32 '
                    "in spec.replicas",
                ),
            ],
        ),
        (
            {"replicas": 0},
            [
                Cause(
                    "FieldValueInvalid",
                    "spec.replicas",
                    "Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
                )
            ],
        ),
        (
            {"replicas": 6},
            [
                Cause(
                    "FieldValueInvalid",
                    "spec.replicas",
                    "Invalid value: 6: spec.replicas in body should be less than or equal to 5",
                )
            ],
        ),
        (
            {"ratio": 0},
            [
                Cause(
                    "FieldValueInvalid",
                    "spec.ratio",
                    "Invalid value: 0: spec.ratio in body should be greater than 0",
                )
            ],
        ),
        (
            {"mode": "c"},
            [
                Cause(
                    "FieldValueNotSupported",
                    "spec.mode",
                    'Unsupported value: "c": supported values: "a", "b"',
                )
            ],
        ),
        (
            {"level": 3},
            [
                Cause(
                    "FieldValueNotSupported", "spec.level", 'Unsupported value: 3: supported values: "1", "2"'
                )
            ],
        ),
        (
            {"gitRepo": "x" * 21},
            [
                # only the first string failure is reported (the pattern fails too)
                Cause("FieldValueTooLong", "spec.gitRepo", "Too long: may not be more than 20 bytes"),
            ],
        ),
        (
            {"gitRepo": ""},
            [
                Cause(
                    "FieldValueInvalid",
                    "spec.gitRepo",
                    'Invalid value: "": spec.gitRepo in body should be at least 1 chars long',
                ),
            ],
        ),
        (
            {"tags": []},
            [
                Cause(
                    "FieldValueInvalid",
                    "spec.tags",
                    "Invalid value: 0: spec.tags in body should have at least 1 items",
                )
            ],
        ),
        (
            {"tags": ["a", "b", "c"]},
            [Cause("FieldValueTooMany", "spec.tags", "Too many: 3: must have at most 2 items")],
        ),
        (
            {"tags": ["a", 1]},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    "spec.tags[1]",
                    'Invalid value: "integer": spec.tags[1] in body must be of type string: "integer"',
                )
            ],
        ),
        (
            {"ports": [{"port": 80}, {"port": "http"}, {"name": "x"}]},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    "spec.ports[1].port",
                    'Invalid value: "string": spec.ports[1].port in body must be of type integer: "string"',
                ),
                Cause("FieldValueRequired", "spec.ports[2].port", "Required value"),
            ],
        ),
        (
            {"labels": {"a": 1}},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    "spec.labels.a",
                    'Invalid value: "integer": spec.labels.a in body must be of type string: "integer"',
                )
            ],
        ),
        (
            {"port": True},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    "spec.port",
                    'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"',
                )
            ],
        ),
        (
            {"when": "yesterday"},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    "spec.when",
                    'Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"',
                )
            ],
        ),
        (
            {"template": {"spec": {}}},
            [
                Cause("FieldValueRequired", "spec.template.apiVersion", "Required value"),
                Cause("FieldValueRequired", "spec.template.kind", "Required value"),
            ],
        ),
    ],
)
def test_invalid_values_produce_the_apiserver_causes(spec: dict[str, Any], expected: list[Cause]) -> None:
    assert validate(website(**spec), WEBSITE) == expected


def test_a_missing_required_field_is_required_value() -> None:
    obj = website()
    del obj["spec"]["gitRepo"]
    assert validate(obj, WEBSITE) == [Cause("FieldValueRequired", "spec.gitRepo", "Required value")]


def test_required_at_the_root_has_no_leading_dot() -> None:
    assert validate({}, {"type": "object", "required": ["spec"]}) == [
        Cause("FieldValueRequired", "spec", "Required value")
    ]


def test_a_wrong_root_type_is_reported_at_nil() -> None:
    (cause,) = validate([], {"type": "object"})
    assert cause.field == "<nil>"
    # upstream formats "%s in %s must be ..." with an empty name, hence the double space
    assert cause.message == 'Invalid value: "array":  in body must be of type object: "array"'


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), (1.0, True), ("x", False), (True, False)],
)
def test_integral_floats_are_integers(value: Any, ok: bool) -> None:
    assert (validate(value, {"type": "integer"}) == []) is ok


def test_integers_are_numbers() -> None:
    assert validate(3, {"type": "number"}) == []


def test_nullable_fields_accept_null() -> None:
    assert validate(website(note=None), WEBSITE) == []


def test_int_or_string_accepts_both() -> None:
    assert validate(website(port=80), WEBSITE) == []
    assert validate(website(port="http"), WEBSITE) == []


def test_preserve_unknown_fields_accepts_anything_below() -> None:
    assert validate(website(extra={"a": [1, {"b": None}]}), WEBSITE) == []


def test_integer_formats_are_range_checked_with_a_nil_field_error() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "format": "int32"}}}
    assert validate({"n": 2**40}, schema) == [
        Cause(
            "FieldValueInvalid",
            "<nil>",
            'Invalid value: "": Checked value must be of type integer with format int32 in n',
        )
    ]
    assert validate(2**40, {"type": "integer", "format": "int64"}) == []


def test_a_number_where_a_string_format_is_declared_names_the_format() -> None:
    (cause,) = validate(
        {"t": 3}, {"type": "object", "properties": {"t": {"type": "string", "format": "date-time"}}}
    )
    assert cause.message == 'Invalid value: "int64": t in body must be of type date-time: "int64"'


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("date-time", "2024-01-02T03:04:05Z", "2024-13-02T03:04:05Z"),
        ("date", "2024-01-02", "2024-1-2"),
        ("byte", "aGVsbG8=", "not base64!"),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123"),
        ("ipv4", "10.0.0.1", "10.0.0.256"),
        ("ipv6", "::1", "10.0.0.1"),
        ("cidr", "10.0.0.0/8", "10.0.0.0"),
    ],
)
def test_string_formats_are_checked(fmt: str, good: str, bad: str) -> None:
    schema = {"type": "string", "format": fmt}
    assert validate(good, schema) == []
    assert [c.reason for c in validate(bad, schema)] == ["FieldValueTypeInvalid"]


def test_unknown_formats_are_ignored() -> None:
    assert validate("anything", {"type": "string", "format": "my-format"}) == []


def test_additional_properties_false_forbids_unknown_keys() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "additionalProperties": False, "properties": {"a": {"type": "string"}}}
        },
    }
    assert validate({"spec": {"a": "x", "b": 1}}, schema) == [
        Cause("FieldValueInvalid", "spec", 'Invalid value: "b": spec.b in body is a forbidden property')
    ]


def test_any_of_failure_names_the_path_at_nil_and_keeps_the_closest_branch() -> None:
    schema = {"type": "object", "properties": {"spec": {"anyOf": [{"required": ["a"]}, {"required": ["b"]}]}}}
    assert validate({"spec": {}}, schema) == [
        Cause(
            "FieldValueInvalid",
            "<nil>",
            'Invalid value: "": "spec" must validate at least one schema (anyOf)',
        ),
        Cause("FieldValueRequired", "spec.a", "Required value"),
    ]
    assert validate({"spec": {"b": 1}}, schema) == []


def test_one_of_requires_exactly_one_valid_alternative() -> None:
    schema = {"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
    assert validate({"a": 1}, schema) == []
    (cause,) = validate({"a": 1, "b": 2}, schema)
    assert (
        cause.message
        == 'Invalid value: "": "" must validate one and only one schema (oneOf). Found 2 valid alternatives'
    )


def test_all_of_and_not() -> None:
    schema = {"allOf": [{"required": ["a"]}, {"required": ["b"]}], "not": {"required": ["c"]}}
    assert validate({"a": 1, "b": 1}, schema) == []
    causes = validate({"a": 1, "c": 1}, schema)
    assert [c.message for c in causes] == [
        "Required value",
        'Invalid value: "": "" must validate all the schemas (allOf)',
        'Invalid value: "": "" must not validate the schema (not)',
    ]


def test_path_prefixes_every_field() -> None:
    (cause,) = validate({"x": "s"}, {"type": "object", "properties": {"x": {"type": "integer"}}}, path="spec")
    assert cause.field == "spec.x"


def test_uniqueness_and_multiple_of() -> None:
    assert [c.message for c in validate([1, 1], {"type": "array", "uniqueItems": True})] == [
        'Invalid value: "":  in body shouldn\'t contain duplicates'
    ]
    assert [c.message for c in validate(7, {"type": "integer", "multipleOf": 2})] == [
        "Invalid value: 7:  in body should be a multiple of 2"
    ]


# ---------------------------------------------------------------------------------------------
# Status body
# ---------------------------------------------------------------------------------------------


def test_status_invalid_with_one_cause_matches_errors_new_invalid() -> None:
    causes = [Cause("FieldValueRequired", "spec.gitRepo", "Required value")]
    assert status_invalid(group="extensions.example.com", kind="Website", name="x", causes=causes) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Website.extensions.example.com "x" is invalid: spec.gitRepo: Required value',
        "reason": "Invalid",
        "details": {
            "name": "x",
            "group": "extensions.example.com",
            "kind": "Website",
            "causes": [
                {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.gitRepo"}
            ],
        },
        "code": 422,
    }


def test_status_invalid_with_several_causes_brackets_the_aggregate() -> None:
    causes = validate(website(replicas="3", mode="z"), WEBSITE)
    body = status_invalid(group="extensions.example.com", kind="Website", name="x", causes=causes)
    assert body["message"] == (
        'Website.extensions.example.com "x" is invalid: ['
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string", '
        'spec.mode: Unsupported value: "z": supported values: "a", "b"]'
    )
    assert len(body["details"]["causes"]) == 2


def test_core_group_kinds_are_not_qualified_and_duplicates_collapse() -> None:
    c = Cause("FieldValueRequired", "a", "Required value")
    body = status_invalid(group="", kind="Pod", name="p", causes=[c, c])
    assert body["message"] == 'Pod "p" is invalid: a: Required value'
    assert "group" not in body["details"]
    assert len(body["details"]["causes"]) == 2
    assert format_causes([]) == "[]"


# ---------------------------------------------------------------------------------------------
# defaulting
# ---------------------------------------------------------------------------------------------

DEFAULTS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "default": {},
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "strategy": {
                    "type": "object",
                    "default": {"type": "Rolling"},
                    "properties": {
                        "type": {"type": "string"},
                        "maxSurge": {"type": "integer", "default": 25},
                    },
                },
                "ports": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"protocol": {"type": "string", "default": "TCP"}},
                    },
                },
                "env": {"type": "object", "additionalProperties": {"type": "string", "default": "unset"}},
                "note": {"type": "string"},
                "maybe": {"type": "string", "nullable": True},
                "mode": {"type": "string", "default": "auto"},
            },
        }
    },
}


def test_defaults_fill_missing_fields_recursively_including_inside_defaults() -> None:
    assert apply_defaults({}, DEFAULTS) == {
        "spec": {"replicas": 1, "strategy": {"type": "Rolling", "maxSurge": 25}, "mode": "auto"}
    }


def test_defaults_apply_to_array_items_and_additional_properties() -> None:
    out = apply_defaults(
        {"spec": {"ports": [{}, {"protocol": "UDP"}], "env": {"A": None, "B": "x"}}}, DEFAULTS
    )
    assert out["spec"]["ports"] == [{"protocol": "TCP"}, {"protocol": "UDP"}]
    assert out["spec"]["env"] == {"A": "unset", "B": "x"}


def test_nulls_are_defaulted_dropped_or_kept_by_nullability() -> None:
    out = apply_defaults({"spec": {"mode": None, "note": None, "maybe": None}}, DEFAULTS)
    assert out["spec"]["mode"] == "auto"
    assert "note" not in out["spec"]
    assert out["spec"]["maybe"] is None


def test_defaulting_never_mutates_the_input_or_shares_defaults() -> None:
    obj: dict[str, Any] = {"spec": {}}
    out = apply_defaults(obj, DEFAULTS)
    assert obj == {"spec": {}}
    out["spec"]["strategy"]["type"] = "changed"
    assert DEFAULTS["properties"]["spec"]["properties"]["strategy"]["default"] == {"type": "Rolling"}


def test_present_values_are_not_overwritten() -> None:
    assert apply_defaults({"spec": {"replicas": 3}}, DEFAULTS)["spec"]["replicas"] == 3


# ---------------------------------------------------------------------------------------------
# pruning
# ---------------------------------------------------------------------------------------------


def test_unknown_fields_are_pruned_but_root_type_and_object_meta_are_kept() -> None:
    obj = website(unknown=1, labels={"a": "b"})
    obj["status"] = {"x": 1}
    obj["metadata"]["bogus"] = True
    obj["metadata"]["labels"] = {"l": "v"}
    out = prune(obj, WEBSITE)
    assert out["apiVersion"] == obj["apiVersion"]
    assert out["kind"] == "Website"
    assert out["metadata"] == {"name": "x", "labels": {"l": "v"}}
    assert out["spec"] == {"gitRepo": "https://g", "labels": {"a": "b"}}
    assert "status" not in out
    assert obj["spec"]["unknown"] == 1  # input untouched


def test_root_api_version_kind_and_metadata_survive_an_empty_schema() -> None:
    out = prune({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}, "spec": {}}, {"type": "object"})
    assert out == {"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}}


def test_preserve_unknown_fields_keeps_everything_below() -> None:
    out = prune(website(extra={"a": {"b": [1]}}), WEBSITE)
    assert out["spec"]["extra"] == {"a": {"b": [1]}}


def test_specified_properties_below_preserve_unknown_fields_are_still_pruned() -> None:
    schema = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}},
    }
    assert prune({"other": 1, "spec": {"a": "x", "b": 2}}, schema) == {"other": 1, "spec": {"a": "x"}}


def test_embedded_resources_keep_type_meta_and_object_meta_fields_only() -> None:
    tmpl = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1}, "spec": {"x": 1}}
    out = prune(website(template=tmpl), WEBSITE)
    assert out["spec"]["template"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"x": 1},
    }


def test_array_items_are_pruned() -> None:
    out = prune(website(ports=[{"port": 1, "junk": 2}]), WEBSITE)
    assert out["spec"]["ports"] == [{"port": 1}]


# ---------------------------------------------------------------------------------------------
# properties and formatting helpers
# ---------------------------------------------------------------------------------------------

_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(alphabet="ab", max_size=2)),
    lambda kids: st.one_of(
        st.lists(kids, max_size=3),
        st.dictionaries(
            st.sampled_from(["gitRepo", "replicas", "ports", "port", "x", "extra", "labels"]),
            kids,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@given(
    st.dictionaries(st.sampled_from(["apiVersion", "kind", "metadata", "spec", "status"]), _json, max_size=5)
)
def test_pruning_is_idempotent_and_only_removes(obj: dict[str, Any]) -> None:
    once = prune(obj, WEBSITE)
    assert prune(once, WEBSITE) == once
    assert set(once) <= set(obj)


@given(
    st.dictionaries(
        st.just("spec"), st.dictionaries(st.sampled_from(["replicas", "ports", "env", "mode"]), _json)
    )
)
def test_defaulting_is_idempotent(obj: dict[str, Any]) -> None:
    once = apply_defaults(obj, DEFAULTS)
    assert apply_defaults(once, DEFAULTS) == once


@given(st.dictionaries(st.sampled_from(["apiVersion", "kind", "metadata", "spec"]), _json, max_size=4))
def test_validation_is_deterministic_and_never_raises(obj: dict[str, Any]) -> None:
    assert validate(copy.deepcopy(obj), WEBSITE) == validate(obj, WEBSITE)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (1.5, "1.5"),
        (-2.25, "-2.25"),
        (1e8, "1e+08"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1e21, "1e+21"),
        (0.0, "0"),
    ],
)
def test_floats_are_formatted_like_go_percent_v(value: float, text: str) -> None:
    assert _go_float(value) == text


_schema_leaf = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["object", "array", "string", "integer", "number", "boolean"]),
        "nullable": st.booleans(),
        "enum": st.lists(st.one_of(st.integers(0, 2), st.sampled_from(["a", "b"])), max_size=2),
        "minimum": st.integers(-1, 1),
        "maxLength": st.integers(0, 2),
        "pattern": st.sampled_from(["^a", "(?<=x)y", "[", r"\p{L}"]),
        "format": st.sampled_from(["date-time", "int32", "uuid", "weird"]),
        "default": _json,
        "x-kubernetes-int-or-string": st.booleans(),
        "x-kubernetes-preserve-unknown-fields": st.booleans(),
    },
)
_schemas = st.recursive(
    _schema_leaf,
    lambda kids: st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.just("object"),
                "properties": st.dictionaries(
                    st.sampled_from(["gitRepo", "replicas", "ports", "x"]), kids, max_size=3
                ),
            },
            optional={
                "required": st.lists(st.sampled_from(["gitRepo", "x"]), max_size=2),
                "additionalProperties": st.one_of(st.booleans(), kids),
            },
        ),
        st.fixed_dictionaries(
            {"type": st.just("array"), "items": kids}, optional={"minItems": st.integers(0, 2)}
        ),
        st.fixed_dictionaries({"anyOf": st.lists(kids, min_size=1, max_size=2)}),
        st.fixed_dictionaries({"oneOf": st.lists(kids, min_size=1, max_size=2)}),
    ),
    max_leaves=6,
)


@given(_schemas, st.dictionaries(st.sampled_from(["gitRepo", "replicas", "ports", "x"]), _json, max_size=4))
def test_any_schema_and_object_validate_default_and_prune_without_crashing(
    schema: dict[str, Any], obj: dict[str, Any]
) -> None:
    causes = validate(obj, schema)
    assert all(isinstance(c, Cause) and c.field for c in causes)
    defaulted = apply_defaults(obj, schema)
    pruned = prune(defaulted, schema)
    assert prune(pruned, schema) == pruned


def test_a_bound_that_does_not_fit_the_type_is_reported_and_compared_as_a_float() -> None:
    schema = {"type": "object", "properties": {"u": {"type": "integer", "format": "int64", "minimum": 0.5}}}
    boundary = Cause(
        "FieldValueInvalid",
        "<nil>",
        'Invalid value: "": Minimum boundary value must be of type integer with format int64 in u',
    )
    assert validate({"u": 0}, schema) == [
        boundary,
        Cause("FieldValueInvalid", "u", "Invalid value: 0: u in body should be greater than or equal to 0.5"),
    ]
    assert validate({"u": 1}, schema) == [boundary]


def test_a_fractional_value_for_an_integer_is_a_type_and_a_range_error() -> None:
    assert [c.field for c in validate({"c": 2.5}, {"properties": {"c": {"type": "integer"}}})] == [
        "c",
        "<nil>",
    ]
    assert validate({"c": 2.0}, {"properties": {"c": {"type": "integer"}}}) == []


def test_float_format_rejects_values_beyond_float32() -> None:
    (cause,) = validate({"f": 1e300}, {"properties": {"f": {"type": "number", "format": "float"}}})
    assert cause.message == 'Invalid value: "": Checked value must be of type number with format float in f'


def test_string_lengths_count_characters_not_bytes() -> None:
    assert validate("ééé", {"type": "string", "maxLength": 3}) == []


# ---------------------------------------------------------------------------------------------
# differential: the same custom resources against a real kube-apiserver (envtest tier)
# ---------------------------------------------------------------------------------------------


async def _real_call(kube: KubeTarget, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = await kube.api_client.call_api(
        path,
        method,
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    try:
        raw = await response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:  # e.g. "404 page not found" before the CRD is served
            return response.status, raw.decode()
    finally:
        response.release()


REAL_SPECS: list[dict[str, Any]] = [
    {"gitRepo": "https://g", "unknown": 1, "extra": {"z": [1]}, "labels": {"a": "b"}, "note": None},
    {},
    {"gitRepo": None},
    {"gitRepo": "https://g", "replicas": "3"},
    {"gitRepo": "https://g", "replicas": 2.5},
    {"gitRepo": "https://g", "replicas": 2.0},
    {"gitRepo": "https://g", "replicas": 0},
    {"gitRepo": "https://g", "replicas": 6},
    {"gitRepo": "https://g", "ratio": 0},
    {"gitRepo": "https://g", "mode": "c", "level": 3},
    {"gitRepo": "x" * 21},
    {"gitRepo": ""},
    {"gitRepo": "https://g", "tags": []},
    {"gitRepo": "https://g", "tags": ["a", "b", "c"]},
    {"gitRepo": "https://g", "tags": ["a", 1]},
    {"gitRepo": "https://g", "ports": [{"port": 80}, {"port": "http"}, {"name": "x"}]},
    {"gitRepo": "https://g", "labels": {"a": 1}},
    {"gitRepo": "https://g", "port": True},
    {"gitRepo": "https://g", "when": "yesterday"},
    {"gitRepo": "https://g", "when": 3},
    {"gitRepo": "https://g", "template": {"spec": {}}},
    {
        "gitRepo": "https://g",
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1}},
    },
    {"gitRepo": "https://g", "replicas": None, "mode": None},
    {"replicas": "3", "mode": "z"},
]


@pytest.mark.real_only
async def test_custom_resource_validation_defaulting_and_pruning_match_kube_apiserver(
    kube: KubeTarget,
) -> None:
    group = f"{kube.namespace}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"websites.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": "websites",
                "singular": "website",
                "kind": "Website",
                "listKind": "WebsiteList",
            },
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": WEBSITE}}
            ],
        },
    }
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    status, answer = await _real_call(kube, "POST", crds, crd)
    assert status == 201, answer
    collection = f"/apis/{group}/v1/namespaces/{kube.namespace}/websites"
    try:
        for _ in range(100):
            if (await _real_call(kube, "GET", collection))[0] == 200:
                break
            await asyncio.sleep(0.1)
        for i, spec in enumerate(REAL_SPECS):
            obj = {
                "apiVersion": f"{group}/v1",
                "kind": "Website",
                "metadata": {"name": f"w{i}"},
                "spec": spec,
            }
            status, real = await _real_call(kube, "POST", collection, obj)
            mine_obj = prune(apply_defaults(obj, WEBSITE), WEBSITE)
            causes = validate(mine_obj, WEBSITE)
            if not causes:
                assert status == 201, (spec, real)
                assert real["spec"] == mine_obj["spec"], spec
                continue
            mine = status_invalid(group=group, kind="Website", name=f"w{i}", causes=causes)
            assert status == 422, (spec, real)
            # upstream walks properties in Go map order: compare causes as a set
            key = lambda c: (c["field"], c["reason"], c["message"])  # noqa: E731
            assert sorted(real["details"]["causes"], key=key) == sorted(mine["details"]["causes"], key=key), (
                spec
            )
            if len(causes) == 1:
                assert real["message"] == mine["message"]
    finally:
        await _real_call(kube, "DELETE", f"{crds}/websites.{group}")

"""Property: validation, defaulting and selector parsing never raise on arbitrary input;
they return errors instead. Inputs are random JSON-ish values, alone and grafted at random
places into valid objects (so the walk gets deep before meeting them)."""

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from tinykube import labels
from tinykube.model.defaults import apply_defaults
from tinykube.model.validation import validate, validate_update

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                         st.text(max_size=20),
                         st.sampled_from(["", "Always", "50%", "1Gi", "500m", "http", "/x",
                                          "../x", "a\0b", "In", "Exists", "app"]))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12) | st.sampled_from(
                                ["name", "spec", "metadata", "containers", "selector",
                                 "matchLabels", "matchExpressions", "template", "labels",
                                 "port", "httpGet", "volumes", "command"]),
                                inner, max_size=4)),
    max_leaves=20)

VALID = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "containers": [{"name": "c", "command": ["sleep", "1"],
                            "ports": [{"containerPort": 80, "name": "http"}],
                            "livenessProbe": {"httpGet": {"port": "http"}},
                            "resources": {"limits": {"cpu": "1"}},
                            "env": [{"name": "A", "value": "b"}],
                            "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
            "volumes": [{"name": "v", "emptyDir": {}}]}}},
}
KINDS = [("v1", "Pod"), ("v1", "ReplicationController"), ("apps/v1", "ReplicaSet"),
         ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("v1", "PersistentVolumeClaim")]


def _containers(obj):
    """Every dict/list inside obj, as (parent, key) slots a value can be grafted into."""
    slots, stack = [], [obj]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            slots.append((node, key))
            if isinstance(value, (dict, list)):
                stack.append(value)
    return slots


def _check(obj):
    errors = validate(obj)
    assert isinstance(errors, list)
    apply_defaults(copy.deepcopy(obj))
    validate_update(VALID, obj)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_values(value):
    _check(value)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(KINDS), st.data(), json_values)
def test_grafted_into_valid_objects(kind, data, value):
    obj = copy.deepcopy(VALID)
    obj["apiVersion"], obj["kind"] = kind
    slots = _containers(obj)
    parent, key = data.draw(st.sampled_from(slots))
    parent[key] = value
    _check(obj)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab=!(), inotx-_./\t", max_size=30))
def test_selector_parser_never_crashes(text):
    try:
        selector = labels.parse(text)
    except ValueError:
        return
    # A parsed selector prints back to an equal one.
    assert labels.parse(str(selector)) == selector


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_structured_selector_validation_never_crashes(value):
    errors = labels.validate_label_selector(value, "s")
    if not errors and isinstance(value, dict):
        labels.from_label_selector(value).matches({"a": "b"})

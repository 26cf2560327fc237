"""Manifest files: multi-document YAML, Lists, and errors naming file, document and line."""

import json

import pytest

from tinykube.model.manifests import ManifestError, load_manifests

POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n"
DEPLOY = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"


def test_single_document():
    assert load_manifests(POD, "pod.yaml") == [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
         "spec": {"containers": []}}]


def test_multi_document_skips_empty_ones():
    text = "---\n" + POD + "---\n# only a comment\n---\n" + DEPLOY + "---\n"
    assert [o["kind"] for o in load_manifests(text, "all.yaml")] == ["Pod", "Deployment"]


def test_json_document():
    assert load_manifests('{"apiVersion": "v1", "kind": "Pod"}', "p.json")[0]["kind"] == "Pod"


def test_list_kind_expands_items():
    text = ("apiVersion: v1\nkind: List\nitems:\n"
            "- {apiVersion: v1, kind: Pod, metadata: {name: a}}\n"
            "- {apiVersion: apps/v1, kind: StatefulSet, metadata: {name: b}}\n")
    assert [o["metadata"]["name"] for o in load_manifests(text, "l.yaml")] == ["a", "b"]


def test_timestamps_stay_strings():
    text = POD.replace("name: p", "name: p\n  creationTimestamp: 2024-01-01T00:00:00Z")
    obj = load_manifests(text, "p.yaml")[0]
    assert obj["metadata"]["creationTimestamp"] == "2024-01-01T00:00:00Z"
    json.dumps(obj)


@pytest.mark.parametrize("text, message", [
    (POD + "---\napiVersion: v1\nkind: Pod\nmetadata: name: x\n",
     "bad.yaml: document 2: line 10: mapping values are not allowed here"),
    ("apiVersion: v1\nkind: Pod\nkind: Pod\n", 'bad.yaml: document 1: line 3: duplicate field "kind"'),
    ("- a\n- b\n", "bad.yaml: document 1: expected an object (a mapping), got a list"),
    ("just text\n", "bad.yaml: document 1: expected an object (a mapping), got a str"),
    ("kind: Pod\n", "bad.yaml: document 1: apiVersion not set"),
    ("metadata: {}\n", "bad.yaml: document 1: apiVersion not set, kind not set"),
    ("apiVersion: v1\nkind: Foo\n", ('bad.yaml: document 1: no kind "Foo" is registered for '
                                    'version "v1"')),
    ("apiVersion: v1\nkind: Deployment\n", ('bad.yaml: document 1: no kind "Deployment" is '
                                           'registered for version "v1" (use apiVersion '
                                           '"apps/v1")')),
    ("apiVersion: v1\nkind: List\nitems:\n- {kind: Pod}\n",
     "bad.yaml: document 1: items[0]: apiVersion not set"),
    ("apiVersion: v1\nkind: List\nitems: 3\n", "bad.yaml: document 1: a List must have a list"),
    ("[" * 20_000, "bad.yaml: document 1: "),
    ("a: &a [*a]\n", "bad.yaml: document 1: line 1: found unconstructable recursive node"),
    ("\tkind: Pod\n", "bad.yaml: document 1: line 1: found character '\\t' that cannot start"),
])
def test_errors(text, message):
    with pytest.raises(ManifestError) as err:
        load_manifests(text, "bad.yaml")
    assert str(err.value).startswith(message), str(err.value)


def test_billion_laughs_is_refused():
    lines = ["apiVersion: v1", "kind: Pod", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 10) + "]")
    with pytest.raises(ManifestError, match="more than 100000 values"):
        load_manifests("\n".join(lines) + "\n", "lol.yaml")


def test_oversized_text():
    with pytest.raises(ManifestError, match="larger than"):
        load_manifests("#" * (9 * 1024 * 1024), "big.yaml")

"""Label selectors: every operator, the parse errors, key/value rules, structured form."""

import pytest

from tinykube import labels
from tinykube.model.errors import FieldError

WEB = {"app": "web", "tier": "front", "n": "5"}


@pytest.mark.parametrize("text, matches", [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("app!=web", False),
    ("missing!=x", True),  # != matches objects without the key
    ("app in (web,db)", True),
    ("app in (db)", False),
    ("app notin (db)", True),
    ("app notin (web)", False),
    ("missing notin (x)", True),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("app=web,tier=front", True),
    ("app=web,tier=back", False),
    ("  app = web ,  tier in ( front , back ) ", True),
    ("n>4", True),
    ("n<5", False),
    ("missing=", False),
    ("example.com/role=x", False),
    ("x in (in)", False),  # "in" is a value here
])
def test_string_selector_matches(text, matches):
    assert labels.parse(text).matches(WEB) is matches


def test_empty_value_selects_empty_label():
    assert labels.parse("a=").matches({"a": ""})
    assert labels.parse("a in ()").matches({"a": ""})
    assert not labels.parse("a in ()").matches({"a": "x"})


@pytest.mark.parametrize("text, message", [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a in x", "unable to parse requirement: found 'x', expected: '('"),
    ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in (x y)", "found 'y', expected: ',' or ')'"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("a,,b", "found ',', expected: identifier after ','"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a=(b", "found '(', expected: identifier"),
    ("-a=b", 'key: Invalid value: "-a": name part must consist of alphanumeric'),
    ("a=-b", 'Invalid value: "-b": a valid label must be an empty string'),
    ("a/b/c", "a qualified name must consist of"),
    ("a>b", "for 'Gt', 'Lt' operators, the value must be an integer"),
    ("a" * 64, "name part must be no more than 63 characters"),
    ("a=" + "b" * 64, "must be no more than 63 characters"),
])
def test_string_selector_errors(text, message):
    with pytest.raises(ValueError) as err:
        labels.parse(text)
    assert message in str(err.value)


@pytest.mark.parametrize("text, canonical", [
    ("b=2,a=1", "a=1,b=2"),
    ("x in (z,y)", "x in (y,z)"),
    ("x notin (a)", "x notin (a)"),
    ("!x, y", "!x,y"),
    ("a==1,b!=2", "a==1,b!=2"),
])
def test_string_round_trip(text, canonical):
    selector = labels.parse(text)
    assert str(selector) == canonical
    assert labels.parse(str(selector)) == selector


def test_structured_selector():
    sel = labels.from_label_selector({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "back"]},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "n", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ]})
    assert sel.matches(WEB)
    assert not sel.matches({**WEB, "legacy": "1"})
    assert not sel.matches({**WEB, "env": "prod"})
    assert not sel.matches({"app": "web"})
    assert str(sel) == "app=web,env notin (prod),!legacy,n,tier in (back,front)"


def test_empty_and_nothing():
    assert labels.from_label_selector({}).empty
    assert labels.from_label_selector({}).matches({"any": "thing"})
    nothing = labels.from_label_selector(None)
    assert not nothing.empty and not nothing.matches({}) and not nothing.matches(WEB)
    assert labels.from_map({}).empty
    assert labels.parse("").empty
    assert not labels.parse("a").empty


def test_from_map_and_for_object():
    assert labels.from_map({"app": "web"}).matches(WEB)
    assert not labels.from_map({"app": "web", "x": "y"}).matches(WEB)
    rc = {"kind": "ReplicationController", "spec": {"selector": {"app": "web"}}}
    rs = {"kind": "ReplicaSet", "spec": {"selector": {"matchLabels": {"app": "db"}}}}
    assert labels.for_object(rc).matches(WEB)
    assert not labels.for_object(rs).matches(WEB)
    assert not labels.for_object({"kind": "ReplicaSet", "spec": {}}).matches(WEB)


def test_selector_is_a_callable_filter():
    sel = labels.parse("app=web")
    assert list(filter(sel, [WEB, {"app": "db"}, None])) == [WEB]


def test_invalid_structured_selector_raises():
    with pytest.raises(ValueError, match="values: Required value"):
        labels.from_label_selector({"matchExpressions": [{"key": "a", "operator": "In"}]})


@pytest.mark.parametrize("selector, errors", [
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     [("s.matchExpressions[0].values: Required value: must be specified when `operator` is "
      "'In' or 'NotIn'")]),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn"}]},
     [("s.matchExpressions[0].values: Required value: must be specified when `operator` is "
      "'In' or 'NotIn'")]),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     [("s.matchExpressions[0].values: Forbidden: may not be specified when `operator` is "
      "'Exists' or 'DoesNotExist'")]),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist", "values": ["x"]}]},
     [("s.matchExpressions[0].values: Forbidden: may not be specified when `operator` is "
      "'Exists' or 'DoesNotExist'")]),
    ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
     [('s.matchExpressions[0].operator: Unsupported value: "Equals": supported values: "In", '
      '"NotIn", "Exists", "DoesNotExist"')]),
    ({"matchExpressions": [{"operator": "Exists"}]}, ["s.matchExpressions[0].key: Required value"]),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["-x"]}]},
     ['s.matchExpressions[0].values[0]: Invalid value: "-x": a valid label']),
    ({"matchLabels": {"a": 1}}, ["s.matchLabels.a: Invalid value: 1: must be a string"]),
    ({"matchLabel": {}}, ["s.matchLabel: unknown field"]),
    ("app=web", ['s: Invalid value: "app=web": must be an object']),
    ({"matchLabels": {"app": "web"}}, []),
])
def test_validate_label_selector(selector, errors):
    found = [str(e) for e in labels.validate_label_selector(selector, "s")]
    assert len(found) == len(errors)
    for got, want in zip(found, errors):
        assert got.startswith(want), got


LONG_PREFIX = ".".join(["a" * 63] * 4)  # 255 characters


@pytest.mark.parametrize("key, ok", [
    ("app", True),
    ("App_1.x-y", True),
    ("a", True),
    ("1", True),
    ("a" * 63, True),
    ("a" * 64, False),
    ("-a", False),
    ("a-", False),
    ("_a", False),
    ("a b", False),
    ("example.com/app", True),
    ("tinykube.io/pids", True),
    ("Example.com/app", False),  # prefix is a lower-case DNS subdomain
    ("/app", False),
    ("example.com/", False),
    ("a/b/c", False),
    (LONG_PREFIX[:253] + "/a", LONG_PREFIX[:253].endswith("a")),
    (LONG_PREFIX + "/a", False),
    ("é", False),
    ("", False),
])
def test_label_key_rules(key, ok):
    assert (labels.validate_labels({key: "v"}, "metadata.labels") == []) is ok


@pytest.mark.parametrize("value, ok", [
    ("", True),
    ("v", True),
    ("V_1.2-3", True),
    ("x" * 63, True),
    ("x" * 64, False),
    ("-x", False),
    ("x.", False),
    ("a b", False),
    ("a/b", False),
    ("ü", False),
])
def test_label_value_rules(value, ok):
    assert (labels.validate_labels({"k": value}, "metadata.labels") == []) is ok


def test_validate_labels_messages():
    errors = labels.validate_labels({"a": "-x", "b": 3}, "metadata.labels")
    assert errors[0].path == "metadata.labels"
    assert errors[0].message.startswith('Invalid value: "-x": a valid label must be')
    assert errors[1] == FieldError("metadata.labels.b", "Invalid value: 3: must be a string")
    assert labels.validate_labels(["a"], "p") == [
        FieldError("p", 'Invalid value: ["a"]: must be a map of string keys to string values')]

"""Reading manifest files: one or more YAML (or JSON) documents, each one object.

Errors name the source, the document (1-based) and, for YAML syntax errors, the line:
`bad.yaml: document 2: line 3: mapping values are not allowed here`.

The loader is PyYAML's safe loader with three changes that match what Kubernetes does with
the same files: timestamps stay strings (objects must survive a JSON round trip), duplicate
keys are an error (Kubernetes' strict decoding rejects them), and documents are bounded in
size and depth (aliases can otherwise expand into a "billion laughs").
"""

from __future__ import annotations

from typing import Any

import yaml

from tinykube.model import schema
from tinykube.model.kinds import KINDS

MAX_MANIFEST_BYTES = 8 * 1024 * 1024


class ManifestError(ValueError):
    """A manifest that cannot be turned into objects; str() is the message for the user."""


class _Loader(yaml.SafeLoader):
    pass


# Keep `2024-01-01T00:00:00Z` a string: drop the timestamp resolver for this loader only.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", key_node.start_mark) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f'duplicate field "{key}"', key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_message(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    if mark is not None:
        return f"line {mark.line + 1}: {problem}"
    return problem


def _check_object(obj: Any, where: str) -> None:
    if not isinstance(obj, dict):
        got = "a list" if isinstance(obj, list) else f"a {type(obj).__name__} ({obj!r:.40})"
        raise ManifestError(f"{where}: expected an object (a mapping), got {got}")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    missing = [f for f, v in (("apiVersion", api_version), ("kind", kind)) if not v]
    if missing:
        raise ManifestError(f"{where}: " + ", ".join(f"{m} not set" for m in missing))
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise ManifestError(f"{where}: apiVersion and kind must be strings")
    info = next((k for k in KINDS if k.kind == kind), None)
    if info is None or info.api_version != api_version:
        hint = f' (use apiVersion "{info.api_version}")' if info else ""
        raise ManifestError(
            f'{where}: no kind "{kind}" is registered for version "{api_version}"{hint}')


def load_manifests(text: str | bytes, source_name: str = "<stdin>") -> list[dict[str, Any]]:
    """All objects in `text`: multi-document YAML, empty documents skipped, `kind: List`
    expanded into its items. `ManifestError` on the first problem."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{source_name}: larger than {MAX_MANIFEST_BYTES} bytes")
    objects: list[dict[str, Any]] = []
    index = 0
    try:
        for index, document in enumerate(yaml.load_all(text, Loader=_Loader), start=1):
            where = f"{source_name}: document {index}"
            if document is None:
                continue
            limit_errors = schema.check_document_limits(document)
            if limit_errors:
                raise ManifestError(f"{where}: {limit_errors[0].message}")
            if isinstance(document, dict) and document.get("kind") == "List":
                items = document.get("items")
                if not isinstance(items, list):
                    raise ManifestError(f"{where}: a List must have a list of items")
                for i, item in enumerate(items):
                    _check_object(item, f"{where}: items[{i}]")
                    objects.append(item)
                continue
            _check_object(document, where)
            objects.append(document)
    except yaml.YAMLError as err:
        raise ManifestError(f"{source_name}: document {index + 1}: {_yaml_message(err)}"
                            ) from None
    except RecursionError:
        raise ManifestError(f"{source_name}: document {index + 1}: nested too deeply") from None
    return objects


def load_document(text: str | bytes) -> Any:
    """One YAML document (a request body), read as manifests are: duplicate keys refused,
    no timestamps, bounded. `ManifestError` on a problem."""
    try:
        value = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise ManifestError(_yaml_message(err)) from None
    except RecursionError:
        raise ManifestError("nested too deeply") from None
    limit_errors = schema.check_document_limits(value)
    if limit_errors:
        raise ManifestError(limit_errors[0].message)
    return value

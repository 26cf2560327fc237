"""`describe` for ConfigMaps and Secrets, laid out as kubectl prints them.

A Secret's values are never printed: only each key's size in bytes. kubectl's
last-applied-configuration annotation (which holds the manifest, values included) is left
out of Annotations, as kubectl's describe does.
"""

from __future__ import annotations

from tinykube.model import configdata

KINDS = ("ConfigMap", "Secret")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _pairs(mapping: dict | None) -> str:
    shown = {k: v for k, v in (mapping or {}).items() if k != LAST_APPLIED}
    if not shown:
        return "<none>"
    return "\n              ".join(f"{k}={v}" for k, v in sorted(shown.items()))


def lines(obj: dict) -> list[str]:
    """Everything but the Events section."""
    meta = obj["metadata"]
    out = [f"Name:         {meta['name']}",
           f"Namespace:    {meta.get('namespace', 'default')}",
           f"Labels:       {_pairs(meta.get('labels'))}",
           f"Annotations:  {_pairs(meta.get('annotations'))}",
           ""]
    if obj["kind"] == "Secret":
        return out + _secret(obj)
    return out + _config_map(obj)


def _config_map(obj: dict) -> list[str]:
    out = ["Data", "===="]
    for key, value in sorted((obj.get("data") or {}).items()):
        out += [f"{key}:", "----", value, ""]
    out += ["BinaryData", "===="]
    for key, value in sorted((obj.get("binaryData") or {}).items()):
        try:
            size = len(configdata.decode(value))
        except ValueError:
            size = len(value)
        out.append(f"{key}: {size} bytes")
    out.append("")
    return out


def _secret(obj: dict) -> list[str]:
    out = [f"Type:  {obj.get('type') or 'Opaque'}", "", "Data", "===="]
    data = obj.get("data") or {}
    width = max((len(k) for k in data), default=0) + 1
    for key, value in sorted(data.items()):
        try:
            size = len(configdata.decode(value))
        except ValueError:
            size = len(value)
        out.append(f"{(key + ':').ljust(width)}  {size} bytes")
    out.append("")
    return out

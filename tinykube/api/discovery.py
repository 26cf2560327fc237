"""Discovery: what kubectl and client libraries ask first (`/version`, `/api`, `/apis`,
`/api/v1`, `/apis/apps/v1`), in the legacy shapes and, when the Accept header asks for it,
as aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`).

Everything is derived from the kinds table (`tinykube.model.kinds`) plus the few API traits
below that only the API server needs (verbs, categories, subresources).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinykube.model.kinds import KINDS, KindInfo

# The Kubernetes release whose API (and kubectl) tinykube follows.
VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0+tinykube",
           "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
           "goVersion": "", "compiler": "", "platform": "linux/amd64",
           "emulationMajor": "1", "emulationMinor": "37",
           "minCompatibilityMajor": "1", "minCompatibilityMinor": "36"}

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
READ_VERBS = ["get", "list", "watch"]

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


@dataclass
class Answer:
    code: int
    body: Any
    content_type: str = "application/json"


NAMESPACE_VERBS = ["create", "delete", "get", "list", "patch", "update"]


def verbs(info: KindInfo) -> list[str]:
    if info.kind == "Namespace":
        return NAMESPACE_VERBS
    return READ_VERBS if not info.user else ALL_VERBS


def subresources(info: KindInfo) -> list[tuple[str, str, str, str, list[str]]]:
    """(name, group, version, kind, verbs) of each subresource."""
    found = []
    if info.user and info.namespaced:
        found.append(("status", info.group, info.version, info.kind, ["get", "patch", "update"]))
    if info.scalable:
        found.append(("scale", "autoscaling", "v1", "Scale", ["get", "patch", "update"]))
    if info.kind == "Pod":
        found.append(("log", "", "v1", "Pod", ["get"]))
        found.append(("exec", "", "v1", "PodExecOptions", ["create", "get"]))
    return found


def group_versions() -> dict[str, list[KindInfo]]:
    """`v1` and `apps/v1` (group/version) to their kinds, in table order."""
    found: dict[str, list[KindInfo]] = {}
    for info in KINDS:
        found.setdefault(info.api_version, []).append(info)
    return found


def _legacy_resources(api_version: str) -> dict:
    resources: list[dict] = []
    for info in group_versions()[api_version]:
        resources.append({
            "name": info.plural, "singularName": info.kind.lower(),
            "namespaced": info.namespaced, "kind": info.kind, "verbs": verbs(info),
            **({"shortNames": list(info.short_names)} if info.short_names else {}),
            **({"categories": ["all"]} if info.in_all else {}),
        })
        for name, group, version, kind, sub_verbs in subresources(info):
            resources.append({
                "name": f"{info.plural}/{name}", "singularName": "",
                "namespaced": info.namespaced, "kind": kind, "verbs": sub_verbs,
                **({"group": group, "version": version} if group != info.group else {}),
            })
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version,
            "resources": resources}


def _aggregated_group(group: str) -> dict:
    versions = []
    for infos in group_versions().values():
        if infos[0].group != group:
            continue
        resources = []
        for info in infos:
            resource: dict[str, Any] = {
                "resource": info.plural,
                "responseKind": {"group": info.group, "version": info.version,
                                 "kind": info.kind},
                "scope": "Namespaced" if info.namespaced else "Cluster",
                "singularResource": info.kind.lower(), "verbs": verbs(info),
            }
            if info.short_names:
                resource["shortNames"] = list(info.short_names)
            if info.in_all:
                resource["categories"] = ["all"]
            subs = [{"subresource": name,
                     "responseKind": {"group": g, "version": v, "kind": k}, "verbs": sv}
                    for name, g, v, k, sv in subresources(info)]
            if subs:
                resource["subresources"] = subs
            resources.append(resource)
        versions.append({"version": infos[0].version, "resources": resources,
                         "freshness": "Current"})
    return {"metadata": {"name": group, "creationTimestamp": None}, "versions": versions}


def media_types(accept: str) -> list[dict[str, str]]:
    """`a/b;k=v, c/d` as [{"": "a/b", "k": "v"}, {"": "c/d"}], in the client's order."""
    found = []
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        params = {"": parts[0].lower()}
        for part in parts[1:]:
            key, _, value = part.partition("=")
            params[key.strip()] = value.strip()
        found.append(params)
    return found


def aggregated_version(accept: str) -> str | None:
    """`v2` or `v2beta1` when the client asks for aggregated discovery first, else None."""
    for media in media_types(accept):
        if media.get("as") == "APIGroupDiscoveryList" and media.get("v") in ("v2", "v2beta1"):
            return media["v"]
        if media[""] in ("application/json", "*/*"):
            return None
    return None


def _aggregated(groups: list[str], version: str) -> Answer:
    content_type = AGGREGATED if version == "v2" else AGGREGATED_V2BETA1
    return Answer(200, {"kind": "APIGroupDiscoveryList",
                        "apiVersion": f"apidiscovery.k8s.io/{version}",
                        "metadata": {}, "items": [_aggregated_group(g) for g in groups]},
                  content_type)


def answer(path: str, accept: str) -> Answer | None:
    """The discovery document at `path`, or None when `path` is not a discovery path."""
    path = "/" + path.strip("/")
    if path == "/version":
        return Answer(200, VERSION)
    if path == "/api":
        if aggregated := aggregated_version(accept):
            return _aggregated([""], aggregated)
        return Answer(200, {"kind": "APIVersions", "versions": ["v1"],
                            "serverAddressByClientCIDRs": [
                                {"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
    if path == "/apis":
        groups = sorted({info.group for info in KINDS if info.group})
        if aggregated := aggregated_version(accept):
            return _aggregated(groups, aggregated)
        return Answer(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}}
            for g in groups]})
    if path == "/api/v1":
        return Answer(200, _legacy_resources("v1"))
    for api_version, infos in group_versions().items():
        if infos[0].group and path == f"/apis/{infos[0].group}":
            return Answer(200, {"kind": "APIGroup", "apiVersion": "v1", "name": infos[0].group,
                                "versions": [{"groupVersion": api_version,
                                              "version": infos[0].version}],
                                "preferredVersion": {"groupVersion": api_version,
                                                     "version": infos[0].version}})
        if infos[0].group and path == f"/apis/{api_version}":
            return Answer(200, _legacy_resources(api_version))
    return None

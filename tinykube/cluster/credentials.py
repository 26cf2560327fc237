"""Node credentials: what an agent gets for its join token (`POST /tinykube/v1/
nodecredentials`), a bearer token that acts as that node only (tinykube/api/nodeauthz.py).

As k3s keeps its node passwords, each node's credential lives in the store as a Secret in
kube-system (so every server of the cluster knows it), holding only the token's SHA-256.
Issuing a new one for a node replaces the old one: a restarted agent gets a fresh credential
and the previous one stops working.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
from typing import Any

from tinykube.model.errors import AlreadyExists, ApiError, Conflict, NotFound

NAMESPACE = "kube-system"
NODE_LABEL = "tinykube.io/node-credential"  # value: the node's name
HASH_ANNOTATION = "tinykube.io/token-sha256"
# The agent's node password (k3s' node-password): the first join of a node name records it,
# later joins under that name must present it, so the join token alone cannot take over a
# node that another machine runs.
PASSWORD_ANNOTATION = "tinykube.io/node-password-sha256"


def secret_name(node: str) -> str:
    return f"tinykube-node-{node}"


def _digest(token: bytes) -> str:
    return hashlib.sha256(token).hexdigest()


class NodeCredentials:
    def __init__(self, store: Any) -> None:
        self.store = store
        self._known: dict[str, str] = {}  # digest -> node, checked against its Secret

    def node_of(self, token: bytes) -> str | None:
        """The node whose credential `token` is, or None (every agent request asks: a known
        digest costs one read of its node's Secret, not a scan of kube-system)."""
        digest = _digest(token)
        node = self._known.get(digest)
        if node is not None:
            if self._holds(node, digest):
                return node
            del self._known[digest]  # replaced or revoked
        for secret in self.store.list("Secret", NAMESPACE):
            found = (secret["metadata"].get("labels") or {}).get(NODE_LABEL)
            if found and secret["metadata"]["name"] == secret_name(found) and self._holds(
                    str(found), digest, secret):
                if len(self._known) > 4096:
                    self._known.clear()
                self._known[digest] = str(found)
                return str(found)
        return None

    def _holds(self, node: str, digest: str, secret: dict | None = None) -> bool:
        secret = secret or self.store.try_get("Secret", NAMESPACE, secret_name(node))
        stored = ((secret or {}).get("metadata", {}).get("annotations") or {}).get(
            HASH_ANNOTATION, "")
        return bool(stored) and hmac.compare_digest(stored.encode(), digest.encode())

    async def issue(self, node: str, password: str | None = None) -> str:
        """A new credential for `node`, replacing its previous one; 403 when the node name
        was registered with another node password."""
        token = "tkn" + secrets.token_urlsafe(32)
        annotations = {HASH_ANNOTATION: _digest(token.encode())}
        if password:
            annotations[PASSWORD_ANNOTATION] = _digest(password.encode())
        meta = {"name": secret_name(node), "namespace": NAMESPACE,
                "labels": {NODE_LABEL: node}, "annotations": annotations}
        for _ in range(5):
            current = self.store.try_get("Secret", NAMESPACE, secret_name(node))
            if current is not None:
                _check_password(node, current, password)
            try:
                if current is None:
                    await self.store.create({"apiVersion": "v1", "kind": "Secret",
                                             "metadata": meta, "type": "Opaque"}, durable=True)
                else:
                    updated = copy.deepcopy(current)
                    updated["metadata"].setdefault("labels", {}).update(meta["labels"])
                    updated["metadata"].setdefault("annotations", {}).update(
                        meta["annotations"])
                    await self.store.update(updated, durable=True)
                return token
            except (AlreadyExists, Conflict, NotFound):
                continue  # another server issued one meanwhile: replace that one
        raise Conflict(f"the credential of node {node} keeps changing; try again")


def _check_password(node: str, secret: dict, password: str | None) -> None:
    registered = (secret["metadata"].get("annotations") or {}).get(PASSWORD_ANNOTATION)
    if not registered:
        return
    offered = _digest(password.encode()) if password else ""
    if not hmac.compare_digest(registered.encode(), offered.encode()):
        raise ApiError(
            f"node {node}: the node password does not match the one this node name joined "
            f"with (another machine with the same --node-name, or the agent's "
            f"<root>/pki/node-password was lost: delete the Secret {NAMESPACE}/"
            f"{secret_name(node)} to let it join again)", code=403, reason="Forbidden")

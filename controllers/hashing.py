"""Kubernetes' names from hashes and randomness: FNV-32a and the vowel-free alphabet.

Deployments name ReplicaSets `<name>-<hash of the pod template>` and StatefulSets name
ControllerRevisions `<name>-<hash>`; controllers name pods `<owner>-<5 random chars>`. All of
them spell numbers in `utilrand`'s alphabet: no vowels (no accidental words) and no
confusable 0/1/3.
"""

from __future__ import annotations

import json

from tinykube.model.names import GENERATED_ALPHABET as SAFE_ALPHABET
from tinykube.model.names import random_suffix

__all__ = ["SAFE_ALPHABET", "canonical_json", "fnv32a", "hash_string", "random_suffix",
           "safe_encode"]


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """Each character to a letter of the alphabet (rand.SafeEncodeString)."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def hash_string(data: bytes) -> str:
    """FNV-32a of `data`, spelled safely: the suffix of RS and revision names."""
    return safe_encode(str(fnv32a(data)))


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()

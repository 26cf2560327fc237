"""Kubernetes resource quantities (stub; implementation follows)."""


def parse_cpu(value: object, path: str = "cpu") -> int:
    """`500m`, `1`, `0.5` -> millicores. ValueError with a message naming `path`."""
    raise NotImplementedError


def parse_memory(value: object, path: str = "memory") -> int:
    """`64Mi`, `1Gi`, `100M`, `128974848`, `129e6` -> bytes."""
    raise NotImplementedError

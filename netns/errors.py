"""Errors of the pod network, typed so callers can tell a bad configuration from a full pool."""


class NetworkError(Exception):
    """Base of every error the pod network raises."""


class NetworkConfigError(NetworkError):
    """The host or the configuration does not allow the pod network as asked (never retried)."""


class AddressPoolExhausted(NetworkError):
    """Every host address of the pod CIDR is allocated."""

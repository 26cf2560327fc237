"""Name rules shared by object validation and label selectors (apimachinery's
`util/validation`): DNS-1123 labels and subdomains, qualified names (label keys), label
values. Each check returns a list of messages (empty when valid), worded as Kubernetes
words them so users can search for them.

DNS-1123 names are also what keeps names safe as directory and cgroup path components: no
`/`, no NUL, no `..`, nothing but `[a-z0-9.-]`.
"""

from __future__ import annotations

import re
import secrets

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63

_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + r"(\." + _LABEL_FMT + ")*"
_QUALIFIED_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QUALIFIED_FMT + ")?"

_LABEL_RE = re.compile(_LABEL_FMT)
_SUBDOMAIN_RE = re.compile(_SUBDOMAIN_FMT)
_QUALIFIED_RE = re.compile(_QUALIFIED_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_C_IDENTIFIER_RE = re.compile("[A-Za-z_][A-Za-z0-9_]*")
_ENV_VAR_RE = re.compile("[-._a-zA-Z][-._a-zA-Z0-9]*")


def _max_len(limit: int) -> str:
    return f"must be no more than {limit} characters"


def dns1123_label(value: str) -> list[str]:
    """Container names, `spec.hostname`, StatefulSet pod names' parts."""
    errors = []
    if len(value) > DNS1123_LABEL_MAX:
        errors.append(_max_len(DNS1123_LABEL_MAX))
    if not _LABEL_RE.fullmatch(value):
        errors.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            f"'123-abc', regex used for validation is '{_LABEL_FMT}')")
    return errors


_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_RE = re.compile(_DNS1035_FMT)


def dns1035_label(value: str) -> list[str]:
    """Service names: they become DNS names (`<svc>.<ns>.svc`), so they start with a letter."""
    errors = []
    if len(value) > DNS1123_LABEL_MAX:
        errors.append(_max_len(DNS1123_LABEL_MAX))
    if not _DNS1035_RE.fullmatch(value):
        errors.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character (e.g. "
            f"'my-name',  or 'abc-123', regex used for validation is '{_DNS1035_FMT}')")
    return errors


def dns1123_subdomain(value: str) -> list[str]:
    """Object names (`metadata.name`), label-key prefixes."""
    errors = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errors.append(_max_len(DNS1123_SUBDOMAIN_MAX))
    if not _SUBDOMAIN_RE.fullmatch(value):
        errors.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            f"'example.com', regex used for validation is '{_SUBDOMAIN_FMT}')")
    return errors


def qualified_name(value: str) -> list[str]:
    """Label and annotation keys: `[prefix/]name`, prefix a DNS-1123 subdomain."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errors: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors = ["prefix part must be non-empty"]
        else:
            errors = ["prefix part " + msg for msg in dns1123_subdomain(prefix)]
    else:
        return [("a qualified name must consist of alphanumeric characters, '-', '_' or '.', "
                "and must start and end with an alphanumeric character (e.g. 'MyName',  or "
                "'my.name',  or '123-abc', regex used for validation is "
                f"'{_QUALIFIED_FMT}') with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')")]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX:
        errors.append("name part " + _max_len(QUALIFIED_NAME_MAX))
    if name and not _QUALIFIED_RE.fullmatch(name):
        errors.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            f"'123-abc', regex used for validation is '{_QUALIFIED_FMT}')")
    return errors


def label_value(value: str) -> list[str]:
    """Label values: may be empty, else like a qualified name's name part."""
    errors = []
    if len(value) > LABEL_VALUE_MAX:
        errors.append(_max_len(LABEL_VALUE_MAX))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',"
            "  or 'my_value',  or '12345', regex used for validation is "
            f"'{_LABEL_VALUE_FMT}')")
    return errors


def env_var_name(value: str) -> list[str]:
    """Environment variable names (Kubernetes' relaxed rule: no `=`, no leading digit)."""
    if not _ENV_VAR_RE.fullmatch(value):
        return [("a valid environment variable name must consist of alphabetic characters, "
                "digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',"
                "  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is "
                f"'{_ENV_VAR_RE.pattern}')")]
    return []


def port_name(value: str) -> list[str]:
    """Named container ports (IANA service names): <= 15 chars, lower case, a letter."""
    errors = []
    if len(value) > 15:
        errors.append(_max_len(15))
    if not re.fullmatch("[-a-z0-9]+", value):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        errors.append("must not contain consecutive hyphens")
    if not re.search("[a-z]", value):
        errors.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        errors.append("must not begin or end with a hyphen")
    return errors


# apimachinery's util/rand alphabet: no vowels (no accidental words), no look-alikes (0/o, 1/l).
GENERATED_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
GENERATED_SUFFIX_LENGTH = 5
MAX_GENERATE_NAME_PREFIX = DNS1123_LABEL_MAX - GENERATED_SUFFIX_LENGTH  # 58, as Kubernetes


def random_suffix(length: int = GENERATED_SUFFIX_LENGTH) -> str:
    return "".join(secrets.choice(GENERATED_ALPHABET) for _ in range(length))


def generate_name(prefix: str) -> str:
    """`metadata.generateName` made a name, as the API server's SimpleNameGenerator does:
    the prefix cut to 58 characters plus 5 random ones."""
    return prefix[:MAX_GENERATE_NAME_PREFIX] + random_suffix()

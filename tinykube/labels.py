"""Label selectors: the one implementation used by controllers, `get -l` and the API.

Two spellings, one model. The string form (`app=web,tier!=db,env in (a,b),!legacy`) follows
apimachinery's grammar:

    selector    ::= requirement ("," requirement)*
    requirement ::= ["!"] KEY [ ("in" | "notin") "(" VALUE ("," VALUE)* ")"
                              | ("=" | "==" | "!=" | ">" | "<") VALUE ]

Whitespace separates tokens and is otherwise ignored; `in`/`notin` are keywords only in
operator position (`x in (in)` is fine). The structured form (`matchLabels` +
`matchExpressions` with In/NotIn/Exists/DoesNotExist) is what apps/v1 objects carry;
ReplicationController's `spec.selector` is a plain map (`from_map`).

A selector is a conjunction of requirements. An empty selector matches everything; the
"nothing" selector (from a missing structured selector, as in Kubernetes) matches nothing,
so an object without a selector never adopts every pod. `Selector` is callable, so it can be
passed straight to `store.list(..., selector=...)`.

Keys and values are checked with Kubernetes' rules (`tinykube.model.names`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinykube.model import names
from tinykube.model.errors import FieldError

IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"

# Structured operators (metav1.LabelSelectorOperator) -> our operators.
_STRUCTURED_OPS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
_BINARY_OPS = ["in", "notin", "=", "==", "!=", "gt", "lt"]
_MAX_SELECTOR_LENGTH = 64 * 1024  # a request parameter, not a document: keep parsing cheap


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            have, want = _as_int(labels.get(self.key)), _as_int(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        values = ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({values})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{values}"


def _as_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 10)
    except ValueError:
        return None


class Selector:
    """A conjunction of requirements (or `nothing`, matching no object)."""

    __slots__ = ("nothing", "requirements")

    def __init__(self, requirements: list[Requirement] | tuple[Requirement, ...] = (),
                 *, nothing: bool = False) -> None:
        # Sorted keys and values: a canonical form, so equal selectors compare and print equal.
        self.requirements = tuple(sorted(
            (Requirement(r.key, r.operator, tuple(sorted(set(r.values)))) for r in requirements),
            key=lambda r: r.key))
        self.nothing = nothing

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (matches every object)."""
        return not self.nothing and not self.requirements

    def matches(self, labels: dict[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    __call__ = matches

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return "Selector(<nothing>)" if self.nothing else f"Selector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Selector) and self.nothing == other.nothing
                and self.requirements == other.requirements)

    def __hash__(self) -> int:
        return hash((self.nothing, self.requirements))


NOTHING = Selector(nothing=True)


# --- string form ---------------------------------------------------------------------------

_SPECIAL = "=!(),<>"
_WHITESPACE = " \t\r\n"
_SYMBOLS = {"(", ")", ",", "!", "==", "=", "!=", ">", "<"}
_KEYWORDS = {"in", "notin"}
_END = ""  # token kind for end of input; its literal is also ""


@dataclass(frozen=True)
class _Token:
    kind: str  # "id", "in", "notin", one of _SYMBOLS, "error" or _END
    text: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append(_Token(_END, ""))
            return tokens
        if text[i] in _SPECIAL:
            # Longest symbol that is a known operator ("!=" before "!", "==" before "=").
            if text[i:i + 2] in _SYMBOLS:
                tokens.append(_Token(text[i:i + 2], text[i:i + 2]))
                i += 2
            elif text[i] in _SYMBOLS:
                tokens.append(_Token(text[i], text[i]))
                i += 1
            else:
                tokens.append(_Token("error", text[i]))
                i += 1
            continue
        start = i
        while i < n and text[i] not in _SPECIAL and text[i] not in _WHITESPACE:
            i += 1
        word = text[start:i]
        tokens.append(_Token(word if word in _KEYWORDS else "id", word))


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def _peek(self, values: bool = True) -> _Token:
        tok = self.tokens[self.pos]
        # In value position, "in"/"notin" are ordinary identifiers.
        return _Token("id", tok.text) if values and tok.kind in _KEYWORDS else tok

    def _next(self, values: bool = True) -> _Token:
        tok = self._peek(values)
        self.pos += 1
        return tok

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok = self._peek()
            if tok.kind == _END:
                return requirements
            if tok.kind not in ("id", "!"):
                raise ValueError(
                    f"found '{tok.text}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except ValueError as err:
                raise ValueError(f"unable to parse requirement: {err}") from None
            after = self._next()
            if after.kind == _END:
                return requirements
            if after.kind != ",":
                raise ValueError(f"found '{after.text}', expected: ',' or 'end of string'")
            nxt = self._peek()
            if nxt.kind not in ("id", "!"):
                raise ValueError(f"found '{nxt.text}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        negated = False
        tok = self._next()
        if tok.kind == "!":
            negated = True
            tok = self._next()
        if tok.kind != "id":
            raise ValueError(f"found '{tok.text}', expected: identifier")
        key = tok.text
        key_errors = names.qualified_name(key)
        if key_errors:
            raise ValueError(str(FieldError.invalid("key", key, "; ".join(key_errors))))
        if self._peek().kind in (_END, ","):
            return Requirement(key, DOES_NOT_EXIST if negated else EXISTS)
        if negated:
            # "!a=b" is not a thing: "!" only negates existence.
            tok = self._peek()
            raise ValueError(f"found '{tok.text}', expected: ',' or 'end of string'")
        op_tok = self._next(values=False)
        operator = {"in": IN, "notin": NOT_IN, "=": EQUALS, "==": DOUBLE_EQUALS,
                    "!=": NOT_EQUALS, ">": GREATER_THAN, "<": LESS_THAN}.get(op_tok.kind)
        if operator is None:
            raise ValueError(f"found '{op_tok.text}', expected: {', '.join(_BINARY_OPS)}")
        values = self._set_values() if operator in (IN, NOT_IN) else [self._exact_value()]
        return _checked(key, operator, values)

    def _exact_value(self) -> str:
        tok = self._peek()
        if tok.kind in (_END, ","):
            return ""  # "a=" selects the empty value, as in Kubernetes
        self.pos += 1
        if tok.kind != "id":
            raise ValueError(f"found '{tok.text}', expected: identifier")
        return tok.text

    def _set_values(self) -> list[str]:
        tok = self._next()
        if tok.kind != "(":
            raise ValueError(f"found '{tok.text}', expected: '('")
        values: list[str] = []
        expect_value = True
        while True:
            tok = self._next()
            if tok.kind == ")":
                if expect_value:
                    values.append("")  # "()" and "a,)" carry an empty value
                return values
            if tok.kind == "," :
                if expect_value:
                    values.append("")
                expect_value = True
            elif tok.kind == "id" and expect_value:
                values.append(tok.text)
                expect_value = False
            else:
                expected = "',', ')' or identifier" if expect_value else "',' or ')'"
                raise ValueError(f"found '{tok.text}', expected: {expected}")


def _checked(key: str, operator: str, values: list[str]) -> Requirement:
    for value in values:
        errors = names.label_value(value)
        if errors:
            raise ValueError(str(FieldError.invalid(f"values[{key}]", value, "; ".join(errors))))
    if operator in (GREATER_THAN, LESS_THAN) and _as_int(values[0]) is None:
        raise ValueError(str(FieldError.invalid(
            "values[0]", values[0], "for 'Gt', 'Lt' operators, the value must be an integer")))
    return Requirement(key, operator, tuple(values))


def parse(text: str) -> Selector:
    """Parse the string form; `ValueError` with a Kubernetes-like message when invalid."""
    if not isinstance(text, str):
        raise ValueError("a label selector must be a string")
    if len(text) > _MAX_SELECTOR_LENGTH:
        raise ValueError(f"label selector is too long (more than {_MAX_SELECTOR_LENGTH} bytes)")
    return Selector(_Parser(text).parse())


# --- structured form and maps --------------------------------------------------------------

def from_label_selector(selector: dict[str, Any] | None) -> Selector:
    """`{matchLabels, matchExpressions}` -> Selector. None -> NOTHING, {} -> everything.
    `ValueError` if invalid (callers that take user input run `validate_label_selector`
    first and get field paths)."""
    if selector is None:
        return NOTHING
    errors = validate_label_selector(selector, "selector")
    if errors:
        raise ValueError("; ".join(str(e) for e in errors))
    requirements = [Requirement(k, EQUALS, (v,))
                    for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = _STRUCTURED_OPS[expr["operator"]]
        requirements.append(Requirement(expr["key"], op, tuple(expr.get("values") or ())))
    return Selector(requirements)


def from_map(labels: dict[str, str] | None) -> Selector:
    """An equality selector (ReplicationController `spec.selector`); empty -> everything."""
    return Selector([Requirement(k, EQUALS, (v,)) for k, v in (labels or {}).items()])


def for_object(obj: dict[str, Any]) -> Selector:
    """The pod selector of a controller object: a map for ReplicationController, the
    structured form for apps/v1 kinds. A missing selector selects nothing."""
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if obj.get("kind") == "ReplicationController":
        return from_map(selector) if selector else NOTHING
    return from_label_selector(selector)


# --- validation ----------------------------------------------------------------------------

def validate_labels(labels: Any, path: str) -> list[FieldError]:
    """Label maps (`metadata.labels`, `matchLabels`): keys are qualified names, values
    label values."""
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [FieldError.invalid(path, labels, "must be a map of string keys to string values")]
    errors: list[FieldError] = []
    for key, value in labels.items():
        if not isinstance(key, str):
            errors.append(FieldError.invalid(path, key, "label keys must be strings"))
            continue
        key_errors = names.qualified_name(key)
        if key_errors:
            errors.append(FieldError.invalid(path, key, "; ".join(key_errors)))
        if not isinstance(value, str):
            errors.append(FieldError.invalid(f"{path}.{key}" if not key_errors else path,
                                             value, "must be a string"))
            continue
        value_errors = names.label_value(value)
        if value_errors:
            errors.append(FieldError.invalid(path, value, "; ".join(value_errors)))
    return errors


def validate_label_selector(selector: Any, path: str) -> list[FieldError]:
    """A structured selector: known fields only, valid keys/values, In/NotIn with values,
    Exists/DoesNotExist without."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [FieldError.invalid(path, selector, "must be an object")]
    errors: list[FieldError] = []
    for field in selector:
        if field not in ("matchLabels", "matchExpressions"):
            errors.append(FieldError.unknown_field(f"{path}.{field}"))
    errors += validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    expressions = selector.get("matchExpressions")
    if expressions is None:
        return errors
    if not isinstance(expressions, list):
        return errors + [FieldError.invalid(f"{path}.matchExpressions", expressions,
                                            "must be a list")]
    for i, expr in enumerate(expressions):
        errors += _validate_expression(expr, f"{path}.matchExpressions[{i}]")
    return errors


def _validate_expression(expr: Any, path: str) -> list[FieldError]:
    if not isinstance(expr, dict):
        return [FieldError.invalid(path, expr, "must be an object")]
    errors: list[FieldError] = []
    for field in expr:
        if field not in ("key", "operator", "values"):
            errors.append(FieldError.unknown_field(f"{path}.{field}"))
    key, operator, values = expr.get("key"), expr.get("operator"), expr.get("values")
    if not isinstance(key, str) or not key:
        errors.append(FieldError.required(f"{path}.key") if not key
                      else FieldError.invalid(f"{path}.key", key, "must be a string"))
    else:
        key_errors = names.qualified_name(key)
        if key_errors:
            errors.append(FieldError.invalid(f"{path}.key", key, "; ".join(key_errors)))
    if values is not None and not isinstance(values, list):
        errors.append(FieldError.invalid(f"{path}.values", values, "must be a list of strings"))
        values = None
    values = values or []
    if operator in ("In", "NotIn"):
        if not values:
            errors.append(FieldError.required(
                f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            errors.append(FieldError.forbidden(
                f"{path}.values",
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    elif operator is None:
        errors.append(FieldError.required(f"{path}.operator"))
    else:
        errors.append(FieldError.unsupported(f"{path}.operator", operator, list(_STRUCTURED_OPS)))
    for i, value in enumerate(values):
        if not isinstance(value, str):
            errors.append(FieldError.invalid(f"{path}.values[{i}]", value, "must be a string"))
            continue
        value_errors = names.label_value(value)
        if value_errors:
            errors.append(FieldError.invalid(f"{path}.values[{i}]", value,
                                             "; ".join(value_errors)))
    return errors

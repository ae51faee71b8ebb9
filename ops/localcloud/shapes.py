"""Requests checked against botocore's service model, as AWS's front end checks them.

Every intercepted operation whose API botocore models is checked here before its handler runs
(`gateway`): required members, types, enums, patterns, lengths, ranges. The answers are AWS's
(the Coral framework's, which most AWS APIs share):

- a value of the wrong JSON type is a ``SerializationException`` ("STRING_VALUE can not be
  converted to an Integer", "Start of list found where not expected", ...), raised before any
  constraint is looked at;
- constraint violations are one ``ValidationException`` listing all of them: "2 validation
  errors detected: Value 'x' at 'resourceConfig.instanceType' failed to satisfy constraint:
  Member must satisfy enum value set: [...]; Value null at 'roleArn' failed to satisfy
  constraint: Member must not be null". Member paths are lowerCamelCase; the elements of a list
  of structures are ``name.1.member``; a list (map) of scalars reports its bad elements
  together ("Member must satisfy constraint: [...]", "Map value must satisfy constraint: ...").

Query-protocol APIs (IAM) answer ``ValidationError`` (and ``MalformedInput`` for a value that is
not of its type). Members the model does not have are ignored: botocore's clients never send
them, and a client built from a newer model may.

botocore's patterns are Java regular expressions, matched against the whole value. The few that
Python's ``re`` cannot compile (``\\p{L}`` classes, mostly in tags) are not checked; see
`uncompiled_patterns`. An operation's checks are compiled once from the model and cached.
"""

from __future__ import annotations

import functools
import re
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import botocore.session
from botocore.exceptions import DataNotFoundError, UnknownServiceError
from botocore.model import OperationNotFoundError, ServiceModel, Shape

from ops.localcloud.wire import AwsError

if TYPE_CHECKING:
    from ops.localcloud.routes import Route

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_JAVA_TYPE = {
    "string": "a String",
    "integer": "an Integer",
    "long": "a Long",
    "float": "a Float",
    "double": "a Double",
    "boolean": "a Boolean",
    "timestamp": "a Date",
    "blob": "a ByteBuffer",
}
_SCALARS = frozenset(_JAVA_TYPE)


class _TypeMismatch(Exception):
    """A value the service cannot deserialise into its member's type."""


@dataclass(eq=False)
class _Node:
    """One shape of the model, compiled: what a value of it must be."""

    kind: str  # botocore's type name: structure, list, map, string, integer, ...
    document: bool = False  # a free-form document: anything goes
    sensitive: bool = False  # AWS leaves sensitive values out of its messages
    members: dict[str, _Node] = field(default_factory=dict)  # structure
    required: tuple[str, ...] = ()  # structure
    paths: dict[str, str] = field(default_factory=dict)  # structure: member -> lowerCamelCase
    element: _Node | None = None  # list member, map value
    key: _Node | None = None  # map
    enum: frozenset[str] | None = None
    enum_text: str = ""
    pattern: re.Pattern | None = None
    pattern_text: str = ""
    low: float | None = None  # min: a length for strings, lists and maps, else a value
    high: float | None = None


@dataclass(frozen=True)
class _Operation:
    protocol: str  # json, rest-json, query, ...
    shape: Shape  # botocore's, for the wire locations of rest-json members
    root: _Node


class _Compiler:
    """Compiles a model's shapes into `_Node` trees, once per shape (shapes may be recursive),
    and remembers the patterns ``re`` could not compile."""

    def __init__(self):
        self.lock = threading.Lock()
        self.nodes: dict[tuple[ServiceModel, str], _Node] = {}
        self.patterns: dict[str, re.Pattern | None] = {}
        self.uncompiled: set[str] = set()

    def node(self, model: ServiceModel, shape: Shape) -> _Node:
        memo = (model, shape.name)
        if memo in self.nodes:
            return self.nodes[memo]
        meta = shape.metadata
        node = _Node(
            kind=shape.type_name,
            document=bool(getattr(shape, "is_document_type", False)),
            sensitive=bool(meta.get("sensitive")),
            low=meta.get("min"),
            high=meta.get("max"),
        )
        self.nodes[memo] = node  # before the members: a recursive shape finds itself
        if shape.type_name == "structure" and not node.document:
            node.required = tuple(shape.required_members)
            for name, member in shape.members.items():
                node.members[name] = self.node(model, member)
                node.paths[name] = name[:1].lower() + name[1:]
        elif shape.type_name == "list":
            node.element = self.node(model, shape.member)
        elif shape.type_name == "map":
            node.key = self.node(model, shape.key)
            node.element = self.node(model, shape.value)
        if meta.get("enum"):
            node.enum = frozenset(meta["enum"])
            node.enum_text = "[" + ", ".join(meta["enum"]) + "]"
        if meta.get("pattern") is not None and shape.type_name == "string":
            node.pattern_text = meta["pattern"]
            node.pattern = self.compile(meta["pattern"])
        return node

    def compile(self, pattern: str) -> re.Pattern | None:
        if pattern not in self.patterns:
            with warnings.catch_warnings():  # Java's [a&&b] is not Python's: refuse, not warn
                warnings.simplefilter("error")
                try:
                    self.patterns[pattern] = re.compile(pattern)
                except (re.error, FutureWarning, DeprecationWarning):
                    self.patterns[pattern] = None
                    self.uncompiled.add(pattern)
        return self.patterns[pattern]

    def operation(self, model: ServiceModel, operation: str) -> _Operation | None:
        try:
            shape = model.operation_model(operation).input_shape
        except OperationNotFoundError:
            return None
        if shape is None:  # no input at all: nothing to check
            return None
        with self.lock:
            return _Operation(model.protocol, shape, self.node(model, shape))


_compiler = _Compiler()


@functools.cache
def _session():
    return botocore.session.get_session()


@functools.cache
def _operation(service: str, operation: str) -> _Operation | None:
    try:
        model = _session().get_service_model(service)
    except (UnknownServiceError, DataNotFoundError):
        return None
    return _compiler.operation(model, operation)


def validates(service: str, operation: str) -> bool:
    """Whether requests for ``operation`` of botocore's ``service`` are checked."""
    return _operation(service, operation) is not None


def uncompiled_patterns() -> frozenset[str]:
    """The patterns of the operations compiled so far that are not checked."""
    with _compiler.lock:
        return frozenset(_compiler.uncompiled)


def validated_operations(routes: Iterable[Route]) -> list[str]:
    """The names (``SageMaker.CreateTrainingJob``) of the routes whose requests are checked
    against the service model. Compiles their checks."""
    return [route.name for route in routes if validates(route.model_service, route.operation)]


def check(service: str, operation: str, params: dict) -> None:
    """Check a decoded request (what the route's codec gave the handler) against the input
    shape of ``operation`` in botocore's model of ``service``; raise the `AwsError` AWS
    answers. Operations botocore does not model pass unchecked."""
    compiled = _operation(service, operation)
    if compiled is not None:
        _check_operation(compiled, params)


def check_against(model: ServiceModel, operation: str, params: dict) -> None:
    """`check` with a model at hand rather than one of botocore's (a test's, say)."""
    compiled = _compiler.operation(model, operation)
    if compiled is not None:
        _check_operation(compiled, params)


def _check_operation(compiled: _Operation, params: dict) -> None:
    query = compiled.protocol == "query"
    serialization, validation = (
        ("MalformedInput", "ValidationError")
        if query
        else ("SerializationException", "ValidationException")
    )
    skip: frozenset[str] = frozenset()
    try:
        if query:
            value = _from_form(compiled.root, compiled.shape, params, "")
        elif compiled.protocol == "rest-json":
            value, skip = _rest_members(compiled.shape, params)
        else:
            value = params
        errors: list[str] = []
        _check_structure(compiled.root, value, "", errors, skip)
    except _TypeMismatch as exc:
        raise AwsError(serialization, str(exc)) from exc
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise AwsError(validation, f"{count} validation {noun} detected: " + "; ".join(errors))


# -- checking ---------------------------------------------------------------------------------


def _check_structure(
    node: _Node, value: object, path: str, errors: list[str], skip: frozenset[str] = frozenset()
) -> None:
    if node.document:
        return
    if not isinstance(value, dict):
        raise _TypeMismatch(_unexpected(value, "structure"))
    for name in node.required:
        if value.get(name) is None and name not in skip:
            errors.append(
                f"Value null at '{_join(path, node.paths[name])}' failed to satisfy "
                "constraint: Member must not be null"
            )
    for name, member in node.members.items():
        item = value.get(name)
        if item is not None:
            _check(member, item, _join(path, node.paths[name]), errors)


def _check(node: _Node, value: object, path: str, errors: list[str]) -> None:
    if node.kind == "structure":
        _check_structure(node, value, path, errors)
        return
    failed = _violations(node, value)
    if node.kind == "list":
        failed += _elements(node, value, path, errors)
    elif node.kind == "map":
        failed += _entries(node, value, path, errors)
    for constraint in failed:
        errors.append(
            f"{_value_at(node, value)} at '{path}' failed to satisfy constraint: {constraint}"
        )


def _violations(node: _Node, value: object) -> list[str]:
    """The constraints ``value`` fails, in AWS's words (its type is checked here too)."""
    if node.kind in _SCALARS:
        _check_type(node.kind, value)
    elif node.kind == "list" and not isinstance(value, list):
        raise _TypeMismatch(_unexpected(value, "list"))
    elif node.kind == "map" and not isinstance(value, dict):
        raise _TypeMismatch(_unexpected(value, "map"))
    failed = []
    if node.enum is not None and value not in node.enum:
        failed.append(f"Member must satisfy enum value set: {node.enum_text}")
    if node.kind in ("string", "list", "map"):
        size = len(value)
        if node.high is not None and size > node.high:
            failed.append(f"Member must have length less than or equal to {_number(node.high)}")
        if node.low is not None and size < node.low:
            failed.append(f"Member must have length greater than or equal to {_number(node.low)}")
    elif node.kind in ("integer", "long", "float", "double"):
        if node.high is not None and value > node.high:
            failed.append(f"Member must have value less than or equal to {_number(node.high)}")
        if node.low is not None and value < node.low:
            failed.append(f"Member must have value greater than or equal to {_number(node.low)}")
    if node.pattern is not None and node.pattern.fullmatch(value) is None:
        failed.append(f"Member must satisfy regular expression pattern: {node.pattern_text}")
    return failed


def _elements(node: _Node, value: list, path: str, errors: list[str]) -> list[str]:
    """Structures (lists, maps) in a list are checked each at ``path.N.member``; scalars
    together, as one constraint on the list."""
    element = node.element
    if element.kind in _SCALARS:
        failed = {c: None for item in value if item is not None for c in _violations(element, item)}
        return [f"Member must satisfy constraint: [{', '.join(failed)}]"] if failed else []
    for index, item in enumerate(value, start=1):
        if item is not None:
            _check(element, item, f"{path}.{index}.member", errors)
    return []


def _entries(node: _Node, value: dict, path: str, errors: list[str]) -> list[str]:
    keys = {c: None for key in value for c in _violations(node.key, key)}
    failed = [f"Map keys must satisfy constraint: [{', '.join(keys)}]"] if keys else []
    if node.element.kind in _SCALARS:
        values = {
            c: None
            for item in value.values()
            if item is not None
            for c in _violations(node.element, item)
        }
        if values:
            failed.append(f"Map value must satisfy constraint: [{', '.join(values)}]")
        return failed
    for key, item in value.items():
        if item is not None:
            _check(node.element, item, f"{path}.{key}.member", errors)
    return failed


def _check_type(kind: str, value: object) -> None:
    """Raise `_TypeMismatch` unless ``value`` (decoded JSON) can be a ``kind``, as Coral's
    JSON deserialiser refuses it."""
    if kind in ("string", "blob"):
        ok = isinstance(value, str)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind in ("integer", "long"):
        low, high = _INT32 if kind == "integer" else _INT64
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ok = integral and not isinstance(value, bool) and low <= value <= high
    elif kind in ("float", "double"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:  # timestamp: epoch seconds, as botocore sends them, or an ISO 8601 string
        ok = isinstance(value, int | float | str) and not isinstance(value, bool)
    if not ok:
        raise _TypeMismatch(_unexpected(value, kind))


def _unexpected(value: object, expected: str) -> str:
    """Coral's words for a JSON value that cannot be deserialised as ``expected``."""
    if isinstance(value, list):
        return "Start of list found where not expected"
    if isinstance(value, dict):
        return "Start of structure or map found where not expected."
    if expected == "list":
        return "Expected list or null"
    if expected in ("structure", "map"):
        return "Expected null"
    if isinstance(value, bool):
        token = "TRUE_VALUE" if value else "FALSE_VALUE"
    elif isinstance(value, int | float):
        token = "NUMBER_VALUE"
    else:
        token = "STRING_VALUE"
    return f"{token} can not be converted to {_JAVA_TYPE[expected]}"


def _value_at(node: _Node, value: object) -> str:
    return "Value" if node.sensitive else f"Value '{_java(value)}'"


def _java(value: object) -> str:
    """A value as AWS (Java's toString) prints it in a message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_java(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java(v)}" for k, v in value.items()) + "}"
    return "null" if value is None else str(value)


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# -- other protocols: their members as the JSON protocol would carry them --------------------

_ABSENT = object()


def _from_text(kind: str, text: str) -> object:
    """A member sent as text (a query form, a URI, a query string) in its model type."""
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
    except ValueError as exc:
        raise _TypeMismatch(f"Invalid value '{text}' for {_JAVA_TYPE[kind].split()[-1]}") from exc
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise _TypeMismatch(f"Invalid value '{text}' for Boolean")
        return text.lower() == "true"
    return text


def _rest_members(shape: Shape, params: dict) -> tuple[dict, frozenset[str]]:
    """A REST request's members from the codec's parameters (path and query-string members
    under their wire names, the JSON body's under theirs), and the members not carried there
    (headers, a raw payload), which are not checked."""
    payload = shape.serialization.get("payload")
    members: dict = {}
    skip = set()
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location in ("uri", "querystring") and member.type_name in _SCALARS:
            if wire in params:
                members[name] = _from_text(member.type_name, str(params[wire]))
        elif location is not None or (name == payload and member.type_name != "structure"):
            skip.add(name)
        elif name == payload:
            members[name] = {k: params[k] for k in member.members if k in params}
        elif payload is None and name in params:
            members[name] = params[name]
    return members, frozenset(skip)


def _from_form(node: _Node, shape: Shape, form: dict[str, str], prefix: str) -> object:
    """A query-protocol request's members from its flat form (``Name.member.1``,
    ``Name.entry.1.key``, ``Outer.Inner``), as botocore's query serialiser writes them."""
    if node.kind == "structure":
        value = {}
        for name, member in shape.members.items():
            key = _join(prefix, member.serialization.get("name", name))
            item = _from_form(node.members[name], member, form, key)
            if item is not _ABSENT:
                value[name] = item
        present = not prefix or any(k.startswith(prefix + ".") for k in form)
        return value if present else _ABSENT
    if node.kind == "list":
        element = shape.member.serialization.get("name", "member")
        base = prefix if shape.serialization.get("flattened") else f"{prefix}.{element}"
        indexes = _indexes(form, base)
        if not indexes:
            return [] if form.get(prefix) == "" else _ABSENT  # botocore's empty list: "Name="
        items = [_from_form(node.element, shape.member, form, f"{base}.{i}") for i in indexes]
        return [None if item is _ABSENT else item for item in items]
    if node.kind == "map":
        base = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        value = {}
        for i in _indexes(form, base):
            key = form.get(f"{base}.{i}.{key_name}")
            item = _from_form(node.element, shape.value, form, f"{base}.{i}.{value_name}")
            if key is not None:
                value[key] = None if item is _ABSENT else item
        return value if value else _ABSENT
    if prefix not in form:
        return _ABSENT
    return _from_text(node.kind, form[prefix])


def _indexes(form: dict[str, str], base: str) -> list[int]:
    start = base + "."
    found = set()
    for key in form:
        if key.startswith(start):
            head = key[len(start) :].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)

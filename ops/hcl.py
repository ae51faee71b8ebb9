"""Terraform's configuration, evaluated in Python as far as `ops` needs it.

terraform/ declares every name and number of the environment once (DESIGN.md, contract 4).
Terraform applies them on AWS; the local cloud's bootstrap (`ops.localcloud.bootstrap`) creates
the same resources from the same declarations, so it must read what the modules *say* rather
than repeat it: `"${var.name_prefix}-lambda"`, a variable's default, `merge(...)` of the
function's environment, a `count` that drops the provisioned concurrency config at 0.

python-hcl2 parses the files (its Lark tree); this module evaluates the subset of Terraform's
expression language the dogops modules use: literals, strings with interpolations, tuples,
objects, `var.`/`local.`/`path.`/`module.`/`data.` references and same-module resource
arguments, operators, conditionals, `for` over a list, splats, and a few functions. A value only
AWS knows (an ARN, an account id) is a *fact* the caller supplies, keyed by its full address,
module path included, as Terraform addresses resources (``"module.storage.aws_s3_bucket.this.arn"``;
two modules may each declare ``aws_iam_role.this``). A data source's fact may also be given
once for every module, without the module path (``"data.aws_caller_identity.current.account_id"``:
one provider, one account); a module's own key wins. A missing fact raises `Unknown`, which is
what Terraform calls "known after apply".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.errors import OpsError

if TYPE_CHECKING:  # lark (python-hcl2's parser) is imported only when a file is parsed
    from lark import Token, Tree

# Arguments of a module block that are Terraform's, not the module's inputs.
META_ARGUMENTS = frozenset({"source", "version", "count", "for_each", "providers", "depends_on"})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


class HclError(OpsError):
    """The configuration says something this evaluator cannot read, or Terraform would refuse
    (a failed validation or precondition, a variable without a value)."""


class Unknown(HclError):
    """A value only known once AWS has created the resource (and no fact supplies it)."""

    def __init__(self, address: str):
        super().__init__(f"{address} is known only after apply (no fact supplies it)")
        self.address = address


@dataclass
class Block:
    """One block of a file (``resource "aws_iam_role" "lambda" { ... }``): its arguments are
    unevaluated expressions, evaluated by the `Module` that holds them."""

    kind: str
    labels: tuple[str, ...]
    attributes: dict[str, Tree]
    blocks: list[Block]
    file: Path

    def children(self, kind: str) -> list[Block]:
        return [b for b in self.blocks if b.kind == kind]


@dataclass
class Lazy:
    """A namespace whose members are computed when named (``var``, ``module.iam``, ...)."""

    get: Callable[[str], Any]
    what: str


def _is_tree(node: Tree | Token) -> bool:
    return not isinstance(node, str)  # lark's Token is a str


def _identifier(node: Tree | Token) -> str:
    token = node.children[0] if _is_tree(node) else node
    return str(token)


def _trees(node: Tree) -> list[Tree]:
    return [c for c in node.children if _is_tree(c) and c.data != "new_line_or_comment"]


def _body(tree: Tree, file: Path) -> tuple[dict[str, Tree], list[Block]]:
    attributes: dict[str, Tree] = {}
    blocks: list[Block] = []
    for node in _trees(tree):
        if node.data == "attribute":
            name, expression = _trees(node)
            attributes[_identifier(name)] = expression
        elif node.data == "block":
            parts = _trees(node)
            *head, body = parts
            labels = tuple(
                _string_literal(p) if p.data == "string" else _identifier(p) for p in head
            )
            inner_attributes, inner_blocks = _body(body, file)
            blocks.append(Block(labels[0], labels[1:], inner_attributes, inner_blocks, file))
    return attributes, blocks


def _string_literal(node: Tree) -> str:
    parts = _trees(node)
    if any(_trees(p) for p in parts):
        raise HclError("a block label cannot hold an interpolation")
    return "".join(_unescape(str(p.children[0])) for p in parts)


def _unescape(chars: str) -> str:
    if chars.startswith("$${") or chars.startswith("%%{"):
        return chars[1:]

    def replace(match: re.Match) -> str:
        code = match.group(1)
        if code[0] == "u":
            return chr(int(code[1:], 16))
        return _ESCAPES.get(code, "\\" + code)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", replace, chars)


def parse_file(path: Path) -> Block:
    """A file as one block of kind "file" (its top-level attributes and blocks); parsed again
    only when it changed."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise HclError(f"cannot read {path}: {exc}") from exc
    return _parse(path, stat.st_mtime_ns, stat.st_size)


@cache
def _parse(path: Path, mtime_ns: int, size: int) -> Block:
    from hcl2.api import parses_to_tree

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HclError(f"cannot read {path}: {exc}") from exc
    try:
        tree = parses_to_tree(text)
    except Exception as exc:  # lark's parse errors share no base class worth naming here
        raise HclError(f"cannot parse {path}: {exc}") from exc
    attributes, blocks = _body(_trees(tree)[0], path)
    return Block("file", (), attributes, blocks, path)


def read_tfvars(path: Path) -> dict[str, Any]:
    """A .tfvars file as {name: value}; its values may not reference anything."""
    file = parse_file(Path(path))
    scope = _Evaluator(lambda name: _no_reference(name, path))
    return {name: scope.evaluate(tree, f"{path}: {name}") for name, tree in file.attributes.items()}


def _no_reference(name: str, path: Path) -> Any:
    raise HclError(f"{path}: a variable definitions file cannot reference {name}")


class Module:
    """A Terraform module (the .tf files of one folder) with its input values.

    ``inputs`` maps a variable to its value, or to a no-argument callable giving it (a parent's
    expression, evaluated only when the variable is read). ``root`` is the root module's folder
    (``path.root``, where relative paths such as ``source_dir`` start). ``facts`` are the values
    AWS computes, by address (see `fact_address`). ``address`` is the module's path from the
    root (``"module.storage"``; ``""`` for the root module).
    """

    def __init__(
        self,
        directory: Path,
        inputs: Mapping[str, Any],
        facts: Mapping[str, Any] | None = None,
        root: Path | None = None,
        name: str = "root",
        address: str = "",
    ):
        self.directory = Path(directory)
        self.address = address
        self.root = Path(root) if root is not None else self.directory
        self.inputs = dict(inputs)
        self.facts = facts if facts is not None else {}
        self.name = name
        self._values: dict[str, Any] = {}
        files = sorted(self.directory.glob("*.tf"))
        if not files:
            raise HclError(f"no Terraform files in {self.directory}")
        self.blocks = [b for f in files for b in parse_file(f).blocks]

    # -- declarations ----------------------------------------------------------------------

    def declared(self, kind: str, *labels: str) -> Block | None:
        for block in self.blocks:
            if block.kind == kind and block.labels[: len(labels)] == labels:
                return block
        return None

    def block(self, kind: str, *labels: str) -> Block:
        found = self.declared(kind, *labels)
        if found is None:
            raise HclError(f"{self.directory}: no {kind} {'.'.join(labels)}")
        return found

    def all(self, kind: str, *labels: str) -> list[Block]:
        return [b for b in self.blocks if b.kind == kind and b.labels[: len(labels)] == labels]

    @cached_property
    def locals(self) -> dict[str, tuple[Tree, Path]]:
        found: dict[str, tuple[Tree, Path]] = {}
        for block in self.all("locals"):
            for name, tree in block.attributes.items():
                found[name] = (tree, block.file)
        return found

    # -- values ----------------------------------------------------------------------------

    def var(self, name: str) -> Any:
        key = f"var.{name}"
        if key in self._values:
            return self._values[key]
        declaration = self.declared("variable", name)
        if declaration is None:
            raise HclError(f"{self.directory}: no variable {name!r} is declared")
        if name in self.inputs:
            value = self.inputs[name]
            value = value() if callable(value) else value
        elif "default" in declaration.attributes:
            value = self.evaluate(declaration.attributes["default"], declaration.file, "default")
        else:
            raise HclError(f"{self.directory}: variable {name!r} has no value and no default")
        value = _convert(value, declaration, self)
        self._values[key] = value  # a validation's condition reads the variable itself
        for validation in declaration.children("validation"):
            if not self.attribute(validation, "condition"):
                del self._values[key]
                message = self.attribute(validation, "error_message")
                raise HclError(f"{self.directory}: var.{name} = {value!r}: {message}")
        return value

    def local(self, name: str) -> Any:
        key = f"local.{name}"
        if key not in self._values:
            if name not in self.locals:
                raise HclError(f"{self.directory}: no local value {name!r}")
            tree, file = self.locals[name]
            self._values[key] = self.evaluate(tree, file, key)
        return self._values[key]

    def attribute(self, block: Block, name: str, default: Any = ...) -> Any:
        """The value of one argument of a block (``default`` when the block does not set it)."""
        if name not in block.attributes:
            if default is ...:
                raise HclError(
                    f"{block.file}: {block.kind} {'.'.join(block.labels)} sets no {name}"
                )
            return default
        where = f"{'.'.join((block.kind, *block.labels))}.{name}"
        return self.evaluate(block.attributes[name], block.file, where)

    def count(self, block: Block) -> int:
        """How many instances of a resource or module block exist (its ``count``, else 1)."""
        return int(self.attribute(block, "count", 1))

    def check_preconditions(self, block: Block) -> None:
        """Raise what Terraform's plan would: the first failed lifecycle precondition."""
        for lifecycle in block.children("lifecycle"):
            for precondition in lifecycle.children("precondition"):
                if not self.attribute(precondition, "condition"):
                    message = self.attribute(precondition, "error_message")
                    label = ".".join(block.labels)
                    raise HclError(f"{self.directory}: {label}: {message}")

    def child(self, name: str) -> Module:
        """The module a ``module "<name>"`` block calls, with this module's inputs for it."""
        key = f"module.{name}"
        if key not in self._values:
            call = self.block("module", name)
            source = self.directory / str(self.attribute(call, "source"))
            inputs = {
                argument: (lambda a=argument: self.attribute(call, a))
                for argument in call.attributes
                if argument not in META_ARGUMENTS
            }
            self._values[key] = Module(
                source.resolve(),
                inputs,
                self.facts,
                self.root,
                name,
                fact_address(self.address, key),
            )
        return self._values[key]

    def output(self, name: str) -> Any:
        return self.attribute(self.block("output", name), "value")

    def policy_document(self, name: str) -> dict[str, Any]:
        """An ``aws_iam_policy_document`` data source rendered as the AWS provider does: its
        source documents' statements first, one-element lists as plain strings."""
        block = self.block("data", "aws_iam_policy_document", name)
        statements: list[dict[str, Any]] = []
        for source in self.attribute(block, "source_policy_documents", []):
            statements.extend(json.loads(source)["Statement"])
        for statement in block.children("statement"):
            statements.append(self._statement(statement))
        return {"Version": "2012-10-17", "Statement": statements}

    def _statement(self, block: Block) -> dict[str, Any]:
        rendered: dict[str, Any] = {}
        if "sid" in block.attributes:
            rendered["Sid"] = self.attribute(block, "sid")
        rendered["Effect"] = self.attribute(block, "effect", "Allow")
        for argument, key in (
            ("actions", "Action"),
            ("not_actions", "NotAction"),
            ("resources", "Resource"),
            ("not_resources", "NotResource"),
        ):
            if argument in block.attributes:
                rendered[key] = _collapse(sorted(self.attribute(block, argument)))
        for kind, key in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
            principals: dict[str, Any] = {}
            for principal in block.children(kind):
                identifiers = sorted(self.attribute(principal, "identifiers"))
                principals[self.attribute(principal, "type")] = _collapse(identifiers)
            if principals:
                rendered[key] = "*" if principals == {"*": "*"} else principals
        conditions: dict[str, dict[str, Any]] = {}
        for condition in block.children("condition"):
            test = conditions.setdefault(self.attribute(condition, "test"), {})
            values = self.attribute(condition, "values")
            test[self.attribute(condition, "variable")] = _collapse(values)
        if conditions:
            rendered["Condition"] = conditions
        return rendered

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, tree: Tree, file: Path, where: str = "") -> Any:
        try:
            return _Evaluator(self._reference).evaluate(tree, where)
        except Unknown:
            raise
        except HclError as exc:
            if str(file) in str(exc):
                raise
            raise HclError(f"{file}: {where}: {exc}") from exc

    def _reference(self, name: str) -> Any:
        if name == "var":
            return Lazy(self.var, "var")
        if name == "local":
            return Lazy(self.local, "local")
        if name == "path":
            return {"module": str(self.directory), "root": str(self.root), "cwd": str(self.root)}
        if name == "module":
            return Lazy(self._module_value, "module")
        if name == "data":
            return Lazy(lambda kind: Lazy(lambda label: self._data(kind, label), kind), "data")
        if self.declared("resource", name) is not None:
            return Lazy(lambda label: self._resource(name, label), name)
        raise HclError(f"unknown reference {name!r}")

    def _module_value(self, name: str) -> Any:
        call = self.block("module", name)
        value = Lazy(self.child(name).output, f"module.{name}")
        if "count" in call.attributes:
            return [value] * self.count(call)
        return value

    def _data(self, kind: str, label: str) -> Lazy:
        def get(attribute: str) -> Any:
            if kind == "aws_iam_policy_document" and attribute == "json":
                return json.dumps(self.policy_document(label))
            address = f"data.{kind}.{label}.{attribute}"
            own = fact_address(self.address, address)
            return self._fact(own if own in self.facts else address)

        return Lazy(get, f"data.{kind}.{label}")

    def _resource(self, kind: str, label: str) -> Lazy:
        block = self.block("resource", kind, label)

        def get(attribute: str) -> Any:
            if attribute in block.attributes:
                return self.attribute(block, attribute)
            return self._fact(fact_address(self.address, f"{kind}.{label}.{attribute}"))

        return Lazy(get, f"{kind}.{label}")

    def _fact(self, address: str) -> Any:
        if address in self.facts:
            return self.facts[address]
        raise Unknown(address)


def fact_address(module: str, address: str) -> str:
    """``address`` (``"aws_iam_role.this.arn"``) within the module at ``module`` (``"module.iam"``,
    ``""`` for the root): ``"module.iam.aws_iam_role.this.arn"``, the key of its fact."""
    return f"{module}.{address}" if module else address


def _collapse(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


def _convert(value: Any, declaration: Block, module: Module) -> Any:
    """A variable's value in its declared type (numbers stay ints when whole)."""
    if value is None or "type" not in declaration.attributes:
        return value
    kind = declaration.attributes["type"]
    name = _type_name(kind)
    try:
        if name == "number":
            number = float(value)
            return int(number) if number.is_integer() else number
        if name == "string":
            return _string(value)
        if name == "bool":
            if isinstance(value, str):
                return {"true": True, "false": False}[value]
            return bool(value)
    except (ValueError, KeyError, TypeError) as exc:
        label = declaration.labels[0]
        raise HclError(f"{module.directory}: var.{label}: {value!r} is not a {name}") from exc
    return value


def _type_name(tree: Tree) -> str:
    node = tree
    while _is_tree(node) and node.data == "expr_term" and len(_trees(node)) == 1:
        node = _trees(node)[0]
    if _is_tree(node) and node.data == "identifier":
        return _identifier(node)
    return "complex"


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    raise HclError(f"cannot use {value!r} as a string")


def _get(value: Any, key: Any) -> Any:
    if isinstance(value, Lazy):
        return value.get(key)
    if isinstance(value, Mapping):
        if key not in value:
            raise HclError(f"no attribute or key {key!r}")
        return value[key]
    if isinstance(value, list) and isinstance(key, int):
        if not -len(value) <= key < len(value):
            raise HclError(f"index {key} out of range")
        return value[key]
    raise HclError(f"cannot take {key!r} of {value!r}")


def _regex(pattern: str, text: str) -> Any:
    match = re.search(pattern, text)
    if match is None:
        raise HclError(f"pattern {pattern!r} does not match {text!r}")
    return match.group(0)


def _one(values: list[Any]) -> Any:
    if len(values) > 1:
        raise HclError(f"one() of {len(values)} elements")
    return values[0] if values else None


def _merge(*maps: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for m in maps:
        if m is not None:
            merged.update(m)
    return merged


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "alltrue": lambda values: all(values),
    "anytrue": lambda values: any(values),
    "concat": lambda *lists: [v for values in lists for v in values],
    "contains": lambda values, value: value in values,
    "floor": math.floor,
    "ceil": math.ceil,
    "length": len,
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "merge": _merge,
    "one": _one,
    "regex": _regex,
    "tostring": _string,
    "trimprefix": lambda s, prefix: s[len(prefix) :] if s.startswith(prefix) else s,
    "trimsuffix": lambda s, suffix: s[: -len(suffix)] if suffix and s.endswith(suffix) else s,
    "jsonencode": lambda value: json.dumps(value, separators=(",", ":")),
}

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


@dataclass
class _Evaluator:
    """Evaluates one expression tree; ``reference`` resolves the root names (``var``, ...)."""

    reference: Callable[[str], Any]
    bound: dict[str, Any] = field(default_factory=dict)  # a for expression's variables

    def evaluate(self, tree: Tree, where: str = "") -> Any:
        method = getattr(self, f"_{tree.data}", None)
        if method is None:
            raise HclError(f"{where}: {tree.data} expressions are not supported here")
        return method(tree)

    def _expr_term(self, tree: Tree) -> Any:
        (inner,) = _trees(tree)
        return self.evaluate(inner)

    def _int_lit(self, tree: Tree) -> int:
        return int(str(tree.children[0]))

    def _float_lit(self, tree: Tree) -> float:
        return float(str(tree.children[0]))

    def _literal_value(self, tree: Tree) -> Any:
        return {"true": True, "false": False, "null": None}[str(tree.children[0])]

    def _string(self, tree: Tree) -> str:
        parts = []
        for part in _trees(tree):
            (inner,) = part.children
            if _is_tree(inner):
                if inner.data != "interpolation":
                    raise HclError(f"template directive {inner.data} is not supported")
                parts.append(_string(self.evaluate(_trees(inner)[0])))
            else:
                parts.append(_unescape(str(inner)))
        return "".join(parts)

    def _tuple(self, tree: Tree) -> list[Any]:
        return [self.evaluate(t) for t in _trees(tree)]

    def _object(self, tree: Tree) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for element in _trees(tree):
            key_node, value = _trees(element)
            (key,) = _trees(key_node)
            inner = _trees(key)[0] if key.data == "expr_term" else key
            # A bare name is the key itself (``{ENDPOINT_NAME = ...}``), not a reference.
            bare = inner.data == "identifier"
            name = _identifier(inner) if bare else _string(self.evaluate(key))
            result[name] = self.evaluate(value)
        return result

    def _identifier(self, tree: Tree) -> Any:
        name = _identifier(tree)
        if name in self.bound:
            return self.bound[name]
        return self.reference(name)

    def _get_attr_expr_term(self, tree: Tree) -> Any:
        target, attribute = _trees(tree)
        return _get(self.evaluate(target), self._attribute_name(attribute))

    def _attribute_name(self, get_attr: Tree) -> str:
        return _identifier(_trees(get_attr)[0])

    def _index_expr_term(self, tree: Tree) -> Any:
        target, index = _trees(tree)
        return _get(self.evaluate(target), self._index(index))

    def _index(self, index: Tree) -> Any:
        if index.data == "short_index":
            return int(str(index.children[-1]))
        key = self.evaluate(_trees(index)[0])
        return int(key) if isinstance(key, float) and key.is_integer() else key

    def _full_splat_expr_term(self, tree: Tree) -> list[Any]:
        target, splat = _trees(tree)
        value = self.evaluate(target)
        values = value if isinstance(value, list) else ([] if value is None else [value])
        results = []
        for item in values:
            for step in _trees(splat):
                key = self._attribute_name(step) if step.data == "get_attr" else self._index(step)
                item = _get(item, key)
            results.append(item)
        return results

    def _function_call(self, tree: Tree) -> Any:
        name_node, *rest = _trees(tree)
        name = _identifier(name_node)
        arguments = _trees(rest[0]) if rest else []
        if name in ("can", "try"):
            for argument in arguments:
                try:
                    value = self.evaluate(argument)
                except Unknown:
                    raise
                except (HclError, ArithmeticError, TypeError, ValueError):
                    continue
                return True if name == "can" else value
            if name == "can":
                return False
            raise HclError("try(): no argument could be evaluated")
        if name not in FUNCTIONS:
            raise HclError(f"function {name}() is not supported")
        return FUNCTIONS[name](*(self.evaluate(a) for a in arguments))

    def _conditional(self, tree: Tree) -> Any:
        condition, yes, no = _trees(tree)
        return self.evaluate(yes) if self.evaluate(condition) else self.evaluate(no)

    def _binary_op(self, tree: Tree) -> Any:
        left, term = _trees(tree)
        operator_node, right = _trees(term)
        operator = str(operator_node.children[0])
        value = self.evaluate(left)
        if operator == "&&":
            return bool(value) and bool(self.evaluate(right))
        if operator == "||":
            return bool(value) or bool(self.evaluate(right))
        return _OPERATORS[operator](value, self.evaluate(right))

    def _unary_op(self, tree: Tree) -> Any:
        operator = str(tree.children[0])
        value = self.evaluate(_trees(tree)[0])
        return not value if operator == "!" else -value

    def _for_tuple_expr(self, tree: Tree) -> list[Any]:
        intro, body, *condition = _trees(tree)
        names = [_identifier(n) for n in _trees(intro) if n.data == "identifier"]
        collection = self.evaluate(_trees(intro)[-1])
        items = collection.items() if isinstance(collection, Mapping) else enumerate(collection)
        results = []
        for key, value in items:
            bound = (
                {names[-1]: value}
                if len(names) == 1
                else dict(zip(names, (key, value), strict=True))
            )
            inner = _Evaluator(self.reference, {**self.bound, **bound})
            if condition and not inner.evaluate(_trees(condition[0])[0]):
                continue
            results.append(inner.evaluate(body))
        return results

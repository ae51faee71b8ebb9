"""The functions the local cloud runs, read from moto's Lambda records (which stay the records:
CreateFunction, UpdateFunctionCode, PublishVersion, CreateAlias, GetFunction are moto's).

`resolve` turns what an Invoke names (a name, a partial or full ARN, with or without a
qualifier) into a `FunctionSpec`: the one version that runs, with what an execution environment
needs (the zip, handler, memory, timeout, environment). `unpack` extracts a version's zip once
into a task root shared by its environments.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import lambda_backends

from ops.localcloud.wire import ACCOUNT_ID, arn

LATEST = "$LATEST"
# AWS's function name, optionally a partial or full ARN, optionally ":qualifier" (the
# FunctionName pattern of the service model without its \p{L} classes, which `re` lacks).
_NAME = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
    r"|(?P<short_account>\d{12}):function:)?(?P<name>[a-zA-Z0-9_-]{1,140})"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]{1,128}))?$"
)


class FunctionNotFound(Exception):
    """No such function, version or alias (AWS: ResourceNotFoundException, 404)."""

    def __init__(self, region: str, name: str, qualifier: str | None = None):
        resource = f"function:{name}" + (f":{qualifier}" if qualifier else "")
        super().__init__(f"Function not found: {arn('lambda', region, resource)}")


class MalformedName(Exception):
    """Not a function name or ARN (AWS: ValidationException)."""


class QualifierMismatch(Exception):
    """The ARN's qualifier and Qualifier differ (AWS: InvalidParameterValueException)."""


class NotRunnable(Exception):
    """A function the local cloud cannot run (a container image, a runtime that is not Python)."""


@dataclass(frozen=True)
class FunctionSpec:
    """One version of a function, as an execution environment runs it."""

    region: str
    name: str
    version: str  # "$LATEST" or "1", "2", ...
    qualifier: str | None  # what the caller named: an alias, a version, or None
    arn: str  # the unqualified function ARN
    handler: str
    runtime: str
    memory_mb: int
    timeout_s: int
    environment: dict[str, str]
    role: str
    code_sha256: str
    code: bytes

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What an environment serves: environments are reused only for the same key (a new
        $LATEST code or configuration starts fresh environments)."""
        config = hashlib.sha256(
            repr(
                (self.handler, self.memory_mb, self.timeout_s, sorted(self.environment.items()))
            ).encode()
        ).hexdigest()[:16]
        return (self.region, self.name, self.version, f"{self.code_sha256}:{config}")

    @property
    def invoked_arn(self) -> str:
        return f"{self.arn}:{self.qualifier}" if self.qualifier else self.arn


def parse_name(region: str, function_name: str, qualifier: str | None) -> tuple[str, str | None]:
    """(name, qualifier) from FunctionName and Qualifier as AWS accepts them."""
    match = _NAME.match(function_name or "")
    if not match:
        raise MalformedName(
            "1 validation error detected: Value '"
            f"{function_name}' at 'functionName' failed to satisfy constraint: Member must "
            "satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?"
            "([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_\\.]+)"
            "(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
        )
    in_name = match.group("qualifier")
    if in_name and qualifier and in_name != qualifier:
        raise QualifierMismatch(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    return match.group("name"), in_name or qualifier


def backend(region: str):
    return lambda_backends[ACCOUNT_ID][region]


def exists(region: str, name: str) -> bool:
    try:
        backend(region).get_function(name)
    except LambdaClientError:
        return False
    return True


def version_of(region: str, name: str, qualifier: str | None) -> str:
    """The version ``qualifier`` names now (an alias's target), "$LATEST" without one."""
    try:
        function = backend(region).get_function(name, qualifier)
    except LambdaClientError:
        raise FunctionNotFound(region, name, qualifier) from None
    return str(function.version)


def resolve(region: str, name: str, qualifier: str | None) -> FunctionSpec:
    """What runs when ``name:qualifier`` is invoked, or `FunctionNotFound`/`NotRunnable`."""
    try:
        function = backend(region).get_function(name, qualifier)
    except LambdaClientError:
        raise FunctionNotFound(region, name, qualifier) from None
    if getattr(function, "package_type", "Zip") == "Image":
        raise NotRunnable(
            "the local cloud runs .zip functions only, not container images (no Docker here)"
        )
    runtime = function.run_time or ""
    if not runtime.startswith("python"):
        raise NotRunnable(
            f"the local cloud runs Python functions only, not runtime {runtime or '(none)'}"
        )
    return FunctionSpec(
        region=region,
        name=function.function_name,
        version=str(function.version),
        qualifier=qualifier,
        arn=arn("lambda", region, f"function:{function.function_name}"),
        handler=function.handler or "",
        runtime=runtime,
        memory_mb=int(function.memory_size or 128),
        timeout_s=int(function.timeout or 3),
        environment={str(k): str(v) for k, v in (function.environment_vars or {}).items()},
        role=function.role,
        code_sha256=function.code_sha_256 or "",
        code=function.code_bytes or b"",
    )


def set_reserved(region: str, name: str, value: int | None) -> None:
    """Keep moto's record in step, so that GetFunction shows the reserved concurrency."""
    function = backend(region).get_function(name)
    function.reserved_concurrency = value


def reserved_of(region: str, name: str) -> int | None:
    value = backend(region).get_function(name).reserved_concurrency
    return None if value is None else int(value)


def all_reserved(region: str) -> dict[str, int]:
    """{function name: reserved concurrency} of every function that has one."""
    return {
        function.function_name: int(function.reserved_concurrency)
        for function in backend(region).list_functions()
        if function.reserved_concurrency is not None
    }


def account_usage(region: str) -> tuple[int, int]:
    """(function count, total code size in bytes) for GetAccountSettings."""
    functions = list(backend(region).list_functions())
    return len(functions), sum(len(f.code_bytes or b"") for f in functions)


class TaskRoots:
    """Each (function, version, code) unpacked once under ``root``, as Lambda's /var/task."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        if root.exists():  # left from an earlier run: functions are bootstrapped again
            shutil.rmtree(root, ignore_errors=True)

    def unpack(self, spec: FunctionSpec) -> Path:
        folder = self.root / spec.code_sha256.replace("/", "_").replace("+", "-")[:43]
        with self._lock:
            if not folder.exists():
                partial = folder.with_name(folder.name + ".partial")
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir(parents=True)
                try:
                    # extractall drops absolute paths and ".." parts: nothing lands outside.
                    with zipfile.ZipFile(io.BytesIO(spec.code)) as archive:
                        archive.extractall(partial)
                except zipfile.BadZipFile as exc:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise NotRunnable(f"the function's code is not a valid .zip: {exc}") from exc
                partial.rename(folder)
        return folder

"""The Lambda operations answered here; the rest of Lambda (CreateFunction, PublishVersion,
CreateAlias, GetFunction, ...) is moto's, whose records stay the functions' records.

- ``Invoke``: RequestResponse (200, even for a function error, with ``X-Amz-Function-Error:
  Unhandled``), Event (202, queued and run), DryRun (204); ``LogType: Tail`` answers the last
  4 KB of the invocation's log, base64; ``X-Amz-Executed-Version`` the version that ran.
  Throttles are 429 ``TooManyRequestsException`` with ``Reason`` and ``Retry-After``-less body
  ``{"Type": "User", "message": "Rate Exceeded.", "Reason": ...}`` (AWS-SEMANTICS.md C2, C4).
- ``Put/Get/DeleteFunctionConcurrency``: reserved concurrency, kept on moto's function record
  so that GetFunction shows it; AWS's rules and messages (`concurrency`).
- ``Put/Get/Delete/ListProvisionedConcurrencyConfig(s)``: moto has none of them.
- ``GetAccountSettings``: the account's concurrency limit (``DOGOPS_LAMBDA_CONCURRENCY_LIMIT``,
  default 1000) and what is left unreserved.
- ``DeleteFunction``: moto's, and then the function's environments and configs go too.
"""

from __future__ import annotations

import base64
import json

from moto.awslambda.exceptions import LambdaClientError

from ops.localcloud.lambda_ import functions
from ops.localcloud.lambda_.assignment import Environments
from ops.localcloud.lambda_.concurrency import Concurrency, Refused, Throttled
from ops.localcloud.lambda_.environments import TAIL_BYTES
from ops.localcloud.lambda_.functions import (
    FunctionNotFound,
    MalformedName,
    NotRunnable,
    QualifierMismatch,
)
from ops.localcloud.lambda_.invocations import Invoker
from ops.localcloud.supervisor import SupervisorClosed
from ops.localcloud.wire import AwsError, Call, arn

MAX_SYNC_PAYLOAD = 6_291_456  # 6 MB (AWS-SEMANTICS.md C4)
MAX_EVENT_PAYLOAD = 1_048_576  # 1 MB, the Event payload limit since 2025 (C4)
# Account limits GetAccountSettings reports besides concurrency (LAM:gettingstarted-limits).
CODE_LIMITS = {
    "TotalCodeSize": 80_530_636_800,
    "CodeSizeUnzipped": 262_144_000,
    "CodeSizeZipped": 52_428_800,
}


def _error(exc: Exception) -> AwsError | None:
    if isinstance(exc, MalformedName):
        return AwsError("ValidationException", str(exc))
    if isinstance(exc, QualifierMismatch):
        return AwsError("InvalidParameterValueException", str(exc), 400, {"Type": "User"})
    if isinstance(exc, FunctionNotFound):
        return AwsError("ResourceNotFoundException", str(exc), 404, {"Type": "User"})
    if isinstance(exc, Refused):
        if exc.conflict:
            return AwsError("ResourceConflictException", str(exc), 409, {"Type": "User"})
        return AwsError("InvalidParameterValueException", str(exc), 400, {"Type": "User"})
    if isinstance(exc, Throttled):
        return AwsError(
            "TooManyRequestsException",
            "Rate Exceeded.",
            429,
            {"Type": "User", "Reason": exc.reason},
        )
    if isinstance(exc, NotRunnable):
        return AwsError("InvalidParameterValueException", f"The local cloud cannot run it: {exc}")
    if isinstance(exc, SupervisorClosed):
        return AwsError("ServiceException", "The local cloud is stopping.", 500)
    return None


class LambdaApi:
    def __init__(
        self,
        concurrency: dict[str, Concurrency],
        environments: Environments,
        invoker: Invoker,
        concurrency_for,
    ):
        self.concurrency = concurrency
        self.environments = environments
        self.invoker = invoker
        self._concurrency_for = concurrency_for  # region -> Concurrency (made on first use)

    def handlers(self) -> dict:
        return {
            "Invoke": self.invoke,
            "PutFunctionConcurrency": self._wrap(self.put_function_concurrency),
            "GetFunctionConcurrency": self._wrap(self.get_function_concurrency),
            "DeleteFunctionConcurrency": self._wrap(self.delete_function_concurrency),
            "PutProvisionedConcurrencyConfig": self._wrap(self.put_provisioned),
            "GetProvisionedConcurrencyConfig": self._wrap(self.get_provisioned),
            "DeleteProvisionedConcurrencyConfig": self._wrap(self.delete_provisioned),
            "ListProvisionedConcurrencyConfigs": self._wrap(self.list_provisioned),
            "GetAccountSettings": self._wrap(self.get_account_settings),
            "DeleteFunction": self._wrap(self.delete_function),
            "UpdateAlias": self._wrap(self.update_alias),
        }

    @staticmethod
    def _wrap(method):
        def handler(call: Call):
            try:
                return method(call.region, call.params)
            except Exception as exc:
                error = _error(exc)
                if error is None:
                    raise
                raise error from exc

        handler.__name__ = method.__name__
        return handler

    # -- Invoke --------------------------------------------------------------------------------

    async def invoke(self, call: Call) -> dict:
        region, params = call.region, call.params
        try:
            return await self._invoke(region, params)
        except Exception as exc:
            error = _error(exc)
            if error is None:
                raise
            raise error from exc

    async def _invoke(self, region: str, params: dict) -> dict:
        name, qualifier = functions.parse_name(
            region, params["FunctionName"], params.get("Qualifier")
        )
        kind = params.get("InvocationType") or "RequestResponse"
        payload = params.get("Payload") or b""
        limit = MAX_EVENT_PAYLOAD if kind == "Event" else MAX_SYNC_PAYLOAD
        if len(payload) > limit:
            if kind == "Event":
                message = (
                    f"{len(payload)} byte payload is too large for the Event invocation type "
                    f"(limit {limit} bytes)"
                )
            else:
                message = (
                    f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
                )
            raise AwsError("RequestEntityTooLargeException", message, 413, {"Type": "User"})
        if payload.strip():
            try:
                json.loads(payload)
            except (ValueError, RecursionError) as exc:
                raise AwsError(
                    "InvalidRequestContentException",
                    f"Could not parse request body into json: {exc}",
                    400,
                    {"Type": "User"},
                ) from None
        else:
            payload = b"{}"
        spec = functions.resolve(region, name, qualifier)
        self._concurrency_for(region)
        if kind == "DryRun":
            return {"StatusCode": 204}
        if kind == "Event":
            self.invoker.invoke_later(spec, payload)
            return {"StatusCode": 202}
        result = await self.invoker.invoke(spec, payload, _client_context(params))
        answer = {
            "StatusCode": 200,
            "Payload": result.outcome.payload,
            "ExecutedVersion": result.version,
        }
        if result.outcome.error:
            answer["FunctionError"] = result.outcome.error
        if params.get("LogType") == "Tail":
            tail = result.outcome.log.encode()[-TAIL_BYTES:]
            answer["LogResult"] = base64.b64encode(tail).decode()
        return answer

    # -- reserved concurrency ------------------------------------------------------------------

    def _function(self, region: str, function_name: str) -> str:
        name, qualifier = functions.parse_name(region, function_name, None)
        if qualifier:
            raise AwsError(
                "InvalidParameterValueException",
                "This operation does not support qualified function names.",
                400,
                {"Type": "User"},
            )
        if not functions.exists(region, name):
            raise FunctionNotFound(region, name)
        return name

    def put_function_concurrency(self, region: str, params: dict) -> dict:
        name = self._function(region, params["FunctionName"])
        value = int(params["ReservedConcurrentExecutions"])
        self._concurrency_for(region).reserve(
            name, value, lambda v: functions.set_reserved(region, name, v)
        )
        return {"ReservedConcurrentExecutions": value}

    def get_function_concurrency(self, region: str, params: dict) -> dict:
        name = self._function(region, params["FunctionName"])
        value = functions.reserved_of(region, name)
        return {} if value is None else {"ReservedConcurrentExecutions": value}

    def delete_function_concurrency(self, region: str, params: dict) -> None:
        name = self._function(region, params["FunctionName"])
        self._concurrency_for(region).reserve(
            name, None, lambda v: functions.set_reserved(region, name, v)
        )

    # -- provisioned concurrency ---------------------------------------------------------------

    def put_provisioned(self, region: str, params: dict) -> dict:
        name = self._function(region, params["FunctionName"])
        qualifier = params["Qualifier"]
        if qualifier == functions.LATEST:
            raise Refused(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions."
            )
        requested = int(params["ProvisionedConcurrentExecutions"])
        spec = functions.resolve(region, name, qualifier)
        if spec.version == functions.LATEST:  # an alias pointing at $LATEST
            raise Refused(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions."
            )
        config, replaced = self._concurrency_for(region).put_config(
            name, qualifier, spec.version, requested
        )
        self.environments.provision(spec, config, replaced)
        return config.describe()

    def get_provisioned(self, region: str, params: dict) -> dict:
        name = self._function(region, params["FunctionName"])
        qualifier = params["Qualifier"]
        functions.version_of(region, name, qualifier)  # 404 for an unknown qualifier
        config = self._concurrency_for(region).get_config(name, qualifier)
        if config is None:
            raise _no_config()
        return config.describe()

    def delete_provisioned(self, region: str, params: dict) -> None:
        name = self._function(region, params["FunctionName"])
        qualifier = params["Qualifier"]
        functions.version_of(region, name, qualifier)
        config = self._concurrency_for(region).delete_config(name, qualifier)
        if config is None:
            raise _no_config()
        self.environments.retire(config)

    def list_provisioned(self, region: str, params: dict) -> dict:
        name = self._function(region, params["FunctionName"])
        configs = self._concurrency_for(region).configs(name)
        size = params.get("MaxItems") or 50
        start = 0
        if params.get("Marker"):
            qualifiers = [c.qualifier for c in configs]
            if params["Marker"] not in qualifiers:
                raise AwsError(
                    "InvalidParameterValueException", "Invalid marker", 400, {"Type": "User"}
                )
            start = qualifiers.index(params["Marker"]) + 1
        chunk = configs[start : start + size]
        answer: dict = {
            "ProvisionedConcurrencyConfigs": [
                {
                    "FunctionArn": arn("lambda", region, f"function:{name}:{c.qualifier}"),
                    **c.describe(),
                }
                for c in chunk
            ]
        }
        if start + size < len(configs) and chunk:
            answer["NextMarker"] = chunk[-1].qualifier
        return answer

    # -- account and deletion ------------------------------------------------------------------

    def get_account_settings(self, region: str, params: dict) -> dict:
        concurrency = self._concurrency_for(region)
        count, size = functions.account_usage(region)
        return {
            "AccountLimit": {
                **CODE_LIMITS,
                "ConcurrentExecutions": concurrency.limit,
                "UnreservedConcurrentExecutions": concurrency.unreserved(),
            },
            "AccountUsage": {"TotalCodeSize": size, "FunctionCount": count},
        }

    def update_alias(self, region: str, params: dict) -> dict:
        """moto's UpdateAlias; then a provisioned config on the alias follows it to its new
        version, as on AWS: the new version's environments are initialised (IN_PROGRESS)
        while the old ones keep serving, and retired once the new set is READY."""
        name = self._function(region, params["FunctionName"])
        try:
            alias = functions.backend(region).update_alias(
                name=params["Name"],
                function_name=name,
                function_version=params.get("FunctionVersion"),
                description=params.get("Description"),
                routing_config=params.get("RoutingConfig"),
            )
        except LambdaClientError as exc:
            raise _moto_error(exc) from None
        concurrency = self._concurrency_for(region)
        config = concurrency.get_config(name, params["Name"])
        if config is not None and config.version != str(alias.function_version):
            spec = functions.resolve(region, name, params["Name"])
            new, replaced = concurrency.put_config(
                name, params["Name"], spec.version, config.requested
            )
            self.environments.provision(spec, new, replaced)
        return alias.to_json()

    def delete_function(self, region: str, params: dict) -> None:
        name, qualifier = functions.parse_name(
            region, params["FunctionName"], params.get("Qualifier")
        )
        try:
            functions.backend(region).delete_function(name, qualifier)
        except LambdaClientError as exc:
            raise _moto_error(exc) from None
        if qualifier is None:
            for config in self._concurrency_for(region).forget(name):
                self.environments.retire(config)
            self.environments.stop_function(region, name)


def _client_context(params: dict) -> str | None:
    """The ClientContext header is base64 JSON; the runtime gets the JSON itself."""
    encoded = params.get("ClientContext")
    if not encoded:
        return None
    try:
        text = base64.b64decode(encoded, validate=True).decode("utf-8")
        json.loads(text)
    except ValueError:
        raise AwsError(
            "InvalidRequestContentException",
            "Client context must be a valid Base64-encoded JSON object.",
            400,
            {"Type": "User"},
        ) from None
    return text


def _moto_error(exc: LambdaClientError) -> AwsError:
    return AwsError(exc.error_type, exc.message, exc.code, {"Type": "User"})


def _no_config() -> AwsError:
    return AwsError(
        "ProvisionedConcurrencyConfigNotFoundException",
        "No Provisioned Concurrency Config found for this function",
        404,
        {"Type": "User"},
    )

"""The SageMaker hosting operations the local cloud answers: models, endpoint configurations
and endpoints, the whole family (none of it is left to moto, whose records could not serve).

Parse the request, check what the service model cannot express, call the backend
(`endpoint_records`) or the runner (`hosting`), shape the answer. Every refusal is a
``ValidationException`` in SageMaker's words, as AWS answers these operations (AWS-SEMANTICS.md
B1); the front door has already checked the request against botocore's model (`shapes`).

Locally, an endpoint instance is the project's model server (`ops.model_server`), which serves
a ``model.tar.gz`` holding ``code/inference.py``, as the SageMaker PyTorch inference container
does; the model's ``Image`` is recorded but not run, and ``InstanceType`` only names the
instances. Refused here with a message saying so, because nothing local would do what AWS
does with them: inference pipelines (several ``Containers``), serverless variants, shadow
variants, asynchronous inference, data capture, and Clarify explainers.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from ops import s3 as ops_s3
from ops.errors import OpsError
from ops.localcloud.routes import Handler, api_method
from ops.localcloud.sagemaker.api import _filter, _sort
from ops.localcloud.sagemaker.endpoint_records import (
    Endpoint,
    EndpointBackend,
    EndpointRequestError,
)
from ops.localcloud.sagemaker.hosting import EndpointRunner
from ops.localcloud.sagemaker.records import InvalidRequest
from ops.localcloud.wire import AwsError, page, validation_error

RETAINABLE = ("DesiredInstanceCount", "DesiredWeight")
UNSUPPORTED_CONFIG = {
    "ShadowProductionVariants": "shadow variants",
    "AsyncInferenceConfig": "asynchronous inference",
    "DataCaptureConfig": "data capture",
    "ExplainerConfig": "Clarify explainers",
}


def _aws_error(exc: Exception) -> AwsError | None:
    if isinstance(exc, InvalidRequest):
        return validation_error(str(exc))
    return None


_api = api_method(_aws_error)


class EndpointApi:
    def __init__(self, backend: EndpointBackend, runner: EndpointRunner, moto):
        self.backend = backend
        self.runner = runner
        self.moto = moto

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "DeleteModel": self.delete_model,
            "ListModels": self.list_models,
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": self.describe_endpoint_config,
            "DeleteEndpointConfig": self.delete_endpoint_config,
            "ListEndpointConfigs": self.list_endpoint_configs,
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "ListEndpoints": self.list_endpoints,
            "UpdateEndpoint": self.update_endpoint,
            "UpdateEndpointWeightsAndCapacities": self.update_endpoint_weights_and_capacities,
            "DeleteEndpoint": self.delete_endpoint,
        }

    # -- models ---------------------------------------------------------------------------------

    @_api
    def create_model(self, region: str, request: dict) -> dict:
        containers = request.get("Containers") or []
        if len(containers) > 1:
            raise EndpointRequestError(
                "Inference pipelines (several Containers) are not supported locally; give one "
                "PrimaryContainer"
            )
        container = request.get("PrimaryContainer") or (containers or [None])[0]
        if container is None:
            raise EndpointRequestError("A model needs a PrimaryContainer (or one of Containers)")
        source = (container.get("ModelDataSource") or {}).get("S3DataSource")
        if source and (source["S3DataType"], source["CompressionType"]) != ("S3Object", "Gzip"):
            raise EndpointRequestError(
                "Locally a ModelDataSource must be one model.tar.gz: S3DataType S3Object and "
                "CompressionType Gzip"
            )
        uri = container.get("ModelDataUrl") or (source or {}).get("S3Uri")
        if uri:
            self._require_object(region, uri)
        model = self.backend.add_model(region, request)
        return {"ModelArn": model.arn}

    def _require_object(self, region: str, uri: str) -> None:
        """AWS checks the model data exists when the model is created: "Could not find model
        data at s3://.../model.tar.gz." (aws/amazon-sagemaker-examples#2264)."""
        try:
            bucket, key = ops_s3.parse_s3_uri(uri)
            self.moto.client("s3", region).head_object(Bucket=bucket, Key=key)
        except (OpsError, ClientError) as exc:
            raise EndpointRequestError(f"Could not find model data at {uri}.") from exc

    @_api
    def describe_model(self, region: str, request: dict) -> dict:
        return self.backend.model(region, request["ModelName"]).describe()

    @_api
    def delete_model(self, region: str, request: dict) -> dict:
        # AWS deletes a model an endpoint uses: the endpoint keeps serving (what it serves is
        # copied into its record).
        self.backend.delete_model(region, request["ModelName"])
        return {}

    @_api
    def list_models(self, region: str, request: dict) -> dict:
        summaries = [m.summary() for m in self.backend.list(self.backend.models, region)]
        items = _listed(summaries, request, "ModelName")
        items, token = page(items, request, lambda item: item["ModelName"])
        return {"Models": items, **token}

    # -- endpoint configurations --------------------------------------------------------------

    @_api
    def create_endpoint_config(self, region: str, request: dict) -> dict:
        for member, what in UNSUPPORTED_CONFIG.items():
            if request.get(member):
                raise EndpointRequestError(f"{member} ({what}) is not supported locally")
        names = [variant["VariantName"] for variant in request["ProductionVariants"]]
        if len(set(names)) != len(names):
            raise EndpointRequestError(
                f"The variant names of an endpoint configuration must be unique: {names}"
            )
        for variant in request["ProductionVariants"]:
            if variant.get("ServerlessConfig"):
                raise EndpointRequestError(
                    f"Variant {variant['VariantName']}: ServerlessConfig (serverless inference) "
                    "is not supported locally"
                )
            for member in ("InstanceType", "InitialInstanceCount"):
                if variant.get(member) is None:
                    # Optional in the model for serverless variants only.
                    raise EndpointRequestError(
                        f"Variant {variant['VariantName']}: {member} is required for an "
                        "instance-based variant"
                    )
            if not variant.get("ModelName"):
                raise EndpointRequestError(
                    f"Variant {variant['VariantName']}: ModelName is required"
                )
            self.backend.model(region, variant["ModelName"])
        config = self.backend.add_config(region, request)
        return {"EndpointConfigArn": config.arn}

    @_api
    def describe_endpoint_config(self, region: str, request: dict) -> dict:
        return self.backend.config(region, request["EndpointConfigName"]).describe()

    @_api
    def delete_endpoint_config(self, region: str, request: dict) -> dict:
        # "If you delete the EndpointConfig of an endpoint that is active or being created or
        # updated you may lose visibility into the instance type the endpoint is using" (the
        # service model's DeleteEndpointConfig): allowed; the endpoint keeps serving.
        self.backend.delete_config(region, request["EndpointConfigName"])
        return {}

    @_api
    def list_endpoint_configs(self, region: str, request: dict) -> dict:
        summaries = [c.summary() for c in self.backend.list(self.backend.configs, region)]
        items = _listed(summaries, request, "EndpointConfigName")
        items, token = page(items, request, lambda item: item["EndpointConfigName"])
        return {"EndpointConfigs": items, **token}

    # -- endpoints -----------------------------------------------------------------------------

    @_api
    def create_endpoint(self, region: str, request: dict) -> dict:
        config = self.backend.config(region, request["EndpointConfigName"])
        endpoint = Endpoint(
            name=request["EndpointName"],
            region=region,
            request=request,
            config_name=config.name,
            variants=self.backend.variant_specs(config),
            deployment_config=request.get("DeploymentConfig"),
        )
        self.backend.add_endpoint(endpoint)
        self.runner.create(endpoint)
        return {"EndpointArn": endpoint.arn}

    @_api
    def describe_endpoint(self, region: str, request: dict) -> dict:
        endpoint = self.backend.endpoint(region, request["EndpointName"])
        with self.backend.lock:
            return endpoint.describe()

    @_api
    def list_endpoints(self, region: str, request: dict) -> dict:
        with self.backend.lock:
            summaries = [e.summary() for e in self.backend.list(self.backend.endpoints, region)]
        items = _listed(summaries, request, "EndpointName", "EndpointStatus")
        # "MaxResults ... This value defaults to 10." (ListEndpoints, the service model)
        request = request if request.get("MaxResults") else {**request, "MaxResults": 10}
        items, token = page(items, request, lambda item: item["EndpointName"])
        return {"Endpoints": items, **token}

    @_api
    def update_endpoint(self, region: str, request: dict) -> dict:
        endpoint = self.backend.endpoint(region, request["EndpointName"])
        config = self.backend.config(region, request["EndpointConfigName"])
        specs = self.backend.variant_specs(config)
        if request.get("RetainAllVariantProperties"):
            # Same-named variants keep their current DesiredInstanceCount and DesiredWeight
            # (an autoscaled count survives the update), except what
            # ExcludeRetainedVariantProperties names (SM:endpoint-scaling; the service model).
            excluded = {
                item["VariantPropertyType"]
                for item in request.get("ExcludeRetainedVariantProperties") or []
            }
            with self.backend.lock:
                current = {spec["VariantName"]: spec for spec in endpoint.variants}
                for spec in specs:
                    for prop in RETAINABLE:
                        if spec["VariantName"] in current and prop not in excluded:
                            spec[prop] = current[spec["VariantName"]][prop]
        deployment = request.get("DeploymentConfig")
        if request.get("RetainDeploymentConfig"):
            deployment = endpoint.deployment_config
        self.runner.update(endpoint, config.name, specs, deployment)
        return {"EndpointArn": endpoint.arn}

    @_api
    def update_endpoint_weights_and_capacities(self, region: str, request: dict) -> dict:
        changes = request["DesiredWeightsAndCapacities"]
        for change in changes:
            if change.get("ServerlessUpdateConfig"):
                raise EndpointRequestError("ServerlessUpdateConfig is not supported locally")
            if change.get("DesiredWeight") is None and change.get("DesiredInstanceCount") is None:
                raise EndpointRequestError(
                    f"Variant {change['VariantName']}: give DesiredWeight, "
                    "DesiredInstanceCount or both"
                )
        endpoint = self.runner.update_weights_and_capacities(
            region, request["EndpointName"], changes
        )
        return {"EndpointArn": endpoint.arn}

    @_api
    def delete_endpoint(self, region: str, request: dict) -> dict:
        self.runner.delete(self.backend.endpoint(region, request["EndpointName"]))
        return {}


def _listed(items: list[dict], request: dict, name_key: str, status_key: str = "") -> list[dict]:
    """Filtered and sorted as the list operations document: by CreationTime, Descending,
    unless SortBy and SortOrder say otherwise (ListModels, ListEndpointConfigs, ListEndpoints
    in the service model)."""
    items = _filter(items, request, name_key, status_key or name_key)
    order = {**request, "SortOrder": request.get("SortOrder") or "Descending"}
    return _sort(items, order, "CreationTime", name_key, status_key or name_key)

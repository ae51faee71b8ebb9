"""SageMaker hosting's records: models, endpoint configurations, endpoints, and the backend that
owns them (one lock; see `records.RecordLock`).

A model and an endpoint configuration are what their Create request said. An endpoint also
keeps, in ``variants``, what it serves: per production variant the model data, container
environment, instance type, desired count and weight, copied from the configuration and its
models when the deployment was asked for. AWS lets a model or configuration be deleted while an
endpoint uses it (DeleteEndpointConfig's reference: "If you delete the EndpointConfig of an
endpoint that is active or being created or updated you may lose visibility into the instance
type the endpoint is using"); the copy is what lets the local cloud start the same instances
again after a restart.

Run-time state (the fleets of model-server instances, requests in flight) hangs off the
endpoint but is never saved; `hosting` starts and stops it, `runtime` routes to it, both under
the backend's lock. Errors are `InvalidRequest` subclasses worded as SageMaker words them: the
API answers every one of them ``ValidationException``, as AWS does for these operations.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from ops.localcloud.sagemaker.records import (
    InvalidRequest,
    RecordLock,
    decode,
    encode,
    sagemaker_arn,
)
from ops.localcloud.wire import now

# AWS's DescribeEndpoint statuses in which a deployment (create, update, rescale, restart) runs:
# UpdateEndpoint, UpdateEndpointWeightsAndCapacities and DeleteEndpoint are refused meanwhile.
IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
# Statuses in which the endpoint takes invocations (blue/green keeps the old fleet serving
# during an update: "no availability loss", the service model's BlueGreenUpdatePolicy).
SERVING = ("InService", "Updating", "SystemUpdating", "RollingBack")


class EndpointRequestError(InvalidRequest):
    """A hosting request SageMaker refuses (AWS: ValidationException, in AWS's words)."""


class EndpointBusy(EndpointRequestError):
    """The endpoint is being created, updated, rescaled or deleted: no other change now."""


@dataclass(kw_only=True)
class Record:
    """What the three kinds share: name, region, the request, creation time; saved whole
    (`to_dict`) by `store.RecordStore` except the fields in ``RUN_TIME``."""

    KIND: ClassVar[str]
    RUN_TIME: ClassVar[frozenset[str]] = frozenset({"deleted"})
    name: str
    region: str
    request: dict
    created: datetime = field(default_factory=now)
    deleted: bool = False  # removed from the backend: the store deletes its file

    @property
    def arn(self) -> str:
        return sagemaker_arn(self.region, self.KIND, self.name)

    def to_dict(self) -> dict:
        saved = {"kind": self.KIND}
        for spec in fields(self):
            if spec.name not in self.RUN_TIME:
                saved[spec.name] = encode(getattr(self, spec.name))
        return saved

    @classmethod
    def from_dict(cls, saved: dict) -> Record:
        if saved.get("kind") != cls.KIND:
            raise ValueError(f"not a {cls.KIND} record: kind {saved.get('kind')!r}")
        names = {spec.name for spec in fields(cls)} - cls.RUN_TIME
        return cls(**{key: decode(value) for key, value in saved.items() if key in names})


@dataclass(kw_only=True)
class Model(Record):
    KIND = "model"

    def container(self) -> dict:
        """The container the endpoint runs: PrimaryContainer, or the only one of Containers."""
        return self.request.get("PrimaryContainer") or (self.request.get("Containers") or [{}])[0]

    def model_data(self) -> str | None:
        """The ``model.tar.gz`` to serve: ModelDataUrl, or an S3Object ModelDataSource."""
        container = self.container()
        source = (container.get("ModelDataSource") or {}).get("S3DataSource")
        return container.get("ModelDataUrl") or (source or {}).get("S3Uri")

    def describe(self) -> dict:
        r = self.request
        return {
            "ModelName": self.name,
            "ModelArn": self.arn,
            "CreationTime": self.created,
            "PrimaryContainer": r.get("PrimaryContainer"),
            "Containers": r.get("Containers"),
            "InferenceExecutionConfig": r.get("InferenceExecutionConfig"),
            "ExecutionRoleArn": r.get("ExecutionRoleArn"),
            "VpcConfig": r.get("VpcConfig"),
            "EnableNetworkIsolation": r.get("EnableNetworkIsolation", False),
        }

    def summary(self) -> dict:
        return {"ModelName": self.name, "ModelArn": self.arn, "CreationTime": self.created}


@dataclass(kw_only=True)
class EndpointConfig(Record):
    KIND = "endpoint-config"

    def describe(self) -> dict:
        r = self.request
        return {
            "EndpointConfigName": self.name,
            "EndpointConfigArn": self.arn,
            "ProductionVariants": r["ProductionVariants"],
            "KmsKeyId": r.get("KmsKeyId"),
            "ExecutionRoleArn": r.get("ExecutionRoleArn"),
            "VpcConfig": r.get("VpcConfig"),
            "EnableNetworkIsolation": r.get("EnableNetworkIsolation"),
            "CreationTime": self.created,
        }

    def summary(self) -> dict:
        return {
            "EndpointConfigName": self.name,
            "EndpointConfigArn": self.arn,
            "CreationTime": self.created,
        }


class Instance:
    """One model-server process of a variant's fleet. ``state``: Pending (starting, not yet
    answering /ping), InService (takes requests), Draining (out of routing, finishing what it
    has), Stopped, Failed (exited or never became healthy). ``in_flight`` counts the requests
    it is answering; the backend's lock guards both."""

    def __init__(self, instance_id: str, variant: str):
        self.id = instance_id
        self.variant = variant
        self.state = "Pending"
        self.url: str | None = None
        self.child = None  # supervisor.Child
        self.writer = None  # cwlogs.LogStreamWriter of its output
        self.in_flight = 0
        self.listening = threading.Event()  # the server printed its address

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None


class Fleet:
    """A production variant's instances for one deployment, serving the model data in
    ``folder``. ``spec`` is the variant as `Endpoint.variants` saves it."""

    def __init__(self, spec: dict, folder: Path):
        self.spec = spec
        self.folder = folder
        self.instances: list[Instance] = []
        self.status: list[dict] = []  # ProductionVariantStatus: what is happening to it now
        self.failures = 0  # replacements that failed in a row
        self.retry_at = 0.0  # monotonic time before which no replacement starts

    @property
    def name(self) -> str:
        return self.spec["VariantName"]

    def in_service(self) -> list[Instance]:
        return [i for i in self.instances if i.state == "InService"]

    def set_status(self, status: str | None, message: str | None = None) -> None:
        self.status = (
            [{"Status": status, "StatusMessage": message, "StartTime": now()}] if status else []
        )


@dataclass(kw_only=True)
class Endpoint(Record):
    KIND = "endpoint"
    RUN_TIME = frozenset({"deleted", "fleets", "pending_fleets"})
    config_name: str
    # What serves (or is being created), one spec per production variant; see `variant_spec`.
    variants: list[dict]
    status: str = "Creating"
    failure_reason: str | None = None
    modified: datetime = field(default_factory=now)
    deployment_config: dict | None = None  # LastDeploymentConfig
    # An update under way: {"EndpointConfigName", "StartTime", "Variants": [spec, ...]}.
    pending: dict | None = None
    fleets: dict[str, Fleet] = field(default_factory=dict)
    pending_fleets: dict[str, Fleet] = field(default_factory=dict)

    def variant(self, name: str) -> dict:
        for spec in self.variants:
            if spec["VariantName"] == name:
                return spec
        names = ", ".join(v["VariantName"] for v in self.variants)
        raise EndpointRequestError(
            f'Endpoint "{self.arn}" has no production variant named "{name}" (it has {names}).'
        )

    def describe(self) -> dict:
        response = {
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "EndpointConfigName": self.config_name,
            "ProductionVariants": [
                _summary(s, self.fleets.get(s["VariantName"])) for s in self.variants
            ],
            "EndpointStatus": self.status,
            "FailureReason": self.failure_reason,
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
            "LastDeploymentConfig": self.deployment_config,
        }
        if self.pending:
            variants = [
                {
                    **_summary(spec, self.pending_fleets.get(spec["VariantName"])),
                    "InstanceType": spec["InstanceType"],
                }
                for spec in self.pending["Variants"]
            ]
            response["PendingDeploymentSummary"] = {
                "EndpointConfigName": self.pending["EndpointConfigName"],
                "ProductionVariants": variants,
                "StartTime": self.pending["StartTime"],
            }
        return response

    def summary(self) -> dict:
        return {
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
            "EndpointStatus": self.status,
        }


def _summary(spec: dict, fleet: Fleet | None) -> dict:
    """A ProductionVariantSummary: desired values from the spec, current ones from the
    instances that answer requests right now."""
    current = len(fleet.in_service()) if fleet else 0
    summary = {
        "VariantName": spec["VariantName"],
        "CurrentWeight": spec["DesiredWeight"],
        "DesiredWeight": spec["DesiredWeight"],
        "CurrentInstanceCount": current,
        "DesiredInstanceCount": spec["DesiredInstanceCount"],
        "VariantStatus": list(fleet.status) if fleet and fleet.status else None,
    }
    if spec.get("Image"):
        summary["DeployedImages"] = [
            {
                "SpecifiedImage": spec["Image"],
                "ResolvedImage": spec["Image"],
                "ResolutionTime": spec["ResolvedAt"],
            }
        ]
    return summary


def variant_spec(variant: dict, model: Model) -> dict:
    """What an endpoint keeps of a configuration's production variant and its model."""
    container = model.container()
    return {
        "VariantName": variant["VariantName"],
        "ModelName": model.name,
        "ModelDataUrl": model.model_data(),
        "Image": container.get("Image"),
        "ResolvedAt": now(),
        "Environment": dict(container.get("Environment") or {}),
        "InstanceType": variant.get("InstanceType"),
        "DesiredInstanceCount": variant["InitialInstanceCount"],
        # "If you don't specify a value, the default is 1.0" (InitialVariantWeight, the model).
        "DesiredWeight": float(variant.get("InitialVariantWeight", 1.0)),
        "StartupTimeoutS": variant.get("ContainerStartupHealthCheckTimeoutInSeconds"),
    }


class EndpointBackend:
    """Models, endpoint configurations and endpoints, keyed by (region, name); one lock guards
    them and the fleets' run-time state. ``save(record)`` is called with each record that
    changed (a deleted one: ``record.deleted`` is set) when the lock is let go."""

    def __init__(self, save: Callable[[Record], None] | None = None) -> None:
        self.lock = RecordLock(save)
        self.models: dict[tuple[str, str], Model] = {}
        self.configs: dict[tuple[str, str], EndpointConfig] = {}
        self.endpoints: dict[tuple[str, str], Endpoint] = {}

    def restore(self, models, configs, endpoints) -> None:
        with self.lock:
            for table, records in (
                (self.models, models),
                (self.configs, configs),
                (self.endpoints, endpoints),
            ):
                for record in records:
                    table[(record.region, record.name)] = record

    def changed(self, record: Record) -> None:
        """Mark ``record`` to be saved (and, for an endpoint, modified now)."""
        with self.lock:
            if isinstance(record, Endpoint):
                record.modified = now()
            self.lock.changed(record)

    # -- models and configurations ---------------------------------------------------------

    def add_model(self, region: str, request: dict) -> Model:
        return self._add(
            self.models, Model(name=request["ModelName"], region=region, request=request)
        )

    def model(self, region: str, name: str) -> Model:
        return self._get(self.models, region, name, "model")

    def delete_model(self, region: str, name: str) -> None:
        self._delete(self.models, self.model(region, name))

    def add_config(self, region: str, request: dict) -> EndpointConfig:
        config = EndpointConfig(name=request["EndpointConfigName"], region=region, request=request)
        return self._add(self.configs, config, "endpoint configuration")

    def config(self, region: str, name: str) -> EndpointConfig:
        return self._get(self.configs, region, name, "endpoint configuration", EndpointConfig)

    def delete_config(self, region: str, name: str) -> None:
        self._delete(self.configs, self.config(region, name))

    def variant_specs(self, config: EndpointConfig) -> list[dict]:
        """The configuration's variants with their models as an endpoint keeps them; a model
        deleted since the configuration was made is refused as AWS refuses it."""
        with self.lock:
            return [
                variant_spec(variant, self.model(config.region, variant["ModelName"]))
                for variant in config.request["ProductionVariants"]
            ]

    # -- endpoints ---------------------------------------------------------------------------

    def add_endpoint(self, endpoint: Endpoint) -> Endpoint:
        return self._add(self.endpoints, endpoint)

    def endpoint(self, region: str, name: str) -> Endpoint:
        with self.lock:
            if (region, name) not in self.endpoints:
                # [code] amazon-sagemaker-operator-for-k8s clientwrapper: "Could not find endpoint"
                raise EndpointRequestError(f'Could not find endpoint "{name}".')
            return self.endpoints[(region, name)]

    def remove_endpoint(self, endpoint: Endpoint) -> None:
        self._delete(self.endpoints, endpoint)

    def list(self, table: dict, region: str) -> list:
        with self.lock:
            return [record for (r, _), record in table.items() if r == region]

    def all_endpoints(self) -> list[Endpoint]:
        with self.lock:
            return list(self.endpoints.values())

    # -- the shared plumbing -------------------------------------------------------------------

    def _add(self, table: dict, record: Record, noun: str | None = None) -> Record:
        with self.lock:
            if (record.region, record.name) in table:
                # "Cannot create already existing model "arn:..."." (issues: astronomer-providers
                # #1055; endpoint configuration: awslabs/spot-tagging-bot #2; endpoint:
                # ministryofjustice/modernisation-platform-environments #9383)
                raise EndpointRequestError(
                    f'Cannot create already existing {noun or record.KIND} "{record.arn}".'
                )
            table[(record.region, record.name)] = record
            self.lock.changed(record)
        return record

    def _get(self, table: dict, region: str, name: str, noun: str, kind=Model) -> Record:
        with self.lock:
            if (region, name) not in table:
                # "Could not find model "arn:..."." (aws/sagemaker-python-sdk #2112); the same
                # prefix for endpoint configurations ([code] the k8s operator's clientwrapper).
                arn = sagemaker_arn(region, kind.KIND, name)
                raise EndpointRequestError(f'Could not find {noun} "{arn}".')
            return table[(region, name)]

    def _delete(self, table: dict, record: Record) -> None:
        with self.lock:
            table.pop((record.region, record.name), None)
            record.deleted = True
            self.lock.changed(record)

"""InvokeEndpoint latency through the local cloud vs straight to the model server behind it:
p50/p99 over sequential keep-alive requests of one JPEG, in the same run, against the same
instance (a one-instance endpoint), the paths interleaved request by request so that all see
the same machine. Measured for the project's model (``--arch``, random weights) and for a
handler that answers at once (``echo``), which leaves only the paths' own cost.

    python -m bench.endpoint_latency [--arch resnet50] [--requests 100]

Paths: ``direct`` (httpx to the instance's /invocations), ``local_cloud_http`` (httpx to the
local cloud's InvokeEndpoint with a SigV4-shaped header: the front door, routing and the
forward, without botocore), ``local_cloud_boto3`` (what a client sees: botocore signs and
parses each request, which AWS's clients pay too). ``overhead_latency_avg_ms`` is the local
cloud's own OverheadLatency metric (the handler's time besides the model's).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import boto3
import httpx
import torch

from bench.serving import sample_jpeg
from ml.model import ModelConfig, build_model
from ml.train import export_artifact
from ops.artifacts import pack_artifact
from ops.localcloud.app import LocalCloud
from ops.localcloud.sagemaker import SageMakerService

BUCKET = "bench-endpoints"
SIGNED = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/sagemaker/aws4_request"
}
ECHO = """
def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    return body


def predict_fn(data, model):
    return len(data)


def output_fn(prediction, accept):
    return str(prediction)
"""


def percentiles(times: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(times, n=100)
    return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(cuts[98], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    torch.manual_seed(0)
    jpeg = sample_jpeg()
    config = ModelConfig(arch=args.arch, num_classes=133)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / args.arch
        export_artifact(
            build_model(config), config, [f"breed {i}" for i in range(133)], 224, model_dir
        )
        echo_dir = Path(tmp) / "echo"
        (echo_dir / "code").mkdir(parents=True)
        (echo_dir / "code" / "inference.py").write_text(ECHO)
        cloud = LocalCloud(Path(tmp) / "home", persist=False).start()
        try:
            results = {
                name: measure(
                    cloud,
                    name,
                    pack_artifact(folder, Path(tmp) / f"{name}.tar.gz"),
                    jpeg,
                    args.requests,
                )
                for name, folder in ((args.arch, model_dir), ("echo", echo_dir))
            }
        finally:
            cloud.stop()
    print(json.dumps({"jpeg_bytes": len(jpeg), **results}, indent=1))


def measure(cloud: LocalCloud, name: str, archive: Path, jpeg: bytes, requests: int) -> dict:
    def client(service: str):
        return boto3.client(
            service,
            endpoint_url=cloud.url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )

    s3, sm, runtime = client("s3"), client("sagemaker"), client("sagemaker-runtime")
    if not s3.list_buckets()["Buckets"]:
        s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(archive), BUCKET, f"{name}/model.tar.gz")
    container = {"Image": "local/inference", "ModelDataUrl": f"s3://{BUCKET}/{name}/model.tar.gz"}
    sm.create_model(ModelName=name, PrimaryContainer=container)
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1}
    variant["InstanceType"] = "ml.m5.xlarge"
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )
    service = cloud.service(SageMakerService)
    instance = service.endpoints.endpoint("us-east-1", name).fleets["AllTraffic"].instances[0]
    headers = {"Content-Type": "image/jpeg"}
    paths = {
        "direct": lambda http: http.post(
            f"{instance.url}/invocations", content=jpeg, headers=headers
        ),
        "local_cloud_http": lambda http: http.post(
            f"{cloud.url}/endpoints/{name}/invocations", content=jpeg, headers={**headers, **SIGNED}
        ),
        "local_cloud_boto3": lambda http: runtime.invoke_endpoint(
            EndpointName=name, Body=jpeg, ContentType="image/jpeg"
        )["Body"].read(),
    }
    times: dict[str, list[float]] = {path: [] for path in paths}
    with httpx.Client(timeout=60) as http:
        for index in range(requests + 5):
            for path, call in paths.items():
                started = time.perf_counter()
                answer = call(http)
                if isinstance(answer, httpx.Response):
                    answer.raise_for_status()
                if index >= 5:  # warm-up requests are not counted
                    times[path].append((time.perf_counter() - started) * 1000)
    time.sleep(1.5)  # the metrics of the last second are published
    points = client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="OverheadLatency",
        Dimensions=[
            {"Name": "EndpointName", "Value": name},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        StartTime=time.time() - 3600,
        EndTime=time.time() + 60,
        Period=3600,
        Statistics=["Average"],
    )["Datapoints"]
    sm.delete_endpoint(EndpointName=name)
    direct = statistics.median(times["direct"])
    return {
        **{path: percentiles(values) for path, values in times.items()},
        "p50_added_ms": {
            path: round(statistics.median(values) - direct, 2)
            for path, values in times.items()
            if path != "direct"
        },
        "overhead_latency_avg_ms": round(points[0]["Average"] / 1000, 3) if points else None,
    }


if __name__ == "__main__":
    main()

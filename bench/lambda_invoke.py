"""Lambda Invoke through the local cloud: cold and warm latency (p50/p99), the local cloud's
own overhead per warm invoke, and the memory of an execution environment, in one run.

    python -m bench.lambda_invoke [--warm 200] [--cold 20]

- ``cold``: each invoke after a configuration change (a new environment variable value), so
  no environment can be reused: process start, awslambdaric, the handler's import, then the
  invocation.
- ``warm``: sequential invokes of one function whose environment is up.
- ``overhead``: a warm invoke's client-side time minus the time the handler itself measured
  (its body runs in ~0 ms): the front door, counting, assignment, the Runtime API hop
  (``invocation/next`` answered, the response posted back) and boto3's signing and parsing.
  ``report_duration`` is the REPORT line's Duration (delivery to the runtime until its answer).
- ``memory``: VmRSS of an idle environment for a handler importing nothing and for the
  project's handler (lambda_src, which imports boto3 at init).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

from ops.localcloud import control
from ops.localcloud.app import LocalCloud
from ops.localcloud.lambda_ import LambdaService

TRIVIAL = """\
import time

def handler(event, context):
    started = time.perf_counter()
    answer = {"n": event.get("n")}
    return {"handler_ms": (time.perf_counter() - started) * 1000, **answer}
"""
LAMBDA_SRC = Path(__file__).resolve().parent.parent / "lambda_src" / "handler.py"


def percentiles(times: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(times, n=100) if len(times) > 1 else times * 99
    return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(cuts[98], 2)}


def zipped(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(warm: int, cold: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        cloud = LocalCloud(Path(home), persist=False).start()
        try:
            lam = boto3.client(
                "lambda",
                endpoint_url=cloud.url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
                config=Config(retries={"total_max_attempts": 1}),
            )

            def create(name: str, files: tuple[str, str], handler: str, env=None) -> None:
                lam.create_function(
                    FunctionName=name,
                    Runtime="python3.11",
                    Role=control.LOCAL_ROLE_ARN,
                    Handler=handler,
                    Code={"ZipFile": zipped(*files)},
                    Timeout=30,
                    MemorySize=512,
                    Environment={"Variables": env or {"ENDPOINT_NAME": "bench"}},
                )

            create("trivial", ("app.py", TRIVIAL), "app.handler")
            cold_ms = []
            for i in range(cold):
                lam.update_function_configuration(
                    FunctionName="trivial", Environment={"Variables": {"ROUND": str(i)}}
                )
                started = time.perf_counter()
                lam.invoke(FunctionName="trivial", Payload=b'{"n": 0}')
                cold_ms.append((time.perf_counter() - started) * 1000)

            lam.invoke(FunctionName="trivial", Payload=b"{}")  # up and warm
            warm_ms, handler_ms, report_ms = [], [], []
            for i in range(warm):
                started = time.perf_counter()
                answer = lam.invoke(
                    FunctionName="trivial", Payload=json.dumps({"n": i}).encode(), LogType="Tail"
                )
                body = json.loads(answer["Payload"].read())
                warm_ms.append((time.perf_counter() - started) * 1000)
                handler_ms.append(body["handler_ms"])
                tail = base64.b64decode(answer["LogResult"]).decode()
                report_ms.append(float(re.search(r"\tDuration: ([\d.]+) ms", tail).group(1)))
            overhead = [total - inside for total, inside in zip(warm_ms, handler_ms, strict=True)]

            create("project", ("handler.py", LAMBDA_SRC.read_text()), "handler.handler")
            lam.invoke(FunctionName="project", Payload=b"{}")  # a 400 answer; the env is up
            environments = cloud.service(LambdaService).environments.alive()
            time.sleep(0.5)
            memory = {
                name: round(
                    statistics.mean(
                        rss_mb(e.child.pid) for e in environments if e.spec.name == name
                    ),
                    1,
                )
                for name in ("trivial", "project")
            }
        finally:
            cloud.stop()
    return {
        "cold_invoke": percentiles(cold_ms),
        "warm_invoke": percentiles(warm_ms),
        "local_cloud_overhead_per_warm_invoke": percentiles(overhead),
        "report_duration": percentiles(report_ms),
        "handler_time": percentiles(handler_ms),
        "environment_rss_mb": memory,
        "requests": {"cold": cold, "warm": warm},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--cold", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(run(args.warm, args.cold), indent=2))


if __name__ == "__main__":
    main()

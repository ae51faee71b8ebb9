"""A real model-server process serving the session's trained model, the hostile image server it
may fetch from, and SageMaker runtime's wire format in front of it for the Lambda handler."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ops.model_server import pack_artifact
from tests.conftest import REPO
from tests.security.hostile import HOSTILE_HOST, HostileImageServer, RuntimeShim

URL_BUDGET_S = 2.0
URL_MAX_BYTES = 2 * 1024 * 1024


@dataclass
class ModelServer:
    url: str
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        if self.process.poll() is not None:
            return False
        return httpx.get(f"{self.url}/ping", timeout=10).status_code == 200


@pytest.fixture(scope="package")
def hostile() -> Iterator[str]:
    server = HostileImageServer()
    yield server.start()
    server.stop()


@pytest.fixture(scope="package")
def model_server(
    trained: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelServer]:
    folder = tmp_path_factory.mktemp("hostile-model")
    artifact = pack_artifact(trained[0] / "model", folder / "model.tar.gz")
    env = {
        **os.environ,
        "INFERENCE_URL_ALLOW_NETWORKS": f"{HOSTILE_HOST}/32",
        "INFERENCE_URL_TIMEOUT_S": str(URL_BUDGET_S),
        "INFERENCE_URL_MAX_BYTES": str(URL_MAX_BYTES),
        "MODEL_SERVER_LOG_LEVEL": "warning",
    }
    log = folder / "server.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "ops.model_server", str(artifact), "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    first_line = process.stdout.readline()
    assert first_line.startswith("listening on "), log.read_text()
    yield ModelServer(first_line.split()[-1], process, log)
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="package")
def runtime_endpoint(model_server: ModelServer) -> Iterator[str]:
    shim = RuntimeShim(model_server.url)
    yield shim.start()
    shim.stop()

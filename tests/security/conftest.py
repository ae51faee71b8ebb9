"""A real model-server process serving the session's trained model, the hostile image server it
may fetch from, and SageMaker runtime's wire format in front of it for the Lambda handler."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import model_server_process
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
    settings = {
        "INFERENCE_URL_ALLOW_NETWORKS": f"{HOSTILE_HOST}/32",
        "INFERENCE_URL_TIMEOUT_S": str(URL_BUDGET_S),
        "INFERENCE_URL_MAX_BYTES": str(URL_MAX_BYTES),
        "MODEL_SERVER_LOG_LEVEL": "warning",
    }
    folder = tmp_path_factory.mktemp("hostile-model")
    with model_server_process(trained[0], folder, settings) as (url, process, log):
        yield ModelServer(url, process, log)


@pytest.fixture(scope="package")
def runtime_endpoint(model_server: ModelServer) -> Iterator[str]:
    shim = RuntimeShim(model_server.url)
    yield shim.start()
    shim.stop()

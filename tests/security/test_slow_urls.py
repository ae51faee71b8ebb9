"""Slow URLs cannot starve a model server: the excess of concurrent fetches is refused at once
and image requests are served while the slow fetches wait out their budget."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.conftest import REPO
from tests.security.conftest import ModelServer

pytestmark = pytest.mark.slow
SLOW_REQUESTS = 20  # more than the default 8 concurrent fetches an instance allows


def test_slow_urls_get_429_beyond_the_fetch_limit_and_images_are_still_served(
    model_server: ModelServer, hostile: str
) -> None:
    image = (REPO / "tests" / "corpus" / "images" / "jpeg-valid-baseline.jpg").read_bytes()
    finished: list[tuple[str, int]] = []
    lock = threading.Lock()
    all_sent = threading.Barrier(SLOW_REQUESTS + 1)

    def slow() -> None:
        body = json.dumps({"url": f"{hostile}/hostile/stall-before-headers"})
        all_sent.wait()
        response = httpx.post(
            f"{model_server.url}/invocations",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        with lock:
            finished.append(("slow", response.status_code))

    threads = [threading.Thread(target=slow) for _ in range(SLOW_REQUESTS)]
    for thread in threads:
        thread.start()
    all_sent.wait()
    # Once some slow requests were refused, the fetch slots are certainly all taken.
    with httpx.Client(timeout=30) as client:
        while not any(status == 429 for _, status in list(finished)):
            assert client.get(f"{model_server.url}/ping").status_code == 200
        answer = client.post(
            f"{model_server.url}/invocations",
            content=image,
            headers={"Content-Type": "image/jpeg"},
        )
    with lock:
        finished.append(("image", answer.status_code))
    for thread in threads:
        thread.join()
    assert answer.status_code == 200
    statuses = [status for kind, status in finished if kind == "slow"]
    assert statuses.count(429) >= SLOW_REQUESTS - 8 and set(statuses) <= {400, 429}
    # The image was answered while the fetches holding the slots were still waiting.
    order = [kind for kind, status in finished if kind == "image" or status == 400]
    assert order[0] == "image", finished
    assert model_server.alive()


def test_fetch_time_budget_covers_the_whole_request(
    model_server: ModelServer, hostile: str
) -> None:
    response = httpx.post(
        f"{model_server.url}/invocations",
        content=json.dumps({"url": f"{hostile}/hostile/drip-body"}),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    assert "took longer than 2 s" in response.json()["error"]

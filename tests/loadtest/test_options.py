"""Without --time-scale, a run against the local cloud takes the cloud's own time scale (its
health check says it), and the shape paces the profile by the resolved one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.options import resolve_time_scale
from ops.localcloud.app import LocalCloud

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fast_cloud(tmp_path_factory):
    cloud = LocalCloud(tmp_path_factory.mktemp("fastcloud"), time_scale=10.0).start()
    yield cloud
    cloud.stop()


def test_the_local_clouds_own_time_scale_unless_one_is_given(fast_cloud, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", fast_cloud.url)
    assert resolve_time_scale("local", None) == 10.0
    assert resolve_time_scale("local", 3.0) == 3.0
    assert resolve_time_scale("aws", None) == 1.0


def test_no_local_cloud_answering_means_scale_1(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    assert resolve_time_scale("local", None) == 1.0


# Importing Locust patches the process with gevent, so the shape runs in a child.
SHAPE_AT = """
import sys, time
from argparse import Namespace
from types import SimpleNamespace
from locust.env import Environment
from loadtest import hooks
from loadtest.shapes import ScalingShape

def shape_at(wall_seconds, time_scale):
    options = Namespace(shape="spike", base_users=1, peak_users=5, warmup=30.0, hold=60.0,
                        tail=0.0, steps=1, time_scale=None)
    environment = Environment(parsed_options=options)
    if time_scale is not None:
        hooks._SETTINGS[environment] = SimpleNamespace(time_scale=time_scale)
    shape = ScalingShape()
    shape.runner = SimpleNamespace(environment=environment)
    shape.start_time = time.perf_counter() - wall_seconds
    return shape.tick()

print([shape_at(1.0, 60.0), shape_at(1.0, 1.0), shape_at(1.0, None)])
"""


def test_the_shape_paces_the_profile_by_the_resolved_time_scale():
    done = subprocess.run([sys.executable, "-c", SHAPE_AT], cwd=REPO, capture_output=True,
                          text=True, check=False, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # 1 wall second: policy second 60 at scale 60 (the hold's peak), second 1 at scale 1
    # (the warm-up's base); with the options refused (no settings), no load.
    assert done.stdout.strip() == "[(5, 5.0), (1, 5.0), None]"

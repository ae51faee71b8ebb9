"""The local cloud's S3 outlives a restart (moto alone keeps it in memory).

Real processes (`ops local up --detach` / `ops local down`): moto's state is per process, so
only a new process shows that the objects came back from disk."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.localcloud.conftest import run_ops


@pytest.fixture
def restartable(tmp_path):
    env = {**os.environ, "DOGOPS_HOME": str(tmp_path)}

    def ops(*args: str) -> str:
        done = run_ops(*args, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def up():
        ops("local", "up", "--detach")
        url = json.loads(ops("local", "status", "--json"))["url"]
        return boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    yield up, lambda: ops("local", "down"), tmp_path
    run_ops("local", "down", env=env)


@pytest.mark.slow
def test_objects_survive_a_restart_and_deletions_stick(restartable):
    up, down, home = restartable
    s3 = up()
    s3.create_bucket(Bucket="kept")
    s3.put_object(Bucket="kept", Key="models/a/model.tar.gz", Body=b"\x1f\x8b" + b"x" * 10_000)
    s3.put_object(
        Bucket="kept",
        Key="../odd key",
        Body=b"odd",
        ContentType="text/plain",
        Metadata={"origin": "test"},
    )
    s3.put_object(Bucket="kept", Key="gone", Body=b"soon deleted")
    down()

    s3 = up()
    model = s3.get_object(Bucket="kept", Key="models/a/model.tar.gz")["Body"].read()
    assert model == b"\x1f\x8b" + b"x" * 10_000
    odd = s3.get_object(Bucket="kept", Key="../odd key")
    assert odd["Body"].read() == b"odd"
    assert odd["ContentType"] == "text/plain"
    assert odd["Metadata"] == {"origin": "test"}
    s3.delete_object(Bucket="kept", Key="gone")
    down()

    s3 = up()
    with pytest.raises(ClientError):
        s3.head_object(Bucket="kept", Key="gone")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="kept")["Contents"]]
    assert sorted(keys) == ["../odd key", "models/a/model.tar.gz"]
    # Saved under hashed names only: a key cannot climb out of the folder.
    assert len(list((home / "s3" / "objects").iterdir())) == 2

"""Where `ops train` puts its data in S3, and `ops serve` fetching a model from S3."""

from __future__ import annotations

import shutil
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from ops import s3, staging
from ops.cli import app
from ops.errors import OpsError
from ops.synth import synthesize
from ops.target import Target

BUCKET = "dogops-test"


@pytest.fixture
def target():
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=BUCKET)
        yield Target("aws", session, None, BUCKET, "arn:aws:iam::123456789012:role/x")


def keys(target: Target, uri: str) -> set[str]:
    _, prefix = s3.parse_s3_uri(uri)
    listed = target.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    return {item["Key"].removeprefix(f"{prefix}/") for item in listed.get("Contents", [])}


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_two_folders_with_the_same_name_do_not_share_a_prefix(target, tmp_path):
    first, second = tmp_path / "a" / "synth", tmp_path / "b" / "synth"
    synthesize(first, classes=2, per_class=2, size=32, seed=0)
    synthesize(second, classes=3, per_class=2, size=32, seed=1)
    uris = [staging.stage_data(target, folder, lambda *_: None) for folder in (first, second)]
    assert uris[0] != uris[1]
    assert all(uri.startswith(f"s3://{BUCKET}/data/synth-") for uri in uris)
    # Each prefix holds exactly its own folder: nothing overwritten, nothing mixed in.
    assert keys(target, uris[0]) == files(first)
    assert keys(target, uris[1]) == files(second)


def test_the_same_content_maps_to_the_same_prefix_and_uploads_nothing_again(target, tmp_path):
    original = tmp_path / "here" / "synth"
    synthesize(original, classes=2, per_class=2, size=32, seed=0)
    copy = tmp_path / "there" / "synth"
    shutil.copytree(original, copy)
    events: list[tuple[str, dict]] = []
    uri = staging.stage_data(target, original, lambda *event: events.append(event))
    assert staging.stage_data(target, copy, lambda *event: events.append(event)) == uri
    uploaded = [info for event, info in events if event == "uploaded"]
    assert uploaded[1]["uploaded"] == 0 and uploaded[1]["skipped"] == len(files(original))


def test_an_edited_folder_gets_a_new_prefix_without_its_deleted_files(target, tmp_path):
    folder = tmp_path / "synth"
    synthesize(folder, classes=2, per_class=3, size=32, seed=0)
    before = staging.stage_data(target, folder, lambda *_: None)
    removed = next((folder / "train").rglob("*.jpg"))
    removed.unlink()
    after = staging.stage_data(target, folder, lambda *_: None)
    assert after != before
    assert removed.relative_to(folder).as_posix() not in keys(target, after)


def test_a_file_changed_in_place_changes_the_digest(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "x.jpg").write_bytes(b"one")
    before = s3.tree_digest(folder)
    (folder / "x.jpg").write_bytes(b"two")  # same name, same size
    assert s3.tree_digest(folder) != before


def test_download_file_fetches_an_object_and_names_a_missing_one(target, tmp_path):
    target.client("s3").put_object(Bucket=BUCKET, Key="models/m/model.tar.gz", Body=b"model")
    client = target.client("s3")
    path = s3.download_file(f"s3://{BUCKET}/models/m/model.tar.gz", tmp_path / "m", client=client)
    assert path.read_bytes() == b"model"
    with pytest.raises(OpsError, match=f"could not download s3://{BUCKET}/models/none"):
        s3.download_file(f"s3://{BUCKET}/models/none", tmp_path / "n", client=client)


def test_serve_reports_a_missing_s3_model_in_one_line(target, tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(f'{{"s3_bucket_name": "{BUCKET}", "sagemaker_role_arn": "arn:x"}}')
    uri = f"s3://{BUCKET}/models/none/output/model.tar.gz"
    result = CliRunner().invoke(
        app, ["serve", uri, "--target", "aws", "--outputs", str(outputs), "--port", "0"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: could not download {uri}")

"""`ops` driven through Typer's CliRunner: exit codes and what the user reads."""

from __future__ import annotations

import json
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from ops.cli import app

runner = CliRunner()


def test_help_lists_the_command_groups() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("data", "serve", "version"):
        assert command in result.output


def test_version_prints_the_installed_version_as_json() -> None:
    result = runner.invoke(app, ["version", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["version"] == "0.1.0"


def test_synth_writes_the_layout_and_reports_it(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "data",
            "synth",
            str(tmp_path / "d"),
            "--classes",
            "3",
            "--per-class",
            "4",
            "--size",
            "32",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["images"] == {"train": 12, "valid": 6, "test": 6}
    assert len(list((tmp_path / "d" / "train").iterdir())) == 3


def test_validate_reports_a_bad_layout_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "train" / "001.A").mkdir(parents=True)
    result = runner.invoke(app, ["data", "validate", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"error: {tmp_path} has no 'valid/' folder (expected train, valid, test)"
    )
    assert "Traceback" not in result.output


def test_invalid_option_values_are_usage_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "synth", str(tmp_path), "--classes", "1"])
    assert result.exit_code == 2
    assert "--classes" in result.output


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    result = runner.invoke(
        app,
        [
            "data",
            "synth",
            str(tmp_path / "src"),
            "--classes",
            "2",
            "--per-class",
            "3",
            "--size",
            "32",
        ],
    )
    assert result.exit_code == 0
    return tmp_path / "src"


def zip_folder(folder: Path, archive: Path, top: str = "dogImages") -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{top}/{path.relative_to(folder)}")
    return archive


@pytest.fixture
def web_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = partial(QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_downloads_unpacks_and_validates_an_archive(
    small_set: Path, tmp_path: Path, web_root: tuple[Path, str]
) -> None:
    root, url = web_root
    zip_folder(small_set, root / "dogImages.zip")
    dest = tmp_path / "fetched"
    result = runner.invoke(
        app, ["data", "fetch", str(dest), "--source", f"{url}/dogImages.zip", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["classes"] == 2 and report["images"] == {"train": 6, "valid": 4, "test": 4}
    assert Path(report["root"]) == dest / "dogImages"
    assert not list(tmp_path.glob("*.part"))


def test_fetch_takes_a_local_zip_or_folder(small_set: Path, tmp_path: Path) -> None:
    archive = zip_folder(small_set, tmp_path / "local.zip")
    from_zip = runner.invoke(app, ["data", "fetch", str(tmp_path / "a"), "--source", str(archive)])
    assert from_zip.exit_code == 0, from_zip.output
    from_folder = runner.invoke(
        app, ["data", "fetch", str(tmp_path / "b"), "--source", str(small_set)]
    )
    assert from_folder.exit_code == 0, from_folder.output
    assert sorted(p.name for p in (tmp_path / "b" / "valid").iterdir()) == sorted(
        p.name for p in (small_set / "valid").iterdir()
    )


def test_fetch_reports_http_errors_and_leaves_no_partial_file(
    tmp_path: Path, web_root: tuple[Path, str]
) -> None:
    result = runner.invoke(
        app, ["data", "fetch", str(tmp_path / "d"), "--source", f"{web_root[1]}/nope.zip"]
    )
    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr
    assert not list(tmp_path.glob("*.zip*"))


def test_fetch_refuses_an_archive_that_escapes_its_folder(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
    result = runner.invoke(app, ["data", "fetch", str(tmp_path / "d"), "--source", str(archive)])
    assert result.exit_code == 1
    assert "outside" in result.stderr
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_upload_sends_the_tree_to_s3_and_skips_what_is_there(small_set: Path) -> None:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="dogs")
        first = runner.invoke(app, ["data", "upload", str(small_set), "s3://dogs/data", "--json"])
        assert first.exit_code == 0, first.output
        assert json.loads(first.stdout) == {"uri": "s3://dogs/data", "uploaded": 14, "skipped": 0}
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="dogs")["Contents"]}
        assert "data/train/001.Affenpinscher/Affenpinscher_00001.jpg" in keys and len(keys) == 14

        s3.delete_object(Bucket="dogs", Key="data/test/002.Afghan_hound/Afghan_hound_00001.jpg")
        second = runner.invoke(app, ["data", "upload", str(small_set), "s3://dogs/data", "--json"])
        assert json.loads(second.stdout) == {"uri": "s3://dogs/data", "uploaded": 1, "skipped": 13}


def test_upload_to_a_missing_bucket_is_a_clear_error(small_set: Path) -> None:
    with mock_aws():
        result = runner.invoke(app, ["data", "upload", str(small_set), "s3://no-such-bucket/data"])
    assert result.exit_code == 1
    assert "NoSuchBucket" in result.stderr


def test_serve_refuses_a_folder_that_is_not_an_artifact(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", str(tmp_path), "--port", "0"])
    assert result.exit_code == 1
    assert "no code/inference.py" in result.stderr


def test_train_summary_and_json_show_the_final_models_test_accuracy(
    small_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ops.cli import train as train_cli
    from ops.training import TrainResult

    def trained(*_: object) -> TrainResult:
        return TrainResult(
            target="local",
            data_uri="s3://b/data/d-0123456789ab",
            tuning_job="hpo",
            trials=[],
            best_hyperparameters={"learning-rate": "0.003", "batch-size": "16"},
            best_objective=0.2,
            training_job="train",
            instance_count=1,
            model_artifact="s3://b/models/train/output/model.tar.gz",
            metrics={"Test Loss": 0.2, "Test Accuracy": 29 / 30},
            seconds=1.0,
        )

    monkeypatch.setenv("DOGOPS_HOME", str(tmp_path))
    monkeypatch.setattr(train_cli, "resolve", lambda *_: None)
    monkeypatch.setattr(train_cli.training, "train", trained)
    shown = runner.invoke(app, ["train", "--data", str(small_set)])
    assert shown.exit_code == 0, shown.output
    assert "test accuracy: 96.7%" in shown.stdout
    as_json = runner.invoke(app, ["train", "--data", str(small_set), "--json"])
    assert json.loads(as_json.stdout)["test_accuracy"] == pytest.approx(29 / 30)

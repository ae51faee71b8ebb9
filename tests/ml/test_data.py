from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from ml.data import (
    DataLayoutError,
    DogImages,
    display_name,
    eval_transform,
    load_rgb,
    validate_layout,
)
from ops.synth import synthesize


def test_display_name_strips_the_number_prefix() -> None:
    assert display_name("001.Affenpinscher") == "Affenpinscher"
    assert display_name("045.Cardigan_welsh_corgi") == "Cardigan welsh corgi"
    assert display_name("plain") == "plain"


def test_synthetic_set_is_deterministic_and_seeded(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", classes=3, per_class=4, size=32, seed=7)
    synthesize(tmp_path / "b", classes=3, per_class=4, size=32, seed=7)
    synthesize(tmp_path / "c", classes=3, per_class=4, size=32, seed=8)
    assert a.counts == {"train": 12, "valid": 6, "test": 6}
    assert a.classes == ("001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jpg"))
    assert len(files) == 24
    assert all(
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files
    )
    assert any(
        (tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in files
    )


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    synthesize(tmp_path / "d", classes=2, per_class=2, size=32)
    return tmp_path / "d"


def test_layout_without_a_split_is_rejected(small_set: Path) -> None:
    shutil.rmtree(small_set / "valid")
    with pytest.raises(DataLayoutError, match="no 'valid/' folder"):
        validate_layout(small_set)


def test_layout_with_mismatched_classes_is_rejected(small_set: Path) -> None:
    (small_set / "test" / "099.Extra").mkdir()
    with pytest.raises(DataLayoutError, match=r"'test/' classes differ.*099.Extra"):
        validate_layout(small_set)


def test_layout_with_an_empty_training_class_is_rejected(small_set: Path) -> None:
    for f in (small_set / "train" / "001.Affenpinscher").iterdir():
        f.unlink()
    with pytest.raises(DataLayoutError, match="without images"):
        validate_layout(small_set)


def test_grey_png_and_truncated_jpeg_load_as_rgb_for_training(tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    Image.new("L", (40, 30), 128).save(grey)
    assert load_rgb(grey).shape == (3, 30, 40)

    buffer = io.BytesIO()
    noise = torch.randint(0, 255, (48, 64, 3), dtype=torch.uint8).numpy()
    Image.fromarray(noise, "RGB").save(buffer, "JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    image = load_rgb(truncated)
    assert image.shape == (3, 48, 64) and image.dtype == torch.uint8


def test_an_undecodable_training_file_is_named_in_the_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(OSError, match=r"notes\.jpg"):
        load_rgb(bad)


def test_dataset_labels_follow_sorted_class_folders(small_set: Path) -> None:
    layout = validate_layout(small_set)
    dataset = DogImages(small_set, "valid", layout.classes, eval_transform(32))
    image, label = dataset[len(dataset) - 1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label == 1
    # ImageNet normalisation: values centred near zero, not in [0, 1].
    assert image.min() < 0

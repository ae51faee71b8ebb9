"""A small synthetic data set in the dogImages layout, for tests and the quickstart.

Each class has its own background hue and shape (disc, square, triangle, stripes, ring, cross),
drawn at a random position, scale and tint over per-pixel noise, so the classes differ visibly
but no two images are identical. Every image is seeded from (seed, split, class, index), so the
same arguments always give the same files, whatever order they are written in.
"""

from __future__ import annotations

import colorsys
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ml.layout import SPLITS, Layout, validate_layout

BREEDS = (
    "Affenpinscher",
    "Afghan_hound",
    "Airedale_terrier",
    "Akita",
    "Alaskan_malamute",
    "American_eskimo_dog",
    "American_foxhound",
    "American_staffordshire_terrier",
    "American_water_spaniel",
    "Anatolian_shepherd_dog",
    "Australian_cattle_dog",
    "Australian_shepherd",
    "Australian_terrier",
    "Basenji",
    "Basset_hound",
    "Beagle",
)
SHAPES = ("disc", "square", "triangle", "stripes", "ring", "cross")


def class_folders(count: int) -> list[str]:
    """``001.Affenpinscher`` ... as in the real data set; generic names past the 16 listed."""
    return [
        f"{i + 1:03d}.{BREEDS[i] if i < len(BREEDS) else f'Breed_{i + 1:03d}'}"
        for i in range(count)
    ]


def _rng(seed: int, split: str, label: int, index: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{split}/{label}/{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return int(r * 255), int(g * 255), int(b * 255)


def render(label: int, num_classes: int, rng: np.random.Generator, size: int) -> Image.Image:
    """One image of class ``label``: class hue and shape, random placement and noise."""
    width = int(size * rng.uniform(0.85, 1.25))
    height = int(size * rng.uniform(0.85, 1.25))
    hue = label / num_classes + rng.normal(0, 0.02)
    background = np.array(_rgb(hue, 0.55, 0.85), dtype=np.float32)
    noise = rng.normal(0, 18, size=(height, width, 3))
    pixels = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    fill = _rgb(hue + 0.5, 0.8, rng.uniform(0.2, 0.5))
    radius = min(width, height) * rng.uniform(0.2, 0.35)
    cx = rng.uniform(radius, width - radius)
    cy = rng.uniform(radius, height - radius)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    shape = SHAPES[label % len(SHAPES)]
    if shape == "disc":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon(
            [(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=fill
        )
    elif shape == "stripes":
        step = max(4, int(radius / 3))
        for x in range(0, width, 2 * step):
            draw.rectangle((x, 0, x + step, height), fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(3, int(radius / 3)))
    else:
        bar = radius / 3
        draw.rectangle((cx - radius, cy - bar, cx + radius, cy + bar), fill=fill)
        draw.rectangle((cx - bar, cy - radius, cx + bar, cy + radius), fill=fill)
    return image


def synthesize(
    out: Path, classes: int = 5, per_class: int = 24, size: int = 128, seed: int = 0
) -> Layout:
    """Write ``per_class`` training images per class (a quarter as many, at least 2, for
    ``valid`` and ``test``) as JPEG files under ``out`` and return the validated layout."""
    if classes < 2:
        raise ValueError("a classifier needs at least 2 classes")
    if per_class < 1 or size < 16:
        raise ValueError("per_class must be >= 1 and size >= 16")
    folders = class_folders(classes)
    counts = {"train": per_class, "valid": max(2, per_class // 4), "test": max(2, per_class // 4)}
    for split in SPLITS:
        for label, folder in enumerate(folders):
            target = out / split / folder
            target.mkdir(parents=True, exist_ok=True)
            breed = folder.split(".", 1)[1]
            for index in range(counts[split]):
                image = render(label, classes, _rng(seed, split, label, index), size)
                image.save(target / f"{breed}_{index + 1:05d}.jpg", quality=90)
    return validate_layout(out)


def sample_jpeg() -> bytes:
    """One request's image, the same everywhere it is sent (the serving benchmarks, the load
    test): a 500x375 synthetic dog photo, JPEG at quality 90."""
    import io

    image = render(0, 5, np.random.default_rng(0), 400).resize((500, 375))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()

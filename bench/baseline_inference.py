"""Seed-style serving handler (PIL decode, transforms v1, no channels_last), used as the
baseline artifact's code/inference.py by bench/serving.py. It imports the network from the
artifact's copied ml/ package so both servers run identical weights."""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms

from ml.data import IMAGENET_MEAN, IMAGENET_STD
from ml.model import BreedClassifier, ModelConfig


def model_fn(model_dir: str):
    meta = json.loads((Path(model_dir) / "model_config.json").read_text())
    config = ModelConfig(meta["arch"], meta["num_classes"], meta["hidden"], meta["dropout"])
    network = BreedClassifier(config)
    network.load_state_dict(torch.load(Path(model_dir) / "model.pth", weights_only=True))
    network.eval()
    size = meta["image_size"]
    transform = transforms.Compose(
        [
            transforms.Resize(round(size * 256 / 224)),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    return network, transform, meta["class_names"]


def input_fn(request_body: bytes, content_type: str):
    return Image.open(io.BytesIO(request_body)).convert("RGB")


def predict_fn(image, model):
    network, transform, names = model
    with torch.no_grad():
        probabilities = network(transform(image).unsqueeze(0)).softmax(1)[0]
    top = probabilities.topk(5)
    return {
        "predictions": [
            {"index": int(i), "label": names[int(i)], "probability": float(p)}
            for p, i in zip(top.values, top.indices, strict=True)
        ]
    }


def output_fn(prediction, accept):
    return json.dumps(prediction)

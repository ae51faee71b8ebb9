"""The metric lines ml/train.py prints, as SageMaker MetricDefinitions (name + regex).

Tuning jobs read their objective through these regexes, on AWS and in the local cloud; the
tests parse real training output with them.
"""

from __future__ import annotations

import re

_FLOAT = r"([-+]?(?:[0-9]*\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?|nan)"
METRIC_NAMES = (
    "Train Loss",
    "Validation Loss",
    "Validation Accuracy",
    "Test Loss",
    "Test Accuracy",
)
METRIC_DEFINITIONS = [{"Name": name, "Regex": f"{name}: {_FLOAT}"} for name in METRIC_NAMES]


def parse_metrics(text: str, definitions: list[dict] | None = None) -> dict[str, list[float]]:
    """Every value each definition's regex finds in ``text``, in order of appearance."""
    found: dict[str, list[float]] = {}
    for definition in definitions or METRIC_DEFINITIONS:
        values = [float(m) for m in re.findall(definition["Regex"], text)]
        if values:
            found[definition["Name"]] = values
    return found

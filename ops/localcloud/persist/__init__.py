"""The local cloud's state across restarts.

moto keeps S3, IAM and CloudWatch Logs in memory. At an ordered stop (`ops local down`, Ctrl-C,
SIGTERM) `snapshot` saves each under ``$DOGOPS_HOME`` (``s3/``, ``iam/``, ``logs/``); at start
`restore` puts them back before the front door opens. A crash (SIGKILL, power loss) loses what
changed since the local cloud last started. SageMaker's job records are saved as they change
instead (`ops.localcloud.sagemaker.store`).

A part that cannot be restored as a whole (a bug, a damaged manifest) is moved aside to
``<part>.unrestored-<time>`` and reported, so that the next snapshot cannot overwrite it with
the half that came back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ops.localcloud.persist import iam, logs, s3

log = logging.getLogger("dogops.localcloud")


# (what, folder, restore, snapshot) for each part of moto's state that is kept.
PARTS: tuple[tuple[str, str, Callable[[Path], int], Callable[[Path], int]], ...] = (
    ("S3 objects", "s3", s3.restore, s3.snapshot),
    ("IAM entities", "iam", iam.restore, iam.snapshot),
    ("CloudWatch Logs events", "logs", logs.restore, logs.snapshot),
)


def restore(home: Path) -> None:
    for what, folder, restore_part, _ in PARTS:
        root = home / folder
        if not root.exists():
            continue
        try:
            count = restore_part(root)
        except Exception:
            aside = root.with_name(f"{folder}.unrestored-{time.strftime('%Y%m%dT%H%M%S')}")
            root.rename(aside)
            log.exception(
                "could not restore %s from %s: the local cloud starts without some of them; "
                "the saved copy was moved to %s",
                what,
                root,
                aside,
            )
        else:
            log.info("restored %d %s from %s", count, what, root)


def snapshot(home: Path) -> None:
    for what, folder, _, snapshot_part in PARTS:
        root = home / folder
        try:
            written = snapshot_part(root)
        except Exception:  # never lose the shutdown over it; say so loudly
            log.exception("could not save %s to %s", what, root)
        else:
            log.info("saved %s to %s (%d written)", what, root, written)

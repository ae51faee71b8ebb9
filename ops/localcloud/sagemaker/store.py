"""SageMaker's records on disk, so that a restart of the local cloud, or a crash, keeps
them (AWS keeps a job's record after it ends, and a name once used stays taken).

One JSON file per job, ``<root>/training-jobs/<region>/<name>.json`` and
``<root>/hyper-parameter-tuning-jobs/<region>/<name>.json``, rewritten whole (a temporary file
renamed over the old one) each time the job's status or secondary status changes. Hosting's
records (``models/``, ``endpoint-configs/``, ``endpoints/``) are kept the same way and their
file is removed when they are deleted. A file that cannot be read is reported in the local
cloud's log and left out: the record is then unknown, never half there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

from ops.jsonfile import write_atomic
from ops.localcloud.sagemaker.records import Job, TrainingJob, TuningJob

log = logging.getLogger("dogops.localcloud")
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")


def _file_part(text: str) -> str:
    """``text`` as a file or folder name: itself when plain (job names and regions are), else a
    hash, so nothing a client sends can name a path outside the store."""
    return text if _PLAIN.fullmatch(text) else hashlib.sha256(text.encode()).hexdigest()


class RecordStore:
    def __init__(self, root: Path):
        self.root = root

    def path(self, job: Job) -> Path:
        return self.root / f"{job.KIND}s" / _file_part(job.region) / f"{_file_part(job.name)}.json"

    def save(self, job: Job) -> None:
        """Write the record; one whose ``deleted`` is set (hosting's records) is removed."""
        try:
            if getattr(job, "deleted", False):
                self.path(job).unlink(missing_ok=True)
            else:
                write_atomic(self.path(job), job.to_dict())
        except Exception:  # the job goes on; the record on disk is older than it
            log.exception("could not save the record of %s %s", job.KIND, job.name)

    def load(self) -> tuple[list[TrainingJob], list[TuningJob]]:
        """Every saved record that can be read; the others are reported and left out."""
        return self.load_kind(TrainingJob), self.load_kind(TuningJob)

    def load_kind(self, kind) -> list:
        """Every saved record of ``kind`` (a class with ``KIND`` and ``from_dict``)."""
        jobs = []
        for path in sorted((self.root / f"{kind.KIND}s").glob("*/*.json")):
            try:
                jobs.append(kind.from_dict(json.loads(path.read_text())))
            except Exception as exc:
                log.error(
                    "cannot read the saved %s record %s (%s: %s); it is not restored",
                    kind.KIND,
                    path,
                    type(exc).__name__,
                    exc,
                )
        return jobs

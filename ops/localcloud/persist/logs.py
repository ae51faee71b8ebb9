"""CloudWatch Logs across restarts: groups (retention, KMS key, tags), streams and their events,
in order, with their timestamps and ingestion times.

Read from and written to moto's Logs backend directly: PutLogEvents refuses events older than
14 days (or than the group's retention), and would stamp each with a new ingestion time.
``<root>/groups.json`` lists groups and streams; each stream's events are in
``<root>/streams/<hash>.json``, named by what identifies its content (events are only ever
appended: their number and the last ingestion time), so a stream that did not change since the
last snapshot is not written again. Not kept: metric and subscription filters, resource
policies, queries. Events past a group's retention are not dropped (moto does not expire them).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path

from moto.logs.models import LogEvent, LogStream, logs_backends

from ops.jsonfile import write_atomic

log = logging.getLogger("dogops.localcloud")
MANIFEST = "groups.json"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None  # UTC, as moto keeps it (naive)


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def snapshot(root: Path) -> int:
    """Write every group and stream to ``root``; returns how many stream files were written."""
    streams_dir = root / "streams"
    streams_dir.mkdir(parents=True, exist_ok=True)
    groups = []
    written = 0
    for account, region, backend in logs_backends.iter_backends():
        for group in list(backend.groups.values()):
            streams = []
            for stream in list(group.streams.values()):
                events = list(stream.events)
                identity = [account, region, group.name, stream.log_stream_name, len(events)]
                identity.append(_time(stream.last_ingestion_time))
                file_name = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
                path = streams_dir / f"{file_name}.json"
                if not path.is_file():
                    document = [[e.timestamp, e.ingestion_time, e.message] for e in events]
                    write_atomic(path, document)
                    written += 1
                streams.append(
                    {
                        "name": stream.log_stream_name,
                        "created": _time(stream.creation_time),
                        "last_ingestion": _time(stream.last_ingestion_time),
                        "stored_bytes": stream.stored_bytes,
                        "sequence_token": stream.upload_sequence_token,
                        "file": path.name,
                    }
                )
            groups.append(
                {
                    "account": account,
                    "region": region,
                    "name": group.name,
                    "created": _time(group.creation_time),
                    "retention_in_days": group.retention_in_days,
                    "kms_key_id": group.kms_key_id,
                    "tags": backend.list_tags_for_resource(group.arn),
                    "streams": streams,
                }
            )
    write_atomic(root / MANIFEST, {"groups": groups})
    kept = {stream["file"] for group in groups for stream in group["streams"]}
    for path in streams_dir.iterdir():
        if path.name not in kept:
            path.unlink()
    return written


def restore(root: Path) -> int:
    """Put back what the last snapshot kept; returns the number of events."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        return 0
    count = 0
    for saved in manifest["groups"]:
        backend = logs_backends[saved["account"]][saved["region"]]
        group = backend.groups.get(saved["name"]) or backend.create_log_group(
            saved["name"], saved.get("tags") or {}
        )
        group.creation_time = _parse(saved["created"]) or group.creation_time
        group.retention_in_days = saved.get("retention_in_days")
        group.kms_key_id = saved.get("kms_key_id")
        for entry in saved["streams"]:
            path = root / "streams" / entry["file"]
            try:
                events = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.error(
                    "log stream %s %s: not restored, %s cannot be read (%s)",
                    saved["name"],
                    entry["name"],
                    path,
                    exc,
                )
                continue
            stream = LogStream(log_group=group, name=entry["name"])
            stream.creation_time = _parse(entry["created"]) or stream.creation_time
            stream.last_ingestion_time = _parse(entry.get("last_ingestion"))
            stream.stored_bytes = entry.get("stored_bytes", 0)
            stream.upload_sequence_token = entry.get("sequence_token", 0)
            stream.events = [
                LogEvent(ingestion, {"timestamp": timestamp, "message": message})
                for timestamp, ingestion, message in events
            ]
            group.streams[entry["name"]] = stream
            count += len(events)
    return count

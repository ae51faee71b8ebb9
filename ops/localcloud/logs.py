"""CloudWatch Logs operations the local cloud answers itself; the records stay in moto.

`FilterLogEvents`: moto ignores ``logStreamNamePrefix``, so ``aws logs filter-log-events
--log-stream-name-prefix <job>`` listed every job's events. Here the streams are chosen first
(by prefix, by name or all of the group's), moto matches the filter pattern stream by stream,
and the events are merged and paged as the service model documents FilterLogEvents: sorted by
timestamp, ingestion time and then the order they were put, oldest first unless
``startFromHead`` is false; at most ``limit`` (default 10,000) events and 1 MB a page; an opaque
``nextToken`` that names the last event returned, so events put between two calls neither
repeat nor push others out.
"""

from __future__ import annotations

from collections.abc import Iterator

from botocore.exceptions import ClientError

from ops.localcloud import wire
from ops.localcloud.routes import Route, json_routes
from ops.localcloud.service import Service
from ops.localcloud.wire import AwsError, Call

TARGET_PREFIX = "Logs_20140328"
DEFAULT_LIMIT = 10_000  # "The default is 10,000 events."
PAGE_BYTES = 1_048_576  # "Each page returned can contain up to 1 MB of log events"
EVENT_OVERHEAD_BYTES = 26  # what CloudWatch Logs counts per event beside its message
STREAM_NAMES_PER_CALL = 100  # moto's FilterLogEvents takes at most 100 logStreamNames
# "Setting startFromHead to false is supported only when startTime is on or after
# Jan 1, 2024 00:00:00 UTC."
NEWEST_FIRST_SINCE_MS = 1_704_067_200_000


def invalid_parameter(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


def group_name(params: dict) -> str:
    """The group a request names: ``logGroupName`` or ``logGroupIdentifier`` (a name or an
    ARN), exactly one of them, as the service model requires."""
    name, identifier = params.get("logGroupName"), params.get("logGroupIdentifier")
    if bool(name) == bool(identifier):
        raise invalid_parameter("Specify either logGroupName or logGroupIdentifier, not both")
    if name:
        return name
    if identifier.startswith("arn:"):
        _, _, resource = identifier.partition(":log-group:")
        return resource.removesuffix(":*")
    return identifier


KEY_TYPES = (int, int, int, str, str)  # the types of an `event_key`


def event_key(event: dict) -> tuple:
    """The documented order: "sorted by event timestamp, the timestamp when the event was
    ingested by CloudWatch Logs, and the ID of the PutLogEvents request". Event ids are
    numerals that grow as events are put; compared by length first they sort as numbers."""
    event_id = str(event["eventId"])
    return (
        event["timestamp"],
        event["ingestionTime"],
        len(event_id),
        event_id,
        event["logStreamName"],
    )


def encode_token(group: str, head: bool, key: tuple) -> str:
    return wire.encode_token({"group": group, "head": head, "after": list(key)})


def decode_token(token: object, group: str) -> tuple[bool, tuple]:
    """(oldest first?, the key of the last event returned) from a token of ours for this
    group; anything else is AWS's InvalidParameterException."""
    document = wire.decode_token(token)
    if document is not None and document.get("group") == group:
        after = tuple(document["after"]) if isinstance(document.get("after"), list) else ()
        if tuple(type(value) for value in after) == KEY_TYPES:
            return bool(document.get("head")), after
    raise invalid_parameter("The specified nextToken is invalid.")


class LogsService(Service):
    def routes(self) -> list[Route]:
        return json_routes(
            "CloudWatch Logs", "logs", TARGET_PREFIX, {"FilterLogEvents": self.filter_log_events}
        )

    def filter_log_events(self, call: Call) -> dict:
        params = call.params
        group = group_name(params)
        names, prefix = params.get("logStreamNames"), params.get("logStreamNamePrefix")
        if names and prefix:
            raise invalid_parameter(
                "logStreamNames and logStreamNamePrefix cannot both be specified"
            )
        limit = params.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise invalid_parameter("limit must be an integer from 1 to 10000")
        head = params.get("startFromHead", True) is not False
        start = params.get("startTime")
        if params.get("nextToken"):
            head, after = decode_token(params["nextToken"], group)
        else:
            after = None
            if not head and start is not None and start < NEWEST_FIRST_SINCE_MS:
                raise invalid_parameter(
                    "startFromHead false needs a startTime on or after 2024-01-01T00:00:00Z"
                )
        logs = self.context.moto.client("logs", call.region)
        streams = self._streams(logs, group, names, prefix)
        events = sorted(self._events(logs, group, streams, params), key=event_key, reverse=not head)
        if after is not None:
            events = [e for e in events if (event_key(e) > after if head else event_key(e) < after)]
        chunk: list[dict] = []
        size = 0
        for event in events:
            size += len(event["message"].encode()) + EVENT_OVERHEAD_BYTES
            if len(chunk) == limit or (chunk and size > PAGE_BYTES):
                break
            chunk.append(event)
        response: dict = {
            "events": chunk,
            # "As of May 15, 2020, this parameter is no longer supported. This parameter
            # returns an empty list."
            "searchedLogStreams": [],
        }
        if len(chunk) < len(events):
            response["nextToken"] = encode_token(group, head, event_key(chunk[-1]))
        return response

    def _streams(self, logs, group: str, names: list | None, prefix: str | None) -> list[str]:
        """The group's streams the request selects (ResourceNotFoundException without the
        group, as moto answers it)."""
        try:
            pages = logs.get_paginator("describe_log_streams").paginate(
                logGroupName=group, **({"logStreamNamePrefix": prefix} if prefix else {})
            )
            found = [s["logStreamName"] for page in pages for s in page["logStreams"]]
        except ClientError as exc:  # by code: see cwlogs.ensure_group on exception classes
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            raise AwsError(
                "ResourceNotFoundException", "The specified log group does not exist."
            ) from exc
        if names:
            wanted = set(names)
            return [name for name in found if name in wanted]
        return found

    def _events(self, logs, group: str, streams: list[str], params: dict) -> Iterator[dict]:
        """Every event of ``streams`` in the time range that the filter pattern matches; moto
        gives the pattern its meaning."""
        query = {
            key: params[key]
            for key in ("startTime", "endTime", "filterPattern")
            if params.get(key) is not None
        }
        for first in range(0, len(streams), STREAM_NAMES_PER_CALL):
            batch = streams[first : first + STREAM_NAMES_PER_CALL]
            pages = logs.get_paginator("filter_log_events").paginate(
                logGroupName=group, logStreamNames=batch, **query
            )
            for page in pages:
                yield from page["events"]

"""The in-process moto server behind the front door, and the one way to make clients for the
records kept there (S3 objects, log streams, IAM roles)."""

from __future__ import annotations

import logging
import threading

import boto3
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from ops.localcloud import cloudwatch, loopback

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines


class Moto:
    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address=loopback.HOST, port=0, verbose=False)
        self._session = boto3.Session(
            aws_access_key_id="localcloud", aws_secret_access_key="localcloud"
        )
        self._clients: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()
        self.url = ""

    def start(self) -> Moto:
        cloudwatch.exact_dimensions()
        self._server.start()
        self.url = loopback.url(*self._server.get_host_and_port())
        return self

    def stop(self) -> None:
        self._server.stop()

    def client(self, service: str, region: str = "us-east-1"):
        """A boto3 client talking to moto directly (shared: boto3 clients are thread-safe)."""
        with self._lock:  # sessions are not: clients are made one at a time
            key = (service, region)
            if key not in self._clients:
                made = self._session.client(service, endpoint_url=self.url, region_name=region)
                # botocore builds a client's exception classes on first use, unlocked: threads
                # sharing a new client could each build their own, and an `except
                # client.exceptions.X` would then miss the X another thread raised. Built
                # here, once, under the lock.
                _ = made.exceptions
                self._clients[key] = made
            return self._clients[key]

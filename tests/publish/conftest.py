"""Fixtures for the sinks: a moto server (reachable from Spark's Python workers), a throttling
proxy in front of it, and a throw-away database on the real MariaDB server."""

from __future__ import annotations

import json
import secrets
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from glue_jobs import contracts as c
from tests.loopback import QuietHandler, serve


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def create_table(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("dynamodb", endpoint_url=endpoint).create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", **c.DDB_TABLE_KEYS)


@pytest.fixture
def table(moto_endpoint: str) -> str:
    name = f"recs-{secrets.token_hex(4)}"
    create_table(moto_endpoint, name)
    return name


class ThrottlingProxy:
    """Forwards DynamoDB calls to moto, but answers BatchWriteItem with every item unprocessed
    for the first `throttled_calls` calls (or forever when None): what a throttled table does."""

    def __init__(self, upstream: str, throttled_calls: int | None) -> None:
        self.upstream = upstream
        self.throttled_calls = throttled_calls
        self.batch_calls = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(QuietHandler):
            content_type = "application/x-amz-json-1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = self.headers.get("X-Amz-Target", "")
                if target.endswith(".BatchWriteItem"):
                    with proxy.lock:
                        proxy.batch_calls += 1
                        throttle = proxy.throttled_calls is None or proxy.batch_calls <= proxy.throttled_calls
                    if throttle:
                        unprocessed = {"UnprocessedItems": json.loads(body)["RequestItems"]}
                        self.send_payload(200, json.dumps(unprocessed).encode())
                        return
                request = urllib.request.Request(proxy.upstream + self.path, data=body, method="POST",
                                                 headers={k: v for k, v in self.headers.items()
                                                          if k.lower() not in ("host", "content-length")})
                with urllib.request.urlopen(request) as response:
                    self.send_payload(response.status, response.read())

        self.server, self.endpoint = serve(Handler)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def throttling_proxy(moto_endpoint: str) -> Iterator[Any]:
    proxies: list[ThrottlingProxy] = []

    def make(throttled_calls: int | None) -> ThrottlingProxy:
        proxies.append(ThrottlingProxy(moto_endpoint, throttled_calls))
        return proxies[-1]

    yield make
    for p in proxies:
        p.close()

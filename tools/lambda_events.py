"""What the Lambda runtime hands a function, for calling handlers outside Lambda: a context and
the recommendations API's HTTP API event. Tests, the demo and the benchmarks share these; they
live in tools/, not lambdas/, so no function's code package carries them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

ACCOUNT = "000000000000"
REGION = "us-east-1"


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the runtime's context that Powertools' inject_lambda_context reads."""

    function_name: str = "fn"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "req-1"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"


def http_event(target: str, *, request_id: str = "r") -> dict[str, Any]:
    """A GET of `target` (a path, optionally with ?query) as an API Gateway HTTP API integration
    sends it, payload format 2.0: repeated query parameters joined with commas, as API Gateway
    does (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html)."""
    url = urlsplit(target)
    query: dict[str, str] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": "$default", "rawPath": url.path, "rawQueryString": url.query,
        "headers": {"accept": "application/json"}, "isBase64Encoded": False,
        "requestContext": {"accountId": ACCOUNT, "apiId": "api", "domainName": "local.execute-api",
                           "http": {"method": "GET", "path": url.path, "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": "local"},
                           "requestId": request_id, "routeKey": "$default", "stage": "$default",
                           "time": "29/Nov/2026:16:00:00 +0000", "timeEpoch": 0},
    }
    if query:  # API Gateway leaves the key out when there is no query string
        event["queryStringParameters"] = query
    return event

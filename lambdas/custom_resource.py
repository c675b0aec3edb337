"""The answer a CloudFormation custom resource's function owes the stack: sent on success and on
failure alike, so a stack never waits an hour for a function that raised."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

log = logging.getLogger()


def respond(event: dict[str, Any], status: str, reason: str, data: dict[str, Any], *, id_prefix: str) -> None:
    """PUTs the response document to the pre-signed ResponseURL CloudFormation handed the event
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html)."""
    body = json.dumps({
        "Status": status, "Reason": reason[:3000],
        "PhysicalResourceId": event.get("PhysicalResourceId") or f"{id_prefix}-{event['LogicalResourceId']}",
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"], "Data": data,
    }).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                     headers={"content-type": "", "content-length": str(len(body))})
    with urllib.request.urlopen(request, timeout=30) as response:
        log.info("response sent: %s", response.status)

"""What the Lambda runtime hands a handler besides the event."""

from __future__ import annotations


class LambdaContext:
    function_name = "fn"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:fn"
    aws_request_id = "req-1"

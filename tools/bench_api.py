"""API handler latency: p50/p99 of the handler's own work over many lookups against moto's
DynamoDB in one process (the pointer cached as in a warm Lambda; 10% unknown users).

    python tools/bench_api.py [--lookups 10000] [--users 10000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for key, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                   "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_METRICS_NAMESPACE": "Bench",
                   "TABLE_NAME": "recs"}.items():
    os.environ.setdefault(key, value)

from glue_jobs import contracts as c  # noqa: E402
from tools.lambda_events import LambdaContext, http_event  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "api.md")
    opts = parser.parse_args()
    import warnings

    import boto3
    from moto import mock_aws

    from glue_jobs.recommender.publish import dynamo
    from lambdas.recommendations_api import handler

    warnings.filterwarnings("ignore")
    now = datetime.now(UTC)
    run = c.new_run_id(now)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(TableName="recs", BillingMode="PAY_PER_REQUEST", **c.DDB_TABLE_KEYS)
        recs = [{c.RANK: r, c.ARTIST_ID: 1000 + r, c.SCORE: 95.0 - r, c.PREDICTED_RATING: 90.0 - r,
                 c.ARTIST_NAME: f"Artist {r}"} for r in range(1, 6)]
        dynamo.write_batches(ddb, "recs", (dynamo.user_item(u, run, recs, now, 30) for u in range(1, opts.users + 1)))
        dynamo.write_batches(ddb, "recs", [dynamo.fallback_item(run, recs, now, 30)])
        dynamo.flip_pointer(ddb, "recs", run, 5)

        context = LambdaContext(function_name="api", memory_limit_in_mb=512, aws_request_id="bench")
        rng = random.Random(42)
        timings = []
        statuses: dict[int, int] = {}
        sink = io.StringIO()
        for i in range(opts.lookups):
            user = rng.randint(1, opts.users) if rng.random() < 0.9 else opts.users + rng.randint(1, 10**6)
            event = http_event(f"/users/{user}/recommendations?k=5", request_id=str(i))
            with redirect_stdout(sink):  # EMF metric lines: Lambda would ship them to CloudWatch
                start = time.perf_counter()
                response = handler.handler(event, context)
                timings.append((time.perf_counter() - start) * 1000)
            statuses[response["statusCode"]] = statuses.get(response["statusCode"], 0) + 1
            if i % 1000 == 0:
                sink.seek(0)
                sink.truncate()
    timings.sort()
    p50, p99 = statistics.median(timings), timings[int(0.99 * len(timings)) - 1]
    table = "\n".join([
        f"API handler over {opts.lookups:,} lookups (moto DynamoDB in-process, {opts.users:,} users, 10% unknown). "
        "Command: `make bench`.", "",
        "| p50 ms | p99 ms | mean ms | max ms | responses |", "|---:|---:|---:|---:|---|",
        f"| {p50:.2f} | {p99:.2f} | {statistics.fmean(timings):.2f} | {timings[-1]:.2f} | {json.dumps(statuses)} |"])
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(table + "\n")
    print(table)
    return 0 if set(statuses) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())

"""Operations on published runs.

    python -m glue_jobs.recommender.publish rollback --to RUN_ID --runs-root ROOT
        [--dynamodb-table T [--dynamodb-endpoint URL] [--dynamodb-region R]]
        [--aurora-url URL | --aurora-secret-arn ARN]
    python -m glue_jobs.recommender.publish status --runs-root ROOT [--dynamodb-table T ...]
"""

from __future__ import annotations

import argparse
import json
import sys

from glue_jobs import contracts as c
from glue_jobs.recommender.config import add_options, sink_options
from glue_jobs.recommender.publish import PublishError, PublishSettings, dynamo, files, rollback

OPTIONS = ("runs-root", "dynamodb-table", "dynamodb-endpoint", "dynamodb-region", "aurora-url", "aurora-secret-arn")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glue_jobs.recommender.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("rollback", "status"))
    parser.add_argument("--to", help="run id to roll back to")
    add_options(parser, OPTIONS, required=["runs-root"])
    ns = parser.parse_args(argv)
    settings = PublishSettings.from_options(sink_options(ns))
    try:
        if ns.command == "status":
            status = {"latest": files.read_latest(ns.runs_root)}
            if settings.dynamo:
                pointer = dynamo.read_pointer(settings.dynamo.client(), settings.dynamo.table)
                status["dynamodb"] = pointer.as_status() if pointer else None
            print(json.dumps(status, indent=2))
            return 0
        if not ns.to or not c.is_run_id(ns.to):
            print(f"error: --to must be a run id like 20261129T160000Z-3f2a, got {ns.to!r}", file=sys.stderr)
            return 2
        print(json.dumps(rollback(ns.to, settings), indent=2))
        return 0
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

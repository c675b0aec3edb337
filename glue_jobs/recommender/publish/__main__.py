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
from glue_jobs.recommender.publish import PublishError, PublishSettings, dynamo, files, rollback
from glue_jobs.recommender.publish.aurora import AuroraSettings
from glue_jobs.recommender.publish.dynamo import DynamoSettings


def settings_from(ns: argparse.Namespace) -> PublishSettings:
    return PublishSettings(
        runs_root=ns.runs_root,
        dynamo=DynamoSettings(ns.dynamodb_table, ns.dynamodb_endpoint, ns.dynamodb_region)
        if ns.dynamodb_table else None,
        aurora=AuroraSettings(ns.aurora_url, ns.aurora_secret_arn, ns.dynamodb_region)
        if (ns.aurora_url or ns.aurora_secret_arn) else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glue_jobs.recommender.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("rollback", "status"))
    parser.add_argument("--to", help="run id to roll back to")
    parser.add_argument("--runs-root", required=True)
    parser.add_argument("--dynamodb-table")
    parser.add_argument("--dynamodb-endpoint")
    parser.add_argument("--dynamodb-region")
    parser.add_argument("--aurora-url")
    parser.add_argument("--aurora-secret-arn")
    ns = parser.parse_args(argv)
    settings = settings_from(ns)
    try:
        if ns.command == "status":
            status = {"latest": files.read_latest(ns.runs_root)}
            if settings.dynamo:
                status["dynamodb"] = dynamo.active_run(settings.dynamo.client(), settings.dynamo.table)
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

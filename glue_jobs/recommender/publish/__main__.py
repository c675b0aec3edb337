"""Operations on published runs.

    python -m glue_jobs.recommender.publish rollback --to RUN_ID --runs-root ROOT
        [--dynamodb-table T [--dynamodb-endpoint URL] [--dynamodb-region R]]
        [--aurora-url URL | --aurora-secret-arn ARN]
    python -m glue_jobs.recommender.publish status --runs-root ROOT [--dynamodb-table T ...]
    python -m glue_jobs.recommender.publish history [--last 10] (--runs-root ROOT | --aurora-url URL
        | --aurora-secret-arn ARN)
        the last runs side by side, newest first, the active one marked: from the runs root's
        complete runs, or from Aurora's model_runs when no --runs-root is given
"""

from __future__ import annotations

import argparse
import json
import sys

import sqlalchemy as sa

from glue_jobs import contracts as c
from glue_jobs.recommender.config import add_options, sink_options
from glue_jobs.recommender.publish import PublishError, PublishSettings, dynamo, files, history, rollback

OPTIONS = ("runs-root", "dynamodb-table", "dynamodb-endpoint", "dynamodb-region", "aurora-url", "aurora-secret-arn")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glue_jobs.recommender.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("rollback", "status", "history"))
    parser.add_argument("--to", help="run id to roll back to")
    parser.add_argument("--last", type=int, default=10, help="history: how many runs (default: 10)")
    add_options(parser, OPTIONS)
    ns = parser.parse_args(argv)
    settings = PublishSettings.from_options(sink_options(ns))
    if ns.command == "history":
        return show_history(ns.last, settings)
    if not ns.runs_root:
        print(f"error: {ns.command} needs --runs-root ROOT (the runs' files are the source of truth)",
              file=sys.stderr)
        return 2
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


def show_history(last: int, settings: PublishSettings) -> int:
    """Prints the last runs from the runs root, or from model_runs when only Aurora is given."""
    if last < 1:
        print(f"error: --last must be at least 1, got {last}", file=sys.stderr)
        return 2
    if settings.runs_root:
        runs, where = history.from_runs_root(settings.runs_root, last), f"under {settings.runs_root}"
        empty = f"no complete runs under {settings.runs_root} (none of runs/*/ has {c.SUCCESS_MARKER})"
    elif settings.aurora:
        try:
            engine = settings.aurora.engine()
            try:
                runs, where = history.from_model_runs(engine, last), f"in {c.SQL_MODEL_RUNS}"
            finally:
                engine.dispose()
        except (sa.exc.SQLAlchemyError, PublishError) as exc:
            cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            print(f"error: cannot read {c.SQL_MODEL_RUNS}: {cause}", file=sys.stderr)
            return 2
        empty = f"no runs recorded in {c.SQL_MODEL_RUNS} yet"
    else:
        print("error: history needs --runs-root ROOT, or --aurora-url / --aurora-secret-arn to read "
              f"{c.SQL_MODEL_RUNS}", file=sys.stderr)
        return 2
    if not runs:
        print(empty)
        return 0
    print(f"last {len(runs)} run(s) {where}, newest first ({history.ACTIVE}: the one being served)")
    print(history.table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

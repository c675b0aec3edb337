"""`make demo`: generates R1-layout sample data, runs the job on it, publishes the run to all
three sinks with embedded defaults (files in .demo/curated, DynamoDB in a moto server started
here, SQLite for the Aurora tables, or MariaDB with DEMO_AURORA_URL=...), and shows results."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import sys
from dataclasses import astuple
from itertools import takewhile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from glue_jobs import contracts as c  # noqa: E402
from glue_jobs import datagen  # noqa: E402
from glue_jobs.recommender.metrics import RANKING_METRICS, RunMetrics  # noqa: E402
from tools.lambda_events import LambdaContext, http_event  # noqa: E402

DEMO = ROOT / ".demo"
N_RATINGS = 100_000
TABLE = "recommendations"


def show_recommendations(out: Path, users: int = 3) -> None:
    with (out / c.RECOMMENDATIONS_CSV_DIR / c.RECOMMENDATIONS_CSV_FILE).open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    shown: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row[c.USER_ID] in shown or len(shown) < users:
            shown.setdefault(row[c.USER_ID], []).append(row)
    for user, recs in shown.items():
        print(f"\nuser {user}:")
        for r in recs:
            print(f"  {r[c.RANK]}. {r[c.ARTIST_NAME]:<24} (artist {r[c.ARTIST_ID]:>6})  {scores_text(r)}")


def scores_text(row: dict[str, str]) -> str:
    """Both numbers of a recommendation: the ranking score the list is ordered by, and the
    predicted rating (an empty CSV cell for implicit feedback, which predicts none)."""
    rating = row.get(c.PREDICTED_RATING)
    shown = f"{float(rating):.1f}" if rating else "none (implicit feedback)"
    return f"score {float(row[c.SCORE]):.1f}, predicted rating {shown}"


def print_metrics(metrics: RunMetrics) -> None:
    test, base = metrics.test, metrics.baselines
    print("\ntest split           model    baseline")
    print(f"RMSE              {test.rmse:8.3f}    {base.bias_rmse:8.3f} (bias)  "
          f"{base.global_mean_rmse:8.3f} (global mean)")
    print(f"MAE               {test.mae:8.3f}    {base.bias_mae:8.3f} (bias)")
    for name, model, popular in zip(RANKING_METRICS, astuple(test.ranking), astuple(base.popularity)):
        print(f"{name.replace('_at_k', '@' + str(metrics.k)):<16}  {model:8.4f}    {popular:8.4f} (popularity)")
    print(f"quarantined rows by reason: { {k: v for k, v in metrics.quarantine.items() if v} }")


def call_api(endpoint: str, paths: list[str], *, cold: bool = False) -> None:
    """What customers get: the API function itself, called with HTTP API v2 events. `cold`: as a
    new instance of the function would (a warm one keeps the active-run pointer for 30 s)."""
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint  # boto3 honours per-service endpoint variables
    os.environ["TABLE_NAME"] = TABLE
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MusicRecommenderDemo")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # EMF lines would clutter the demo
    import warnings

    from lambdas.recommendations_api import handler

    warnings.filterwarnings("ignore", message="No application metrics to publish")
    if cold:
        handler._store = None
    context = LambdaContext(function_name="recommendations-api", memory_limit_in_mb=512, aws_request_id="demo")
    for path in paths:
        response = handler.handler(http_event(path, request_id="demo"), context)
        print(f"\nGET {path} -> {response['statusCode']}")
        body = json.loads(response["body"])
        recs = body.pop("recommendations", None) or body.pop("similar", None)
        print(f"    {json.dumps(body, ensure_ascii=False)}")
        for r in recs or []:
            print(f"      {json.dumps(r, ensure_ascii=False)}")


def similar_artist_path(out: Path) -> list[str]:
    """The API path of one artist's similar artists: the first artist in the run's CSV (none when
    the run has no similar artists, e.g. the bias-only model won)."""
    path = out / c.SIMILAR_ARTISTS_CSV_DIR / c.SIMILAR_ARTISTS_CSV_FILE
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        rows = csv.DictReader(fh)
        first = next(rows, None)
        if first is None:
            return []
        listed = 1 + sum(1 for _ in takewhile(lambda r: r[c.ARTIST_ID] == first[c.ARTIST_ID], rows))
    return [f"/artists/{first[c.ARTIST_ID]}/similar?k={min(5, listed)}"]


def guard_demo(argv: list[str], endpoint: str, api_path: str) -> int:
    """A half-copied upload (the first 30% of the ratings file): the input guard refuses it before
    training; --allow-shrink, for a planned reset, runs it and the API serves it; then the history
    of the demo's runs. A reset retunes: the published run's rank, reused on a third of the data,
    loses to the bias baseline (the quality gate refuses it), so a small grid keeps this quick."""
    from glue_jobs.recommender.main import main
    from glue_jobs.recommender.publish.__main__ import main as publish_cli

    ratings = DEMO / "data" / "ratings.tsv"
    head = ratings.with_name("ratings-first-30pct.tsv")
    lines = ratings.read_text(encoding="utf-8").splitlines(keepends=True)
    head.write_text("".join(lines[: len(lines) * 3 // 10]), encoding="utf-8")
    truncated = [str(head) if arg == str(ratings) else arg for arg in argv] + [
        "--tuning", "full", "--ranks", "10", "--reg-params", "0.1,0.3"]
    print(f"\n--- a truncated feed: the first 30% of {ratings.name} ---\npython -m glue_jobs.recommender "
          + " ".join(truncated))
    if main(truncated) == 0:
        print("error: the input guard let a truncated feed through", file=sys.stderr)
        return 1
    print("refused before training, as it should be (message above); nothing was written or published")
    print("\n--- the same, as a planned reset ---\npython -m glue_jobs.recommender ... --allow-shrink")
    code = main([*truncated, "--allow-shrink"])
    if code:
        return code
    call_api(endpoint, [api_path], cold=True)
    print("\npython -m glue_jobs.recommender.publish history --runs-root " + str(DEMO / "curated"))
    code = publish_cli(["history", "--runs-root", str(DEMO / "curated")])
    reset = Path(json.loads((DEMO / "curated" / c.LATEST_FILE).read_text())["path"])
    print(f"\nreport of the reset run, its input beside the previous run's: {reset / c.REPORT_FILE}")
    return code


def main_demo() -> int:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import boto3
    from moto.server import ThreadedMotoServer

    from glue_jobs.recommender.main import main

    shutil.rmtree(DEMO, ignore_errors=True)
    data = datagen.generate(N_RATINGS, seed=42)
    datagen.write_r1(DEMO / "data" / "ratings.tsv", datagen.r1_lines(data, 42))
    datagen.write_artist_names(DEMO / "data" / "artists.txt", datagen.artist_names(data.artists, 42))
    print(f"generated {N_RATINGS} ratings + {len(data.bad_lines)} bad rows in {DEMO / 'data'}")

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    ddb = boto3.client("dynamodb", endpoint_url=endpoint)
    ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST", **c.DDB_TABLE_KEYS)
    aurora_url = os.environ.get("DEMO_AURORA_URL", f"sqlite:///{DEMO / 'recommender.db'}")
    argv = ["--input", str(DEMO / "data" / "ratings.tsv"), "--artists", str(DEMO / "data" / "artists.txt"),
            "--runs-root", str(DEMO / "curated"), "--dynamodb-table", TABLE, "--dynamodb-endpoint", endpoint,
            "--aurora-url", aurora_url]
    print("python -m glue_jobs.recommender " + " ".join(argv))
    try:
        code = main(argv)
        if code:
            return code
        latest = json.loads((DEMO / "curated" / c.LATEST_FILE).read_text())
        out = Path(latest["path"])
        print_metrics(RunMetrics.from_json((out / c.METRICS_FILE).read_text()))
        show_recommendations(out)
        print(f"\npublished run {latest['run_id']}: files {out}, DynamoDB table {TABLE!r} (moto), "
              f"tables in {aurora_url}")
        call_api(endpoint, [f"/users/{int(data.users[0])}/recommendations", "/users/999999999/recommendations?k=3",
                            "/users/abc/recommendations?k=50", *similar_artist_path(out)])
        code = guard_demo(argv, endpoint, f"/users/{int(data.users[0])}/recommendations?k=3")
        if code:
            return code
        print(f"\nreport: {out / c.REPORT_FILE}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main_demo())

"""`make smoke`: after `cdk deploy`, checks in your own account that new ratings reach every sink and the API.

    python tools/smoke.py --prefix recsys-dev [--region eu-west-1] [--profile NAME] [--cleanup]
        [--timeout 3600] [--start-now] [--ratings 30000] [--user-id N] [--bearer-token JWT]

Steps: find the deployment (the `<prefix>-*` stacks' outputs; bucket names derived with the
storage stack's own rule when an output is missing), upload a small generated R1 file to
`ratings/smoke-<id>.tsv` in the raw bucket, wait for the training run it starts, then check
latest.json, the run's _SUCCESS, the DynamoDB pointer, Aurora's model_runs (Data API) and the
API (SigV4-signed). Prints a pass/fail table with timings; exits 0 only if every check passed.
`--cleanup` deletes exactly the uploaded object version, nothing else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

from glue_jobs import contracts as c  # noqa: E402
from glue_jobs import datagen  # noqa: E402
from glue_jobs.recommender import storage  # noqa: E402
from glue_jobs.recommender.publish import dynamo, files  # noqa: E402
from stacks import names  # noqa: E402

T = TypeVar("T")

# Smoke users get ids far above R1's (1 .. about 2 million) and below ALS's int limit, so they
# never merge with real users and the API check asks for a user only this file has.
SMOKE_USER_BASE = 2_000_000_000
DEFAULT_RATINGS = 30_000  # what the job's end-to-end test trains on; it passes the quality gate
PUBLISHED = "published"  # model_runs.status once a run is live (glue_jobs/recommender/publish/aurora.py)
# The stacks cdk_app/app.py names `<prefix>-<part>`; emr exists only with -c emr=true.
STACK_PARTS = ("storage", "serving", "training", "analytics", "emr")
# Glue workflow run states: https://docs.aws.amazon.com/glue/latest/webapi/API_WorkflowRun.html;
# the per-action counts: https://docs.aws.amazon.com/glue/latest/webapi/API_WorkflowRunStatistics.html
WORKFLOW_DONE = ("COMPLETED", "STOPPED", "ERROR")
WORKFLOW_BAD_ACTIONS = ("FailedActions", "TimeoutActions", "StoppedActions", "ErroredActions")
EXECUTION_DONE = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


@dataclass(frozen=True)
class Options:
    prefix: str
    region: str
    ratings: int = DEFAULT_RATINGS
    timeout_s: float = 3600.0
    poll_s: float = 30.0
    start_now: bool = False
    cleanup: bool = False
    user_id: int | None = None
    bearer_token: str | None = None
    seed: int = 42


@dataclass(frozen=True)
class Clients:
    """The AWS clients the smoke test uses, built from one session (tests pass moto's or fakes)."""

    account: str
    cloudformation: Any
    s3: Any
    glue: Any
    stepfunctions: Any
    dynamodb: Any
    rds_data: Any
    credentials: Any  # for SigV4 on the API


@dataclass(frozen=True)
class Deployment:
    prefix: str
    raw_bucket: str
    curated_bucket: str
    table: str | None = None
    api_url: str | None = None
    workflow: str | None = None
    state_machine: str | None = None
    cluster_arn: str | None = None
    secret_arn: str | None = None
    database: str | None = None
    stacks: tuple[str, ...] = ()

    def missing(self) -> list[str]:
        needed = {names.OUTPUT_TABLE: self.table, names.OUTPUT_API_URL: self.api_url,
                  names.OUTPUT_CLUSTER_ARN: self.cluster_arn, names.OUTPUT_SECRET_ARN: self.secret_arn,
                  names.OUTPUT_DATABASE: self.database,
                  f"{names.OUTPUT_WORKFLOW} or {names.OUTPUT_STATE_MACHINE}": self.workflow or self.state_machine}
        return [k for k, v in needed.items() if not v]


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS | FAIL | SKIP (a check that could not run counts as not passed)
    seconds: float
    detail: str


@dataclass(frozen=True)
class Upload:
    key: str
    version_id: str | None
    user_id: int  # the smoke user with the most ratings: the model certainly knows it
    rows: int


class CheckFailed(Exception):
    """A check ran and found something wrong; the message says what."""


# --- Finding the deployment ----------------------------------------------------------------

def discover(cfn: Any, prefix: str, account: str, region: str) -> Deployment:
    """Outputs of the `<prefix>-*` stacks; the bucket names fall back to the storage stack's rule."""
    outputs: dict[str, str] = {}
    found: list[str] = []
    for part in STACK_PARTS:
        name = f"{prefix}-{part}"
        try:
            stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        except ClientError as exc:
            if "does not exist" in str(exc):
                continue
            raise
        found.append(name)
        outputs.update({o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])})
    return Deployment(
        prefix=prefix,
        raw_bucket=outputs.get(names.OUTPUT_RAW_BUCKET) or names.bucket_name(prefix, "raw", account, region),
        curated_bucket=(outputs.get(names.OUTPUT_CURATED_BUCKET)
                        or names.bucket_name(prefix, "curated", account, region)),
        table=outputs.get(names.OUTPUT_TABLE), api_url=outputs.get(names.OUTPUT_API_URL),
        workflow=outputs.get(names.OUTPUT_WORKFLOW), state_machine=outputs.get(names.OUTPUT_STATE_MACHINE),
        cluster_arn=outputs.get(names.OUTPUT_CLUSTER_ARN), secret_arn=outputs.get(names.OUTPUT_SECRET_ARN),
        database=outputs.get(names.OUTPUT_DATABASE), stacks=tuple(found))


# --- The file ------------------------------------------------------------------------------

def smoke_lines(n_ratings: int, seed: int = 42) -> tuple[list[str], int]:
    """A clean R1 file from the project's generator, users moved to the smoke range; and the
    smoke user with the most ratings."""
    data = datagen.generate(n_ratings, seed=seed, bad_share=0.0)
    data = dataclasses.replace(data, users=data.users + SMOKE_USER_BASE)
    busiest = Counter(data.users.tolist()).most_common(1)[0][0]
    return datagen.r1_lines(data, seed), int(busiest)


def upload(s3: Any, bucket: str, smoke_id: str, lines: list[str], user_id: int) -> Upload:
    key = f"{names.RATINGS_PREFIX}smoke-{smoke_id}.tsv"
    body = ("\n".join(lines) + "\n").encode("ascii")
    response = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/tab-separated-values")
    return Upload(key, response.get("VersionId"), user_id, len(lines))


def cleanup(s3: Any, bucket: str, uploaded: Upload) -> str:
    """Deletes exactly the version uploaded: in a versioned bucket a plain DELETE would only add a
    delete marker and keep the data as a noncurrent version
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/DeletingObjectVersions.html)."""
    if uploaded.version_id:
        s3.delete_object(Bucket=bucket, Key=uploaded.key, VersionId=uploaded.version_id)
        return f"deleted s3://{bucket}/{uploaded.key} version {uploaded.version_id}"
    s3.delete_object(Bucket=bucket, Key=uploaded.key)
    return f"deleted s3://{bucket}/{uploaded.key}"


# --- Waiting for the run -------------------------------------------------------------------

def wait_for(probe: Callable[[], T | None], deadline: float, poll_s: float,
             clock: Callable[[], float], sleep: Callable[[float], None]) -> T | None:
    """probe() until it returns something or the deadline passes (then None)."""
    while True:
        value = probe()
        if value is not None:
            return value
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        sleep(min(poll_s, remaining))


class GlueWorkflowRuns:
    """The training workflow's runs (the default runtime)."""

    def __init__(self, glue: Any, workflow: str) -> None:
        self.glue, self.workflow = glue, workflow

    def known(self) -> set[str]:
        ids: set[str] = set()
        token: str | None = None
        while True:
            page = self.glue.get_workflow_runs(Name=self.workflow, **({"NextToken": token} if token else {}))
            ids.update(r["WorkflowRunId"] for r in page.get("Runs", []))
            token = page.get("NextToken")
            if not token:
                return ids

    def start(self, smoke_id: str) -> str:
        return str(self.glue.start_workflow_run(Name=self.workflow, RunProperties={"smoke_id": smoke_id})["RunId"])

    def outcome(self, run_id: str) -> tuple[bool, str] | None:
        """None while running; else (succeeded, what happened). A workflow run COMPLETES even when
        its job failed, so success also needs no failed, timed-out, stopped or errored action."""
        run = self.glue.get_workflow_run(Name=self.workflow, RunId=run_id, IncludeGraph=False)["Run"]
        status = run.get("Status")
        if status not in WORKFLOW_DONE:
            return None
        stats = run.get("Statistics", {})
        bad = {k: stats.get(k, 0) for k in WORKFLOW_BAD_ACTIONS if stats.get(k, 0)}
        ok = status == "COMPLETED" and not bad and stats.get("SucceededActions", 0) >= 1
        detail = f"workflow run {run_id} {status}, succeeded actions {stats.get('SucceededActions', 0)}"
        detail += (f", {bad}" if bad else "") + (f": {run['ErrorMessage']}" if run.get("ErrorMessage") else "")
        return ok, detail


class StateMachineRuns:
    """The EMR Serverless state machine's executions (with -c emr=true new data starts it)."""

    def __init__(self, sfn: Any, arn: str) -> None:
        self.sfn, self.arn = sfn, arn

    def known(self) -> set[str]:
        ids: set[str] = set()
        for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=self.arn):
            ids.update(e["executionArn"] for e in page.get("executions", []))
        return ids

    def start(self, smoke_id: str) -> str:
        return str(self.sfn.start_execution(stateMachineArn=self.arn, name=f"smoke-{smoke_id}",
                                            input=json.dumps({"smoke_id": smoke_id}))["executionArn"])

    def outcome(self, run_id: str) -> tuple[bool, str] | None:
        execution = self.sfn.describe_execution(executionArn=run_id)
        status = execution["status"]
        if status not in EXECUTION_DONE:
            return None
        return status == "SUCCEEDED", f"execution {run_id.rsplit(':', 1)[-1]} {status}" + (
            f": {execution.get('error')} {execution.get('cause', '')}".rstrip() if execution.get("error") else "")


# --- Reading the sinks ---------------------------------------------------------------------

def read_latest(s3: Any, bucket: str) -> dict[str, Any] | None:
    return files.read_latest(f"s3://{bucket}", s3)


def success_marker(s3: Any, bucket: str, run_id: str) -> str | None:
    """What the run's _SUCCESS says (the run id), or None when the run has none."""
    try:
        return storage.read_text(storage.join(c.run_path(f"s3://{bucket}", run_id), c.SUCCESS_MARKER), s3).strip()
    except FileNotFoundError:
        return None


def first_listed_artist(s3: Any, bucket: str, run_id: str) -> int | None:
    """The first artist of the run's similar-artists CSV (its header and first row, read with a byte
    range: the file holds every artist's list), or None when the run has none (rank 0 won)."""
    key = f"{c.RUNS_PREFIX}/{run_id}/{c.SIMILAR_ARTISTS_CSV_DIR}/{c.SIMILAR_ARTISTS_CSV_FILE}"
    try:
        head = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-4095")["Body"].read().decode("utf-8", "replace")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    lines = head.splitlines()
    if len(lines) < 2:
        return None
    return int(lines[1].split(",")[lines[0].split(",").index(c.ARTIST_ID)])


def model_run_status(rds_data: Any, deployment: Deployment, run_id: str, *, attempts: int = 4,
                     sleep: Callable[[float], None] = time.sleep) -> str | None:
    """model_runs.status through the Data API (no VPC access needed). A cluster scaled to zero
    answers DatabaseResumingException for a while: retried."""
    for attempt in range(attempts):
        try:
            response = rds_data.execute_statement(
                resourceArn=deployment.cluster_arn, secretArn=deployment.secret_arn, database=deployment.database,
                sql=f"SELECT status FROM {c.SQL_MODEL_RUNS} WHERE run_id = :run_id",
                parameters=[{"name": "run_id", "value": {"stringValue": run_id}}])
            break
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "DatabaseResumingException" or attempt == attempts - 1:
                raise
            sleep(30)
    records = response.get("records") or []
    return str(records[0][0].get("stringValue")) if records and records[0] else None


def call_api(url: str, *, region: str, credentials: Any, bearer_token: str | None = None,
             timeout_s: float = 30.0) -> tuple[int, Any]:
    """GET with SigV4 (service execute-api), which the HTTP API's IAM authorizer requires
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-access-control-iam.html);
    with -c apiAuth=jwt the caller passes a bearer token instead."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    headers = {"Accept": "application/json"}
    if bearer_token:
        headers["Authorization"] = f"Bearer {bearer_token}"
    else:
        signed = AWSRequest(method="GET", url=url, headers=headers)
        SigV4Auth(credentials, "execute-api", region).add_auth(signed)
        headers = dict(signed.headers.items())
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body or b"null")
    except ValueError:
        return status, body.decode("utf-8", "replace")[:200]


# --- The run -------------------------------------------------------------------------------

class Smoke:
    def __init__(self, clients: Clients, options: Options, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, smoke_id: str | None = None) -> None:
        self.clients, self.options, self.clock, self.sleep = clients, options, clock, sleep
        self.smoke_id = smoke_id or c.new_run_id()
        self.checks: list[Check] = []

    def step(self, name: str, fn: Callable[[], tuple[str, T]]) -> T | None:
        """Runs one check, timed; its value, or None when it failed."""
        started = self.clock()
        try:
            detail, value = fn()
        except CheckFailed as exc:
            self.checks.append(Check(name, "FAIL", self.clock() - started, str(exc)))
            return None
        except (ClientError, BotoCoreError, OSError, ValueError, KeyError) as exc:
            self.checks.append(Check(name, "FAIL", self.clock() - started, f"{type(exc).__name__}: {exc}"))
            return None
        self.checks.append(Check(name, "PASS", self.clock() - started, detail))
        return value

    def skip(self, name: str, why: str) -> None:
        self.checks.append(Check(name, "SKIP", 0.0, why))

    def run(self) -> list[Check]:
        o, cl = self.options, self.clients
        dep = self.step("deployment", lambda: self._discover())
        if dep is None:
            return self.checks
        runs: GlueWorkflowRuns | StateMachineRuns | None = (
            StateMachineRuns(cl.stepfunctions, dep.state_machine) if dep.state_machine
            else GlueWorkflowRuns(cl.glue, dep.workflow) if dep.workflow else None)
        state = self.step("upload", lambda: self._upload(dep, runs))
        uploaded, before, known = state if state else (None, None, set())
        try:
            if uploaded is None or runs is None:
                self.skip("training run", "nothing uploaded" if uploaded is None else "no workflow or state machine")
            else:
                self.step("training run", lambda: self._wait(runs, known))
            self._verify(dep, before, uploaded)
        finally:
            if o.cleanup and uploaded is not None:
                self.step("cleanup", lambda: (cleanup(cl.s3, dep.raw_bucket, uploaded), None))
        return self.checks

    def _discover(self) -> tuple[str, Deployment]:
        dep = discover(self.clients.cloudformation, self.options.prefix, self.clients.account, self.options.region)
        if not dep.stacks:
            raise CheckFailed(f"no stack named {self.options.prefix}-* in {self.options.region}")
        if dep.missing():
            raise CheckFailed(f"outputs missing: {', '.join(dep.missing())} (stacks: {', '.join(dep.stacks)}); "
                              "redeploy this version")
        runtime = f"EMR state machine {dep.state_machine}" if dep.state_machine else f"Glue workflow {dep.workflow}"
        return f"{len(dep.stacks)} stacks, {runtime}", dep

    def _upload(self, dep: Deployment, runs: GlueWorkflowRuns | StateMachineRuns | None
                ) -> tuple[str, tuple[Upload, dict[str, Any] | None, set[str]]]:
        # What was there before the upload: the published run, and the runs already started.
        before = read_latest(self.clients.s3, dep.curated_bucket)
        known = runs.known() if runs else set()
        lines, user_id = smoke_lines(self.options.ratings, self.options.seed)
        up = upload(self.clients.s3, dep.raw_bucket, self.smoke_id, lines, user_id)
        return f"s3://{dep.raw_bucket}/{up.key} ({up.rows} ratings)", (up, before, known)

    def _wait(self, runs: GlueWorkflowRuns | StateMachineRuns, known: set[str]) -> tuple[str, str]:
        o = self.options
        deadline = self.clock() + o.timeout_s
        if o.start_now:
            run_id: str | None = runs.start(self.smoke_id)
        else:
            # The upload's event starts the run: at once with EMR, and on Glue once the trigger's
            # batch fills or its window (up to 900 s after the first event) closes
            # (https://docs.aws.amazon.com/glue/latest/webapi/API_EventBatchingCondition.html).
            run_id = wait_for(lambda: min(runs.known() - known, default=None), deadline, o.poll_s,
                              self.clock, self.sleep)
            if run_id is None:
                raise CheckFailed(f"no run started within {o.timeout_s:.0f} s of the upload "
                                  "(is the EventBridge rule enabled? try --start-now)")
        assert run_id is not None
        result = wait_for(lambda: runs.outcome(run_id), deadline, o.poll_s, self.clock, self.sleep)
        if result is None:
            raise CheckFailed(f"run {run_id} still running after {o.timeout_s:.0f} s")
        ok, detail = result
        if not ok:
            raise CheckFailed(detail)
        return detail, run_id

    def _verify(self, dep: Deployment, before: dict[str, Any] | None, uploaded: Upload | None) -> None:
        cl, o = self.clients, self.options
        previous = (before or {}).get("run_id")

        def latest() -> tuple[str, str]:
            now = read_latest(cl.s3, dep.curated_bucket)
            if now is None:
                raise CheckFailed(f"s3://{dep.curated_bucket}/{c.LATEST_FILE} does not exist")
            run_id = str(now.get("run_id", ""))
            if not c.is_run_id(run_id):
                raise CheckFailed(f"{c.LATEST_FILE} names {run_id!r}, not a run id")
            if previous and run_id <= previous:
                raise CheckFailed(f"{c.LATEST_FILE} still names {run_id} (before the upload: {previous})")
            return f"{run_id} (before: {previous or 'none'})", run_id

        run_id = self.step("latest.json newer", latest)
        later = ("_SUCCESS", "DynamoDB pointer", "Aurora model_runs", "API /health", "API recommendations")
        if run_id is None:
            for name in later[:3]:
                self.skip(name, f"no new run named by {c.LATEST_FILE}")
        else:
            rid = run_id

            def marker() -> tuple[str, None]:
                text = success_marker(cl.s3, dep.curated_bucket, rid)
                if text is None:
                    raise CheckFailed(f"runs/{rid}/{c.SUCCESS_MARKER} does not exist")
                if text != rid:
                    raise CheckFailed(f"runs/{rid}/{c.SUCCESS_MARKER} names {text!r}")
                return f"runs/{rid}/{c.SUCCESS_MARKER}", None

            def pointer() -> tuple[str, None]:
                active = dynamo.read_pointer(cl.dynamodb, str(dep.table))
                named = active.run_id if active else None
                if named != rid:
                    raise CheckFailed(f"pointer ({c.DDB_CONTROL_USER_ID}, {c.DDB_POINTER_SORT_KEY}) in {dep.table} "
                                      f"names {named or 'no run'}, latest.json names {rid}")
                return f"{dep.table} pointer -> {rid}", None

            def aurora() -> tuple[str, None]:
                status = model_run_status(cl.rds_data, dep, rid, sleep=self.sleep)
                if status != PUBLISHED:
                    raise CheckFailed(f"{c.SQL_MODEL_RUNS} has {rid} as {status or 'no row'}, not {PUBLISHED}")
                return f"{c.SQL_MODEL_RUNS}: {rid} {status}", None

            self.step("_SUCCESS", marker)
            self.step("DynamoDB pointer", pointer)
            self.step("Aurora model_runs", aurora)

        api = (dep.api_url or "").rstrip("/")

        def health() -> tuple[str, None]:
            status, body = call_api(f"{api}/health", region=o.region, credentials=cl.credentials,
                                    bearer_token=o.bearer_token)
            if status != 200:
                raise CheckFailed(f"GET /health -> {status} {body}")
            return "GET /health -> 200", None

        self.step("API /health", health)
        _similar_step(self, dep, api, run_id)
        user_id = o.user_id or (uploaded.user_id if uploaded else None)
        if user_id is None or run_id is None:
            self.skip("API recommendations", "no smoke user" if user_id is None else "no new run to expect")
            return
        uid, rid = user_id, run_id

        def recommendations() -> tuple[str, None]:
            status, body = call_api(f"{api}/users/{uid}/recommendations", region=o.region,
                                    credentials=cl.credentials, bearer_token=o.bearer_token)
            if status != 200 or not isinstance(body, dict):
                raise CheckFailed(f"GET /users/{uid}/recommendations -> {status} {body}")
            if body.get("run_id") != rid:
                raise CheckFailed(f"served run {body.get('run_id')}, expected {rid}")
            if body.get("fallback") or not body.get(c.DDB_RECOMMENDATIONS):
                raise CheckFailed(f"user {uid} got the popularity fallback, not the model's list")
            return f"user {uid}: {len(body[c.DDB_RECOMMENDATIONS])} recommendations from {rid}", None

        self.step("API recommendations", recommendations)


def _similar_step(smoke: Smoke, dep: Deployment, api: str, run_id: str | None) -> None:
    """GET /artists/{id}/similar for the first artist the new run listed: the route, its
    authorisation and the artist items behind the run's pointer, in the deployed account."""
    cl, o = smoke.clients, smoke.options
    name = "API similar artists"
    if run_id is None:
        smoke.skip(name, f"no new run named by {c.LATEST_FILE}")
        return
    artist = first_listed_artist(cl.s3, dep.curated_bucket, run_id)
    if artist is None:
        smoke.skip(name, f"run {run_id} has no similar artists (the bias-only model won)")
        return

    def similar() -> tuple[str, None]:
        status, body = call_api(f"{api}/artists/{artist}/similar", region=o.region, credentials=cl.credentials,
                                bearer_token=o.bearer_token)
        if status != 200 or not isinstance(body, dict):
            raise CheckFailed(f"GET /artists/{artist}/similar -> {status} {body}")
        if body.get("run_id") != run_id:
            raise CheckFailed(f"served run {body.get('run_id')}, expected {run_id}")
        if not body.get("similar"):
            raise CheckFailed(f"artist {artist} got an empty list")
        return f"artist {artist}: {len(body['similar'])} similar artists from {run_id}", None

    smoke.step(name, similar)


def table(checks: list[Check]) -> str:
    width = max([len("check"), *(len(ch.name) for ch in checks)])
    lines = [f"{'check':<{width}}  result  seconds  detail", f"{'-' * width}  ------  -------  ------"]
    lines += [f"{ch.name:<{width}}  {ch.status:<6}  {ch.seconds:7.1f}  {ch.detail}" for ch in checks]
    passed = all(ch.status == "PASS" for ch in checks)
    lines.append(f"\n{'PASSED' if passed else 'FAILED'}: {sum(ch.status == 'PASS' for ch in checks)} of "
                 f"{len(checks)} checks passed")
    return "\n".join(lines)


def exit_code(checks: list[Check]) -> int:
    return 0 if checks and all(ch.status == "PASS" for ch in checks) else 1


def clients_from_session(session: Any) -> Clients:
    return Clients(account=session.client("sts").get_caller_identity()["Account"],
                   cloudformation=session.client("cloudformation"), s3=session.client("s3"),
                   glue=session.client("glue"), stepfunctions=session.client("stepfunctions"),
                   dynamodb=session.client("dynamodb"), rds_data=session.client("rds-data"),
                   credentials=session.get_credentials())


def parse_args(argv: list[str] | None = None) -> tuple[Options, str | None]:
    p = argparse.ArgumentParser(prog="python tools/smoke.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prefix", default="recsys-dev", help="the stacks' prefix (recsys-dev, recsys-prod, ...)")
    p.add_argument("--region", help="AWS region of the deployment (default: your profile's)")
    p.add_argument("--profile", help="AWS profile to use")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the run (default 3600)")
    p.add_argument("--poll", type=float, default=30.0, help="seconds between status polls (default 30)")
    p.add_argument("--start-now", action="store_true",
                   help="start the workflow / state machine directly instead of waiting for the upload's "
                        "event (faster on Glue, but the event still starts a second run later)")
    p.add_argument("--cleanup", action="store_true", help="delete the uploaded object afterwards")
    p.add_argument("--ratings", type=int, default=DEFAULT_RATINGS, help="ratings in the smoke file")
    p.add_argument("--user-id", type=int, help="user to ask the API for (default: the smoke file's busiest user)")
    p.add_argument("--bearer-token", help="JWT for the API when deployed with -c apiAuth=jwt")
    ns = p.parse_args(argv)
    return Options(prefix=ns.prefix, region=ns.region or "", ratings=ns.ratings, timeout_s=ns.timeout,
                   poll_s=ns.poll, start_now=ns.start_now, cleanup=ns.cleanup, user_id=ns.user_id,
                   bearer_token=ns.bearer_token), ns.profile


def main(argv: list[str] | None = None) -> int:
    import boto3

    options, profile = parse_args(argv)
    session = boto3.Session(profile_name=profile, region_name=options.region or None)
    if not session.region_name:
        print("no region: pass --region or configure one for your profile", file=sys.stderr)
        return 2
    options = dataclasses.replace(options, region=session.region_name)
    smoke = Smoke(clients_from_session(session), options)
    print(f"smoke {smoke.smoke_id}: {options.prefix} in {options.region}", flush=True)
    checks = smoke.run()
    print(table(checks))
    return exit_code(checks)


if __name__ == "__main__":
    sys.exit(main())

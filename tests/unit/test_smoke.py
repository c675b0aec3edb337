"""`make smoke` (tools/smoke.py) against moto and small fakes: a healthy deployment passes every
check, each kind of breakage fails its own check, and --cleanup removes only the upload."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import dynamo
from stacks import names
from tests.loopback import QuietHandler, serve
from tools.lambda_events import LambdaContext, http_event

spec = importlib.util.spec_from_file_location("smoke", Path(__file__).resolve().parents[2] / "tools" / "smoke.py")
assert spec and spec.loader
smoke = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = smoke  # dataclasses look their module up
spec.loader.exec_module(smoke)

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
PREFIX = "recsys-smoke"
RAW = names.bucket_name(PREFIX, "raw", ACCOUNT, REGION)
CURATED = names.bucket_name(PREFIX, "curated", ACCOUNT, REGION)
TABLE = f"{PREFIX}-recommendations"
WORKFLOW = f"{PREFIX}-training"
CLUSTER_ARN = f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:{PREFIX}-aurora"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{PREFIX}/aurora/admin-AbCdEf"
OLD_RUN = "20200101T000000Z-0a0a"  # published before the smoke test
OTHER_RUN = "20991231T235959Z-ffff"
N_RATINGS = 1500  # small: the fake job writes an item per user
EXPECTED_CHECKS = ["deployment", "upload", "training run", "latest.json newer", "_SUCCESS", "DynamoDB pointer",
                   "Aurora model_runs", "API /health", "API similar artists", "API recommendations"]
LISTED_ARTIST = 1001  # the fake run's first artist with similar artists
SIGV4 = re.compile(r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
                   r"(?P<service>[a-z-]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
                   r"Signature=(?P<signature>[0-9a-f]{64})$")


# --- A fake API Gateway: the real API function over moto's table, behind SigV4 verification ----

class FakeApi:
    """127.0.0.1 stand-in for the HTTP API with IAM auth: it recomputes each request's SigV4
    signature (service execute-api, as API Gateway does) and answers 403 unless it matches
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-access-control-iam.html)."""

    def __init__(self, table: str) -> None:
        from lambdas.recommendations_api import handler
        from lambdas.recommendations_api.logic import RecommendationStore

        self.authorizations: list[str] = []
        self.function, self.saved_store = handler, handler._store
        handler._store = RecommendationStore(boto3.client("dynamodb", region_name=REGION), table, pointer_ttl_s=0)
        api = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                api.authorizations.append(auth)
                if not api.signature_ok(self.command, self.path, dict(self.headers.items())):
                    return self.send_payload(403, b'{"message":"Forbidden"}')
                response = handler.handler(http_event(self.path), LambdaContext(function_name="api"))
                self.send_payload(response["statusCode"], response["body"].encode())

        self.server, self.url = serve(Handler)

    def signature_ok(self, method: str, path: str, headers: dict[str, str]) -> bool:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        match = SIGV4.match(headers.get("Authorization", ""))
        if not match or match["service"] != "execute-api" or match["region"] != REGION:
            return False
        signed = match["signed"].split(";")
        lower = {k.lower(): v for k, v in headers.items()}
        request = AWSRequest(method=method, url=self.url + path, headers={k: lower[k] for k in signed if k in lower})
        request.context["timestamp"] = lower.get("x-amz-date", "")
        known = boto3.Session().get_credentials()  # the caller's identity, as IAM knows it
        if known is None or match["key"] != known.access_key:
            return False
        auth = SigV4Auth(Credentials(known.access_key, known.secret_key, lower.get("x-amz-security-token")),
                         "execute-api", REGION)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        return bool(expected == match["signature"])

    def close(self) -> None:
        self.server.shutdown()
        self.function._store = self.saved_store


# --- The fake job: what a training run publishes, written with the job's own sink code ---------

class Job:
    """Does what a successful training run does to the sinks, or one of the ways it goes wrong."""

    def __init__(self, *, pointer_run: str | None = None, write_latest: bool = True,
                 aurora_status: str = "published", similar: str = "published") -> None:
        """similar: "published" (CSV and artist items), "none" (a bias-only run: neither) or
        "unserved" (the CSV, but no artist items: a broken publish)."""
        self.pointer_run, self.write_latest, self.aurora_status = pointer_run, write_latest, aurora_status
        self.similar = similar
        self.run_ids: list[str] = []

    def __call__(self) -> None:
        from moto.rdsdata.models import QueryResults, rdsdata_backends

        s3 = boto3.client("s3", region_name=REGION)
        ddb = boto3.client("dynamodb", region_name=REGION)
        run_id = c.new_run_id()
        self.run_ids.append(run_id)
        users: Counter[int] = Counter()
        for obj in s3.list_objects_v2(Bucket=RAW, Prefix=names.RATINGS_PREFIX).get("Contents", []):
            text = s3.get_object(Bucket=RAW, Key=obj["Key"])["Body"].read().decode()
            users.update(int(line.split("\t")[0]) for line in text.splitlines() if line)
        now = datetime.now(UTC)
        recs = [{c.ARTIST_ID: 1000 + r, c.SCORE: 90.0 - r, c.RANK: r} for r in range(1, 6)]
        items = [dynamo.user_item(u, run_id, recs, now, 30) for u in users]
        if self.similar != "none":
            listed = [{c.RANK: r, c.ARTIST_ID: LISTED_ARTIST + r, c.SIMILARITY: 0.9 - r / 10} for r in (1, 2)]
            csv_rows = "".join(f"{LISTED_ARTIST},{e[c.RANK]},{e[c.ARTIST_ID]},{e[c.SIMILARITY]}\n" for e in listed)
            s3.put_object(Bucket=CURATED, Key=f"{c.RUNS_PREFIX}/{run_id}/{c.SIMILAR_ARTISTS_CSV_DIR}/"
                                              f"{c.SIMILAR_ARTISTS_CSV_FILE}",
                          Body=(",".join(c.SIMILAR_ARTIST_COLUMNS) + "\n" + csv_rows).encode())
            if self.similar == "published":
                items.append(dynamo.artist_item(LISTED_ARTIST, run_id, listed, now, 30))
        dynamo.write_batches(ddb, TABLE, [*items, dynamo.fallback_item(run_id, recs, now, 30)])
        s3.put_object(Bucket=CURATED, Key=f"{c.RUNS_PREFIX}/{run_id}/{c.SUCCESS_MARKER}", Body=run_id.encode())
        if self.write_latest:
            s3.put_object(Bucket=CURATED, Key=c.LATEST_FILE, Body=json.dumps({"run_id": run_id}).encode())
        dynamo.flip_pointer(ddb, TABLE, self.pointer_run or run_id, 5, force=True)
        rdsdata_backends[ACCOUNT][REGION].results_queue.append(
            QueryResults(records=[[{"stringValue": self.aurora_status}]]))


class FakeGlue:
    """Glue's workflow-run API for the smoke test. moto has these calls, but its workflow runs stay
    RUNNING and carry no Statistics, so the outcome comes from here; a started run runs `job`."""

    def __init__(self, job: Callable[[], None], *, statistics: dict[str, int] | None = None,
                 status: str = "COMPLETED", polls_until_done: int = 2) -> None:
        self.job, self.status, self.polls_until_done = job, status, polls_until_done
        self.statistics = statistics if statistics is not None else {"TotalActions": 1, "SucceededActions": 1}
        self.runs: dict[str, int] = {}  # run id -> polls seen

    def trigger(self) -> str:
        """What the EVENT trigger does once its batch condition is met."""
        run_id = f"wr_{len(self.runs):064d}"
        self.runs[run_id] = 0
        self.job()
        return run_id

    def get_workflow_runs(self, Name: str, NextToken: str | None = None) -> dict[str, Any]:
        assert Name == WORKFLOW
        return {"Runs": [{"WorkflowRunId": r} for r in self.runs]}

    def start_workflow_run(self, Name: str, RunProperties: dict[str, str]) -> dict[str, str]:
        assert Name == WORKFLOW
        return {"RunId": self.trigger()}

    def get_workflow_run(self, Name: str, RunId: str, IncludeGraph: bool) -> dict[str, Any]:
        self.runs[RunId] += 1
        if self.runs[RunId] < self.polls_until_done:
            return {"Run": {"WorkflowRunId": RunId, "Status": "RUNNING"}}
        return {"Run": {"WorkflowRunId": RunId, "Status": self.status, "Statistics": self.statistics}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.on_sleep: list[Callable[[], Any]] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        while self.on_sleep:
            self.on_sleep.pop(0)()

    def sleep_and_wait(self, seconds: float) -> None:
        """Also lets real time pass: moto runs state machine executions on a thread."""
        self.sleep(seconds)
        threading.Event().wait(0.05)


# --- Fixtures -----------------------------------------------------------------------------

def create_stack(name: str, outputs: dict[str, str]) -> None:
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {k: {"Value": v} for k, v in outputs.items()}}
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=name, TemplateBody=json.dumps(template))


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (RAW, CURATED):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST", **c.DDB_TABLE_KEYS)
        yield


@pytest.fixture
def api(aws: None) -> Iterator[FakeApi]:
    server = FakeApi(TABLE)
    yield server
    server.close()


@pytest.fixture
def published_before(aws: None) -> None:
    """An earlier run is live, as in any deployment that has trained once."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=CURATED, Key=c.LATEST_FILE, Body=json.dumps({"run_id": OLD_RUN}).encode())
    s3.put_object(Bucket=CURATED, Key=f"{c.RUNS_PREFIX}/{OLD_RUN}/{c.SUCCESS_MARKER}", Body=OLD_RUN.encode())
    dynamo.flip_pointer(boto3.client("dynamodb", region_name=REGION), TABLE, OLD_RUN, 5)


def deploy_stacks(api_url: str, *, emr_arn: str | None = None, storage_outputs: bool = True) -> None:
    create_stack(f"{PREFIX}-storage", {names.OUTPUT_RAW_BUCKET: RAW, names.OUTPUT_CURATED_BUCKET: CURATED}
                 if storage_outputs else {})
    create_stack(f"{PREFIX}-serving", {names.OUTPUT_TABLE: TABLE, names.OUTPUT_API_URL: api_url})
    create_stack(f"{PREFIX}-training", {names.OUTPUT_WORKFLOW: WORKFLOW})
    create_stack(f"{PREFIX}-analytics", {names.OUTPUT_CLUSTER_ARN: CLUSTER_ARN, names.OUTPUT_SECRET_ARN: SECRET_ARN,
                                         names.OUTPUT_DATABASE: "recommender"})
    if emr_arn:
        create_stack(f"{PREFIX}-emr", {names.OUTPUT_STATE_MACHINE: emr_arn})


def clients(glue: Any) -> Any:
    session = boto3.Session(region_name=REGION)
    return smoke.Clients(account=ACCOUNT, cloudformation=session.client("cloudformation"), s3=session.client("s3"),
                         glue=glue, stepfunctions=session.client("stepfunctions"),
                         dynamodb=session.client("dynamodb"), rds_data=session.client("rds-data"),
                         credentials=session.get_credentials())


def options(**overrides: Any) -> Any:
    return smoke.Options(**{"prefix": PREFIX, "region": REGION, "ratings": N_RATINGS, "timeout_s": 600,
                            "poll_s": 10, **overrides})


def run_smoke(glue: Any, clock: FakeClock | None = None, **overrides: Any) -> tuple[list[Any], FakeClock]:
    clock = clock or FakeClock()
    checks = smoke.Smoke(clients(glue), options(**overrides), clock=clock, sleep=clock.sleep).run()
    return checks, clock


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {ch.name: ch for ch in checks}


# --- A healthy deployment -------------------------------------------------------------------

def test_healthy_deployment_passes_every_check_through_the_event_path(api: FakeApi, published_before: None) -> None:
    deploy_stacks(api.url)
    job = Job()
    glue = FakeGlue(job)
    clock = FakeClock()
    clock.on_sleep.append(glue.trigger)  # the EVENT trigger fires a while after the upload
    checks, _ = run_smoke(glue, clock)

    assert [ch.name for ch in checks] == EXPECTED_CHECKS
    assert {ch.name: ch.status for ch in checks} == dict.fromkeys(EXPECTED_CHECKS, "PASS"), smoke.table(checks)
    assert smoke.exit_code(checks) == 0
    assert len(glue.runs) == 1, "waited for the run the event started, and started none itself"
    run_id = job.run_ids[0]
    latest = by_name(checks)["latest.json newer"].detail
    assert run_id in latest and OLD_RUN in latest
    assert by_name(checks)["training run"].seconds > 0  # timed on the (fake) clock
    # The three API calls reached the fake signed with SigV4 for execute-api in the deployment's region.
    assert len(api.authorizations) == 3 and all(SIGV4.match(a) for a in api.authorizations)
    assert "from " + run_id in by_name(checks)["API recommendations"].detail
    assert by_name(checks)["API similar artists"].detail == f"artist {LISTED_ARTIST}: 2 similar artists from {run_id}"
    # Without --cleanup the upload stays where it was put.
    keys = [o["Key"] for o in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=RAW)["Contents"]]
    assert keys == [f"{names.RATINGS_PREFIX}smoke-{smoke_id_of(checks)}.tsv"]


def smoke_id_of(checks: list[Any]) -> str:
    match = re.search(r"/ratings/smoke-(\S+)\.tsv", by_name(checks)["upload"].detail)
    assert match
    return match.group(1)


def test_start_now_starts_one_run_directly(api: FakeApi, published_before: None) -> None:
    deploy_stacks(api.url)
    glue = FakeGlue(Job())
    checks, _ = run_smoke(glue, start_now=True)
    assert smoke.exit_code(checks) == 0, smoke.table(checks)
    assert len(glue.runs) == 1


def test_the_table_reports_each_check_with_status_and_timing(api: FakeApi, published_before: None) -> None:
    deploy_stacks(api.url)
    checks, _ = run_smoke(FakeGlue(Job(pointer_run=OTHER_RUN)), start_now=True)
    text = smoke.table(checks)
    lines = text.splitlines()[2:]
    for ch in checks:
        row = next(line for line in lines if line.startswith(ch.name + "  "))
        assert re.search(rf"\b{ch.status}\b\s+\d+\.\d\b", row), row
    assert "FAILED:" in text and f"{sum(ch.status == 'PASS' for ch in checks)} of {len(checks)}" in text


# --- Each breakage fails its own check ------------------------------------------------------

def test_pointer_naming_another_run_fails_the_pointer_check(api: FakeApi, published_before: None) -> None:
    deploy_stacks(api.url)
    job = Job(pointer_run=OTHER_RUN)
    checks, _ = run_smoke(FakeGlue(job), start_now=True)
    pointer = by_name(checks)["DynamoDB pointer"]
    assert pointer.status == "FAIL" and OTHER_RUN in pointer.detail and job.run_ids[0] in pointer.detail
    assert by_name(checks)["latest.json newer"].status == "PASS"
    assert by_name(checks)["API recommendations"].status == "FAIL"  # it serves what the pointer names
    assert by_name(checks)["API similar artists"].status == "FAIL"
    assert smoke.exit_code(checks) == 1


@pytest.mark.parametrize("similar, status, detail", [
    ("none", "SKIP", "has no similar artists (the bias-only model won)"),
    ("unserved", "FAIL", f"GET /artists/{LISTED_ARTIST}/similar -> 404"),
])
def test_similar_artists_are_skipped_without_a_list_and_fail_when_not_served(
        api: FakeApi, published_before: None, similar: str, status: str, detail: str) -> None:
    deploy_stacks(api.url)
    checks, _ = run_smoke(FakeGlue(Job(similar=similar)), start_now=True)
    check = by_name(checks)["API similar artists"]
    assert check.status == status and detail in check.detail, check
    assert by_name(checks)["API recommendations"].status == "PASS"


def test_missing_latest_json_fails_and_skips_what_depends_on_it(api: FakeApi) -> None:
    deploy_stacks(api.url)  # nothing was ever published, and the run does not write latest.json
    checks, _ = run_smoke(FakeGlue(Job(write_latest=False)), start_now=True)
    named = by_name(checks)
    assert named["latest.json newer"].status == "FAIL" and "does not exist" in named["latest.json newer"].detail
    assert [named[n].status for n in ("_SUCCESS", "DynamoDB pointer", "Aurora model_runs", "API similar artists",
                                      "API recommendations")] == ["SKIP"] * 5
    assert smoke.exit_code(checks) == 1


def test_latest_json_that_did_not_move_fails(api: FakeApi, published_before: None) -> None:
    deploy_stacks(api.url)
    checks, _ = run_smoke(FakeGlue(Job(write_latest=False)), start_now=True)
    latest = by_name(checks)["latest.json newer"]
    assert latest.status == "FAIL" and f"still names {OLD_RUN}" in latest.detail
    assert smoke.exit_code(checks) == 1


def test_aurora_run_not_published_fails_the_aurora_check(api: FakeApi, published_before: None) -> None:
    deploy_stacks(api.url)
    checks, _ = run_smoke(FakeGlue(Job(aurora_status="failed")), start_now=True)
    aurora = by_name(checks)["Aurora model_runs"]
    assert aurora.status == "FAIL" and "as failed" in aurora.detail
    assert [ch.name for ch in checks if ch.status != "PASS"] == ["Aurora model_runs"]


def test_workflow_run_that_completed_with_a_failed_job_fails_the_run_check(api: FakeApi,
                                                                           published_before: None) -> None:
    deploy_stacks(api.url)
    glue = FakeGlue(lambda: None, statistics={"TotalActions": 1, "FailedActions": 1})
    checks, _ = run_smoke(glue, start_now=True)
    run = by_name(checks)["training run"]
    assert run.status == "FAIL" and "FailedActions" in run.detail
    assert smoke.exit_code(checks) == 1


def test_a_run_that_never_finishes_times_out(api: FakeApi, published_before: None) -> None:
    deploy_stacks(api.url)
    glue = FakeGlue(lambda: None, polls_until_done=10**9)
    checks, clock = run_smoke(glue, start_now=True, timeout_s=120, poll_s=30)
    run = by_name(checks)["training run"]
    assert run.status == "FAIL" and "still running after 120 s" in run.detail
    assert clock.now == pytest.approx(120)


def test_no_run_starting_after_the_upload_fails(api: FakeApi, published_before: None) -> None:
    deploy_stacks(api.url)
    checks, _ = run_smoke(FakeGlue(Job()), timeout_s=300)  # the trigger never fires
    run = by_name(checks)["training run"]
    assert run.status == "FAIL" and "no run started" in run.detail


def test_api_request_without_a_valid_signature_is_refused(api: FakeApi, published_before: None) -> None:
    status, _ = smoke.call_api(f"{api.url}/health", region=REGION, credentials=boto3.Session().get_credentials())
    assert status == 200
    status, _ = smoke.call_api(f"{api.url}/health", region=REGION, credentials=boto3.Session().get_credentials(),
                               bearer_token="not-sigv4")
    assert status == 403
    status, _ = smoke.call_api(f"{api.url}/health", region="eu-west-1", credentials=boto3.Session().get_credentials())
    assert status == 403  # signed for another region


# --- Cleanup --------------------------------------------------------------------------------

def test_cleanup_removes_only_the_uploaded_object(api: FakeApi, published_before: None) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    others = {f"{names.RATINGS_PREFIX}real-ratings.tsv": b"1\t1000\t90\n", "dms/music/ratings/LOAD001.csv": b"x\n"}
    for key, body in others.items():
        s3.put_object(Bucket=RAW, Key=key, Body=body)
    s3.put_object(Bucket=RAW, Key=f"{names.RATINGS_PREFIX}real-ratings.tsv", Body=b"1\t1000\t80\n")  # 2 versions
    before = s3.list_object_versions(Bucket=RAW)["Versions"]
    curated_before = s3.list_object_versions(Bucket=CURATED)["Versions"]
    deploy_stacks(api.url)
    job = Job()
    checks, _ = run_smoke(FakeGlue(job), start_now=True, cleanup=True)

    assert checks[-1].name == "cleanup" and checks[-1].status == "PASS", smoke.table(checks)
    assert smoke.exit_code(checks) == 0
    after = s3.list_object_versions(Bucket=RAW)
    assert sorted((v["Key"], v["VersionId"]) for v in after["Versions"]) == \
        sorted((v["Key"], v["VersionId"]) for v in before)  # every other version untouched, ours gone
    assert "DeleteMarkers" not in after  # deleted by version: no marker, no noncurrent copy left
    # What the run published stays: the smoke test removes only what it added itself.
    curated_after = {(v["Key"], v["VersionId"]) for v in s3.list_object_versions(Bucket=CURATED)["Versions"]}
    assert {(v["Key"], v["VersionId"]) for v in curated_before} <= curated_after
    assert boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=TABLE, Key=dynamo.pointer_key())["Item"][c.DDB_ACTIVE_RUN]["S"] == job.run_ids[0]


def test_cleanup_runs_even_when_the_run_fails(api: FakeApi, published_before: None) -> None:
    deploy_stacks(api.url)
    checks, _ = run_smoke(FakeGlue(lambda: None, status="ERROR", statistics={}), start_now=True, cleanup=True)
    assert by_name(checks)["training run"].status == "FAIL" and by_name(checks)["cleanup"].status == "PASS"
    assert "Versions" not in boto3.client("s3", region_name=REGION).list_object_versions(Bucket=RAW)


# --- Finding the deployment -----------------------------------------------------------------

def test_discovery_reads_outputs_and_derives_bucket_names_by_the_storage_rule(aws: None) -> None:
    deploy_stacks("https://abc.execute-api.us-east-1.amazonaws.com", storage_outputs=False)
    cfn = boto3.client("cloudformation", region_name=REGION)
    dep = smoke.discover(cfn, PREFIX, ACCOUNT, REGION)
    assert (dep.raw_bucket, dep.curated_bucket) == (f"{PREFIX}-raw-{ACCOUNT}-{REGION}",
                                                    f"{PREFIX}-curated-{ACCOUNT}-{REGION}")
    assert (dep.table, dep.workflow, dep.cluster_arn, dep.state_machine) == (TABLE, WORKFLOW, CLUSTER_ARN, None)
    assert dep.missing() == []
    assert dep.stacks == tuple(f"{PREFIX}-{p}" for p in ("storage", "serving", "training", "analytics"))


def test_a_deployment_without_the_outputs_fails_the_first_check(aws: None) -> None:
    create_stack(f"{PREFIX}-storage", {})
    checks, _ = run_smoke(FakeGlue(Job()))
    assert [ch.name for ch in checks] == ["deployment"] and checks[0].status == "FAIL"
    assert names.OUTPUT_API_URL in checks[0].detail and names.OUTPUT_CLUSTER_ARN in checks[0].detail
    assert smoke.exit_code(checks) == 1
    assert "Contents" not in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=RAW)  # nothing uploaded


def test_no_stacks_at_all_fails(aws: None) -> None:
    checks, _ = run_smoke(FakeGlue(Job()))
    assert checks[0].status == "FAIL" and f"no stack named {PREFIX}-*" in checks[0].detail


# --- The runtimes' APIs, on moto ------------------------------------------------------------

def test_glue_workflow_runs_on_moto(aws: None) -> None:
    glue = boto3.client("glue", region_name=REGION)
    glue.create_workflow(Name=WORKFLOW)
    runs = smoke.GlueWorkflowRuns(glue, WORKFLOW)
    assert runs.known() == set()
    run_id = runs.start("smoke-1")
    assert runs.known() == {run_id}
    assert runs.outcome(run_id) is None  # moto's runs stay RUNNING: still waiting


def sfn_machine(definition: dict[str, Any]) -> str:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    return str(sfn.create_state_machine(name=f"{PREFIX}-emr-training", definition=json.dumps(definition),
                                        roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"])


def test_emr_state_machine_path_on_moto(api: FakeApi, published_before: None) -> None:
    arn = sfn_machine({"StartAt": "Run", "States": {"Run": {"Type": "Pass", "End": True}}})
    deploy_stacks(api.url, emr_arn=arn)
    job = Job()
    sfn = boto3.client("stepfunctions", region_name=REGION)

    def event_starts_execution() -> None:  # what the EMR stack's EventBridge rule does
        sfn.start_execution(stateMachineArn=arn, name="s3-event")
        job()

    clock = FakeClock()
    clock.on_sleep.append(event_starts_execution)
    checks = smoke.Smoke(clients(FakeGlue(Job())), options(poll_s=0.01), clock=clock,
                         sleep=clock.sleep_and_wait).run()
    assert smoke.exit_code(checks) == 0, smoke.table(checks)
    assert "EMR state machine" in by_name(checks)["deployment"].detail
    assert "s3-event SUCCEEDED" in by_name(checks)["training run"].detail


def test_failed_emr_execution_fails_the_run_check(api: FakeApi, published_before: None) -> None:
    arn = sfn_machine({"StartAt": "Run", "States": {"Run": {"Type": "Fail", "Error": "JobFailed",
                                                            "Cause": "spark-submit exited 1"}}})
    deploy_stacks(api.url, emr_arn=arn)
    clock = FakeClock()
    checks = smoke.Smoke(clients(FakeGlue(Job())), options(start_now=True, poll_s=0.01), clock=clock,
                         sleep=clock.sleep_and_wait).run()
    run = by_name(checks)["training run"]
    assert run.status == "FAIL" and "FAILED" in run.detail
    assert smoke.exit_code(checks) == 1


# --- The file -------------------------------------------------------------------------------

def test_smoke_file_is_clean_r1_with_users_in_their_own_range() -> None:
    lines, busiest = smoke.smoke_lines(N_RATINGS)
    rows = [line.split(c.R1_SEPARATOR) for line in lines]
    assert len(rows) == N_RATINGS and all(len(r) == 3 for r in rows)
    users = Counter(int(r[0]) for r in rows)
    assert all(smoke.SMOKE_USER_BASE < u <= c.MAX_ID for u in users)
    assert users[busiest] == max(users.values())
    assert all(c.RATING_MIN <= int(r[2]) <= c.RATING_MAX or int(r[2]) == c.NEVER_PLAY_AGAIN for r in rows)


def test_main_builds_its_clients_from_a_session_and_exits_non_zero_on_failure(
        aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(["--prefix", PREFIX, "--region", REGION, "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    assert f"{PREFIX} in {REGION}" in out and "deployment" in out and "FAILED: 0 of 1" in out

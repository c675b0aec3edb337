"""The checks a careful platform team runs: cdk-nag, cfn-lint, no secrets, snapshots, the real CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cdk_app.config import Settings, SettingsError, settings_from_context
from tests.infra.conftest import PROD_CONTEXT, Built, build

pytestmark = pytest.mark.infra
ROOT = Path(__file__).resolve().parents[2]
HASH = re.compile(r"[0-9a-f]{64}")


@pytest.mark.parametrize("context", [{"env": "dev"}, PROD_CONTEXT], ids=["dev", "prod-all-options"])
def test_cdk_nag_aws_solutions_has_no_unacknowledged_findings(context: dict[str, Any]) -> None:
    from cdk_nag import AwsSolutionsChecks

    built = build(context)
    report = AwsSolutionsChecks().validate_scope(built.app)
    findings = [f"{v.rule_name} at {r.construct_path}" for v in report.violations for r in v.violating_resources]
    assert findings == []


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aws_cdk import App

    from cdk_app.app import build as build_app

    out = tmp_path_factory.mktemp("cdk.out")
    for name, context in (("dev", {"env": "dev"}), ("prod", PROD_CONTEXT)):
        app = App(context=context, outdir=str(out / name))
        build_app(app, settings_from_context(app.node.try_get_context))
        app.synth()
    return out


def test_cfn_lint_reports_no_errors(synthesized: Path) -> None:
    templates = sorted(str(p) for p in synthesized.glob("*/*.template.json"))
    assert len(templates) == 13  # dev: 6; prod: imports its VPC (no network stack), adds DMS and EMR
    result = subprocess.run([str(Path(shutil.which("cfn-lint") or "cfn-lint")), "--format", "parseable", *templates],
                            capture_output=True, text=True)
    errors = [line for line in result.stdout.splitlines() if re.search(r":E\d{4}:", line)]
    assert errors == [], "\n".join(errors)


def test_no_secret_password_or_account_id_in_any_template(synthesized: Path) -> None:
    for path in synthesized.glob("*/*.template.json"):
        text = path.read_text()
        # AWS's own public application (the Secrets Manager rotation function) is not our account.
        ours = re.sub(r"arn:aws[-a-z]*:serverlessrepo:[a-z0-9-]+:\d{12}:applications/", "", text)
        for configured in (PROD_CONTEXT["dms"]["secretArn"], PROD_CONTEXT["quicksightPrincipalArn"]):
            ours = ours.replace(configured, "")  # given by configuration, not generated
        assert not re.search(r"\b\d{12}\b", ours), f"{path.name} holds an account id"
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), f"{path.name} holds an access key"
        template = json.loads(text)

        literals = [key for key, value in _leaves(template["Resources"])
                    if isinstance(value, str) and re.search(r"password|secret_?key", key, re.I)]
        assert literals == [], f"{path.name}: literal values under {literals}"


def _leaves(node: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _leaves(v, k)]
    if isinstance(node, list):
        return [leaf for v in node for leaf in _leaves(v, key)]
    return [(key, node)]


def masked(template: dict[str, Any]) -> dict[str, Any]:
    """Asset hashes (and names derived from them) change with any code edit: mask them so a
    snapshot changes only when the infrastructure does."""
    return json.loads(HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True)))


@pytest.mark.parametrize("stack", ["network", "storage", "serving", "analytics", "training", "monitoring"])
def test_template_snapshot(dev: Built, stack: str, snapshot: Any) -> None:
    from syrupy.extensions.json import JSONSnapshotExtension

    assert masked(dev.templates[stack].to_json()) == snapshot.use_extension(JSONSnapshotExtension)


def test_settings_validate_context() -> None:
    assert settings_from_context(lambda k: None).env_name == "dev"
    prod = settings_from_context({"env": "prod", "glueWorkers": "20"}.get)
    assert isinstance(prod, Settings) and prod.job.workers == 20 and prod.deletion_protection
    with pytest.raises(SettingsError, match="env must be one of dev, prod"):
        settings_from_context({"env": "staging"}.get)
    with pytest.raises(SettingsError, match="apiAuth jwt needs jwtIssuer"):
        settings_from_context({"apiAuth": "jwt"}.get)
    with pytest.raises(SettingsError, match="vpcId needs vpcAzs"):
        settings_from_context({"vpcId": "vpc-1"}.get)
    assert settings_from_context({"apiReservedConcurrency": "0"}.get).serving.reserved_concurrency == 0
    with pytest.raises(SettingsError, match="triggerBatchSize must be 1 to 100, got 101; triggerBatchWindowSeconds "
                                            "must be 1 to 900, got 0"):
        settings_from_context({"triggerBatchSize": "101", "triggerBatchWindowSeconds": "0"}.get)
    with pytest.raises(SettingsError, match="apiReservedConcurrency must be 0 \\(no cap\\) to 900, got 950"):
        settings_from_context({"apiReservedConcurrency": "950"}.get)
    from_file = settings_from_context({"settingsFile": "cdk_app/examples/prod-all-options.json",
                                       "glueWorkers": "3"}.get)
    assert from_file.env_name == "prod" and from_file.job.emr and from_file.job.workers == 3  # -c wins over the file
    assert from_file.job.arguments == {"--top-n": "10"} and from_file.dms is not None
    with pytest.raises(SettingsError, match="settingsFile nowhere.json is not a readable JSON object"):
        settings_from_context({"settingsFile": "nowhere.json"}.get)
    with pytest.raises(SettingsError, match="dms context lacks 'secretArn'"):
        settings_from_context({"dms": {"engine": "mysql", "host": "h", "port": 3306, "database": "d",
                                       "tables": ["ratings"]}}.get)


def test_job_arguments_are_checked_against_the_jobs_options_when_settings_are_built() -> None:
    with pytest.raises(SettingsError, match="jobArguments: unknown job argument '--topn' \\(did you mean --top-n"):
        settings_from_context({"jobArguments": {"--topn": "3"}}.get)
    with pytest.raises(SettingsError, match="jobArguments: --top-n must be at least 1, got 0"):
        settings_from_context({"jobArguments": '{"top_n": 0}'}.get)  # -c jobArguments='...' is JSON text
    assert settings_from_context({"jobArguments": {"top_n": 3}}.get).job.arguments == {"--top-n": "3"}


def test_job_arguments_that_clash_with_the_stacks_own_fail_synth() -> None:
    """Each option is fine alone, but the job would refuse the command line it makes: the stack
    publishes under --runs-root, so --output from jobArguments must fail at synth, not each run."""
    from tests.infra.conftest import build

    with pytest.raises(ValueError, match="would not start it: give exactly one of --output DIR"):
        build({"jobArguments": {"--output": "s3://elsewhere/out"}})


def _declared_context_keys(declared: Any) -> list[str]:
    from dataclasses import fields, is_dataclass

    from stacks.options import context_key

    keys: list[str] = []
    for f in fields(declared):
        key, value = context_key(f), getattr(declared, f.name)
        keys += [key] if key else _declared_context_keys(value) if is_dataclass(value) else []
    return keys


def test_every_setting_is_declared_once_with_its_context_key() -> None:
    """The example settings file uses only declared keys (a typo there would be silently ignored),
    and no two fields claim the same key."""
    from cdk_app.config import DEFAULTS

    declared = _declared_context_keys(DEFAULTS["dev"])
    assert len(declared) == len(set(declared)), declared
    assert "glueWorkers" in declared and "apiReservedConcurrency" in declared  # inside the option groups
    assert set(PROD_CONTEXT) - {"env"} <= set(declared)
    built = settings_from_context({**PROD_CONTEXT, "glueWorkers": "7", "auroraMinAcu": "1.5"}.get)
    assert (built.job.workers, built.analytics.min_acu, built.serving.jwt_audience) == (7, 1.5, ("recs-api",))


def test_no_stack_module_imports_the_cdk_app() -> None:
    """Dependencies run from the app down to the stacks: the app reads context and passes options."""
    import ast

    offenders = []
    for path in sorted((ROOT / "stacks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {m}" for m in modules if m == "cdk_app" or m.startswith("cdk_app.")]
    assert offenders == []


@pytest.mark.skipif(not (ROOT / "node_modules" / ".bin" / "cdk").exists(), reason="run `make install` (npm ci)")
def test_the_real_cdk_cli_synthesizes_offline_dev_and_prod_with_every_option(tmp_path: Path) -> None:
    """What `make synth` runs: the CLI with cdk.json's app, and the settings file the suite's prod uses."""
    from tests.infra.conftest import PROD_SETTINGS_FILE

    for name, extra, stacks in (("dev", [], 6), ("prod", ["-c", f"settingsFile={PROD_SETTINGS_FILE}"], 7)):
        result = subprocess.run(["npx", "--no-install", "cdk", "synth", "-q", "--output", str(tmp_path / name),
                                 *extra], cwd=ROOT, capture_output=True, text=True, timeout=600,
                                env={**__import__("os").environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"})
        assert result.returncode == 0, result.stderr[-3000:]
        assert len(list((tmp_path / name).glob("*.template.json"))) == stacks, name
    prod_names = {p.name for p in (tmp_path / "prod").glob("*.template.json")}
    assert {"recsys-prod-ingestion.template.json", "recsys-prod-emr.template.json"} <= prod_names

"""Run ids, option parsing and Glue argument mapping: no JVM needed."""

from __future__ import annotations

import argparse
from dataclasses import fields
from datetime import UTC, datetime

import pytest

from glue_jobs import contracts as c
from glue_jobs.recommender import config as cfg


def test_run_ids_sort_by_time_and_match_the_contract() -> None:
    early = c.new_run_id(datetime(2026, 11, 29, 16, 0, tzinfo=UTC))
    late = c.new_run_id(datetime(2026, 11, 29, 16, 0, 1, tzinfo=UTC))
    assert early.startswith("20261129T160000Z-")
    assert c.is_run_id(early) and c.is_run_id(late)
    assert early < late
    assert not c.is_run_id("2026-11-29")


def test_issue_option_names_parse_to_typed_config() -> None:
    conf = cfg.parse_args(["--input", "a.tsv, b.tsv.gz", "--output", "out/", "--artists", "n.txt",
                           "--top-n", "7", "--ranks", "5,15", "--reg-params", "0.1,0.3",
                           "--max-iter", "4", "--feedback", "explicit", "--score-pairs", "p.tsv",
                           "--seed", "3", "--master", "local[3]", "--dynamodb-ttl-days", "2"])
    assert conf.input.inputs == ("a.tsv", "b.tsv.gz")
    assert conf.sinks.output == "out" and conf.sinks.dynamodb_ttl_days == 2
    m, t = conf.model, conf.tuning
    assert (m.top_n, t.ranks, t.reg_params, m.max_iter, m.seed) == (7, (5, 15), (0.1, 0.3), 4, 3)
    assert conf.input.score_pairs == "p.tsv" and conf.input.artists == "n.txt"
    assert m.feedback is cfg.Feedback.EXPLICIT and t.metric == "rmse"
    assert conf.spark.master == "local[3]"


def test_implicit_feedback_selects_by_ndcg_and_scores_on_unit_scale() -> None:
    conf = cfg.parse_args(["--input", "x", "--output", "y", "--feedback", "implicit"])
    assert conf.model.feedback is cfg.Feedback.IMPLICIT
    assert conf.tuning.metric == "ndcg"
    assert conf.model.feedback.rating_scale == (0.0, 1.0) and not conf.model.feedback.has_ratings
    assert cfg.Feedback.EXPLICIT.rating_scale == (0.0, 100.0) and cfg.Feedback.EXPLICIT.has_ratings
    assert f"{cfg.Feedback.IMPLICIT}" == "implicit"  # metrics and reports print the value


def test_the_metric_default_is_the_feedbacks_in_every_path() -> None:
    # It used to be "rmse" in the dataclass and "the feedback's" on the command line.
    declared = next(o for o in cfg.OPTIONS if o.field == "metric").default
    assert cfg.TuningOptions().metric == declared == cfg.ModelOptions().feedback.default_metric == "rmse"
    for feedback in cfg.Feedback:
        built = cfg.JobConfig.from_fields(inputs=("x",), output="y", feedback=feedback)
        parsed = cfg.parse_args(["--input", "x", "--output", "y", "--feedback", feedback.value])
        assert built.tuning.metric == parsed.tuning.metric == feedback.default_metric


def test_group_defaults_and_fields_are_the_declarations() -> None:
    groups = {f.name: f.type for f in fields(cfg.JobConfig)}
    declared = {(o.group, o.field) for o in cfg.OPTIONS}
    held = {(name, f.name) for name in groups for f in fields(getattr(cfg, str(groups[name])))}
    assert held == declared  # every option has a field, in its group, and every field an option
    defaults = cfg.JobConfig(cfg.InputOptions(("x",)), sinks=cfg.SinkOptions(output="y"))
    for o in cfg.OPTIONS:
        if o.field not in ("inputs", "output"):
            assert getattr(getattr(defaults, o.group), o.field) == o.default, o.flag
            assert o.check(o.default) is None, o.flag  # a default is a valid value
    assert len({o.flag for o in cfg.OPTIONS}) == len({o.field for o in cfg.OPTIONS}) == len(cfg.OPTIONS)


def test_help_lists_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cfg.parse_args(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for o in cfg.OPTIONS:
        assert f"--{o.flag} " in text
    assert "recommendations per user (default: 5)" in text
    assert "ALS ranks to try (default: 10,20,50)" in text


@pytest.mark.parametrize("args, message", [
    (["--top-n", "0"], "--top-n must be at least 1"),
    (["--feedback", "stars"], "--feedback must be explicit, implicit or auto, got 'stars'"),
    (["--similar-n", "501"], r"--similar-n must lie in 1..500 \(one DynamoDB item holds a list\), got 501"),
    (["--folds", "1"], "--folds must be 0"),
    (["--feedback", "implicit", "--metric", "rmse"], "use --metric ndcg"),
    (["--max-quarantine-share", "1.5"], "--max-quarantine-share must lie in 0..1"),
    (["--ranks", "0,10"], "--ranks must be positive"),
    (["--ranks", "a,10"], "--ranks must be comma-separated integers, got 'a,10'"),
    (["--top-n", "many"], "--top-n must be an integer, got 'many'"),
    (["--shuffle-partitions", "-1"], "--shuffle-partitions must be 0 \\(auto\\) or more"),
    (["--runs-root", "r"], "give exactly one of --output DIR"),
    (["--top_n", "3"], "unknown option --top_n \\(did you mean --top-n\\?\\)"),
    (["--top", "3"], "unknown option --top "),  # no prefix abbreviations
    (["3"], "unexpected argument '3'"),
])
def test_bad_options_name_the_problem(args: list[str], message: str) -> None:
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.parse_args(["--input", "x", "--output", "y", *args])


def test_every_problem_is_reported_at_once_and_shared_messages_once() -> None:
    with pytest.raises(cfg.ConfigError) as err:
        cfg.parse_args(["--input", "x", "--output", "y", "--feedback", "stars", "--k", "0",
                        "--dynamodb-ttl-days", "0", "--aurora-batch-size", "0"])
    problems = str(err.value).split("; ")
    assert problems == ["--feedback must be explicit, implicit or auto, got 'stars'", "--k must be at least 1, got 0",
                        "--dynamodb-ttl-days and --aurora-batch-size must be positive, "
                        "--dynamodb-max-writes-per-s not negative"]
    with pytest.raises(cfg.ConfigError, match="--top-n must be at least 1, got 0"):
        cfg.ModelOptions(top_n=0)  # a group built directly is checked too
    with pytest.raises(cfg.ConfigError, match="not both"):
        cfg.JobConfig(cfg.InputOptions(("x",)),
                      sinks=cfg.SinkOptions(output="o", aurora_url="u", aurora_secret_arn="a"))


def test_a_mistyped_option_on_the_command_line_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    from glue_jobs.recommender.main import main

    assert main(["--input", "x", "--output", "y", "--top_n", "3"]) == 2
    assert "unknown option --top_n (did you mean --top-n?)" in capsys.readouterr().err


def test_glue_arguments_go_through_get_resolved_options() -> None:
    asked: list[list[str]] = []

    def fake_get_resolved_options(argv: list[str], names: list[str]) -> dict[str, str]:
        asked.append(names)
        # awsglue returns argparse dests, where '-' became '_'
        return {n.replace("-", "_"): argv[argv.index(f"--{n}") + 1] for n in names}

    argv = ["script.py", "--JOB_NAME", "j", "--input", "s3://raw/ratings/", "--output", "s3://cur/run",
            "--top-n", "10", "--job-bookmark-option", "job-bookmark-disable", "--TempDir", "s3://tmp/"]
    line = cfg.glue_argv(argv, fake_get_resolved_options)
    assert sorted(asked[0]) == ["input", "output", "top-n"]  # absent options are not asked for
    conf = cfg.parse_args(line)  # strict: Glue's own options were left out
    assert conf.input.inputs == ("s3://raw/ratings/",) and conf.model.top_n == 10
    with pytest.raises(cfg.ConfigError, match="unknown option --JOB_NAME"):
        cfg.parse_args(argv[1:])


@pytest.mark.parametrize("key", ["--top-n", "top-n", "top_n"])
def test_job_arguments_take_flags_or_field_names_and_give_glue_flags(key: str) -> None:
    assert cfg.job_arguments({key: 3, "ranks": [4, 8], "feedback": "implicit"}) == {
        "--top-n": "3", "--ranks": "4,8", "--feedback": "implicit"}


@pytest.mark.parametrize("values, message", [
    ({"--top_n_x": "3"}, "unknown job argument '--top_n_x' \\(did you mean --top-n\\?\\)"),
    ({"--top-n": "-1"}, "--top-n must be at least 1, got -1"),
    ({"--top-n": "three"}, "--top-n must be an integer, got 'three'"),
    ({"--feedback": "stars"}, "--feedback must be explicit, implicit or auto"),
    ({"--master": "local[4]"}, "--master applies to local runs only"),
    ({"--driver-memory": "8g"}, "--driver-memory applies to local runs only"),
    ({"top_n": 3, "--top-n": 4}, "repeats --top-n"),
])
def test_job_arguments_are_checked_at_synth_time(values: dict[str, object], message: str) -> None:
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.job_arguments(values)


def test_job_arguments_pass_unresolved_tokens_unchecked() -> None:
    token = "${Token[TOKEN.123]}"
    assert cfg.job_arguments({"--input": f"s3://{token}/ratings/", "top-n": token}) == {
        "--input": f"s3://{token}/ratings/", "--top-n": token}


def test_other_command_lines_reuse_the_sink_declarations() -> None:
    parser = argparse.ArgumentParser()
    cfg.add_options(parser, ["runs-root", "dynamodb-table", "dynamodb-ttl-days"], required=["runs-root"])
    sinks = cfg.sink_options(parser.parse_args(["--runs-root", "s3://cur/", "--dynamodb-ttl-days", "3"]))
    assert sinks == cfg.SinkOptions(runs_root="s3://cur", dynamodb_ttl_days=3)
    assert cfg.sink_options(parser.parse_args(["--runs-root", "r"])).dynamodb_ttl_days == 30
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --runs-root is required there
    with pytest.raises(cfg.ConfigError, match="--dynamodb-ttl-days and --aurora-batch-size must be positive"):
        cfg.sink_options(parser.parse_args(["--runs-root", "r", "--dynamodb-ttl-days", "0"]))
    with pytest.raises(cfg.ConfigError, match="no option --runs_rot \\(did you mean --runs-root\\?\\)"):
        cfg.add_options(argparse.ArgumentParser(), ["runs_rot"])


@pytest.mark.parametrize("requested, master, cluster, expected", [
    (0, "local[2]", None, 4),         # the laptop default: every core busy, twice over
    (0, "local", None, 2),
    (0, "local[3,2]", None, 6),       # local[N,retries]
    (0, "yarn", 72, 144),             # a cluster: from the slots Spark reports (9 G.2X executors)
    (0, "yarn", None, 4),
    (16, "yarn", 72, 16),             # asked for: kept
])
def test_shuffle_partitions_follow_the_cores_unless_set(requested: int, master: str, cluster: int | None,
                                                        expected: int) -> None:
    assert cfg.shuffle_partitions_for(requested, master, cluster) == expected
    assert cfg.parse_args(["--input", "x", "--output", "y"]).spark.shuffle_partitions == 0

"""Run ids, option parsing and Glue argument mapping: no JVM needed."""

from __future__ import annotations

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
                           "--seed", "3"])
    assert conf.inputs == ("a.tsv", "b.tsv.gz")
    assert conf.output == "out"
    assert (conf.top_n, conf.ranks, conf.reg_params, conf.max_iter, conf.seed) == (7, (5, 15), (0.1, 0.3), 4, 3)
    assert conf.score_pairs == "p.tsv" and conf.artists == "n.txt"
    assert conf.metric == "rmse"


def test_implicit_feedback_selects_by_ndcg_and_scores_on_unit_scale() -> None:
    conf = cfg.parse_args(["--input", "x", "--output", "y", "--feedback", "implicit"])
    assert conf.metric == "ndcg"
    assert conf.rating_scale == (0.0, 1.0)


@pytest.mark.parametrize("args, message", [
    (["--top-n", "0"], "--top-n must be at least 1"),
    (["--feedback", "stars"], "--feedback must be explicit or implicit"),
    (["--folds", "1"], "--folds must be 0"),
    (["--feedback", "implicit", "--metric", "rmse"], "use --metric ndcg"),
    (["--max-quarantine-share", "1.5"], "--max-quarantine-share must lie in 0..1"),
    (["--ranks", "0,10"], "--ranks must be positive"),
    (["--shuffle-partitions", "-1"], "--shuffle-partitions must be 0 \\(auto\\) or more"),
])
def test_bad_options_name_the_problem(args: list[str], message: str) -> None:
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.parse_args(["--input", "x", "--output", "y", *args])


def test_glue_arguments_go_through_get_resolved_options() -> None:
    asked: list[list[str]] = []

    def fake_get_resolved_options(argv: list[str], names: list[str]) -> dict[str, str]:
        asked.append(names)
        # awsglue returns argparse dests, where '-' became '_'
        return {n.replace("-", "_"): argv[argv.index(f"--{n}") + 1] for n in names}

    argv = ["script.py", "--JOB_NAME", "j", "--input", "s3://raw/ratings/", "--output", "s3://cur/run",
            "--top-n", "10", "--job-bookmark-option", "job-bookmark-disable"]
    line = cfg.glue_argv(argv, fake_get_resolved_options)
    assert asked == [["input", "output", "top-n"]]  # absent options are not asked for
    conf = cfg.parse_args(line)
    assert conf.inputs == ("s3://raw/ratings/",) and conf.top_n == 10


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
    assert cfg.parse_args(["--input", "x", "--output", "y"]).shuffle_partitions == 0

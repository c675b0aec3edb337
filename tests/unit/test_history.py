"""`publish history`: the last runs side by side, from a runs root or from Aurora's model_runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import __main__ as publish_cli
from glue_jobs.recommender.publish import aurora
from tests.sample_metrics import metrics_json

OLD, MIDDLE, NEW = "20261128T090000Z-aaaa", "20261129T100000Z-bbbb", "20261130T110000Z-cccc"
UNFINISHED = "20261201T120000Z-dddd"  # newest, but no _SUCCESS: not a run anyone may use


def run_doc(run_id: str, ratings: int, rank: int, rmse: float) -> dict[str, object]:
    counts = {**metrics_json()["counts"], "ratings": ratings, "users": ratings // 50}  # type: ignore[dict-item]
    return metrics_json(run_id=run_id, counts=counts, rmse=rmse,
                        best_params={"rank": rank, "reg_param": 0.05, "popularity_weight": 10.0},
                        timings_s={"read_validate": 1.25, "tune": 20.0, "fit": 3.0})


RUNS = [run_doc(OLD, 10_000, 10, 18.5), run_doc(MIDDLE, 12_345, 20, 17.25), run_doc(NEW, 15_000, 50, 16.0)]


def runs_root(root: Path, active: str = MIDDLE) -> Path:
    """Three complete runs, one unfinished, latest.json naming `active` (a rollback made it older)."""
    for doc in [*RUNS, run_doc(UNFINISHED, 1, 1, 99.0)]:
        run = Path(c.run_path(str(root), str(doc["run_id"])))
        run.mkdir(parents=True)
        (run / c.METRICS_FILE).write_text(json.dumps(doc))
        if doc["run_id"] != UNFINISHED:
            (run / c.SUCCESS_MARKER).write_text(str(doc["run_id"]))
    (root / c.LATEST_FILE).write_text(json.dumps({"run_id": active}))
    return root


def history(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = publish_cli.main(["history", *args])
    out = capsys.readouterr()
    return code, (out.out or out.err).splitlines()


def check_table(lines: list[str], active: str) -> None:
    """Newest first, only complete runs, the active one marked, each run's figures on its line."""
    body = lines[2:]
    assert [line.split()[1] if line.startswith("active") else line.split()[0] for line in body] == [NEW, MIDDLE, OLD]
    by_run = {run_id: next(line for line in body if run_id in line) for run_id in (OLD, MIDDLE, NEW)}
    assert [run_id for run_id, line in by_run.items() if line.startswith("active")] == [active]
    assert "NDCG@10 / popularity" in lines[1]
    middle = by_run[MIDDLE]
    for figure in ("2026-11-29 10:00", "12,345", "246", " 20 ", "0.05", "17.25 / 20.10", "0.1170 / 0.0760",
                   "24.2 s"):
        assert figure in middle, figure


def test_runs_root_history_newest_first_with_the_active_run_marked(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = history(capsys, "--runs-root", str(runs_root(tmp_path)))
    assert code == 0 and lines[0].startswith("last 3 run(s) under")
    assert UNFINISHED not in "\n".join(lines)
    check_table(lines, MIDDLE)


def test_last_limits_the_runs_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = history(capsys, "--runs-root", str(runs_root(tmp_path)), "--last", "2")
    assert code == 0 and len(lines) == 4 and NEW in lines[2] and MIDDLE in lines[3]
    assert history(capsys, "--runs-root", str(tmp_path), "--last", "0")[0] == 2


def test_an_empty_root_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = history(capsys, "--runs-root", str(tmp_path / "nothing-here"))
    assert code == 0 and lines == [f"no complete runs under {tmp_path / 'nothing-here'} (none of runs/*/ has "
                                   f"{c.SUCCESS_MARKER})"]


def test_history_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = history(capsys)
    assert code == 2 and "history needs --runs-root ROOT, or --aurora-url" in lines[0]
    assert publish_cli.main(["status"]) == 2  # the other commands still need --runs-root
    assert "status needs --runs-root" in capsys.readouterr().err


def test_model_runs_history_when_only_aurora_is_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engine = sa.create_engine(url)
    aurora.migrate(engine)
    assert history(capsys, "--aurora-url", url)[1] == [f"no runs recorded in {c.SQL_MODEL_RUNS} yet"]
    for doc, status in zip(RUNS, ("superseded", "published", "superseded"), strict=True):
        aurora.record_run(engine, str(doc["run_id"]), status, **aurora.run_fields(doc))
    aurora.record_run(engine, UNFINISHED, "failed", **aurora.run_fields(run_doc(UNFINISHED, 1, 1, 99.0)))
    engine.dispose()
    code, lines = history(capsys, "--aurora-url", url, "--last", "4")
    assert code == 0 and lines[0].startswith(f"last 4 run(s) in {c.SQL_MODEL_RUNS}")
    assert lines[2].startswith("failed") and UNFINISHED in lines[2]  # what model_runs says, shown as it is
    check_table([lines[0], lines[1], *lines[3:]], MIDDLE)

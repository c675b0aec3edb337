"""The bias-only model is a candidate: where ALS does not help, the run still publishes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glue_jobs import contracts as c
from glue_jobs.recommender.config import JobConfig
from glue_jobs.recommender.main import execute

pytestmark = pytest.mark.spark


def biases_and_noise(path: Path, seed: int = 3) -> Path:
    """Ratings that are global mean + user bias + artist bias + noise: nothing for factors to learn."""
    rng = np.random.default_rng(seed)
    users, artists = 400, 300
    b_u, b_i = rng.normal(0, 12, users), rng.normal(0, 12, artists)
    lines = []
    for u in range(users):
        for a in rng.choice(artists, size=40, replace=False):
            rating = int(np.clip(round(50 + b_u[u] + b_i[a] + rng.normal(0, 15)), 0, 100))
            lines.append(f"{u + 1}\t{a + 1000}\t{rating}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("model_on", ["numpy", "spark"])
def test_where_als_does_not_help_the_bias_model_wins_and_is_published(spark, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                       model_on: str) -> None:
    data = biases_and_noise(tmp_path / "ratings.tsv")
    bound = {"numpy": 3_000_000, "spark": 8_000}[model_on]  # 16,000 ratings: above 8,000, Spark fits
    conf = JobConfig.from_fields(inputs=(str(data),), output=str(tmp_path / "out"), ranks=(10, 20),
                                 reg_params=(0.01,), max_iter=8, popularity_weights=(0.0, 0.1),
                                 shuffle_partitions=2, sample_ratings=bound)
    m = execute(spark, conf).metrics
    assert m.spark["model"] == model_on
    by_rank = {g["rank"]: g["rmse"] for g in m.grid}
    assert set(by_rank) == {0, 10, 20}, "the bias-only model is tried beside every ALS candidate"
    assert by_rank[0] < min(by_rank[10], by_rank[20]), "on pure biases + noise, factors only fit noise"
    assert (m.best_params.rank, m.best_params.reg_param) == (0, 0.0)
    # The chosen model is the bias baseline itself: the same test errors, and the gate passes.
    assert m.test.rmse == m.test.baselines.bias_rmse and m.test.mae == m.test.baselines.bias_mae
    assert m.quality_gate.passed
    assert m.counts.recommendations == m.counts.users * m.top_n > 0
    saved = json.loads((tmp_path / "out" / c.METRICS_FILE).read_text())
    assert saved["best_params"]["rank"] == 0
    report = (tmp_path / "out" / c.REPORT_FILE).read_text()
    assert "bias-only model" in report
    # No factors, no similar artists: none counted, no files, and the report says why.
    assert (m.counts.similar_artists, m.counts.similar_lists) == (0, 0)
    assert not (tmp_path / "out" / c.SIMILAR_ARTISTS_DIR).exists()
    assert not (tmp_path / "out" / c.SIMILAR_ARTISTS_CSV_DIR).exists()
    assert "Similar artists: none this run (rank 0" in report

"""--tune-eval-users: validation NDCG on the driver (the popularity-weight curve, NDCG-chosen
candidates) covers a seeded draw of at most that many validation users; RMSE keeps every rating."""

from __future__ import annotations

import numpy as np

from glue_jobs import datagen
from glue_jobs.recommender import local_eval, tuning
from glue_jobs.recommender.config import ModelOptions, TuningOptions
from tests.unit.test_bias_reg import tuning_data


def fold(data: tuning.TuningData, bound: int, seed: int = 42) -> tuning.LocalFold:
    options = TuningOptions(tune_eval_users=bound, popularity_weights=(0.0,))
    return tuning.local_folds(data, ModelOptions(seed=seed), options, 10.0)[0]


def test_the_validation_ranking_covers_a_seeded_draw_of_at_most_the_bound() -> None:
    generated = datagen.generate(30_000, seed=5, bad_share=0.0)
    keep = generated.ratings <= 100
    data = tuning_data(generated.users[keep], generated.artists[keep], generated.ratings[keep])
    valid = data.ratings.subset(data.in_valid)
    liked = local_eval.liked(valid.values, TuningOptions().relevance_threshold)
    everyone = np.unique(valid.users[liked])
    assert everyone.size > 200

    whole = fold(data, 0)
    assert whole.task.users.tolist() == everyone.tolist()
    some = fold(data, 200)
    assert some.task.users.size == 200 and set(some.task.users) <= set(everyone)
    # each chosen user keeps every liked validation rating, and nobody else's are there
    keys = set(some.task.relevant.tolist())
    chosen = {int(u): row for row, u in enumerate(some.task.users)}
    expected = {chosen[int(u)] * data.ratings.n_items + int(i) for u, i in zip(valid.users[liked], valid.items[liked])
                if int(u) in chosen}
    assert keys == expected
    assert fold(data, 200).task.users.tolist() == some.task.users.tolist()  # seeded
    assert fold(data, 200, seed=7).task.users.tolist() != some.task.users.tolist()
    # RMSE is not sampled: the validation ratings are all there
    assert some.valid.values.size == whole.valid.values.size == valid.values.size

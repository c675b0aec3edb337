"""The input guard: a run whose validated input shrank or changed shape too much against the run
published under --runs-root stops before training, so a truncated DMS full load or a half-copied
upload never replaces a good model.

Plain Python over two runs' input profiles (metrics.InputProfile), tested without Spark; the
published run is read by reuse.read_published, like the tuning reuse reads it.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from glue_jobs.recommender.config import GateOptions
from glue_jobs.recommender.errors import JobFailed
from glue_jobs.recommender.metrics import InputComparison, InputProfile, total_variation_distance
from glue_jobs.recommender.reuse import Previous

log = logging.getLogger("recommender")
PASSED, REFUSED, NOT_COMPARED = "passed", "refused", "not compared"


def compare(profile: InputProfile, published: Previous, gates: GateOptions) -> InputComparison:
    """This run's input against the published run's: refused when the learnable ratings fell below
    (1 - --max-shrink) times the published run's, or the rating histograms are further apart than
    --max-histogram-shift (total variation distance). A published run from before input profiles
    compares ratings only; no published run compares nothing."""
    previous = published.metrics
    if previous is None:
        return InputComparison(NOT_COMPARED, f"nothing to compare with: {published.missing}",
                               ratings=profile.ratings, max_shrink=gates.max_shrink,
                               max_histogram_shift=gates.max_histogram_shift)
    before = previous.input_profile
    old = before.ratings if before else previous.counts.ratings
    tvd = round(total_variation_distance(profile.shares, before.shares), 6) if before else None
    refused = _shrank(profile.ratings, old, gates) or _shifted(tvd, gates)
    what = ("ratings and rating histogram" if before else
            f"ratings only: {previous.run_id}'s metrics.json has no input profile (an older run)")
    return InputComparison(
        REFUSED if refused else PASSED, f"compared with published run {previous.run_id}: {what}",
        previous.run_id, old, profile.ratings, round(1 - profile.ratings / max(old, 1), 6), gates.max_shrink,
        tvd, gates.max_histogram_shift, previous_profile=before)


def _shrank(ratings: int, previous: int, gates: GateOptions) -> bool:
    return ratings < (1 - gates.max_shrink) * previous


def _shifted(tvd: float | None, gates: GateOptions) -> bool:
    return tvd is not None and tvd > gates.max_histogram_shift


def refusal(found: InputComparison, gates: GateOptions) -> str:
    """Why the guard refused the input, naming both runs' figures and the override."""
    assert found.ratings is not None and found.previous_ratings is not None and found.drop is not None
    broken = []
    if _shrank(found.ratings, found.previous_ratings, gates):
        broken.append(f"ratings dropped by more than --max-shrink {gates.max_shrink:g}")
    if _shifted(found.histogram_tvd, gates):
        broken.append(f"the rating histogram moved more than --max-histogram-shift {gates.max_histogram_shift:g}")
    tvd = "not recorded by the published run" if found.histogram_tvd is None else f"{found.histogram_tvd:.3f}"
    return (f"input guard refused this input: {' and '.join(broken)}. Learnable ratings "
            f"{found.ratings:,} against {found.previous_ratings:,} in published run {found.previous_run_id} "
            f"(a drop of {found.drop:.1%}, limit {gates.max_shrink:.0%}); rating histogram total variation "
            f"distance {tvd} (limit {gates.max_histogram_shift:g}). A truncated or half-copied input? If the "
            "change is planned, run again with --allow-shrink (Glue job argument --allow-shrink true). "
            "Nothing was trained or published.")


def check_input(profile: InputProfile, published: Previous, gates: GateOptions) -> InputComparison:
    """compare(), then JobFailed on a refusal unless --allow-shrink overrides it; logged in one line
    either way."""
    found = compare(profile, published, gates)
    if found.verdict == NOT_COMPARED:
        log.info("input guard: %s", found.reason)
        return found
    figures = (f"{found.ratings:,} learnable ratings against {found.previous_ratings:,} "
               f"(drop {found.drop:.1%}), histogram TVD "
               f"{'n/a' if found.histogram_tvd is None else f'{found.histogram_tvd:.3f}'}")
    if found.verdict == PASSED:
        log.info("input guard: passed, %s; %s", figures, found.reason)
        return found
    if not gates.allow_shrink:
        raise JobFailed(refusal(found, gates))
    log.warning("input guard: would refuse this input (%s) but --allow-shrink overrides it; %s", figures,
                found.reason)
    return replace(found, overridden=True)

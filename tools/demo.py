"""`make demo`: generates R1-layout sample data, runs the job on it and shows what came out."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from glue_jobs import contracts as c  # noqa: E402
from glue_jobs import datagen  # noqa: E402
from glue_jobs.recommender.main import main  # noqa: E402

DEMO = ROOT / ".demo"
N_RATINGS = 100_000


def show_recommendations(out: Path, users: int = 3) -> None:
    part = next((out / c.RECOMMENDATIONS_CSV_DIR).glob("part-*.csv"))
    with part.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    shown: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row[c.USER_ID] in shown or len(shown) < users:
            shown.setdefault(row[c.USER_ID], []).append(row)
    for user, recs in shown.items():
        print(f"\nuser {user}:")
        for r in recs:
            print(f"  {r[c.RANK]}. {r[c.ARTIST_NAME]:<24} (artist {r[c.ARTIST_ID]:>6})  "
                  f"predicted rating {float(r[c.SCORE]):5.1f}")


def main_demo() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    data = datagen.generate(N_RATINGS, seed=42)
    datagen.write_r1(DEMO / "data" / "ratings.tsv", datagen.r1_lines(data, 42))
    datagen.write_artist_names(DEMO / "data" / "artists.txt", datagen.artist_names(data.artists, 42))
    print(f"generated {N_RATINGS} ratings + {len(data.bad_lines)} bad rows in {DEMO / 'data'}")
    out = DEMO / "output"
    argv = ["--input", str(DEMO / "data" / "ratings.tsv"), "--artists", str(DEMO / "data" / "artists.txt"),
            "--output", str(out)]
    print("python -m glue_jobs.recommender " + " ".join(argv))
    code = main(argv)
    if code:
        return code
    metrics = json.loads((out / c.METRICS_FILE).read_text())
    base = metrics["baselines"]
    print("\ntest split           model    baseline")
    print(f"RMSE              {metrics['rmse']:8.3f}    {base['bias_rmse']:8.3f} (bias)  "
          f"{base['global_mean_rmse']:8.3f} (global mean)")
    print(f"MAE               {metrics['mae']:8.3f}    {base['bias_mae']:8.3f} (bias)")
    for name in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k"):
        print(f"{name.replace('_at_k', '@' + str(metrics['k'])):<16}  {metrics[name]:8.4f}    "
              f"{base['popularity_' + name]:8.4f} (popularity)")
    print(f"quarantined rows by reason: { {k: v for k, v in metrics['quarantine'].items() if v} }")
    show_recommendations(out)
    print(f"\nall outputs: {out}\nreport: {out / c.REPORT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main_demo())

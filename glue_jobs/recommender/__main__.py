"""`python -m glue_jobs.recommender ...` (see glue_jobs.recommender.main)."""

import sys

from glue_jobs.recommender.main import main

sys.exit(main())

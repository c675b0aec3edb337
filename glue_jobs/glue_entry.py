"""The script AWS Glue (and spark-submit on EMR) runs; the glue_jobs package ships beside it
as --extra-py-files, so this file holds no logic."""

import sys

from glue_jobs.recommender.main import main

if __name__ == "__main__":
    sys.exit(main())

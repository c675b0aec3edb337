"""The recommender Spark job: bias-aware ALS, evaluation, top-N and outputs."""

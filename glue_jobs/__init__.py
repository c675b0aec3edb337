"""Spark jobs (AWS Glue, EMR or local) and the data contracts shared with Lambdas and stacks."""

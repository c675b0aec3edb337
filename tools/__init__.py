"""Command-line tools (demo, smoke test, benchmarks) and the Lambda event helpers they share with the tests."""

"""The CDK app: entry point and typed settings per environment."""

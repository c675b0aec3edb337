"""One module per stack; the reusable constructs they wire live in stacks/constructs.py."""

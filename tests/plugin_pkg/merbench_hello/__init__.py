"""merbench-hello: a minimal merbench method living outside the repository."""

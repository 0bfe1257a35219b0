"""Benchmarks: ``tsunagu bench`` (pipeline against passthrough) and the identity bench."""

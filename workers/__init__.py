"""Execution: worker loops that run objectives against the study store (Ray-based sweeps, the
muP proxy trainer and its models come with their issues), and the synthetic objectives."""

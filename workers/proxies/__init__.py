"""muP proxy models (a GPT and an MLP, in SP, muP or depth-muP), their data, their trainer,
the coordinate check, and the ``proxy:gpt`` / ``proxy:mlp`` objectives sweeps run."""

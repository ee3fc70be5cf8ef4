"""The scaling module's one error type: a message the CLI prints as one line."""


class ScalingError(ValueError):
    """Bad input to a fit or a recommendation (a malformed CSV, too few scales, an unknown
    law), with what to do about it."""

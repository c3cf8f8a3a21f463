"""The one exception the bench raises, so a broken bench is never mistaken for a failing test."""


class BenchError(RuntimeError):
    """A bench service could not be found, started, probed or stopped."""

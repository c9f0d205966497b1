"""A clock that tests move by hand, for objects that take one (``clock=``)."""


class ManualClock:
    """Seconds on a clock that stands still until a test sets ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

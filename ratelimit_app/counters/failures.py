"""Failure counting for bans: pure logic shared by the backends (and failures.lua)."""

from dataclasses import dataclass

from ratelimit_app.counters.algorithms import US, State


@dataclass(frozen=True, slots=True)
class FailureCounter:
    """Failures under ``failure_key``; at ``threshold`` within ``window`` seconds a ban of
    ``cooldown`` seconds is written under ``ban_key`` and the count starts again."""

    failure_key: str
    ban_key: str
    threshold: int
    window: int
    cooldown: int


@dataclass(frozen=True, slots=True)
class FailureResult:
    count: int
    banned: bool
    expires_at_us: int


def record(
    state: State | None, ban_state: State | None, now: int, counter: FailureCounter
) -> tuple[State | None, State | None, "FailureResult"]:
    """One failure: returns (new count state or None to delete, ban state or None, result).

    The count state is (count, window end); the ban state is (banned_at, expires_at).
    Exactly one failure reaches the threshold, however many arrive at once, and
    failures that arrive while a ban is in force (requests already past the check)
    are not counted: one burst gives one ban.
    """
    if ban_state and ban_state[1] > now:
        return state, None, FailureResult(state[0] if state else 0, False, 0)
    if state and state[1] > now:
        count, window_end = state[0] + 1, state[1]
    else:
        count, window_end = 1, now + counter.window * US
    if count >= counter.threshold:
        expires_at = now + counter.cooldown * US
        return None, (now, expires_at), FailureResult(count, True, expires_at)
    return (count, window_end), None, FailureResult(count, False, 0)

"""Verdict: what the pipeline decided for one request, and the response of a denial."""

from dataclasses import dataclass
from typing import Any

from django.http import HttpResponse

from ratelimit_app import responses
from ratelimit_app.bans.watch import BanWatch
from ratelimit_app.counters.base import Decision


@dataclass(frozen=True, slots=True)
class Verdict:
    """What happened to one request: its Decision, or why there is none.

    ``decision`` is None when no limit applies or the counter store failed
    (``unavailable``); ``allowed`` already folds in the failure mode. ``watched`` is the
    ban stage's view of a watched token request, for failure counting after the view.
    ``local`` when this process's record of denials answered, with no store call.
    ``tenant_inactive`` when the request's tenant is not active: refused (403), uncounted.
    """

    decision: Decision | None
    group: str | None
    allowed: bool = True
    unavailable: bool = False
    retry_after: float = 0.0
    watched: BanWatch | None = None
    local: bool = False
    tenant_inactive: bool = False
    # The keyed hash of the API key the request presented, if any ("" otherwise).
    api_key_party: str = ""


NOT_LIMITED = Verdict(decision=None, group=None)


def tenant_inactive(group: str | None) -> Verdict:
    """The Verdict of a request whose tenant is inactive (Tenant.active off): refused."""
    return Verdict(decision=None, group=group, allowed=False, tenant_inactive=True)


def from_decision(
    decision: Decision,
    group: str | None,
    watched: BanWatch | None = None,
    local: bool = False,
    api_key_party: str = "",
) -> Verdict:
    """The Verdict of a Decision the counter store (or the ban rows, or with ``local`` the
    process's record of denials) gave; ``api_key_party`` is the presented key's."""
    return Verdict(
        decision=decision,
        group=group,
        allowed=decision.allowed,
        retry_after=decision.retry_after,
        watched=watched,
        local=local,
        api_key_party=api_key_party,
    )


def unavailable(group: str | None, config: dict[str, Any]) -> Verdict:
    """The Verdict when the counter store cannot answer: FAILURE_MODE decides."""
    if config["FAILURE_MODE"] == "closed":
        return Verdict(
            decision=None,
            group=group,
            allowed=False,
            unavailable=True,
            retry_after=float(config["BREAKER_COOLDOWN"]),
        )
    return Verdict(decision=None, group=group, unavailable=True)


def denial_response(verdict: Verdict) -> HttpResponse | None:
    """The response that replaces the view for a denied Verdict, or None if allowed."""
    if verdict.allowed:
        return None
    if verdict.tenant_inactive:
        return responses.tenant_inactive_response()
    if verdict.decision is None:  # the counter store did not answer (fail-closed)
        return responses.unavailable_response(verdict.retry_after)
    return responses.throttled_response(verdict.decision)

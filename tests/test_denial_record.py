"""The process's record of denials (DENY_CACHE_SIZE): a client already denied is
answered without a store call until its Retry-After on the limiter's clock, never after
the store lost its counters, and not at all when the record is off."""

import pytest
from django.test import RequestFactory

from ratelimit_app import runtime
from ratelimit_app.enforcement import pipeline

pytestmark = pytest.mark.django_db


def admin_verdict(demo_data):
    """The Verdict of one request to the Admin group with the free tenant's key."""
    key = {"HTTP_X_API_KEY": demo_data["free"]}
    return pipeline.check(RequestFactory().get("/acp/admin/ping", **key))


def test_only_denials_answered_by_the_process_record_are_marked_local(demo_data, clock):
    # the free tier's Admin burst is 50 (tenant-api-group-tiers.md)
    verdicts = [admin_verdict(demo_data) for _ in range(53)]
    # The store answers until the first denial; the process's record of it the rest.
    assert [(v.allowed, v.local) for v in verdicts[48:]] == [
        (True, False),
        (True, False),
        (False, False),
        (False, True),
        (False, True),
    ]


def test_a_denial_remembered_by_the_process_ends_on_the_limiters_clock(demo_data, clock):
    # tenant-api-group-tiers.md: the free tier's Admin group takes 50 at once.
    verdicts = [admin_verdict(demo_data) for _ in range(52)]
    assert [(v.allowed, v.local) for v in verdicts[-2:]] == [(False, False), (False, True)]
    clock[0] += verdicts[-1].retry_after  # the moment the store would admit one again
    after = admin_verdict(demo_data)
    assert (after.allowed, after.local) == (True, False)


def test_without_a_record_of_denials_every_request_asks_the_store(demo_data, clock, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "DENY_CACHE_SIZE": 0}
    verdicts = [admin_verdict(demo_data) for _ in range(53)]
    assert [(v.allowed, v.local) for v in verdicts[49:]] == [(True, False)] + [(False, False)] * 3


def test_a_store_that_lost_its_state_clears_the_record_of_denials(demo_data, clock, monkeypatch):
    """A Redis store tells the policy revision it knows with each answer (0 after a flush
    or restart): the process's record of denials mirrors counters that are then gone."""
    backend = runtime.get_backend()
    real_check, told = backend.check, [runtime.get_snapshot().revision]

    def check(specs, cost, now=None):
        decision = real_check(specs, cost, now=now)
        decision.policy_revision = told[0]
        return decision

    monkeypatch.setattr(backend, "check", check)
    # tenant-api-group-tiers.md: the free tier's Admin group takes 50 at once.
    verdicts = [admin_verdict(demo_data) for _ in range(52)]
    assert [(v.allowed, v.local) for v in verdicts[-2:]] == [(False, False), (False, True)]
    told[0] = 0  # the store was flushed: the next answer (another counter's) says so
    assert pipeline.check(RequestFactory().get("/v1/status")).allowed
    after = admin_verdict(demo_data)
    assert after.local is False  # asked the store again, not the stale record


def test_a_store_lost_as_the_policy_thread_reads_it_clears_the_record_of_denials(
    demo_data, clock, monkeypatch
):
    """On Redis Cluster a check's answer does not tell the policy revision: the policy
    thread's read of it is how the process learns that a flush took the counters its
    record of denials mirrors."""
    holder = runtime.get_snapshot_holder()
    told = [runtime.get_snapshot().revision or 1]
    monkeypatch.setattr(holder, "read_remote", lambda: told[0])
    holder.poll()  # the store knows of a revision
    # tenant-api-group-tiers.md: the free tier's Admin group takes 50 at once.
    verdicts = [admin_verdict(demo_data) for _ in range(52)]
    assert [(v.allowed, v.local) for v in verdicts[-2:]] == [(False, False), (False, True)]
    told[0] = 0  # flushed: the policy thread's next read says so
    holder.poll()
    after = admin_verdict(demo_data)
    assert after.local is False  # asked the store again, not the stale record

"""Prometheus metrics, in process: every family's exact figures after known traffic, the
view's access rules, no client identifier in any label, and nothing raised into a
request. Expected values come from the limits' definitions (a fixed window of N allows
N requests), not from the code under test.
"""

import importlib.util
import json
import logging
from unittest import mock

import pytest
from django.core import checks
from django.db import DatabaseError
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from ratelimit_app import metrics, runtime
from ratelimit_app.bans.rows import lift_bans
from ratelimit_app.counters import breaker as breaker_module
from ratelimit_app.counters.base import BackendUnavailable
from ratelimit_app.counters.breaker import CircuitBreaker
from ratelimit_app.enforcement import pipeline
from ratelimit_app.events import JsonFormatter
from ratelimit_app.metrics import families, receivers
from ratelimit_app.models import BanRule, CredentialBan, EndpointGroup, Limit, Tier
from ratelimit_app.policy import revision
from tests.factories import ApiKeyFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "scraper-token-0123456789abcdef"
GROUP = "metered"
ENFORCED = f"{GROUP}-ip-60s"  # the pipeline names a limit group-scope-period
SHADOW = f"{GROUP}-ip-3600s"


@pytest.fixture
def metrics_on(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "METRICS": True, "METRICS_TOKEN": TOKEN}
    yield
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "METRICS": False}


class Samples:
    """Sample values of the default registry, read as differences from when made."""

    def __init__(self):
        self.before = self._all()

    @staticmethod
    def _all():
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in REGISTRY.collect()
            if family.name.startswith("ratelimit_")
            for sample in family.samples
        }

    def delta(self, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return self._all().get(key, 0.0) - self.before.get(key, 0.0)

    @staticmethod
    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels)


@pytest.fixture
def metered(db):
    """A group at /hello with an enforced fixed window of 5 per minute per address and a
    shadow fixed window of 3 per hour, for the default tier (anonymous requests)."""
    tier = Tier.objects.create(name="default", is_default=True)
    group = EndpointGroup.objects.create(slug=GROUP, name="Metered", path_patterns="/hello")
    common = dict(group=group, tier=tier, scope="ip", algorithm="fixed_window")
    Limit.objects.create(**common, rate=5, period=60)
    Limit.objects.create(**common, rate=3, period=3600, shadow=True)
    return group


def test_decisions_shadow_near_limit_and_deny_records(client, metered, metrics_on, clock):
    samples = Samples()
    statuses = [client.get("/hello").status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    decisions = "ratelimit_decisions_total"
    assert samples.delta(decisions, group=GROUP, limit=ENFORCED, outcome="allowed") == 5
    assert samples.delta(decisions, group=GROUP, limit=ENFORCED, outcome="denied") == 2
    # The shadow window of 3 would have refused the 4th and 5th (allowed) requests.
    assert samples.delta(decisions, group=GROUP, limit=SHADOW, outcome="shadow_denied") == 2
    # Under 10 % left: 0 of 5 after the 5th request, 0 of 3 after the 3rd.
    assert samples.delta("ratelimit_near_limit_total", group=GROUP, limit=ENFORCED) == 1
    assert samples.delta("ratelimit_near_limit_total", group=GROUP, limit=SHADOW) == 1
    # The 6th denial is recorded; the 7th is answered from that record, with no call.
    assert samples.delta("ratelimit_deny_record_hits_total", group=GROUP) == 1
    seconds = "ratelimit_store_call_seconds_count"
    assert samples.delta(seconds, operation="check") == 6


def test_metrics_off_connect_nothing_and_count_nothing(client, metered, settings, clock):
    # The console's recorder of recent traffic observes verdicts whatever the metrics.
    assert receivers.on_verdict not in pipeline.verdict_observers
    assert not breaker_module.call_observers
    samples = Samples()
    assert client.get("/hello").status_code == 200
    labels = dict(group=GROUP, limit=ENFORCED, outcome="allowed")
    assert samples.delta("ratelimit_decisions_total", **labels) == 0
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


def test_switching_metrics_on_and_off_connects_and_disconnects(metrics_on, settings):
    assert receivers.on_verdict in pipeline.verdict_observers and breaker_module.call_observers
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "METRICS": False}
    assert receivers.on_verdict not in pipeline.verdict_observers
    assert not breaker_module.call_observers


def test_store_down_counts_failures_by_kind_and_requests_unchecked(
    client, metered, metrics_on, redis_down, settings
):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "BREAKER_THRESHOLD": 3}
    samples = Samples()
    statuses = [client.get("/hello").status_code for _ in range(5)]
    assert statuses == [200] * 5  # FAILURE_MODE open
    assert samples.delta("ratelimit_unavailable_total", group=GROUP, failure_mode="open") == 5
    failures = "ratelimit_store_failures_total"
    # Three refused connections open the breaker; it refuses the next two calls itself.
    assert samples.delta(failures, operation="check", kind="ConnectionError") == 3
    assert samples.delta(failures, operation="check", kind="breaker_open") == 2
    assert samples.delta("ratelimit_store_call_seconds_count", operation="check") == 3
    assert Samples.value("ratelimit_store_breaker_open") == 1


def test_fail_closed_is_counted_as_closed(client, metered, metrics_on, redis_down, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "FAILURE_MODE": "closed"}
    samples = Samples()
    assert client.get("/hello").status_code == 503
    assert samples.delta("ratelimit_unavailable_total", group=GROUP, failure_mode="closed") == 1


def test_breaker_gauge_and_latency_through_a_recovery(metrics_on):
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=5, clock=lambda: now[0])
    samples = Samples()

    def timeout():
        raise BackendUnavailable("slow", kind="TimeoutError")

    def check():
        return "ok"

    for _ in range(2):
        with pytest.raises(BackendUnavailable):
            breaker.call(timeout)
    assert Samples.value("ratelimit_store_breaker_open") == 1
    now[0] = 5.0  # the cooldown is over: one trial call
    assert breaker.call(check) == "ok"
    assert Samples.value("ratelimit_store_breaker_open") == 0
    assert (
        samples.delta("ratelimit_store_failures_total", operation="timeout", kind="TimeoutError")
        == 2
    )
    assert samples.delta("ratelimit_store_call_seconds_count", operation="timeout") == 2
    assert samples.delta("ratelimit_store_call_seconds_count", operation="check") == 1


def test_bans_failures_and_lifts_by_rule_and_kind(client, demo_data, metrics_on, clock):
    rule = BanRule.objects.get(path="/connect/token")
    samples = Samples()
    wrong = {"client_id": "demo-client", "client_secret": "wrong-secret-123"}
    statuses = [client.post("/connect/token", wrong).status_code for _ in range(6)]
    # The catalogue's rule: five failures ban the pair; the sixth attempt is refused.
    assert statuses == [400] * 5 + [429]
    assert samples.delta("ratelimit_ban_failures_total", rule=rule.name) == 5
    assert samples.delta("ratelimit_bans_created_total", rule=rule.name, kind="pair") == 1
    assert (
        samples.delta("ratelimit_decisions_total", group="token", limit="ban-p", outcome="denied")
        == 1
    )
    lift_bans(CredentialBan.objects.all())
    assert samples.delta("ratelimit_bans_lifted_total", rule=rule.name, kind="pair") == 1


def test_policy_snapshot_revision_build_and_age(client, metered, metrics_on):
    import time

    samples = Samples()
    started = time.time()
    runtime.get_snapshot()  # this test's process objects are new: the first build
    finished = time.time()
    number, _policy = revision.read()
    assert Samples.value("ratelimit_policy_revision") == number
    assert samples.delta("ratelimit_policy_snapshot_build_seconds_count", kind="built") == 1
    built = Samples.value("ratelimit_policy_snapshot_built_timestamp_seconds")
    refreshed = Samples.value("ratelimit_policy_snapshot_refreshed_timestamp_seconds")
    assert started <= built <= finished and started <= refreshed <= finished
    with mock.patch.object(revision, "read", side_effect=DatabaseError("down")):
        runtime.get_snapshot_holder().refresh_now()
    assert samples.delta("ratelimit_policy_snapshot_refresh_failures_total") == 1


def test_the_view_reads_for_the_token_or_staff_only(client, metrics_on):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    reply = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert reply.status_code == 200
    assert reply["Content-Type"].startswith("text/plain; version=")
    assert "# TYPE ratelimit_decisions_total counter" in reply.content.decode()
    client.force_login(UserFactory(is_staff=False))
    assert client.get("/metrics").status_code == 403
    client.force_login(UserFactory(is_staff=True))
    assert client.get("/metrics").status_code == 200
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_no_label_holds_a_client_key_address_or_tenant(client, metered, metrics_on, clock):
    key = ApiKeyFactory()
    secret, address = key.secret, "203.0.113.77"
    for _ in range(7):
        client.get("/hello", HTTP_X_API_KEY=secret, REMOTE_ADDR=address)
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    forbidden = {secret, key.prefix, address, key.tenant.slug, key.tenant.name}
    values = [
        value
        for family in text_string_to_metric_families(body)
        if family.name.startswith("ratelimit_")
        for sample in family.samples
        for value in sample.labels.values()
    ]
    assert values  # the traffic was recorded
    assert not [v for v in values if any(secret_part in v for secret_part in forbidden)]
    label_names = {
        name
        for family in text_string_to_metric_families(body)
        if family.name.startswith("ratelimit_")
        for sample in family.samples
        for name in sample.labels
    }
    assert label_names <= {
        "group",
        "limit",
        "outcome",
        "failure_mode",
        "rule",
        "kind",
        "operation",
        "le",
    }


def test_a_broken_metric_never_breaks_a_request(client, metered, metrics_on, clock, caplog):
    with mock.patch.object(families, "get", side_effect=RuntimeError("registry broken")):
        statuses = [client.get("/hello").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


def test_without_prometheus_client_metrics_stay_off(client, metered, settings, clock):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "prometheus_client" else real(name, *args, **kwargs)

    with mock.patch.object(importlib.util, "find_spec", find_spec):
        settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "METRICS": True}
        assert metrics.sync() is False
        assert receivers.on_verdict not in pipeline.verdict_observers
        assert client.get("/hello").status_code == 200
        assert client.get("/metrics").status_code == 404
        ids = [error.id for error in checks.run_checks()]
        assert "ratelimit_app.E011" in ids
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "METRICS": False}


def test_a_short_metrics_token_is_reported(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "METRICS_TOKEN": "short"}
    assert "ratelimit_app.E012" in [error.id for error in checks.run_checks()]


def test_a_denial_is_one_structured_line_with_a_keyed_hash(client, metered, clock, caplog):
    address = "198.51.100.9"
    with caplog.at_level(logging.INFO, logger="ratelimit_app"):
        for _ in range(6):
            client.get("/hello", REMOTE_ADDR=address)
    [record] = [r for r in caplog.records if getattr(r, "ratelimit_event", None) == "denied"]
    line = record.getMessage()
    assert f"event=denied group={GROUP} limit={ENFORCED} retry_after=" in line
    party = record.ratelimit_fields["party"]
    assert len(party) == 16 and f"party={party}" in line
    assert address not in line
    entry = json.loads(JsonFormatter().format(record))
    assert entry["event"] == "denied" and entry["group"] == GROUP and entry["limit"] == ENFORCED
    assert entry["party"] == party and entry["level"] == "INFO"
    assert address not in json.dumps(entry)


def test_the_gunicorn_hook_imports_before_django_is_set_up():
    # gunicorn reads its configuration file before any worker sets Django up.
    import subprocess
    import sys

    code = "import ratelimit_app.metrics.gunicorn as g; print(g.child_exit.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "child_exit", done.stderr


def events_of(caplog, name):
    return [r for r in caplog.records if getattr(r, "ratelimit_event", None) == name]


def test_a_ban_and_its_lift_are_one_structured_line_each(client, demo_data, clock, caplog):
    rule = BanRule.objects.get(path="/connect/token")
    secret = "wrong-secret-123"
    wrong = {"client_id": "demo-client", "client_secret": secret}
    with caplog.at_level(logging.INFO, logger="ratelimit_app"):
        for _ in range(6):
            client.post("/connect/token", wrong, REMOTE_ADDR="198.51.100.10")
        lift_bans(CredentialBan.objects.all())
    ban = CredentialBan.objects.get()
    [created] = events_of(caplog, "ban_created")
    assert created.ratelimit_fields == {
        "rule": rule.name,
        "kind": "pair",
        "party": ban.short_fingerprint,
        "failures": rule.threshold,
        "cooldown": rule.cooldown,
    }
    [lifted] = events_of(caplog, "ban_lifted")
    assert lifted.ratelimit_fields["party"] == ban.short_fingerprint
    assert lifted.ratelimit_fields["kind"] == "pair"
    for record in (created, lifted):
        line = record.getMessage()
        assert secret not in line and "198.51.100.10" not in line


def test_store_failure_transitions_are_one_line_each(metrics_on, caplog):
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=5, clock=lambda: now[0])

    def refused():
        raise BackendUnavailable("Redis did not answer: ConnectionError", kind="ConnectionError")

    with caplog.at_level(logging.INFO, logger="ratelimit_app"):
        for _ in range(4):  # two failures open it; two more are refused by it
            with pytest.raises(BackendUnavailable):
                breaker.call(refused)
        now[0] = 5.0
        breaker.call(lambda: None)
    [failing] = events_of(caplog, "store_failing")
    [opened] = events_of(caplog, "store_breaker_open")
    [back] = events_of(caplog, "store_recovered")
    assert failing.ratelimit_fields == {"kind": "ConnectionError"}
    assert opened.ratelimit_fields == {"kind": "ConnectionError", "failures": 2, "cooldown": 5.0}
    assert back.ratelimit_fields == {"failures": 2}
    assert "event=store_breaker_open kind=ConnectionError failures=2 cooldown=5.000" in (
        opened.getMessage()
    )

"""Soak: gunicorn, Redis and PostgreSQL on loopback, bounded mixed traffic, then checks.

Slow (`make test-reliability`). SOAK_SECONDS sets the traffic's length (60 by default).
"""

import json
import multiprocessing
import os
import time

import pytest

from ratelimit_app.models import CredentialBan
from tests.gunicorn_support import ROOT, serve_demo, worker_rss_kb

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.django_db(transaction=True)]
SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
PAIRS, GOOD_CLIENTS = 8, 10


@pytest.fixture
def served(demo_data, settings):
    with serve_demo(settings.DATABASES["default"]) as (port, master, _redis):
        yield port, master, demo_data


def test_soak(served):
    from tests import soak_traffic

    port, master, keys = served
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    roles = [
        context.Process(target=soak_traffic.good, args=(port, SECONDS, GOOD_CLIENTS, results)),
        context.Process(target=soak_traffic.abusive, args=(port, SECONDS, keys["free"], results)),
        context.Process(target=soak_traffic.tokens, args=(port, SECONDS, PAIRS, results)),
    ]
    for role in roles:
        role.start()
    time.sleep(min(10.0, SECONDS / 6))  # sample worker memory once traffic is warm
    rss_start = worker_rss_kb(master)
    outcome = {}
    for _ in roles:
        name, statuses, elapsed = results.get(timeout=SECONDS + 120)
        outcome[name] = (statuses, elapsed)
    rss_end = worker_rss_kb(master)
    for role in roles:
        role.join(30)

    good, _ = outcome["good"]
    abusive, abusive_seconds = outcome["abusive"]
    tokens, _ = outcome["tokens"]
    every_status = (
        [int(s) for s in good]
        + [int(s) for s in abusive]
        + [int(s) for pair in tokens.values() for s in pair]
    )
    bans = list(CredentialBan.objects.filter(client_id__startswith="soak-client-"))
    growth = {pid: rss_end.get(pid, 0) - kb for pid, kb in rss_start.items()}
    report = {
        "seconds": SECONDS,
        "good": good,
        "abusive": abusive,
        "abusive_admitted_bound": 50 + 5 * abusive_seconds + 1,
        "tokens": tokens,
        "ban_rows": len(bans),
        "worker_rss_kb_start": rss_start,
        "worker_rss_kb_end": rss_end,
    }
    print(json.dumps(report, indent=1))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "soak-latest.json").write_text(json.dumps(report, indent=1))

    assert not [s for s in every_status if s >= 500], "a 5xx during the soak"
    assert set(good) == {200}, "a well-behaved client was refused"
    assert abusive.get(200, 0) <= report["abusive_admitted_bound"]
    assert abusive.get(429, 0) > 0
    for pair in tokens.values():
        assert pair.get(400) == 5, pair  # five failures reach the view, then the ban
    assert len(bans) == PAIRS and all(b.failures == 5 for b in bans)  # one ban per pair
    assert all(kb < 20_000 for kb in growth.values()), growth  # flat: under 20 MB

"""Memory under hostile input: a worker stays flat whatever values requests carry.

In-process caches must be keyed on bounded, derived values: long X-Forwarded-For
chains from a peer that is not a trusted proxy and long paths (404s, and a URL that
names an endpoint group) must not grow a worker. Slow (`make test-reliability`): the
demo under gunicorn, PostgreSQL and Redis, measured per worker from /proc.
"""

import multiprocessing
import os

import pytest

from tests.gunicorn_support import serve_demo, worker_rss_kb
from tests.soak_traffic import _send

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.django_db(transaction=True)]
REQUESTS = int(os.environ.get("MEMORY_REQUESTS", "50000"))
WARM_UP = 4000
SENDERS = 2
# The target: under 20 MB growth per worker for 50,000 such requests.
MAX_GROWTH_KB = 20_000


def hostile_request(i):
    """The i-th request: every one carries values never seen before."""
    noise = f"{i:08x}"
    kind = i % 3
    if kind == 0:  # 8 KB of X-Forwarded-For (gunicorn's cap is 8,190 bytes a header line)
        chain = ", ".join(f"198.{(i + j) % 256}.{j % 256}.{(i * 7 + j) % 256}" for j in range(600))
        return "/v1/status", {"X-Forwarded-For": f"{noise}, {chain}"[:8000]}
    if kind == 1:  # a 4 KB path naming an endpoint group through the URL
        return f"/acp/{noise}{'x' * 4000}/ping", {}
    return f"/nowhere/{noise}/{'y' * 4000}", {}  # a 4 KB path that is a 404


def send_hostile(port, first, count, results):
    """Send ``count`` hostile requests; report the statuses seen."""
    statuses = {}
    for i in range(first, first + count):
        path, headers = hostile_request(i)
        status = _send(port, "GET", path, headers)
        statuses[status] = statuses.get(status, 0) + 1
    results.put(statuses)


def send_from_processes(port, first, count):
    """``count`` requests from SENDERS processes at once; the statuses of all of them."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    share = count // SENDERS
    senders = [
        context.Process(target=send_hostile, args=(port, first + n * share, share, results))
        for n in range(SENDERS)
    ]
    for sender in senders:
        sender.start()
    statuses = {}
    for _ in senders:
        for status, seen in results.get(timeout=900).items():
            statuses[status] = statuses.get(status, 0) + seen
    for sender in senders:
        sender.join(30)
    return statuses


def test_hostile_values_do_not_grow_a_worker(demo_data, settings):
    with serve_demo(settings.DATABASES["default"], workers=2, trusted_proxies="10.0.0.0/8") as (
        port,
        master,
        _redis,
    ):
        send_from_processes(port, 0, WARM_UP)  # imports, pools and allocator warm up
        before = worker_rss_kb(master)
        statuses = send_from_processes(port, WARM_UP, REQUESTS)
        after = worker_rss_kb(master)
    growth = {pid: after[pid] - kb for pid, kb in before.items()}
    print(f"worker RSS (KiB) before {before}, after {after}, growth {growth}")
    assert sum(statuses.values()) == REQUESTS
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses.get(400, 0) == 0  # every header reached Django
    assert statuses.get(404, 0) >= REQUESTS // 3  # the long paths reached Django
    assert all(kb < MAX_GROWTH_KB for kb in growth.values()), growth

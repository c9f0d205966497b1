"""Workers for the concurrency tests: real processes, each with real threads."""

import os
import threading


def fire(barrier, results, specs, requests, threads):
    """Process body: ``requests`` checks of ``specs`` from ``threads`` threads.

    Every process waits at ``barrier`` so that all threads of all processes start
    together; the number of allowed requests goes into ``results``.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from ratelimit_app.conf import get_config
    from ratelimit_app.counters.redis import RedisBackend

    backend = RedisBackend(get_config())
    backend.client.ping()  # connect before the start line
    counts, lock, start = [], threading.Lock(), threading.Event()

    def run(share):
        start.wait()
        allowed = sum(1 for _ in range(share) if backend.check(specs).allowed)
        with lock:
            counts.append(allowed)

    shares = [requests // threads + (1 if i < requests % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=run, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    barrier.wait()
    start.set()
    for worker in workers:
        worker.join()
    results.put(sum(counts))

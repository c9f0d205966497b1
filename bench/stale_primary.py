"""The counts a stale Sentinel primary loses, with and without min-replicas-to-write.

A proxy (tests.topologies.SentinelCut) cuts the primary off from the sentinels only;
four threads keep counting through the limiter's Sentinel backend; the sentinels promote
a replica; after 8 s the partition heals and the old primary is demoted, dropping what
it counted meanwhile. Prints, per run: counted, kept on the final primary, lost.

    python bench/stale_primary.py [--runs 2]
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(min_replicas):
    """One partition; returns (counted, kept)."""
    from ratelimit_app.counters.algorithms import FIXED_WINDOW, LimitSpec
    from ratelimit_app.counters.base import BackendUnavailable
    from tests.counters_support import make_backend, unique_key
    from tests.topologies import SentinelCut, SentinelSet, client, wait_until

    sentinels = SentinelSet()
    cut = SentinelCut(sentinels.primary_port)
    sentinels.monitored_port = cut.port
    sentinels.start_all()
    try:
        if min_replicas:
            for port in [sentinels.primary_port, *sentinels.replica_ports]:
                client(port).config_set("min-replicas-to-write", 1)
                client(port).config_set("min-replicas-max-lag", 2)
        backend = make_backend("sentinel", sentinels.url)
        spec = LimitSpec(unique_key("stale"), FIXED_WINDOW, rate=10**6, period=3600)
        counted, stop = [], threading.Event()

        def count():
            while not stop.is_set():
                try:
                    backend.check([spec])
                    counted.append(1)
                except BackendUnavailable:
                    time.sleep(0.01)

        workers = [threading.Thread(target=count) for _ in range(4)]
        for worker in workers:
            worker.start()
        wait_until(lambda: len(counted) > 200, 10, "counting")
        old_primary = sentinels.current_primary()
        cut.cut_sentinels()
        wait_until(lambda: sentinels.current_primary() != old_primary, 30, "the failover")
        time.sleep(8)
        cut.heal()
        old = client(sentinels.primary_port)
        wait_until(lambda: old.info("replication")["role"] == "slave", 30, "the demotion")
        wait_until(lambda: old.info("replication")["master_link_status"] == "up", 30, "sync")
        stop.set()
        for worker in workers:
            worker.join()
        kept = int(client(sentinels.current_primary()).get(spec.key).split(b":")[1])
        return len(counted), kept
    finally:
        cut.close()
        sentinels.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    for _ in range(args.runs):
        for min_replicas in (False, True):
            counted, kept = run(min_replicas)
            lost = counted - kept
            label = "min-replicas-to-write 1, max-lag 2" if min_replicas else "as installed"
            print(f"{label}: {counted} counted, {kept} kept, {lost} lost ({lost / counted:.0%})")


if __name__ == "__main__":
    main()

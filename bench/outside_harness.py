"""`make bench-outside`: the overhead set-up of the outside harness that issue 15 quotes.

One process, one private Redis, Django's default middleware (as `startproject` writes
it), plain GETs through ``django.test.Client`` from one client address, a limit of
1,000,000 a minute so that nothing is denied. Each library is installed the way its
users install it: ratelimit_app as ``@ratelimit(group=...)`` on a plain view with its
rows in the database (one per-IP rolling-window row; or three rows, per IP, API key and
tenant; or those three and a ban rule watching the path), ``limits`` as
``FixedWindowRateLimiter.hit`` on its Redis storage. Every round times each row's
requests after a warm-up, the rows' order rotated from round to round.

Printed, with the median and the spread of the rounds:
- each row's overhead (its time per request less the plain view's) as a ratio of the
  ``limits`` fixed window's overhead: targets 1.0 for one limit, 1.1 for three limits
  and a ban rule;
- a request from a new client address against a repeat one, for ratelimit_app and for
  ``limits`` (which also writes a new key each time), paired: requests from a repeat
  and from a new address alternate one by one, each timed, and a round's figure is the
  median of the pairs' differences: target, the app's difference at most 20 µs;
- Redis's own time per check-script call (``INFO commandstats``) with one limit and
  with three: target, at most 5 µs per extra limit.

    python bench/outside_harness.py [--rounds 10] [--requests 5000] [--warmup 500]
"""

import argparse
import ipaddress
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LIMIT = 1_000_000
API_KEY = "0badc0de.outside-harness-api-key"
ROWS = ["plain", "limits_fixed", "rl_one", "rl_three", "rl_three_ban"]
NEW_ADDRESS_ROWS = ["limits_fixed", "rl_one"]
TARGETS = {"rl_one": 1.0, "rl_three_ban": 1.1}
NEW_ADDRESS_TARGET_US = 20.0
EXTRA_LIMIT_TARGET_US = 5.0


def parse():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    return parser.parse_args()


def configure(redis_url, database):
    """Django with startproject's middleware, the app's decorator views and limits'."""
    from django.conf import settings

    settings.configure(
        SECRET_KEY="outside-harness-only",
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "ratelimit_app",
        ],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                        "django.template.context_processors.request",
                    ]
                },
            }
        ],
        # A file, not ":memory:": the policy thread's own connection must see the rows.
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database}},
        RATELIMIT_APP={"STORAGE_URL": redis_url, "POLICY_REFRESH_INTERVAL": 1.0},
        SILENCED_SYSTEM_CHECKS=["ratelimit_app.W011"],
        LOGGING={"version": 1, "disable_existing_loggers": True},
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, run_syncdb=True)


def load_rows():
    """The app's rows as its users create them: groups, a tier, a tenant, a key, a rule."""
    from ratelimit_app import hashing
    from ratelimit_app.models import ApiKey, BanRule, EndpointGroup, Limit, Tenant, Tier

    tier = Tier.objects.create(name="harness", is_default=True)
    tenant = Tenant.objects.create(name="Harness", slug="harness", tier=tier)
    ApiKey.objects.create(
        tenant=tenant,
        name="harness",
        prefix=API_KEY.split(".")[0],
        hashed_secret=hashing.hash_api_key(API_KEY),
    )
    for slug, scopes in (("one", ["ip"]), ("three", ["ip", "api_key", "tenant"])):
        group = EndpointGroup.objects.create(slug=slug, name=slug.title())
        for scope in scopes:
            Limit.objects.create(
                group=group,
                tier=tier,
                scope=scope,
                algorithm="sliding_window",
                rate=LIMIT,
                period=60,
            )
    banned = EndpointGroup.objects.create(slug="three_ban", name="Three and a ban rule")
    for limit in Limit.objects.filter(group__slug="three"):
        limit.pk, limit.group = None, banned
        limit.save()
    BanRule.objects.create(name="harness", group=banned, methods="GET")


def urlpatterns_for_rows():
    from django.http import HttpResponse
    from django.urls import path
    from limits import parse as parse_limit
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    from ratelimit_app.decorators import ratelimit

    def plain(request):
        return HttpResponse("ok")

    limiter = FixedWindowRateLimiter(storage_from_string(os.environ["HARNESS_REDIS_URL"]))
    item = parse_limit(f"{LIMIT}/minute")

    def limits_fixed(request):
        if not limiter.hit(item, "harness", request.META["REMOTE_ADDR"]):
            return HttpResponse("too many", status=429)
        return HttpResponse("ok")

    return [
        path("plain", plain),
        path("limits_fixed", limits_fixed),
        path("rl_one", ratelimit(group="one")(plain)),
        path("rl_three", ratelimit(group="three")(plain)),
        path("rl_three_ban", ratelimit(group="three_ban")(plain)),
    ]


def addresses():
    """A new client address for every call (10.0.0.0/8, never repeated in a run)."""
    network = ipaddress.ip_network("10.0.0.0/8")
    for number in range(1, network.num_addresses):
        yield str(network.network_address + number)


def time_row(client, row, count, warmup, fresh=None):
    """Microseconds per request of ``count`` GETs to ``row`` after ``warmup`` more."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {API_KEY}"}
    for _ in range(warmup):
        address = next(fresh) if fresh else "198.51.100.7"
        assert client.get(f"/{row}", REMOTE_ADDR=address, **headers).status_code == 200
    started = time.perf_counter()
    for _ in range(count):
        address = next(fresh) if fresh else "198.51.100.7"
        client.get(f"/{row}", REMOTE_ADDR=address, **headers)
    return (time.perf_counter() - started) / count * 1e6


def new_address_extra_us(client, row, pairs, fresh):
    """The median, over ``pairs`` pairs, of a new address's request time less a repeat
    address's, in µs: one of each, timed one by one, their order swapped every pair so
    that neither always runs on the caches the other warmed."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {API_KEY}"}
    clock = time.perf_counter_ns

    def timed(address):
        started = clock()
        client.get(f"/{row}", REMOTE_ADDR=address, **headers)
        return clock() - started

    differences = []
    for number in range(pairs):
        if number % 2:
            repeat = timed("198.51.100.7")
            new = timed(next(fresh))
        else:
            new = timed(next(fresh))
            repeat = timed("198.51.100.7")
        differences.append((new - repeat) / 1000)
    return statistics.median(differences)


def script_us_per_call(stats, client, row, count):
    """Redis's own microseconds per EVALSHA while ``row`` serves ``count`` requests."""
    stats.config_resetstat()
    time_row(client, row, count, 0)
    evalsha = stats.info("commandstats").get("cmdstat_evalsha")
    return evalsha["usec_per_call"] if evalsha else None


def spread(values):
    """Median, lowest and highest, rounded."""
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def measure(args, stats):
    from django.test import Client

    client = Client()
    times = {row: [] for row in ROWS}
    new_address = {row: [] for row in NEW_ADDRESS_ROWS}
    fresh = addresses()
    for round_number in range(args.rounds):
        shift = round_number % len(ROWS)
        for row in ROWS[shift:] + ROWS[:shift]:
            times[row].append(time_row(client, row, args.requests, args.warmup))
        for row in NEW_ADDRESS_ROWS:
            pairs = args.requests // 5
            new_address[row].append(new_address_extra_us(client, row, pairs, fresh))
        print(f"round {round_number + 1}: " + ", ".join(f"{r} {times[r][-1]:.1f}" for r in ROWS))
    script = {row: script_us_per_call(stats, client, row, 2000) for row in ("rl_one", "rl_three")}
    return times, new_address, script


def summarize(times, new_address, script):
    """Ratios per round (each round's rows side by side), then their spread."""
    rounds = range(len(times["plain"]))
    overhead = {row: [times[row][n] - times["plain"][n] for n in rounds] for row in ROWS}
    result = {"us_per_request": {row: spread(values) for row, values in times.items()}}
    ratios = {}
    for row in ("rl_one", "rl_three", "rl_three_ban"):
        per_round = [overhead[row][n] / overhead["limits_fixed"][n] for n in rounds]
        ratios[row] = {**spread(per_round), "target": TARGETS.get(row)}
    result["overhead_ratio_vs_limits_fixed"] = ratios
    result["new_address_extra_us"] = {row: spread(new_address[row]) for row in NEW_ADDRESS_ROWS}
    one, three = script["rl_one"], script["rl_three"]
    result["redis_us_per_call"] = {"one_limit": one, "three_limits": three}
    result["redis_us_per_extra_limit"] = round((three - one) / 2, 2) if one and three else None
    return result


def verdicts(result):
    """One line per target: the measured median and met or missed."""
    lines = []
    for row, figures in result["overhead_ratio_vs_limits_fixed"].items():
        target = figures["target"]
        if target is not None:
            met = "met" if figures["median"] <= target else "missed"
            lines.append(
                f"{row} overhead / limits fixed window: {figures['median']} "
                f"({figures['min']}-{figures['max']}), target <= {target}: {met}"
            )
    extra = result["new_address_extra_us"]["rl_one"]["median"]
    met = "met" if extra <= NEW_ADDRESS_TARGET_US else "missed"
    lines.append(
        f"new client address, extra µs: {extra} (limits: "
        f"{result['new_address_extra_us']['limits_fixed']['median']}), "
        f"target <= {NEW_ADDRESS_TARGET_US}: {met}"
    )
    per_limit = result["redis_us_per_extra_limit"]
    met = "met" if per_limit is not None and per_limit <= EXTRA_LIMIT_TARGET_US else "missed"
    lines.append(f"Redis µs per extra limit: {per_limit}, target <= {EXTRA_LIMIT_TARGET_US}: {met}")
    return lines


def main():
    args = parse()
    from tests.services import RedisServer

    server = RedisServer().start()
    try:
        os.environ["HARNESS_REDIS_URL"] = server.url
        configure(server.url, str(Path(tempfile.mkdtemp(prefix="outside-harness-")) / "db"))
        global urlpatterns
        urlpatterns = urlpatterns_for_rows()
        load_rows()
        import redis

        times, new_address, script = measure(args, redis.Redis.from_url(server.url))
    finally:
        server.stop()
    result = summarize(times, new_address, script)
    for line in verdicts(result):
        print(line)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "outside-harness.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


urlpatterns: list = []

if __name__ == "__main__":
    main()

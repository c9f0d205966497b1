"""`make bench`: start a private Redis, measure every row, write the results and the page.

Every row runs the same way: a subprocess of its own with the same Django, the same
request and the same Redis, one after another on this machine.
"""

import datetime
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.admission import MODELS  # noqa: E402
from bench.report import write_report  # noqa: E402
from bench.rows import LIMITERS, ROWS  # noqa: E402
from tests.services import RedisServer  # noqa: E402

SIZES = [60, 600, 3000, 30000]
# Rows are measured in interleaved rounds and each figure is the median of its rounds:
# a noisy moment of this shared machine then moves one round, not one row.
ROUNDS = 5
REFERENCE_SIZE = 600
ADMISSION_ROWS = [row for row in LIMITERS]


def run_module(module, *args):
    """Run ``python -m module args`` and parse the JSON on its last line."""
    output = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def median_of_rounds(results):
    """One row and size: the median of each figure over the rounds."""
    merged = dict(results[0])
    for name, value in results[0].items():
        if isinstance(value, float | int) and not isinstance(value, bool):
            merged[name] = statistics.median(r[name] for r in results)
    merged["rounds_median_us"] = [r["median_us"] for r in results]
    return merged


def versions(redis_url):
    from importlib.metadata import version

    import django
    import redis

    info = redis.Redis.from_url(redis_url).info("server")
    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "djangorestframework": version("djangorestframework"),
        "django-redis": version("django-redis"),
        "redis-py": version("redis"),
        "hiredis": version("hiredis"),
        "django-ratelimit": version("django-ratelimit"),
        "limits": version("limits"),
        "gunicorn": version("gunicorn"),
        "redis-server": info["redis_version"],
    }


def machine():
    cpus = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"platform": platform.platform(), "cpus": cpus, "cpu": model}


def main():
    server = RedisServer().start()
    try:
        url = server.url
        print(f"Redis {url}", flush=True)
        rounds = {}
        for round_number in range(ROUNDS):
            for row in ROWS:
                for size in SIZES:
                    flood = ["--flood"] if size == REFERENCE_SIZE else []
                    result = run_module("bench.measure", row, size, url, *flood)
                    print(
                        f"round {round_number + 1} {row:18} {size:>6}/min  "
                        f"median {result['median_us']:7.1f} µs",
                        flush=True,
                    )
                    rounds.setdefault((row, size), []).append(result)
        latency = [median_of_rounds(results) for results in rounds.values()]
        state = run_module("bench.state", url, *SIZES)
        print("state bytes measured", flush=True)
        admission = []
        for row in ADMISSION_ROWS:
            for model in MODELS:
                result = run_module("bench.admission", row, model, url, ROOT / "bench" / ".work")
                print(f"{row:18} {model:11} admitted {result['admitted']}", flush=True)
                admission.append(result)
        results = {
            "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "versions": versions(url),
            "reference_size": REFERENCE_SIZE,
            "rows": {name: description for name, (_v, _a, description) in ROWS.items()},
            "latency": latency,
            "state": state,
            "admission": admission,
        }
    finally:
        server.stop()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = results["when"].replace(":", "").replace("-", "")
    for name in (f"{stamp}.json", "latest.json"):
        (out / name).write_text(json.dumps(results, indent=1) + "\n")
    write_report(results, ROOT / "docs")
    print("Wrote bench/results/latest.json, docs/benchmarks.md and docs/benchmarks.png")


if __name__ == "__main__":
    main()

"""Chart of `bench/ban_storm.py` reports: requests a second over time, before and after.

python bench/storm_chart.py OUT.png BEFORE.json [BEFORE.json ...] -- AFTER.json [...]
draws, for each side, the round whose storm ratio is the median of its rounds, and
prints the medians and spreads of the ratios of all rounds.
"""

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(paths):
    return [json.loads(Path(p).read_text()) for p in paths]


def median_round(reports):
    ordered = sorted(reports, key=lambda r: r["storm_ratio"])
    return ordered[len(ordered) // 2]


def spread(reports, key):
    values = [r[key] for r in reports if key in r]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    out, *rest = sys.argv[1:]
    split = rest.index("--")
    sides = {"before": load(rest[:split]), "after": load(rest[split + 1 :])}
    figure, axis = plt.subplots(figsize=(8, 3.6))
    for label, reports in sides.items():
        shown = median_round(reports)
        line = shown["timeline"][:-1]
        axis.plot(range(len(line)), line, label=f"{label} (storm ratio {shown['storm_ratio']})")
        storm_at = shown["storm_starts_at_second"]
        summary = {k: spread(reports, k) for k in ("storm_ratio", "p99_ratio", "plain_ratio")}
        steady_p99 = [r["steady"]["p99_ms"] for r in reports]
        storm_p99 = [r["storm"]["p99_ms"] for r in reports]
        print(
            label, json.dumps({**summary, "steady_p99_ms": steady_p99, "storm_p99_ms": storm_p99})
        )
    axis.axvline(storm_at, color="grey", linestyle="--")
    axis.text(storm_at + 0.2, axis.get_ylim()[1] * 0.05, "5 new bans/s from here", color="grey")
    axis.set_xlabel("seconds")
    axis.set_ylabel("GET /v1/status per second")
    axis.set_ylim(bottom=0)
    axis.set_title("gunicorn (2 workers), 1,000 tenants x 10 overrides, during a ban storm")
    axis.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(out, dpi=110)


if __name__ == "__main__":
    main()

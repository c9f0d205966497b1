"""`make bench-compare REV=<commit>`: this tree's rows against another commit's, one run.

The other commit is checked out (a git worktree under bench/.work/) and both trees
measure the same rows through their own bench.measure, interleaved round by round on
one private Redis, so that a change of the code is read as a ratio of two figures
taken side by side. Prints each row's medians and the ratio this tree / the other,
with the spread of the rounds' ratios; writes bench/results/compare-<rev>.json.
"""

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import RedisServer  # noqa: E402

ROWS = ["baseline", "limits_fixed", "rl_one", "rl_three", "rl_three_ban"]
SIZE = 600
ROUNDS = 7


def worktree(rev):
    """A checkout of ``rev`` under bench/.work/ (made once, reused)."""
    path = ROOT / "bench" / ".work" / f"tree-{rev}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=ROOT, check=True)
    return path


def measure(tree, row, url):
    output = subprocess.run(
        [sys.executable, "-m", "bench.measure", row, str(SIZE), url],
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])["median_us"]


def main(rev):
    trees = {"this": ROOT, rev: worktree(rev)}
    server = RedisServer().start()
    figures = {(name, row): [] for name in trees for row in ROWS}
    try:
        for round_number in range(ROUNDS):
            # Alternate which tree goes first, so neither always follows the other.
            order = list(trees.items())[:: 1 if round_number % 2 == 0 else -1]
            for row in ROWS:
                for name, tree in order:
                    figures[(name, row)].append(measure(tree, row, server.url))
            print(f"round {round_number + 1} done", flush=True)
    finally:
        server.stop()
    report = {}
    base = {name: figures[(name, "baseline")] for name in trees}
    print(f"\n{'row':14} {'this µs':>8} {rev[:9]:>9} µs {'overhead ratio':>15}  rounds' ratios")
    for row in ROWS:
        this, other = figures[("this", row)], figures[(rev, row)]
        # Overheads over each tree's own plain view, round by round.
        ratios = [
            (t - tb) / (o - ob) if row != "baseline" and o - ob > 0 else t / o
            for t, o, tb, ob in zip(this, other, base["this"], base[rev], strict=True)
        ]
        report[row] = {
            "this_median_us": statistics.median(this),
            "other_median_us": statistics.median(other),
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
        print(
            f"{row:14} {statistics.median(this):8.1f} {statistics.median(other):12.1f}"
            f" {statistics.median(ratios):15.3f}  {min(ratios):.2f}-{max(ratios):.2f}"
        )
    out = ROOT / "bench" / "results" / f"compare-{rev}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rev": rev, "size": SIZE, "rounds": ROUNDS, **report}, indent=1))
    print(f"Wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1])

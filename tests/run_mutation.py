"""Mutation testing of the core (make mutation, make mutation-ci): mutmut, then a score per module.

mutmut (its settings are the [mutmut] section of setup.cfg) copies the tree to mutants/,
makes small deliberate defects (mutants) in the core modules and runs, for each one, the
in-process tests that reach the mutated function. A mutant is killed when a test fails.

The score of a module is killed / (mutants - equivalent): a mutant that no test can tell
from the original code (an equivalent mutant) is listed by name in docs/testing.md with
its reason, and only there. Every other survivor counts against the score, including a
mutant that no in-process test reaches. ``--min-score`` fails the run below that score.

    python tests/run_mutation.py                      # every core module, docs/testing.md
    python tests/run_mutation.py paths credentials --min-score 90   # CI's two modules

Against the whole in-process suite a mutant of a function that every request reaches
runs hundreds of tests: 2-4 mutants a minute on a 2-core machine, hours per module.
``--own-tests-first`` runs each module's mutants against the module's own test files
(OWN_TESTS) first, then only the survivors against the whole suite. The outcome is the
whole suite's: the tests that reach a function include its own tests, so a mutant they
kill the whole suite kills too, and every other mutant is run against the whole suite.

A module with a path only PostgreSQL takes (SERVICES_STAGE: policy.build reads the ban
rows' expiries as epoch seconds there) has the survivors of its first pass run again
against the same test files on the services stack (PostgreSQL and Redis, as the
services pass of the suite), between the two passes.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "testing.md"
MUTANTS = ROOT / "mutants"
# The core modules (issue 18), smallest first, each with the source files it covers.
MODULES: dict[str, tuple[str, ...]] = {
    "paths": ("ratelimit_app/paths.py",),
    "credentials": ("ratelimit_app/credentials.py",),
    "responses": ("ratelimit_app/responses.py",),
    "identity": ("ratelimit_app/identity.py",),
    "algorithms": ("ratelimit_app/counters/algorithms.py",),
    "enforcement": (
        "ratelimit_app/enforcement/__init__.py",
        "ratelimit_app/enforcement/client_auth.py",
        "ratelimit_app/enforcement/pipeline.py",
        "ratelimit_app/enforcement/specs.py",
        "ratelimit_app/enforcement/verdict.py",
    ),
    "policy": (
        "ratelimit_app/policy/__init__.py",
        "ratelimit_app/policy/build.py",
        "ratelimit_app/policy/entries.py",
        "ratelimit_app/policy/fetch.py",
        "ratelimit_app/policy/holder.py",
        "ratelimit_app/policy/keys.py",
        "ratelimit_app/policy/revision.py",
        "ratelimit_app/policy/snapshot.py",
    ),
}
# Each module's own test files: the first pass of --own-tests-first.
OWN_TESTS: dict[str, tuple[str, ...]] = {
    "paths": ("tests/test_paths.py",),
    "credentials": ("tests/test_credentials.py",),
    # Each mutant runs every selected test that reaches its function: the few slow
    # ones (seconds each, random requests through the middleware) wait for the second pass.
    "responses": (
        "tests/test_responses_table.py",
        "tests/test_denials.py",
        "tests/test_enforcement.py",
        "--deselect",
        "tests/test_enforcement.py::test_drf_and_middleware_send_the_same_429_body",
    ),
    "identity": (
        "tests/test_identity.py",
        "tests/test_identity_table.py",
        "tests/test_key_lookup.py",
        "tests/test_tokens.py",
    ),
    # The property tests are left to the second pass: hypothesis runs dozens of examples.
    "algorithms": (
        "tests/test_algorithms.py",
        "tests/test_algorithms_outcomes.py",
        "tests/test_counters_contract.py",
    ),
    "enforcement": (
        "tests/test_pipeline.py",
        "tests/test_verdict.py",
        "tests/test_denial_record.py",
        "tests/test_enforcement.py",
        "tests/test_responses_table.py",
        "tests/test_denials.py",
        "tests/test_oauth_toolkit.py",
        "tests/test_bans.py",
        "tests/test_specs.py",
    ),
    "policy": (
        "tests/test_policy.py",
        "tests/test_refresh.py",
        "tests/test_catalog.py",
        "tests/test_key_lookup.py",
        "tests/test_holder.py",
        "tests/test_policy_rows.py",
        "tests/test_policy_entries.py",
        "tests/test_revision.py",
        "tests/test_fetch.py",
    ),
}
# Modules whose survivors of the in-process first pass run again on PostgreSQL and Redis.
SERVICES_STAGE = {"policy"}
SERVICES_ENV = {"RATELIMIT_TEST_STACK": "services", "RATELIMIT_REQUIRE_SERVICES": "1"}
# mutmut's exit codes for a mutant (mutmut/stats.py): 1 and 3 are a failing test run.
KILLED_CODES = {1, 3}
TIMEOUT_CODES = {24, -24, 36, 152, 255}
BEGIN = "<!-- mutation-scores:begin (written by tests/run_mutation.py) -->"
END = "<!-- mutation-scores:end -->"
# An equivalent mutant in docs/testing.md: "- `ratelimit_app.x.y__mutmut_3`: reason".
EQUIVALENT_LINE = re.compile(r"^- `(ratelimit_app\.[\w.]+__mutmut_\d+)`: \S")


@dataclass
class Score:
    """One module's mutants by outcome."""

    module: str
    total: int = 0
    killed: int = 0
    equivalent: int = 0
    timeout: int = 0
    unchecked: int = 0
    survived: list[str] = field(default_factory=list)

    @property
    def percent(self) -> float:
        """Killed (timeouts count as killed) of the non-equivalent mutants, in percent.

        A mutant not run yet (an interrupted run) counts as a survivor: no score is
        better than the tests have shown.
        """
        judged = self.total - self.equivalent
        return 100.0 if judged == 0 else 100.0 * (self.killed + self.timeout) / judged


def mutant_patterns(modules: Iterable[str]) -> list[str]:
    """mutmut's name patterns for the mutants of ``modules``."""
    patterns = []
    for module in modules:
        for path in MODULES[module]:
            dotted = path.removesuffix(".py").replace("/", ".")
            patterns.append(f"{dotted.removesuffix('.__init__')}.*")
    return patterns


@contextlib.contextmanager
def tests_limited_to(paths: list[str]) -> Iterator[None]:
    """While running, each mutant is tested by ``paths`` (the modules' own test files)
    instead of the whole in-process suite: mutmut reads its test selection from
    setup.cfg only, so the file is rewritten for the run and restored after it."""
    if not paths:
        yield
        return
    config = ROOT / "setup.cfg"
    original = config.read_text(encoding="utf-8")
    selection = "pytest_add_cli_args_test_selection =\n    tests/\n"
    assert selection in original, "setup.cfg's [mutmut] test selection moved"
    narrowed = "pytest_add_cli_args_test_selection =\n" + "".join(f"    {p}\n" for p in paths)
    config.write_text(original.replace(selection, narrowed), encoding="utf-8")
    try:
        yield
    finally:
        config.write_text(original, encoding="utf-8")


@contextlib.contextmanager
def services_stack() -> Iterator[None]:
    """tests/settings.py on PostgreSQL and Redis in mutmut's test processes (each gets a
    test database of its own: tests/conftest.py)."""
    saved = {name: os.environ.get(name) for name in (*SERVICES_ENV, "RATELIMIT_RUN_ID")}
    os.environ.update(SERVICES_ENV)
    os.environ.pop("RATELIMIT_RUN_ID", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_mutmut(names: list[str], max_children: int) -> None:
    """Generate the mutants and test those ``names`` match (results land in mutants/).

    mutmut forgets every result when its test selection or pytest arguments change (its
    config fingerprint); results it had that this run did not replace are put back, for
    a kill by one selection is a kill by any larger one."""
    kept = all_exit_codes()
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    try:
        subprocess.run([*command, *names], cwd=ROOT, check=True)
    finally:
        restore_exit_codes(kept)


Kept = dict[Path, tuple[dict[str, int | None], dict[str, str]]]


def all_exit_codes() -> Kept:
    """mutmut's result per mutant and hash per function, per .meta file under mutants/."""
    if not MUTANTS.exists():
        return {}
    kept = {}
    for meta in MUTANTS.rglob("*.meta"):
        data = json.loads(meta.read_text())
        kept[meta] = (data["exit_code_by_key"], data.get("hash_by_function_name", {}))
    return kept


def function_of(mutant: str) -> str:
    """The name mutmut hashes a mutant's function under ("x_name", "xǁClassǁmethod")."""
    return mutant.rsplit(".", 1)[1].rsplit("__mutmut_", 1)[0]


def restore_exit_codes(kept: Kept) -> None:
    """Put back the results in ``kept`` that mutmut has since reset to none, of functions
    that did not change since (a changed function's mutants are others under the same
    names)."""
    for meta, (codes, hashes) in kept.items():
        if not meta.exists():
            continue
        data = json.loads(meta.read_text())
        current, now_hashes = data["exit_code_by_key"], data.get("hash_by_function_name", {})
        # A timeout is judged again: it may be the machine's load, not the mutant.
        lost = {
            k: v
            for k, v in codes.items()
            if v is not None
            and v not in TIMEOUT_CODES
            and current.get(k, 0) is None
            and hashes.get(function_of(k)) == now_hashes.get(function_of(k))
        }
        if lost:
            current.update(lost)
            meta.write_text(json.dumps(data, indent=4))


def not_run(module: str, equivalent: set[str]) -> list[str]:
    """The mutants of ``module`` that no run has killed yet: without a result (an
    interrupted run's rest), timed out (on a loaded machine a test run can outlast
    mutmut's timeout), survived or reached by no test (tests may have come since).
    Mutants listed as equivalent are left out: no test can kill them."""
    return [
        name
        for path in MODULES[module]
        for name, code in exit_codes(path).items()
        if code not in KILLED_CODES and name not in equivalent
    ]


def unchecked(module: str) -> list[str]:
    """The mutants of ``module`` with no result yet."""
    return [
        name for path in MODULES[module] for name, code in exit_codes(path).items() if code is None
    ]


def run_own_tests_first(
    modules: list[str], max_children: int, resume: bool = False, first_pass_only: bool = False
) -> None:
    """Each module against its own test files, then the survivors against the whole
    in-process suite (see the module's docstring). With ``resume``, the first pass runs
    only the mutants not killed yet. With ``first_pass_only`` the second pass is left
    out: the score is then a lower bound of the whole suite's, which kills at least
    every mutant a module's own tests kill."""
    equivalent = equivalent_mutants()
    for module in modules:
        started = any(exit_codes(path) for path in MODULES[module])
        names = not_run(module, equivalent) if resume and started else mutant_patterns([module])
        if names:
            with tests_limited_to(list(OWN_TESTS[module])):
                run_mutmut(names, max_children)
                # A function changed since the last run has new mutants under names that
                # had results (not in ``names``): mutmut reset them; they run now.
                fresh = unchecked(module)
                if resume and fresh:
                    run_mutmut(fresh, max_children)
        left = not_run(module, equivalent) if module in SERVICES_STAGE else []
        if left:
            with tests_limited_to(list(OWN_TESTS[module])), services_stack():
                run_mutmut(left, max_children)
    if first_pass_only:
        return
    survivors = [name for module in modules for name in score(module, equivalent).survived]
    print(f"{len(survivors)} survivors of their own tests, now against the whole suite")
    if survivors:
        run_mutmut(survivors, max_children)


def equivalent_mutants() -> set[str]:
    """The mutant names docs/testing.md lists as equivalent."""
    if not DOC.exists():
        return set()
    lines = DOC.read_text(encoding="utf-8").splitlines()
    return {m.group(1) for m in map(EQUIVALENT_LINE.match, lines) if m}


def exit_codes(path: str) -> dict[str, int | None]:
    """mutmut's result per mutant of one source file, from its .meta file."""
    meta = MUTANTS / f"{path}.meta"
    if not meta.exists():
        return {}
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return codes


def score(module: str, equivalent: set[str]) -> Score:
    """The outcome of every mutant of ``module``'s files."""
    result = Score(module)
    for path in MODULES[module]:
        for name, code in sorted(exit_codes(path).items()):
            result.total += 1
            if name in equivalent:
                result.equivalent += 1
            elif code in KILLED_CODES:
                result.killed += 1
            elif code in TIMEOUT_CODES:
                result.timeout += 1
            elif code is None:
                result.unchecked += 1
            else:
                result.survived.append(name)
    return result


def table(scores: list[Score]) -> str:
    """The generated Markdown table of docs/testing.md."""
    rows = [
        "| module | mutants | killed | timeout | equivalent | survived | not run | score |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in scores:
        score = "not run" if s.unchecked == s.total - s.equivalent else f"{s.percent:.1f} %"
        rows.append(
            f"| {s.module} | {s.total} | {s.killed} | {s.timeout} | {s.equivalent} "
            f"| {len(s.survived)} | {s.unchecked} | {score} |"
        )
    return "\n".join(rows)


def write_doc(scores: list[Score]) -> None:
    """Put ``scores`` in the generated table of docs/testing.md, keeping other modules' rows."""
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    fresh = table(scores).splitlines()
    rows = {row.split("|")[1].strip(): row for row in fresh[2:]}
    for row in text[start:end].strip().splitlines()[2:]:
        rows.setdefault(row.split("|")[1].strip(), row)
    ordered = [rows[module] for module in MODULES if module in rows]
    body = "\n".join(fresh[:2] + ordered)
    DOC.write_text(f"{text[:start]}\n{body}\n{text[end:]}", encoding="utf-8")


def main() -> int:
    """Run mutmut on the chosen modules, print (and optionally write) their scores."""
    # Stopped (make's Ctrl-C, a CI timeout): setup.cfg's test selection is put back.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"some of {', '.join(MODULES)} (all)")
    parser.add_argument("--fresh", action="store_true", help="delete mutants/ first")
    parser.add_argument("--min-score", type=float, default=0.0)
    parser.add_argument("--write-doc", action="store_true", help="update docs/testing.md")
    parser.add_argument("--no-run", action="store_true", help="score the last run only")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument(
        "--own-tests-first",
        action="store_true",
        help="each module's own tests first, then the survivors against the whole suite",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --own-tests-first: the first pass runs only mutants not killed yet",
    )
    parser.add_argument(
        "--first-pass-only",
        action="store_true",
        help="with --own-tests-first: no second pass (the score is a lower bound)",
    )
    parser.add_argument(
        "--tests",
        nargs="+",
        default=[],
        help="test files each mutant runs (default: the whole in-process suite)",
    )
    args = parser.parse_args()
    modules = args.modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown modules {unknown}; choose from {list(MODULES)}")
    if args.fresh:
        shutil.rmtree(MUTANTS, ignore_errors=True)
    if args.own_tests_first and args.tests:
        parser.error("--own-tests-first picks the tests itself; leave out --tests")
    if (args.resume or args.first_pass_only) and not args.own_tests_first:
        parser.error("--resume and --first-pass-only go with --own-tests-first")
    if args.no_run:
        pass
    elif args.own_tests_first:
        run_own_tests_first(modules, args.max_children, args.resume, args.first_pass_only)
    else:
        with tests_limited_to(args.tests):
            run_mutmut(mutant_patterns(modules), args.max_children)
    equivalent = equivalent_mutants()
    scores = [score(module, equivalent) for module in modules]
    print(table(scores))
    for s in scores:
        for name in s.survived:
            print(f"survived: {name}")
    if args.write_doc:
        write_doc(scores)
    low = [s.module for s in scores if s.percent < args.min_score]
    if low:
        print(f"Under {args.min_score:g} %: {', '.join(low)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

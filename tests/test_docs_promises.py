"""docs/promises/: one page per source document, each promise beside the test that holds
it. Every test a page names exists, and every test of a document's end-to-end module is
named on its page (a renamed or new test cannot leave the page behind)."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted(p.stem for p in (ROOT / "docs" / "requirements").glob("*.md"))


def functions_of(module):
    tree = ast.parse((ROOT / module).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def named_tests(page):
    """(module, test) pairs a page names, ``E2E::`` standing for the page's module."""
    text = page.read_text()
    e2e = re.search(r"`E2E` is\s+`(tests/[\w.]+\.py)`", text).group(1)
    found = set()
    for module, name in re.findall(r"`(E2E|tests/[\w.]+\.py)::(test_\w+)", text):
        found.add((e2e if module == "E2E" else module, name))
    return e2e, found


def test_there_is_a_page_per_document():
    assert DOCUMENTS and sorted(p.stem for p in (ROOT / "docs/promises").glob("*.md")) == DOCUMENTS


@pytest.mark.parametrize("document", DOCUMENTS)
def test_each_page_names_real_tests_and_every_test_of_its_module(document):
    e2e, named = named_tests(ROOT / "docs" / "promises" / f"{document}.md")
    assert e2e == f"tests/test_e2e_{document.replace('-', '_')}.py"
    for module, name in named:
        assert name in functions_of(module), f"{module}::{name} does not exist"
    unnamed = {t for t in functions_of(e2e) if t.startswith("test_")} - {
        n for m, n in named if m == e2e
    }
    assert not unnamed, f"{e2e} tests missing from the page: {sorted(unnamed)}"

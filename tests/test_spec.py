"""The compatibility matrix stays true: every claim names tests that exist, and the
README's feature table is the matrix's rendering."""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "spec"))
import render  # noqa: E402

ROWS = render.load()


@cache
def _test_names(path: Path) -> frozenset[str]:
    """``name`` and ``Class::name`` for every test function defined in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            # hypothesis state machines: ``TestThing = ThingMachine.TestCase``
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}::{item.name}")
    return frozenset(names)


def test_rows_are_well_formed() -> None:
    ids = [row["id"] for row in ROWS]
    assert len(ids) == len(set(ids)), "duplicate ids in spec/compatibility.toml"
    for row in ROWS:
        assert row["status"] in render.STATUS_MARK, row["id"]
        assert row.get("area") and row.get("summary"), row["id"]


@pytest.mark.parametrize("row", ROWS, ids=[str(r["id"]) for r in ROWS])
def test_claim_names_existing_tests(row: dict[str, object]) -> None:
    tests = list(row.get("tests", []))  # type: ignore[call-overload]
    if row["status"] == "unsupported":
        return
    assert tests, f"{row['id']} claims support but names no test"
    for test_id in tests:
        file, _, name = str(test_id).partition("::")
        path = ROOT / file
        assert path.is_file(), f"{row['id']}: {file} does not exist"
        base = name.split("[", 1)[0]
        assert base in _test_names(path), f"{row['id']}: no test {name} in {file}"


def test_version_rows_name_known_versions() -> None:
    from amqpbroker.versions import VERSIONS

    assert tuple(VERSIONS) == render.VERSIONS
    for row in ROWS:
        versions = row.get("versions", {})
        checked = row.get("checked", {})
        assert set(versions) <= set(VERSIONS), row["id"]  # type: ignore[arg-type]
        assert set(checked) <= set(VERSIONS), row["id"]  # type: ignore[arg-type]
        assert set(checked.values()) <= set(render.CHECKED_MARK), row["id"]  # type: ignore[attr-defined]
        if versions:
            assert "3.10" in versions, f"{row['id']}: versions must start at 3.10"  # type: ignore[operator]


def test_readme_table_matches_matrix() -> None:
    text = render.README.read_text(encoding="utf-8")
    section = render.readme_section(text)
    assert section is not None, "README.md lacks the spec markers"
    assert section == render.render(ROWS), (
        "README table is stale: run python spec/render.py --write"
    )

"""The package as a user installs it: one version everywhere, types shipped, and the
Pythons it claims.  (.ci/wheel_smoke.py checks the built sdist and wheel themselves.)"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import amqpbroker

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_version_is_one_value_everywhere() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "amqpbroker", "--version"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == f"amqpbroker {amqpbroker.__version__}"
    # setuptools reads __version__ into the installed metadata.
    assert importlib.metadata.version("amqpbroker") == amqpbroker.__version__


def test_changelog_has_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (\S+)", changelog, re.MULTILINE)
    assert headings[0] == amqpbroker.__version__


def test_type_information_is_shipped() -> None:
    package = Path(amqpbroker.__file__).parent
    assert (package / "py.typed").is_file()


def test_classifiers_claim_exactly_the_supported_pythons() -> None:
    claimed = sorted(
        tuple(int(part) for part in c.rsplit(" ", 1)[1].split("."))
        for c in PYPROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    assert claimed, "no Python version classifiers"
    lowest = re.fullmatch(r">=(\d+)\.(\d+)", PYPROJECT["requires-python"])
    assert lowest is not None
    assert claimed[0] == (int(lowest[1]), int(lowest[2]))
    # No gaps: .ci/run tests each claimed version, so a gap would be an untested claim
    # hidden by the >= bound.
    assert claimed == [(3, minor) for minor in range(claimed[0][1], claimed[-1][1] + 1)]
    assert sys.version_info[:2] in claimed, "running on a Python the package does not claim"

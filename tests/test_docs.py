"""The docs match the code: every relative link in the README and docs/ points at a file that
exists, and the README's folder table names the import package each folder really is."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("methods/*/README.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.sub(r"`[^`\n]*`", "", text)


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_relative_links_point_at_files_that_exist(doc):
    missing = []
    for target in LINK.findall(_prose(doc.read_text())):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # web links and anchors
        if not (doc.parent / target.split("#")[0]).exists():
            missing.append(target)
    assert not missing, f"{doc.relative_to(ROOT)} links to missing paths: {missing}"


def test_folder_table_names_the_real_import_packages():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)/(?:<name>/)?` \| `([a-z_.]+)(?:\.<name>)?` \|", readme, flags=re.M)
    assert dict(rows) == {"benchmarks": "merbench", "methods": "merbench.methods", "datasets": "merbench.datasets",
                          "leaderboard": "merbench.leaderboard"}
    for folder, package in rows:
        assert Path(importlib.import_module(package).__file__).parent == ROOT / folder


def test_guide_example_is_the_tested_method():
    """docs/adding-a-method.md shows tests/guide_method.py; the two must not drift apart."""
    guide = (ROOT / "docs" / "adding-a-method.md").read_text()
    shown = re.search(r"```python\n(import torch\n.*?class GuideMethod\(TorchMethod\):\n.*?)```", guide, flags=re.S).group(1)
    source = (ROOT / "tests" / "guide_method.py").read_text()
    assert shown.strip() == source[source.index("import torch\n"):].strip()

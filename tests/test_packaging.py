"""The install layout: one import package `merbench` over the top-level folders, in both
a plain (wheel) install and the editable one, and no top-level `datasets` package that
would shadow the Hugging Face library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_editable_install_maps_folders_and_does_not_shadow_datasets(tmp_path):
    import merbench
    import merbench.datasets
    import merbench.leaderboard
    import merbench.methods

    assert Path(merbench.__file__).parent.name == "benchmarks"
    assert Path(merbench.methods.__file__).parent.name == "methods"
    assert Path(merbench.datasets.__file__).parent.name == "datasets"
    # In a fresh interpreter outside the checkout (as an installed user sees it), `datasets`
    # is Hugging Face's or absent, never our folder. (Inside the checkout, `python -m` puts the
    # working directory on sys.path; that is why the README runs `pytest`, not `python -m pytest`.)
    probe = subprocess.run([sys.executable, "-c", "import importlib.util as u; s = u.find_spec('datasets'); "
                            "print(s.origin if s else None)"], capture_output=True, text=True, cwd=tmp_path)
    origin = probe.stdout.strip()
    assert origin == "None" or ROOT not in Path(origin).parents, f"our datasets/ shadows Hugging Face datasets: {origin}"


@pytest.mark.slow
def test_plain_install_has_every_package_and_config(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "--target", str(target), str(ROOT)], capture_output=True, text=True)
    if build.returncode != 0 and "No module named pip" in build.stderr:
        pytest.skip("pip is not available in this environment")
    assert build.returncode == 0, build.stderr[-2000:]
    assert not (target / "datasets").exists() and not (target / "methods").exists()
    code = (
        "import merbench, merbench.methods.mlp.method as m, merbench.datasets.synthetic.adapter as s\n"
        "from merbench.config import method_config\n"
        "from merbench.registry import get_method\n"
        f"assert merbench.__file__.startswith({str(target)!r}), merbench.__file__\n"
        "cfg = method_config(get_method('miust'), variant='no_cmd', dataset='meld')\n"
        "assert cfg['loss']['cmd'] == 0 and cfg['model']['fusion_hidden'] == 128\n"
        "import merbench.sweep as sw; assert sw.find_suite('default').exists()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]

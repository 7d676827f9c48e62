"""Maps the top-level folders onto one import package, ``merbench``.

``benchmarks/`` is the engine (``merbench``), and ``methods/``, ``datasets/`` and
``leaderboard/`` become ``merbench.methods``, ``merbench.datasets`` and
``merbench.leaderboard``. A bare ``datasets`` package would shadow the Hugging Face
library of that name, which transformers imports. Subpackages are discovered, so a
new method or corpus folder (with an ``__init__.py``) is packaged with no edit here.
"""
from setuptools import find_packages, setup

ROOTS = {
    "merbench": "benchmarks",
    "merbench.methods": "methods",
    "merbench.datasets": "datasets",
    "merbench.leaderboard": "leaderboard",
}

packages, package_dir = [], {}
for pkg, folder in ROOTS.items():
    packages.append(pkg)
    package_dir[pkg] = folder
    for sub in find_packages(folder):
        packages.append(f"{pkg}.{sub}")
        package_dir[f"{pkg}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)

"""merbench: honest, reproducible benchmarks for multimodal emotion recognition.

The engine lives here (``merbench``); methods, corpora and the leaderboard are the
subpackages ``merbench.methods``, ``merbench.datasets`` and ``merbench.leaderboard``.
"""

__version__ = "0.1.0"

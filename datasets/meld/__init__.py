"""MELD corpus adapter (``merbench.datasets.meld``)."""

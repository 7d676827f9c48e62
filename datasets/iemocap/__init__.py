"""IEMOCAP corpus adapter (``merbench.datasets.iemocap``)."""

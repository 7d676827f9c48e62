"""CMU-MOSEI corpus adapter (``merbench.datasets.mosei``)."""

"""CMU-MOSI corpus adapter (``merbench.datasets.mosi``)."""

"""Corpus adapters: one folder per corpus (adapter, README.md).

Add a corpus: create its folder with a DatasetAdapter subclass and add it below.
"""

BUILTIN_DATASETS = {
    "synthetic": "merbench.datasets.synthetic.adapter:SyntheticDataset",
}

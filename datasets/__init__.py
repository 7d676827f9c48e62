"""Corpus adapters: one folder per corpus (adapter, README.md).

Add a corpus: create its folder with a DatasetAdapter subclass and add it below.
"""

BUILTIN_DATASETS = {
    "synthetic": "merbench.datasets.synthetic.adapter:SyntheticDataset",
    "meld": "merbench.datasets.meld.adapter:MELDDataset",
    "iemocap": "merbench.datasets.iemocap.adapter:IEMOCAPDataset",
    "mosi": "merbench.datasets.mosi.adapter:MOSIDataset",
    "mosei": "merbench.datasets.mosei.adapter:MOSEIDataset",
}

# A dataset argument that is a file (``bench run mlp path/to/corpus.yaml``): suffix -> the
# function that reads it and registers its adapter (merbench.registry.resolve_dataset).
DATASET_FILE_LOADERS = {
    ".yaml": "merbench.datasets.yaml_corpus.adapter:register_yaml_corpus",
    ".yml": "merbench.datasets.yaml_corpus.adapter:register_yaml_corpus",
}

"""Corpora described by a YAML file (annotation table, column map, labels, split rule).

``bench run <method> path/to/corpus.yaml`` reaches them through ``merbench.registry.resolve_dataset``;
see README.md in this folder for the descriptor format. ``descriptor.py`` reads and checks
the YAML file; ``adapter.py`` reads the tables it names and builds the corpus.
"""

from .adapter import (
    YamlCorpus,
    open_yaml_corpus,
    register_yaml_corpus,
    yaml_corpus_class,
)
from .descriptor import (
    Descriptor,
    parse_descriptor,
)

__all__ = ["Descriptor", "YamlCorpus", "open_yaml_corpus", "parse_descriptor",
           "register_yaml_corpus", "yaml_corpus_class"]

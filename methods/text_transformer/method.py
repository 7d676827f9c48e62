"""Text transformer baseline (pritampani/Multimodal_Emotion_Recognition, README only): a fine-tuned
BERT / RoBERTa / DistilBERT encoder, pooled output -> dropout -> linear head, cross-entropy.

The text is read at the engine's ``raw`` level (``features: {t: raw}``): the engine tokenizes
``Utterance.text`` (config blocks ``encoder`` and ``context``, see :mod:`merbench.text_encoder`).
"""

from __future__ import annotations

from pathlib import Path

from merbench.metadata import method_metadata_file
from merbench.text_encoder import encoder_from_config
from merbench.trainer import TorchMethod

from .model import TextClassifier


class TextTransformerMethod(TorchMethod):
    name = "text_transformer"
    config_dir = Path(__file__).parent
    metadata = method_metadata_file(__file__)  # metadata.yaml: title, links, the paper's numbers
    modalities = metadata.modalities
    unit = metadata.unit
    raw_capable = ("t",)
    # The conformance tests' model: the same head around a 2-layer random BERT (under 1 s a case
    # on one CPU thread instead of about 6 s with all-MiniLM-L6-v2; the hub variants are offline).
    conformance_overrides = {"encoder": {"name": "tiny-random-bert"}}

    def build_model(self, input_dims, num_classes):
        m = self.config.get("model") or {}
        return TextClassifier(encoder_from_config(self.config.get("encoder")), num_classes,
                              dropout=float(m.get("dropout", 0.1)))

"""CMU-MOSEI: sentiment labels in [-3, 3] with the official split (labels only here).

Same label file format and protocols as :mod:`merbench.datasets.mosi` (``mosei-2``,
``mosei-7``). No transcripts or segmented media are read, so the loaded corpus has no
modality until text or media support is added (the engine then refuses runs clearly).
"""

from __future__ import annotations

from typing import ClassVar

from merbench.interfaces import DatasetMetadata

from ..mosi.adapter import MOSIDataset

MOSEI_CITATION = ("Zadeh, Liang, Poria, Cambria, Morency. Multimodal Language Analysis in the Wild: CMU-MOSEI "
                  "Dataset and Interpretable Dynamic Fusion Graph. ACL 2018.")


class MOSEIDataset(MOSIDataset):
    name: ClassVar[str] = "mosei"
    metadata: ClassVar[DatasetMetadata] = DatasetMetadata(
        title="CMU-MOSEI: Multimodal Opinion Sentiment and Emotion Intensity",
        url="http://multicomp.cs.cmu.edu/resources/cmu-mosei-dataset/",
        license="research use (CMU MultiComp Lab terms); videos from YouTube",
        citation=MOSEI_CITATION,
        description="22,856 labelled segments (16,326 / 1,871 / 4,659) from YouTube monologues; sentiment in [-3, 3].",
    )
    default_protocol: ClassVar[str] = "mosei-2"
    transcript_file: ClassVar[str | None] = None
    citation: ClassVar[str] = MOSEI_CITATION

    def _media(self, uids):
        # The MOSEI release holds full videos; segments would need the CSD time stamps.
        self.media_report = {}
        return {}

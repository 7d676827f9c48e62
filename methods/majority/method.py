"""Majority-class baseline: predicts the most frequent training label. The floor every
method must beat; it also exercises the generic (non-torch) fit / predict contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from merbench.interfaces import FitReport, Method, SplitData
from merbench.metadata import method_metadata_file


class MajorityMethod(Method):
    name = "majority"
    config_dir = Path(__file__).parent
    metadata = method_metadata_file(__file__)  # metadata.yaml: title, links, the paper's numbers
    modalities = metadata.modalities
    unit = metadata.unit

    @classmethod
    def modality_subsets(cls):
        return [("t",)]

    @classmethod
    def feature_requests(cls, config, modalities):
        return {}

    def fit(self, train: SplitData, valid: SplitData, on_epoch=None) -> FitReport:
        counts = np.bincount(train.labels, minlength=self.num_classes)
        self.prior = counts / counts.sum()
        valid_acc = float((valid.labels == self.prior.argmax()).mean())
        return FitReport(epochs_run=0, best_valid_score=valid_acc, select_metric="accuracy")

    def predict(self, split: SplitData) -> np.ndarray:
        return np.tile(self.prior.astype(np.float32), (len(split), 1))

    def model_state(self):
        return {"prior": self.prior.astype(np.float64)}, {}

    def load_model_state(self, tensors, info):
        self.prior = np.asarray(tensors["prior"], dtype=np.float64)

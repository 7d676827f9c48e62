"""Nearest class centroid on standardised pooled text features: no training loop, no torch."""

from __future__ import annotations

import numpy as np

from merbench.interfaces import FitReport, Method, MethodMetadata
from merbench.metrics import classification_metrics


class HelloMethod(Method):
    name = "hello"
    modalities = ("t",)
    metadata = MethodMetadata(title="Hello plugin: nearest class centroid on pooled text features",
                              description="Test plugin registered through the merbench.methods entry point.")

    @classmethod
    def feature_requests(cls, config, modalities):
        # No config.yaml ships with the plugin: default to the built-in sentence encoder.
        features = {"t": "text-minilm", **(config.get("features") or {})}
        return super().feature_requests({**config, "features": features}, modalities)

    def fit(self, train, valid, on_epoch=None):
        x = train.features["t"].pooled.astype(np.float64)
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        z = (x - self.mean) / self.std
        present = np.array([(train.labels == c).any() for c in range(self.num_classes)])
        self.centroids = np.stack([z[train.labels == c].mean(0) if present[c] else np.zeros(z.shape[1])
                                   for c in range(self.num_classes)])
        self.present = present
        vm = classification_metrics(valid.labels, self.predict(valid).argmax(1), self.label_names)
        if on_epoch:
            on_epoch(1, 1, {"epoch": 1, "valid_weighted_f1": vm.weighted_f1})
        return FitReport(epochs_run=1, best_epoch=1, best_valid_score=vm.weighted_f1, select_metric="weighted_f1")

    def predict(self, split):
        z = (split.features["t"].pooled.astype(np.float64) - self.mean) / self.std
        dist = ((z[:, None, :] - self.centroids[None]) ** 2).sum(-1)
        logits = np.where(self.present[None], -dist, -np.inf)  # classes absent from training get 0
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(1, keepdims=True)).astype(np.float32)

"""Multi-focus BLSTM (ViraAkshat/CS772-Project): unimodal attention BLSTMs, then GMU fusion
initialised from them, trained in stages inside ``fit``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from merbench.errors import ConfigError
from merbench.interfaces import FitReport, SplitData
from merbench.metadata import method_metadata_file
from merbench.trainer import DEFAULT_TRAIN, TorchMethod

from .model import FusedBLSTM, UnimodalBLSTM


STAGES = ("a", "t", "fusion")
STAGE_CODE = {"a": 0.0, "t": 1.0, "fusion": 2.0}  # the "stage" column of the history rows
_TRAIN_KEYS = set(DEFAULT_TRAIN) | {"scheduler"}


class MultiFocusBLSTMMethod(TorchMethod):
    """With one modality: that modality's BiLSTM + pooling + linear classifier, trained once.

    With text and audio, ``fit`` runs three stages, each with the trainer's own loop (early stopping
    and epoch selection on ``valid``, checkpoints, resume): the audio model, the text model, then the
    fused model built from their trained encoders. Stage settings are ``train`` overlaid with
    ``stages.<a|t|fusion>``; ``train.epochs`` caps every stage's epochs (so ``--epochs 1`` gives a
    one-epoch run of each stage).
    """

    name = "multifocus_blstm"
    config_dir = Path(__file__).parent
    metadata = method_metadata_file(__file__)  # metadata.yaml: title, links, the paper's numbers
    modalities = metadata.modalities
    unit = metadata.unit

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stages = self.config.get("stages") or {}
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ConfigError(f"method {self.name}: unknown stages {sorted(unknown)}", fix=f"stages are {list(STAGES)}")
        for s, cfg in stages.items():
            bad = set(cfg or {}) - _TRAIN_KEYS
            if bad:
                raise ConfigError(f"method {self.name}: unknown train keys {sorted(bad)} in stages.{s}",
                                  fix=f"known: {sorted(_TRAIN_KEYS)}")
        self._stage: str | None = None
        self.unimodal_models: dict = {}  # after a multimodal fit: the trained audio / text models

    # -- model --------------------------------------------------------------------------
    def _model_cfg(self) -> tuple[dict, str, int]:
        m = self.config.get("model") or {}
        enc = {"hidden": m.get("hidden", 128), "layers": m.get("layers", 2),
               "pooling": m.get("pooling", "attention"), "attention_dim": m.get("attention_dim", 64)}
        return enc, m.get("fusion", "gmu"), m.get("gmu_dim", 128)

    def build_model(self, input_dims, num_classes):
        enc, fusion, gmu_dim = self._model_cfg()
        if len(self.modalities) == 1:
            m = self.modalities[0]
            return UnimodalBLSTM(m, input_dims[m], num_classes, **enc)
        if self._stage == "fusion":
            return FusedBLSTM.from_unimodal(self.unimodal_models["a"], self.unimodal_models["t"], num_classes,
                                            fusion=fusion, gmu_dim=gmu_dim)
        return FusedBLSTM({"a": input_dims["a"], "t": input_dims["t"]}, num_classes, fusion=fusion,
                          gmu_dim=gmu_dim, **enc)

    def _fit_normaliser(self, train: SplitData) -> None:
        # The original z-normalises the acoustic frames only; the text token states go in raw.
        super()._fit_normaliser(train)
        only = self.config.get("standardize_modalities")
        if only is not None:
            self.norm = {m: v for m, v in self.norm.items() if m in only}

    # -- staged fit -------------------------------------------------------------------------
    def stage_train_cfg(self, stage: str) -> dict:
        base = {**DEFAULT_TRAIN, **(self.config.get("train") or {})}
        cfg = {**base, **((self.config.get("stages") or {}).get(stage) or {})}
        cfg["epochs"] = min(int(cfg["epochs"]), int(base["epochs"]))
        return cfg

    def _fit_stage(self, stage: str, train: SplitData, valid: SplitData, staged: bool,
                   on_epoch: Callable | None) -> FitReport:
        saved = (self.modalities, self.train_cfg, self.config, self.workdir, self._stage)
        try:
            self._stage = stage
            if stage != "fusion":
                self.modalities = (stage,)
            self.train_cfg = self.stage_train_cfg(stage)
            # The stage is part of the config the checkpoint is keyed by.
            self.config = {**saved[2], "train": self.train_cfg, "stage": stage}
            if staged and saved[3] is not None:
                self.workdir = Path(saved[3]) / f"stage_{stage}"
            return TorchMethod.fit(self, train, valid, on_epoch=on_epoch)
        finally:
            self.modalities, self.train_cfg, self.config, self.workdir, self._stage = saved

    def fit(self, train: SplitData, valid: SplitData,
            on_epoch: Callable[[int, int, dict], None] | None = None) -> FitReport:
        plan = list(self.modalities) if len(self.modalities) == 1 else list(STAGES)
        staged = len(plan) > 1
        totals = [self.stage_train_cfg(s)["epochs"] for s in plan]
        reports: dict[str, FitReport] = {}
        history: list[dict] = []
        offset = 0
        self.unimodal_models = {}
        for stage, total in zip(plan, totals):
            cb = None
            if on_epoch is not None:  # one progress bar over all stages
                cb = (lambda e, t, row, off=offset: on_epoch(off + e, sum(totals), row))
            report = self._fit_stage(stage, train, valid, staged, cb)
            reports[stage] = report
            history += [{**row, "stage": STAGE_CODE[stage]} for row in report.history]
            if staged and stage != "fusion":
                self.unimodal_models[stage] = self.model
            offset += total
        if staged and self.workdir is not None:
            for stage in plan:  # all stages done: their resume checkpoints are no longer needed
                shutil.rmtree(Path(self.workdir) / f"stage_{stage}", ignore_errors=True)
        final = reports[plan[-1]]
        return FitReport(
            epochs_run=sum(r.epochs_run for r in reports.values()), best_epoch=final.best_epoch,
            best_valid_score=final.best_valid_score, select_metric=final.select_metric, history=history,
            extra={"stages": {s: {"epochs_run": r.epochs_run, "best_epoch": r.best_epoch,
                                  "best_valid_score": r.best_valid_score} for s, r in reports.items()}})

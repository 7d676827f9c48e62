"""Multi-focus BLSTM (ViraAkshat/CS772-Project): unimodal attention BLSTMs, then GMU fusion
initialised from them, trained in stages: each stage is its own trainer run."""

from __future__ import annotations

import shutil
from pathlib import Path

from merbench.errors import ConfigError
from merbench.interfaces import FitReport, OnEpoch, SplitData
from merbench.metadata import method_metadata_file
from merbench.trainer import DEFAULT_TRAIN, Trainer, TorchMethod

from .model import FusedBLSTM, UnimodalBLSTM


STAGES = ("a", "t", "fusion")
STAGE_CODE = {"a": 0.0, "t": 1.0, "fusion": 2.0}  # the "stage" column of the history rows
_TRAIN_KEYS = set(DEFAULT_TRAIN) | {"scheduler"}


class MultiFocusBLSTMMethod(TorchMethod):
    """With one modality: that modality's BiLSTM + pooling + linear classifier, trained once.

    With text and audio, ``fit`` runs three stages, each a separate :class:`~merbench.trainer.Trainer`
    run (early stopping and epoch selection on ``valid``, checkpoints, resume) with its own
    modalities, settings and checkpoint folder: the audio model, the text model, then the fused
    model built from their trained encoders. Stage settings are ``train`` overlaid with
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
        self.unimodal_models: dict = {}  # after a multimodal fit: the trained audio / text models

    # -- model --------------------------------------------------------------------------
    def _model_cfg(self) -> tuple[dict, str, int]:
        m = self.config.get("model") or {}
        enc = {"hidden": m.get("hidden", 128), "layers": m.get("layers", 2),
               "pooling": m.get("pooling", "attention"), "attention_dim": m.get("attention_dim", 64)}
        return enc, m.get("fusion", "gmu"), m.get("gmu_dim", 128)

    def build_model(self, input_dims, num_classes):
        """One modality: its unimodal model; both: a fresh fused model (the fusion stage builds
        its model from the trained unimodal ones instead, see :meth:`fit`)."""
        enc, fusion, gmu_dim = self._model_cfg()
        if len(input_dims) == 1:
            (m, dim), = input_dims.items()
            return UnimodalBLSTM(m, dim, num_classes, **enc)
        return FusedBLSTM({"a": input_dims["a"], "t": input_dims["t"]}, num_classes, fusion=fusion,
                          gmu_dim=gmu_dim, **enc)

    def _fused_from_stages(self, input_dims, num_classes):
        _, fusion, gmu_dim = self._model_cfg()
        return FusedBLSTM.from_unimodal(self.unimodal_models["a"], self.unimodal_models["t"], num_classes,
                                        fusion=fusion, gmu_dim=gmu_dim)

    def standardizes(self, modality: str) -> bool:
        # The original z-normalises the acoustic frames only; the text token states go in raw.
        only = self.config.get("standardize_modalities")
        return only is None or modality in only

    # -- staged fit -------------------------------------------------------------------------
    def stage_train_cfg(self, stage: str) -> dict:
        base = {**DEFAULT_TRAIN, **(self.config.get("train") or {})}
        cfg = {**base, **((self.config.get("stages") or {}).get(stage) or {})}
        cfg["epochs"] = min(int(cfg["epochs"]), int(base["epochs"]))
        return cfg

    def fit(self, train: SplitData, valid: SplitData, on_epoch: OnEpoch | None = None) -> FitReport:
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
            workdir = Path(self.workdir) / f"stage_{stage}" if staged and self.workdir is not None else self.workdir
            trainer = Trainer(self, train, valid, modalities=self.modalities if stage == "fusion" else (stage,),
                              train_cfg=self.stage_train_cfg(stage), workdir=workdir, name=stage, on_epoch=cb,
                              build_model=self._fused_from_stages if stage == "fusion" else None)
            report = reports[stage] = trainer.run()
            history += [{**row, "stage": STAGE_CODE[stage]} for row in report.history]
            if staged and stage != "fusion":
                self.unimodal_models[stage] = trainer.model
            offset += total
        self.model, self.batcher = trainer.model, trainer.batcher
        if staged and self.workdir is not None:
            for stage in plan:  # all stages done: their resume checkpoints are no longer needed
                shutil.rmtree(Path(self.workdir) / f"stage_{stage}", ignore_errors=True)
        final = reports[plan[-1]]
        return FitReport(
            epochs_run=sum(r.epochs_run for r in reports.values()), best_epoch=final.best_epoch,
            best_valid_score=final.best_valid_score, select_metric=final.select_metric, history=history,
            extra={"stages": {s: {"epochs_run": r.epochs_run, "best_epoch": r.best_epoch,
                                  "best_valid_score": r.best_valid_score} for s, r in reports.items()}})

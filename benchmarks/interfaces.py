"""The small interfaces every plugin implements.

- :class:`DatasetAdapter`: reads a corpus into :class:`~merbench.corpus.Utterance` s
  and names its protocols.
- :class:`FeatureExtractor`: turns utterances into pooled vectors and/or frame
  sequences (cached by :mod:`merbench.features.store`).
- :class:`Method`: ``fit(train, valid)`` then ``predict(split)``. Neural methods
  subclass :class:`merbench.trainer.TorchMethod`, whose trainer owns the loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Sequence

import numpy as np

from .corpus import Corpus, Utterance
from .protocols import Protocol

RAW = "raw"  # the feature level of a modality a method reads from the utterances itself (no extractor)
# Progress callback of ``Method.fit``: (epoch done, epochs planned, that epoch's history row).
OnEpoch = Callable[[int, int, dict], None]

# -- metadata ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReportedResult:
    """A number a paper reports, with the protocol it was measured under. Read from plain data:
    a method's ``metadata.yaml`` (its own paper's numbers) or the leaderboard's
    ``references.yaml`` (other papers'); see :mod:`merbench.metadata`."""

    dataset: str
    protocol: str
    metric: str  # a key of the metrics dict, e.g. "weighted_f1", "accuracy", "ua"
    value: float  # in percent, as papers print it
    modalities: str = "tav"
    source: str = ""  # where the number is printed (paper table, README)
    note: str = ""
    variant: str = "default"  # the config variant of ours that corresponds to the paper's model
    method: str = ""  # the method it belongs to (ours by registry name, others as the paper writes it)

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        return (self.dataset, self.protocol, self.method, self.modalities, self.metric, self.variant)


@dataclass(frozen=True)
class MethodMetadata:
    title: str
    authors: str = ""
    venue: str = ""
    year: int | None = None
    code_url: str = ""
    paper_url: str = ""
    bibtex: str = ""
    reported: tuple[ReportedResult, ...] = ()
    description: str = ""
    # Variants that run the paper's model on a smaller budget (fewer epochs, shorter sequences) ->
    # the variant whose reported numbers they stand beside, as pairs: (("cpu", "default"),). The
    # leaderboard shows the paper's number beside such a row and says it is the budget variant.
    budget_variants: tuple[tuple[str, str], ...] = ()
    # Variants that run the paper's model on the paper's own published features (feature packs) at
    # its dimensions and hyper-parameters -> the variant whose reported numbers they reproduce:
    # (("paper", "default"),). The leaderboard shows the paper's number beside such a row.
    paper_variants: tuple[tuple[str, str], ...] = ()
    # What the method works on, readable without importing it (``bench list methods``).
    modalities: tuple[str, ...] = ("t", "a", "v")
    unit: Literal["utterance", "dialogue"] = "utterance"


@dataclass(frozen=True)
class DatasetMetadata:
    title: str
    url: str = ""
    license: str = ""
    citation: str = ""
    description: str = ""


@dataclass(frozen=True)
class FeatureRequest:
    """Which extractor feeds a modality, at which level, and with which extractor options.

    ``options`` are keyword arguments of the extractor's constructor (e.g.
    ``{select_track: lipsync}`` for ``video-facecrop``); they change its ``settings()`` and so
    its cache key. No options = the extractor's defaults (and its usual cache entry)."""

    extractor: str
    level: Literal["pooled", "frames"] = "pooled"  # (a raw modality has no request at all)
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def label(self) -> str:
        """``extractor`` or ``extractor[key=value,...]``: how results name the features."""
        if not self.options:
            return self.extractor
        return self.extractor + "[" + ",".join(f"{k}={v}" for k, v in sorted(self.options.items())) + "]"


REQUEST_KEYS = ("extractor", "level", "options")


def parse_feature_request(spec: Any, where: str) -> FeatureRequest:
    """A config entry ``<extractor>`` or ``{extractor: ..., level: ..., options: {...}}``."""
    from .errors import ConfigError

    if isinstance(spec, str):
        return FeatureRequest(spec)
    if not isinstance(spec, dict) or "extractor" not in spec:
        raise ConfigError(f"{where}: expected an extractor name or a mapping with an 'extractor' key, got {spec!r}",
                          fix="write e.g. features.v: video-facecrop or {extractor: video-facecrop, options: {...}}")
    unknown = sorted(set(spec) - set(REQUEST_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}", fix=f"a feature request has the keys {', '.join(REQUEST_KEYS)}")
    options = spec.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}.options must be a mapping of extractor options, not {options!r}",
                          fix="write e.g. options: {select_track: lipsync}")
    return FeatureRequest(spec["extractor"], spec.get("level", "pooled"), dict(options))


# -- data handed to methods ----------------------------------------------------------


@dataclass
class FeatureTable:
    """Features of one extractor for a list of utterances, in that list's order.

    ``pooled`` is (N, D). ``frames`` holds one (T_i, D_f) array per utterance (or is None
    when the extractor has no frame level). ``valid`` is False where the media was
    unreadable and the features are zeros (the ``--on-bad-media zero`` policy).
    """

    extractor: str
    uids: list[str]
    pooled: np.ndarray
    frames: list[np.ndarray] | None = None
    valid: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.pooled.ndim != 2 or self.pooled.shape[0] != len(self.uids):
            from .errors import FeatureShapeError

            raise FeatureShapeError(
                f"features of {self.extractor}: pooled array has shape {self.pooled.shape}, expected ({len(self.uids)}, D)",
                fix="delete the feature cache for this extractor and extract again (bench features extract)",
            )
        if self.valid is None:
            self.valid = np.ones(len(self.uids), dtype=bool)

    @property
    def dim(self) -> int:
        return int(self.pooled.shape[1])

    @property
    def frame_dim(self) -> int | None:
        return None if not self.frames else int(self.frames[0].shape[1])

    def subset(self, uids: Sequence[str]) -> "FeatureTable":
        index = {u: i for i, u in enumerate(self.uids)}
        missing = [u for u in uids if u not in index]
        if missing:
            from .errors import FeatureShapeError

            raise FeatureShapeError(f"features of {self.extractor} lack {len(missing)} utterances, e.g. {missing[:3]}",
                                    fix="extract features again for this corpus")
        rows = [index[u] for u in uids]
        return FeatureTable(
            self.extractor, list(uids), self.pooled[rows],
            None if self.frames is None else [self.frames[r] for r in rows], self.valid[rows],
        )


@dataclass
class SplitData:
    """One split as a method sees it. For the split a method predicts, ``labels`` is None
    and the utterances carry no labels or annotations."""

    name: str
    utterances: list[Utterance]
    features: dict[str, FeatureTable]  # modality -> features aligned with utterances
    label_names: tuple[str, ...]
    labels: np.ndarray | None = None  # class indices, aligned with utterances

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def uids(self) -> list[str]:
        return [u.uid for u in self.utterances]

    def dialogues(self) -> list[list[int]]:
        """Row indices grouped by dialogue, each in turn order; dialogues in first-seen order."""
        groups: dict[str, list[int]] = {}
        for i, u in enumerate(self.utterances):
            groups.setdefault(u.dialogue_id, []).append(i)
        return [sorted(rows, key=lambda r: self.utterances[r].turn) for rows in groups.values()]


@dataclass
class FitReport:
    epochs_run: int = 0
    best_epoch: int | None = None
    best_valid_score: float | None = None
    select_metric: str = ""
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    extra: dict[str, Any] = field(default_factory=dict)


# -- plugins --------------------------------------------------------------------------


class DatasetAdapter(ABC):
    """Reads one corpus. Subclasses set the class attributes and implement ``load``."""

    name: ClassVar[str]
    metadata: ClassVar[DatasetMetadata]
    modalities: ClassVar[tuple[str, ...]] = ("t", "a", "v")
    default_protocol: ClassVar[str]

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root else self.default_root()

    def default_root(self) -> Path:
        from .paths import data_root

        return data_root() / self.name

    @classmethod
    @abstractmethod
    def protocols(cls) -> list[Protocol]:
        """The named protocols this corpus supports."""

    @classmethod
    def protocol(cls, name: str | None = None) -> Protocol:
        from .errors import UnknownNameError
        import difflib

        protos = {p.name: p for p in cls.protocols()}
        name = name or cls.default_protocol
        if name not in protos:
            close = difflib.get_close_matches(name, list(protos), n=3, cutoff=0.4)
            raise UnknownNameError(
                f"dataset {cls.name} has no protocol {name!r}" + (f"; did you mean {', '.join(map(repr, close))}?" if close else ""),
                fix=f"its protocols are: {', '.join(protos)}",
            )
        return protos[name]

    @abstractmethod
    def load(self) -> Corpus:
        """Read the corpus from ``self.root``; raise CorpusNotFoundError naming what is missing."""

    def prepare(self, progress: bool = True) -> None:
        """Generate, convert or validate the corpus where that is needed (default: validate by loading)."""
        self.load()


class FeatureExtractor(ABC):
    """Turns utterances of one modality into features. Cached by (corpus, name, version, settings)."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    modality: ClassVar[str]  # "t", "a" or "v"
    levels: ClassVar[tuple[str, ...]] = ("pooled",)  # and "frames" where it has them
    batch_size: int = 32

    def settings(self) -> dict[str, Any]:
        """Everything besides name and version that changes the output (part of the cache key)."""
        return {}

    def output_dim(self, level: str = "pooled") -> int:
        """Feature size at ``level``, known without extracting (used to size models in ``bench info``)."""
        raise NotImplementedError(f"extractor {self.name} does not state its output size")

    @abstractmethod
    def extract(self, utterances: Sequence[Utterance]) -> list["ExtractedItem"]:
        """Features for a batch of utterances, in order. Raise MediaError for an unreadable file."""


@dataclass
class ExtractedItem:
    pooled: np.ndarray  # (D,)
    frames: np.ndarray | None = None  # (T, D_f)
    # What the extractor noticed and the cache must remember (a resumed or reused extraction has
    # no extractor state to ask): e.g. "no_face" when whole frames stood in for a face crop.
    notes: tuple[str, ...] = ()


class Method(ABC):
    """A method: a name, the modalities it can use, its features, and fit / predict.

    The engine constructs it once per (fold, seed), calls ``fit(train, valid)``, then
    ``predict(test)`` on a split whose labels are hidden. Model selection must use
    ``valid`` only; the engine never gives a method test labels.
    """

    name: ClassVar[str]
    metadata: ClassVar[MethodMetadata]
    modalities: ClassVar[tuple[str, ...]] = ("t", "a", "v")
    unit: ClassVar[Literal["utterance", "dialogue"]] = "utterance"
    # Modalities that ``features: {m: raw}`` may name: the method reads them from the utterances
    # itself (e.g. text for a fine-tuned encoder) and no extractor runs for them.
    raw_capable: ClassVar[tuple[str, ...]] = ()
    # Folder holding config.yaml (and variants/); set by subclasses to Path(__file__).parent
    config_dir: ClassVar[Path | None] = None

    def __init__(self, config: dict, modalities: tuple[str, ...], label_names: tuple[str, ...],
                 seed: int = 0, device: str = "cpu", workdir: Path | None = None):
        self.config = config
        self.modalities = tuple(modalities)
        self.label_names = tuple(label_names)
        self.num_classes = len(label_names)
        self.seed = seed
        self.device = device
        self.workdir = workdir

    @classmethod
    def accepted_config_keys(cls) -> dict[str, set[str]]:
        """Config keys a method accepts with built-in defaults, per block (for ``--set``)."""
        return {}

    @classmethod
    def modality_subsets(cls) -> list[tuple[str, ...]]:
        """Every non-empty subset of the declared modalities (override to narrow)."""
        from itertools import combinations

        mods = cls.modalities
        return [c for r in range(1, len(mods) + 1) for c in combinations(mods, r)]

    @classmethod
    def feature_requests(cls, config: dict, modalities: Sequence[str]) -> dict[str, FeatureRequest]:
        """modality -> extractor, read from ``config['features']`` (e.g. ``{t: text-minilm}``)."""
        from .errors import ConfigError

        feats = config.get("features") or {}
        out = {}
        for m in modalities:
            spec = feats.get(m)
            if spec is None:
                raise ConfigError(f"method {cls.name}: config has no feature extractor for modality {m!r}",
                                  fix=f"add features.{m}: <extractor> to its config")
            if spec == RAW or (isinstance(spec, dict) and spec.get("level") == RAW):
                if m not in cls.raw_capable:
                    raise ConfigError(f"method {cls.name}: features.{m}: raw is not supported for that modality",
                                      fix=f"name a feature extractor (raw: {', '.join(cls.raw_capable) or 'none'})")
                continue  # read from the utterances by the method itself: nothing to extract
            out[m] = parse_feature_request(spec, f"method {cls.name}: features.{m}")
        return out

    @abstractmethod
    def fit(self, train: SplitData, valid: SplitData, on_epoch: OnEpoch | None = None) -> FitReport:
        """Train on ``train``; select epochs / hyper-parameters on ``valid`` only. Call
        ``on_epoch(epoch, epochs, row)`` after each epoch (the CLI's progress and live table);
        a method without epochs may never call it."""

    @abstractmethod
    def predict(self, split: SplitData) -> np.ndarray:
        """Class probabilities (N, C) or scores for every utterance of ``split``, in order."""

    def num_parameters(self, input_dims: dict[str, int] | None = None) -> int | None:
        """Trainable parameters of the built model (None for non-parametric methods)."""
        return None

    # -- the kept model (``bench predict``, ``merbench.load_model``) -------------------------------
    def model_state(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The fitted model as named arrays (stored as safetensors) and plain data (stored as YAML),
        or None when this method cannot keep its model. :meth:`load_model_state` on a method built
        with the same config, modalities and labels must give the same predictions from them."""
        return None

    def load_model_state(self, tensors: dict[str, Any], info: dict[str, Any]) -> None:
        """Restore what :meth:`model_state` returned, so that :meth:`predict` works without ``fit``."""
        from .errors import MerbenchError

        raise MerbenchError(f"method {self.name} cannot load a kept model")

"""merbench: honest, reproducible benchmarks for multimodal emotion recognition.

The engine lives here (``merbench``); methods, corpora and the leaderboard are the
subpackages ``merbench.methods``, ``merbench.datasets`` and ``merbench.leaderboard``.
"""

__version__ = "0.1.0"

import os as _os

# Model files are data, never code: every torch.load in a merbench process, ours and the libraries'
# (FunASR, transformers), reads tensors and plain containers only, whatever its own weights_only says.
# TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 in the environment is the explicit, informed way out.
if not _os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"):
    _os.environ.setdefault("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")


def load_model(path, device: str = "cpu"):
    """A run's kept model (a result file, its ``<stem>.model`` folder, or a folder from ``bench export``);
    ``.predict(inputs)`` labels clips, folders of clips or a corpus split. See :mod:`merbench.predict`."""
    from .predict import load_model as _load

    return _load(path, device)

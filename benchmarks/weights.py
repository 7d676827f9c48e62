"""Loading model files as weights only: tensors and plain containers, never pickled code.

``torch.load(..., weights_only=True)`` refuses any global other than tensors and builtins, so a
planted checkpoint (``__reduce__`` -> a shell command) is refused before anything in it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import DamagedFileError


def load_weights(path: str | Path, map_location: Any = "cpu") -> Any:
    """The content of a torch file written by ``torch.save`` of tensors and plain containers.

    Raises :class:`DamagedFileError` naming the file when it is cut short or asks for anything
    else (code); nothing in the file is run."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            return load_file(str(path), device=str(map_location))
        except Exception as e:  # noqa: BLE001 - any failure means the file is not usable weights
            raise DamagedFileError(path, f"not a readable safetensors file ({type(e).__name__}: {e})") from None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError, EOF, zip errors, ...: all mean "not our weights"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DamagedFileError(path, f"cannot be loaded as weights only (nothing in it was run): "
                                     f"{type(e).__name__}: {reason}") from None

"""Errors a user can act on. The CLI prints them without a traceback."""

from __future__ import annotations


class MerbenchError(Exception):
    """An error with a message that says what went wrong and how to fix it."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message if not self.fix else f"{self.message}\nFix: {self.fix}"


class UnknownNameError(MerbenchError, KeyError):
    """A method, dataset, protocol or extractor name that is not registered."""


class CorpusNotFoundError(MerbenchError):
    """A corpus root or one of its required files is missing."""


class MediaError(MerbenchError):
    """A media file (wav, mp4, ...) that cannot be read."""

    def __init__(self, path, reason: str, fix: str | None = None):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read media file {self.path}: {reason}", fix)


class FeatureShapeError(MerbenchError):
    """A feature array whose shape does not match what the extractor or method expects."""


class FeatureExtractionError(MerbenchError):
    """An extractor that failed on a file in a way other than an unreadable file (named with it)."""


class ConfigError(MerbenchError):
    """A bad config value, override or descriptor."""


class UnsafePickleError(MerbenchError):
    """A pickle that asks for something other than arrays and plain containers."""


class DamagedFileError(MerbenchError):
    """A file merbench wrote itself (checkpoint, finished fold, cache part, result) that cannot be
    read back: cut short, edited, or not what it claims to be. Named so that it can be set aside."""

    def __init__(self, path, reason: str, fix: str | None = None):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path} is damaged: {reason}", fix)

"""One exception hierarchy for the whole project.

Every message names the bad thing and what is accepted. This module imports nothing
heavy so that the runtime can raise the same classes without loading sympy.
"""
import difflib


class SymgradError(Exception):
    """Root of every error symgrad raises for a user's mistake."""


class ExpressionError(SymgradError, ValueError):
    """A loss or layer expression that cannot be compiled."""


class ExpressionSyntaxError(ExpressionError):
    pass


class UnknownSymbolError(ExpressionError):
    pass


class UnsupportedFunctionError(ExpressionError):
    pass


class MissingPredictionError(ExpressionError):
    pass


class NonDifferentiableError(ExpressionError):
    """An expression with no usable derivative: a comparison used as a number, or a loss
    whose gradient is zero everywhere (y_pred only inside sign, Heaviside, ...)."""


class ParameterError(SymgradError, ValueError):
    """A parameter of a loss, layer, optimizer or call that is out of range or of the wrong type."""


class UnknownNameError(SymgradError, LookupError):
    """A name (loss, layer, activation, metric, ...) that the catalogue does not have."""

    def __str__(self):  # LookupError would quote the message like a KeyError; keep it plain
        return self.args[0] if self.args else ""


class OpsetError(SymgradError, ValueError):
    pass


class ShapeError(SymgradError, ValueError):
    pass


class DataError(SymgradError, ValueError):
    """Training or evaluation data that does not fit the compiled program."""


class BundleError(SymgradError, OSError):
    """An artifact bundle or checkpoint that is missing, corrupt or from a newer version."""


class OnnxModelError(SymgradError, ValueError):
    """An ONNX file given to symgrad (to import, inspect or train from) that it refuses to
    read: not ONNX, stored through a symlink, external data outside the model's folder,
    or an operator outside the standard domain (compiler/untrusted.py)."""


class SaveError(SymgradError, OSError):
    """A file or folder that could not be written (disk full, no permission); the
    message names the path, and ``errno`` is the operating system's."""


class FolderInUseError(SymgradError, OSError):
    """A folder that another process is working in (BackupAndRestore's backup_dir)."""


class ProviderError(SymgradError, RuntimeError):
    """An onnxruntime execution provider that is unknown or not installed."""


class WorkerError(SymgradError, RuntimeError):
    """A data-parallel worker (runtime/distributed) that died, failed or stopped answering."""


class GradcheckError(SymgradError, AssertionError):
    """A gradient that disagrees with finite differences."""


class UnsupportedOpError(SymgradError, NotImplementedError):
    """An ONNX op the importer cannot translate (docs/ops.md lists the ones it can)."""


def unknown_name(kind, name, known):
    """An UnknownNameError that suggests the closest known names."""
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownNameError(
        f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known))}."
    )

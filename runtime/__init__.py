"""symgrad.runtime: onnxruntime sessions, the trainer, callbacks, checkpoints and the CLI.
Needs no sympy: it reads only artifact bundles."""
from . import callbacks
from .trainer import Trainer

__all__ = ["Trainer", "callbacks"]

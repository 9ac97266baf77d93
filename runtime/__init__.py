"""symgrad.runtime: onnxruntime sessions, the trainer, callbacks, checkpoints and the CLI.
Needs no sympy: it reads only artifact bundles."""

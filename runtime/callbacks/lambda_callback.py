"""LambdaCallback: plain functions with the hook signatures (Keras; TF.js CustomCallback)."""
from symgrad.compiler.errors import ParameterError

from .base import ALIASES, CAMEL, HOOKS, TFJS_BATCH_END, Callback, tfjs_batch_logs


class LambdaCallback(Callback):
    """``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``; camelCase keywords
    (``onEpochEnd=...``) are accepted too. Hooks not given cost nothing."""

    HOOK_NAMES = frozenset(HOOKS) | frozenset(ALIASES.values())

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for key, fn in kwargs.items():
            name = CAMEL.get(key, key)
            if name not in self.HOOK_NAMES:
                raise ParameterError(f"LambdaCallback: unknown hook {key!r}; accepted: "
                                     f"{', '.join(sorted(self.HOOK_NAMES))} (or their camelCase names)")
            if key == TFJS_BATCH_END and callable(fn):      # TF.js semantics: the batch's own loss
                fn = self._tfjs_hook(fn)
            given[name] = fn
        self._fns = {}
        for name, fn in given.items():
            if fn is None:
                continue
            if not callable(fn):
                raise ParameterError(f"LambdaCallback: {name} must be a function, got {fn!r}")
            self._fns[name] = fn
            setattr(self, name, fn)     # the instance attribute shadows the no-op method

    def _tfjs_hook(self, fn):
        def on_batch_end(batch, logs=None):
            return fn(batch, tfjs_batch_logs(self.trainer, batch, logs))
        return on_batch_end

    def active_hooks(self):
        return {h for h in HOOKS if h in self._fns or ALIASES.get(h) in self._fns}

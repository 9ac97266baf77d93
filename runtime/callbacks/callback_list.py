"""CallbackList: fans each hook out to the callbacks that use it.

Each hook is resolved once, at construction, to the bound methods of the callbacks
that override it; ``has(hook)`` lets the fit loop skip a batch hook entirely (no call,
no logs dict) when nobody listens.
"""
from symgrad.compiler.errors import ParameterError

from .base import CAMEL, HOOKS, Callback, snake
from .history import History
from .lambda_callback import LambdaCallback
from .progbar_logger import ProgbarLogger


def as_callback(obj):
    """A Callback, or a dict of hook functions (TF.js style ``{onEpochEnd: fn}`` or
    ``{"on_epoch_end": fn}``) wrapped in a LambdaCallback."""
    if isinstance(obj, Callback):
        return obj
    if isinstance(obj, dict):
        hooks = {}
        for key, fn in obj.items():
            name = CAMEL.get(key, snake(key) if isinstance(key, str) else key)
            if name not in LambdaCallback.HOOK_NAMES:
                raise ParameterError(f"unknown callback hook {key!r} in a callback dict; accepted: "
                                     f"{', '.join(sorted(LambdaCallback.HOOK_NAMES))} (or their camelCase names)")
            hooks[key if key in CAMEL else name] = fn      # camelCase keys keep TF.js semantics
        return LambdaCallback(**hooks)
    raise ParameterError(f"callbacks must be symgrad.runtime.callbacks.Callback instances or dicts of hook "
                         f"functions, got {type(obj).__name__}")


class CallbackList:
    def __init__(self, callbacks=None, trainer=None, add_history=False, add_progbar=False, **params):
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, (Callback, dict)):
            callbacks = [callbacks]
        elif not isinstance(callbacks, (list, tuple)):
            raise ParameterError(f"callbacks must be a list of Callback instances, got {type(callbacks).__name__}")
        cbs = [as_callback(c) for c in callbacks]
        self.history = next((c for c in cbs if isinstance(c, History)), None)
        if self.history is None and add_history:
            self.history = History()
            cbs.append(self.history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in cbs):
            cbs.insert(0, ProgbarLogger())
        # callbacks that snapshot the training state (BackupAndRestore) see it after all others acted
        cbs = [c for c in cbs if not getattr(c, "run_last", False)] + [c for c in cbs if getattr(c, "run_last", False)]
        self.callbacks = cbs
        self.params = params
        for cb in cbs:
            cb.set_model(trainer)
            cb.set_params(params)
        self._active = {h: [] for h in HOOKS}
        for cb in cbs:
            for hook in cb.active_hooks():
                self._active[hook].append(getattr(cb, hook))
        for hook in HOOKS:
            setattr(self, hook, self._dispatcher(self._active[hook]))

    @staticmethod
    def _dispatcher(fns):
        if not fns:
            return _noop
        if len(fns) == 1:
            return fns[0]

        def dispatch(*args, **kwargs):
            for fn in fns:
                fn(*args, **kwargs)
        return dispatch

    def has(self, hook):
        return bool(self._active[hook])

    def __iter__(self):
        return iter(self.callbacks)


def _noop(*args, **kwargs):
    pass

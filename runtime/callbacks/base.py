"""The Callback base class: every hook a no-op, Keras names and signatures.

TF.js users may write ``onEpochEnd(self, epoch, logs)``; a subclass that defines a
camelCase hook gets the snake_case hook wired to it. ``on_train_batch_begin/end`` call
the legacy aliases ``on_batch_begin/end``, as in Keras.

Batch logs follow the library whose name the hook has. Keras-named batch-end hooks
(``on_train_batch_end``, ``on_batch_end``) receive the running means of the epoch so far,
as Keras; the TF.js-named ``onBatchEnd`` receives the batch's own values, as TF.js:
``{"batch": i, "size": n, "loss": <this batch's loss>, <metric>: ...}``. Either kind of
hook can read the batch's own values as ``self.trainer.batch_logs``.
"""
import re

HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
         "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
         "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
         "on_predict_batch_begin", "on_predict_batch_end", "on_after_backward", "on_before_optimizer_step")
ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


def camel(name):
    """on_epoch_end -> onEpochEnd"""
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def snake(name):
    """onEpochEnd -> on_epoch_end"""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


CAMEL = {camel(h): h for h in HOOKS + tuple(ALIASES.values())}


TFJS_BATCH_END = "onBatchEnd"


def tfjs_batch_logs(trainer, batch, logs):
    """TF.js' batch-end logs: the batch's own loss and metrics (``trainer.batch_logs``)."""
    own = getattr(trainer, "batch_logs", None)
    return dict(own, batch=batch) if own is not None else logs


def _forward_to(camel_name):
    if camel_name == TFJS_BATCH_END:
        def hook(self, batch, logs=None):
            return getattr(self, camel_name)(batch, tfjs_batch_logs(self.trainer, batch, logs))
    else:
        def hook(self, *args, **kwargs):
            return getattr(self, camel_name)(*args, **kwargs)
    hook.__name__ = snake(camel_name)
    return hook


class Callback:
    """Base class of the trainer's callbacks. ``self.trainer`` (alias ``self.model``) is
    the Trainer; ``self.params`` holds ``verbose``, ``epochs``, ``steps`` (None when
    unknown), ``batch_size`` and ``do_validation``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for camel_name, snake_name in CAMEL.items():
            if camel_name in cls.__dict__ and snake_name not in cls.__dict__:
                setattr(cls, snake_name, _forward_to(camel_name))

    def __init__(self):
        self.trainer = None
        self.params = {}

    @property
    def model(self):
        return self.trainer

    @model.setter
    def model(self, trainer):
        self.trainer = trainer

    def set_params(self, params):
        self.params = params

    def set_model(self, trainer):
        self.trainer = trainer

    setParams, setModel, set_trainer = set_params, set_model, set_model

    def active_hooks(self):
        """The hooks this callback really uses: those its class overrides. A subclass may
        narrow the set (a batch hook only needed for some settings) so that unused batch
        hooks cost nothing."""
        base = Callback
        cls = type(self)
        used = set()
        for hook in HOOKS:
            alias = ALIASES.get(hook)
            if getattr(cls, hook) is not getattr(base, hook) or (alias and getattr(cls, alias) is not getattr(base, alias)):
                used.add(hook)
        return used

    # the state BackupAndRestore saves so that a resumed run continues exactly; None: nothing
    def state_dict(self):
        return None

    def load_state_dict(self, state):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_after_backward(self, batch, logs=None):
        """After the gradients of batch ``batch`` are computed, before the update; read them
        with ``self.trainer.get_gradients()``. Defining it switches the trainer to the
        split gradients + update graphs."""

    def on_before_optimizer_step(self, batch, logs=None):
        """Right before the optimizer update of batch ``batch`` (after on_after_backward);
        ``self.trainer.set_gradients(...)`` changes what the update applies."""

"""Small pieces of the Trainer's surface: the Keras-style optimizer view, the order of
get_weights(), and argument checks shared by fit/evaluate/predict."""
import difflib
import inspect
import numbers

from symgrad.compiler.errors import ParameterError


class OptimizerView:
    """``trainer.optimizer``: Keras ``optimizer.learning_rate = x``, TF.js ``setLearningRate``."""

    def __init__(self, trainer):
        self._trainer = trainer
        spec = trainer.manifest.get("optimizer", {})
        self.name = spec.get("name")
        self._config = dict(spec.get("config", {}))

    @property
    def learning_rate(self):
        return self._trainer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._trainer.learning_rate = value

    def setLearningRate(self, value):
        self._trainer.learning_rate = value

    @property
    def iterations(self):
        return self._trainer.step

    def get_config(self):
        return {**self._config, "learning_rate": self._trainer.learning_rate}


def check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ParameterError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return verbose


def weight_order(manifest, program):
    """Keras order: layer by layer, trainable weights then non-trainable ones."""
    names = {e["name"] for s in ("params", "state") for e in manifest.get(s, [])}
    if program is not None and hasattr(program, "weights"):
        ordered = [w.name for w in program.weights if w.name in names]
        if set(ordered) == names:
            return ordered
    layers = {}
    for section in ("params", "state"):
        for e in manifest.get(section, []):
            layers.setdefault(e.get("layer", e["name"].rsplit("/", 1)[0]), []).append(e["name"])
    return [n for group in layers.values() for n in group]


def reject_unknown(method, kwargs):
    """A ParameterError for keywords ``method`` does not take (instead of Python's
    TypeError), suggesting the closest accepted name."""
    if not kwargs:
        return
    accepted = [p for p in inspect.signature(method).parameters if p not in ("self", "kwargs")]
    parts = []
    for key in kwargs:
        close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ParameterError(f"{method.__name__}() got unknown argument(s) {', '.join(parts)}; accepted: "
                         f"{', '.join(accepted)}")

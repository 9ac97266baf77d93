"""The catalogue's table: one ``Entry`` per loss, its aliases, and parameter checking.

An entry is a plain function whose keyword parameters (with their defaults) are the
loss's parameters; ``@register`` records it with a rule per parameter. ``get`` checks
names and values before the function runs, so every mistake becomes a SymgradError
that names the bad thing and what is accepted.
"""
import difflib
import inspect
import re

from ..errors import ParameterError, UnknownNameError
from ..loss import Loss
from ..params import RULES as NUMBER_RULES, check_choice, check_number, check_int
from .common import check_axes, check_axis, check_bool, check_clip_epsilon, check_reduction, check_vector

CATEGORIES = {
    "regression": "Regression",
    "classification": "Classification",
    "similarity": "Similarity and segmentation",
    "multi_input": "Multi-input",
    "sequence": "Sequence",
    "tfjs": "TensorFlow.js core losses (tf.losses.*: per element, SUM_BY_NONZERO_WEIGHTS)",
    "pytorch": "PyTorch class names (PyTorch's arguments, defaults and reductions)",
}
ENTRIES = {}        # canonical name -> Entry, in declaration order
ALIASES = {}        # alias -> canonical name
CLASS_NAMES = {}    # 'crossentropyloss' -> 'CrossEntropyLoss' (entries named by a PyTorch class)


class Entry:
    """One catalogue loss: ``declare(**params)`` returns the keyword arguments of ``Loss``."""

    def __init__(self, func, category, aliases, rules, name=None):
        self.name = name or func.__name__
        self.declare = func
        self.category = category
        self.aliases = tuple(aliases)
        self.rules = dict(rules)
        self.doc = inspect.cleandoc(func.__doc__ or "")
        sig = inspect.signature(func)
        self.defaults = {k: v.default for k, v in sig.parameters.items()}
        missing = [k for k in self.defaults if k not in self.rules and k != "reduction"]
        if missing:
            raise TypeError(f"catalogue entry {self.name}: no rule for parameter(s) {missing}")

    @property
    def summary(self):
        return self.doc.split("\n\n", 1)[0].replace("\n", " ")

    def describe_rule(self, pname):
        if pname == "reduction" and pname not in self.rules:
            return "one of none, sum, mean, sum_over_batch_size, weighted_mean, sum_by_nonzero_weights"
        rule = self.rules[pname]
        optional = rule.endswith("?")
        rule = rule.rstrip("?")
        if rule.startswith("choice:"):
            what = "one of " + ", ".join(rule[7:].split(","))
        else:
            what = _RULE_TEXT.get(rule) or NUMBER_RULES[rule][0]
        return what + (" or None" if optional else "")

    def check(self, params):
        owner = f"loss {self.name!r}"
        # TF.js spells parameters in camelCase (labelSmoothing): the same parameter
        params = {normalize(k) if k not in self.defaults and normalize(k) in self.defaults else k: v
                  for k, v in params.items()}
        unknown = [k for k in params if k not in self.defaults]
        if unknown:
            bad = unknown[0]
            close = difflib.get_close_matches(bad, list(self.defaults), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ParameterError(f"{owner} has no parameter {bad!r}.{hint} Accepted parameters: "
                                 + ", ".join(f"{k}={v!r}" for k, v in self.defaults.items()))
        values = dict(self.defaults)
        values.update(params)
        for k, v in values.items():
            if k == "reduction" and k not in self.rules:
                values[k] = check_reduction(owner, v, default=None)
            else:
                values[k] = _check(owner, k, v, self.rules[k])
        return values

    def make(self, **params):
        values = self.check(params)
        spec = self.declare(**values)
        # an entry may map its own reduction names (PyTorch's 'batchmean') to Loss reductions
        reduction = spec.pop("reduction", None) or values.get("reduction") \
            or spec.pop("default_reduction", "sum_over_batch_size")
        spec.pop("default_reduction", None)
        cls, extra = spec.pop("loss_class", Loss), spec.pop("loss_kwargs", {})
        loss = cls(spec.pop("expr"), reduction=reduction, name=self.name, doc=self.doc, **spec, **extra)
        loss.config = {k: v for k, v in values.items() if k != "reduction"}
        loss.config["reduction"] = values.get("reduction") or reduction
        return loss


_RULE_TEXT = {
    "bool": "True or False", "axis": "an integer axis", "axes": "an integer axis or a tuple of them", "int": "an integer",
    "vector": "a sequence of numbers >= 0, one per class",
    "weight": "a number >= 0 or a sequence of numbers >= 0, one per class",
    "clip_epsilon": "a number in (0, 0.5)",
}


def _check(owner, name, value, rule):
    if rule.endswith("?"):
        if value is None:
            return None
        rule = rule[:-1]
    if rule == "bool":
        return check_bool(owner, name, value)
    if rule == "axis":
        return check_axis(owner, name, value)
    if rule == "axes":
        return check_axes(owner, name, value)
    if rule == "int":
        return check_int(owner, name, value)
    if rule == "vector":
        return check_vector(owner, name, value)
    if rule == "weight":
        return check_vector(owner, name, value, allow_scalar=True)
    if rule == "clip_epsilon":
        return check_clip_epsilon(owner, value, name)
    if rule.startswith("choice:"):
        return check_choice(owner, name, value, tuple(rule[7:].split(",")))
    return check_number(owner, name, value, rule)


def register(category, aliases=(), name=None, **rules):
    """Decorator: add the function to the catalogue under its own name (or ``name``, a
    class name such as 'CrossEntropyLoss', matched exactly up to case)."""
    def deco(func):
        entry = Entry(func, category, aliases, rules, name)
        if entry.name in ENTRIES or any(a in ALIASES or a in ENTRIES for a in entry.aliases):
            raise TypeError(f"duplicate catalogue entry or alias {entry.name}")
        ENTRIES[entry.name] = entry
        if name is not None:
            CLASS_NAMES[name.lower()] = name
        for a in entry.aliases:
            ALIASES[a] = entry.name
        return func
    return deco


def spec(expr, **kwargs):
    """What an entry function returns: the expression and further ``Loss`` arguments
    (params, constraints, inputs, labels, weight, default_reduction)."""
    return dict(expr=expr, **kwargs)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def normalize(name):
    """'MeanSquaredError', 'mean-squared-error' and 'mean_squared_error' are one name."""
    return _CAMEL.sub("_", name.strip()).lower().replace("-", "_").replace(" ", "_")


def _class_key(name):
    """'CrossEntropyLoss', 'nn.CrossEntropyLoss' and 'torch.nn.CrossEntropyLoss' -> 'crossentropyloss'."""
    key = name.strip()
    for prefix in ("torch.nn.", "nn."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key.lower()


def resolve(name):
    """The canonical name of ``name``: a PyTorch class name (exact up to case), an entry
    or an alias in any spelling, either with a '_loss' suffix."""
    if not isinstance(name, str):
        raise ParameterError(f"a loss name must be a string such as 'huber', got {name!r} "
                             f"({type(name).__name__})")
    if _class_key(name) in CLASS_NAMES:
        return CLASS_NAMES[_class_key(name)]
    key = normalize(name)
    for k in (key, key[:-5] if key.endswith("_loss") else None):
        if k in ENTRIES:
            return k
        if k in ALIASES:
            return ALIASES[k]
    raise UnknownNameError(f"unknown loss {name!r}.{suggest(name)} Known losses: "
                           f"{', '.join(sorted(ENTRIES, key=str.lower))} (aliases: {', '.join(sorted(ALIASES))}).")


def suggest(name):
    """' Did you mean ...?' for a name that resolves to nothing (the alias table has
    already resolved every known spelling; the fuzzy match serves what remains)."""
    known = {normalize(n): n for n in list(ENTRIES) + list(ALIASES)}
    key = normalize(name)
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.5)
    if "logit" in key:      # a logits loss never suggests a probability-space one
        close = [c for c in close if "logit" in c or "from_logits" in _target(known[c]).defaults]
    return f" Did you mean {', '.join(repr(known[c]) for c in close)}?" if close else ""


def _target(name):
    return ENTRIES[ALIASES.get(name, name)]

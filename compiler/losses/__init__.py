"""The loss catalogue: every loss that Keras, TensorFlow.js and PyTorch users know,
declared with the public ``Loss`` API (a sympy expression plus parameters; no gradient
is written by hand).

    losses.names()                          # every entry, snake_case, sorted
    losses.get("huber", delta=1.0)          # a Loss; aliases such as mse, bce, scce work too
    losses.explain("huber")                 # parameters, formula and derivative
    losses.render_docs()                    # docs/losses.md

The reference for each formula, default and epsilon is ../shared/reference/losses.md;
each entry's docstring says which library's convention it follows.
"""
from ..errors import ParameterError
from ..loss import Loss
from . import regression, crossentropy, hinge, similarity, multi_input, tfjs, pytorch, ctc, circle  # noqa: F401  (registration)
from .registry import ALIASES, CATEGORIES, ENTRIES, resolve

__all__ = ["names", "class_names", "aliases", "get", "entry", "explain", "render_docs", "CATEGORIES"]


def names():
    """Every catalogue entry's canonical snake_case name, sorted (PyTorch class names: ``class_names()``)."""
    return sorted(n for n, e in ENTRIES.items() if e.category != "pytorch")


def class_names():
    """The PyTorch loss classes accepted under their own names (``losses.get("CrossEntropyLoss")``)."""
    return sorted(n for n, e in ENTRIES.items() if e.category == "pytorch")


def aliases():
    """{alias: canonical name} for every alias."""
    return dict(sorted(ALIASES.items()))


def entry(name):
    """The catalogue Entry (declaration function, parameters, rules, docstring) of ``name``."""
    return ENTRIES[resolve(name)]


def get(name, **params):
    """The Loss ``name`` (an entry or an alias) with ``params``; a Loss is returned as is."""
    if isinstance(name, Loss):
        if params:
            raise ParameterError(f"losses.get: parameters {sorted(params)} cannot be applied to an existing "
                                 f"Loss {name.name!r}; pass a catalogue name instead")
        return name
    return ENTRIES[resolve(name)].make(**params)


# docs is imported on use, so that ``python -m symgrad.compiler.losses.docs`` runs it fresh
def explain(name, **params):
    """Name, parameters with defaults, formula and derivative (text and LaTeX) of one loss."""
    from .docs import explain as _explain
    return _explain(name, **params)


def render_docs():
    """The docs/losses.md page, generated from the catalogue."""
    from .docs import render_docs as _render
    return _render()

"""What the translators work with: one ONNX tensor name -> what it holds at import.

An entry is one of
- a NumPy array: a constant known at import (shape arithmetic folds to these; the
  batch dim appears in them as the sympy symbol ``BATCH``, so ``Shape -> Gather ->
  Concat -> Reshape`` chains fold even though the batch stays dynamic);
- an ``Initializer``: a float tensor of the file that becomes a trainable weight the
  first time a node reads it as a tensor (read as a constant, e.g. Resize scales, it
  stays one);
- a ``Lazy``: a sympy expression over IR value symbols with its shape, so chains of
  elementwise ops fuse into one IR node (and differentiate with sympy.diff);
- an IR ``Value``.
"""
import numpy as np
import sympy
from onnx import helper

from .. import ir
from ..errors import ShapeError, SymgradError

BATCH = sympy.Symbol("N", integer=True, positive=True)


class Initializer:
    __slots__ = ("name", "array")

    def __init__(self, name, array):
        self.name, self.array = name, array


class Lazy:
    __slots__ = ("expr", "shape")

    def __init__(self, expr, shape):
        self.expr, self.shape = expr, tuple(shape)


def ir_dim(d):
    """A folded dim (int or an expression of BATCH) as an IR shape entry."""
    if isinstance(d, (int, np.integer)):
        return int(d)
    d = sympy.sympify(d)
    if d.is_Integer:
        return int(d)
    if d == BATCH:
        return "N"
    coeff, rest = d.as_coeff_Mul()
    if rest == BATCH and coeff.is_Integer and coeff > 0:
        return str(d)      # a multiple of the batch ("2*N": batch x heads in attention)
    raise ShapeError(f"the dim {d} depends on the batch size in a way the importer cannot keep symbolic "
                     "(accepted: the batch dim, a whole multiple of it, or dims that do not depend on it)")


def folded_dim(d):
    """An IR dim as a folded value: ints stay, "N" and "2*N" become expressions of BATCH."""
    if isinstance(d, (int, np.integer)):
        return int(d)
    return sympy.sympify(str(d), locals={"N": BATCH})


def number(x):
    """A Python scalar as a sympy number; integral values stay integers (x**2 prints as x*x)."""
    x = x.item() if hasattr(x, "item") else x
    if isinstance(x, (bool, np.bool_)):
        return sympy.true if x else sympy.false
    if isinstance(x, (int, np.integer)) or float(x).is_integer() and abs(x) < 2 ** 53:
        return sympy.Integer(int(x))
    return sympy.Float(float(x), 17)


class ImportContext:
    """State of one trace: the environment, the weights read so far, training mode."""

    def __init__(self, graph_model, training, trace_ctx):
        self.model = graph_model          # the OnnxModel (weights, options)
        self.training = training
        self.trace = trace_ctx            # collects updates and random inputs
        self.env = {}
        self.uses = {}
        self.node = None
        self.position = None

    # ---------------------------------------------------------------- reading
    def has(self, name):
        return bool(name) and name in self.env

    def entry(self, name):
        try:
            return self.env[name]
        except KeyError:
            raise SymgradError(f"ONNX tensor {name!r} (input of {self.where()}) is produced by no node, "
                               "initializer or graph input") from None

    def is_const(self, name):
        return isinstance(self.env.get(name), np.ndarray)

    def const(self, name, what="this input"):
        """The constant NumPy array ``name`` holds (shape arithmetic, attribute-like inputs)."""
        e = self.entry(name)
        if isinstance(e, Initializer):
            return e.array
        if isinstance(e, np.ndarray):
            return e
        raise SymgradError(f"{self.where()}: {what} ({name!r}) must be known at import time (a constant or "
                           "shape arithmetic), but it is computed from the data; accepted: constant "
                           "tensors, initializers, or Shape-derived values")

    def const_or(self, name, default):
        return default if not self.has(name) else self.const(name)

    def shape(self, name):
        e = self.entry(name)
        if isinstance(e, np.ndarray):
            return tuple(e.shape)
        if isinstance(e, Initializer):
            return tuple(e.array.shape)
        return tuple(e.shape)

    def expr(self, name):
        """A sympy expression for ``name`` (for elementwise translation)."""
        e = self.entry(name)
        if isinstance(e, Lazy):
            if self.uses.get(name, 0) > 1 and not isinstance(e.expr, (sympy.Symbol, sympy.logic.boolalg.Boolean)) \
                    and e.expr.free_symbols:
                return self.value(name).sym  # shared: compute once
            return e.expr
        if isinstance(e, ir.Value):
            return e.sym
        if isinstance(e, np.ndarray) and e.size == 1 and e.dtype != object:
            return number(e.reshape(()))
        return self.value(name).sym

    def lazy(self, name):
        """(expr, shape) of ``name``."""
        return self.expr(name), self.shape(name)

    def value(self, name):
        """An IR Value for ``name`` (materialising lazies, constants and weights)."""
        e = self.entry(name)
        if isinstance(e, ir.Value):
            return e
        if isinstance(e, Initializer):
            v = self.model.weight_for(e.name, e.array).value
        elif isinstance(e, np.ndarray):
            if e.dtype == object:
                raise SymgradError(f"{self.where()}: {name!r} depends on the batch size and is used as data; "
                                   "accepted: batch-dependent values only in shape arithmetic")
            if e.dtype == bool:
                raise SymgradError(f"{self.where()}: the boolean constant {name!r} is used as data")
            # integer constants travel as floats too (gather casts its ids back)
            v = ir.const_value(e.astype(np.float64), name=name)
        else:
            v = materialize(e, name)
        self.env[name] = v
        return v

    # ---------------------------------------------------------------- writing
    def is_zero(self, name):
        """Whether ``name`` is all zeros known at import (an RNN's default initial state)."""
        e = self.entry(name)
        if isinstance(e, Lazy):
            return e.expr == 0
        return isinstance(e, np.ndarray) and e.dtype != object and not np.any(e)

    def set(self, name, entry):
        if not name:
            return
        if isinstance(entry, Lazy):
            free = entry.expr.free_symbols
            static = all(isinstance(d, int) for d in entry.shape)
            if not free and static and not isinstance(entry.expr, sympy.logic.boolalg.Boolean):
                entry = np.full(entry.shape, float(entry.expr))  # constant arithmetic folds
            elif isinstance(entry.expr, sympy.Symbol):
                v = ir.value_of(entry.expr)
                if v is not None and tuple(v.shape) == entry.shape:
                    entry = v
        self.env[name] = entry

    # ---------------------------------------------------------------- node info
    def attrs(self, node):
        out = {}
        for a in node.attribute:
            v = helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, list) and v and isinstance(v[0], bytes):
                v = [s.decode() for s in v]
            out[a.name] = v
        return out

    def where(self):
        n = self.node
        if n is None:
            return "the graph"
        label = f"{n.name!r}" if n.name else "(unnamed)"
        return f"node {label} ({n.op_type}, #{self.position} in graph order)"


def materialize(lazy, name):
    """The IR Value computing a Lazy expression, with exactly its shape."""
    if isinstance(lazy.expr, sympy.logic.boolalg.Boolean):
        raise SymgradError(f"the boolean tensor {name!r} is used as data; accepted: comparisons only as the "
                           "condition of Where, or Cast to a float type")
    v = ir.elementwise(lazy.expr, name=name)
    if tuple(v.shape) != lazy.shape:
        if ir.static_size(lazy.shape) is not None and ir.static_size(v.shape) == ir.static_size(lazy.shape):
            v = ir.apply("reshape", [v], name=name, shape=lazy.shape)
        else:
            zeros = ir.const_value(np.zeros([d if isinstance(d, int) else 1 for d in lazy.shape]), name=name)
            v = ir.elementwise(v.sym + zeros.sym, name=name)
            if tuple(v.shape) != lazy.shape:
                raise ShapeError(f"{name!r}: cannot give the expression {lazy.expr} the shape {lazy.shape}")
    return v

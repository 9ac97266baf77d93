"""The tensor IR: a DAG of ``Value`` nodes.

Each value owns a unique real sympy symbol, so an elementwise node is simply a sympy
expression over the symbols of its inputs, and a layer's ``call`` or a loss can be
written as sympy over those same symbols. Structural ops (reductions, softmax, matmul,
conv, ...) are ``Primitive`` objects registered in ``PRIMITIVES`` with their shape rule,
VJP rule, ONNX emitter and sympy display form side by side.

Shapes are tuples of dims; a dim is an int or a str (a symbolic size such as the batch
dim ``"N"``). Broadcasting is NumPy's, aligned on the right.
"""
import contextlib
import functools
import itertools
import threading
import weakref

import numpy as np
import sympy

from .errors import ExpressionError, ShapeError, SymgradError

_ids = itertools.count()
PRIMITIVES = {}


class ValueSymbol(sympy.Symbol):
    """The real symbol of one IR value; ``value_of`` maps it back to its Value.

    A gradient travels as a sympy expression over value symbols, so while a graph is being
    built the symbol holds its Value strongly: the Values an expression names live as long
    as the expression does. When the outermost ``graph_scope`` ends, the symbols of the
    Values made inside it hold them weakly: sympy's own caches keep symbols, and must not
    keep every graph ever compiled alive with them. There is no module-level registry."""

    __slots__ = ("_ref",)

    def __new__(cls, name, value):
        # __xnew__, not the cached constructor, which would keep every symbol it made
        sym = sympy.Symbol.__xnew__(cls, name, real=True)
        sym._ref = value
        return sym

    def __getnewargs_ex__(self):
        return (self.name, None), {}

    @property
    def value(self):
        ref = self._ref
        return ref() if isinstance(ref, weakref.ref) else ref

    def release(self):
        """Hold the Value weakly from now on (the graph that needed the strong link is built)."""
        if self._ref is not None and not isinstance(self._ref, weakref.ref):
            self._ref = weakref.ref(self._ref)


_SCOPES = threading.local()


@contextlib.contextmanager
def graph_scope():
    """Build a graph: Values made inside stay resolvable from their symbols until the
    outermost scope ends; afterwards each lives only as long as something refers to it."""
    made = getattr(_SCOPES, "made", None)
    outermost = made is None
    if outermost:
        made = _SCOPES.made = []
    try:
        yield
    finally:
        if outermost:
            _SCOPES.made = None
            for sym in made:
                sym.release()


def scoped(fn):
    """Decorator: run ``fn`` inside a graph_scope (for the compiler's entry points).

    Loss expressions are depth-checked before compiling (compiler/limits.py); an expression
    that arrives by another road (a custom layer's call) and is nested so deeply that
    sympy's recursion gives up is reported as such rather than as a raw RecursionError."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with graph_scope():
            try:
                return fn(*args, **kwargs)
            except RecursionError:
                from .limits import MAX_DEPTH
                raise ExpressionError(f"an expression is nested too deeply to compile; keep expressions within "
                                      f"{MAX_DEPTH} levels of nesting (the limit for loss expressions)") from None
    return wrapper


class Value:
    """One node of the IR: op, inputs, static attrs, shape, and (elementwise) its expr."""

    __slots__ = ("id", "op", "inputs", "attrs", "shape", "expr", "name", "sym", "dtype", "__weakref__")

    def __init__(self, op, inputs=(), shape=(), attrs=None, expr=None, name=None, dtype="float"):
        self.id = next(_ids)
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = dict(attrs or {})
        self.shape = tuple(shape)
        self.expr = expr
        self.name = name or op
        self.dtype = dtype
        self.sym = ValueSymbol(f"v{self.id}", self)
        made = getattr(_SCOPES, "made", None)
        if made is not None:
            made.append(self.sym)

    @property
    def rank(self):
        return len(self.shape)

    def __repr__(self):
        return f"<Value {self.name} op={self.op} shape={self.shape}>"


def next_id():
    """A bound on the ids of Values made from now on (every later Value's id is >= it)."""
    return next(_ids) + 1


def value_of(sym):
    """The Value a symbol stands for, or None for a symbol that is no IR value."""
    return sym.value if isinstance(sym, ValueSymbol) else None


class Primitive:
    """A structural op. Subclasses set ``name`` and override what they support."""

    name = None
    differentiable = True

    def shape(self, inputs, attrs):
        raise NotImplementedError

    def vjp(self, node, g, ad):
        """Gradient contributions for each input, given the upstream gradient ``g``
        (a sympy expression over value symbols with ``node``'s logical shape); ``ad``
        is the autodiff helper (materialize, sum_to, apply, ...). None = no gradient."""
        raise SymgradError(f"op {self.name!r} has no VJP rule")

    def emit(self, b, node, ins):
        raise NotImplementedError

    def to_sympy(self, node, args):
        raise NotImplementedError

    def rewrite(self, inputs, attrs):
        """An equal but cheaper graph for this op of these inputs (a Value), or None.
        Called by ``apply`` before the node is made: an algebraic identity, exact in
        floating point, that moves work onto smaller tensors (see MaxPool's)."""
        return None


def primitive(cls):
    """Class decorator: register one instance of a Primitive subclass."""
    PRIMITIVES[cls.name] = cls()
    return cls


# ---------------------------------------------------------------- shapes

def normalize_axes(axes, rank, what="axis"):
    out = []
    for a in axes:
        a = int(a)
        if not -rank <= a < rank:
            raise ShapeError(f"{what} {a} is out of range for a tensor of rank {rank} "
                             f"(accepted: {-rank}..{rank - 1})")
        out.append(a % rank)
    return tuple(sorted(set(out)))


def broadcast_shapes(*shapes):
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        nontrivial = [d for d in dims if d != 1]
        if not nontrivial:
            out.append(1)
            continue
        ints = {d for d in nontrivial if isinstance(d, int)}
        if len(ints) > 1:
            raise ShapeError(f"shapes {' and '.join(str(tuple(s)) for s in shapes)} do not broadcast")
        out.append(next(iter(ints)) if ints else nontrivial[0])
    return tuple(out)


def static_size(shape):
    """Product of dims, or None when some dim is symbolic."""
    n = 1
    for d in shape:
        if not isinstance(d, int):
            return None
        n *= d
    return n


# ---------------------------------------------------------------- constructors

def input_value(name, shape, dtype="float"):
    return Value("input", (), shape, {"name": name}, name=name, dtype=dtype)


def param_value(name, shape):
    return Value("param", (), shape, {"name": name}, name=name)


def const_value(array, name="const"):
    array = np.asarray(array)
    return Value("const", (), array.shape, {"value": array}, name=name)


def elementwise(expr, name="ew"):
    """An elementwise node computing ``expr`` (sympy over value symbols).

    Returns the input Value itself when ``expr`` is just one value's symbol."""
    expr = sympy.sympify(expr)
    v = value_of(expr) if isinstance(expr, sympy.Symbol) else None
    if v is not None:
        return v
    inputs = []
    for s in sorted(expr.free_symbols, key=lambda s: s.name):
        iv = value_of(s)
        if iv is None:
            raise SymgradError(f"symbol {s} in {expr} stands for no tensor")
        inputs.append(iv)
    inputs.sort(key=lambda v: v.id)
    shape = broadcast_shapes(*[v.shape for v in inputs])
    return Value("elementwise", inputs, shape, expr=expr, name=name)


def apply(op, inputs, name=None, **attrs):
    """A structural node; its shape comes from the primitive's shape rule."""
    prim = PRIMITIVES[op]
    inputs = [elementwise(i) if not isinstance(i, Value) else i for i in inputs]
    better = prim.rewrite(inputs, attrs)
    if better is not None:
        return better
    shape = prim.shape(inputs, attrs)
    return Value(op, inputs, shape, attrs, name=name or op)


def topological_order(outputs):
    """Every value the outputs depend on, inputs before users."""
    order, seen = [], set()
    stack = [(v, False) for v in reversed(list(outputs))]
    while stack:
        v, done = stack.pop()
        if done:
            order.append(v)
            continue
        if v.id in seen:
            continue
        seen.add(v.id)
        stack.append((v, True))
        for i in reversed(v.inputs):
            if i.id not in seen:
                stack.append((i, False))
    return order

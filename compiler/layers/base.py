"""``Layer``: the Keras contract over sympy.

``build(input_shape)`` creates weights with ``add_weight`` (each is a sympy symbol bound
to an IR parameter); ``call(x)`` returns a sympy expression over x, the weights, sympy
functions and the tensor functions of ``symgrad.compiler.ops``. The compiler derives the
backward pass, unless the layer defines ``backward(x, y, g)`` (as torch.autograd.Function),
which is then used instead and can be verified with ``symgrad.compiler.gradcheck``.

Shapes at this API include the batch dim as ``None``, as in Keras: ``(None, 64)``.
"""
import difflib
import inspect
import re

import numpy as np
import sympy

from .. import ir
from ..build import build_ir
from ..errors import ExpressionError, ParameterError, ShapeError, SymgradError, UnknownSymbolError
from ..stabilize import stabilize
from . import initializers

BATCH = "N"


def snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def to_ir_shape(shape):
    """Keras shape (None batch) -> IR shape ('N' batch, 'D<i>' for other unknown dims)."""
    return tuple(BATCH if (d is None and i == 0) else (f"D{i}" if d is None else int(d)) for i, d in enumerate(shape))


def from_ir_shape(shape):
    return tuple(d if isinstance(d, int) else None for d in shape)



def assign_weights(weights, arrays, owner):
    """Set each weight's initial value from ``arrays`` (float32 copies), all or nothing:
    every count and shape is checked before any weight changes. ``owner`` names the layer
    or model in the errors."""
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    if len(arrays) != len(weights):
        raise ParameterError(f"{owner} has {len(weights)} weights, got {len(arrays)} arrays")
    for w, a in zip(weights, arrays):
        if a.shape != w.shape:
            raise ShapeError(f"weight {w.name!r} has shape {w.shape}, got an array of shape {a.shape}")
    for w, a in zip(weights, arrays):
        w.initial = a.copy()

class Weight:
    """One tensor of a layer. ``name`` is '<layer name>/<weight name>'; ``value`` is the IR
    parameter the layer's expressions refer to through ``sym``; ``initial`` the array it
    starts from (float32)."""

    def __init__(self, layer, local_name, shape, initializer, trainable, fans):
        self.layer, self.local_name = layer, local_name
        self.shape = tuple(int(d) for d in shape)
        self.initializer, self.fans = initializer, fans
        self._trainable = bool(trainable)
        self.value = ir.param_value(local_name, self.shape)
        self.initial = None

    @property
    def name(self):
        return f"{self.layer.name}/{self.local_name}"

    @property
    def trainable(self):
        return self._trainable and self.layer.trainable

    @property
    def sym(self):
        return self.value.sym

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def initialize(self, rng):
        a = np.asarray(self.initializer(self.shape, rng, *self.fans), dtype=np.float32)
        if a.shape != self.shape:
            a = np.broadcast_to(a, self.shape).astype(np.float32)
        self.initial = np.array(a, dtype=np.float32, order="C")  # ascontiguousarray would make 0-d 1-d
        self.value.name = self.name
        return self.initial

    def __repr__(self):
        return f"<Weight {self.name} shape={self.shape} trainable={self.trainable}>"


class RandomInput:
    """Noise the trainer feeds on every training step: uniform in [0, 1)."""

    def __init__(self, name, value, shape, distribution="uniform"):
        self.name, self.value, self.shape, self.distribution = name, value, tuple(shape), distribution

    def __repr__(self):
        return f"<RandomInput {self.name} shape={self.shape}>"


class TraceContext:
    """What one trace collects besides the output: BN-style updates and random inputs."""

    def __init__(self, training):
        self.training = bool(training)
        self.updates = {}
        self.random_inputs = []


class Layer:
    """Base class of every layer; subclass it with ``build`` and ``call``."""

    input_dtype = "float32"   # what the layer expects to be fed when it comes first
    n_inputs = 1              # merge layers take a list
    n_outputs = 1             # > 1: call returns a tuple, compute_output_shape a list of shapes

    def __init__(self, name=None, trainable=True, input_shape=None, **kwargs):
        if kwargs:
            raise _unknown_arguments(type(self), kwargs)
        if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w.-]*", name)):
            raise ParameterError(f"{type(self).__name__}: 'name' must be a string of letters, digits, '_', '.' "
                                 f"or '-', starting with a letter or '_', got {name!r}")
        self._name = name
        self._auto_name = None
        self.trainable = bool(trainable)
        self.declared_input_shape = tuple(input_shape) if input_shape is not None else None
        self.built = False
        self._weights = []
        self._ctx = None
        self._current_inputs = None
        self.input_shape = None
        self.output_shape = None

    # ------------------------------------------------------------------ naming
    @property
    def name(self):
        return self._name or self._auto_name or snake_case(type(self).__name__)

    @property
    def has_explicit_name(self):
        return self._name is not None

    # ------------------------------------------------------------------ the user contract
    def build(self, input_shape):
        """Create weights with ``add_weight``. ``input_shape`` includes the batch (None)."""

    def call(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define call(self, x)")

    def compute_output_shape(self, input_shape):
        """Inferred by tracing ``call`` when a layer does not override it."""
        shapes = input_shape if self.n_inputs != 1 else [input_shape]
        values = [ir.input_value("shape_probe", to_ir_shape(s)) for s in shapes]
        out = self._trace(values, TraceContext(False))
        return [from_ir_shape(o.shape) for o in out] if isinstance(out, list) else from_ir_shape(out.shape)

    def get_config(self):
        config = {"name": self._name, "trainable": self.trainable}
        if self.declared_input_shape is not None:
            config["input_shape"] = self.declared_input_shape
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------------ weights
    def add_weight(self, name, shape=(), initializer="glorot_uniform", trainable=True, fans=None):
        """Create a weight and return its sympy symbol (use it in ``call``)."""
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w.-]*", name):
            raise ParameterError(f"{type(self).__name__}.add_weight: 'name' must be an identifier-like string, "
                                 f"got {name!r}")
        if any(w.local_name == name for w in self._weights):
            raise ParameterError(f"{type(self).__name__}.add_weight: a weight named {name!r} already exists")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
            raise ShapeError(f"{type(self).__name__}.add_weight({name!r}): the shape must be positive integers, "
                             f"got {shape}")
        init = initializers.get(initializer)
        w = Weight(self, name, shape, init, trainable, fans or initializers.default_fans(shape))
        w.initialize(self._rng if getattr(self, "_rng", None) is not None else np.random.default_rng())
        self._weights.append(w)
        return w.sym

    @property
    def weights(self):
        return list(self._weights)

    @property
    def trainable_weights(self):
        return [w for w in self._weights if w.trainable]

    @property
    def non_trainable_weights(self):
        return [w for w in self._weights if not w.trainable]

    def weight(self, sym_or_name):
        for w in self._weights:
            if w.sym == sym_or_name or w.local_name == sym_or_name or w.name == sym_or_name:
                return w
        raise ParameterError(f"layer {self.name!r} has no weight {sym_or_name!r}; it has "
                             f"{', '.join(w.local_name for w in self._weights) or 'none'}")

    def get_weights(self):
        return [w.initial.copy() for w in self._weights]

    def set_weights(self, arrays):
        assign_weights(self._weights, arrays, f"layer {self.name!r}")

    def count_params(self):
        return sum(w.size for w in self._weights)

    # ------------------------------------------------------------------ inside call
    def add_update(self, weight, expr):
        """In training, the new value of a non-trainable weight after this step (BN stats)."""
        ctx = self._require_ctx("add_update")
        if not ctx.training:
            return
        w = self.weight(weight)
        v = build_ir(stabilize(sympy.sympify(expr)), name=f"{self.name}/update")
        if tuple(v.shape) != w.shape:
            if ir.static_size(v.shape) != w.size:
                raise ShapeError(f"layer {self.name!r}: the update of {w.name!r} has shape {v.shape}, "
                                 f"the weight {w.shape}")
            v = ir.apply("reshape", [v], name=f"{self.name}/update", shape=w.shape)
        ctx.updates[w.name] = v

    def add_random_input(self, name="noise", shape=None):
        """A uniform [0, 1) tensor the trainer feeds each training step; ``shape`` defaults
        to the input's (batch included). Returns its symbol."""
        ctx = self._require_ctx("add_random_input")
        shape = tuple(self._current_inputs[0].shape) if shape is None else to_ir_shape(shape)
        full = f"{self.name}/{name}"
        if any(r.name == full for r in ctx.random_inputs):
            raise ParameterError(f"layer {self.name!r}: a random input named {name!r} already exists")
        value = ir.input_value(full, shape)
        ctx.random_inputs.append(RandomInput(full, value, shape))
        return value.sym

    def _require_ctx(self, what):
        if self._ctx is None:
            raise SymgradError(f"{what}() can only be used inside call()")
        return self._ctx

    # ------------------------------------------------------------------ the compiler's side
    def ensure_built(self, input_shape, rng=None):
        """Build once (input_shape with None batch) and record input and output shapes."""
        if not self.built:
            self._check_input_shape(input_shape)
            self._rng = rng
            try:
                self.build(input_shape)
            finally:
                self._rng = None
            self.built = True
        self.input_shape = input_shape
        out = self.compute_output_shape(input_shape)
        self.output_shape = [tuple(o) for o in out] if self.n_outputs != 1 else tuple(out)
        return self.output_shape

    def _check_input_shape(self, input_shape):
        shapes = input_shape if self.n_inputs != 1 else [input_shape]
        for s in shapes:
            if not isinstance(s, tuple) or len(s) < 1:
                raise ShapeError(f"layer {self.name!r}: an input shape must be a tuple starting with the batch, "
                                 f"got {s!r}")

    def apply(self, values, ctx, **call_kwargs):
        """Trace the layer on IR values (a list); returns the output Value (a list of
        Values for a layer with several outputs). ``call_kwargs``: the static keyword
        arguments of this application (``use_causal_mask=True``), passed on to ``call``."""
        out = self._trace(values, ctx, call_kwargs)
        if self.output_shape is not None and type(self).compute_output_shape is not Layer.compute_output_shape:
            got = [from_ir_shape(o.shape) for o in out] if isinstance(out, list) else from_ir_shape(out.shape)
            want = [tuple(o) for o in self.output_shape] if isinstance(out, list) else tuple(self.output_shape)
            if got != want:
                raise ShapeError(f"layer {self.name!r}: compute_output_shape says {self.output_shape} but call "
                                 f"returns {got}")
        return out

    def _trace(self, values, ctx, call_kwargs=None):
        syms = [v.sym for v in values]
        arg = syms[0] if self.n_inputs == 1 else syms
        kwargs = {"training": ctx.training} if _accepts_training(self.call) else {}
        kwargs.update(call_kwargs or {})
        self._ctx, self._current_inputs = ctx, values
        try:
            expr = self.call(arg, **kwargs)
        finally:
            self._ctx, self._current_inputs = None, None
        if self.n_outputs != 1:
            if not isinstance(expr, (tuple, list)) or len(expr) != self.n_outputs:
                raise ExpressionError(f"layer {self.name!r}: call() must return {self.n_outputs} expressions, "
                                      f"got {type(expr).__name__}")
            return [self._build_one(e) for e in expr]
        out = self._build_one(expr)
        if not _defines_backward(self):
            return out
        return ir.apply("custom_vjp", [out] + list(values) + [w.value for w in self._weights],
                        name=f"{self.name}/explicit_backward", backward=self._explicit_vjp(values),
                        label=self.name)

    def _build_one(self, expr):
        raw = expr
        try:
            expr = sympy.sympify(raw, strict=True)
        except (sympy.SympifyError, TypeError):
            expr = None
        if not isinstance(expr, sympy.Expr):
            raise ExpressionError(f"layer {self.name!r}: call() must return a sympy expression (over x, the "
                                  f"weights and symgrad.compiler.ops functions), got {type(raw).__name__}")
        try:
            out = build_ir(stabilize(expr), name=self.name)
        except UnknownSymbolError as exc:
            raise UnknownSymbolError(f"layer {self.name!r}: {exc} (create parameters with add_weight)") from None
        return out

    def _explicit_vjp(self, values):
        layer = self

        def rule(node, g, ad):
            gv = ad.materialize(g, node)
            xs = [v.sym for v in values]
            res = layer.backward(xs[0] if layer.n_inputs == 1 else xs, node.sym, gv.sym)
            dx, dws = (res, None) if not isinstance(res, tuple) else (res[0], res[1] if len(res) > 1 else None)
            dxs = [dx] if layer.n_inputs == 1 else list(dx)
            if isinstance(dws, dict):
                unknown = set(dws) - {w.local_name for w in layer._weights}
                if unknown:
                    raise ParameterError(f"layer {layer.name!r}: backward() returned gradients for unknown "
                                         f"weight(s) {', '.join(sorted(unknown))}")
                dws = [dws.get(w.local_name) for w in layer._weights]
            dws = list(dws or [])
            if len(dws) != len(layer._weights):
                raise ParameterError(f"layer {layer.name!r}: backward() must return one gradient per weight "
                                     f"({len(layer._weights)}), got {len(dws)}")
            targets = list(values) + [w.value for w in layer._weights]
            return [_contribution(layer, e, t, ad) for e, t in zip(dxs + dws, targets)]

        return rule

    def __call__(self, inputs, **call_kwargs):
        """The functional API; keyword arguments are static options of this application
        that ``call`` receives (a layer taking them defines them in its ``call``)."""
        from ..model import SymbolicTensor  # the functional API; model imports layers
        if call_kwargs:
            try:
                accepted = set(inspect.signature(self.call).parameters)
            except (TypeError, ValueError):
                accepted = set()
            unknown = sorted(set(call_kwargs) - accepted)
            if unknown:
                raise ParameterError(f"layer {self.name!r} takes no call argument(s) {', '.join(map(repr, unknown))}")
        return SymbolicTensor.from_layer_call(self, inputs, call_kwargs)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def _unknown_arguments(cls, kwargs):
    accepted = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in accepted:
                accepted.append(p.name)
    bad = sorted(kwargs)
    close = difflib.get_close_matches(bad[0], accepted, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ParameterError(f"{cls.__name__}: unknown argument{'s' if len(bad) > 1 else ''} "
                          f"{', '.join(map(repr, bad))}.{hint} Accepted: {', '.join(accepted)}")


def _defines_backward(layer):
    return callable(getattr(type(layer), "backward", None))


def _accepts_training(fn):
    try:
        return "training" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _contribution(layer, expr, target, ad):
    """An explicit gradient expression as a contribution of ``target``'s shape; a
    per-element (broadcast) result is summed down as autodiff does."""
    if expr is None:
        return None
    v = build_ir(stabilize(sympy.sympify(expr)), name=f"{layer.name}/backward")
    if tuple(v.shape) == tuple(target.shape):
        return v.sym
    try:
        out_shape = ir.broadcast_shapes(v.shape, target.shape)
    except ShapeError:
        out_shape = None
    if out_shape != tuple(v.shape):
        raise ShapeError(f"layer {layer.name!r}: backward() gave a gradient of shape {v.shape} for "
                         f"{target.name!r} of shape {target.shape}")
    return ad.sum_to(v.sym, v, target)

"""Models: ``Sequential`` and the functional ``Input`` / ``Model``.

A model is a graph of layer applications; ``trace(x_value, training)`` turns it into IR
once per graph kind (docs/internals.md section 2): the program builder binds each
``Weight.value`` and ``RandomInput.value`` to a graph input of the same name.
"""
import re

import numpy as np

from . import ir
from .errors import ParameterError, ShapeError
from .layers.base import Layer, TraceContext, assign_weights, to_ir_shape

DTYPES = ("float32", "int64")


class Trace:
    """output: Value (the first output); outputs: [Value], one per model output; weights:
    [Weight] in layer order; updates: {weight name: Value}; random_inputs: [RandomInput]."""

    def __init__(self, output, weights, updates, random_inputs, outputs=None):
        self.output, self.weights, self.updates, self.random_inputs = output, weights, updates, random_inputs
        self.outputs = list(outputs) if outputs is not None else [output]

    def __repr__(self):
        return (f"<Trace output={self.output.shape} weights={len(self.weights)} updates={list(self.updates)} "
                f"random_inputs={[r.name for r in self.random_inputs]}>")


class SymbolicTensor:
    """What ``Input`` and a layer called on symbolic tensors return (Keras' KerasTensor)."""

    def __init__(self, shape, dtype="float32", layer=None, inputs=(), name=None, call=None, index=None):
        self.shape, self.dtype, self.layer, self.inputs, self.name = tuple(shape), dtype, layer, tuple(inputs), name
        # one layer application may give several tensors (an RNN's return_state): they share
        # ``call`` (the keyword arguments of that application) and differ by ``index``
        self.call = call if call is not None else {}
        self.index = index

    @classmethod
    def from_layer_call(cls, layer, inputs, call_kwargs=None):
        many = isinstance(inputs, (list, tuple))
        items = list(inputs) if many else [inputs]
        if not items or not all(isinstance(t, SymbolicTensor) for t in items):
            raise ParameterError(f"layer {layer.name!r} must be called on tensors from symgrad.compiler.Input "
                                 f"(the functional API), or placed in a Sequential; got {inputs!r}")
        if layer.n_inputs == 1 and many:
            raise ParameterError(f"layer {layer.name!r} takes one input, got a list of {len(items)}")
        if layer.n_inputs != 1 and not many:
            raise ParameterError(f"layer {layer.name!r} takes a list of inputs")
        shape = [t.shape for t in items] if many else items[0].shape
        out = layer.ensure_built(shape)
        call = dict(call_kwargs or {})
        if layer.n_outputs == 1:
            return cls(out, "float32", layer, items, call=call)
        return [cls(o, "float32", layer, items, call=call, index=k) for k, o in enumerate(out)]

    def __repr__(self):
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype}{' from ' + self.layer.name if self.layer else ''}>"


def Input(shape, dtype="float32", name=None):  # noqa: N802 - Keras' spelling
    """A model input; ``shape`` excludes the batch: Input((1, 28, 28))."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
        raise ShapeError(f"Input: 'shape' must be positive integers without the batch dim, got {shape}")
    if dtype not in DTYPES:
        raise ParameterError(f"Input: 'dtype' must be one of {', '.join(map(repr, DTYPES))}, got {dtype!r}")
    return SymbolicTensor((None,) + tuple(int(d) for d in shape), dtype, name=name)


def _structure(what, items, default_name):
    """(tensors, names, kind) of Model's inputs or outputs: one tensor, a list or a dict."""
    if isinstance(items, dict):
        if not items or not all(isinstance(k, str) and re.fullmatch(r"[A-Za-z_][\w.-]*", k) for k in items):
            raise ParameterError(f"Model: the {what} dict needs names (letters, digits, '_', '.', '-') as keys, got "
                                 f"{list(items)!r}")
        return list(items.values()), list(items), "dict"
    if isinstance(items, (list, tuple)):
        if not items:
            raise ParameterError(f"Model: {what} is an empty list")
        return list(items), [default_name(t, k) for k, t in enumerate(items)], ("list" if len(items) > 1 else "single")
    return [items], [default_name(items, 0)], "single"


def _nodes(outputs):
    """Layer applications the outputs depend on, inputs first (call order kept)."""
    order, seen = [], set()

    def visit(t):
        if id(t) in seen:
            return
        seen.add(id(t))
        for i in t.inputs:
            visit(i)
        order.append(t)

    for o in outputs:
        visit(o)
    return order


class Model:
    """A functional model: Model(inputs=Input(...), outputs=tensor)."""

    def __init__(self, inputs, outputs, name=None, seed=None):
        self.inputs, self.input_names, self.input_structure = _structure(
            "inputs", inputs, lambda t, k: getattr(t, "name", None) or f"input_{k + 1}")
        outs, out_keys, self.output_structure = _structure("outputs", outputs, lambda t, k: None)
        if not all(isinstance(o, SymbolicTensor) for o in outs) or any(
                not isinstance(i, SymbolicTensor) or i.layer is not None for i in self.inputs):
            raise ParameterError("Model(inputs, outputs): inputs must come from Input() and outputs from layers "
                                 "called on them")
        if len(set(self.input_names)) != len(self.input_names):
            raise ParameterError(f"Model: the input names repeat: {self.input_names}; give each Input a unique name")
        self.outputs = outs
        self.output = outs[0]
        self.name = name or type(self).__name__.lower()
        every = _nodes(outs)
        self._nodes = [t for t in every if t.layer is not None]
        if any(t.layer is None and not any(t is i for i in self.inputs) for t in every):
            raise ParameterError("Model(inputs, outputs): the outputs depend on an Input that is not in inputs")
        self.layers = []
        for t in self._nodes:
            if not any(t.layer is l for l in self.layers):
                self.layers.append(t.layer)
        self._name_layers()
        if self.output_structure == "dict":
            self.output_names = out_keys
        else:               # Keras names an output after the layer that made it
            self.output_names = [(o.layer.name + (f"_{o.index}" if o.index else "")) if o.layer is not None
                                 else self.input_names[0] for o in outs]
            if len(outs) > 1 and len(set(self.output_names)) != len(self.output_names):
                raise ParameterError(f"Model: two outputs come from the same layer ({self.output_names}); pass "
                                     "outputs as a dict {name: tensor} to name them")
        if seed is not None:
            self.initialize(seed)

    def _name_layers(self):
        taken = {l.name for l in self.layers if l.has_explicit_name}
        if len(taken) != sum(1 for l in self.layers if l.has_explicit_name):
            names = [l.name for l in self.layers if l.has_explicit_name]
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ParameterError(f"layer names must be unique in a model; repeated: {', '.join(dup)}")
        for layer in self.layers:
            if layer.has_explicit_name:
                continue
            layer._auto_name = None
            base, k = layer.name, 0
            candidate = base
            while candidate in taken:
                k += 1
                candidate = f"{base}_{k}"
            layer._auto_name = candidate
            taken.add(candidate)
        for w in self.weights:
            w.value.name = w.name

    # ------------------------------------------------------------------ views
    @property
    def input_shape(self):
        """One sample's shape (no batch); a list for several inputs."""
        shapes = [t.shape[1:] for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input_dtype(self):
        dtypes = [t.dtype for t in self.inputs]
        return dtypes[0] if len(dtypes) == 1 else dtypes

    @property
    def output_shape(self):
        """One sample's output shape; a list for several outputs."""
        shapes = [o.shape[1:] for o in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for w in self.weights if w.trainable]

    @property
    def non_trainable_weights(self):
        return [w for w in self.weights if not w.trainable]

    def get_weights(self):
        return [w.initial.copy() for w in self.weights]

    def set_weights(self, arrays):
        assign_weights(self.weights, arrays, f"model {self.name!r}")

    def count_params(self):
        return sum(w.size for w in self.weights)

    def initialize(self, seed=None):
        """Redraw every initial weight, in layer order, from one seeded generator."""
        rng = np.random.default_rng(seed)
        for w in self.weights:
            w.initialize(rng)
        return self

    def get_layer(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ParameterError(f"model {self.name!r} has no layer {name!r}; it has "
                             f"{', '.join(l.name for l in self.layers)}")

    # ------------------------------------------------------------------ tracing
    def trace(self, x_value, training=False):
        """IR of the model applied to ``x_value`` (an ir input Value of shape ('N', *input_shape),
        or a list of them for several inputs)."""
        xs = list(x_value) if isinstance(x_value, (list, tuple)) else [x_value]
        if len(xs) != len(self.inputs):
            raise ParameterError(f"model {self.name!r} has {len(self.inputs)} inputs, got {len(xs)} values")
        for t, v in zip(self.inputs, xs):
            if len(v.shape) != len(t.shape) or tuple(v.shape[1:]) != tuple(t.shape[1:]):
                raise ShapeError(f"model {self.name!r} expects an input of shape {('N',) + t.shape[1:]}, "
                                 f"got {v.shape}")
        ctx = TraceContext(training)
        values = {id(t): v for t, v in zip(self.inputs, xs)}
        applied = {}        # one application per call (a layer with several outputs runs once)
        for t in self._nodes:
            key = id(t.call)
            if key not in applied:
                applied[key] = t.layer.apply([values[id(i)] for i in t.inputs], ctx, **t.call)
            values[id(t)] = applied[key] if t.index is None else applied[key][t.index]
        outs = [values[id(o)] for o in self.outputs]
        return Trace(outs[0], self.weights, ctx.updates, ctx.random_inputs, outputs=outs)

    def input_value(self, name="x"):
        """The IR input a program builder feeds (batch dim 'N')."""
        return ir.input_value(name, to_ir_shape(self.inputs[0].shape),
                              dtype="int64" if self.inputs[0].dtype == "int64" else "float")

    # ------------------------------------------------------------------ display
    def summary(self, print_fn=print):
        rows = [("Layer (type)", "Output Shape", "Param #")]
        if len(self.inputs) > 1:        # as Keras, a model with several inputs lists them
            rows += [(f"{n} (InputLayer)", str(t.shape), "0") for n, t in zip(self.input_names, self.inputs)]
        for t in self._nodes:
            if t.index:
                continue    # a layer's further outputs (return_state) share its row
            rows.append((f"{t.layer.name} ({type(t.layer).__name__})", str(t.shape), str(t.layer.count_params())))
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        line = "-" * sum(widths)
        text = [f'Model: "{self.name}"', line, "".join(c.ljust(w) for c, w in zip(rows[0], widths)), line]
        text += ["".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows[1:]]
        trainable = sum(w.size for w in self.trainable_weights)
        text += [line, f"Total params: {self.count_params()}", f"Trainable params: {trainable}",
                 f"Non-trainable params: {self.count_params() - trainable}", self._layout_line(), line]
        out = "\n".join(text)
        if print_fn is not None:
            print_fn(out)
        return out

    def _layout_line(self):
        """The image data format of the spatial layers (data_format.py), or the default."""
        from .layers import image_data_format
        used = sorted({layer.layout for layer in self.layers if hasattr(layer, "layout")})
        if not used:
            return f"Image data format: {image_data_format()} (default; no spatial layers)"
        return f"Image data format: {', '.join(used)}"

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}: {len(self.layers)} layers, {self.count_params()} params>"


class Sequential(Model):
    """A stack of single-input layers: Sequential([...], input_shape=(64,))."""

    def __init__(self, layers=(), input_shape=None, name=None, seed=None, input_dtype=None):
        layers = list(layers)
        for layer in layers:
            if not isinstance(layer, Layer):
                raise ParameterError(f"Sequential takes Layer instances, got {layer!r}")
            if layer.n_inputs != 1:
                raise ParameterError(f"{type(layer).__name__} takes several inputs; use the functional API")
        if input_shape is None and layers and layers[0].declared_input_shape is not None:
            input_shape = layers[0].declared_input_shape
        if input_shape is None:
            raise ParameterError("Sequential needs input_shape=(...): one sample's shape, without the batch dim "
                                 "(e.g. (64,) or (1, 28, 28))")
        if not layers:
            raise ParameterError("Sequential needs at least one layer")
        self._layer_list = layers
        dtype = input_dtype or layers[0].input_dtype
        x = inp = Input(input_shape, dtype=dtype)
        for layer in layers:
            x = layer(x)
        super().__init__(inp, x, name=name or "sequential", seed=seed)

    def add(self, layer):
        """Append a layer (rebuilds the chain; earlier layers keep their weights)."""
        Sequential.__init__(self, self._layer_list + [layer], input_shape=self.input_shape, name=self.name,
                            input_dtype=self.input_dtype)

    def get_config(self):
        from .layers import serialize
        return {"name": self.name, "input_shape": tuple(self.input_shape), "input_dtype": self.input_dtype,
                "layers": [serialize(l) for l in self._layer_list]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .layers import deserialize
        missing = [k for k in ("layers", "input_shape") if not isinstance(config, dict) or k not in config]
        if missing:
            raise ParameterError(f"Sequential.from_config: the config lacks {', '.join(map(repr, missing))}; "
                                 "accepted: a dict from Sequential.get_config() with 'layers' and 'input_shape'")
        return cls([deserialize(c, custom_objects) for c in config["layers"]], input_shape=config["input_shape"],
                   name=config.get("name"), input_dtype=config.get("input_dtype"))


def trace_layer(layer, x_values, training=False):
    """Trace one layer on IR values (built from their shapes when needed)."""
    xs = list(x_values) if isinstance(x_values, (list, tuple)) else [x_values]
    shapes = [tuple(None if not isinstance(d, int) else d for d in v.shape) for v in xs]
    layer.ensure_built(shapes if layer.n_inputs != 1 else shapes[0])
    ctx = TraceContext(training)
    out = layer.apply(xs, ctx)
    outs = out if isinstance(out, list) else [out]
    return Trace(outs[0], layer.weights, ctx.updates, ctx.random_inputs, outputs=outs)

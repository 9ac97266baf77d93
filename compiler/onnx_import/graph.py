"""An imported ONNX graph as a symgrad model: it implements the trace protocol of
docs/internals.md §2, so ``compile_model`` turns it into a training program unchanged.

Weights keep the file's initializer names (the names Netron shows). A float
initializer of rank >= 1 becomes a weight the first time a node reads it as a tensor;
one read by several nodes is one weight, so its gradient is the sum over its uses.
"""
import numpy as np
import onnx
from onnx import numpy_helper

from .. import ir
from ..errors import ParameterError, ShapeError, SymgradError, unknown_name
from ..layers.base import TraceContext, assign_weights
from ..model import Trace
from .context import BATCH, ImportContext, Initializer, Lazy, folded_dim, ir_dim
from .errors import unsupported_op
from .folding import fold_node
from .registry import NOT_SUPPORTED_REASONS, TRANSLATORS, load_families

WORKING_OPSET = 17
OPSETS = range(7, 22)
BATCHNORM_MODES = ("fixed", "train")
_NEVER_FOLD = {"Dropout", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli",
               "Multinomial"}


class ImportedWeight:
    """One weight of an imported model: an initializer of the file, under its own name."""

    def __init__(self, name, array, trainable):
        self.name = name
        self.shape = tuple(int(d) for d in array.shape)
        self.file_value = np.array(array, dtype=np.float32)
        self.initial = self.file_value.copy()
        self.trainable = bool(trainable)
        self.value = ir.param_value(name, self.shape)

    sym = property(lambda self: self.value.sym)
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))

    def initialize(self, rng=None):
        self.initial = self.file_value.copy()
        return self.initial

    def __repr__(self):
        return f"<ImportedWeight {self.name} shape={self.shape} trainable={self.trainable}>"


def _elem_dtype(value_info):
    t = value_info.type.tensor_type.elem_type
    return onnx.helper.tensor_dtype_to_np_dtype(t) if t else np.dtype(np.float32)


def upgrade(model, label):
    """The model at an opset the translators read (7..16 are converted to 17).

    The converter serializes the whole model, weights included; large float initializers
    travel as graph inputs instead (it never needs their values) and come back after."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if version is None or version not in OPSETS:
        raise SymgradError(f"{label} uses opset {version}; accepted: ONNX opsets {OPSETS.start} to {OPSETS.stop - 1}")
    if version >= WORKING_OPSET:
        return model
    from onnx import version_converter
    heavy = [t for t in model.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
             and int(np.prod(t.dims, dtype=np.int64)) > 64]
    names = {t.name for t in heavy}
    light = _slim_copy(model, names)
    try:
        light = version_converter.convert_version(light, WORKING_OPSET)
    except Exception as exc:
        raise SymgradError(f"{label}: converting opset {version} to {WORKING_OPSET} failed "
                           f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    inputs = [i for i in light.graph.input if i.name not in names or i.name in _declared_inputs(model, names)]
    del light.graph.input[:]
    light.graph.input.extend(inputs)
    light.graph.initializer.extend(heavy)
    return light


def _declared_inputs(model, names):
    """Heavy initializers the file itself lists as graph inputs (IR < 4 does)."""
    return {i.name for i in model.graph.input if i.name in names}


def _slim_copy(model, heavy_names):
    """The model without the heavy initializers' data: each becomes a graph input of the
    same type and shape (the file may list it as an input already)."""
    graph = model.graph
    declared = _declared_inputs(model, heavy_names)
    extra = [onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
             for t in graph.initializer if t.name in heavy_names and t.name not in declared]
    slim = onnx.helper.make_graph(list(graph.node), graph.name, list(graph.input) + extra, list(graph.output),
                                  [t for t in graph.initializer if t.name not in heavy_names],
                                  value_info=list(graph.value_info))
    out = onnx.ModelProto()
    out.ir_version = model.ir_version
    out.opset_import.extend(model.opset_import)
    out.producer_name, out.producer_version = model.producer_name, model.producer_version
    out.graph.CopyFrom(slim)
    return out


class OnnxModel:
    """An ONNX graph with one data input, traced into IR node by node."""

    def __init__(self, source, trainable=None, frozen=(), output=None, batchnorm="fixed", input_shape=None,
                 constants_as_weights=False, name=None, require_batch_output=True):
        from ..untrusted import load_onnx
        load_families()
        label = f"ONNX model {source!r}" if not isinstance(source, onnx.ModelProto) else "the ONNX model"
        model = upgrade(load_onnx(source), label)
        if batchnorm not in BATCHNORM_MODES:
            raise ParameterError(f"from_onnx: parameter 'batchnorm' must be one of "
                                 f"{', '.join(map(repr, BATCHNORM_MODES))}, got {batchnorm!r}")
        self.batchnorm = batchnorm
        self.name = name or model.graph.name or "onnx_model"
        self.graph = model.graph
        self.opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        self.initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self._input = self._data_input(input_shape)
        self._output = self._select_output(output)
        self.nodes = self._needed_nodes()
        self._check_ops()
        self._trainable_names = None if trainable is None else self._names("trainable", trainable)
        self._frozen = set(self._names("frozen", frozen))
        # float Constant nodes of rank >= 1 are weights when asked for, by name or all at once
        self.constant_weights = {o for node in self.nodes if node.op_type == "Constant" for o in node.output
                                 if constants_as_weights or o in (self._trainable_names or ()) or o in self._frozen}
        self._weights = {}
        self._forced_frozen = set()
        trace = self.trace(self.input_value("x"), training=False)  # validates and discovers weights
        out = trace.output
        if require_batch_output and (not out.shape or out.shape[0] != "N"):
            raise ShapeError(f"the output {self._output!r} has shape {out.shape}; accepted: an output whose first "
                             "dim is the batch")
        self.output_shape = tuple(out.shape[1:])
        known = set(self._weights)
        for what, names in (("trainable", self._trainable_names or ()), ("frozen", self._frozen)):
            for n in names:
                if n not in known:
                    raise unknown_name(f"weight in {what}= (a float initializer the model reads)", n, known)

    # ------------------------------------------------------------------ set-up
    def _names(self, what, names):
        if isinstance(names, str):
            names = [names]
        try:
            names = list(names)
        except TypeError:
            raise ParameterError(f"from_onnx: parameter {what!r} must be a list of initializer names") from None
        for n in names:
            if n not in self.initializers and not any(n in node.output for node in self.graph.node
                                                      if node.op_type == "Constant"):
                raise unknown_name(f"initializer in {what}=", n, self.initializers)
        return names

    def _data_input(self, input_shape):
        inputs = [i for i in self.graph.input if i.name not in self.initializers]
        if len(inputs) != 1:
            raise ParameterError(f"from_onnx takes a model with one data input; this one has {len(inputs)}: "
                                 f"{[i.name for i in inputs]}")
        inp = inputs[0]
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
        if input_shape is not None:
            shape = tuple(int(d) for d in input_shape)
        else:
            shape = tuple(dims[1:])
            if not dims or any(d is None for d in shape):
                raise ShapeError(f"the model input {inp.name!r} has shape {dims}: every dim after the batch must be "
                                 "fixed; give from_onnx(..., input_shape=(...)) without the batch dim")
        self._file_batch = dims[0] if dims else None
        self.input_shape = shape
        self.input_dtype = "int64" if np.dtype(_elem_dtype(inp)).kind in "iu" else "float32"
        return inp.name

    def _select_output(self, output):
        names = [o.name for o in self.graph.output]
        if output is None:
            if len(names) != 1:
                raise ParameterError(f"the model has {len(names)} outputs {names}; choose the one the loss reads "
                                     "with from_onnx(..., output=name)")
            return names[0]
        if output not in names and not any(output in n.output for n in self.graph.node):
            raise unknown_name("output", output, names)
        return output

    def _needed_nodes(self):
        needed, nodes = {self._output}, []
        for node in reversed(self.graph.node):
            if any(o in needed for o in node.output):
                nodes.append(node)
                needed.update(i for i in node.input if i)
        return list(reversed(nodes))

    def _check_ops(self):
        for pos, node in enumerate(self.nodes):
            if node.op_type not in TRANSLATORS:
                raise unsupported_op(node, pos, NOT_SUPPORTED_REASONS.get(node.op_type))

    # ------------------------------------------------------------------ weights
    def weight_for(self, name, array, trainable=True):
        w = self._weights.get(name)
        if w is None:
            if not trainable:
                self._forced_frozen.add(name)
            train = (trainable and (self._trainable_names is None or name in self._trainable_names)
                     and name not in self._frozen)
            w = self._weights[name] = ImportedWeight(name, array, train)
        return w

    @property
    def weights(self):
        return list(self._weights.values())

    @property
    def trainable_weights(self):
        return [w for w in self.weights if w.trainable]

    def get_weights(self):
        return [w.initial.copy() for w in self.weights]

    def set_weights(self, arrays):
        assign_weights(self.weights, arrays, f"model {self.name!r}")

    def state_dict(self):
        return {w.name: w.initial.copy() for w in self.weights}

    def count_params(self):
        return sum(w.size for w in self.weights)

    def initialize(self, seed=None):
        """Back to the file's values (an imported model's initial weights are the file's)."""
        for w in self.weights:
            w.initialize()
        return self

    # ------------------------------------------------------------------ tracing
    def input_value(self, name="x"):
        return ir.input_value(name, ("N",) + tuple(self.input_shape),
                              dtype="int64" if self.input_dtype == "int64" else "float")

    def trace(self, x_value, training=False):
        tctx = TraceContext(training)
        ctx = ImportContext(self, training, tctx)
        for name, array in self.initializers.items():
            if array.dtype.kind == "f" and array.ndim >= 1:
                ctx.env[name] = Initializer(name, array)
            else:
                ctx.env[name] = array
        ctx.env[self._input] = x_value
        for node in self.nodes:
            for i in node.input:
                ctx.uses[i] = ctx.uses.get(i, 0) + 1
        ctx.uses[self._output] = ctx.uses.get(self._output, 0) + 1
        for pos, node in enumerate(self.nodes):
            ctx.node, ctx.position = node, pos
            self._translate(ctx, node)
        ctx.node = None
        return Trace(ctx.value(self._output), self.weights, tctx.updates, tctx.random_inputs)

    def _translate(self, ctx, node):
        ins = [i for i in node.input if i]
        if ins and node.op_type not in _NEVER_FOLD and all(ctx.is_const(i) for i in ins):
            outs = fold_node(ctx, node)
        else:
            translator = TRANSLATORS[node.op_type]
            try:
                outs = translator.fn(ctx, node)
            except SymgradError as exc:
                if ctx.where() in str(exc):
                    raise
                raise type(exc)(f"{ctx.where()}: {exc}") from None
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        for name, out in zip(node.output, outs):
            if out is not None:
                ctx.set(name, out)

    def summary(self, print_fn=print):
        lines = [f'ONNX model "{self.name}": {len(self.nodes)} nodes, input {self._input!r} '
                 f"{('N',) + tuple(self.input_shape)}, output {self._output!r} {('N',) + self.output_shape}"]
        lines += [f"  {w.name}: {w.shape}{'' if w.trainable else ' (frozen)'}" for w in self.weights]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        return f"<OnnxModel {self.name!r}: {len(self.nodes)} nodes, {len(self.weights)} weights>"


__all__ = ["OnnxModel", "ImportedWeight", "BATCH", "Lazy", "folded_dim", "ir_dim", "WORKING_OPSET"]

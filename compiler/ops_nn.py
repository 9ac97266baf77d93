"""The layers' vocabulary: structural functions with static attributes (conv, pooling,
gather, concat, reshape), re-exported by ``symgrad.compiler.ops``.

The attributes travel as the last argument, a sympy Tuple of ints and Str atoms, so an
application stays hashable and has no stray free symbols.
"""
import builtins

import sympy
from sympy import Integer, Tuple
from sympy.core.symbol import Str

from .errors import ParameterError
from .ops import TensorFunction

PADDINGS = ("valid", "same", "causal")


def _encode(v):
    if isinstance(v, str):
        return Str(v)
    if isinstance(v, (builtins.tuple, builtins.list)):
        return Tuple(*[_encode(a) for a in v])
    return Integer(int(v))


def _decode(v):
    if isinstance(v, Str):
        return v.name
    if isinstance(v, Tuple):
        return builtins.tuple(_decode(a) for a in v)
    return int(v)


class _Structural(TensorFunction):
    """f(*tensors, attrs): the last argument packs the attributes named by ``attr_names``."""

    attr_names = ()

    @classmethod
    def make(cls, tensors, **attrs):
        packed = _encode(builtins.tuple(attrs[n] for n in cls.attr_names))
        return cls(*[sympy.sympify(t) for t in tensors], packed)

    def tensor_args(self):
        return self.args[:-1]

    def static_args(self):
        return ()

    def ir_attrs(self):
        return dict(builtins.zip(self.attr_names, _decode(self.args[-1])))

    def _static_kwargs(self):
        return self.ir_attrs()

    def _latex(self, printer, exp=None):
        parts = ", ".join(printer._print(a) for a in self.tensor_args())
        tex = r"\operatorname{%s}\left(%s\right)" % (self.user_name.replace("_", r"\_"), parts)
        return tex if exp is None else r"\left(%s\right)^{%s}" % (tex, exp)


class Conv(_Structural):
    ir_op, user_name = "conv", "conv"
    attr_names = ("strides", "padding", "pads", "dilations", "group", "spatial_rank")


class ConvTranspose(_Structural):
    ir_op, user_name = "conv_transpose", "conv_transpose"
    attr_names = ("strides", "pads", "dilations", "group", "output_padding", "out_spatial")


class MaxPool(_Structural):
    ir_op, user_name = "max_pool", "max_pool"
    attr_names = ("kernel", "strides", "padding", "pads", "dilations", "ceil_mode", "spatial_rank")


class AvgPool(_Structural):
    ir_op, user_name = "avg_pool", "avg_pool"
    attr_names = ("kernel", "strides", "padding", "pads", "dilations", "ceil_mode", "count_include_pad",
                  "spatial_rank")


class GlobalAvgPool(_Structural):
    ir_op, user_name = "global_avg_pool", "global_avg_pool"


class Gather(_Structural):
    ir_op, user_name = "gather", "gather"


class Concat(_Structural):
    ir_op, user_name = "concat", "concat"
    attr_names = ("axis",)


class Reshape(_Structural):
    ir_op, user_name = "reshape", "reshape"
    attr_names = ("shape",)


def _int_tuple(owner, name, value, minimum):
    vals = (value,) if not isinstance(value, (builtins.tuple, builtins.list)) else builtins.tuple(value)
    if not vals or builtins.any(isinstance(v, bool) or not isinstance(v, (int, Integer)) or v < minimum
                                for v in vals):
        raise ParameterError(f"{owner}: parameter {name!r} must be an integer >= {minimum} or a tuple of them, "
                             f"got {value!r}")
    return builtins.tuple(int(v) for v in vals)


def _padding(owner, padding):
    """('valid'|'same'|'causal', ()) or ('explicit', pads): pads are one int for every side,
    one per spatial dim, or ONNX's begins-then-ends list."""
    if isinstance(padding, str):
        if padding not in PADDINGS:
            raise ParameterError(f"{owner}: parameter 'padding' must be one of {', '.join(map(repr, PADDINGS))} "
                                 f"or non-negative integers, got {padding!r}")
        return padding, ()
    return "explicit", _int_tuple(owner, "padding", padding, 0)


def conv(x, w, b=None, strides=1, padding="valid", dilation=1, groups=1, spatial_rank=0):
    """N-d convolution (cross-correlation, as every framework) of x (N, C, *spatial) with
    w (out, C/groups, *kernel), PyTorch/ONNX layout; b (out,) optional."""
    owner = {0: "conv", 1: "conv1d", 2: "conv2d"}.get(spatial_rank, "conv")
    mode, pads = _padding(owner, padding)
    tensors = (x, w) if b is None else (x, w, b)
    return Conv.make(tensors, strides=_int_tuple(owner, "strides", strides, 1), padding=mode, pads=pads,
                     dilations=_int_tuple(owner, "dilation", dilation, 1),
                     group=_int_tuple(owner, "groups", groups, 1)[0], spatial_rank=spatial_rank)


def conv1d(x, w, b=None, strides=1, padding="valid", dilation=1, groups=1):
    return conv(x, w, b, strides, padding, dilation, groups, spatial_rank=1)


def conv2d(x, w, b=None, strides=1, padding="valid", dilation=1, groups=1):
    return conv(x, w, b, strides, padding, dilation, groups, spatial_rank=2)


def conv_transpose(x, w, b=None, strides=1, pads=0, output_padding=0, dilations=1, groups=1):
    """N-d transposed convolution (ONNX ConvTranspose, PyTorch ConvTranspose*d) of
    x (N, C_in, *spatial) with w (C_in, C_out/groups, *kernel); b (C_out,) optional.
    pads: one int, one per spatial dim, or begins-then-ends; the output is
    (i - 1) s - pads + d (k - 1) + 1 + output_padding per spatial dim."""
    owner = "conv_transpose"
    tensors = (x, w) if b is None else (x, w, b)
    return ConvTranspose.make(tensors, strides=_int_tuple(owner, "strides", strides, 1),
                              pads=_int_tuple(owner, "pads", pads, 0),
                              dilations=_int_tuple(owner, "dilations", dilations, 1),
                              group=_int_tuple(owner, "groups", groups, 1)[0],
                              output_padding=_int_tuple(owner, "output_padding", output_padding, 0),
                              out_spatial=())


def _pool(cls, owner, x, pool_size, strides, padding, spatial_rank, dilations=1, ceil_mode=False, **extra):
    kernel = _int_tuple(owner, "pool_size", pool_size, 1)
    mode, pads = _padding(owner, padding)
    if mode == "causal":
        raise ParameterError(f"{owner}: parameter 'padding' must be 'valid' or 'same', got 'causal'")
    strides = kernel if strides is None else _int_tuple(owner, "strides", strides, 1)
    return cls.make((x,), kernel=kernel, strides=strides, padding=mode, pads=pads,
                    dilations=_int_tuple(owner, "dilations", dilations, 1), ceil_mode=int(bool(ceil_mode)),
                    spatial_rank=spatial_rank, **extra)


def max_pool(x, pool_size=2, strides=None, padding="valid", dilations=1, ceil_mode=False):
    """Max pooling of x (N, C, *spatial). padding: 'valid', 'same' or explicit ints (one,
    one per spatial dim, or ONNX's begins-then-ends; padded cells never win)."""
    return _pool(MaxPool, "max_pool", x, pool_size, strides, padding, 0, dilations, ceil_mode)


def max_pool1d(x, pool_size=2, strides=None, padding="valid"):
    return _pool(MaxPool, "max_pool1d", x, pool_size, strides, padding, 1)


def max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    return _pool(MaxPool, "max_pool2d", x, pool_size, strides, padding, 2)


def avg_pool(x, pool_size=2, strides=None, padding="valid", dilations=1, ceil_mode=False,
             count_include_pad=False):
    """Average pooling; padded cells count only with count_include_pad (Keras: never)."""
    return _pool(AvgPool, "avg_pool", x, pool_size, strides, padding, 0, dilations, ceil_mode,
                 count_include_pad=int(bool(count_include_pad)))


def avg_pool1d(x, pool_size=2, strides=None, padding="valid"):
    return _pool(AvgPool, "avg_pool1d", x, pool_size, strides, padding, 1, count_include_pad=0)


def avg_pool2d(x, pool_size=2, strides=None, padding="valid"):
    return _pool(AvgPool, "avg_pool2d", x, pool_size, strides, padding, 2, count_include_pad=0)


def global_avg_pool(x):
    """Mean over every spatial axis of x (N, C, *spatial) -> (N, C)."""
    return GlobalAvgPool.make((x,))


def gather(table, ids):
    """Rows of ``table`` (V, ...) at integer ``ids`` (any shape): ids.shape + table.shape[1:]."""
    return Gather.make((table, ids))


embedding_lookup = gather


def concat(tensors, axis=-1):
    if not isinstance(tensors, (builtins.tuple, builtins.list)) or builtins.len(tensors) < 1:
        raise ParameterError(f"concat: parameter 'tensors' must be a non-empty list of tensors, got {tensors!r}")
    if isinstance(axis, bool) or not isinstance(axis, (int, Integer)):
        raise ParameterError(f"concat: parameter 'axis' must be an integer, got {axis!r}")
    return Concat.make(builtins.tuple(tensors), axis=int(axis))


def reshape(x, shape):
    """Reshape to ``shape``, the full shape including the batch dim; one entry may be -1
    (typically the batch: ``reshape(x, (-1, 4, 4))``)."""
    shape = builtins.tuple(shape) if isinstance(shape, (builtins.tuple, builtins.list)) else (shape,)
    if builtins.any(isinstance(d, bool) or not isinstance(d, (int, Integer)) or (d < 1 and d != -1)
                    for d in shape) or builtins.sum(1 for d in shape if d == -1) > 1:
        raise ParameterError(f"reshape: parameter 'shape' must be positive integers with at most one -1, "
                             f"got {shape!r}")
    return Reshape.make((x,), shape=shape)


def flatten(x):
    """Keep the batch dim, flatten the rest in C order: (N, d1, d2, ...) -> (N, d1*d2*...)."""
    return Reshape.make((x,), shape="flatten")

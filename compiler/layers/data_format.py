"""Image data layout: "channels_first" (N, C, *spatial), ONNX's and PyTorch's, or
"channels_last" (N, *spatial, C), Keras's and TensorFlow's.

One model-wide default, read when a layer is built: ``set_image_data_format`` /
``image_data_format`` (as keras.config). The default stays "channels_first" because
that is what every symgrad layer, kernel and saved bundle meant before data_format
existed; switching it silently would reread existing users' (N, C, H, W) data as
(N, H, W, C). Keras users call ``layers.set_image_data_format("channels_last")`` once,
or pass ``data_format="channels_last"`` per layer.

Compute is channels-first (ONNX Conv and pooling are). A channels_last layer views its
input as channels-first and hands its output back channels-last through one Transpose
each way; the next channels_last layer peels that Transpose off instead of adding the
inverse one (also through elementwise work on it, such as an activation or a residual
Add of two branches), so a chain of spatial layers transposes once where it begins and
once where a channels_last tensor leaves it (Flatten, Dense, a model output): never per
layer. Layers that mix a channels_last tensor with a same-rank tensor that is not such a
transpose (Dropout's noise, LayerNormalization) see the channels_last tensor itself.
"""
import warnings

from .. import ir, ops
from ..errors import ParameterError, ShapeError

FORMATS = ("channels_first", "channels_last")
_default = ["channels_first"]
_chosen = [False]   # whether the user has set the default (then the guess below stays quiet)


def set_image_data_format(data_format):
    """Set the layout every spatial layer without its own ``data_format`` uses."""
    if data_format not in FORMATS:
        raise ParameterError(f"image data format must be one of {', '.join(map(repr, FORMATS))}, "
                             f"got {data_format!r}")
    _default[0] = data_format
    _chosen[0] = True


def warn_if_keras_shaped(owner, name, data_format, input_shape):
    """The one case the unchosen channels_first default likely misreads: a Keras image
    (H, W, 1 or 3) taken as H channels of W x 1 or W x 3 images. A warning, not an error:
    such a shape can be meant."""
    if data_format is not None or _chosen[0] or len(input_shape) < 4:
        return
    first, last = input_shape[1], input_shape[-1]
    if last in (1, 3) and first not in (1, 3) and first is not None and first > 4:
        warnings.warn(
            f"{owner} {name!r} reads the input {tuple(input_shape)} as channels_first: {first} channels of "
            f"{'x'.join(str(d) for d in input_shape[2:])} images. If it is channels_last (Keras' (height, width, "
            f"channels)), call symgrad.compiler.layers.set_image_data_format('channels_last') or pass "
            f"data_format='channels_last'; set the format (or pass data_format='channels_first') to silence this.",
            stacklevel=3)


def image_data_format():
    return _default[0]


def check(owner, data_format):
    """A layer's data_format argument: None (the model-wide default, read at build) or a format."""
    if data_format is not None and data_format not in FORMATS:
        raise ParameterError(f"{owner}: parameter 'data_format' must be 'channels_first', 'channels_last' or None "
                             f"(the default, now {image_data_format()!r}), got {data_format!r}")
    return data_format


def resolve(data_format):
    return data_format or image_data_format()


def layout_text(data_format, spatial_rank):
    names = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}.get(
        spatial_rank, tuple(f"d{i}" for i in range(spatial_rank)))
    dims = ("channels",) + names if data_format == "channels_first" else names + ("channels",)
    return "(batch, " + ", ".join(dims) + ")"


def split_shape(owner, name, data_format, input_shape, spatial_rank):
    """(channels, spatial) of a Keras input shape (batch first), or a ShapeError naming the
    layout and the shape."""
    if len(input_shape) != spatial_rank + 2 or any(d is None for d in input_shape[1:]):
        raise ShapeError(f"{owner} {name!r} expects inputs of shape {layout_text(data_format, spatial_rank)} with "
                         f"static dims after the batch (data_format={data_format!r}), got {tuple(input_shape)}")
    if data_format == "channels_first":
        return input_shape[1], tuple(input_shape[2:])
    return input_shape[-1], tuple(input_shape[1:-1])


def join_shape(data_format, batch, channels, spatial):
    if data_format == "channels_first":
        return (batch, channels) + tuple(spatial)
    return (batch,) + tuple(spatial) + (channels,)


def to_last_perm(rank):
    return (0,) + tuple(range(2, rank)) + (1,)


def to_first_perm(rank):
    return (0, rank - 1) + tuple(range(1, rank - 1))


# value id -> the to-first transpose already made of that channels_last value, so that
# every consumer shares one (a graph input read by a conv and by a residual Add)
_first_views = {}


def peel(expr, rank, depth=8):
    """The channels-first expression whose to-last transpose ``expr`` is, or None. Looks
    through elementwise work (an activation, a residual Add of two channels_last
    branches) whose tensor inputs all peel or already have a channels-first view, and
    whose other inputs are scalars. Never adds a transpose."""
    v = ir.value_of(expr) if getattr(expr, "is_Symbol", False) else None
    if v is None or depth == 0:
        return None
    if v.op == "transpose" and v.rank == rank and tuple(v.attrs["perm"]) == to_last_perm(rank):
        return v.inputs[0].sym
    if v.id in _first_views:
        return _first_views[v.id].sym
    if v.op != "elementwise" or v.rank != rank:
        return None
    swap = {}
    for i in v.inputs:
        if ir.static_size(i.shape) == 1 and i.rank <= rank:
            continue  # a scalar broadcasts the same either way
        inner = peel(i.sym, rank, depth - 1) if i.rank == rank else None
        if inner is None:
            return None
        swap[i.sym] = inner
    return v.expr.xreplace(swap) if swap else None


def channels_first(x, data_format, rank):
    """x (in ``data_format``) as a channels-first expression."""
    if data_format == "channels_first":
        return x
    inner = peel(x, rank)
    if inner is not None:
        return inner
    v = ir.value_of(x) if getattr(x, "is_Symbol", False) else None
    if v is None:
        return ops.transpose(x, to_first_perm(rank))
    _first_views[v.id] = ir.apply("transpose", [v], name="to_channels_first", perm=to_first_perm(rank))
    return _first_views[v.id].sym


def restore(y, data_format, rank):
    """A channels-first result handed back in ``data_format``."""
    return y if data_format == "channels_first" else ops.transpose(y, to_last_perm(rank))

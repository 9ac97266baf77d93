"""BatchNormalization, LayerNormalization, Softmax and LogSoftmax.

The normalisations are sympy over reduce_mean, as in the layer API, so their backward
passes come from the reduction rules and sympy.diff. BatchNormalization's running
statistics are frozen weights by default (PyTorch ``eval()`` fine-tuning); with
``batchnorm="train"`` a training step normalises with the batch statistics and updates
the running ones as model state (ONNX momentum: running = m * running + (1 - m) * batch).
"""
import sympy

from ..errors import ShapeError
from .. import ir
from .context import Initializer, Lazy, materialize, number
from .linalg import apply
from .registry import Sample, translates


def _per_channel(ctx, name, x_rank, trainable=True):
    """A (C,) tensor as a (C, 1, ..., 1) value that broadcasts against NCHW data."""
    e = ctx.entry(name)
    if isinstance(e, Initializer):
        v = ctx.model.weight_for(e.name, e.array, trainable=trainable).value
        ctx.env[name] = v
    else:
        v = ctx.value(name)
    if v.rank != 1:
        raise ShapeError(f"BatchNormalization expects (C,) statistics and scale, got {v.shape} for {name!r}")
    if x_rank <= 2:
        return v
    return apply(ctx, "reshape", [v], shape=(v.shape[0],) + (1,) * (x_rank - 2))


@translates("BatchNormalization", note="sympy over reduce_mean; running statistics frozen (or trained as state "
                                       "with batchnorm='train')",
            sample=Sample((2, 3, 4), (3,), (3,), (3,), (3,), low=0.2, high=1.5, epsilon=1e-3))
def batch_norm(ctx, node):
    a = ctx.attrs(node)
    x = ctx.value(node.input[0])
    eps = number(a.get("epsilon", 1e-5))
    scale = _per_channel(ctx, node.input[1], x.rank)
    bias = _per_channel(ctx, node.input[2], x.rank)
    mean = _per_channel(ctx, node.input[3], x.rank, trainable=False)
    var = _per_channel(ctx, node.input[4], x.rank, trainable=False)
    if ctx.training and ctx.model.batchnorm == "train":
        axes = (0,) + tuple(range(2, x.rank))
        mu = apply(ctx, "reduce_mean", [x], axes=axes)
        centred = x.sym - mu.sym
        sigma2 = apply(ctx, "reduce_mean", [ir.elementwise(centred ** 2, name="batchnorm/centred")], axes=axes)
        momentum = number(a.get("momentum", 0.9))
        for stat_name, running, batch in ((node.input[3], mean, mu), (node.input[4], var, sigma2)):
            new = Lazy(momentum * running.sym + (1 - momentum) * batch.sym, (x.shape[1],) + (1,) * (x.rank - 2))
            upd = apply(ctx, "reshape", [materialize(new, stat_name + "/next")], shape=(x.shape[1],))
            ctx.trace.updates[stat_name] = upd
        mean_sym, var_sym = mu.sym, sigma2.sym
    else:
        mean_sym, var_sym = mean.sym, var.sym
    y = (x.sym - mean_sym) / sympy.sqrt(var_sym + eps) * scale.sym + bias.sym
    return Lazy(y, x.shape)


@translates("LayerNormalization", note="sympy over reduce_mean over the trailing axes from `axis`",
            sample=Sample((2, 3, 4), (4,), (4,), epsilon=1e-3))
def layer_norm(ctx, node):
    a = ctx.attrs(node)
    x = ctx.value(node.input[0])
    axis = a.get("axis", -1) % x.rank
    axes = tuple(range(axis, x.rank))
    eps = number(a.get("epsilon", 1e-5))
    mu = apply(ctx, "reduce_mean", [x], axes=axes)
    centred = ir.elementwise(x.sym - mu.sym, name=(node.name or "layernorm") + "/centred")
    var = apply(ctx, "reduce_mean", [ir.elementwise(centred.sym ** 2)], axes=axes)
    y = centred.sym / sympy.sqrt(var.sym + eps)
    if len(node.input) > 1 and node.input[1]:
        y = y * ctx.expr(node.input[1])
    if len(node.input) > 2 and node.input[2]:
        y = y + ctx.expr(node.input[2])
    outs = [Lazy(y, x.shape)]
    if len(node.output) > 1:
        outs.append(mu)
    if len(node.output) > 2:
        outs.append(Lazy(1 / sympy.sqrt(var.sym + eps), var.shape))
    return outs


def _softmax(op):
    def translate(ctx, node):
        x = ctx.value(node.input[0])
        return apply(ctx, op, [x], axes=(ctx.attrs(node).get("axis", -1),))
    return translate


translates("Softmax", note="the softmax primitive (opset < 13 files are converted: their 2-D semantics)",
           sample=Sample((2, 3, 4), axis=1))(_softmax("softmax"))
translates("LogSoftmax", note="the log_softmax primitive (opset < 13 converted)",
           sample=Sample((2, 3, 4), axis=-1))(_softmax("log_softmax"))

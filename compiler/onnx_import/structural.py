"""Structural ONNX ops onto the shared tensor functions of compiler/ops_tensor.py and
compiler/ops_nn.py (the ones the Keras layers use too): slicing, split, pad, tile,
expand, resize, depth/space rearrangement, gather_elements, transposed convolution,
LRN and the instance/group normalisations. Each translation builds the function over
the inputs' symbols and lets build_ir make the IR node with its primitive's VJP rule."""
import numpy as np
import sympy

from .. import ops_nn, ops_tensor
from ..build import build_ir
from ..errors import ShapeError, SymgradError
from .context import BATCH
from .registry import Sample, translates


def build(ctx, expr):
    return build_ir(expr, name=ctx.node.name or ctx.node.op_type)


def _ints(ctx, node, index, attr=None, what="this input"):
    a = ctx.attrs(node)
    if attr and attr in a:
        return [int(v) for v in a[attr]]
    if len(node.input) > index and node.input[index]:
        return [int(v) for v in np.asarray(ctx.const(node.input[index], what)).reshape(-1)]
    return None


@translates("Slice", note="ops_tensor.slice (strided_slice primitive: any steps, negative too; adjoint scatters "
                          "back with zeros)",
            sample=Sample((2, 6, 4), np.array([1, -1]), np.array([5, -100]), np.array([1, 2]), np.array([2, -2])))
def slice_op(ctx, node):
    x = ctx.value(node.input[0])
    starts, ends = _ints(ctx, node, 1, "starts", "starts"), _ints(ctx, node, 2, "ends", "ends")
    axes = _ints(ctx, node, 3, "axes", "axes")
    steps = _ints(ctx, node, 4, None, "steps")
    axes = [a % x.rank for a in (axes if axes is not None else range(len(starts)))]
    keep = [i for i, a in enumerate(axes) if not (not isinstance(x.shape[a], int) and starts[i] == 0
                                                  and ends[i] >= 2 ** 31 - 1 and (steps or [1] * 99)[i] == 1)]
    if any(not isinstance(x.shape[axes[i]], int) for i in keep):
        raise ShapeError(f"Slice along the batch axis of {x.shape} is not supported")
    if not keep:
        return x
    pick = lambda vals: [vals[i] for i in keep] if vals is not None else None  # noqa: E731
    return build(ctx, ops_tensor.slice(x.sym, pick(starts), pick(ends), pick(axes), pick(steps)))


@translates("Split", note="ops_tensor.split (slices; the adjoint of the pieces is their concatenation)",
            sample=Sample((2, 7), np.array([3, 4]), axis=1, outputs=2))
def split(ctx, node):
    x = ctx.value(node.input[0])
    a = ctx.attrs(node)
    axis = a.get("axis", 0) % x.rank
    sizes = _ints(ctx, node, 1, "split", "split")
    n_out = len(node.output)
    pieces = ops_tensor.split(x.sym, sizes if sizes is not None else a.get("num_outputs", n_out), axis)
    return [build(ctx, p) for p in pieces]


@translates("Pad", note="ops_tensor.pad: constant, reflect and edge modes (negative pads crop)",
            sample=Sample((2, 3, 4), np.array([0, 1, 2, 0, 2, 1]), mode="reflect"))
def pad(ctx, node):
    x = ctx.value(node.input[0])
    a = ctx.attrs(node)
    pads = _ints(ctx, node, 1, "pads", "pads")
    value = a.get("value", 0.0)
    if len(node.input) > 2 and node.input[2]:
        value = float(np.asarray(ctx.const(node.input[2], "the pad value")).reshape(()))
    axes = _ints(ctx, node, 3, None, "axes")
    if axes is not None:  # opset 18: pads only for the listed axes
        full = [0] * (2 * x.rank)
        k = len(axes)
        for i, ax in enumerate(axes):
            full[ax % x.rank], full[x.rank + ax % x.rank] = pads[i], pads[k + i]
        pads = full
    if (pads[0] or pads[x.rank]) and not isinstance(x.shape[0], int):
        raise ShapeError("Pad along the batch axis is not supported")
    return build(ctx, ops_tensor.pad(x.sym, pads, a.get("mode", "constant"), value))


@translates("Tile", note="ops_tensor.tile (adjoint: sum over the copies)",
            sample=Sample((2, 3), np.array([1, 2])))
def tile(ctx, node):
    x = ctx.value(node.input[0])
    repeats = _ints(ctx, node, 1, None, "repeats")
    if repeats[0] != 1 and not isinstance(x.shape[0], int):
        raise ShapeError("Tile along the batch axis is not supported")
    return build(ctx, ops_tensor.tile(x.sym, repeats))


@translates("Expand", note="ops_tensor.broadcast_to (adjoint: sum over the broadcast axes)",
            sample=Sample((2, 1, 3), np.array([1, 4, 3])))
def expand(ctx, node):
    x = ctx.value(node.input[0])
    target = np.asarray(ctx.const(node.input[1], "the shape")).reshape(-1)
    dims = []
    for d in target:
        d = sympy.sympify(d)
        dims.append(-1 if d == BATCH else int(d) if d.is_Integer else None)
    if None in dims:
        raise ShapeError(f"Expand to {list(target)}: accepted: fixed dims and the batch dim")
    rank = max(len(dims), x.rank)
    lead = [1] * (rank - len(dims)) + dims
    xs = (1,) * (rank - x.rank) + tuple(x.shape)
    # a dim that is the batch (or 1 against the batch) keeps the input's symbolic size
    lead = [-1 if (d in (1, -1) and not isinstance(s, int)) else d for d, s in zip(lead, xs)]
    if all(d in (1, -1) or d == s for d, s in zip(lead, xs)) and rank == x.rank:
        return x
    return build(ctx, ops_tensor.broadcast_to(x.sym, lead))


@translates("Resize", note="ops_tensor.resize: nearest and linear (half_pixel, pytorch_half_pixel, "
                                       "align_corners, asymmetric); adjoint: the transposed interpolation",
            sample=Sample((2, 2, 3, 3), None, np.array([1.0, 1.0, 2.0, 1.5], dtype=np.float32), mode="linear"))
def resize(ctx, node):
    x = ctx.value(node.input[0])
    a = ctx.attrs(node)
    ins = list(node.input) + [""] * 4
    scales = [float(v) for v in np.asarray(ctx.const(ins[2], "scales")).reshape(-1)] if ins[2] else None
    sizes = [int(v) for v in np.asarray(ctx.const(ins[3], "sizes")).reshape(-1)] if ins[3] else None
    if scales is not None and not scales:
        scales = None
    ctm = a.get("coordinate_transformation_mode", "half_pixel")
    if ctm == "tf_crop_and_resize":
        raise SymgradError("Resize with tf_crop_and_resize is not supported")
    mode = a.get("mode", "nearest")
    if a.get("antialias", 0) or mode == "cubic":
        raise SymgradError(f"Resize mode {mode!r}{' with antialias' if a.get('antialias') else ''} is not "
                           "supported; accepted: nearest and linear without antialias")
    axes = a.get("axes")
    if axes is not None:
        full_s = [1.0] * x.rank if scales is not None else None
        full_n = [None] * x.rank if sizes is not None else None
        for i, ax in enumerate(axes):
            if scales is not None:
                full_s[ax % x.rank] = scales[i]
            else:
                full_n[ax % x.rank] = sizes[i]
        scales, sizes = full_s, full_n
    if sizes is not None:
        sizes = [None if (i == 0 and not isinstance(x.shape[0], int)) else s for i, s in enumerate(sizes)]
    return build(ctx, ops_tensor.resize(x.sym, scales=scales, sizes=sizes, mode=mode,
                                        coordinate_transformation_mode=ctm,
                                        nearest_mode=a.get("nearest_mode", "round_prefer_floor")))


@translates("DepthToSpace", note="ops_tensor.depth_to_space (DCR and CRD); adjoint: space_to_depth",
            sample=Sample((2, 8, 2, 3), blocksize=2, mode="CRD"))
def depth_to_space(ctx, node):
    a = ctx.attrs(node)
    return build(ctx, ops_tensor.depth_to_space(ctx.expr(node.input[0]), a["blocksize"], a.get("mode", "DCR")))


@translates("SpaceToDepth", note="ops_tensor.space_to_depth; adjoint: depth_to_space",
            sample=Sample((2, 2, 4, 6), blocksize=2))
def space_to_depth(ctx, node):
    return build(ctx, ops_tensor.space_to_depth(ctx.expr(node.input[0]), ctx.attrs(node)["blocksize"]))


@translates("GatherElements", note="ops_tensor.gather_elements (adjoint: scatter-add of the picked elements)",
            sample=Sample((2, 4, 3), np.array([[[0, 3, 1], [2, 2, 0]], [[1, 0, 3], [3, 1, 2]]]), axis=1))
def gather_elements(ctx, node):
    x = ctx.value(node.input[0])
    ids = ctx.value(node.input[1])
    return build(ctx, ops_tensor.gather_elements(x.sym, ids.sym, ctx.attrs(node).get("axis", 0)))


@translates("ConvTranspose", note="ops_nn.conv_transpose (groups, strides, dilations, pads, output_padding, "
                                  "output_shape, auto_pad); backward: Conv and the kernel-gradient Conv",
            sample=Sample((2, 4, 3, 3), (4, 3, 3, 2), (6,), group=2, strides=(2, 1), pads=(1, 0, 0, 1),
                          output_padding=(1, 0)))
def conv_transpose(ctx, node):
    a = ctx.attrs(node)
    x, w = ctx.value(node.input[0]), ctx.value(node.input[1])
    r = x.rank - 2
    kernel = tuple(w.shape[2:])
    strides = tuple(a.get("strides", (1,) * r))
    dilations = tuple(a.get("dilations", (1,) * r))
    out_pad = list(a.get("output_padding", (0,) * r))
    spatial = tuple(x.shape[2:])
    auto = a.get("auto_pad", "NOTSET")
    pads = list(a.get("pads", (0,) * (2 * r)))
    if "output_shape" in a or auto in ("SAME_UPPER", "SAME_LOWER"):
        target = list(a["output_shape"])[-r:] if "output_shape" in a else [n * s for n, s in zip(spatial, strides)]
        pads = [0] * (2 * r)
        for i in range(r):
            total = strides[i] * (spatial[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1 - target[i]
            if total < 0:  # the requested size is larger: the rest comes as output padding
                out_pad[i] -= total
                total = 0
            big, small = total - total // 2, total // 2
            pads[i], pads[r + i] = (small, big) if auto == "SAME_UPPER" else (big, small)
    elif auto == "VALID":
        pads = [0] * (2 * r)
    b = ctx.expr(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    return build(ctx, ops_nn.conv_transpose(x.sym, w.sym, b, strides=strides, pads=tuple(pads),
                                            output_padding=tuple(out_pad), dilations=dilations,
                                            groups=int(a.get("group", 1))))


@translates("LRN", note="ops_tensor.lrn: x / (bias + alpha/size * window_sum(x^2))^beta in sympy over the "
                        "window_sum primitive",
            sample=Sample((2, 5, 2, 2), size=3, alpha=0.2, beta=0.75, bias=1.5))
def lrn(ctx, node):
    a = ctx.attrs(node)
    return build(ctx, ops_tensor.lrn(ctx.expr(node.input[0]), a["size"], a.get("alpha", 1e-4), a.get("beta", 0.75),
                                     a.get("bias", 1.0)))


@translates("InstanceNormalization", note="ops_tensor.instance_norm: sympy over reduce_mean",
            sample=Sample((2, 3, 4), (3,), (3,), epsilon=1e-3))
def instance_norm(ctx, node):
    x = ctx.value(node.input[0])
    return build(ctx, ops_tensor.instance_norm(x.sym, ctx.expr(node.input[1]), ctx.expr(node.input[2]),
                                               ctx.attrs(node).get("epsilon", 1e-5)))


@translates("GroupNormalization", note="ops_tensor.group_norm: sympy over reduce_mean (opset 18's per-group "
                                       "scale is spread to the channels)",
            sample=Sample((2, 4, 3), (4,), (4,), num_groups=2, epsilon=1e-3, stash_type=11, opset=21))
def group_norm(ctx, node):
    a = ctx.attrs(node)
    x = ctx.value(node.input[0])
    groups = a["num_groups"]
    c = x.shape[1]
    params = []
    for name in node.input[1:3]:
        v = ctx.value(name)
        if v.shape == (groups,) and groups != c:  # opset 18: one scale per group
            from .. import ir
            ids = ir.const_value(np.repeat(np.arange(groups), c // groups).astype(np.float64), name=name + "/ids")
            v = build(ctx, ops_nn.gather(v.sym, ids.sym))
        params.append(v.sym)
    return build(ctx, ops_tensor.group_norm(x.sym, groups, params[0], params[1], a.get("epsilon", 1e-5)))


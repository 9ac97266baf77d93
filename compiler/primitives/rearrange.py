"""Data movement without arithmetic: depth_to_space / space_to_depth (each the other's
adjoint, in both of ONNX's DCR and CRD orders) and broadcast_to a static shape."""
import sympy

from ..errors import ShapeError
from ..ir import Primitive, primitive, broadcast_shapes

BLOCK_MODES = ("DCR", "CRD")


def _nchw(x, op):
    if x.rank != 4 or not all(isinstance(d, int) for d in x.shape[1:]):
        raise ShapeError(f"{op} expects an input of shape (batch, channels, height, width) with static dims after "
                         f"the batch, got {x.shape}")
    return x.shape


def _block_attrs(attrs, op):
    mode = attrs.get("mode", "DCR")
    if mode not in BLOCK_MODES:
        raise ShapeError(f"{op}: mode {mode!r} is not one of {', '.join(BLOCK_MODES)}")
    bs = int(attrs["blocksize"])
    if bs < 1:
        raise ShapeError(f"{op}: blocksize must be a positive integer, got {bs}")
    attrs.update(mode=mode, blocksize=bs)
    return bs, mode


@primitive
class DepthToSpace(Primitive):
    """(N, C*b*b, H, W) -> (N, C, H*b, W*b); DCR: depth, column, row (ONNX's default)."""

    name = "depth_to_space"

    def shape(self, inputs, attrs):
        n, c, h, w = _nchw(inputs[0], "depth_to_space")
        bs, _ = _block_attrs(attrs, "depth_to_space")
        if c % (bs * bs):
            raise ShapeError(f"depth_to_space: {c} channels are not divisible by blocksize^2 = {bs * bs}")
        return (n, c // (bs * bs), h * bs, w * bs)

    def vjp(self, node, g, ad):
        a = node.attrs
        return [ad.apply("space_to_depth", [ad.materialize(g, node)], blocksize=a["blocksize"], mode=a["mode"]).sym]

    def emit(self, b, node, ins):
        a = node.attrs
        return b.node("DepthToSpace", ins, hint=node.name, blocksize=a["blocksize"], mode=a["mode"])

    def to_sympy(self, node, args):
        return sympy.Function("depth_to_space")(*args)


@primitive
class SpaceToDepth(Primitive):
    """(N, C, H*b, W*b) -> (N, C*b*b, H, W): the inverse of depth_to_space in the same mode
    (ONNX's SpaceToDepth is the inverse of DCR; CRD is emitted as Reshape/Transpose)."""

    name = "space_to_depth"

    def shape(self, inputs, attrs):
        n, c, h, w = _nchw(inputs[0], "space_to_depth")
        bs, _ = _block_attrs(attrs, "space_to_depth")
        if h % bs or w % bs:
            raise ShapeError(f"space_to_depth: height {h} and width {w} must be divisible by blocksize {bs}")
        return (n, c * bs * bs, h // bs, w // bs)

    def vjp(self, node, g, ad):
        a = node.attrs
        return [ad.apply("depth_to_space", [ad.materialize(g, node)], blocksize=a["blocksize"], mode=a["mode"]).sym]

    def emit(self, b, node, ins):
        a = node.attrs
        bs = a["blocksize"]
        if a["mode"] == "DCR":
            return b.node("SpaceToDepth", ins, hint=node.name, blocksize=bs)
        _, c, h, w = node.inputs[0].shape
        h2, w2 = h // bs, w // bs
        split = b.node("Reshape", [ins[0], b.const_i64([-1, c, h2, bs, w2, bs])], hint=node.name + "/split")
        moved = b.node("Transpose", [split], hint=node.name + "/crd", perm=[0, 1, 3, 5, 2, 4])
        return b.node("Reshape", [moved, b.const_i64([-1, c * bs * bs, h2, w2])], hint=node.name)

    def to_sympy(self, node, args):
        return sympy.Function("space_to_depth")(*args)


@primitive
class BroadcastTo(Primitive):
    """broadcast_to(x): attrs shape, the static target (the batch dim may stay symbolic
    when x has it)."""

    name = "broadcast_to"

    def shape(self, inputs, attrs):
        x = inputs[0]
        target = tuple(attrs["shape"])
        try:
            out = broadcast_shapes(x.shape, target)
        except ShapeError:
            out = None
        if out is None or len(out) != len(target) or any(isinstance(t, int) and o != t and t != 1
                                                          for o, t in zip(out, target)):
            raise ShapeError(f"broadcast_to: {x.shape} does not broadcast to {target}")
        lead = len(out) - x.rank
        for i, d in enumerate(out):
            if not isinstance(d, int) and (i < lead or x.shape[i - lead] != d):
                raise ShapeError(f"broadcast_to: the dynamic dim {d!r} of {out} must come from the input {x.shape}")
        return out

    def vjp(self, node, g, ad):
        return [ad.sum_to(g, node, node.inputs[0])]

    def emit(self, b, node, ins):
        dims = [d if isinstance(d, int) else 1 for d in node.shape]
        return b.node("Expand", [ins[0], b.const_i64(dims, hint=node.name + "/shape")], hint=node.name)

    def to_sympy(self, node, args):
        return sympy.Function("broadcast_to")(*args)

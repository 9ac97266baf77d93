"""Fused kernels the simplifier substitutes for recognised subgraphs. Each keeps its VJP
in the rule table like any other primitive (checked against sympy in the tests)."""
from .. import ops
from ..errors import ShapeError
from ..ir import Primitive, primitive
from .. import portable


@primitive
class SparseSoftmaxCrossEntropy(Primitive):
    """ce(z, y) = -log_softmax(z)[y] over the last axis, shape z.shape[:-1] + (1,)."""

    name = "sparse_softmax_cross_entropy"

    def shape(self, inputs, attrs):
        z, y = inputs
        if tuple(y.shape) != tuple(z.shape[:-1]):
            raise ShapeError(f"labels of shape {y.shape} do not index logits of shape {z.shape}")
        return tuple(z.shape[:-1]) + (1,)

    def vjp(self, node, g, ad):
        z, y = node.inputs
        softmax = ad.apply("softmax", [z], axes=(z.rank - 1,))
        one_hot = ad.apply("one_hot", [y, z])
        return [g * (softmax.sym - one_hot.sym), None]

    def emit(self, b, node, ins):
        z, y = ins
        labels = b.int_source.get(y) or b.node("Cast", [y], hint=node.name + "/labels", to=7)  # int64 indices
        # ONNX's fused op (classes on axis 1) only where measured faster, never in portable
        # graphs (tract and onnx2torch lack it); today nowhere: see compiler/portable.py
        if node.inputs[0].rank == 2 and portable.FUSED_CE_IS_FASTER and not portable.is_portable(b):
            ce = b.node("SoftmaxCrossEntropyLoss", [z, labels], hint=node.name + "/per_sample", reduction="none")
            return b.node("Unsqueeze", [ce, b.const_i64([-1])], hint=node.name)
        log_p = b.node("LogSoftmax", [z], hint=node.name + "/log_softmax", axis=-1)
        picked = b.node("GatherElements", [log_p, b.node("Unsqueeze", [labels, b.const_i64([-1])],
                                                          hint=node.name + "/index")],
                        hint=node.name + "/picked", axis=node.inputs[0].rank - 1)
        return b.node("Neg", [picked], hint=node.name)

    def to_sympy(self, node, args):
        return ops.SparseSoftmaxCrossEntropy(args[0], args[1])

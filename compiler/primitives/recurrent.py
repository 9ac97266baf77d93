"""step_state: the boundary between two unrolled time steps of a recurrence.

In the forward graph it is its input (no ONNX node). Its VJP materialises the upstream
gradient: autodiff carries elementwise gradients as lazy sympy expressions, and across
an unrolled recurrence (c_t = f_t c_{t-1} + ...) that expression would otherwise grow
with every step, T deep, instead of one small node per step.
"""
import sympy

from ..ir import Primitive, primitive


@primitive
class StepState(Primitive):
    name = "step_state"

    def shape(self, inputs, attrs):
        return inputs[0].shape

    def vjp(self, node, g, ad):
        return [ad.materialize(g, node).sym]

    def emit(self, b, node, ins):
        return ins[0]

    def to_sympy(self, node, args):
        return args[0]

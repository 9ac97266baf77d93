"""Structural primitives, one family per module. Importing this package registers
each primitive (shape rule, VJP rule, ONNX emitter, sympy display) in ``ir.PRIMITIVES``;
``VJP_RULES`` is the one table autodiff consults."""
from ..ir import PRIMITIVES
from . import reductions, softmax, shape_ops, linalg  # noqa: F401  (registration)
from . import conv, pooling, gather, layout, custom  # noqa: F401,E402  (layers' structural ops)
from . import metrics  # noqa: F401  (argmax, take_along_axis: non-differentiable, for metrics)
from . import fused  # noqa: F401  (kernels the simplifier substitutes, e.g. sparse softmax CE)
from . import axis_maps, resize, rearrange  # noqa: F401,E402  (pad, resize, tile, slices, depth_to_space)
from . import attention  # noqa: F401  (batch_matmul)
from . import recurrent  # noqa: F401  (step_state: where an unrolled recurrence's gradient is materialised)

VJP_RULES = {name: prim.vjp for name, prim in PRIMITIVES.items()}


def register_more():
    """Refresh VJP_RULES after a later module registered more primitives."""
    VJP_RULES.update({name: prim.vjp for name, prim in PRIMITIVES.items()})

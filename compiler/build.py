"""Build the graph: a sympy expression (elementwise sympy + tensor functions over value
symbols) becomes IR. Every tensor-function application becomes a structural node; each
maximal elementwise region between them becomes one fused elementwise node."""
import sympy

from . import ir
from .errors import UnknownSymbolError, ExpressionError, ShapeError
from .ops import TensorFunction


def build_ir(expr, name="forward"):
    """The Value computing ``expr``, whose free symbols must all be IR value symbols."""
    memo = {}

    def to_elementwise(e):
        if e in memo:
            return memo[e]
        if isinstance(e, sympy.Symbol):
            if ir.value_of(e) is None:
                raise UnknownSymbolError(f"symbol {e} has no value; bind it to an input, a parameter or a number")
            out = e
        elif isinstance(e, TensorFunction):
            out = tensor_node(e).sym
        elif e.is_Atom or not e.args:
            out = e
        else:
            args = tuple(to_elementwise(a) for a in e.args)
            out = e.func(*args) if args != e.args else e
        memo[e] = out
        return out

    def tensor_node(f):
        inputs = [ir.elementwise(to_elementwise(a), name=f"{name}/ew") for a in f.tensor_args()]
        try:
            return ir.apply(f.ir_op, inputs, name=f"{name}/{f.user_name}", **f.ir_attrs())
        except ShapeError:
            raise
        except (ValueError, IndexError) as exc:
            raise ExpressionError(f"cannot apply {f.user_name}() here: {exc}") from None

    return ir.elementwise(to_elementwise(sympy.sympify(expr)), name=f"{name}/ew")


def canonical_signs(expr):
    """A display form independent of the IR's symbol numbering: whether Abs(u) was
    differentiated as sign(u) or -sign(-u) depends on how sympy ordered the IR symbols."""
    def flip(u):
        return -sympy.sign(-u) if u.could_extract_minus_sign() else sympy.sign(u)
    return expr.replace(sympy.sign, flip)


def to_sympy(value, leaves):
    """The sympy expression a Value computes, over ``leaves`` (Value id -> sympy expr).
    Used to show derived gradients in the user's own symbols."""
    memo = {}
    for v in ir.topological_order([value]):
        if v.id in leaves:
            memo[v.id] = leaves[v.id]
        elif v.op == "elementwise":
            memo[v.id] = v.expr.xreplace({i.sym: memo[i.id] for i in v.inputs})
        elif v.op == "const":
            arr = v.attrs["value"]
            memo[v.id] = sympy.sympify(arr.item()) if arr.size == 1 else sympy.Symbol(v.name)
        elif v.op in ("input", "param"):
            memo[v.id] = sympy.Symbol(v.name, real=True)
        else:
            memo[v.id] = ir.PRIMITIVES[v.op].to_sympy(v, [memo[i.id] for i in v.inputs])
    return canonical_signs(memo[value.id])

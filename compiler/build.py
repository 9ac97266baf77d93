"""Build the graph: a sympy expression (elementwise sympy + tensor functions over value
symbols) becomes IR. Every tensor-function application becomes a structural node; each
maximal elementwise region between them becomes one fused elementwise node.

A region is cut into several nodes where one node would make differentiation
super-linear: sympy.diff of a product of n factors is n terms of n - 1 factors, and of
Max(a1..an) n Heaviside(ai - Max(others)), each Max built by comparing its arguments
pairwise. Wide sums and products therefore become a tree of nodes of at most
``FAN_IN`` operands, wide Max/Min a tree of ``MINMAX_FAN_IN``, and a chain deeper than
``SPLIT_DEPTH`` a chain of nodes: the work per node is bounded, the total linear."""
import sympy

from . import ir
from .errors import UnknownSymbolError, ExpressionError, ShapeError
from .ops import TensorFunction

FAN_IN = 8
MINMAX_FAN_IN = 2
SPLIT_DEPTH = 12


def build_ir(expr, name="forward"):
    """The Value computing ``expr``, whose free symbols must all be IR value symbols."""
    memo = {}
    depth = {}      # depth of each built expression, counted from the last cut

    def node_of(e):
        v = ir.elementwise(e, name=f"{name}/ew")
        depth[v.sym] = 0
        return v.sym

    def tree(func, args, fan_in):
        """func(*args) as a tree of nodes of at most fan_in operands."""
        while len(args) > fan_in:
            args = [node_of(func(*args[i:i + fan_in])) if len(args[i:i + fan_in]) > 1 else args[i]
                    for i in range(0, len(args), fan_in)]
        return func(*args)

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
            args = [to_elementwise(a) for a in e.args]
            args = [node_of(a) if depth.get(a, 0) >= SPLIT_DEPTH else a for a in args]
            if isinstance(e, (sympy.Max, sympy.Min)) and len(args) > MINMAX_FAN_IN:
                out = tree(e.func, args, MINMAX_FAN_IN)
            elif isinstance(e, (sympy.Add, sympy.Mul)) and sum(not a.is_number for a in args) > FAN_IN:
                numbers = [a for a in args if a.is_number]
                out = e.func(*numbers, tree(e.func, [a for a in args if not a.is_number], FAN_IN))
            else:
                out = e.func(*args) if tuple(args) != e.args else e
            depth[out] = 1 + max((depth.get(a, 0) for a in args), default=0)
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

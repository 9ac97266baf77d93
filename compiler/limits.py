"""Size and depth limits on expressions, so that no input keeps a compile busy for minutes.

The compiler's work is close to linear in an expression's size once the graph builder
splits wide sums, products and Max/Min into small nodes (build.py), but a few steps
stay super-linear in one call's width or in nesting depth (sympy's Max/Min compare
their arguments pairwise when built; sympy's own algorithms recurse once per level).
The limits below bound those steps; each check is iterative and runs before any of
them. docs/internals.md states the limits for users.
"""
import ast

import sympy

from .errors import ExpressionError, ExpressionSyntaxError

MAX_CHARS = 20_000          # characters of expression text
MAX_NODES = 2_000           # nodes of the syntax tree or of the sympy expression tree
MAX_DEPTH = 24              # nesting levels (a chain a + b + c ... is one level)
MAX_MINMAX_ARGS = 16        # arguments of one Max/Min (sympy compares them pairwise)
MAX_PIECES = 32             # (value, condition) pairs of one Piecewise

_CHAINS = {ast.Add: "add", ast.Sub: "add", ast.Mult: "mul", ast.Div: "mul"}


def chain_of(op):
    """'add' or 'mul' for the operators a flat chain a + b - c or a * b / c is made of."""
    return _CHAINS.get(type(op))


def too_big(what, detail, limit_text):
    return ExpressionError(f"{what} is too large to compile: {detail} (limit: {limit_text}); "
                           "split it into smaller expressions or precompute parts as inputs")


def check_text(text):
    if len(text) > MAX_CHARS:
        raise ExpressionSyntaxError(f"the expression has {len(text)} characters (limit: {MAX_CHARS}); "
                                    "split it into smaller expressions")


def check_syntax_tree(tree, text):
    """Refuse a syntax tree with more than MAX_NODES nodes or deeper than MAX_DEPTH levels."""
    stack, count = [(tree, 0)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionSyntaxError(f"the expression has more than {MAX_NODES} parts "
                                        f"(limit: {MAX_NODES} syntax nodes) in {shorten(text)}")
        if depth > MAX_DEPTH:
            raise ExpressionSyntaxError(f"the expression is nested more than {MAX_DEPTH} levels deep "
                                        f"(limit: {MAX_DEPTH} levels of calls, parentheses and powers) in {shorten(text)}")
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.expr_context)):
                continue
            flat = (isinstance(node, ast.BinOp) and child is node.left and isinstance(child, ast.BinOp)
                    and chain_of(node.op) is not None and chain_of(child.op) == chain_of(node.op))
            stack.append((child, depth if flat else depth + 1))


def check_expression(expr, what):
    """The same limits for a sympy expression (given directly, or after parsing), plus the
    per-call limits on Max/Min and Piecewise, and Piecewise's otherwise-branch."""
    stack, count = [(expr, 0)], 0
    while stack:
        e, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise too_big(what, f"more than {MAX_NODES} nodes", f"{MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise too_big(what, f"nested more than {MAX_DEPTH} levels deep", f"{MAX_DEPTH} levels")
        if isinstance(e, (sympy.Max, sympy.Min)) and len(e.args) > MAX_MINMAX_ARGS:
            raise too_big(what, f"{type(e).__name__} of {len(e.args)} arguments",
                          f"{MAX_MINMAX_ARGS} arguments per Max/Min")
        if isinstance(e, sympy.Piecewise):
            if len(e.args) > MAX_PIECES:
                raise too_big(what, f"Piecewise of {len(e.args)} pieces", f"{MAX_PIECES} pieces")
            if e.args[-1].cond != sympy.true:
                raise ExpressionError(
                    f"{what}: Piecewise{tuple(e.args)} has no otherwise-branch, so it is undefined (NaN) where no "
                    "condition holds; accepted: a last piece (value, True), e.g. Piecewise((a, x > 0), (b, True)) "
                    "or where(x > 0, a, b)")
        flat = isinstance(e, (sympy.Add, sympy.Mul))
        for a in e.args:
            same = flat and type(a) is type(e)
            stack.append((a, depth if same else depth + 1))


def shorten(text, n=160):
    return repr(text if len(text) <= n else text[:n] + "...")

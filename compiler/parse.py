"""Parse a loss expression from text without eval: Python's ``ast`` gives the tree,
this module walks it against a whitelist and builds the sympy expression directly."""
import ast
import math

import sympy

from . import limits, ops
from .errors import ExpressionSyntaxError, NonDifferentiableError, UnknownSymbolError, UnsupportedFunctionError
from .functions import ELEMENTWISE_PRIMITIVES


def _recip(f):
    return lambda x: 1 / f(x)


ELEMENTWISE_FUNCTIONS = {
    "exp": sympy.exp, "log": sympy.log, "ln": sympy.log, "sqrt": sympy.sqrt,
    "Abs": sympy.Abs, "abs": sympy.Abs, "sign": sympy.sign,
    "Min": sympy.Min, "Max": sympy.Max, "Piecewise": sympy.Piecewise,
    "Heaviside": sympy.Heaviside, "erf": sympy.erf, "erfc": sympy.erfc,
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan,
    "cot": sympy.cot, "sec": sympy.sec, "csc": sympy.csc,
    "asin": sympy.asin, "acos": sympy.acos, "atan": sympy.atan,
    "acot": sympy.acot, "asec": sympy.asec, "acsc": sympy.acsc,
    "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
    "coth": sympy.coth, "sech": sympy.sech, "csch": sympy.csch,
    "asinh": sympy.asinh, "acosh": sympy.acosh, "atanh": sympy.atanh,
    "acoth": sympy.acoth, "asech": sympy.asech, "acsch": sympy.acsch,
    "relu": ops.relu, "clip": ops.clip, "where": ops.where,
    **ELEMENTWISE_PRIMITIVES,
}
CONSTANTS = {"pi": sympy.pi, "E": sympy.E, "e": sympy.E}
# min/max with two or more positional arguments are elementwise (sympy Min/Max);
# with one tensor argument they reduce over an axis.
_DUAL = {"min": (sympy.Min, ops.min), "max": (sympy.Max, ops.max)}


def known_functions():
    return sorted(set(ELEMENTWISE_FUNCTIONS) | set(ops.TENSOR_FUNCTIONS))


class _Builder(ast.NodeVisitor):
    def __init__(self, text, symbols):
        self.text = text
        self.symbols = symbols

    def fail(self, node, cls, msg):
        col = getattr(node, "col_offset", None)
        where = f" at column {col + 1}" if col is not None else ""
        raise cls(f"{msg}{where} in {limits.shorten(self.text)}")

    def generic_visit(self, node):
        self.fail(node, ExpressionSyntaxError,
                  f"{type(node).__name__} is not allowed in an expression "
                  "(accepted: numbers, names, + - * / ** ^, comparisons, and function calls)")

    def visit_Expression(self, node):
        return self.visit(node.body)

    def visit_Constant(self, node):
        if isinstance(node.value, bool):
            return sympy.true if node.value else sympy.false
        if isinstance(node.value, float) and not math.isfinite(node.value):
            self.fail(node, ExpressionSyntaxError, f"constant {ast.get_source_segment(self.text, node) or node.value} "
                      "is not a finite number (accepted: numbers of magnitude below 1.8e308)")
        if isinstance(node.value, (int, float)):
            return sympy.Rational(str(node.value)) if isinstance(node.value, float) else sympy.Integer(node.value)
        self.fail(node, ExpressionSyntaxError, f"constant {node.value!r} is not a number")

    def visit_Name(self, node):
        if node.id in self.symbols:
            return self.symbols[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in ELEMENTWISE_FUNCTIONS or node.id in ops.TENSOR_FUNCTIONS:
            self.fail(node, ExpressionSyntaxError, f"function {node.id!r} must be called, e.g. {node.id}(...)")
        self.fail(node, UnknownSymbolError,
                  f"unknown symbol {node.id!r}; accepted symbols: {', '.join(sorted(self.symbols))}, pi, E "
                  "(give a parameter a value with params={name: value})")

    _BINOPS = {
        ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b,
        ast.Pow: lambda a, b: a ** b, ast.BitXor: lambda a, b: a ** b,
    }

    def visit_BinOp(self, node):
        if limits.chain_of(node.op) is not None:
            return self._chain(node)
        op = self._BINOPS.get(type(node.op))
        if op is None:
            self.fail(node, ExpressionSyntaxError,
                      f"operator {type(node.op).__name__} is not allowed (accepted: + - * / ** ^)")
        left, right = self.visit(node.left), self.visit(node.right)
        self._need_numbers(node, left, right)
        if isinstance(node.op, (ast.Pow, ast.BitXor)) and _huge_power(left, right):
            # sympy would compute 10**10**10 exactly, digit by digit
            self.fail(node, ExpressionSyntaxError, f"the constant {left}**{right} is too large for a float "
                      "(accepted: constants of magnitude below 1.8e308)")
        return op(left, right)

    def _chain(self, node):
        """a + b - c + ... (or a * b / c ...) as one sympy Add (Mul): a loop, not one Python
        frame per operand, and one flattening instead of one per operator."""
        kind = limits.chain_of(node.op)
        links = []
        while isinstance(node, ast.BinOp) and limits.chain_of(node.op) == kind:
            links.append(node)
            node = node.left
        first = self.visit(node)
        self._need_numbers(node, first)
        operands = [first]
        for link in reversed(links):
            v = self.visit(link.right)
            self._need_numbers(link, v)
            if isinstance(link.op, ast.Sub):
                v = -v
            elif isinstance(link.op, ast.Div):
                v = sympy.Pow(v, -1)
            operands.append(v)
        return sympy.Add(*operands) if kind == "add" else sympy.Mul(*operands)

    def _need_numbers(self, node, *operands):
        # sympy refuses arithmetic on a comparison with a raw TypeError; say what to write
        for v in operands:
            if isinstance(v, tuple):
                self.fail(node, ExpressionSyntaxError, f"the tuple {v} is used as a number (accepted: a tuple only "
                          "as an axis=(...) argument)")
            if isinstance(v, sympy.logic.boolalg.Boolean) and not isinstance(v, sympy.Expr):
                self.fail(node, NonDifferentiableError,
                          f"the comparison {v} is used as a number; a comparison is true or false and has no "
                          "derivative (accepted: a comparison only as the condition of where(cond, a, b) or "
                          "Piecewise, or Heaviside(x) for a 0/1 step)")

    def visit_UnaryOp(self, node):
        v = self.visit(node.operand)
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            self._need_numbers(node, v)
        if isinstance(node.op, ast.USub):
            return -v
        if isinstance(node.op, ast.UAdd):
            return v
        if isinstance(node.op, ast.Not):
            return sympy.Not(v)
        self.fail(node, ExpressionSyntaxError, f"unary {type(node.op).__name__} is not allowed")

    _CMP = {ast.Lt: sympy.Lt, ast.LtE: sympy.Le, ast.Gt: sympy.Gt, ast.GtE: sympy.Ge,
            ast.Eq: sympy.Eq, ast.NotEq: sympy.Ne}

    def visit_Compare(self, node):
        left = self.visit(node.left)
        parts = []
        for op, comp in zip(node.ops, node.comparators):
            right = self.visit(comp)
            cmp = self._CMP.get(type(op))
            if cmp is None:
                self.fail(node, ExpressionSyntaxError, f"comparison {type(op).__name__} is not allowed")
            parts.append(cmp(left, right, evaluate=False))
            left = right
        return sympy.And(*parts) if len(parts) > 1 else parts[0]

    def visit_BoolOp(self, node):
        vals = [self.visit(v) for v in node.values]
        return sympy.And(*vals) if isinstance(node.op, ast.And) else sympy.Or(*vals)

    def visit_Tuple(self, node):
        return tuple(self.visit(e) for e in node.elts)

    def visit_Call(self, node):
        if not isinstance(node.func, ast.Name):
            self.fail(node, ExpressionSyntaxError, "only plain function names can be called")
        name = node.func.id
        if name not in _DUAL and name not in ops.TENSOR_FUNCTIONS and name not in ELEMENTWISE_FUNCTIONS:
            self.fail(node, UnsupportedFunctionError,
                      f"unsupported function {name!r}; accepted functions: {', '.join(known_functions())}")
        args = [self.visit(a) for a in node.args]
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                self.fail(node, ExpressionSyntaxError, "**kwargs is not allowed")
            if kw.arg not in ("axis", "like", "ord"):
                self.fail(node, ExpressionSyntaxError,
                          f"keyword {kw.arg!r} is not accepted by {name}() (accepted: axis, like, ord)")
            val = kw.value
            if isinstance(val, ast.Constant) and val.value is None:
                kwargs[kw.arg] = None
            elif kw.arg == "axis":
                elts = val.elts if isinstance(val, ast.Tuple) else [val]
                axes = tuple(self._axis(name, e) for e in elts)
                kwargs[kw.arg] = axes if isinstance(val, ast.Tuple) else axes[0]
            elif isinstance(val, ast.Tuple):
                self.fail(val, ExpressionSyntaxError, f"{kw.arg}= of {name}() takes a number, not a tuple")
            else:
                kwargs[kw.arg] = self.visit(val)
        if name == "Piecewise" and args and not (isinstance(args[-1], tuple) and len(args[-1]) == 2
                                                  and args[-1][1] == sympy.true):
            self.fail(node, ExpressionSyntaxError,
                      "Piecewise needs an otherwise-branch as its last piece, (value, True); without one it is "
                      "undefined (NaN) where no condition holds (accepted: Piecewise((a, x > 0), (b, True)) or "
                      "where(x > 0, a, b))")
        if name in ("Max", "Min", "max", "min") and len(args) > limits.MAX_MINMAX_ARGS:
            self.fail(node, ExpressionSyntaxError,
                      f"{name}() has {len(args)} arguments (limit: {limits.MAX_MINMAX_ARGS} arguments per Max/Min, "
                      "whose compile time grows with the square of their number)")
        if name == "Piecewise" and len(args) > limits.MAX_PIECES:
            self.fail(node, ExpressionSyntaxError,
                      f"Piecewise has {len(args)} pieces (limit: {limits.MAX_PIECES} pieces)")
        if name in _DUAL:
            elementwise, reduction = _DUAL[name]
            fn = elementwise if len(args) >= 2 else reduction
        elif name in ops.TENSOR_FUNCTIONS:
            fn = ops.TENSOR_FUNCTIONS[name]
        else:
            fn = ELEMENTWISE_FUNCTIONS[name]
            if kwargs:
                self.fail(node, ExpressionSyntaxError, f"{name}() takes no keyword arguments")
        try:
            return fn(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            problem = str(exc)
        # raised outside the except block, so that sympy's TypeError is not chained to it
        self.fail(node, ExpressionSyntaxError, f"bad arguments to {name}(): {problem}")


    def _axis(self, name, node):
        v = self.visit(node)
        if not (isinstance(v, sympy.Integer)):
            shown = ast.get_source_segment(self.text, node) or v
            self.fail(node, ExpressionSyntaxError, f"axis={shown} of {name}() is not an integer (accepted: an "
                      "integer such as -1, a tuple of integers such as (1, 2), or None for every axis)")
        return int(v)


def _huge_power(base, exponent):
    if not (isinstance(base, sympy.Number) and isinstance(exponent, sympy.Number)) or base in (0, 1, -1):
        return False
    try:
        return float(exponent) * math.log10(abs(float(base))) > 308
    except (OverflowError, ValueError, TypeError):
        return True


def parse_expression(text, symbols):
    """Parse ``text`` into a sympy expression over ``symbols`` (name -> sympy Symbol)."""
    if not isinstance(text, str):
        raise ExpressionSyntaxError(f"an expression must be a string, not {type(text).__name__}")
    if not text.strip():
        raise ExpressionSyntaxError("the expression is empty; write e.g. '(y_pred - y_true)**2'")
    limits.check_text(text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        col = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionSyntaxError(f"syntax error{col} in {limits.shorten(text)}: {exc.msg}") from None
    except (RecursionError, MemoryError):   # Python's own parser gives up on deep nesting
        raise ExpressionSyntaxError(f"the expression is nested too deeply for Python's parser (limit: "
                                    f"{limits.MAX_DEPTH} levels) in {limits.shorten(text)}") from None
    limits.check_syntax_tree(tree, text)
    return _Builder(text, symbols).visit(tree)

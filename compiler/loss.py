"""``Loss``: a loss declared as a sympy expression over ``y_true`` and ``y_pred``.

The expression gives the per-element or per-sample loss L (tensor functions such as
``mean(..., axis=-1)`` make it per sample); the reduction then turns L into the scalar
that is optimised. ``to_onnx`` emits a model with inputs ``y_true``, ``y_pred``
[, extra inputs][, ``sample_weight``] and outputs ``loss`` and ``grad_<input>``.
"""
import sympy

from . import ir
from .autodiff import gradients, has_gradient
from .build import build_ir, to_sympy
from .emit import OnnxBuilder, DEFAULT_OPSET, check, emit_values, make_model
from .errors import (MissingPredictionError, NonDifferentiableError, ParameterError, UnknownSymbolError,
                     ExpressionError)
from .limits import check_expression
from .params import check_number, check_choice
from .parse import parse_expression
from .stabilize import stabilize

Y_TRUE = sympy.Symbol("y_true", real=True)
Y_PRED = sympy.Symbol("y_pred", real=True)
REDUCTIONS = ("none", "sum", "mean", "sum_over_batch_size", "weighted_mean", "sum_by_nonzero_weights")
# other libraries' spellings: Keras' mean_with_sample_weight and None, TF.js' tf.Reduction names
REDUCTION_ALIASES = {"mean_with_sample_weight": "weighted_mean", None: "none"}


def check_reduction(owner, value):
    """The canonical reduction name of ``value`` (case-insensitive; aliases accepted)."""
    if isinstance(value, str) and value.lower() in REDUCTIONS:
        return value.lower()
    if (isinstance(value, str) and value.lower() in REDUCTION_ALIASES) or value is None:
        return REDUCTION_ALIASES[value.lower() if isinstance(value, str) else value]
    raise ParameterError(f"{owner}: parameter 'reduction' must be one of {', '.join(map(repr, REDUCTIONS))} "
                         f"(or Keras' 'mean_with_sample_weight', TF.js' 'SUM_BY_NONZERO_WEIGHTS'), got {value!r}")
LABELS = ("dense", "sparse")
_LATEX_NAMES = {"y_true": "y", "y_pred": r"\hat{y}"}


def _symbol(name):
    return name if isinstance(name, sympy.Symbol) else sympy.Symbol(str(name), real=True)


class Loss:
    """A loss from a sympy expression.

    expr:       sympy expression or string over ``y_true``, ``y_pred``, ``inputs`` and ``params``.
    reduction:  'none' | 'sum' | 'mean' | 'sum_over_batch_size' (Keras default: sum(w*L)/numel(L))
                | 'weighted_mean' (sum(w*L)/sum(w), PyTorch class weights, Keras mean_with_sample_weight)
                | 'sum_by_nonzero_weights' (TF.js' default: sum(w*L) / count(w != 0), w broadcast to
                the loss; sum(L)/numel(L) without weights). Case-insensitive, so TF.js'
                'SUM_BY_NONZERO_WEIGHTS' is the same.
    params:     {name: number} for the free parameters of the expression (delta, margin, ...).
    constraints:{name: rule} from symgrad.compiler.params.RULES ('positive', 'open_unit', ...).
    inputs:     further named inputs (e.g. ['positive', 'negative']); each gets a grad_<name> output.
    labels:     'dense' (y_true shaped like y_pred) or 'sparse' (integer class indices, no last axis).
    weight:     optional expression for per-element weights that enter the weighted mean
                denominator (class weights, ignore masks).
    normalizer: optional expression whose (sample-weighted) sum is the 'weighted_mean'
                denominator when the weights are already inside ``expr`` (PyTorch's
                label-smoothed cross-entropy divides by sum w[y_n] without multiplying by it);
                'mean' / 'sum_over_batch_size' then divide by its plain sum instead of numel
                (Keras' masked mean: a circle loss row without positives does not count).
    """

    def __init__(self, expr, reduction="sum_over_batch_size", name=None, params=None, inputs=(),
                 labels="dense", weight=None, constraints=None, doc=None, normalizer=None):
        self.name = name or "loss"
        self.reduction = check_reduction(self.name, reduction)
        self.labels = check_choice(self.name, "labels", labels, LABELS)
        self.doc = doc
        self.inputs = tuple(str(i) for i in inputs)
        constraints = dict(constraints or {})
        self.params = {}
        for key, value in (params or {}).items():
            sym = _symbol(key)
            if sym.name in ("y_true", "y_pred") + self.inputs:
                raise ParameterError(
                    f"loss {self.name!r}: {sym.name!r} is an input of the loss (data fed at run time), not a "
                    "parameter, and cannot be given a value; parameters name the other free symbols of the "
                    "expression (e.g. params={'delta': 1.0})")
            self.params[sym] = check_number(self.name, sym.name, value, constraints.get(sym.name, "number"))
        self.symbols = {"y_true": Y_TRUE, "y_pred": Y_PRED}
        self.symbols.update({n: _symbol(n) for n in self.inputs})
        self.symbols.update({s.name: s for s in self.params})
        self.expression = self._declare(expr, "expression")
        self.weight = self._declare(weight, "weight") if weight is not None else None
        self.normalizer = self._declare(normalizer, "normalizer") if normalizer is not None else None
        if Y_PRED not in self.expression.free_symbols:
            raise MissingPredictionError(
                f"loss {self.name!r}: the expression {self.expression} does not use y_pred; "
                "a loss must depend on the prediction it trains")
        self._stable = None

    @classmethod
    def from_expression(cls, text, reduction="sum_over_batch_size", name=None, params=None, **kwargs):
        """Parse ``text`` against a whitelist (no eval) and declare the loss."""
        return cls(text, reduction=reduction, name=name or "custom_loss", params=params, **kwargs)

    def _declare(self, expr, what):
        if isinstance(expr, str):
            expr = parse_expression(expr, self.symbols)
        try:
            expr = sympy.sympify(expr, strict=True)
        except (sympy.SympifyError, TypeError, ValueError) as exc:
            raise ExpressionError(f"loss {self.name!r}: the {what} {expr!r} is not a sympy expression ({exc}); "
                                  "accepted: a sympy expression or a string such as '(y_pred - y_true)**2'") from None
        check_expression(expr, f"loss {self.name!r}: the {what}")
        if isinstance(expr, sympy.logic.boolalg.Boolean) and not isinstance(expr, sympy.Expr):
            raise NonDifferentiableError(
                f"loss {self.name!r}: the {what} {expr} is a comparison (true or false), not a number, and has no "
                "derivative; accepted: a real-valued expression (use a comparison only as the condition of "
                "where(cond, a, b) or Piecewise)")
        if not isinstance(expr, sympy.Expr):
            raise ExpressionError(f"loss {self.name!r}: the {what} {expr!r} is a {type(expr).__name__}, not a "
                                  "scalar expression; accepted: a real-valued sympy expression")
        bad = [a for a in (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo) if expr.has(a)]
        if bad or expr.has(sympy.I):
            why = f"the undefined or infinite value {bad[0]} (a division by zero, log(0), ...)" if bad \
                else "the imaginary unit I (log or sqrt of a negative constant, ...)"
            raise ExpressionError(f"loss {self.name!r}: the {what} {expr} contains {why}; accepted: expressions "
                                  "that are finite and real for real inputs")
        unknown = sorted(s.name for s in expr.free_symbols if s not in self.symbols.values())
        if unknown:
            raise UnknownSymbolError(
                f"loss {self.name!r}: unknown symbol(s) {', '.join(unknown)} in the {what}; accepted: "
                f"{', '.join(self.symbols)} (give parameters a value with params={{name: value}})")
        return expr

    # ------------------------------------------------------------------ symbolic views
    @property
    def stable_expression(self):
        """The declared expression after the stabilising rewrites (what gets emitted)."""
        if self._stable is None:
            self._stable = stabilize(self.expression)
        return self._stable

    def _numeric(self, expr):
        return expr.xreplace({s: sympy.Float(v) for s, v in self.params.items()})

    def differentiable_inputs(self):
        return ("y_pred",) + self.inputs

    @ir.scoped
    def gradient_expression(self, wrt="y_pred"):
        """d L / d ``wrt`` of the per-element (or per-sample) loss L, before the reduction,
        as a sympy expression in the user's symbols (parameters stay symbolic)."""
        if wrt not in self.differentiable_inputs():
            raise ParameterError(f"loss {self.name!r}: cannot differentiate with respect to {wrt!r}; "
                                 f"accepted: {', '.join(self.differentiable_inputs())}")
        leaves, bind = {}, {}
        shape = ("N", "D")
        for nm, sym in self.symbols.items():
            v = ir.input_value(nm, () if sym in self.params else self._input_shape(nm, shape))
            leaves[v.id] = sym
            bind[sym] = v.sym
        per_element = build_ir(self.stable_expression.xreplace(bind), name=self.name)
        target = ir.value_of(bind[self.symbols[wrt]])
        (grad,) = gradients(per_element, [target], scope=f"{self.name}/grad")
        return to_sympy(grad, leaves)

    def latex(self):
        """The loss and its derivative with respect to y_pred, as LaTeX."""
        names = {s: _LATEX_NAMES.get(s.name, sympy.latex(s)) for s in self.symbols.values()}
        loss = sympy.latex(self.expression, symbol_names=names)
        grad = sympy.latex(self.gradient_expression(), symbol_names=names)
        return (r"\mathcal{L}(y, \hat{y}) = " + loss + r"\qquad "
                r"\frac{\partial \mathcal{L}}{\partial \hat{y}} = " + grad)

    def __repr__(self):
        params = ", ".join(f"{s.name}={v:g}" for s, v in self.params.items())
        return f"Loss({self.name!r}, {self.expression}, reduction={self.reduction!r}{', ' + params if params else ''})"

    # ------------------------------------------------------------------ graph
    def _input_shape(self, name, pred_shape):
        if name == "y_true" and self.labels == "sparse":
            return tuple(pred_shape[:-1])
        return tuple(pred_shape)

    def build(self, y_pred, y_true=None, extra=None, sample_weight=None):
        """IR of the reduced loss given IR values for the inputs (used by compile_model too).

        Returns (loss, per_sample): loss is a scalar unless reduction == 'none'."""
        bind = {Y_PRED: y_pred.sym}
        if self.uses_y_true():
            if y_true is None:
                raise ParameterError(f"loss {self.name!r} needs y_true")
            if self.labels == "sparse":
                y_true = ir.apply("cast_float", [y_true], name=f"{self.name}/labels")
            bind[Y_TRUE] = y_true.sym
        for nm in self.inputs:
            bind[self.symbols[nm]] = (extra or {})[nm].sym
        per = build_ir(self._numeric(self.stable_expression).xreplace(bind), name=f"{self.name}/forward")
        if not has_gradient(per, y_pred, scope=f"{self.name}/check"):
            raise NonDifferentiableError(
                f"loss {self.name!r}: {self.expression} has a zero gradient with respect to y_pred everywhere "
                "(y_pred enters only through sign, Heaviside or another step), so training could not move; "
                "accepted: a loss that varies with y_pred, e.g. tanh(k*u) for sign(u) or sigmoid(k*u) for "
                "Heaviside(u)")
        w = None
        if self.weight is not None:
            w = build_ir(self._numeric(stabilize(self.weight)).xreplace(bind), name=f"{self.name}/weight")
        if sample_weight is not None:
            sw = sample_weight
            if sw.rank < per.rank:
                sw = ir.apply("unsqueeze", [sw], name=f"{self.name}/sample_weight",
                              axes=tuple(range(sw.rank, per.rank)))
            w = sw if w is None else ir.elementwise(w.sym * sw.sym, name=f"{self.name}/weight")
        norm = count = None
        if self.normalizer is not None:
            norm = count = build_ir(self._numeric(stabilize(self.normalizer)).xreplace(bind),
                                    name=f"{self.name}/normalizer")
            if sample_weight is not None:
                norm = ir.elementwise(norm.sym * sw.sym, name=f"{self.name}/normalizer")
        return self._reduce(per, w, norm, count), per

    def uses_y_true(self):
        return any(e is not None and Y_TRUE in e.free_symbols for e in (self.expression, self.weight, self.normalizer))

    def _reduce(self, per, w, norm=None, count=None):
        scope = f"{self.name}/reduce"
        weighted = per.sym * w.sym if w is not None else per.sym
        if self.reduction == "none":
            v = ir.elementwise(weighted, name=scope)
            if tuple(v.shape) != tuple(per.shape):
                v = ir.apply("expand_like", [v, per], name=scope)
            unit = tuple(i for i in range(1, v.rank) if v.shape[i] == 1)
            return ir.apply("squeeze", [v], name=scope, axes=unit) if unit else v
        if self.reduction in ("mean", "sum_over_batch_size", "sum_by_nonzero_weights") and w is None and (
                count is None or self.reduction == "sum_by_nonzero_weights"):
            return ir.apply("reduce_mean", [per], name=f"{scope}/mean", keepdims=False)
        total = ir.apply("reduce_sum", [ir.elementwise(weighted, name=scope)], name=f"{scope}/sum", keepdims=False)
        if self.reduction == "sum":
            return total
        if self.reduction == "sum_by_nonzero_weights":
            # TF.js computeWeightedLoss: divide by the number of non-zero weights, the weights
            # broadcast to the weighted loss's shape first; 0 when every weight is 0
            wl = ir.elementwise(weighted, name=scope)
            nz = ir.elementwise(sympy.Piecewise((0, sympy.Eq(w.sym, 0)), (1, True)), name=f"{scope}/nonzero")
            if tuple(nz.shape) != tuple(wl.shape):
                nz = ir.apply("expand_like", [nz, wl], name=scope)
            count = ir.apply("reduce_sum", [nz], name=f"{scope}/nonzero_count", keepdims=False).sym
            return ir.elementwise(sympy.Piecewise((0, sympy.Eq(count, 0)), (total.sym / count, True)),
                                  name=f"{scope}/sum_by_nonzero_weights")
        if self.reduction in ("mean", "sum_over_batch_size") and count is not None:
            full = count if tuple(count.shape) == tuple(per.shape) else ir.apply("expand_like", [count, per], name=scope)
            c = ir.apply("reduce_sum", [full], name=f"{scope}/count", keepdims=False).sym
            return ir.elementwise(sympy.Piecewise((0, sympy.Eq(c, 0)), (total.sym / c, True)), name=f"{scope}/mean")
        if self.reduction in ("mean", "sum_over_batch_size"):
            n = ir.static_size(per.shape)
            count = sympy.Integer(n) if n is not None else ir.apply(
                "axis_size", [per], name=f"{scope}/numel", axes=tuple(range(per.rank))).sym
            return ir.elementwise(total.sym / count, name=f"{scope}/mean")
        # weighted_mean: sum(w*L) / sum(w), and 0 when every weight is 0 (as Keras' divide_no_nan)
        if norm is not None:
            w = norm
        if w is None:
            wsum_sym = sympy.Integer(ir.static_size(per.shape) or 0) or ir.apply(
                "axis_size", [per], name=f"{scope}/numel", axes=tuple(range(per.rank))).sym
        else:
            wfull = w if tuple(w.shape) == tuple(per.shape) else ir.apply("expand_like", [w, per], name=scope)
            wsum_sym = ir.apply("reduce_sum", [wfull], name=f"{scope}/weight_sum", keepdims=False).sym
        return ir.elementwise(sympy.Piecewise((0, sympy.Eq(wsum_sym, 0)), (total.sym / wsum_sym, True)),
                              name=f"{scope}/weighted_mean")

    example_shape = None    # y_pred's shape for a demo when (N, D) does not suit the loss (CTC: (N, T, C))

    def to_onnx(self, opset=DEFAULT_OPSET, dtype="float32", shape=None, sample_weight=False, gradients=True):
        """An ONNX model: inputs y_true, y_pred[, extras][, sample_weight]; outputs loss and
        grad_<input> for y_pred and each extra input. ``shape`` is y_pred's shape (None
        entries and strings are dynamic; the first dim is always the dynamic batch).
        ``sample_weight``: True for a (N,) weight input, or its shape, e.g. (None, T) to weigh
        each time step (None is the batch); it broadcasts against the per-element loss as
        in Keras and TF.js (trailing axes are added)."""
        return emit_loss(self, opset=opset, dtype=dtype, shape=shape, sample_weight=sample_weight,
                         with_gradients=gradients)


def _normalize_shape(shape, prefix="D"):
    if shape is None:
        return ("N", "D")
    if isinstance(shape, int):
        shape = (None, shape)
    if not isinstance(shape, (tuple, list)):
        raise ParameterError(f"shape {shape!r} must be a tuple such as (None, 10) (the batch first), an integer "
                             "(features) or None")
    shape = tuple(shape)
    if not shape:
        raise ParameterError("shape must have at least the batch dimension")
    out = ["N"]
    for i, d in enumerate(shape[1:], start=1):
        if d is None or isinstance(d, str):
            out.append(d or f"{prefix}{i}")
        elif isinstance(d, int) and d > 0:
            out.append(d)
        else:
            raise ParameterError(f"shape entry {d!r} must be a positive integer, None or a name")
    return tuple(out)


def _weight_shape(sample_weight):
    """The sample_weight input's shape: True -> (N,); a tuple such as (None, T) -> that shape
    with None first as the batch (1 first: one row shared by the batch, TF.js' broadcast
    weights); () -> a scalar; False/None -> no input."""
    if sample_weight is None or sample_weight is False:
        return None
    if sample_weight is True:
        return ("N",)
    if isinstance(sample_weight, (tuple, list)):
        if len(sample_weight) == 0:
            return ()
        if sample_weight[0] not in (None, "N", 1):
            raise ParameterError(f"sample_weight shape {tuple(sample_weight)!r} must start with None (the batch), "
                                 "or 1 for weights shared by every sample, e.g. (None,), (None, T) or (1, C)")
        shape = _normalize_shape(tuple(sample_weight), prefix="W")
        return ((1,) + shape[1:]) if sample_weight[0] == 1 else shape
    raise ParameterError(f"sample_weight must be True (a (N,) weight input), a shape such as (None, T) "
                         f"(None is the batch), () for one scalar weight, or False; got {sample_weight!r}")


@ir.scoped
def emit_loss(loss, opset=DEFAULT_OPSET, dtype="float32", shape=None, sample_weight=False, with_gradients=True):
    b = OnnxBuilder(opset, dtype)
    pred_shape = _normalize_shape(shape)
    y_pred = ir.input_value("y_pred", pred_shape)
    uses_true = loss.uses_y_true()
    y_true = None
    signature_in = []
    names = {}
    if uses_true:
        true_shape = loss._input_shape("y_true", pred_shape)
        y_true = ir.input_value("y_true", true_shape, dtype="int64" if loss.labels == "sparse" else "float")
        signature_in.append(("y_true", true_shape, 7 if loss.labels == "sparse" else None))
        names[y_true.id] = b.reserve("y_true")
    signature_in.append(("y_pred", pred_shape))
    names[y_pred.id] = b.reserve("y_pred")
    extra = {}
    for nm in loss.inputs:
        extra[nm] = ir.input_value(nm, pred_shape)
        signature_in.append((nm, pred_shape))
        names[extra[nm].id] = b.reserve(nm)
    sw = None
    weight_shape = _weight_shape(sample_weight)
    if weight_shape is not None:
        sw = ir.input_value("sample_weight", weight_shape)
        signature_in.append(("sample_weight", weight_shape))
        names[sw.id] = b.reserve("sample_weight")

    value, _ = loss.build(y_pred, y_true, extra, sw)
    outputs = [("loss", value)]
    if with_gradients:
        wrt = [y_pred] + [extra[n] for n in loss.inputs]
        grads = gradients(value, wrt, scope=f"{loss.name}/grad")
        outputs += [(f"grad_{w.name}", g) for w, g in zip(wrt, grads)]
    for out_name, _ in outputs:
        b.reserve(out_name)
    emitted = emit_values(b, [v for _, v in outputs], names, scope="")
    signature_out = []
    for (out_name, v), src in zip(outputs, emitted):
        b.alias(src, out_name)
        signature_out.append((out_name, v.shape))
    model = make_model(b, signature_in, signature_out, graph_name=loss.name,
                       doc=f"symgrad loss {loss.name}: {loss.expression}; reduction={loss.reduction}")
    return check(model)

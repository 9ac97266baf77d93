"""The recurrent cells' mathematics, and the helper that unrolls them over time.

Keras' layers (layers/recurrent.py) and the ONNX importer's LSTM / GRU / RNN share these
functions; each front end brings its own weight layout and gate order and hands the
cells explicit per-gate blocks:

    simple_rnn_step(x_proj, h_proj, activation) -> h
    lstm_step(gates, c, activation, recurrent_activation) -> (h, c)
        gates: {"i", "f", "c", "o"}: pre-activations x_t W_g + h W_rg + biases
    gru_step(x_gates, h_gates, h, activation, recurrent_activation, reset_after=True,
             candidate_kernel=None) -> h
        x_gates: {"z", "r", "h"}: x_t W_g + input bias; h_gates: {"z", "r", "h"}: h W_rg +
        recurrent bias. reset_after=True (Keras' default, ONNX linear_before_reset=1):
        candidate = act(x_h + r * h_gates["h"]); reset_after=False: candidate = act(x_h +
        (r * h) @ candidate_kernel + h_gates["h"]) where h_gates["h"] holds only the
        recurrent bias (or 0). New state z * h + (1 - z) * candidate (Keras and ONNX).

Arguments are sympy expressions over IR value symbols (the cells are elementwise apart
from gru's candidate matmul); activations are callables on sympy (layers.activations).
A state of ``sympy.S.Zero`` is the zero initial state (its matmuls vanish).

    split_time(value, axis=1) -> [Value per step]       # binary tree of Slices
    unroll(step, steps, states, name) -> [[state Values] per step]

How the loop is emitted (measured with benchmarks/rnn_lowering.py; the numbers are at
``unroll``): unrolled, one small node group per step.
"""
import sympy

from . import ir
from .build import build_ir
from .stabilize import stabilize


def simple_rnn_step(x_proj, h_proj, activation):
    """h = act(x W + b + h U)."""
    return activation(x_proj + h_proj)


def lstm_step(gates, c, activation, recurrent_activation, materialize=None):
    """Keras / ONNX LSTM without peepholes: i, f, o = ra(.), g = act(.), c' = f c + i g,
    h' = o act(c'). Returns (h', c'). ``materialize(expr) -> symbol``, when given, makes
    c' a value of its own before act(c') (what ``unroll``'s callers pass: sympy builds
    act(symbol) much faster than act(sum), and c' is a state anyway)."""
    i = recurrent_activation(gates["i"])
    f = recurrent_activation(gates["f"])
    g = activation(gates["c"])
    o = recurrent_activation(gates["o"])
    c_new = f * c + i * g
    if materialize is not None:
        c_new = materialize(c_new)
    return o * activation(c_new), c_new


def gru_step(x_gates, h_gates, h, activation, recurrent_activation, reset_after=True, candidate_kernel=None,
             materialize=None):
    """Keras GRU (z, r, h gates). Returns the new state. ``materialize(expr) -> symbol``
    (optional) makes each pre-activation a value of its own (see lstm_step)."""
    from . import ops
    m = materialize or (lambda e: e)
    z = recurrent_activation(m(x_gates["z"] + h_gates["z"]))
    r = recurrent_activation(m(x_gates["r"] + h_gates["r"]))
    if reset_after:
        cand = activation(m(x_gates["h"] + r * h_gates["h"]))
    else:
        rec = 0 if h == 0 else ops.matmul(r * h, candidate_kernel)
        cand = activation(m(x_gates["h"] + rec + h_gates["h"]))
    return z * h + (1 - z) * cand


def materialize(expr, name):
    """An IR Value for a step's expression (stabilised as every layer's output is). Its
    new elementwise nodes are marked ``repeats``: autodiff differentiates a cell's
    expression once for all T steps."""
    first = ir.next_id()
    v = build_ir(stabilize(sympy.sympify(expr)), name=name)
    stack = [v]
    while stack:                   # only the nodes this call made: O(step), not O(graph)
        u = stack.pop()
        if u.id < first or u.attrs.get("repeats"):
            continue
        if u.op == "elementwise":
            u.attrs["repeats"] = True
        stack.extend(u.inputs)
    return v


def state(expr, name):
    """``expr`` as a step boundary (step_state over its Value): its symbol."""
    v = materialize(expr, name)
    return v if v.op == "step_state" else ir.apply("step_state", [v], name=name)


def split_time(value, axis=1, name="split_time"):
    """The slices value[:, t] (that axis removed) for every t, as a list of Values.

    A binary tree of halving Slices, not one Slice per step: a Slice's adjoint pads its
    gradient back to the full input, and T full-size pads summed would cost O(T^2) in
    the backward pass; halving costs O(T log T)."""
    n = value.shape[axis]
    rest = tuple(value.shape[axis + 1:])

    def rec(v, lo, hi):
        if hi - lo == 1:
            return [ir.apply("reshape", [v], name=f"{name}/{lo}", shape=(-1,) + tuple(value.shape[1:axis]) + rest)]
        mid = (lo + hi) // 2
        left = ir.apply("slice", [v], name=f"{name}/{lo}_{mid}", axis=axis, start=0, end=mid - lo)
        right = ir.apply("slice", [v], name=f"{name}/{mid}_{hi}", axis=axis, start=mid - lo, end=hi - lo)
        return rec(left, lo, mid) + rec(right, mid, hi)

    return rec(value, 0, n)


def gate_blocks(value, names, axis=-1, name="gates"):
    """Split ``value`` into equal blocks along ``axis``, one per gate: {gate: symbol}."""
    if value is None:
        return {g: sympy.S.Zero for g in names}
    if not isinstance(value, ir.Value):
        value = ir.elementwise(value)
    size = value.shape[axis] // len(names)
    return {g: ir.apply("slice", [value], name=f"{name}/{g}", axis=axis, start=k * size,
                        end=(k + 1) * size).sym for k, g in enumerate(names)}


def unroll(step, steps, states, name="rnn"):
    """Run ``step(step_input, states) -> new states (expressions)`` over ``steps`` (one
    entry per time step, in processing order) from ``states`` (sympy expressions, S.Zero
    for zeros). Each step's states become Values, so the next step sees plain symbols
    and no expression grows with T. Returns the list of state Values after each step.

    Lowering: unrolled, chosen by benchmarks/rnn_lowering.py (LSTM 32 units, 16 features,
    batch 32, + Dense 1, MSE, SGD; float32, 1 thread, onnxruntime 1.32, on the shared
    2-core machine under a load average of ~12, so times are rough):

        T    compile  train nodes  train KB  train steps/s  infer steps/s  Scan infer steps/s
        16     6.1 s       949        74          98            338             481
        64    24.6 s      3592       285          16             72             140
        256  123   s     14344      1168           3             13              36

    (Scan: the forward as one ONNX Scan, 20 nodes and 25 KB at every T.) Up to T = 64
    the unrolled graph compiles in tens of seconds and runs within 2x of a forward-only
    Scan; at T = 256 it compiles in minutes and is 14k nodes, where a Scan lowering would stay
    constant. A Scan lowering needs a VJP rule emitting a reverse Scan whose body is the
    cell's derivative (and body-graph emission from IR); until then the recurrence is
    unrolled, one small node group per step, through the same IR, VJP rules and passes
    as every other layer. Long sequences (T >~ 100) are the case that asks for Scan.
    """
    out = []
    for t, x_t in enumerate(steps):
        new = step(x_t, states)
        values = [state(e, f"{name}/t{t}") for e in new]
        states = [v.sym for v in values]
        out.append(values)
    return out

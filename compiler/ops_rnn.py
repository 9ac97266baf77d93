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

How the loop is emitted (measured with benchmarks/rnn_lowering.py; see the comment at
``unroll``): unrolled, one small node group per step.
"""
import sympy

from . import ir
from .build import build_ir
from .stabilize import stabilize


def simple_rnn_step(x_proj, h_proj, activation):
    """h = act(x W + b + h U)."""
    return activation(x_proj + h_proj)


def lstm_step(gates, c, activation, recurrent_activation):
    """Keras / ONNX LSTM without peepholes: i, f, o = ra(.), g = act(.), c' = f c + i g,
    h' = o act(c'). Returns (h', c')."""
    i = recurrent_activation(gates["i"])
    f = recurrent_activation(gates["f"])
    g = activation(gates["c"])
    o = recurrent_activation(gates["o"])
    c_new = f * c + i * g
    return o * activation(c_new), c_new


def gru_step(x_gates, h_gates, h, activation, recurrent_activation, reset_after=True, candidate_kernel=None):
    """Keras GRU (z, r, h gates). Returns the new state."""
    from . import ops
    z = recurrent_activation(x_gates["z"] + h_gates["z"])
    r = recurrent_activation(x_gates["r"] + h_gates["r"])
    if reset_after:
        cand = activation(x_gates["h"] + r * h_gates["h"])
    else:
        rec = 0 if h == 0 else ops.matmul(r * h, candidate_kernel)
        cand = activation(x_gates["h"] + rec + h_gates["h"])
    return z * h + (1 - z) * cand


def materialize(expr, name):
    """An IR Value for a step's expression (stabilised as every layer's output is)."""
    return build_ir(stabilize(sympy.sympify(expr)), name=name)


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

    Lowering (measured by benchmarks/rnn_lowering.py, LSTM 32 units, batch 32, float32,
    2 CPU threads, onnxruntime 1.23): the loop is unrolled. ONNX Scan would need its
    own VJP (a reverse Scan whose body is the cell's derivative) and body-graph emission;
    unrolled, the same IR, rules and passes serve the recurrence. Unrolled figures at
    T = 16 / 64 / 256: see the benchmark's output recorded in the README's RNN row."""
    out = []
    for t, x_t in enumerate(steps):
        new = step(x_t, states)
        values = [ir.apply("step_state", [materialize(e, f"{name}/t{t}")], name=f"{name}/t{t}") for e in new]
        states = [v.sym for v in values]
        out.append(values)
    return out

"""LSTM, GRU and RNN onto the shared cells of compiler/ops_rnn.py (the Keras layers use
the same): ONNX's weight layout and gate orders (LSTM i, o, f, c; GRU z, r, h) become
explicit gate blocks, the loop is unrolled by ``ops_rnn.unroll`` (the measurement that
chose unrolling over Scan is in that function's comment), and the backward pass
through time comes from the same rules as every other op."""
import sympy

from .. import ir, ops, ops_rnn
from ..errors import SymgradError
from ..functions import sigmoid
from .context import number
from .linalg import apply
from .registry import Sample, translates

_ACTIVATIONS = {
    "Sigmoid": lambda a, b: sigmoid,
    "Tanh": lambda a, b: sympy.tanh,
    "Relu": lambda a, b: (lambda u: sympy.Max(u, 0, evaluate=False)),
    "HardSigmoid": lambda a, b: (lambda u: sympy.Max(0, sympy.Min(1, number(a if a is not None else 0.2) * u
                                                                  + number(b if b is not None else 0.5),
                                                                  evaluate=False), evaluate=False)),
    "Affine": lambda a, b: (lambda u: number(a if a is not None else 1.0) * u + number(b if b is not None else 0.0)),
    "LeakyRelu": lambda a, b: (lambda u: sympy.Piecewise((u, u > 0), (number(a if a is not None else 0.01) * u,
                                                                      True), evaluate=False)),
    "Softsign": lambda a, b: (lambda u: u / (1 + sympy.Abs(u))),
    "Softplus": lambda a, b: (lambda u: ops.softplus(u)),
}
_GATES = {"LSTM": ("i", "o", "f", "c"), "GRU": ("z", "r", "h"), "RNN": ("h",)}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def _activations(a, op, n_dir):
    names = list(a.get("activations", _DEFAULT_ACTS[op] * n_dir))
    alphas, betas = list(a.get("activation_alpha", [])), list(a.get("activation_beta", []))
    out = []
    for k, name in enumerate(names):
        if name not in _ACTIVATIONS:
            raise SymgradError(f"{op} activation {name!r} is not supported; accepted: {', '.join(_ACTIVATIONS)}")
        out.append(_ACTIVATIONS[name](alphas[k] if k < len(alphas) else None, betas[k] if k < len(betas) else None))
    per = len(_DEFAULT_ACTS[op])
    return [out[d * per:(d + 1) * per] for d in range(n_dir)]


def _row(ctx, v, d, name):
    """v[d] of a (num_directions, ...) weight."""
    s = apply(ctx, "slice", [v], axis=0, start=d, end=d + 1) if v.shape[0] > 1 else v
    return apply(ctx, "squeeze", [s], axes=(0,))


def recurrent(ctx, node):
    op, a = node.op_type, ctx.attrs(node)
    ins = list(node.input) + [""] * 8
    if ins[4] or (op == "LSTM" and ins[7]) or a.get("clip") is not None or a.get("input_forget", 0):
        raise SymgradError(f"{op} with sequence_lens, peepholes, clip or input_forget is not supported")
    x = ctx.value(ins[0])
    if a.get("layout", 0) == 0:            # (T, N, F) -> (N, T, F)
        x = apply(ctx, "transpose", [x], perm=(1, 0, 2))
    hidden = a["hidden_size"]
    direction = a.get("direction", "forward")
    n_dir = 2 if direction == "bidirectional" else 1
    acts = _activations(a, op, n_dir)
    gates = _GATES[op]
    W, R = ctx.value(ins[1]), ctx.value(ins[2])
    B = ctx.value(ins[3]) if ins[3] else None
    init = [ins[5]] + ([ins[6]] if op == "LSTM" else [])
    name = node.name or op
    seqs, finals = [], []
    for d in range(n_dir):
        w = apply(ctx, "transpose", [_row(ctx, W, d, "W")], perm=(1, 0))          # (F, G*H)
        r = apply(ctx, "transpose", [_row(ctx, R, d, "R")], perm=(1, 0))          # (H, G*H)
        wb = rb = 0
        if B is not None:
            b = _row(ctx, B, d, "B")
            wb = apply(ctx, "slice", [b], axis=0, start=0, end=len(gates) * hidden).sym
            rb = apply(ctx, "slice", [b], axis=0, start=len(gates) * hidden, end=2 * len(gates) * hidden).sym
        proj = ops_rnn.materialize(ops.matmul(x.sym, w.sym) + wb, f"{name}/d{d}/input_proj")
        steps = ops_rnn.split_time(proj, axis=1, name=f"{name}/d{d}/steps")
        reverse = direction == "reverse" or d == 1
        if reverse:
            steps = steps[::-1]
        states = []
        for k, s in enumerate(init):
            zero = not s or ctx.is_zero(s)
            states.append(sympy.S.Zero if zero else _row(ctx, ctx.value(s), d, "init").sym)
        rgates = ir.value_of(r.sym)
        step = _stepper(op, a, gates, hidden, acts[d], rgates, rb, f"{name}/d{d}")
        history = ops_rnn.unroll(step, steps, states, name=f"{name}/d{d}")
        hs = [h for h, *_ in history]
        if reverse:
            hs = hs[::-1]
        seqs.append(hs)
        finals.append(history[-1])
    # Y: (T, num_directions, N, H) (layout 0) or (N, T, num_directions, H) (layout 1)
    t_axis, d_axis = (0, 1) if a.get("layout", 0) == 0 else (1, 2)
    per_dir = []
    for hs in seqs:
        stacked = [apply(ctx, "unsqueeze", [h], axes=(t_axis,)) for h in hs]
        per_dir.append(apply(ctx, "concat", stacked, axis=t_axis) if len(stacked) > 1 else stacked[0])
    per_dir = [apply(ctx, "unsqueeze", [y], axes=(d_axis,)) for y in per_dir]
    y = apply(ctx, "concat", per_dir, axis=d_axis) if n_dir > 1 else per_dir[0]
    outs = [y]
    for k in range(len(init)):
        lay = 0 if a.get("layout", 0) == 0 else 1
        parts = [apply(ctx, "unsqueeze", [f[k]], axes=(lay,)) for f in finals]
        outs.append(apply(ctx, "concat", parts, axis=lay) if n_dir > 1 else parts[0])
    return outs


def _stepper(op, a, gates, hidden, acts, r, rb, name):
    """step(x_t, states) -> new states, for one direction."""
    rbias = ops_rnn.gate_blocks(ops_rnn.materialize(rb, f"{name}/rbias"), gates, name=f"{name}/rb") \
        if not isinstance(rb, int) else {g: sympy.S.Zero for g in gates}
    linear_before_reset = a.get("linear_before_reset", 0)
    r_blocks = None
    if op == "GRU" and not linear_before_reset:
        r_blocks = {g: ir.apply("slice", [r], name=f"{name}/r_{g}", axis=1, start=k * hidden,
                                end=(k + 1) * hidden).sym for k, g in enumerate(gates)}

    def rec(h, g=None):
        if h == 0:
            return {k: sympy.S.Zero for k in gates}
        m = ops_rnn.materialize(ops.matmul(h, r.sym), f"{name}/recurrent")
        return ops_rnn.gate_blocks(m, gates, name=f"{name}/rgates")

    def step(p, states):
        xg = ops_rnn.gate_blocks(p, gates, name=f"{name}/xgates")
        if op == "LSTM":
            h, c = states
            rg = rec(h)
            pre = {g: xg[g] + rg[g] + rbias[g] for g in gates}
            f, g_act, h_act = acts
            if g_act is h_act:
                return list(ops_rnn.lstm_step(pre, c, g_act, f))
            c_new = f(pre["f"]) * c + f(pre["i"]) * g_act(pre["c"])   # ONNX lets the two tanh differ
            return [f(pre["o"]) * h_act(c_new), c_new]
        if op == "RNN":
            (h,) = states
            return [acts[0](xg["h"] + rec(h)["h"] + rbias["h"])]
        (h,) = states
        f, g_act = acts
        if linear_before_reset:
            rg = rec(h)
            hg = {g: rg[g] + rbias[g] for g in gates}
            return [ops_rnn.gru_step(xg, hg, h, g_act, f, reset_after=True)]
        hg = {g: (sympy.S.Zero if h == 0 else ops.matmul(h, r_blocks[g])) + rbias[g] for g in ("z", "r")}
        hg["h"] = rbias["h"]
        return [ops_rnn.gru_step(xg, hg, h, g_act, f, reset_after=False, candidate_kernel=r_blocks["h"])]

    return step


_NOTE = "ops_rnn cells unrolled over time (forward, reverse, bidirectional{}); no sequence_lens{}"
translates("LSTM", note=_NOTE.format("", ", peepholes, clip or input_forget"),
           sample=Sample((2, 3, 4), (2, 12, 4), (2, 12, 3), (2, 24), low=-0.9, high=0.9, hidden_size=3, layout=1,
                         direction="bidirectional", outputs=3))(recurrent)
translates("GRU", note=_NOTE.format("; linear_before_reset 0 and 1", " or clip"),
           sample=[Sample((2, 3, 4), (1, 9, 4), (1, 9, 3), (1, 18), low=-0.9, high=0.9, hidden_size=3, layout=1,
                          outputs=2),
                   Sample((2, 3, 4), (1, 9, 4), (1, 9, 3), (1, 18), low=-0.9, high=0.9, hidden_size=3, layout=1,
                          linear_before_reset=1, direction="reverse", outputs=2)])(recurrent)
translates("RNN", note=_NOTE.format("", " or clip"),
           sample=Sample((2, 3, 4), (1, 3, 4), (1, 3, 3), (1, 6), low=-0.9, high=0.9, hidden_size=3, layout=1,
                         direction="reverse", outputs=2))(recurrent)

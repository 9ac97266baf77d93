"""SimpleRNN, LSTM, GRU and Bidirectional, with Keras 3's arguments, defaults and weight
layout, over the cells of compiler/ops_rnn.py.

Input (batch, timesteps, features) with the time dimension fixed at compile time; the
batch stays dynamic; the initial state is zeros. Weights (Keras): ``kernel`` (features,
k*units), ``recurrent_kernel`` (units, k*units), ``bias`` (k*units,), or (2, 3*units)
for GRU with reset_after=True (input bias, recurrent bias); gates in Keras order: i, f,
c, o (LSTM), z, r, h (GRU). A weight set copied from Keras gives Keras' outputs.
Outputs: the last state (N, units), or every state (N, T, units) with
return_sequences=True; return_state=True adds the final states (h, and c for LSTM).
"""
import sympy

from .. import ir, ops, ops_rnn
from ..errors import ParameterError, ShapeError
from ..params import check_int
from . import activations, initializers
from .base import Layer

_ZERO = sympy.S.Zero


class _RNN(Layer):
    gates = ()              # gate names in Keras' order; len = k
    n_states = 1

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 return_sequences=False, return_state=False, go_backwards=False, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = check_int(owner, "units", units, 1)
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        for flag, value in (("return_sequences", return_sequences), ("return_state", return_state),
                            ("go_backwards", go_backwards), ("use_bias", use_bias)):
            if not isinstance(value, bool):
                raise ParameterError(f"{owner}: parameter {flag!r} must be True or False, got {value!r}")
        self.return_sequences, self.return_state, self.go_backwards = return_sequences, return_state, go_backwards
        self.n_outputs = 1 + self.n_states if return_state else 1

    # ------------------------------------------------------------ weights
    def _bias_shape(self):
        return (len(self.gates) * self.units,)

    def _bias_initial(self):
        return self.bias_initializer

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ShapeError(f"{type(self).__name__} {self.name!r} needs an input of shape (batch, timesteps, "
                             f"features) with static timesteps and features, got {input_shape}")
        k = len(self.gates)
        self.kernel = self.add_weight("kernel", (input_shape[2], k * self.units), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, k * self.units),
                                                self.recurrent_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", self._bias_shape(), self._bias_initial())

    def compute_output_shape(self, input_shape):
        n, t = input_shape[0], input_shape[1]
        out = (n, t, self.units) if self.return_sequences else (n, self.units)
        return [out] + [(n, self.units)] * self.n_states if self.return_state else out

    # ------------------------------------------------------------ the loop
    def _input_bias(self):
        return self.bias if self.use_bias else 0

    def _prepare(self):
        """Per-call tensors every step shares (bias and kernel blocks)."""

    def call(self, x):
        self._prepare()
        proj = ops_rnn.materialize(ops.matmul(x, self.kernel) + self._input_bias(), f"{self.name}/input_proj")
        steps = ops_rnn.split_time(proj, axis=1, name=f"{self.name}/steps")
        if self.go_backwards:
            steps = steps[::-1]
        history = ops_rnn.unroll(lambda p, s: self._step(p, s), steps, [_ZERO] * self.n_states, name=self.name)
        hs = [h for h, *_ in history]
        if self.return_sequences:
            h3 = [ir.apply("unsqueeze", [h], name=f"{self.name}/seq", axes=(1,)) for h in hs]
            out = ir.apply("concat", h3, name=f"{self.name}/sequence", axis=1) if len(h3) > 1 else h3[0]
        else:
            out = hs[-1]
        if not self.return_state:
            return out.sym
        return tuple([out.sym] + [v.sym for v in history[-1]])

    def _recurrent(self, h, bias=0):
        """h @ recurrent_kernel (+ bias) split into gate blocks; zero state: just the bias."""
        if h == 0:
            if isinstance(bias, int):
                return {g: _ZERO for g in self.gates}
            return ops_rnn.gate_blocks(ops_rnn.materialize(bias, f"{self.name}/rbias"), self.gates,
                                       name=f"{self.name}/rgates")
        r = ops_rnn.materialize(ops.matmul(h, self.recurrent_kernel) + bias, f"{self.name}/recurrent")
        return ops_rnn.gate_blocks(r, self.gates, name=f"{self.name}/rgates")

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": activations.serialize(self.activation),
                "recurrent_activation": activations.serialize(self.recurrent_activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards}


class SimpleRNN(_RNN):
    """h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)."""

    gates = ("h",)

    def __init__(self, units, activation="tanh", **kwargs):
        kwargs.pop("recurrent_activation", None)
        super().__init__(units, activation=activation, **kwargs)

    def _step(self, p, states):
        (h,) = states
        rec = self._recurrent(h)["h"]
        return [ops_rnn.simple_rnn_step(p.sym, rec, self.activation)]

    def get_config(self):
        config = super().get_config()
        config.pop("recurrent_activation")
        return config


class LSTM(_RNN):
    """Keras LSTM: gates i, f, c, o; unit_forget_bias=True starts the forget bias at 1."""

    gates = ("i", "f", "c", "o")
    n_states = 2

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        if not isinstance(unit_forget_bias, bool):
            raise ParameterError(f"LSTM: parameter 'unit_forget_bias' must be True or False, got {unit_forget_bias!r}")
        self.unit_forget_bias = unit_forget_bias

    def _bias_initial(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, u = self.bias_initializer, self.units

        def init(shape, rng):       # Keras: the given initializer, then ones for the forget block
            import numpy as np
            b = np.broadcast_to(np.asarray(base((u,), rng, u, u), dtype=float), (u,))
            return np.concatenate([b, np.ones(u), np.asarray(base((2 * u,), rng, 2 * u, 2 * u), dtype=float)])
        return initializers.get(init)

    def _step(self, p, states):
        h, c = states
        xg = ops_rnn.gate_blocks(p, self.gates, name=f"{self.name}/xgates")
        rg = self._recurrent(h)
        gates = {g: xg[g] + rg[g] for g in self.gates}
        h_new, c_new = ops_rnn.lstm_step(gates, c, self.activation, self.recurrent_activation)
        return [h_new, c_new]

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class GRU(_RNN):
    """Keras GRU: gates z, r, h. reset_after=True (Keras 3's default): bias (2, 3*units),
    input and recurrent bias, and the reset gate applied after the recurrent matmul."""

    gates = ("z", "r", "h")

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        if not isinstance(reset_after, bool):
            raise ParameterError(f"GRU: parameter 'reset_after' must be True or False, got {reset_after!r}")
        self.reset_after = reset_after

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _prepare(self):
        u = self.units
        self._in_bias = self._rec_bias = 0
        if self.use_bias and self.reset_after:      # bias rows: input bias, recurrent bias
            rows = ops_rnn.gate_blocks(ir.value_of(self.bias), ("in", "rec"), axis=0, name=f"{self.name}/bias")
            self._in_bias, self._rec_bias = (ops_rnn.materialize(ops.reshape(rows[k], (3 * u,)),
                                                                 f"{self.name}/{k}_bias").sym for k in ("in", "rec"))
        elif self.use_bias:
            self._in_bias = self.bias
        rk = ir.value_of(self.recurrent_kernel)
        self._rk = {g: ir.apply("slice", [rk], name=f"{self.name}/rk_{g}", axis=1, start=k * u, end=(k + 1) * u).sym
                    for k, g in enumerate(self.gates)} if not self.reset_after else None

    def _input_bias(self):
        return self._in_bias

    def _step(self, p, states):
        (h,) = states
        xg = ops_rnn.gate_blocks(p, self.gates, name=f"{self.name}/xgates")
        if self.reset_after:
            hg = self._recurrent(h, self._rec_bias)
            return [ops_rnn.gru_step(xg, hg, h, self.activation, self.recurrent_activation, True)]
        hg = {g: (_ZERO if h == 0 else ops.matmul(h, self._rk[g])) for g in ("z", "r")}
        hg["h"] = _ZERO
        return [ops_rnn.gru_step(xg, hg, h, self.activation, self.recurrent_activation, False, self._rk["h"])]

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}

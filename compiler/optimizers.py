"""Optimizers: each update rule is an elementwise sympy expression.

A rule is declared over plain symbols: ``param``, ``grad``, the optimizer's slots
(``m``, ``v``, ...), ``learning_rate`` and ``step`` (the 1-based number of the update being
made), plus named per-step scalars shared by every parameter (Adam's bias-corrected
step size). ``build_update`` binds those symbols to IR values and the rule goes through
the same printer as every loss and layer. ``learning_rate`` and ``step`` are graph inputs,
so schedules and callbacks change them without recompiling.

The equations are Keras 3's (``keras/src/optimizers/*.py``), which differ from PyTorch's
in places; each class says where. Shared by all (``keras/src/optimizers/base_optimizer.py``):

- clipping first: ``clipvalue`` clips each element, ``clipnorm`` rescales each gradient to
  an L2 norm of at most ``clipnorm``, ``global_clipnorm`` rescales all gradients together
  by ``c / max(global_norm, c)``; as in Keras only one of the three may be set;
- then decoupled weight decay ``param <- param - learning_rate * weight_decay * param``
  (Keras' ``_apply_weight_decay``; not PyTorch's L2 term added to the gradient), skipped for
  parameters matched by ``exclude_from_weight_decay``;
- then the rule below, with the clipped gradient.
"""
import re

import numpy as np
import sympy

from . import ir, primitives  # noqa: F401  (primitives: registers reduce_sum, argmax...)
from .errors import ParameterError, unknown_name
from .params import check_number, check_choice

PARAM = sympy.Symbol("param", real=True)
GRAD = sympy.Symbol("grad", real=True)
LEARNING_RATE = sympy.Symbol("learning_rate", real=True)
STEP = sympy.Symbol("step", real=True)
_F = sympy.Float


def _sym(name):
    return sympy.Symbol(name, real=True)


class Optimizer:
    """Base class: hyperparameters, clipping, decoupled weight decay and IR emission.

    Subclasses set ``name``, return their slot names from ``slot_names`` and declare
    ``scalars()`` (shared per-step scalars over learning_rate and step) and ``rule()``
    (new param and new slots over param, grad, slots and those scalars)."""

    name = "optimizer"
    default_learning_rate = 0.001

    def __init__(self, learning_rate=None, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None):
        owner = type(self).__name__
        lr = self.default_learning_rate if learning_rate is None else learning_rate
        self.learning_rate = check_number(owner, "learning_rate", lr, "nonnegative")
        self.weight_decay = None if weight_decay is None else check_number(owner, "weight_decay", weight_decay,
                                                                           "nonnegative")
        self.clipnorm = None if clipnorm is None else check_number(owner, "clipnorm", clipnorm, "positive")
        self.clipvalue = None if clipvalue is None else check_number(owner, "clipvalue", clipvalue, "positive")
        self.global_clipnorm = None if global_clipnorm is None else check_number(
            owner, "global_clipnorm", global_clipnorm, "positive")
        set_ = [k for k in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(self, k) is not None]
        if len(set_) > 1:
            raise ParameterError(f"{owner}: only one of clipnorm, clipvalue and global_clipnorm can be set, "
                                 f"got {', '.join(set_)} (as in Keras)")
        self._exclude = ()

    # ------------------------------------------------------------ declaration
    @property
    def slot_names(self):
        return ()

    def slot_initial_value(self, slot):
        """The fill value of a slot at step 0."""
        return 0.0

    def scalars(self):
        """{name: sympy expr over learning_rate and step}, computed once per step."""
        return {}

    def rule(self, s):
        """(new param, {slot: new slot}) as sympy over PARAM, GRAD, slot symbols
        ``s[slot]`` and scalar symbols ``s[scalar]``. As in Keras' in-place assigns, a slot
        symbol means the slot's *updated* value once its own entry came earlier in the
        dict: the param rule always reads the updated slots."""
        raise NotImplementedError

    def symbols(self):
        """Every symbol a rule may use, by name."""
        names = list(self.slot_names) + list(self.scalars())
        return {n: _sym(n) for n in names}

    def update_rule(self):
        """The declared rule with the shared scalars substituted: {"param": expr, slot: expr},
        over param, grad (after clipping), the slots, learning_rate and step; the param rule
        includes the decoupled weight decay when it is on."""
        s = self.symbols()
        new_param, new_slots = self.rule(s)
        env = {s[k]: v for k, v in self.scalars().items()}
        out = {}
        for slot, expr in new_slots.items():
            out[slot] = expr.xreplace(env)
            env[s[slot]] = out[slot]
        if self.weight_decay:
            env[PARAM] = PARAM - LEARNING_RATE * _F(self.weight_decay) * PARAM
        return {"param": new_param.xreplace(env), **out}

    def latex(self):
        rule = self.update_rule()
        lines = [r"%s \leftarrow %s" % (k if k != "param" else r"\theta", sympy.latex(v)) for k, v in rule.items()]
        return r" \\ ".join(lines)

    def exclude_from_weight_decay(self, var_names=None):
        """Regular expressions: parameters whose name matches one skip weight decay (Keras)."""
        self._exclude = tuple(str(n) for n in (var_names or ()))
        return self

    def _decays(self, param_name):
        if not self.weight_decay:
            return False
        return not any(re.search(p, param_name) for p in self._exclude)

    # ------------------------------------------------------------ config
    def get_config(self):
        config = {"name": self.name, "learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
                  "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue}
        config.update(self._config())
        if self._exclude:
            config["exclude_from_weight_decay"] = list(self._exclude)
        return config

    def _config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("name", None)
        exclude = config.pop("exclude_from_weight_decay", None)
        opt = cls(**config)
        return opt.exclude_from_weight_decay(exclude) if exclude else opt

    def __repr__(self):
        items = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name" and v is not None)
        return f"{type(self).__name__}({items})"

    # ------------------------------------------------------------ IR
    def slot_name(self, param_name, slot):
        return f"{self.name}/{slot}/{param_name}"

    def initial_slots(self, params, dtype=np.float32):
        """{slot tensor name: initial array} for [(param name, shape)]."""
        return {self.slot_name(n, s): np.full(tuple(shape), self.slot_initial_value(s), dtype=dtype)
                for n, shape in params for s in self.slot_names}

    def build_update(self, params, grads, slots, learning_rate, step, scope=None):
        """IR of one update.

        params: [(name, Value)]; grads: [Value] in the same order; slots: {slot tensor name:
        Value}; learning_rate, step: scalar Values. Returns ([new param Value], {slot tensor
        name: new slot Value})."""
        scope = scope or self.name
        s = self.symbols()
        env = {LEARNING_RATE: learning_rate.sym, STEP: step.sym}
        for key, expr in self.scalars().items():
            env[s[key]] = ir.elementwise(expr.xreplace(env), name=f"{scope}/{key}").sym
        grads = self._clip([g for g in grads], scope)
        new_params, new_slots = [], {}
        for (pname, pval), g in zip(params, grads):
            local = dict(env)
            local[PARAM], local[GRAD] = pval.sym, g
            for slot in self.slot_names:
                local[s[slot]] = slots[self.slot_name(pname, slot)].sym
            new_param, slot_exprs = self.rule(s)
            for slot, expr in slot_exprs.items():
                v = ir.elementwise(expr.xreplace(local), name=f"{scope}/{slot}")
                new_slots[self.slot_name(pname, slot)] = v
                local[s[slot]] = v.sym     # later entries read the updated slot (see rule)
            if self._decays(pname):
                local[PARAM] = pval.sym - learning_rate.sym * _F(self.weight_decay) * pval.sym
            new = ir.elementwise(new_param.xreplace(local), name=f"{scope}/{pname}")
            if tuple(new.shape) != tuple(pval.shape):  # a rule that ignores param (never here) or broadcasts
                new = ir.apply("expand_like", [new, pval], name=f"{scope}/{pname}")
            new_params.append(new)
        return new_params, new_slots

    def _clip(self, grads, scope):
        """Clipped gradients as sympy expressions over value symbols."""
        if self.clipvalue is not None:
            c = _F(self.clipvalue)
            return [sympy.Min(sympy.Max(g.sym, -c), c) for g in grads]
        if self.clipnorm is not None:
            c = _F(self.clipnorm)
            out = []
            for g in grads:
                sq = ir.apply("reduce_sum", [ir.elementwise(g.sym ** 2, name=f"{scope}/clip")],
                              name=f"{scope}/clip/sum", keepdims=False)
                out.append(g.sym * c / sympy.Max(sympy.sqrt(sq.sym), c))
            return out
        if self.global_clipnorm is not None:
            c = _F(self.global_clipnorm)
            total = sympy.S.Zero
            for g in grads:
                total += ir.apply("reduce_sum", [ir.elementwise(g.sym ** 2, name=f"{scope}/clip")],
                                  name=f"{scope}/clip/sum", keepdims=False).sym
            scale = ir.elementwise(c / sympy.Max(sympy.sqrt(total), c), name=f"{scope}/clip/scale")
            return [g.sym * scale.sym for g in grads]
        return [g.sym for g in grads]


class SGD(Optimizer):
    """Keras SGD: velocity = momentum * velocity - learning_rate * grad; param += velocity
    (Nesterov: param += momentum * velocity - learning_rate * grad). The learning rate sits
    inside the velocity, unlike PyTorch's buffer = momentum * buffer + grad."""

    name = "sgd"
    default_learning_rate = 0.01

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = check_number("SGD", "momentum", momentum, "halfopen_unit")
        self.nesterov = bool(check_choice("SGD", "nesterov", nesterov, (True, False)))

    @property
    def slot_names(self):
        return ("momentum",) if self.momentum else ()

    def rule(self, s):
        if not self.momentum:
            return PARAM - LEARNING_RATE * GRAD, {}
        mu = _F(self.momentum)
        velocity = mu * s["momentum"] - LEARNING_RATE * GRAD
        if self.nesterov:
            return PARAM + mu * s["momentum"] - LEARNING_RATE * GRAD, {"momentum": velocity}
        return PARAM + s["momentum"], {"momentum": velocity}

    def _config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras Adam: m += (grad - m)(1 - beta_1); v += (grad^2 - v)(1 - beta_2);
    param -= alpha * m / (sqrt(v) + epsilon) with alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t).
    epsilon is added to the uncorrected sqrt(v) (the paper's epsilon-hat), not to
    sqrt(v_hat) as PyTorch does; Keras' default epsilon is 1e-7 (PyTorch: 1e-8)."""

    name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = check_number(owner, "beta_1", beta_1, "halfopen_unit")
        self.beta_2 = check_number(owner, "beta_2", beta_2, "halfopen_unit")
        self.epsilon = check_number(owner, "epsilon", epsilon, "positive")
        self.amsgrad = bool(check_choice(owner, "amsgrad", amsgrad, (True, False)))

    @property
    def slot_names(self):
        return ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def scalars(self):
        b1, b2 = _F(self.beta_1), _F(self.beta_2)
        return {"alpha": LEARNING_RATE * sympy.sqrt(1 - b2 ** STEP) / (1 - b1 ** STEP)}

    def rule(self, s):
        b1, b2 = _F(self.beta_1), _F(self.beta_2)
        m, v = s["m"], s["v"]
        slots = {"m": m + (GRAD - m) * (1 - b1), "v": v + (GRAD ** 2 - v) * (1 - b2)}
        denom_of = v
        if self.amsgrad:
            slots["v_hat"] = sympy.Max(s["v_hat"], v)   # reads the new v (rebound in build_update)
            denom_of = s["v_hat"]
        return PARAM - s["alpha"] * m / (sympy.sqrt(denom_of) + _F(self.epsilon)), slots

    def _config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay on by default: weight_decay=0.004 as in Keras
    (PyTorch's AdamW defaults to 0.01; pass weight_decay=0.01 to match it)."""

    name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        if weight_decay is None:
            raise ParameterError("AdamW: parameter 'weight_decay' must be a number >= 0, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """Keras RMSprop: v = rho v + (1 - rho) grad^2; centered: a = rho a + (1 - rho) grad and
    v - a^2 in the denominator; increment = lr grad / sqrt(v + epsilon) (epsilon inside the
    root, PyTorch adds it outside); momentum: m = momentum m + increment, param -= m."""

    name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = check_number("RMSprop", "rho", rho, "halfopen_unit")
        self.momentum = check_number("RMSprop", "momentum", momentum, "halfopen_unit")
        self.epsilon = check_number("RMSprop", "epsilon", epsilon, "positive")
        self.centered = bool(check_choice("RMSprop", "centered", centered, (True, False)))

    @property
    def slot_names(self):
        return ("velocity",) + (("momentum",) if self.momentum else ()) + (
            ("average_gradient",) if self.centered else ())

    def rule(self, s):
        rho = _F(self.rho)
        v = s["velocity"]
        slots = {"velocity": rho * v + (1 - rho) * GRAD ** 2}
        denom = v + _F(self.epsilon)
        if self.centered:
            a = s["average_gradient"]
            slots["average_gradient"] = rho * a + (1 - rho) * GRAD
            denom = v - a ** 2 + _F(self.epsilon)
        increment = LEARNING_RATE * GRAD / sympy.sqrt(denom)
        if self.momentum:
            slots["momentum"] = _F(self.momentum) * s["momentum"] + increment
            return PARAM - s["momentum"], slots
        return PARAM - increment, slots

    def _config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Keras Adagrad: accumulator += grad^2 (starting at initial_accumulator_value=0.1);
    param -= lr grad / sqrt(accumulator + epsilon) (PyTorch: starts at 0, epsilon outside)."""

    name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = check_number("Adagrad", "initial_accumulator_value",
                                                      initial_accumulator_value, "nonnegative")
        self.epsilon = check_number("Adagrad", "epsilon", epsilon, "positive")

    @property
    def slot_names(self):
        return ("accumulator",)

    def slot_initial_value(self, slot):
        return self.initial_accumulator_value

    def rule(self, s):
        acc = s["accumulator"] + GRAD ** 2
        return (PARAM - LEARNING_RATE * GRAD / sympy.sqrt(s["accumulator"] + _F(self.epsilon)),
                {"accumulator": acc})

    def _config(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)}


def names():
    return sorted(OPTIMIZERS)


def get(identifier, **kwargs):
    """An Optimizer from an instance, a name ('adam', 'sgd', ...) or a get_config() dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        key = str(config.get("name", "")).lower()
        if key not in OPTIMIZERS:
            raise unknown_name("optimizer", key, OPTIMIZERS)
        return OPTIMIZERS[key].from_config(config)
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in OPTIMIZERS:
            raise unknown_name("optimizer", identifier, OPTIMIZERS)
        return OPTIMIZERS[key](**kwargs)
    raise ParameterError(f"optimizer must be an Optimizer, a name ({', '.join(names())}) or a config dict, "
                         f"got {identifier!r}")

"""Each optimizer's emitted update graph against its published (Keras 3) update equations,
written out in NumPy here, over several steps with a changing learning rate."""
import numpy as np
import pytest
import sympy

from symgrad.compiler import ir, optimizers
from symgrad.compiler.emit import OnnxBuilder, emit_values, make_model, check
from symgrad.compiler.errors import ParameterError, UnknownNameError

from oracle import run

SHAPES = {"dense/kernel": (3, 4), "dense/bias": (4,)}
STEPS = 4


def emit_update(opt, dtype="float64", opset=17):
    """The update graph of ``opt`` for the parameters in SHAPES: inputs params, grad/<p>,
    slots, learning_rate, step; outputs next/<p> and next/<slot>."""
    b = OnnxBuilder(opset, dtype)
    params = [(n, ir.param_value(n, s)) for n, s in SHAPES.items()]
    grads = [ir.input_value(f"grad/{n}", s) for n, s in SHAPES.items()]
    slots = {name: ir.input_value(name, arr.shape) for name, arr in opt.initial_slots(SHAPES.items()).items()}
    lr, step = ir.input_value("learning_rate", ()), ir.input_value("step", ())
    new_params, new_slots = opt.build_update(params, grads, slots, lr, step)
    inputs = [(n, v) for n, v in params] + [(v.name, v) for v in grads] + list(slots.items())
    inputs += [("learning_rate", lr), ("step", step)]
    names = {v.id: b.reserve(n) for n, v in inputs}
    outputs = [(f"next/{n}", v) for (n, _), v in zip(params, new_params)]
    outputs += [(f"next/{n}", v) for n, v in new_slots.items()]
    for n, _ in outputs:
        b.reserve(n)
    for (n, v), src in zip(outputs, emit_values(b, [v for _, v in outputs], names)):
        b.alias(src, n)
    model = make_model(b, [(n, v.shape) for n, v in inputs], [(n, v.shape) for n, v in outputs], "update")
    return check(model)


# ------------------------------------------------------------------ NumPy references (Keras 3)

def clip(grads, cfg):
    if cfg.get("clipvalue"):
        return {k: np.clip(g, -cfg["clipvalue"], cfg["clipvalue"]) for k, g in grads.items()}
    if cfg.get("clipnorm"):
        c = cfg["clipnorm"]
        return {k: g * c / max(np.linalg.norm(g), c) for k, g in grads.items()}
    if cfg.get("global_clipnorm"):
        c = cfg["global_clipnorm"]
        norm = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
        return {k: g * c / max(norm, c) for k, g in grads.items()}
    return grads


def reference_step(kind, cfg, p, g, s, lr, t):
    """One Keras update of param p with (clipped) grad g and slots s (updated in place)."""
    if cfg.get("weight_decay"):
        p = p - p * cfg["weight_decay"] * lr
    if kind == "sgd":
        mu = cfg.get("momentum", 0.0)
        if not mu:
            return p - lr * g
        s["momentum"] = mu * s["momentum"] - lr * g
        if cfg.get("nesterov"):
            return p + mu * s["momentum"] - lr * g
        return p + s["momentum"]
    if kind in ("adam", "adamw"):
        b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), cfg.get("epsilon", 1e-7)
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        s["m"] = s["m"] + (g - s["m"]) * (1 - b1)
        s["v"] = s["v"] + (g * g - s["v"]) * (1 - b2)
        v = s["v"]
        if cfg.get("amsgrad"):
            s["v_hat"] = np.maximum(s["v_hat"], s["v"])
            v = s["v_hat"]
        return p - s["m"] * alpha / (np.sqrt(v) + eps)
    if kind == "rmsprop":
        rho, mu, eps = cfg.get("rho", 0.9), cfg.get("momentum", 0.0), cfg.get("epsilon", 1e-7)
        s["velocity"] = rho * s["velocity"] + (1 - rho) * g * g
        if cfg.get("centered"):
            s["average_gradient"] = rho * s["average_gradient"] + (1 - rho) * g
            denom = s["velocity"] - s["average_gradient"] ** 2 + eps
        else:
            denom = s["velocity"] + eps
        inc = lr * g / np.sqrt(denom)
        if mu:
            s["momentum"] = mu * s["momentum"] + inc
            return p - s["momentum"]
        return p - inc
    if kind == "adagrad":
        s["accumulator"] = s["accumulator"] + g * g
        return p - lr * g / np.sqrt(s["accumulator"] + cfg.get("epsilon", 1e-7))
    raise AssertionError(kind)


CASES = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    ("sgd", {"global_clipnorm": 0.5}),
    ("adam", {}),
    ("adam", {"beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-3, "amsgrad": True}),
    ("adam", {"clipnorm": 0.3}),
    ("adamw", {}),
    ("adamw", {"weight_decay": 0.1, "global_clipnorm": 1.0}),
    ("rmsprop", {}),
    ("rmsprop", {"rho": 0.8, "momentum": 0.5, "centered": True, "clipvalue": 0.4}),
    ("adagrad", {}),
    ("adagrad", {"initial_accumulator_value": 0.5, "epsilon": 1e-4, "weight_decay": 0.2}),
]


def initial_slots(kind, cfg, shape):
    names = {"sgd": ["momentum"] if cfg.get("momentum") else [],
             "adam": ["m", "v"] + (["v_hat"] if cfg.get("amsgrad") else []),
             "rmsprop": ["velocity"] + (["momentum"] if cfg.get("momentum") else [])
             + (["average_gradient"] if cfg.get("centered") else []),
             "adagrad": ["accumulator"]}[kind if kind != "adamw" else "adam"]
    fill = cfg.get("initial_accumulator_value", 0.1) if kind == "adagrad" else 0.0
    return {n: np.full(shape, fill) for n in names}


@pytest.mark.parametrize("kind,cfg", CASES, ids=[f"{k}-{'-'.join(c) or 'default'}" for k, c in CASES])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_update_graph_matches_keras_equations(kind, cfg, dtype):
    opt = optimizers.get(kind, learning_rate=0.1, **cfg) if kind != "adamw" else optimizers.AdamW(**cfg)
    model = emit_update(opt, dtype)
    rng = np.random.default_rng(0)
    np_dtype = np.dtype(dtype)
    params = {n: rng.normal(size=s) for n, s in SHAPES.items()}
    ref_params = {n: p.copy() for n, p in params.items()}
    slots = opt.initial_slots(SHAPES.items(), dtype=np_dtype)
    ref_slots = {n: initial_slots(kind, cfg, s) for n, s in SHAPES.items()}
    # the slot layout is the one the optimizer declares, values as Keras initialises them
    for n in SHAPES:
        for slot, arr in ref_slots[n].items():
            np.testing.assert_array_equal(slots[opt.slot_name(n, slot)], arr.astype(np_dtype))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    for t in range(1, STEPS + 1):
        lr = 0.1 / t                      # a schedule: fed as an input, no recompiling
        grads = {n: rng.normal(size=s) * 2 for n, s in SHAPES.items()}
        feeds = {n: p.astype(np_dtype) for n, p in params.items()}
        feeds.update({f"grad/{n}": g.astype(np_dtype) for n, g in grads.items()})
        feeds.update(slots)
        feeds.update(learning_rate=np.array(lr, np_dtype), step=np.array(t, np_dtype))
        out = run(model, **feeds)
        clipped = clip(grads, cfg)
        for n in SHAPES:
            ref_params[n] = reference_step(kind, {**opt.get_config(), **cfg}, ref_params[n], clipped[n],
                                           ref_slots[n], lr, t)
            np.testing.assert_allclose(out[f"next/{n}"], ref_params[n], **tol)
            for slot, arr in ref_slots[n].items():
                np.testing.assert_allclose(out[f"next/{opt.slot_name(n, slot)}"], arr, **tol)
        params = {n: out[f"next/{n}"].astype(np.float64) for n in SHAPES}
        slots = {k: out[f"next/{k}"] for k in slots}


def test_step_changes_adam_bias_correction():
    # the same state at step 1 and step 10 gives different updates: step is live
    opt = optimizers.Adam(0.1)
    model = emit_update(opt)
    feeds = {n: np.ones(s) for n, s in SHAPES.items()}
    feeds.update({f"grad/{n}": np.full(s, 0.5) for n, s in SHAPES.items()})
    feeds.update(opt.initial_slots(SHAPES.items(), dtype=np.float64))
    a = run(model, **feeds, learning_rate=np.array(0.1), step=np.array(1.0))["next/dense/bias"]
    b = run(model, **feeds, learning_rate=np.array(0.1), step=np.array(10.0))["next/dense/bias"]
    # step 1: m = 0.05, v = 0.00025, alpha = 0.1 sqrt(0.001)/0.1: update 0.1 * 0.05/0.0158.. ~= 0.1
    np.testing.assert_allclose(a, 1 - 0.1 * np.sqrt(1 - 0.999) / 0.1 * 0.05 / (np.sqrt(0.00025) + 1e-7))
    assert not np.allclose(a, b)


def test_weight_decay_exclusion():
    opt = optimizers.SGD(0.1, weight_decay=0.5).exclude_from_weight_decay(["bias"])
    model = emit_update(opt)
    feeds = {n: np.ones(s) for n, s in SHAPES.items()}
    feeds.update({f"grad/{n}": np.zeros(s) for n, s in SHAPES.items()})
    out = run(model, **feeds, learning_rate=np.array(0.1), step=np.array(1.0))
    np.testing.assert_allclose(out["next/dense/kernel"], 1 - 0.1 * 0.5)   # decayed
    np.testing.assert_allclose(out["next/dense/bias"], 1.0)              # excluded
    assert opt.get_config()["exclude_from_weight_decay"] == ["bias"]


@pytest.mark.parametrize("opset", [13, 21])
def test_update_graph_passes_checker_at_opsets(opset):
    for name in optimizers.names():
        check(emit_update(optimizers.get(name), "float32", opset))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_declared_rule_is_the_keras_equation(name):
    # the sympy declaration itself (what the printer emits) evaluated at random numbers
    opt = optimizers.get(name, learning_rate=0.05)
    rule = opt.update_rule()
    rng = np.random.default_rng(1)
    p, g = rng.normal(size=5), rng.normal(size=5)
    slots = {k: np.abs(rng.normal(size=5)) for k in opt.slot_names}
    env = {"param": p, "grad": g, "learning_rate": 0.05, "step": 3.0, **slots}
    symbols = sorted(set().union(*[e.free_symbols for e in rule.values()]), key=str)
    for key, expr in rule.items():
        f = sympy.lambdify(symbols, expr, "numpy")
        got = f(*[env[s.name] for s in symbols])
        ref_slots = {k: v.copy() for k, v in slots.items()}
        new_p = reference_step(name, opt.get_config(), p, g, ref_slots, 0.05, 3.0)
        want = new_p if key == "param" else ref_slots[key]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_config_round_trip_and_get():
    for opt in [optimizers.SGD(0.2, momentum=0.5, nesterov=True, clipnorm=1.0),
                optimizers.Adam(3e-4, beta_2=0.98, amsgrad=True, global_clipnorm=2.0),
                optimizers.AdamW(weight_decay=0.01), optimizers.RMSprop(centered=True, momentum=0.1),
                optimizers.Adagrad(initial_accumulator_value=0.0, clipvalue=0.5)]:
        config = opt.get_config()
        again = optimizers.get(config)
        assert type(again) is type(opt) and again.get_config() == config
    assert optimizers.AdamW().weight_decay == 0.004            # Keras' default
    assert optimizers.get("ADAM", learning_rate=0.01).learning_rate == 0.01
    assert optimizers.SGD().learning_rate == 0.01 and optimizers.Adam().epsilon == 1e-7


def test_bad_optimizer_arguments_raise_clear_errors():
    with pytest.raises(ParameterError, match="learning_rate"):
        optimizers.Adam(-1.0)
    with pytest.raises(ParameterError, match="beta_1"):
        optimizers.Adam(beta_1=1.0)
    with pytest.raises(ParameterError, match="only one of clipnorm, clipvalue and global_clipnorm"):
        optimizers.SGD(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ParameterError, match="momentum"):
        optimizers.SGD(momentum="high")
    with pytest.raises(UnknownNameError, match="'adam'"):
        optimizers.get("addam")
    with pytest.raises(ParameterError, match="optimizer must be"):
        optimizers.get(3)

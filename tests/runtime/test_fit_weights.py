"""class_weight and sample_weight in fit/evaluate on a program compiled without sample weights:
the same numbers as a program compiled with them, and unweighted batches keep the lean graphs."""
import numpy as np
import pytest

from symgrad.compiler import ParameterError, Sequential, compile_model, layers
from symgrad.runtime import Trainer


def program(sample_weight=False):
    model = Sequential([layers.Dense(6, activation="relu"), layers.Dense(3)], input_shape=(4,), seed=0)
    return compile_model(model, "sparse_categorical_crossentropy", "sgd", metrics=["accuracy"],
                         sample_weight=sample_weight, dtype="float64")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4))
    y = rng.integers(0, 3, 40).astype(np.int64)
    return x, y, rng.uniform(0.1, 2.0, 40)


@pytest.fixture(scope="module")
def programs():
    return program(False), program(True)


def _fit(prog, x, y, **kw):
    tr = Trainer(prog, seed=0)
    hist = tr.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0, **kw)
    return tr, hist


@pytest.mark.parametrize("kind", ["sample_weight", "class_weight", "both"])
def test_weights_without_recompiling_match_a_weighted_program(programs, data, kind):
    x, y, sw = data
    cw = {0: 0.5, 1: 2.0, 2: 1.5}
    kw = {"sample_weight": sw} if kind == "sample_weight" else {"class_weight": cw} if kind == "class_weight" \
        else {"sample_weight": sw, "class_weight": cw}
    plain, weighted = programs
    tr_a, hist_a = _fit(plain, x, y, **kw)
    tr_b, hist_b = _fit(weighted, x, y, **kw)
    np.testing.assert_allclose(hist_a.history["loss"], hist_b.history["loss"], rtol=1e-12)
    for a, b in zip(tr_a.get_weights(), tr_b.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert "train_step_weighted" in tr_a._plans and "train_step" not in tr_a._plans
    assert tr_a.evaluate(x, y, sample_weight=sw, verbose=0) == pytest.approx(
        tr_b.evaluate(x, y, sample_weight=sw, verbose=0), rel=1e-12)


def test_unweighted_batches_use_the_lean_graphs(programs, data):
    x, y, _ = data
    plain, weighted = programs
    assert "sample_weight" not in [i.name for i in plain.graphs["train_step"].graph.input]
    tr, hist = _fit(plain, x, y)
    assert "train_step" in tr._plans and "train_step_weighted" not in tr._plans
    tr_b, hist_b = _fit(weighted, x, y)              # all-ones weights: the same training
    np.testing.assert_allclose(hist.history["loss"], hist_b.history["loss"], rtol=1e-12)
    bundle = plain.bundle()
    assert bundle.manifest["data"]["sample_weight"]["optional"] is True
    assert "sample_weight" not in plain.manifest["data"]       # the compiled program itself is unchanged


def test_weighted_batches_from_an_iterable_and_train_on_batch(programs, data):
    x, y, sw = data
    plain, weighted = programs
    batches = [(x[i:i + 10], y[i:i + 10], sw[i:i + 10]) for i in range(0, 40, 10)]
    tr_a, tr_b = Trainer(plain, seed=0), Trainer(weighted, seed=0)
    tr_a.fit(batches, epochs=1, verbose=0)
    tr_b.fit(batches, epochs=1, verbose=0)
    for a, b in zip(tr_a.get_weights(), tr_b.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert tr_a.train_on_batch(x[:8], y[:8], sample_weight=sw[:8]) == pytest.approx(
        tr_b.train_on_batch(x[:8], y[:8], sample_weight=sw[:8]), rel=1e-12)


def test_class_weight_is_still_validated(programs, data):
    x, y, _ = data
    with pytest.raises(ParameterError, match="class_weight"):
        Trainer(programs[0]).fit(x, y, class_weight={0: -1.0}, verbose=0)


def test_time_step_weights_shaped_n_t():
    """compile_model(sample_weight=(None, T)): each time step of a sequence has its own weight,
    Keras' sum_over_batch_size: sum(w * L) / numel(L)."""
    rng = np.random.default_rng(3)
    T = 5
    model = Sequential([layers.Dense(2)], input_shape=(T, 3), seed=0)
    prog = compile_model(model, "mse", "sgd", sample_weight=(None, T), dtype="float64")
    assert prog.manifest["data"]["sample_weight"]["shape"] == ["N", T]
    x, y = rng.normal(size=(8, T, 3)), rng.normal(size=(8, T, 2))
    w = rng.uniform(size=(8, T)) * (rng.uniform(size=(8, T)) > 0.3)
    tr = Trainer(prog)
    got = tr.evaluate(x, y, sample_weight=w, batch_size=3, verbose=0)
    per = ((tr.predict(x, verbose=0) - y) ** 2).mean(-1)           # (N, T)
    assert got == pytest.approx((per * w).sum() / per.size, rel=1e-10)
    hist = tr.fit(x, y, sample_weight=w, epochs=3, batch_size=4, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_saved_bundle_with_variants_and_epoch_metrics_loads_and_trains(tmp_path, data):
    """Bundle.load's checks accept the weighted variants and the state/ outputs of epoch metrics."""
    from symgrad.compiler.metrics_stateful import MeanIoU
    x, y, sw = data
    model = Sequential([layers.Dense(3)], input_shape=(4,), seed=0)
    prog = compile_model(model, "sparse_categorical_crossentropy", "sgd", metrics=[MeanIoU(num_classes=3)])
    tr = Trainer.load(prog.save(tmp_path / "bundle"))
    hist = tr.fit(x.astype(np.float32), y, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, epochs=1, verbose=0)
    assert "train_step_weighted" in tr._plans and 0 <= hist.history["mean_iou"][0] <= 1


def test_steps_per_execution_with_weights_and_epoch_metrics(data):
    """A train_loop program: weighted batches and epoch metrics fall back to single steps
    (the train_loop has neither), with the same numbers as a program without train_loop."""
    from symgrad.compiler.metrics_stateful import MeanIoU
    x, y, sw = data

    def build(k):
        model = Sequential([layers.Dense(3)], input_shape=(4,), seed=0)
        return compile_model(model, "sparse_categorical_crossentropy", "sgd", dtype="float64",
                             metrics=[MeanIoU(num_classes=3)], steps_per_execution=k)
    a, b = Trainer(build(2), seed=0), Trainer(build(1), seed=0)
    ha = a.fit(x, y, sample_weight=sw, epochs=2, batch_size=8, shuffle=False, verbose=0)
    hb = b.fit(x, y, sample_weight=sw, epochs=2, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-12)
    np.testing.assert_allclose(ha.history["mean_iou"], hb.history["mean_iou"], rtol=1e-12)

"""Trainer.fit/evaluate/predict/train_on_batch against a NumPy float64 reference of the
same model written in handmade.py (not the code under test)."""
import numpy as np
import onnxruntime as ort
import pytest

from handmade import make_bundle, numpy_forward, numpy_step, toy_data
from symgrad.runtime import Trainer, callbacks

SLOT_PREFIXES = ("adam/", "sgd/")


def split_state(state):
    w = {k: np.asarray(v, np.float64) for k, v in state.items() if not k.startswith(SLOT_PREFIXES)}
    s = {k: np.asarray(v, np.float64) for k, v in state.items() if k.startswith(SLOT_PREFIXES)}
    return w, s


def reference_fit(bundle, x, y, sw, epochs, batch_size, lr, optimizer, lr_at=None):
    """Unshuffled mini-batch training in NumPy; lr_at(step) may change the rate."""
    w, s = split_state(bundle.state)
    step, losses = 0, []
    for _ in range(epochs):
        epoch = []
        for lo in range(0, len(x), batch_size):
            step += 1
            rate = lr_at(step) if lr_at else lr
            sl = slice(lo, lo + batch_size)
            loss, w, s = numpy_step(w, s, x[sl].astype(np.float64), y[sl], None if sw is None else sw[sl],
                                    rate, step, optimizer)
            epoch.append((loss, len(x[sl])))
        losses.append(sum(l * n for l, n in epoch) / sum(n for _, n in epoch))
    return w, s, losses


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_fit_matches_numpy_reference(optimizer):
    x, y = toy_data(50)
    sw = np.linspace(0.2, 1.8, 50)
    b = make_bundle(optimizer=optimizer, learning_rate=0.05)
    tr = Trainer(b, seed=0)
    hist = tr.fit(x, y, epochs=3, batch_size=16, shuffle=False, sample_weight=sw, verbose=0)
    w, s, losses = reference_fit(b, x, y, sw, 3, 16, 0.05, optimizer)
    state = tr.state_dict()
    for k, v in {**w, **s}.items():
        np.testing.assert_allclose(state[k], v, rtol=2e-4, atol=2e-6, err_msg=k)
    np.testing.assert_allclose(hist.history["loss"], losses, rtol=1e-5)
    assert tr.step == 3 * 4


def test_evaluate_and_predict_match_numpy(toy):
    x, y = toy
    b = make_bundle()
    tr = Trainer(b)
    w, _ = split_state(b.state)
    logits = numpy_forward(w, x.astype(np.float64))[-1]
    np.testing.assert_allclose(tr.predict(x, batch_size=7, verbose=0), logits, rtol=1e-5, atol=1e-5)
    m = logits.max(1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(1, keepdims=True)))[:, 0]
    loss = np.mean(lse - logits[np.arange(len(y)), y])
    acc = np.mean(logits.argmax(1) == y)
    got = tr.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    assert got["loss"] == pytest.approx(loss, rel=1e-5)
    assert got["accuracy"] == pytest.approx(acc)
    assert tr.evaluate(x, y, verbose=0) == [pytest.approx(loss, rel=1e-5), pytest.approx(acc)]
    np.testing.assert_allclose(tr.predict_on_batch(x[:5]), logits[:5], rtol=1e-5, atol=1e-5)


def test_train_on_batch_is_one_step(toy):
    x, y = toy
    b = make_bundle(optimizer="adam", learning_rate=0.01)
    tr = Trainer(b)
    w, s = split_state(b.state)
    for step in (1, 2):
        loss, w, s = numpy_step(w, s, x[:10].astype(np.float64), y[:10], None, 0.01, step, "adam")
        got = tr.train_on_batch(x[:10], y[:10], return_dict=True)
        assert got["loss"] == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(tr.state_dict()["dense/kernel"], w["dense/kernel"], rtol=1e-4, atol=1e-6)
    assert tr.test_on_batch(x[:10], y[:10])[0] < loss


def test_learning_rate_change_takes_effect_without_recompiling(toy):
    x, y = toy_data(48)
    b = make_bundle(learning_rate=0.1)
    tr = Trainer(b)
    sessions = {}

    def halve(epoch, logs):
        sessions.setdefault("before", dict(tr._graphs))
        tr.learning_rate = 0.1 / (epoch + 1)

    tr.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0,
           callbacks=[callbacks.LambdaCallback(on_epoch_begin=halve)])
    assert tr.learning_rate == pytest.approx(0.1 / 3)
    assert tr._graphs["train_step"] is sessions["before"]["train_step"]   # the same session: no recompiling
    w, _, _ = reference_fit(b, x, y, None, 3, 16, None, "sgd", lr_at=lambda step: 0.1 / ((step - 1) // 3 + 1))
    w_const, _, _ = reference_fit(b, x, y, None, 3, 16, 0.1, "sgd")
    got = tr.state_dict()["dense/kernel"]
    np.testing.assert_allclose(got, w["dense/kernel"], rtol=2e-4, atol=2e-6)
    assert np.abs(got - w_const["dense/kernel"]).max() > 1e-3
    tr.optimizer.learning_rate = 0.5                         # Keras spelling
    assert tr.learning_rate == 0.5 and tr._hyper_np["learning_rate"] == np.float32(0.5)


def test_state_never_goes_through_numpy_on_a_step(toy, monkeypatch):
    x, y = toy
    tr = Trainer(make_bundle(optimizer="adam", dropout=0.3))
    tr.fit(x, y, epochs=1, batch_size=8, verbose=0)            # sessions and plans exist
    calls = []
    real = ort.OrtValue.numpy
    monkeypatch.setattr(ort.OrtValue, "numpy", lambda self: calls.append(1) or real(self))
    tr.fit(x, y, epochs=2, batch_size=8, verbose=0, validation_data=(x, y))
    assert calls == []
    tr.get_weights()
    assert len(calls) == len(tr.weight_names)


def test_seed_makes_shuffling_and_dropout_reproducible(toy):
    x, y = toy

    def run(seed):
        tr = Trainer(make_bundle(optimizer="adam", dropout=0.5, learning_rate=0.01), seed=seed)
        h = tr.fit(x, y, epochs=2, batch_size=8, shuffle=True, verbose=0)
        return tr.state_dict(), h.history["loss"]

    a, la = run(7)
    b, lb = run(7)
    c, lc = run(8)
    assert all(np.array_equal(a[k], b[k]) for k in a) and la == lb
    assert not np.array_equal(a["dense/kernel"], c["dense/kernel"])


def test_dropout_noise_is_fed_from_the_seeded_generator():
    x, y = toy_data(8)
    b = make_bundle(optimizer="sgd", dropout=0.5, learning_rate=0.1, with_state=False)
    tr = Trainer(b, seed=3)
    tr.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    noise = np.random.default_rng(3).random((8, 8), dtype=np.float32)   # what the trainer must have drawn
    w, s = split_state(b.state)
    _, w, _ = numpy_step(w, s, x.astype(np.float64), y, None, 0.1, 1, "sgd", noise=noise, dropout=0.5)
    np.testing.assert_allclose(tr.state_dict()["dense/kernel"], w["dense/kernel"], rtol=1e-4, atol=1e-6)


def test_weights_in_keras_layer_order_and_set_weights(toy):
    tr = Trainer(make_bundle())
    assert tr.weight_names == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias", "stats/mean"]
    ws = tr.get_weights()
    new = [np.full_like(w, 0.25 * (i + 1)) for i, w in enumerate(ws)]
    tr.set_weights(new)
    assert all(np.array_equal(a, b) for a, b in zip(tr.get_weights(), new))
    ws[0][:] = 99          # get_weights returns copies
    assert tr.get_weights()[0][0, 0] == 0.25


def test_split_mode_gives_the_callbacks_the_gradients(toy):
    x, y = toy_data(32)
    b = make_bundle(optimizer="momentum", learning_rate=0.05)
    fused = Trainer(b)
    fused.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    seen = []

    class Grads(callbacks.Callback):
        def on_after_backward(self, batch, logs=None):
            seen.append((batch, self.trainer.get_gradients(), logs["loss"]))

    split = Trainer(b)
    split.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0, callbacks=[Grads()])
    assert "gradients" in split._graphs and "train_step" not in split._graphs
    for k, v in fused.state_dict().items():
        np.testing.assert_allclose(split.state_dict()[k], v, rtol=1e-5, atol=1e-7, err_msg=k)
    # the first batch's gradient against the NumPy backward pass
    w, s = split_state(b.state)
    z1, a, h, _, logits = numpy_forward(w, x[:16].astype(np.float64))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dl = (p - np.eye(3)[y[:16]]) / 16
    np.testing.assert_allclose(seen[0][1]["dense_1/kernel"], h.T @ dl, rtol=1e-4, atol=1e-6)
    assert [b for b, _, _ in seen] == [0, 1, 0, 1]


def test_set_gradients_before_the_update(toy):
    x, y = toy
    b = make_bundle(learning_rate=0.1)

    class Zero(callbacks.Callback):
        def on_before_optimizer_step(self, batch, logs=None):
            self.trainer.set_gradients({k: np.zeros_like(v) for k, v in self.trainer.get_gradients().items()})

    tr = Trainer(b)
    before = tr.get_weights()
    tr.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[Zero()])
    after = tr.get_weights()
    assert all(np.array_equal(p, q) for p, q in zip(before[:4], after[:4]))      # parameters did not move
    assert not np.array_equal(before[4], after[4])                                # the running mean did


def test_iterable_of_batches_and_one_shot_generators(toy):
    x, y = toy
    b = make_bundle()
    arrays = Trainer(b)
    arrays.fit(x, y, epochs=2, batch_size=20, shuffle=False, verbose=0)
    batches = [(x[i:i + 20], y[i:i + 20]) for i in range(0, 60, 20)]
    it = Trainer(b)
    h = it.fit(batches, epochs=2, verbose=0, validation_data=batches)
    for k, v in arrays.state_dict().items():
        np.testing.assert_array_equal(it.state_dict()[k], v)
    assert len(h.history["val_loss"]) == 2
    gen = Trainer(b)
    gen.fit((batch for batch in batches * 2), epochs=2, steps_per_epoch=3, verbose=0)
    for k, v in arrays.state_dict().items():
        np.testing.assert_array_equal(gen.state_dict()[k], v)
    pred = it.predict(iter([x[:10], x[10:25]]), verbose=0)
    np.testing.assert_allclose(pred, it.predict(x[:25], verbose=0), rtol=1e-6)


def test_validation_split_uses_the_last_samples(toy):
    x, y = toy
    tr = Trainer(make_bundle())
    h = tr.fit(x, y, epochs=1, batch_size=10, validation_split=0.25, verbose=0, shuffle=False)
    ref = Trainer(make_bundle())
    ref.fit(x[:45], y[:45], epochs=1, batch_size=10, verbose=0, shuffle=False)
    assert h.history["val_loss"][0] == pytest.approx(ref.evaluate(x[45:], y[45:], verbose=0)[0], rel=1e-6)


def test_steps_per_epoch_over_a_reiterable_wraps_around(toy):
    x, y = toy
    batches = [(x[i:i + 20], y[i:i + 20]) for i in range(0, 60, 20)]
    tr = Trainer(make_bundle())
    seen = []
    cb = callbacks.LambdaCallback(on_train_batch_begin=lambda b, logs: seen.append(b))
    h = tr.fit(batches, epochs=3, steps_per_epoch=2, verbose=0, callbacks=[cb])
    # 2 batches per epoch, continuing through the list and starting it again when it runs out
    assert tr.step == 6 and seen == [0, 1, 0, 1, 0, 1] and len(h.epoch) == 3
    ref = Trainer(make_bundle())
    ref.fit([batches[k % 3] for k in range(6)], epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(ref.get_weights(), tr.get_weights()))

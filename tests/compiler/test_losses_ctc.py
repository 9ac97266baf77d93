"""CTC: the declared alpha recursion against a NumPy forward-backward written here (value and
gradient), for several label lengths including repeated labels and an empty label; Keras'
and PyTorch's conventions; and Keras' own expected value."""
import numpy as np
import pytest

from symgrad.compiler import ParameterError, compile_model, layers, losses, Sequential
from oracle import central_fd, run

T, C, L = 6, 4, 3


def log_softmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def lse(a, axis=None):
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):          # log(0) = -inf for impossible states
        return np.squeeze(m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)), axis=axis)


def forward_backward(logits, label, blank=0):
    """(-log p, d(-log p)/d logits) for one sequence, by Graves' alpha-beta recursions."""
    lp = log_softmax(logits)
    ext = [blank]
    for k in label:
        ext += [k, blank]
    S, Tn = len(ext), len(lp)
    alpha = np.full((Tn, S), -np.inf)
    beta = np.full((Tn, S), -np.inf)
    alpha[0, 0] = lp[0, ext[0]]
    if S > 1:
        alpha[0, 1] = lp[0, ext[1]]
    for t in range(1, Tn):
        for s in range(S):
            terms = [alpha[t - 1, s]]
            if s >= 1:
                terms.append(alpha[t - 1, s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                terms.append(alpha[t - 1, s - 2])
            alpha[t, s] = lse(np.array(terms)) + lp[t, ext[s]]
    beta[-1, -1] = lp[-1, ext[-1]]
    if S > 1:
        beta[-1, -2] = lp[-1, ext[-2]]
    for t in range(Tn - 2, -1, -1):
        for s in range(S):
            terms = [beta[t + 1, s]]
            if s + 1 < S:
                terms.append(beta[t + 1, s + 1])
            if s + 2 < S and ext[s + 2] != blank and ext[s + 2] != ext[s]:
                terms.append(beta[t + 1, s + 2])
            beta[t, s] = lse(np.array(terms)) + lp[t, ext[s]]
    logp = lse(alpha[-1, -2:]) if S > 1 else alpha[-1, -1]
    assert np.isclose(logp, lse(beta[0, :2]))          # the two recursions agree
    ab = alpha + beta                                  # both include the emission at t
    grad = np.exp(lp).copy()
    for k in range(lp.shape[1]):
        cols = [s for s in range(S) if ext[s] == k]
        if cols:
            grad[:, k] -= np.exp(lse(ab[:, cols], axis=1) - lp[:, k] - logp)
    return -logp, grad


LABELS = np.array([[1, 2, 3], [2, 2, 0], [3, 0, 0], [0, 0, 0], [1, 1, 1]], np.int64)   # lengths 3, 2, 1, 0, 3


def _labels(row, pad=0):
    return [int(v) for v in row if v != pad]


@pytest.fixture(scope="module")
def compiled():
    return losses.get("ctc", reduction="sum", max_label_length=L).to_onnx(dtype="float64", shape=(None, T, C))


def test_value_and_gradient_equal_numpy_forward_backward(compiled):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(len(LABELS), T, C))
    out = run(compiled, y_true=LABELS, y_pred=logits)
    refs = [forward_backward(logits[n], _labels(LABELS[n])) for n in range(len(LABELS))]
    assert out["loss"] == pytest.approx(sum(v for v, _ in refs), rel=1e-10)
    np.testing.assert_allclose(out["grad_y_pred"], np.stack([g for _, g in refs]), rtol=1e-7, atol=1e-10)


def test_numpy_reference_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(T, C))
    _, grad = forward_backward(logits, [2, 2, 1])
    np.testing.assert_allclose(grad, central_fd(lambda z: forward_backward(z, [2, 2, 1])[0], logits),
                               rtol=1e-6, atol=1e-8)


def test_per_sample_values_and_keras_expected_value():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(len(LABELS), T, C)) * 3
    per = run(losses.get("ctc", reduction="none", max_label_length=L).to_onnx(dtype="float64", shape=(None, T, C)),
              y_true=LABELS, y_pred=logits)["loss"]
    np.testing.assert_allclose(per, [forward_backward(logits[n], _labels(LABELS[n]))[0] for n in range(5)],
                               rtol=1e-10)
    # keras/src/losses/losses_test.py CTCTest.test_correctness
    keras_logits = (np.arange(24).reshape((2, 4, 3)).astype("float64") - 12) / 100
    keras_labels = np.array([[1, 2, 1, 0], [1, 2, 0, 2]], np.int64)
    got = run(losses.get("CTC").to_onnx(dtype="float64", shape=(None, 4, 3)), y_true=keras_labels,
              y_pred=keras_logits)["loss"]
    assert got == pytest.approx(2.448645, abs=1e-6)


def test_pytorch_convention_blank_and_mean_over_target_lengths():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, T, C))
    labels = np.array([[1, 2, 0], [2, 2, 1], [3, 3, 3], [1, 3, 2]], np.int64) + 0
    blank = 3                                            # PyTorch lets the blank be any class
    targets = np.where(np.array([[1, 1, 0], [1, 1, 1], [0, 0, 0], [1, 1, 1]]) > 0, labels % 3, blank)
    logp = log_softmax(logits)                           # PyTorch takes log-probabilities
    per = [forward_backward(logits[n], _labels(targets[n], blank), blank) for n in range(4)]
    lengths = np.array([len(_labels(r, blank)) for r in targets])
    loss = losses.get("CTCLoss", blank=blank, max_label_length=L)
    out = run(loss.to_onnx(dtype="float64", shape=(None, T, C)), y_true=targets, y_pred=logp)
    want = np.mean([v / max(n, 1) for (v, _), n in zip(per, lengths)])
    assert out["loss"] == pytest.approx(want, rel=1e-10)
    total = run(losses.get("CTCLoss", blank=blank, reduction="sum", max_label_length=L).to_onnx(dtype="float64", shape=(None, T, C)),
                y_true=targets, y_pred=logp)
    np.testing.assert_allclose(total["grad_y_pred"], np.stack([g for _, g in per]), rtol=1e-7, atol=1e-10)
    with pytest.raises(ParameterError, match="zero_infinity"):
        losses.get("CTCLoss", zero_infinity=True)


def test_float32_stays_finite_and_trains_in_a_program():
    logits = np.random.default_rng(4).normal(size=(len(LABELS), T, C)).astype(np.float32) * 20
    out = run(losses.get("ctc", max_label_length=L).to_onnx(shape=(None, T, C)), y_true=LABELS, y_pred=logits)
    assert np.isfinite(out["loss"]) and np.isfinite(out["grad_y_pred"]).all()
    model = Sequential([layers.Dense(C)], input_shape=(T, 5), seed=0)
    program = compile_model(model, losses.get("ctc", max_label_length=L), "sgd")
    assert program.manifest["data"]["y"]["shape"] == ["N", L]
    from symgrad.runtime import Trainer
    x = np.random.default_rng(5).normal(size=(len(LABELS), T, 5)).astype(np.float32)
    hist = Trainer(program, seed=0).fit(x, LABELS, epochs=15, batch_size=5, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]


@pytest.mark.parametrize("opset", [13, 21])
def test_checker_and_runtime_at_other_opsets(opset):
    from oracle import session
    logits = np.random.default_rng(6).normal(size=(len(LABELS), T, C)).astype(np.float32)
    model = losses.get("ctc", max_label_length=L).to_onnx(opset=opset, shape=(None, T, C))
    sess = session(model)                    # full checker, standard domain
    loss = sess.run(["loss"], {"y_true": LABELS, "y_pred": logits})[0]
    want = np.mean([forward_backward(logits[n].astype(np.float64), _labels(LABELS[n]))[0] for n in range(5)])
    assert loss == pytest.approx(want, rel=1e-5)

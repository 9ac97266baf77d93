"""Keras' Circle and CategoricalGeneralizedCrossEntropy: expected values from
keras/src/losses/losses_test.py, gradients against float64 central finite differences of
NumPy references written here."""
import numpy as np
import pytest

from symgrad.compiler import losses
from oracle import central_fd, run

Y = np.array([1, 1, 2, 2, 3])
X = np.array([[0.70014004, -0.42008403, 0.14002801, 0.56011203],
              [0.17609018, 0.70436073, -0.52827054, 0.44022545],
              [-0.34050261, 0.25537696, -0.68100522, 0.59587957],
              [0.32163376, -0.75047877, 0.53605627, -0.21442251],
              [0.51261459, -0.34174306, 0.17087153, 0.76892189]])
REF_Y = np.array([1, 1, 2, 2, 3, 4])
REF_X = np.array([[0.40824829, -0.54433105, 0.27216553, 0.68041382],
                  [0.76376261, 0.10910895, -0.54554473, 0.32732684],
                  [-0.74420841, 0.24806947, 0.49613894, -0.3721042],
                  [0.52981294, -0.13245324, 0.79471941, -0.26490647],
                  [0.54554473, -0.32732684, 0.10910895, 0.76376261],
                  [-0.27216553, 0.68041382, 0.40824829, -0.54433105]])
W = np.array([2.0, 2.0, 1.0, 1.0, 0.5])


def evaluate(loss, y, x, w=None, output="loss"):
    model = loss.to_onnx(dtype="float64", shape=(None, x.shape[1]), sample_weight=w is not None)
    feeds = {"y_true": y.astype(np.int64), "y_pred": x}
    if w is not None:
        feeds["sample_weight"] = w
    return run(model, **feeds)[output]


@pytest.mark.parametrize("params,y,x,w,expected", [
    ({}, Y, X, None, 188.3883),
    ({"gamma": 256, "margin": 0.25}, Y, X, None, 652.7617),
    ({}, Y, X, W, 244.91918),
    ({"reduction": "mean_with_sample_weight"}, Y, X, W, 163.27948),
    ({"reduction": "none"}, REF_Y, REF_X, None, [82.9116, 36.7942, 92.4590, 52.6798, 0.0, 0.0]),
    ({"reduction": "sum"}, REF_Y, REF_X, None, 264.845),
])
def test_keras_circle(params, y, x, w, expected):
    np.testing.assert_allclose(evaluate(losses.get("Circle", **params), y, x, w), expected, rtol=1e-4)


def ref_circle(y, x, gamma=80.0, margin=0.4):
    d = np.maximum(1 - x @ x.T, 0)
    pos = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
    neg = y[:, None] != y[None, :]
    pt = -gamma * np.maximum(margin + d, 0) * (margin - d)
    nt = gamma * np.maximum(1 + margin - d, 0) * (1 - margin - d)
    out = np.zeros(len(y))
    for i in range(len(y)):
        if pos[i].any():
            a = np.logaddexp.reduce(pt[i][pos[i]]) + np.logaddexp.reduce(nt[i][neg[i]])
            out[i] = np.logaddexp(0, a)
    return out[pos.any(1)].mean()


def test_circle_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.array([0, 0, 1, 1, 1, 2])
    loss = losses.get("circle", gamma=4.0)
    assert evaluate(loss, y, x) == pytest.approx(ref_circle(y, x, 4.0), rel=1e-12)
    grad = evaluate(loss, y, x, output="grad_y_pred")
    np.testing.assert_allclose(grad, central_fd(lambda v: ref_circle(y, v, 4.0), x), rtol=1e-6, atol=1e-9)
    assert np.abs(grad[5]).sum() > 0            # a sample without positives still pulls as a negative


GCE_Y = np.array([0, 1, 0, 1])
GCE_P = np.array([[0.7, 0.3, 0.0], [0.2, 0.2, 0.6], [0.6, 0.4, 0.0], [0.2, 0.2, 0.6]])


@pytest.mark.parametrize("q", [0.5, 0.8])
def test_keras_categorical_generalized_cross_entropy(q):
    expected = np.mean([(1 - v ** q) / q for v in (0.7, 0.2, 0.6, 0.2)])
    loss = losses.get("CategoricalGeneralizedCrossEntropy", q=q)
    assert evaluate(loss, GCE_Y, GCE_P) == pytest.approx(expected, rel=1e-12)
    # binary segmentation: (N, 4, 2) pixels, the mean over all 16 pixels
    y = np.array([[0, 1, 1, 0], [1, 0, 1, 0], [0, 0, 1, 1], [1, 1, 0, 1]])
    p = np.zeros((4, 4, 2))
    p[np.arange(4)[:, None], np.arange(4)[None, :], y] = 1.0
    p[0, 3] = [0.2, 0.8]
    p[3, 3] = [0.6, 0.4]
    model = loss.to_onnx(dtype="float64", shape=(None, 4, 2))
    got = run(model, y_true=y.astype(np.int64), y_pred=p)["loss"]
    assert got == pytest.approx(((1 - 0.2 ** q) / q + (1 - 0.4 ** q) / q) / 16, rel=1e-12)


def test_generalized_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.1, 0.9, (4, 3))
    loss = losses.get("gce", q=0.7)

    def ref(v):
        return np.mean((1 - v[np.arange(4), GCE_Y] ** 0.7) / 0.7)
    np.testing.assert_allclose(evaluate(loss, GCE_Y, p, output="grad_y_pred"), central_fd(ref, p), rtol=1e-6,
                               atol=1e-9)

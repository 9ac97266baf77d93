"""Simplifier rewrites to fused kernels and the kink convention, checked against sympy
on small explicit symbolic tensors and against finite differences."""
import numpy as np
import sympy

from symgrad.compiler import Loss
from oracle import central_fd, run


def test_sparse_cross_entropy_is_fused_and_matches_sympy():
    loss = Loss("-sum(one_hot(y_true, y_pred) * log_softmax(y_pred), axis=-1)", labels="sparse", reduction="sum")
    model = loss.to_onnx(dtype="float64", shape=(None, 3))
    ops = [n.op_type for n in model.graph.node]
    # the fused primitive's lowering (compiler/portable.py: faster than ONNX's fused op in
    # onnxruntime), not the one-hot product the expression spells out
    assert "GatherElements" in ops and ops.count("LogSoftmax") == 1
    assert "OneHot" not in ops
    # explicit symbolic 2x3 logits, labels (2, 0): L = sum_n -log(exp(z[n,y_n]) / sum_c exp(z[n,c]))
    z = sympy.Matrix(2, 3, lambda i, j: sympy.Symbol(f"z{i}{j}", real=True))
    labels = [2, 0]
    total = sum(-sympy.log(sympy.exp(z[n, labels[n]]) / sum(sympy.exp(z[n, c]) for c in range(3))) for n in range(2))
    values = np.array([[0.3, -1.2, 2.0], [1.5, 0.1, -0.7]])
    subs = {z[i, j]: values[i, j] for i in range(2) for j in range(3)}
    want_grad = np.array([[float(sympy.diff(total, z[i, j]).subs(subs)) for j in range(3)] for i in range(2)])
    out = run(model, y_true=np.array(labels), y_pred=values)
    np.testing.assert_allclose(out["loss"], float(total.subs(subs)), rtol=1e-12)
    np.testing.assert_allclose(out["grad_y_pred"], want_grad, rtol=1e-12, atol=1e-14)


def test_sparse_cross_entropy_on_rank_three_logits():
    loss = Loss("-sum(one_hot(y_true, y_pred) * log_softmax(y_pred), axis=-1)", labels="sparse", reduction="sum")
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(2, 4, 3)), rng.integers(0, 3, size=(2, 4))
    out = run(loss.to_onnx(dtype="float64", shape=(None, 4, 3)), y_true=y, y_pred=z)

    def f(x):
        lsm = x - np.log(np.exp(x).sum(-1, keepdims=True))
        return -np.take_along_axis(lsm, y[..., None], -1).sum()
    np.testing.assert_allclose(out["loss"], f(z), rtol=1e-12)
    np.testing.assert_allclose(out["grad_y_pred"], central_fd(f, z), atol=1e-7)


def test_relu_kink_takes_subgradient_zero_and_ties_split():
    # relu: PyTorch and TensorFlow give 0 at x = 0
    relu = Loss("Max(y_pred, 0)", reduction="sum")
    model = relu.to_onnx(shape=(None, 3))
    ops = [n.op_type for n in model.graph.node]
    assert "Relu" in ops and "Max" not in ops       # the op onnxruntime fuses into a preceding Gemm
    assert ops.count("Greater") == 1 and "Less" not in ops  # the gradient: one comparison, x > 0
    out = run(model, y_pred=np.array([[-1.0, 0.0, 2.0]], np.float32))
    np.testing.assert_array_equal(out["grad_y_pred"], [[0, 0, 1]])
    # a tie between two tensors keeps sympy's even split
    tie = Loss("Max(y_pred, y_true)", reduction="sum")
    out = run(tie.to_onnx(shape=(None, 2)), y_pred=np.array([[1.0, 3.0]], np.float32),
              y_true=np.array([[1.0, 0.0]], np.float32))
    np.testing.assert_array_equal(out["grad_y_pred"], [[0.5, 1]])


def test_relu_gradient_from_a_matmul_is_a_multiply_elsewhere_a_where():
    """onnxruntime's CPU Where is ~10x slower than Cast + Mul, so g * H(u) multiplies when g
    is a matmul's output; inside one elementwise expression g can be infinite where H(u) = 0
    (d sqrt(relu(x)) at x < 0), and Where keeps the 0 that the mathematics gives."""
    from symgrad.compiler import Sequential, layers, compile_model, losses, optimizers
    model = Sequential([layers.Dense(4, activation="relu"), layers.Dense(3)], input_shape=(5,))
    program = compile_model(model, loss=losses.get("mse"), optimizer=optimizers.SGD(0.1))
    ops = [n.op_type for n in program.graphs["train_step"].graph.node]
    assert "Where" not in ops and "Greater" in ops
    # a ReLU after a residual Add: its g is a sum of matmul outputs, finite too
    from symgrad.compiler import Input, Model
    x = Input((5,))
    h = layers.Dense(5, activation="relu")(x)
    out = layers.Dense(3)(layers.Activation("relu")(layers.Add()([layers.Dense(5)(h), h])))
    program = compile_model(Model(x, layers.Dense(2)(out)), loss=losses.get("mse"), optimizer=optimizers.SGD(0.1))
    ops = [n.op_type for n in program.graphs["train_step"].graph.node]
    assert "Where" not in ops and ops.count("Greater") == 2

    root = Loss("sqrt(Max(y_pred, 0))", reduction="sum")
    model = root.to_onnx(shape=(None, 3))
    assert "Where" in [n.op_type for n in model.graph.node]
    out = run(model, y_pred=np.array([[-1.0, -1e-3, 4.0]], np.float32))
    np.testing.assert_allclose(out["grad_y_pred"], [[0.0, 0.0, 0.25]], rtol=1e-6)

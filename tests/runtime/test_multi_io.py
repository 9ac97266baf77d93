"""Several inputs and outputs: compile, train, evaluate and predict a two-input two-output
model; the weighted total loss and each output's loss equal a NumPy computation written
here from the layer equations (Dense: x @ kernel + bias)."""
import numpy as np
import onnx
import pytest

from symgrad.compiler import Input, Model, compile_model, layers, optimizers
from symgrad.compiler.errors import DataError, ParameterError
from symgrad.runtime.trainer import Trainer


def _model(outputs_as="dict"):
    tokens = Input((3,), dtype="int64", name="tokens")
    meta = Input((4,), name="meta")
    h = layers.Flatten()(layers.Embedding(7, 2, name="emb")(tokens))
    h = layers.Concatenate()([h, layers.Dense(5, activation="tanh", name="hidden")(meta)])
    topic = layers.Dense(3, name="topic")(h)
    score = layers.Dense(1, name="score")(h)
    outs = {"topic": topic, "score": score} if outputs_as == "dict" else [topic, score]
    return Model([tokens, meta], outs, seed=0)


def _data(n=40, seed=1):
    rng = np.random.default_rng(seed)
    xt = rng.integers(0, 7, (n, 3))
    xm = rng.normal(size=(n, 4))
    y1 = (xt[:, 0] % 3).astype(np.int64)
    y2 = (xm[:, :1] * 0.5 + 0.1).astype(np.float64)
    return xt, xm, y1, y2


def _np_forward(w, xt, xm):
    h = np.concatenate([w["emb/embeddings"][xt].reshape(len(xt), -1),
                        np.tanh(xm @ w["hidden/kernel"] + w["hidden/bias"])], axis=1)
    return h @ w["topic/kernel"] + w["topic/bias"], h @ w["score/kernel"] + w["score/bias"]


def _np_losses(w, xt, xm, y1, y2):
    logits, score = _np_forward(w, xt, xm)
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    ce = -logp[np.arange(len(y1)), y1].mean()
    mse = ((score - y2) ** 2).mean()
    acc = (logits.argmax(1) == y1).mean()
    return ce, mse, acc


LOSS = {"topic": "sparse_categorical_crossentropy_from_logits", "score": "mse"}


def _program(model, **kw):
    kw.setdefault("loss", {"topic": _scce_logits(), "score": "mse"})
    return compile_model(model, optimizer=optimizers.SGD(0.1), dtype="float64", **kw)


def _scce_logits():
    from symgrad.compiler import losses
    return losses.get("sparse_categorical_crossentropy", from_logits=True)


def test_two_inputs_two_outputs_weighted_losses_equal_numpy_and_training_lowers_them():
    model = _model()
    program = _program(model, loss_weights={"topic": 1.0, "score": 0.5}, metrics={"topic": ["accuracy"]})
    for g in program.graphs.values():
        onnx.checker.check_model(g, full_check=True)
    m = program.manifest
    assert [e["name"] for e in m["inputs"]] == ["x/tokens", "x/meta"] and m["inputs"][0]["dtype"] == "int64"
    assert [(e["name"], e["key"], e["labels"]["name"]) for e in m["outputs"]] == [
        ("y_pred/topic", "topic", "y/topic"), ("y_pred/score", "score", "y/score")]
    assert m["graphs"]["inference"]["outputs"] == ["y_pred/topic", "y_pred/score"]
    trainer = Trainer(program, seed=0)
    xt, xm, y1, y2 = _data()
    w = dict(zip(trainer.weight_names, trainer.get_weights()))
    ce, mse, acc = _np_losses(w, xt, xm, y1, y2)
    logs = trainer.evaluate([xt, xm], {"topic": y1, "score": y2}, batch_size=40, return_dict=True, verbose=0)
    assert set(logs) == {"loss", "topic_loss", "score_loss", "topic_accuracy"}
    np.testing.assert_allclose([logs["loss"], logs["topic_loss"], logs["score_loss"], logs["topic_accuracy"]],
                               [ce + 0.5 * mse, ce, mse, acc], rtol=1e-10)
    # dicts for x work as lists do; predict returns a dict by output name (the model's outputs are a dict)
    pred = trainer.predict({"tokens": xt, "meta": xm}, verbose=0)
    logits, score = _np_forward(w, xt, xm)
    np.testing.assert_allclose(pred["topic"], logits, rtol=1e-10)
    np.testing.assert_allclose(pred["score"], score, rtol=1e-10)
    history = trainer.fit([xt, xm], {"topic": y1, "score": y2}, epochs=30, batch_size=40, verbose=0, shuffle=False)
    h = history.history
    assert {"loss", "topic_loss", "score_loss", "topic_accuracy"} <= set(h)
    np.testing.assert_allclose(h["loss"][0], ce + 0.5 * mse, rtol=1e-10)    # first step logs the loss before it
    assert h["loss"][-1] < 0.8 * h["loss"][0]
    w2 = dict(zip(trainer.weight_names, trainer.get_weights()))
    ce2, mse2, _ = _np_losses(w2, xt, xm, y1, y2)
    logs2 = trainer.evaluate([xt, xm], [y1, y2], batch_size=16, return_dict=True, verbose=0)
    np.testing.assert_allclose([logs2["loss"], logs2["topic_loss"], logs2["score_loss"]],
                               [ce2 + 0.5 * mse2, ce2, mse2], rtol=1e-9)


def test_one_sgd_step_of_the_weighted_loss_equals_numpy():
    """The output kernels' gradient of 1.0*CE + 0.5*MSE, written out in NumPy."""
    model = _model("list")
    program = _program(model, loss=[_scce_logits(), "mse"], loss_weights=[1.0, 0.5])
    trainer = Trainer(program, seed=0)
    xt, xm, y1, y2 = _data(8)
    w = dict(zip(trainer.weight_names, trainer.get_weights()))
    logits, score = _np_forward(w, xt, xm)
    h = np.concatenate([w["emb/embeddings"][xt].reshape(8, -1),
                        np.tanh(xm @ w["hidden/kernel"] + w["hidden/bias"])], axis=1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d_logits = (p - np.eye(3)[y1]) / 8
    d_score = 0.5 * 2 * (score - y2) / 8
    trainer.train_on_batch([xt, xm], [y1, y2])
    w2 = dict(zip(trainer.weight_names, trainer.get_weights()))
    np.testing.assert_allclose(w2["topic/kernel"], w["topic/kernel"] - 0.1 * h.T @ d_logits, rtol=1e-10)
    np.testing.assert_allclose(w2["score/kernel"], w["score/kernel"] - 0.1 * h.T @ d_score, rtol=1e-10)
    np.testing.assert_allclose(w2["score/bias"], w["score/bias"] - 0.1 * d_score.sum(0), rtol=1e-10)
    # a list model predicts a list
    pred = trainer.predict([xt, xm], verbose=0)
    assert isinstance(pred, list) and [a.shape for a in pred] == [(8, 3), (8, 1)]


def test_bundle_round_trip_and_single_io_names_unchanged(tmp_path):
    program = _program(_model(), loss_weights={"score": 2.0})
    program.save(tmp_path / "b")
    trainer = Trainer.load(tmp_path / "b")
    xt, xm, y1, y2 = _data(6)
    logs = trainer.evaluate([xt, xm], [y1, y2], return_dict=True, verbose=0)
    np.testing.assert_allclose(logs["loss"], logs["topic_loss"] + 2.0 * logs["score_loss"], rtol=1e-10)
    single = compile_model(Model(Input((4,)), layers.Dense(2)(Input((4,)))) if False else
                           Model(*(lambda i: (i, layers.Dense(2)(i)))(Input((4,)))), loss="mse", optimizer="sgd")
    m = single.manifest
    assert set(m["data"]) == {"x", "y"} and m["prediction"]["name"] == "y_pred"
    assert m["graphs"]["inference"]["inputs"][0] == "x" and m["graphs"]["inference"]["outputs"] == ["y_pred"]
    assert [e["name"] for e in m["inputs"]] == ["x"] and m["outputs"][0]["labels"]["name"] == "y"


def test_input_mistakes_name_the_input():
    trainer = Trainer(_program(_model()), seed=0)
    xt, xm, y1, y2 = _data(6)
    with pytest.raises(DataError, match=r"2 inputs \(tokens, meta\)"):
        trainer.predict(xm, verbose=0)
    with pytest.raises(DataError, match=r"missing \['score'\]"):
        trainer.evaluate([xt, xm], {"topic": y1}, verbose=0)
    with pytest.raises(DataError, match=r"x\['meta'\] has 3 features"):
        trainer.evaluate([xt, xm[:, :3]], [y1, y2], verbose=0)
    with pytest.raises(DataError, match=r"y\['topic'\] holds the label 5"):
        trainer.evaluate([xt, xm], [y1 + 5, y2], verbose=0)
    with pytest.raises(DataError, match="differ in length"):
        trainer.evaluate([xt, xm[:5]], [y1, y2], verbose=0)
    with pytest.raises(ParameterError, match="no outputs of the model"):
        _program(_model(), loss={"topic": "mse", "scores": "mse"})
    with pytest.raises(ParameterError, match="output 'score' has no loss"):
        _program(_model(), loss={"topic": _scce_logits()})
    with pytest.raises(ParameterError, match="list of 3"):
        _program(_model(), loss=["mse"] * 3)

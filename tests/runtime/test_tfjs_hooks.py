"""TF.js-named batch hooks receive the batch's own loss (TF.js), Keras-named ones the running
mean (Keras); both can read the batch's own values from trainer.batch_logs."""
import numpy as np
import pytest

from handmade import make_bundle, toy_data
from symgrad.runtime import Trainer, callbacks


def _own_losses(x, y, batch_size):
    """The loss of each batch before its update, one train_on_batch at a time."""
    tr = Trainer(make_bundle(), seed=0)
    return [tr.train_on_batch(x[i:i + batch_size], y[i:i + batch_size], return_dict=True)["loss"]
            for i in range(0, len(x), batch_size)]


def test_tfjs_and_keras_batch_logs():
    x, y = toy_data(50)
    own = _own_losses(x, y, 16)
    sizes = np.array([16, 16, 16, 2])
    seen = {"tfjs": [], "keras": [], "dict": [], "own": []}

    class TfjsStyle(callbacks.Callback):
        def onBatchEnd(self, batch, logs=None):
            seen["tfjs"].append(dict(logs))

    class KerasStyle(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen["keras"].append(logs["loss"])
            seen["own"].append(self.trainer.batch_logs["loss"])

    tr = Trainer(make_bundle(), seed=0)
    tr.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0,
           callbacks=[TfjsStyle(), KerasStyle(), {"onBatchEnd": lambda b, logs: seen["dict"].append(logs["loss"])}])
    np.testing.assert_allclose([d["loss"] for d in seen["tfjs"]], own, rtol=1e-6)
    assert [d["batch"] for d in seen["tfjs"]] == [0, 1, 2, 3] and [d["size"] for d in seen["tfjs"]] == list(sizes)
    np.testing.assert_allclose(seen["dict"], own, rtol=1e-6)
    np.testing.assert_allclose(seen["own"], own, rtol=1e-6)
    running = np.cumsum(np.array(own) * sizes) / np.cumsum(sizes)
    np.testing.assert_allclose(seen["keras"], running, rtol=1e-6)
    assert not np.allclose(running, own)          # the two conventions really differ here


def test_lambda_callback_camel_case_keyword_keeps_tfjs_semantics():
    x, y = toy_data(32)
    got = []
    tr = Trainer(make_bundle(), seed=0)
    tr.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0,
           callbacks=[callbacks.LambdaCallback(onBatchEnd=lambda b, logs: got.append(logs["loss"]))])
    assert got == pytest.approx(_own_losses(x, y, 16), rel=1e-6)

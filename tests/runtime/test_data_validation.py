"""Bad data and bad arguments raise DataError / ParameterError naming the problem, before
the first step."""
import numpy as np
import pytest

from handmade import make_bundle, toy_data
from symgrad.compiler.errors import DataError, ParameterError, SymgradError
from symgrad.runtime import Trainer


@pytest.fixture(scope="module")
def tr():
    return Trainer(make_bundle())


@pytest.fixture
def xy():
    return toy_data(20)


def bad(x, y):
    return x, y


@pytest.mark.parametrize("make, match", [
    (lambda x, y: (x.astype(str), y), r"dtype <U32 \(string\)"),
    (lambda x, y: (x.astype(object), y), "object"),
    (lambda x, y: (x + 1j, y), "complex"),
    (lambda x, y: (x[:0], y[:0]), "empty"),
    (lambda x, y: (x[:, :3], y), "3 features per sample .* expects 4"),
    (lambda x, y: (x[:, :, None], y), "rank 3"),
    (lambda x, y: (x[0], y), "rank 1"),
    (lambda x, y: (np.where(np.arange(4) == 2, np.nan, x), y), r"nan at index \(0, 2\)"),
    (lambda x, y: (np.where(np.arange(4) == 1, np.inf, x), y), "inf at index"),
    (lambda x, y: (x, y[:-1]), "x has 20, y has 19 samples"),
    (lambda x, y: (x, np.where(np.arange(20) == 5, 3, y)), r"label 3 at index 5; labels must be integers in \[0, 2\]"),
    (lambda x, y: (x, np.where(np.arange(20) == 2, -1, y)), "label -1 at index 2"),
    (lambda x, y: (x, y + 0.5), r"non-integer value \d\.5 at index 0"),
    (lambda x, y: (x, y[:, None, None]), "y has rank 3"),
    (lambda x, y: (x, None), "y .* is missing"),
    (lambda x, y: ([[1, 2], [3]], y), "cannot be read as an array"),
])
def test_fit_data_errors(tr, xy, make, match):
    x, y = make(*xy)
    step = tr.step
    with pytest.raises(DataError, match=match):
        tr.fit(x, y, epochs=1, verbose=0)
    assert tr.step == step                      # nothing was trained


def test_accepted_conversions(tr, xy):
    x, y = xy
    tr.fit(x.astype(np.float64).tolist(), y[:, None].astype(np.float32), epochs=1, verbose=0)   # lists, (N, 1) labels
    tr.fit(x.astype(np.int32), y.astype(np.int8), epochs=1, verbose=0)


def test_sample_weight_errors(tr, xy):
    x, y = xy
    with pytest.raises(DataError, match="sample_weight holds -1.0 at index 3"):
        tr.fit(x, y, sample_weight=np.where(np.arange(20) == 3, -1.0, 1.0), verbose=0)
    with pytest.raises(DataError, match="x has 20, y has 20, sample_weight has 10"):
        tr.fit(x, y, sample_weight=np.ones(10), verbose=0)
    with pytest.raises(DataError, match="compiled without a sample_weight"):
        Trainer(make_bundle(weighted=False)).fit(x, y, sample_weight=np.ones(20), verbose=0)


def test_validation_and_batch_errors(tr, xy):
    x, y = xy
    with pytest.raises(DataError, match="validation_data must be"):
        tr.fit(x, y, validation_data=(x,), verbose=0)
    with pytest.raises(DataError, match="x batch has 2 features"):
        tr.fit([(x, y), (x[:, :2], y)], epochs=1, verbose=0)
    with pytest.raises(DataError, match="each batch must be a tuple"):
        tr.fit([x, x], epochs=1, verbose=0)
    with pytest.raises(DataError, match="no batches"):
        tr.fit([], epochs=1, verbose=0)
    gen = ((x, y) for _ in range(2))
    with pytest.raises(DataError, match="exhausted after one pass"):
        tr.fit(gen, epochs=2, verbose=0)
    with pytest.raises(DataError, match="validation_split=0.99 leaves"):
        tr.fit(x, y, validation_split=0.99, verbose=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"epochs": 2.5}, "epochs"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"batch_size": True}, "batch_size"),
    ({"verbose": 3}, "verbose must be 0, 1, 2 or 'auto'"),
    ({"shuffle": "yes"}, "shuffle must be True or False"),
    ({"initial_epoch": -1}, "initial_epoch"),
    ({"validation_split": 1.0}, r"validation_split must be a number in \[0, 1\)"),
    ({"validation_freq": 0}, "validation_freq"),
    ({"callbacks": "EarlyStopping"}, "callbacks must be a list"),
    ({"class_weight": [1, 2]}, "class_weight must be a dict"),
    ({"epoch": 3}, r"unknown argument\(s\) 'epoch' \(did you mean 'epochs'\?\)"),
])
def test_fit_argument_errors(tr, xy, kwargs, match):
    x, y = xy
    with pytest.raises(ParameterError, match=match):
        tr.fit(x, y, **{"verbose": 0, **kwargs})


def test_other_entry_points_validate_too(tr, xy):
    x, y = xy
    with pytest.raises(DataError, match="features"):
        tr.predict(x[:, :2], verbose=0)
    with pytest.raises(DataError, match="label 7"):
        tr.evaluate(x, np.full(20, 7), verbose=0)
    with pytest.raises(DataError, match="nan"):
        tr.train_on_batch(x * np.nan, y)
    with pytest.raises(ParameterError, match="learning_rate must be a finite number"):
        tr.learning_rate = float("nan")
    with pytest.raises(ParameterError, match="set_weights expects a list of 5 arrays"):
        tr.set_weights(tr.get_weights()[:2])
    with pytest.raises(SymgradError, match=r"must have shape \(4, 8\)"):
        tr.set_weights([np.zeros((8, 4))] + tr.get_weights()[1:])
    with pytest.raises(ParameterError, match="no step to revert"):
        Trainer(make_bundle()).revert_last_step()


def test_class_weight_scales_the_loss(xy):
    x, y = xy
    a = Trainer(make_bundle())
    w = np.array([2.0, 1.0, 0.5])[y]
    la = a.evaluate(x, y, sample_weight=w, verbose=0)[0]
    b = Trainer(make_bundle())
    b.fit(x, y, epochs=1, batch_size=20, class_weight={0: 2.0, 2: 0.5}, verbose=0, shuffle=False)
    c = Trainer(make_bundle())
    c.fit(x, y, epochs=1, batch_size=20, sample_weight=w, verbose=0, shuffle=False)
    assert all(np.array_equal(p, q) for p, q in zip(b.get_weights(), c.get_weights()))
    assert la != pytest.approx(a.evaluate(x, y, verbose=0)[0])

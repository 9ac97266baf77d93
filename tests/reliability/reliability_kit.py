"""Shared pieces of the reliability suite: the bad-input assertion and small programs.

``expect_error(fn, cls, *fragments)`` is the one rule of the catalogue: ``fn()`` raises a
``SymgradError`` subclass defined in symgrad, of class ``cls``, whose message contains
every fragment (the bad value and what is accepted), and no raw exception from sympy,
NumPy or onnxruntime hangs on it as a cause or context (which Python would print above
the error as a second traceback).
"""
import os
import signal
import time

import numpy as np
import pytest

from symgrad.compiler import SymgradError


def _chain(exc):
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ if exc.__cause__ is not None else (
            None if exc.__suppress_context__ else exc.__context__)
    return seen


def raw_links(exc):
    """Exceptions from outside symgrad that Python would print along with ``exc``."""
    return [e for e in _chain(exc)[1:] if not type(e).__module__.startswith("symgrad")]


def expect_error(fn, cls, *fragments):
    with pytest.raises(SymgradError) as info:
        fn()
    exc = info.value
    assert isinstance(exc, cls), f"raised {type(exc).__name__}: {exc}; expected {cls.__name__}"
    assert type(exc).__module__.startswith("symgrad"), type(exc).__module__
    message = str(exc)
    for fragment in fragments:
        assert fragment.lower() in message.lower(), f"{fragment!r} is not in the message: {message}"
    raw = raw_links(exc)
    assert not raw, f"raw exception(s) chained to the error: {[type(e).__name__ for e in raw]}"
    return message


def mlp_classifier(features=4, hidden=8, classes=3, optimizer="sgd", **kwargs):
    """A small compiled classifier: Dense(relu) -> Dense(logits), sparse labels."""
    from symgrad.compiler import Sequential, compile_model, layers, losses
    model = Sequential([layers.Dense(hidden, activation="relu"), layers.Dense(classes)], input_shape=(features,))
    loss = losses.get("sparse_categorical_crossentropy", from_logits=True)
    return compile_model(model, loss, optimizer, metrics=["accuracy"], seed=0, **kwargs)


def classification_data(n=40, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (np.abs(x[:, 0] * 2).astype(np.int64) % classes)
    return x, y


def sigkill_at_marker(proc, marker, what, timeout=120):
    """Wait until the child ``proc`` creates ``marker`` (it has stalled half-way through
    ``what``), then SIGKILL it; the child never outlives the test."""
    deadline = time.monotonic() + timeout
    try:
        while not os.path.exists(marker):
            if proc.poll() is not None:
                raise AssertionError(f"the child ended before the stalled {what}: {proc.communicate()[1]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the child never reached the stalled {what}")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def cli(capsys, *argv):
    """Run the ``symgrad`` command line in-process: (exit status, stdout, stderr)."""
    from symgrad.runtime.cli import main
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(rc, err, *needles):
    """A CLI mistake: exit status 2 and one ``error:`` line on stderr naming ``needles``."""
    assert rc == 2, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err, err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])
    return lines[0]

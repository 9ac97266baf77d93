"""Providers, session options, and that the runtime never imports sympy."""
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest

from handmade import make_bundle, toy_data
from symgrad.compiler.errors import BundleError, ParameterError, ProviderError
from symgrad.runtime import Trainer
from symgrad.runtime.providers import resolve_device

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_unknown_provider():
    with pytest.raises(ProviderError, match="unknown provider 'tpu'; accepted: 'cpu', 'cuda'"):
        Trainer(make_bundle(), provider="tpu")
    with pytest.raises(ProviderError, match="must be a string"):
        Trainer(make_bundle(), provider=None)
    assert resolve_device("CPUExecutionProvider").type == "cpu"


@pytest.mark.skipif(HAS_CUDA, reason="onnxruntime-gpu is installed")
def test_cuda_without_onnxruntime_gpu_says_what_to_install():
    with pytest.raises(ProviderError, match=r'pip install "symgrad\[cuda\]"'):
        Trainer(make_bundle(), provider="cuda")


def test_missing_cuda_libraries_are_reported(monkeypatch):
    # onnxruntime-gpu present but the CUDA provider fails to start: sessions fall back silently
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(ProviderError, match="cannot allocate the training state on cuda device 0"):
        Trainer(make_bundle(), provider="cuda")


def test_session_options_are_applied():
    tr = Trainer(make_bundle(), intra_op_num_threads=1, inter_op_num_threads=1, graph_optimization_level="basic",
                 execution_mode="sequential", enable_mem_pattern=False, config_entries={"session.intra_op.allow_spinning": "0"})
    x, y = toy_data(10)
    tr.fit(x, y, epochs=1, verbose=0)
    so = tr._graphs["train_step"].session.get_session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert so.enable_mem_pattern is False
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    custom = ort.SessionOptions()
    custom.intra_op_num_threads = 2
    tr = Trainer(make_bundle(), session_options=custom)
    tr.predict(x, verbose=0)
    assert tr._graphs["inference"].session.get_session_options().intra_op_num_threads == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"intra_op_threads": 2}, r"unknown session option\(s\) 'intra_op_threads'; accepted: .*intra_op_num_threads"),
    ({"intra_op_num_threads": -1}, "must be an integer >= 0"),
    ({"intra_op_num_threads": "2"}, "must be an integer >= 0"),
    ({"graph_optimization_level": "max"}, "must be one of 'disable', 'basic', 'extended', 'all'"),
    ({"session_options": {}}, "onnxruntime.SessionOptions"),
    ({"seed": -3}, "seed must be None or an integer >= 0"),
])
def test_bad_trainer_arguments(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        Trainer(make_bundle(), **kwargs)


def test_trainer_sources(tmp_path):
    b = make_bundle()
    b.save(tmp_path / "bundle")
    tr = Trainer.load(tmp_path / "bundle", seed=0)
    x, y = toy_data(10)
    tr.fit(x, y, epochs=1, verbose=0)
    tr.save(tmp_path / "trained")
    again = Trainer(str(tmp_path / "trained"))
    assert again.step == tr.step and all(np.array_equal(a, c) for a, c in zip(again.get_weights(), tr.get_weights()))
    with pytest.raises(ParameterError, match="Program, a Bundle or a bundle folder"):
        Trainer(42)
    with pytest.raises(BundleError, match="no bundle"):
        Trainer.load(tmp_path / "nothing")
    del b.manifest["graphs"]["gradients"]
    tr = Trainer(b)
    from symgrad.runtime import callbacks
    with pytest.raises(BundleError, match="no 'gradients' graph .*on_after_backward"):
        tr.fit(x, y, verbose=0, callbacks=[callbacks.LambdaCallback(on_after_backward=lambda b, logs: None)])


def test_runtime_never_imports_sympy(tmp_path):
    make_bundle(optimizer="adam", dropout=0.2).save(tmp_path / "bundle")
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from symgrad.runtime import Trainer, callbacks
        tr = Trainer.load({str(tmp_path / 'bundle')!r}, seed=0)
        x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
        y = np.arange(32) % 3
        tr.fit(x, y, epochs=2, batch_size=8, verbose=1, validation_split=0.25,
               callbacks=[callbacks.EarlyStopping(patience=1), callbacks.BackupAndRestore({str(tmp_path / 'b')!r}),
                          callbacks.ModelCheckpoint({str(tmp_path / 'm.onnx')!r}), callbacks.CSVLogger({str(tmp_path / 'l.csv')!r}),
                          callbacks.LambdaCallback(on_after_backward=lambda b, logs: None)])
        tr.evaluate(x, y, verbose=0); tr.predict(x, verbose=0); tr.export({str(tmp_path / 'e.onnx')!r})
        bad = sorted(m for m in sys.modules if m == "sympy" or m.startswith("sympy."))
        print("SYMPY", bad)
        sys.exit(1 if bad else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SYMPY []" in proc.stdout


@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA GPU")
def test_cuda_state_stays_on_the_device_and_matches_cpu():
    x, y = toy_data(64)
    b = make_bundle(optimizer="adam", dropout=0.0, learning_rate=0.01)
    cpu, gpu = Trainer(b, seed=0), Trainer(b, provider="cuda", seed=0)
    hc = cpu.fit(x, y, epochs=3, batch_size=16, verbose=0)
    hg = gpu.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert "CUDAExecutionProvider" in gpu._graphs["train_step"].session.get_providers()
    for name, (a, _) in gpu._store.pairs.items():
        assert a.device_name().lower() == "cuda", name
    np.testing.assert_allclose(hg.history["loss"], hc.history["loss"], rtol=1e-4)
    for p, q in zip(gpu.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-5)

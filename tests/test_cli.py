"""The ``symgrad`` command line: every verb, its --help, its output files checked against
references computed here, and its error paths (exit status 2, one line, no traceback)."""
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from symgrad.runtime.cli import main

VERBS = ["loss", "explain", "compile", "train", "export", "inspect", "demo"]

MODEL_PY = textwrap.dedent("""
    from symgrad.compiler import Sequential, layers, losses, optimizers
    model = Sequential([layers.Dense(16, activation="relu"), layers.Dense(3)], input_shape=(4,), seed=0)
    loss = losses.get("sparse_categorical_crossentropy", from_logits=True)
    optimizer = optimizers.Adam(1e-2)
    metrics = ["accuracy"]
""")


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, *needles):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("symgrad") and ": error: " in lines[0], err
    assert "Traceback" not in err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])


def ort_run(path, **feeds):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds))), model


def toy_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, ((x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "model.py").write_text(MODEL_PY)
    x, y = toy_data(200)
    np.savez(d / "data.npz", x=x[:160], y=y[:160], x_val=x[160:], y_val=y[160:])
    assert main(["compile", str(d / "model.py"), "-o", str(d / "bundle")]) == 0
    return d


# ------------------------------------------------------------------ help

@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help_with_an_example(capsys, verb):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: symgrad {verb}" in out
    assert re.search(rf"^\s+symgrad {verb}\b", out, re.MULTILINE), f"no example line in:\n{out}"


def _help(capsys, verb):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    return capsys.readouterr().out


def test_the_examples_in_the_help_work(capsys, tmp_path, monkeypatch):
    """Every example command line shown by --help runs as shown (in a scratch folder),
    the compile help's MODEL.py included, chained: compile -> train -> export -> inspect."""
    import shlex
    monkeypatch.chdir(tmp_path)
    text = _help(capsys, "compile")
    code = text.split("e.g.:", 1)[1].split("example:", 1)[0]
    (tmp_path / "model.py").write_text(textwrap.dedent(code).strip() + "\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.random((128, 64), np.float32), y=rng.integers(0, 10, 128),
             x_val=rng.random((32, 64), np.float32), y_val=rng.integers(0, 10, 32))
    ran = []
    for verb in ("loss", "explain", "compile", "train", "export", "inspect"):
        for line in re.findall(rf"^\s+(symgrad {verb}\b.*)$", _help(capsys, verb), re.MULTILINE):
            rc, out, err = cli(capsys, *shlex.split(line)[1:])
            assert rc == 0, (line, err)
            ran.append(line)
    assert len(ran) >= 10
    assert sorted(os.listdir(tmp_path / "ckpt")) == [f"epoch_{e:03d}.onnx" for e in range(1, 11)]
    assert onnx.load(tmp_path / "model.onnx").opset_import[0].version == 17


def test_top_level_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


def test_console_script_entry_point():
    from importlib.metadata import entry_points
    eps = [e for e in entry_points(group="console_scripts") if e.name == "symgrad"]
    assert eps and eps[0].value == "symgrad.runtime.cli:main"
    out = subprocess.run([sys.executable, "-m", "symgrad.runtime.cli", "loss", "hubr"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "huber" in out.stderr


# ------------------------------------------------------------------ loss

def test_loss_catalogue_name_to_onnx(capsys, tmp_path):
    rc, out, _ = cli(capsys, "loss", "huber", "-p", "delta=0.5", "-o", tmp_path / "h.onnx")
    assert rc == 0 and "h.onnx" in out
    rng = np.random.default_rng(0)
    yt, yp = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    res, model = ort_run(tmp_path / "h.onnx", y_true=yt, y_pred=yp)
    e = yp.astype(np.float64) - yt
    expected = np.where(np.abs(e) <= 0.5, e ** 2 / 2, 0.5 * (np.abs(e) - 0.25)).mean()
    grad = np.where(np.abs(e) <= 0.5, e, 0.5 * np.sign(e)) / e.size
    assert float(res["loss"]) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(res["grad_y_pred"], grad, rtol=1e-4, atol=1e-8)
    assert model.opset_import[0].version == 17


def test_loss_expression_with_opset_and_dtype(capsys, tmp_path):
    rc, _, _ = cli(capsys, "loss", "-e", "log(cosh(y_pred - y_true))", "-o", tmp_path / "lc.onnx",
                   "--opset", "13", "--dtype", "float64")
    assert rc == 0
    rng = np.random.default_rng(1)
    yt, yp = rng.normal(size=(5, 2)) * 30, rng.normal(size=(5, 2)) * 30      # large: cosh overflows naively
    res, model = ort_run(tmp_path / "lc.onnx", y_true=yt, y_pred=yp)
    assert model.opset_import[0].version == 13
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE
    e = yp - yt
    logcosh = np.abs(e) + np.log1p(np.exp(-2 * np.abs(e))) - np.log(2)
    assert float(res["loss"]) == pytest.approx(logcosh.mean(), rel=1e-12)
    np.testing.assert_allclose(res["grad_y_pred"], np.tanh(e) / e.size, rtol=1e-12)


def test_loss_expression_with_parameter_and_default_output(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, _ = cli(capsys, "loss", "-e", "w*(y_pred - y_true)**2", "-p", "w=3", "-p", "reduction=sum")
    assert rc == 0 and (tmp_path / "custom_loss.onnx").is_file()
    yt, yp = np.zeros((2, 2), np.float32), np.array([[1, 2], [3, 4]], np.float32)
    res, _ = ort_run(tmp_path / "custom_loss.onnx", y_true=yt, y_pred=yp)
    assert float(res["loss"]) == pytest.approx(3 * 30)
    np.testing.assert_allclose(res["grad_y_pred"], 6 * yp)


def test_loss_list(capsys):
    from symgrad.compiler import losses
    rc, out, _ = cli(capsys, "loss", "--list")
    assert rc == 0 and out.split() == losses.names()


# ------------------------------------------------------------------ explain

def test_explain_catalogue_name(capsys):
    rc, out, _ = cli(capsys, "explain", "huber")
    assert rc == 0
    assert "delta=1.0" in out and "L = " in out and "dL/dy_pred = " in out
    assert "$$" in out and r"\frac{\partial \mathcal{L}}{\partial \hat{y}}" in out


def test_explain_expression_gives_the_derivative(capsys):
    rc, out, _ = cli(capsys, "explain", "log(cosh(y_pred - y_true))")
    assert rc == 0
    assert "dL/dy_pred = tanh(y_pred - y_true)" in out                 # d/dx log cosh x = tanh x
    assert r"\tanh{\left(\hat{y} - y \right)}" in out


def test_explain_expression_with_parameter(capsys):
    rc, out, _ = cli(capsys, "explain", "(y_pred - y_true)**4 / k", "-p", "k=2")
    assert rc == 0 and "k=2" in out
    derivative = re.search(r"dL/dy_pred = (.*)", out).group(1)
    import sympy
    yp, yt, k = sympy.symbols("y_pred y_true k", real=True)
    assert sympy.simplify(sympy.sympify(derivative, locals={"y_pred": yp, "y_true": yt, "k": k})
                          - 4 * (yp - yt) ** 3 / k) == 0


# ------------------------------------------------------------------ compile, train, export, inspect

def test_compile_writes_a_bundle(workdir):
    from symgrad.compiler.bundle import Bundle
    b = Bundle.load(workdir / "bundle")
    assert b.manifest["optimizer"]["name"] == "adam"
    assert [p["name"] for p in b.manifest["params"]] == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    assert b.state["dense/kernel"].shape == (4, 16)


def test_compile_train_export_inspect(capsys, workdir, tmp_path):
    import shutil
    bundle = tmp_path / "bundle"
    shutil.copytree(workdir / "bundle", bundle)
    rc, out, err = cli(capsys, "train", bundle, "--data", workdir / "data.npz", "--epochs", "4", "--batch-size", "16",
                       "--checkpoint-dir", tmp_path / "ckpt")
    assert rc == 0, err
    assert "Epoch 4/4" in err                                          # the progress bar
    assert sorted(os.listdir(tmp_path / "ckpt")) == [f"epoch_{e:03d}.onnx" for e in (1, 2, 3, 4)]
    losses_ = re.search(r"loss=([\d.]+), accuracy=([\d.]+)", out)
    assert losses_ and float(losses_.group(1)) < 1.0

    from symgrad.runtime.trainer import Trainer
    trained = Trainer.load(bundle)
    assert trained.step == 4 * 10                                      # 160 samples / 16 per batch * 4 epochs
    x, y = toy_data(40, seed=5)
    pred = trained.predict(x, verbose=0)
    assert np.mean(np.argmax(pred, 1) == y) > 0.6                       # it learnt the rule

    rc, out, _ = cli(capsys, "export", bundle, "-o", tmp_path / "m.onnx", "--opset", "15")
    assert rc == 0
    res, model = ort_run(tmp_path / "m.onnx", x=x)
    assert model.opset_import[0].version == 15 and [i.name for i in model.graph.input] == ["x"]
    np.testing.assert_allclose(res["y_pred"], pred, rtol=1e-5, atol=1e-6)
    # the last checkpoint is the final model
    res_ckpt, _ = ort_run(tmp_path / "ckpt" / "epoch_004.onnx", x=x)
    np.testing.assert_allclose(res_ckpt["y_pred"], pred, rtol=1e-5, atol=1e-6)

    rc, out, _ = cli(capsys, "inspect", tmp_path / "m.onnx")
    assert rc == 0
    assert "opset ai.onnx 15" in out and "x: float[N, 4]" in out and "y_pred: float[N, 3]" in out


def test_train_to_another_folder_keeps_the_input_bundle(capsys, workdir, tmp_path):
    rc, out, err = cli(capsys, "train", workdir / "bundle", "--data", workdir / "data.npz", "--epochs", "1",
                       "-q", "-o", tmp_path / "trained", "--no-shuffle")
    assert rc == 0 and err == ""                                       # --quiet: no progress bar
    from symgrad.runtime.trainer import Trainer
    assert Trainer.load(tmp_path / "trained").step == 5 and Trainer.load(workdir / "bundle").step == 0


def test_inspect_counts_ops_of_a_handmade_model(capsys, tmp_path):
    nodes = [helper.make_node("Add", ["a", "b"], ["c"]), helper.make_node("Add", ["c", "b"], ["d"]),
             helper.make_node("Mul", ["d", "a"], ["e"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3]),
                                           helper.make_tensor_value_info("b", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)
    onnx.save(model, tmp_path / "g.onnx")
    rc, out, _ = cli(capsys, "inspect", tmp_path / "g.onnx")
    assert rc == 0
    assert re.search(r"^\s+Add\s+2$", out, re.MULTILINE) and re.search(r"^\s+Mul\s+1$", out, re.MULTILINE)
    assert "ops (3 nodes)" in out and "opset ai.onnx 15" in out
    assert "a: float[N, 3]" in out and "b: float[3]" in out and "e: float[N, 3]" in out


# ------------------------------------------------------------------ demo

def test_demo(capsys, tmp_path):
    pytest.importorskip("sklearn", reason="the demo's data set comes with scikit-learn (the dev extra)")
    rc, out, err = cli(capsys, "demo", "--out-dir", tmp_path, "--epochs", "4")
    assert rc == 0, err
    assert "Epoch 4/4" in err
    accuracy = float(re.search(r"test accuracy: ([\d.]+)", out).group(1))
    exported = float(re.search(r"fresh onnxruntime session: ([\d.]+)", out).group(1))
    assert accuracy > 0.85 and exported == pytest.approx(accuracy, abs=1e-4)
    assert (tmp_path / "model.onnx").is_file()
    png = tmp_path / "training_curve.png"
    try:
        import matplotlib  # noqa: F401  (an optional extra)
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    except ImportError:
        assert not png.exists() and "pip install matplotlib" in out
    # the exported model on the digits, checked here without symgrad
    from sklearn.datasets import load_digits
    d = load_digits()
    res, _ = ort_run(tmp_path / "model.onnx", x=(d.data / 16).astype(np.float32))
    assert np.mean(np.argmax(res["y_pred"], 1) == d.target) > 0.85


def test_demo_without_optional_packages(capsys, tmp_path, monkeypatch):
    import importlib.util
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # import matplotlib -> ImportError
    if importlib.util.find_spec("sklearn") is not None:
        rc, out, err = cli(capsys, "demo", "--out-dir", tmp_path, "--epochs", "1", "-q")
        assert rc == 0 and "pip install matplotlib" in out and not (tmp_path / "training_curve.png").exists()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    rc, out, err = cli(capsys, "demo", "--out-dir", tmp_path / "x")
    assert_one_line_error(rc, err, "scikit-learn", "pip install")


# ------------------------------------------------------------------ mistakes: exit 2, one line

@pytest.fixture(scope="module")
def bad_files(workdir):
    d = workdir / "bad"
    d.mkdir()
    (d / "not.onnx").write_bytes(b"this is not protobuf \x00\xff")
    (d / "no_optimizer.py").write_text(MODEL_PY.replace("optimizer = optimizers.Adam(1e-2)", ""))
    (d / "raises.py").write_text("x = 1\ny = undefined_name + 1\n")
    (d / "syntax.py").write_text("model = (\n")
    np.savez(d / "no_y.npz", x=np.zeros((4, 4), np.float32))
    np.savez(d / "wide.npz", x=np.zeros((8, 7), np.float32), y=np.zeros(8, np.int64))
    np.savez(d / "bad_labels.npz", x=np.zeros((8, 4), np.float32), y=np.full(8, 9, np.int64))
    np.savez(d / "half_val.npz", x=np.zeros((8, 4), np.float32), y=np.zeros(8, np.int64), x_val=np.zeros((2, 4)))
    (d / "text.npz").write_text("not a zip")
    (d / "broken_bundle").mkdir()
    (d / "broken_bundle" / "manifest.json").write_text("{not json")
    return d


ERRORS = [
    ([], ["choose a verb"]),
    (["frobnicate"], ["invalid choice"]),
    (["loss"], ["NAME"]),
    (["loss", "hubr"], ["unknown loss", "huber"]),
    (["loss", "huber", "-p", "delta=-1"], ["delta", "> 0"]),
    (["loss", "huber", "-p", "delta"], ["name=value"]),
    (["loss", "huber", "-p", "dleta=1"], ["dleta", "delta"]),
    (["loss", "huber", "-e", "y_pred"], ["not both"]),
    (["loss", "-e", "log(y_pred"], ["syntax"]),
    (["loss", "-e", "y_true**2"], ["y_pred"]),
    (["loss", "-e", "y_pred*z"], ["unknown symbol", "z"]),
    (["loss", "-e", "__import__('os')"], []),
    (["loss", "huber", "--opset", "9"], ["opset 9", "13"]),
    (["loss", "huber", "--opset", "x"], ["invalid int"]),
    (["loss", "huber", "--dtype", "int8"], ["int8"]),
    (["loss", "huber", "-o", "/proc/no/such/dir/h.onnx"], []),
    (["explain", "hubr"], ["huber"]),
    (["explain", "y_pred +* 2"], ["syntax"]),
    (["explain"], ["NAME|EXPR"]),
    (["inspect", "{w}/missing.onnx"], ["does not exist"]),
    (["inspect", "{w}/bad/not.onnx"], ["not an ONNX model"]),
    (["inspect", "{w}"], ["folder"]),
    (["compile", "{w}/missing.py", "-o", "{w}/b2"], ["does not exist"]),
    (["compile", "{w}/model.py"], ["-o"]),
    (["compile", "{w}/bad/no_optimizer.py", "-o", "{w}/b2"], ["missing: optimizer"]),
    (["compile", "{w}/bad/raises.py", "-o", "{w}/b2"], ["line 2", "NameError", "undefined_name"]),
    (["compile", "{w}/bad/syntax.py", "-o", "{w}/b2"], ["SyntaxError"]),
    (["train", "{w}/missing_bundle", "--data", "{w}/data.npz"], ["no bundle"]),
    (["train", "{w}/bad/broken_bundle", "--data", "{w}/data.npz"], ["corrupt"]),
    (["train", "{w}/bundle"], ["--data"]),
    (["train", "{w}/bundle", "--data", "{w}/missing.npz"], ["does not exist"]),
    (["train", "{w}/bundle", "--data", "{w}/bad/no_y.npz"], ["'y'"]),
    (["train", "{w}/bundle", "--data", "{w}/bad/text.npz"], ["npz"]),
    (["train", "{w}/bundle", "--data", "{w}/bad/half_val.npz"], ["x_val", "y_val"]),
    (["train", "{w}/bundle", "--data", "{w}/bad/wide.npz"], ["7", "4"]),
    (["train", "{w}/bundle", "--data", "{w}/bad/bad_labels.npz"], ["9"]),
    (["train", "{w}/bundle", "--data", "{w}/data.npz", "--epochs", "0"], ["--epochs"]),
    (["train", "{w}/bundle", "--data", "{w}/data.npz", "--batch-size", "-3"], ["--batch-size"]),
    (["train", "{w}/bundle", "--data", "{w}/data.npz", "--provider", "tpu"], ["tpu"]),
    (["export", "{w}/missing_bundle"], ["no bundle"]),
    (["export", "{w}/bundle", "-o", "{w}/e.onnx", "--opset", "12"], ["opset", "13"]),
    (["demo", "--epochs", "0"], ["--epochs"]),
]


@pytest.mark.parametrize("argv,needles", ERRORS, ids=[" ".join(a) or "(none)" for a, _ in ERRORS])
def test_mistakes_print_one_line_and_exit_2(capsys, workdir, bad_files, argv, needles):
    rc, out, err = cli(capsys, *[a.replace("{w}", str(workdir)) for a in argv])
    assert_one_line_error(rc, err, *needles)


def test_runtime_verbs_do_not_import_sympy(workdir, tmp_path):
    """train, export and inspect, symgrad.runtime and Trainer.load run without sympy."""
    import shutil
    shutil.copytree(workdir / "bundle", tmp_path / "bundle")
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import symgrad.runtime
        from symgrad.runtime import Trainer
        from symgrad.runtime.cli import main
        b = {str(tmp_path / "bundle")!r}
        assert main(["train", b, "--data", {str(workdir / "data.npz")!r}, "--epochs", "1", "-q"]) == 0
        assert main(["export", b, "-o", {str(tmp_path / "m.onnx")!r}, "--opset", "14"]) == 0
        assert main(["inspect", {str(tmp_path / "m.onnx")!r}]) == 0
        t = Trainer.load(b)
        t.predict(np.zeros((2, 4), np.float32), verbose=0)
        t.fit(np.zeros((4, 4), np.float32), np.zeros(4, np.int64), epochs=1, verbose=0)
        assert main(["train", b, "--data", "missing.npz"]) == 2
        print("SYMPY", "sympy" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "SYMPY False" in out.stdout


def test_loss_expression_takes_its_name_from_the_output_file(capsys, tmp_path):
    rc, out, _ = cli(capsys, "loss", "-e", "abs(y_pred - y_true)**3", "-o", tmp_path / "cubic.onnx")
    assert rc == 0 and "loss 'cubic'" in out
    yt, yp = np.zeros((2, 2), np.float32), np.array([[1, -2], [3, 0.5]], np.float32)
    res, model = ort_run(tmp_path / "cubic.onnx", y_true=yt, y_pred=yp)
    assert float(res["loss"]) == pytest.approx(np.mean(np.abs(yp) ** 3), rel=1e-6)
    np.testing.assert_allclose(res["grad_y_pred"], 3 * yp * np.abs(yp) / yp.size, rtol=1e-5)


def test_explain_prints_the_textbook_derivative_of_categorical_crossentropy(capsys):
    rc, out, _ = cli(capsys, "explain", "categorical_crossentropy")
    assert rc == 0
    derivative = re.search(r"dL/dy_pred = (.*)", out).group(1)
    assert "Heaviside" not in derivative and len(derivative) < 80, derivative
    assert derivative == "sum(y_true/sum(y_pred, axis=1), axis=1) - y_true/y_pred"
    assert "inside the clip range" in out and "label_smoothing = 0" in out

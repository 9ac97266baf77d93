"""RayTrainer (runtime/distributed) against the single-process Trainer on the same global
batch: the Trainer is checked elsewhere against NumPy references, and here it is the
oracle for data-parallel numbers. One small local Ray cluster serves the whole module;
it is shut down at the end and no process it started may be left behind."""
import os
import signal
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from symgrad.compiler import Sequential, compile_model, layers, losses, optimizers  # noqa: E402
from symgrad.compiler.errors import ParameterError, WorkerError  # noqa: E402
from symgrad.runtime import Trainer, callbacks  # noqa: E402
from symgrad.runtime.distributed import RayTrainer, shard_bounds  # noqa: E402

HANG_GUARD = 120.0      # seconds; a guard against hanging, not a timing assertion


def _children():
    """{pid: parent pid} of every live process on the machine (from /proc)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                out[int(entry)] = int(fields[1])
    return out


def _descendants(root):
    parents = _children()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def _alive(pids):
    live = _children()
    return sorted(p for p in pids if p in live)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    started = set()
    yield started              # tests add their workers' pids
    started |= _descendants(os.getpid())
    ray.shutdown()
    deadline = time.monotonic() + HANG_GUARD
    while _alive(started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(started), f"processes left behind after ray.shutdown(): {_alive(started)}"


def _data(n, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    return x, y


def _program(dtype, optimizer, extra=(), **loss):
    model = Sequential([layers.Dense(8, activation="tanh"), *extra, layers.Dense(3)], input_shape=(4,))
    return compile_model(model, losses.get("sparse_categorical_crossentropy", from_logits=True, **loss), optimizer,
                         metrics=["accuracy"], dtype=dtype, seed=0, sample_weight="reduction" in loss)


def _assert_states(got, want, rtol, atol=0.0):
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol, err_msg=name)


def _fit_both(program, cluster, x, y, rtol, shard_transfer="indices", allreduce="driver", batches=False, **fit):
    single = Trainer(program, seed=11)
    h1 = single.fit(x, y, verbose=0, **fit)
    with RayTrainer(program, num_workers=2, seed=11, step_timeout=HANG_GUARD, shard_transfer=shard_transfer,
                    allreduce=allreduce) as dp:
        cluster.update(dp.worker_pids())
        h2 = dp.fit(x, y, verbose=0, **fit)
        assert h2.history.keys() == h1.history.keys()
        for key in h1.history:
            np.testing.assert_allclose(h2.history[key], h1.history[key], rtol=rtol, err_msg=key)
        _assert_states(dp.state_dict(), single.state_dict(), rtol)
        assert all(seconds > 0 for seconds in dp.profile()["worker_compute_s"])    # every worker computed
        for replica in dp.worker_states():          # the replicas are the driver's state, bit for bit
            _assert_states(replica, dp.state_dict(), 0.0)
        np.testing.assert_allclose(dp.predict(x[:9], verbose=0), single.predict(x[:9], verbose=0), rtol=rtol)
        if batches:                 # then an iterable of batches (its rows travel; same batch size as before)
            data = [(x[i:i + 16], y[i:i + 16]) for i in range(0, len(x), 16)]
            single.fit(data, epochs=1, verbose=0)
            dp.fit(data, epochs=1, verbose=0)
            _assert_states(dp.state_dict(), single.state_dict(), rtol)
    return h2


def test_shard_bounds_split_a_short_batch_evenly():
    assert shard_bounds(16, 2).tolist() == [0, 8, 16]
    assert shard_bounds(5, 2).tolist() == [0, 3, 5]
    assert shard_bounds(1, 2).tolist() == [0, 1, 1]          # an empty shard for the second worker
    assert shard_bounds(10, 4).tolist() == [0, 3, 6, 8, 10]


class ScaleGradients(callbacks.Callback):
    """Halves the gradients of the first layer before each update (the split step's hooks)."""

    def on_before_optimizer_step(self, batch, logs=None):
        grads = self.trainer.get_gradients()
        first = sorted(grads)[0]
        self.trainer.set_gradients({first: 0.5 * grads[first]})


def test_float64_matches_single_process_trainer(cluster):
    """65 rows in batches of 16: the last batch has one row, so worker 1 gets an empty
    shard; validation, shuffling and a learning-rate schedule run on the driver."""
    x, y = _data(65)
    for hooks in ([], [ScaleGradients()]):     # the fused step, then gradients/update with a gradient hook
        schedule = callbacks.LearningRateScheduler(lambda epoch, lr: 0.05 * 0.5 ** epoch)
        _fit_both(_program("float64", optimizers.SGD(0.05, momentum=0.9)), cluster, x, y, rtol=1e-9,
                  batches=not hooks, epochs=3, batch_size=16, shuffle=True, validation_data=(x[:20], y[:20]),
                  callbacks=[schedule, *hooks])


def test_float32_adam_matches_single_process_trainer(cluster):
    """69 rows in batches of 16: the last batch (5 rows) splits 3 + 2. A weighted-mean loss
    (sum w*L / sum w) with sample weights: the shards weigh by their sums of weights. The
    shards travel as rows here (the other tests send indices into the dataset)."""
    x, y = _data(69, seed=1)
    sw = np.random.default_rng(4).uniform(0.1, 2.0, len(x))
    _fit_both(_program("float32", optimizers.Adam(0.02), reduction="weighted_mean"), cluster, x.astype(np.float32),
              y, rtol=1e-5, shard_transfer="rows", epochs=3, batch_size=16, shuffle=True, sample_weight=sw)


def test_collective_allreduce_matches_single_process_trainer(cluster):
    """allreduce='collective' (ray.util.collective, gloo: needs torch, so CI skips it)."""
    pytest.importorskip("torch")
    x, y = _data(69, seed=1)
    _fit_both(_program("float64", optimizers.Adam(0.02)), cluster, x, y, rtol=1e-9, allreduce="collective",
              epochs=2, batch_size=16, shuffle=True)


def test_collective_allreduce_without_torch_is_a_clear_error(cluster, monkeypatch):
    import ray.util.collective as col
    monkeypatch.setattr(col, "is_backend_available", lambda backend: False)
    with pytest.raises(ParameterError, match="needs torch"):
        RayTrainer(_program("float32", "sgd"), num_workers=2, allreduce="collective")


def test_too_many_workers_for_the_cluster_is_a_clear_error(cluster):
    with pytest.raises(ParameterError, match="need 3 CPUs; the Ray cluster has 2"):
        RayTrainer(_program("float32", "sgd"), num_workers=3)


class KillWorker(callbacks.Callback):
    """SIGKILL one worker's process after batch ``at`` of epoch ``epoch``."""

    def __init__(self, pid, epoch, at):
        super().__init__()
        self.pid, self.epoch_at, self.at, self.epoch = pid, epoch, at, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (self.epoch_at, self.at):
            os.kill(self.pid, signal.SIGKILL)


def test_batch_norm_and_dropout_reproduce_and_resume_after_a_killed_worker(cluster, tmp_path):
    x, y = _data(96, seed=2)
    x = x.astype(np.float32)
    program = _program("float32", optimizers.Adam(0.01),
                       extra=(layers.BatchNormalization(momentum=0.9), layers.Dropout(0.3)))
    fit = dict(epochs=3, batch_size=16, shuffle=True, verbose=0)

    def backup():
        return callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=2)

    with RayTrainer(program, num_workers=2, seed=5, step_timeout=HANG_GUARD) as dp:
        cluster.update(dp.worker_pids())
        reference = dp.fit(x, y, callbacks=[backup()], **fit).history
        want = dp.state_dict()
        for replica in dp.worker_states():
            _assert_states(replica, want, 0.0)
    assert reference["loss"][-1] < reference["loss"][0]
    moving = [k for k in want if k.endswith("moving_mean")]
    assert moving and not np.array_equal(want[moving[0]], program.bundle().state[moving[0]])

    with RayTrainer(program, num_workers=2, seed=5, step_timeout=HANG_GUARD) as dp:
        cluster.update(dp.worker_pids())
        killer = KillWorker(dp.worker_pids()[1], epoch=1, at=2)
        with pytest.raises(WorkerError, match=r"Ray worker 1 of 2 \(pid \d+\) died"):
            dp.fit(x, y, callbacks=[killer, backup()], **fit)
        assert not dp.workers                                  # released; the next fit starts new ones
        resumed = dp.fit(x, y, callbacks=[backup()], **fit).history
        cluster.update(dp.worker_pids())
        _assert_states(dp.state_dict(), want, 0.0)             # bit for bit where the uninterrupted run ended
        assert resumed == reference, (resumed, reference)
    assert not (tmp_path / "backup").exists()

    with RayTrainer(program, num_workers=2, seed=6, step_timeout=HANG_GUARD) as dp:   # other seed, other noise
        cluster.update(dp.worker_pids())
        other = dp.fit(x, y, **fit).history
    assert other["loss"] != reference["loss"]


def test_example_runs_on_the_module_cluster(cluster, tmp_path):
    """examples/ray_data_parallel.py at smoke size, connected to this module's cluster
    through RAY_ADDRESS; its printed accuracy is recomputed from the model it exported."""
    import runpy
    import subprocess
    import sys

    import onnxruntime as ort
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
    script = os.path.join(root, "examples", "ray_data_parallel.py")
    env = dict(os.environ, SYMGRAD_SMOKE="1", RAY_ADDRESS=ray.get_runtime_context().gcs_address)
    out = subprocess.run([sys.executable, script, "--out-dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=HANG_GUARD * 3, cwd=root, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    printed = float(out.stdout.split("evaluate: val_loss ")[1].split("val_accuracy ")[1].split()[0])
    make_data = runpy.run_path(script)["make_data"]
    xv, yv = make_data(300, seed=1)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"x": xv})
    assert printed == pytest.approx(np.mean(logits.argmax(1) == yv), abs=1e-4)
    assert printed > 0.7
    assert (tmp_path / "best.onnx").is_file() and not (tmp_path / "backup").exists()


@pytest.mark.slow
def test_scaling_benchmark_smoke_run_on_the_module_cluster():
    """benchmarks/scaling.py --quick keeps running (it is no test of speed)."""
    import subprocess
    import sys
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
    env = dict(os.environ, RAY_ADDRESS=ray.get_runtime_context().gcs_address)
    out = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "scaling.py"), "--quick"],
                         capture_output=True, text=True, timeout=HANG_GUARD * 5, cwd=root, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "RayTrainer x2" in out.stdout and "comm share" in out.stdout and "Gbit/s" in out.stdout


def test_batch_norm_statistics_are_the_size_weighted_mean_of_the_shards(cluster):
    """One step over 30 rows (shards of 15): the moving mean is the global batch's, as a
    NumPy reference computes it; the moving variance averages the shards' own variances
    (each worker normalises with its shard's statistics: no SyncBatchNorm)."""
    x, y = _data(30, seed=3)
    model = Sequential([layers.Dense(8, activation="tanh"), layers.BatchNormalization(momentum=0.9),
                        layers.Dense(3)], input_shape=(4,))
    program = compile_model(model, losses.get("sparse_categorical_crossentropy", from_logits=True),
                            optimizers.SGD(0.1), dtype="float64", seed=0)
    init = program.bundle().state
    h = np.tanh(x @ init["dense/kernel"] + init["dense/bias"])
    with RayTrainer(program, num_workers=2, seed=0, step_timeout=HANG_GUARD) as dp:
        cluster.update(dp.worker_pids())
        dp.fit(x, y, batch_size=30, epochs=1, shuffle=False, verbose=0)
        state = dp.state_dict()
    np.testing.assert_allclose(state["batch_normalization/moving_mean"], 0.1 * h.mean(0), rtol=1e-12)
    shard_var = (h[:15].var(0) + h[15:].var(0)) / 2
    np.testing.assert_allclose(state["batch_normalization/moving_variance"], 0.9 + 0.1 * shard_var, rtol=1e-12)


def test_programs_it_cannot_train_exactly_are_refused_before_any_worker_starts():
    """Epoch metrics: their statistics would stay on the workers (refused in the constructor,
    before a worker starts)."""
    from symgrad.compiler import metrics_stateful
    model = Sequential([layers.Dense(3, activation="sigmoid")], input_shape=(4,))
    with_precision = compile_model(model, loss="binary_crossentropy", optimizer=optimizers.SGD(0.1),
                                   metrics=[metrics_stateful.Precision()])
    with pytest.raises(ParameterError, match="epoch metrics"):
        RayTrainer(with_precision, num_workers=1)

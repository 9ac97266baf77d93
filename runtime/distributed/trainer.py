"""RayTrainer: the Trainer's fit loop with each step run data-parallel on Ray actors.

    trainer = RayTrainer(program, num_workers=4, seed=0)   # ray.init(address=...) first for a cluster
    trainer.fit(x, y, epochs=10, batch_size=256, callbacks=[...])

The driver is a Trainer: the fit/evaluate/predict loops, the callbacks, checkpoints and
export are the single-process ones. Only the step differs (``_step_runner``). A step splits
the global batch into one shard per worker (sizes differ by at most one row), each worker
returns its gradients, updated batch-norm statistics and scalars as one flat buffer, and
the driver averages them weighted so that the result is the global batch's mean (a short
last batch included). The driver applies the average to its own replica with ``update``
(so evaluate, predict, export and checkpoints read an up-to-date state without asking the
workers) and sends it back in one ``ray.put``; the workers apply it at the start of their
next call. Why the driver averages rather than a ring among the workers: see README
("Data-parallel training on Ray"), measured by benchmarks/scaling.py. With
``allreduce="collective"`` the workers sum among themselves (ray.util.collective, gloo)
and update at once; the driver's replica takes rank 0's sum.
"""
import numbers
import os
import time
import warnings

import numpy as np
import onnxruntime as ort

from symgrad.compiler.errors import ParameterError

from ..trainer import Trainer
from .layout import graph_layout
from .pool import WorkerPool
from .shards import MODES, IndexedInputs, batch_column, shard_rows


def _ray():
    try:
        import ray
    except ImportError:
        raise ParameterError("RayTrainer needs Ray: pip install \"symgrad[ray]\"") from None
    return ray


def shard_bounds(n, k):
    """Row bounds of ``k`` shards of ``n`` rows, sizes differing by at most one (the first
    ``n % k`` shards get the extra row; with n < k the last shards are empty)."""
    sizes = np.full(k, n // k, dtype=np.int64)
    sizes[:n % k] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


class RayTrainer(Trainer):
    """Data-parallel training of a Program, Bundle or bundle folder on ``num_workers`` Ray actors.

    seed: shuffling and (per worker, derived) dropout noise, as Trainer's seed.
    num_cpus_per_worker: the CPUs each actor reserves (and its onnxruntime thread count).
    shard_transfer: "indices" (arrays go to Ray's object store once per fit; a step sends row
    indices) or "rows" (a step sends each worker its rows); iterables of batches always
    send rows. See shards.py and benchmarks/scaling.py.
    allreduce: "driver" (the workers' buffers are averaged here and sent back with one
    ray.put; needs nothing but Ray) or "collective" (summed among the workers in place by
    ray.util.collective's gloo backend, which needs torch installed on every node; the
    gradient hooks on_after_backward / on_before_optimizer_step need "driver").
    step_timeout: seconds a step may take before the workers are declared hung (None: no limit;
    a worker that dies is reported at once either way).
    init_kwargs: passed to ``ray.init`` when no Ray cluster is connected yet and RAY_ADDRESS
    names none, to start a local one; ``shutdown()`` stops the cluster that the trainer
    started (or disconnects from the one RAY_ADDRESS named).
    Other keywords: onnxruntime session options by keyword, as Trainer (provider is CPU).
    """

    def __init__(self, program, num_workers=2, seed=None, num_cpus_per_worker=1, step_timeout=600.0,
                 shard_transfer="indices", allreduce="driver", init_kwargs=None, **session_opts):
        for name, value in (("num_workers", num_workers), ("num_cpus_per_worker", num_cpus_per_worker)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ParameterError(f"{name} must be an integer >= 1, got {value!r}")
        if step_timeout is not None and (isinstance(step_timeout, bool) or not isinstance(step_timeout, numbers.Real)
                                         or not step_timeout > 0):
            raise ParameterError(f"step_timeout must be a number of seconds > 0 or None, got {step_timeout!r}")
        if shard_transfer not in MODES:
            raise ParameterError(f"shard_transfer must be one of {', '.join(map(repr, MODES))}, got {shard_transfer!r}")
        if allreduce not in ("driver", "collective"):
            raise ParameterError(f"allreduce must be 'driver' or 'collective', got {allreduce!r}")
        if "session_options" in session_opts or "provider" in session_opts:
            raise ParameterError("RayTrainer takes onnxruntime session options by keyword only (they are sent to "
                                 "the workers) and trains on the CPU provider")
        super().__init__(program, provider="cpu", seed=seed, **dict(session_opts))
        if self.manifest.get("metric_states"):
            raise ParameterError(f"RayTrainer does not compute epoch metrics yet ({', '.join(self.manifest['metric_states'])}:"
                                 " their per-batch statistics stay on the workers); compile without them, or "
                                 "train this program with Trainer")
        self.num_workers = int(num_workers)
        self._cpus = int(num_cpus_per_worker)
        self._worker_opts = {"intra_op_num_threads": self._cpus, **session_opts}
        self.shard_transfer = shard_transfer
        self.allreduce = allreduce
        if shard_transfer == "indices":
            self._inputs = IndexedInputs(self.manifest, self._label_classes())
        self._data_src = self._data_ref = None
        self.layout, scalar_names = graph_layout(self)
        self._loss_index = scalar_names.index("loss") if "loss" in scalar_names else None
        self._flat = self.layout.new_buffer()          # the averaged buffer; the driver's grad/* live in it
        for name, offset, shape in self.layout.grads:
            self._shared[name] = ort.OrtValue.ortvalue_from_numpy(self.layout.view(self._flat, offset, shape))
        self._acc = np.zeros(self.layout.size)
        reduction = (self.manifest.get("loss") or {}).get("reduction", "sum_over_batch_size")
        self._reduction = reduction
        loss = getattr(self.program, "loss", None)
        if reduction == "weighted_mean" and (loss is None or getattr(loss, "weight", None) is not None):
            warnings.warn("RayTrainer: this loss takes a weighted mean (sum w*L / sum w). The shard losses are "
                          "combined by their share of the sample weights, which is exact when the weights are the "
                          "sample_weight input alone; weights from the labels (class_weight, ignore_index) are "
                          "invisible to the driver, so a step then differs slightly from the global batch's (as "
                          "PyTorch DDP does). reduction='sum_over_batch_size' is exact.", stacklevel=2)
        self._batch_names = None
        self._pending, self._dirty = None, True
        self._timing = dict.fromkeys(("steps", "step_s", "submit_s", "wait_s", "average_s", "update_s"), 0.0)
        ray = _ray()
        if allreduce == "collective":
            from ray.util.collective import is_backend_available
            if not is_backend_available("GLOO"):
                raise ParameterError("allreduce='collective' needs ray.util.collective's gloo backend, which needs "
                                     "torch (pip install torch) on every node; or use allreduce='driver'")
        self._started_cluster = False
        self._pool = WorkerPool(None, self.num_workers, self._cpus, self._worker_opts, allreduce == "collective",
                                step_timeout)
        if not ray.is_initialized():
            if os.environ.get("RAY_ADDRESS"):       # connect to the cluster that the environment names
                ray.init(log_to_driver=False)       # (init_kwargs describe a cluster to start: not used)
            else:
                kwargs = {"num_cpus": max(os.cpu_count() or 1, self.num_workers * self._cpus),
                          "include_dashboard": False, "log_to_driver": False}
                ray.init(**{**kwargs, **(init_kwargs or {})})
            self._started_cluster = True      # shutdown() stops it (or, for RAY_ADDRESS, disconnects)
        elif init_kwargs:
            raise ParameterError("init_kwargs is for the cluster RayTrainer starts; Ray is already initialised here")
        try:
            self._pool.bundle_ref = ray.put((self.manifest, self.bundle.graphs, self.bundle.state))
            self._pool.start()
        except BaseException:
            self.shutdown()              # a cluster started here does not outlive a failed constructor
            raise

    @classmethod
    def load(cls, path, num_workers=2, seed=None, **kwargs):
        """A RayTrainer for the bundle folder at ``path``."""
        from symgrad.compiler.bundle import Bundle
        return cls(Bundle.load(path), num_workers=num_workers, seed=seed, **kwargs)

    # ------------------------------------------------------------ workers
    @property
    def step_timeout(self):
        return self._pool.step_timeout

    @step_timeout.setter
    def step_timeout(self, value):
        self._pool.step_timeout = value

    @property
    def workers(self):
        """The worker actors (Ray ActorHandles), by rank."""
        return list(self._pool.actors)

    def worker_pids(self):
        """Process ids of the worker actors, by rank (for monitoring and fault tests)."""
        return list(self._pool.pids)

    def profile(self):
        """Where the steps' time went since the last call: ``steps``; ``step_s`` (the driver's
        wall time in steps), ``submit_s`` (sending the shards), ``wait_s`` (waiting for the
        workers), ``average_s`` (the weighted average), ``update_s`` (the driver replica's
        update); ``worker_compute_s`` (onnxruntime time of each worker, by rank);
        ``bytes_per_step`` (one worker's buffer)."""
        out = dict(self._timing)
        for key in self._timing:             # in place: a running step closure holds this dict
            self._timing[key] = 0.0
        out["worker_compute_s"] = self._pool.call("profile", what="profiling") if self._pool.actors else []
        out["bytes_per_step"] = self.layout.size * self.layout.dtype.itemsize
        return out

    def worker_states(self):
        """Each worker's replica of the state ({name: array}, by rank), after it applied the
        last update: they equal the driver's ``state_dict()`` bit for bit."""
        self._sync_workers()
        self._pool.call("step", *(self._pending or (None, None, None)), None, 0, self._step,
                        what="applying the last update")
        self._pending = None
        return self._pool.call("state", what="reading the state")

    def _sync_workers(self):
        """Start workers if there are none (a failure released them), and send them the
        driver's state if it changed outside a step."""
        if not self._pool.actors:
            self._pool.start()
            self._dirty = True
        if self._dirty:
            self._pool.call("load_state", _ray().put(self._store.snapshot()), self._step, what="loading the state")
            self._pending, self._dirty = None, False

    def shutdown(self):
        """Release the worker actors, and the Ray cluster if this trainer started it."""
        ray = _ray()
        if ray.is_initialized():
            self._pool.release()
            self._pending = None
            if self._started_cluster:
                ray.shutdown()
        self._started_cluster = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    # ------------------------------------------------------------ the data-parallel step
    def _train_kind(self, split):
        return "gradients"

    def _loop_steps(self):
        """One step per execution: a bundle's train_loop (steps_per_execution) runs K steps in
        one onnxruntime call, which has no place for the all-reduce between them."""
        return 1

    def fit(self, *args, **kwargs):
        weights = kwargs.get("sample_weight") is not None or kwargs.get("class_weight") is not None
        if weights and not self._inputs.weighted:
            raise ParameterError("RayTrainer: sample_weight and class_weight need a program compiled with "
                                 "compile_model(..., sample_weight=True) (the workers run its gradients graph)")
        self._dirty = True             # each fit starts from the driver's state (set_weights, a restore...)
        try:
            return super().fit(*args, **kwargs)
        finally:
            self._data_src = self._data_ref = None       # release the dataset in the object store

    def _shard_messages(self, plan, bounds, names):
        """One shard message (shards.py) per worker."""
        rows = getattr(plan, "rows", None)
        plan.rows = None            # the plan may next hold rows from an iterable of batches
        if rows is not None and plan.dataset is not self._data_src:
            self._data_ref, self._data_src = _ray().put(plan.dataset), plan.dataset
        out = []
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            if hi <= lo:
                out.append(None)
            elif rows is not None:
                out.append(("indices", self._data_ref, shard_rows(rows, lo, hi)))
            else:
                out.append(("rows", {name: plan.host[name][lo:hi] for name in names}))
        return out

    def _shard_weights(self, plan, bounds):
        """(loss/gradient weights, metric weights) of the shards: the global batch's loss is the
        weighted sum of the shard losses for every reduction the compiler emits."""
        sizes = np.diff(bounds).astype(np.float64)
        n = sizes.sum()
        metric = sizes / n
        if self._reduction == "sum":
            return np.where(sizes > 0, 1.0, 0.0), metric
        if self._reduction == "weighted_mean" and "sample_weight" in self._inputs.specs:
            w = batch_column(plan, self._inputs.specs["sample_weight"].name).astype(np.float64)
            per = np.array([w[lo:hi].sum() for lo, hi in zip(bounds[:-1], bounds[1:])])
            total = per.sum()
            return (per / total if total > 0 else np.zeros_like(per)), metric
        return metric, metric

    def _step_runner(self, split, cbl):
        ray = _ray()
        self._sync_workers()
        lay, flat, acc, store = self.layout, self._flat, self._acc, self._store
        update = self._plan("update", None)
        hyper = self._hyper_np
        random_inputs = bool(self._random)
        if split:
            after, before = cbl.on_after_backward, cbl.on_before_optimizer_step
        workers = self.num_workers
        collective = self.allreduce == "collective"
        if collective and split:
            raise ParameterError("callbacks overriding on_after_backward / on_before_optimizer_step change the averaged "
                                 "gradients on the driver before the update; they need allreduce='driver'")
        timing = self._timing
        clock = time.perf_counter

        def step(plan, b, steps=1):      # steps = 1 always: _loop_steps keeps RayTrainer to single steps
            if self._dirty or not self._pool.actors:
                self._sync_workers()
            t0 = clock()
            names = self._batch_names or [n for n in plan.host if n not in {r for r in self._random}]
            self._batch_names = names
            bounds = shard_bounds(plan.n, workers)
            key = int(self.rng.integers(2 ** 63)) if random_inputs else 0
            number = self._step + 1
            loss_w, metric_w = self._shard_weights(plan, bounds)
            shards = self._shard_messages(plan, bounds, names)
            if collective:
                refs = [w.step_collective.remote(shard, float(wl), key, number, self._lr)
                        for w, shard, wl in zip(self._pool.actors, shards, loss_w)]
            else:
                pending = self._pending or (None, None, None)
                refs = [w.step.remote(*pending, shard, key, number) for w, shard in zip(self._pool.actors, shards)]
            t1 = clock()
            bufs = self._pool.gather(refs, f"step {number}")
            t2 = clock()
            acc.fill(0.0)
            scalars = np.zeros(lay.n_scalars)
            for rank, (buf, shard, wl, wm) in enumerate(zip(bufs, shards, loss_w, metric_w)):
                if shard is None:
                    continue
                if collective:           # rank 0 sends the summed buffer, the others their scalars
                    tail = (buf[lay.scalars:] if rank == 0 else buf).astype(np.float64)
                else:
                    acc[:lay.sync] += wl * buf[:lay.sync]
                    tail = buf[lay.scalars:].astype(np.float64)
                scalars += wm * tail
                if self._loss_index is not None:      # the loss follows the loss reduction's weights
                    scalars[self._loss_index] += (wl - wm) * tail[self._loss_index]
            if collective:
                np.copyto(flat[:lay.sync], bufs[0][:lay.sync])
            else:
                np.copyto(flat[:lay.sync], acc[:lay.sync], casting="unsafe")
            t3 = clock()
            if split:
                logs = dict(zip([n[7:] if n.startswith("metric/") else n for n in plan.scalar_names],
                                scalars.tolist()))
                after(b, logs)
                before(b, logs)        # may change the averaged gradients (set_gradients)
            p = store.parity
            for name, offset, shape in lay.state:
                store.pairs[name][1 - p].update_inplace(np.ascontiguousarray(lay.view(flat, offset, shape)))
            if "step" in hyper:
                hyper["step"].fill(number)
            t4 = clock()
            update.run[p]()
            store.parity = p ^ 1
            t5 = clock()
            if not collective:
                self._pending = (ray.put(flat[:lay.sync]), self._lr, number)
            timing["steps"] += 1
            timing["step_s"] += clock() - t0
            timing["submit_s"] += t1 - t0
            timing["wait_s"] += t2 - t1
            timing["average_s"] += t3 - t2
            timing["update_s"] += t5 - t4
            return scalars
        return step

    # ------------------------------------------------------------ state changes outside a step
    def set_weights(self, weights):
        super().set_weights(weights)
        self._dirty = True

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._dirty = True

    def load_checkpoint(self, path):
        super().load_checkpoint(path)
        self._dirty = True

    def revert_last_step(self):
        super().revert_last_step()
        self._dirty = True

    def train_on_batch(self, *args, **kwargs):
        """One step on the driver's replica (single-process); the workers catch up at the next fit."""
        self._dirty = True
        return super().train_on_batch(*args, **kwargs)

    def _resume_from(self, tensors, meta, callbacks, source):
        super()._resume_from(tensors, meta, callbacks, source)
        self._dirty = True

    def __repr__(self):
        return super().__repr__().replace("Trainer(", f"RayTrainer(num_workers={self.num_workers}, ", 1)


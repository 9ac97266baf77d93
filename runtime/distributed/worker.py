"""The Ray actor of data-parallel training: one replica of the training state.

A worker holds a Trainer (onnxruntime sessions for ``gradients`` and ``update``, the
state in ping-pong OrtValues, exactly as the single-process trainer keeps it) whose
``grad/*`` outputs are bound to views of one flat buffer (layout.py). A step is one call:

    step(averaged, learning_rate, applied_step, shard, key, step) -> flat buffer of this
    shard's gradients, state and scalars

``averaged`` is the previous step's averaged gradients and state with its learning rate
and step number: the worker applies it (``update``) before it computes the gradients of
its shard, so a step costs one round trip. The dropout noise of the shard is drawn from
``numpy.random.default_rng([key, rank])``: ``key`` comes from the driver's generator, so
runs reproduce from the trainer's seed and a resumed run draws the same noise.
"""
import os
import time

import numpy as np

from symgrad.compiler.bundle import Bundle

from ..trainer import Trainer
from .layout import graph_layout
from .shards import ShardReader


class Worker:
    def __init__(self, rank, bundle_parts, session_opts):
        self.rank = rank
        self.trainer = t = Trainer(Bundle(*bundle_parts), **session_opts)
        self.layout, _ = graph_layout(t)
        self.flat = self.layout.new_buffer()
        import onnxruntime as ort
        for name, offset, shape in self.layout.grads:      # before any session binds them
            t._shared[name] = ort.OrtValue.ortvalue_from_numpy(self.layout.view(self.flat, offset, shape))
        self.update = t._plan("update", None)
        self.reader = ShardReader()
        self.compute_s = 0.0        # seconds in onnxruntime runs, for benchmarks/scaling.py
        self.grads_part = self.flat[:self.layout.state[0][1] if self.layout.state else self.layout.sync]

    def pid(self):
        return os.getpid()

    def profile(self):
        """Seconds spent computing (update + gradients runs) since the last call."""
        spent, self.compute_s = self.compute_s, 0.0
        return spent

    def state(self):
        return self.trainer._store.snapshot()

    def load_state(self, tensors, step):
        """Replace the replica's state (the driver's, at the start of a fit or after a change)."""
        t = self.trainer
        for name in t._store.entries:
            t._store.set(name, tensors[name])
        t._step = step
        return True

    def _apply(self, averaged, learning_rate, step):
        t, store, lay = self.trainer, self.trainer._store, self.layout
        p = store.parity
        np.copyto(self.grads_part, averaged[:len(self.grads_part)])
        for name, offset, shape in lay.state:
            store.pairs[name][1 - p].update_inplace(np.ascontiguousarray(lay.view(averaged, offset, shape)))
        hyper = t._hyper_np
        if "learning_rate" in hyper:
            hyper["learning_rate"].fill(learning_rate)
        if "step" in hyper:
            hyper["step"].fill(step)
        self.update.run[p]()
        store.parity = p ^ 1
        t._step = step

    def step(self, averaged, learning_rate, applied_step, shard, key, step):
        """Apply the previous step's ``averaged`` buffer (None: nothing pending) with its
        learning rate and step number, then the gradients of ``shard`` (shards.py; None for
        an empty shard): the flat buffer, or None for an empty shard. (``averaged`` is a
        top-level argument so that Ray resolves its ObjectRef, zero-copy.)"""
        start = time.perf_counter()
        if averaged is not None:
            self._apply(averaged, learning_rate, applied_step)
        out = None if shard is None else self._gradients(shard, key, step)
        self.compute_s += time.perf_counter() - start
        return out          # Ray copies it into the reply before the next call reuses it

    def _gradients(self, shard, key, step):
        t, store, lay = self.trainer, self.trainer._store, self.layout
        plan = t._plan("gradients", self.reader.size(shard))
        self.reader.fill(plan, shard)
        if plan.noise:
            rng = np.random.default_rng([key, self.rank])
            for buf, dtype in plan.noise:
                rng.random(out=buf, dtype=dtype)
        if "step" in t._hyper_np:
            t._hyper_np["step"].fill(step)
        p = store.parity
        plan.run[p]()
        for name, offset, shape in lay.state:
            lay.view(self.flat, offset, shape)[...] = store.pairs[name][1 - p].numpy()
        self.flat[lay.scalars:] = plan.read_scalars()
        return self.flat

    # ------------------------------------------------------------ allreduce="collective"
    def join_group(self, world_size, group_name):
        import ray.util.collective as col
        col.init_collective_group(world_size, self.rank, backend="gloo", group_name=group_name)
        self.group = group_name
        return True

    def step_collective(self, shard, weight, key, step, learning_rate):
        """The gradients of ``shard`` scaled by ``weight`` (its share of the global batch's
        loss), summed over the group in place with ray.util.collective (gloo), then the
        update: no pending buffer. Rank 0 returns the whole buffer (the driver's replica
        needs the sum), the others only their scalars."""
        import ray.util.collective as col
        start = time.perf_counter()
        lay = self.layout
        part = self.flat[:lay.sync]
        if shard is None:
            part[...] = 0
        else:
            self._gradients(shard, key, step)
            part *= weight
        compute = time.perf_counter() - start
        col.allreduce(part, self.group)
        start = time.perf_counter()
        self._apply(self.flat, learning_rate, step)
        self.compute_s += compute + time.perf_counter() - start
        return self.flat if self.rank == 0 else self.flat[lay.scalars:].copy()

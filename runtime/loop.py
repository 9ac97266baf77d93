"""The fit, evaluate and predict loops (Keras order of hooks and stop checks).

fit:  on_train_begin -> for epoch: on_epoch_begin -> for batch: on_train_batch_begin,
      step, on_train_batch_end, *stop_training?* -> epoch logs (+ val_ logs from an
      evaluate pass with on_test_* hooks) -> on_epoch_end -> *stop_training?* ->
      on_train_end(last epoch logs) -> History.

A step is: gather the batch rows into the bound buffers, draw the dropout noise into
its buffer, write the step number, run the IOBinding of the current parity, flip the
parity, copy the scalar outputs into the epoch's record. Batch hooks, and the logs
dict they receive (running means, as Keras), exist only when a callback uses them.
"""
import numpy as np

from .metric_state import MetricStates

_GROW = 64


def _nothing():
    pass


def log_name(output):
    return output[7:] if output.startswith("metric/") else output


class Progress:
    """Where the fit loop is inside an epoch, for mid-epoch checkpoints and epoch logs."""

    def __init__(self, epoch, rng_epoch, names, steps, data_info):
        self.epoch = epoch
        self.batch = 0                      # batches done in this epoch
        self.rng_epoch = rng_epoch          # generator state before the epoch's shuffle
        self.names = names
        self.records = np.zeros((steps or _GROW, len(names)))
        self.sizes = np.zeros(steps or _GROW, dtype=np.int64)
        self.data_info = data_info

    def grow(self):
        self.records = np.concatenate([self.records, np.zeros_like(self.records)])
        self.sizes = np.concatenate([self.sizes, np.zeros_like(self.sizes)])

    def load(self, records, sizes):
        k = len(sizes)
        while len(self.sizes) < k:
            self.grow()
        self.records[:k] = records
        self.sizes[:k] = sizes
        self.batch = k

    def logs(self):
        """Epoch means of the batch values, weighted by batch size (Keras Mean tracker)."""
        k = self.batch
        if k == 0:
            return {}
        w = self.sizes[:k].astype(np.float64)
        means = (self.records[:k] * w[:, None]).sum(0) / w.sum()
        return dict(zip(self.names, means.tolist()))

    def position(self):
        return {"epoch": self.epoch, "batch": self.batch, "rng_epoch": self.rng_epoch,
                "records": self.records[:self.batch].copy(), "sizes": self.sizes[:self.batch].copy(),
                "data": self.data_info}


def local_step(tr, split, cbl):
    """The single-process step: ``step(plan, b, k)`` runs one execution on a filled plan
    (k = 1 step, or k > 1 stacked batches of a train_loop plan) and returns its scalars
    (loss, metrics). Noise, step number, run, [hooks, update], flip."""
    store = tr._store
    step_buf = tr._hyper_np.get("step")
    random = tr.rng.random
    if split:
        update = tr._plan("update", None)
        after, before = cbl.on_after_backward, cbl.on_before_optimizer_step

    def step(plan, b, k):
        if k == 1:
            for buf, dtype in plan.noise:
                random(out=buf, dtype=dtype)
        else:   # the noise K single steps would draw, in the same order
            for j in range(k):
                for buf, dtype in plan.noise:
                    random(out=buf[j], dtype=dtype)
        if step_buf is not None:
            step_buf.fill(tr._step + 1)
        p = store.parity
        plan.run[p]()
        if split:
            logs = dict(zip([log_name(o) for o in plan.scalar_names], plan.read_scalars().tolist()))
            after(b, logs)
            before(b, logs)
            update.run[p]()
        store.parity = p ^ 1
        return plan.read_scalars()
    return step


def run_train_batches(tr, executions, cbl, prog, split, states=None):
    """``executions`` yields (plan, k): k = 1 for a train_step (or gradients) plan, k > 1
    for a train_loop plan holding k stacked batches. Batch hooks run once per execution,
    as in Keras with steps_per_execution: begin with its first batch index, end with its
    last and the running means up to it. ``states`` accumulates epoch metrics (k = 1 only:
    a train_loop does not output them, see _executions)."""
    step = tr._step_runner(split, cbl)        # local_step, or the data-parallel one (runtime/distributed)
    begin = cbl.on_train_batch_begin if cbl.has("on_train_batch_begin") else None
    end = cbl.on_train_batch_end if cbl.has("on_train_batch_end") else None
    names = prog.names
    acc = np.zeros(len(names))
    count = 0
    if end is not None and prog.batch:
        count = int(prog.sizes[:prog.batch].sum())
        acc = (prog.records[:prog.batch] * prog.sizes[:prog.batch, None]).sum(0)
    b = prog.batch
    for plan, k in executions:
        if begin is not None:
            begin(b, None)
        scalars = step(plan, b, k)
        tr._step += k
        tr._last_steps = k
        while b + k > len(prog.sizes):
            prog.grow()
        prog.records[b:b + k] = scalars
        prog.sizes[b:b + k] = plan.n
        if states:
            states.update(plan.outputs)
        b += k
        prog.batch = b
        if end is not None:
            tr.batch_logs = dict(zip(names, prog.records[b - 1].tolist()), size=plan.n)   # the last batch alone
            acc += prog.records[b - k:b].sum(0) * plan.n
            count += plan.n * k
            logs = dict(zip(names, (acc / count).tolist()))
            if states:
                logs.update(states.results(running=True))
            end(b - 1, logs)
        if tr.stop_training:
            break


def _executions(tr, train, order, kind, skip, single):
    """(plan, k) pairs for one epoch: K full batches per train_loop run when the bundle
    has one (steps_per_execution=K) and neither per-step hooks nor epoch metrics (which a
    train_loop does not output) need single steps, else single steps."""
    get_plan = lambda n, w=False: tr._plan(kind, n, w)   # noqa: E731
    # weighted batches of a program compiled without sample weights run train_step_weighted
    reweighted = "sample_weight" in getattr(train, "arrays", {}) and not tr._inputs.weighted
    steps = 1 if single or reweighted else tr._loop_steps()
    if steps > 1 and hasattr(train, "executions"):
        return train.executions(order, get_plan, lambda n: tr._plan("train_loop", n), steps, skip=skip)
    return ((plan, 1) for plan in train.batches(order, get_plan, skip=skip))


def fit_loop(tr, train, val, epochs, initial_epoch, cbl, validation_freq, split):
    tr.stop_training = False
    tr._callbacks = cbl
    tr._resume = None
    kind = tr._train_kind(split)
    gs = tr._session(kind)
    names = [log_name(o) for o in gs.scalar_names]
    states = MetricStates(tr.manifest, gs.outputs)
    data_info = {"n": getattr(train, "n", None), "batch_size": getattr(train, "batch_size", None),
                 "shuffle": getattr(train, "shuffle", False)}
    try:
        cbl.on_train_begin(None)
        resume, tr._resume = tr._resume, None
        start = initial_epoch
        if resume is not None:
            start = resume["epoch"]
            if resume.get("batch"):
                tr._check_resume_data(resume, data_info)
            else:
                resume = None
        training_logs = None
        for epoch in range(start, epochs):
            tr._epoch = epoch
            cbl.on_epoch_begin(epoch, None)
            if resume is not None:                    # mid-epoch resume: same order, same noise
                current = tr.rng.bit_generator.state
                tr.rng.bit_generator.state = resume["rng_epoch"]
                prog = tr._progress = Progress(epoch, resume["rng_epoch"], names, train.steps, data_info)
                order = train.order(tr.rng)
                tr.rng.bit_generator.state = current
                prog.load(resume["records"], resume["sizes"])
                resume = None
            else:
                prog = tr._progress = Progress(epoch, tr.rng.bit_generator.state, names, train.steps, data_info)
                order = train.order(tr.rng)
            executions = _executions(tr, train, order, kind, prog.batch, split or bool(states))
            states.reset()          # a mid-epoch resume restarts them from the resumed batch
            run_train_batches(tr, executions, cbl, prog, split, states)
            epoch_logs = prog.logs()
            epoch_logs.update(states.results())
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = evaluate_loop(tr, val, cbl)
                epoch_logs.update(("val_" + k, v) for k, v in val_logs.items())
            cbl.on_epoch_end(epoch, epoch_logs)
            training_logs = epoch_logs
            if tr.stop_training:
                break
        cbl.on_train_end(training_logs)
    finally:
        tr._callbacks = None
        tr._progress = None
        for cb in cbl:              # resources held for the fit (BackupAndRestore's folder lock)
            getattr(cb, "_fit_finished", _nothing)()
    return cbl.history


def evaluate_loop(tr, source, cbl):
    """Mean loss and metrics over ``source`` (weighted by batch size); on_test_* hooks."""
    gs = tr._session("eval")
    names = [log_name(o) for o in gs.scalar_names]
    begin = cbl.on_test_batch_begin if cbl.has("on_test_batch_begin") else None
    end = cbl.on_test_batch_end if cbl.has("on_test_batch_end") else None
    cbl.on_test_begin(None)
    acc = np.zeros(len(names))
    count = 0
    parity = tr._store.parity
    states = MetricStates(tr.manifest, gs.outputs)
    for b, plan in enumerate(source.batches(None, lambda n, w=False: tr._plan("eval", n, w))):
        if begin is not None:
            begin(b, None)
        plan.run[parity]()
        acc += plan.read_scalars() * plan.n
        count += plan.n
        if states:
            states.update(plan.outputs)
        if end is not None:
            logs = dict(zip(names, (acc / count).tolist()))
            if states:
                logs.update(states.results(running=True))
            end(b, logs)
    logs = dict(zip(names, (acc / max(count, 1)).tolist()))
    if states:
        logs.update(states.results())
    cbl.on_test_end(logs)
    return logs


def predict_loop(tr, source, cbl):
    gs = tr._session("inference")
    outputs = [o for o in gs.outputs]
    begin = cbl.on_predict_batch_begin if cbl.has("on_predict_batch_begin") else None
    end = cbl.on_predict_batch_end if cbl.has("on_predict_batch_end") else None
    cbl.on_predict_begin(None)
    parts = {o: [] for o in outputs}
    parity = tr._store.parity
    for b, plan in enumerate(source.batches(None, lambda n, w=False: tr._plan("inference", n))):
        if begin is not None:
            begin(b, None)
        plan.run[parity]()
        for o in outputs:
            parts[o].append(plan.outputs[o].copy())
        if end is not None:
            end(b, {"outputs": parts[outputs[0]][-1] if len(outputs) == 1 else {o: parts[o][-1] for o in outputs}})
    cbl.on_predict_end(None)
    result = {o: np.concatenate(v) for o, v in parts.items()}
    return result[outputs[0]] if len(outputs) == 1 else result

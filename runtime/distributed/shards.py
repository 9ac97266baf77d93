"""How a worker gets its shard of each batch: two ways, one message format.

- ``rows``: the driver gathers the batch (as the single-process trainer does) and sends
  each worker its rows. Works for every source, iterables of batches included.
- ``indices``: for in-memory arrays, the driver puts the dataset into Ray's object store
  once per fit, and each step sends each worker only the row indices of its shard
  (8 bytes a row instead of the row); the worker gathers its rows from its zero-copy view
  of the dataset. benchmarks/scaling.py measures both (README, "Data-parallel training").

A shard on the wire is None (an empty shard), ``("rows", {input name: rows})`` or
``("indices", dataset_ref, rows)`` with ``rows`` an index array or a ``(lo, hi)`` range.
"""
import numpy as np

from ..data import ArrayBatches
from ..inputs import Inputs

MODES = ("indices", "rows")


class IndexedBatches(ArrayBatches):
    """ArrayBatches that leave the gathering to the workers: each plan it yields carries
    ``plan.rows`` (this batch's rows of ``plan.dataset``) and unfilled host buffers."""

    def __init__(self, source):
        self.__dict__.update(source.__dict__)

    def batches(self, order, get_plan, skip=0):
        bs, n = self.batch_size, self.n
        for b in range(skip, self.steps):
            lo, hi = b * bs, min(b * bs + bs, n)
            plan = get_plan(hi - lo)
            plan.rows = (lo, hi) if order is None else order[lo:hi]
            plan.dataset = self.arrays
            yield plan


class IndexedInputs(Inputs):
    """Inputs whose training source over arrays is an IndexedBatches."""

    def train_sources(self, *args, **kwargs):
        train, val = super().train_sources(*args, **kwargs)
        return (IndexedBatches(train) if type(train) is ArrayBatches else train), val


def shard_rows(rows, lo, hi):
    """Rows ``lo:hi`` of a batch whose rows are ``rows`` (an index array or a range)."""
    if isinstance(rows, tuple):
        return (rows[0] + lo, rows[0] + hi)
    return rows[lo:hi]


def batch_column(plan, name):
    """Input ``name`` of the batch in ``plan``, wherever its rows are."""
    rows = getattr(plan, "rows", None)
    if rows is None:
        return plan.host[name]
    source = plan.dataset[name]
    return source[rows[0]:rows[1]] if isinstance(rows, tuple) else source[rows]


class ShardReader:
    """The worker's side: fills a plan's host buffers from a shard message."""

    def __init__(self):
        self._key, self._data = None, None

    def size(self, shard):
        if shard[0] == "rows":
            return len(next(iter(shard[1].values())))
        rows = shard[2]
        return rows[1] - rows[0] if isinstance(rows, tuple) else len(rows)

    def fill(self, plan, shard):
        if shard[0] == "rows":
            for name, rows in shard[1].items():
                np.copyto(plan.host[name], rows)
            return
        _, ref, rows = shard
        if ref != self._key:                 # a new fit's dataset: fetch once (zero-copy on this node)
            import ray
            self._data, self._key = ray.get(ref), ref
        for name, source in self._data.items():
            if isinstance(rows, tuple):
                np.copyto(plan.host[name], source[rows[0]:rows[1]])
            else:
                np.take(source, rows, axis=0, out=plan.host[name])

"""Training data: validation against the bundle's data specs, and batch sources.

Arrays are checked once, before the first step (dtype, rank, feature count, NaN/Inf,
label range, lengths) and converted once to the graph's dtype; a step then only
gathers rows into the bound buffers. An iterable of ``(x, y[, sample_weight])``
batches is checked batch by batch as it arrives.
"""
import math

import numpy as np

from symgrad.compiler.errors import DataError

ROLES = ("x", "y", "sample_weight")
_END = object()


class Spec:
    """What one data input of the graphs must look like."""

    def __init__(self, role, entry):
        self.role = role
        self.name = entry["name"]
        self.shape = tuple(entry["shape"])
        self.dtype = np.dtype(entry["dtype"])

    def describe(self):
        return "(" + ", ".join(str(d) for d in self.shape) + ")"


def _first_bad(mask):
    idx = np.argwhere(mask)[0]
    return tuple(int(i) for i in idx) if len(idx) > 1 else int(idx[0])


def _all_finite(arr):
    """Fast pre-check: a dot product with itself is finite when every value is (one BLAS
    pass, no temporary); a non-finite result (NaN, Inf, or an overflow of huge values)
    sends the caller to the exact element-wise check."""
    flat = arr.reshape(-1)
    if flat.dtype not in (np.float32, np.float64):
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.dot(flat, flat)))


def check_array(value, spec, classes=None, what=None):
    """Return ``value`` as a contiguous array of the spec's dtype, or raise DataError."""
    what = what or spec.role
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{what} cannot be read as an array ({exc}); pass a NumPy array of shape "
                        f"{spec.describe()}") from None
    if arr.dtype.kind in "OUSVMmc":
        kinds = {"O": "object", "U": "string", "S": "bytes", "V": "structured", "M": "datetime",
                 "m": "timedelta", "c": "complex"}
        raise DataError(f"{what} has dtype {arr.dtype} ({kinds[arr.dtype.kind]}); it must hold real numbers "
                        f"(it is converted to {spec.dtype})")
    if arr.ndim == 0:
        raise DataError(f"{what} is a scalar; expected an array of shape {spec.describe()} (N = number of samples)")
    if arr.shape[0] == 0 or arr.size == 0:
        raise DataError(f"{what} is empty (shape {arr.shape}); expected at least one sample of shape {spec.describe()}")
    if arr.ndim == len(spec.shape) + 1 and arr.shape[-1] == 1 and spec.role != "x":
        arr = arr.reshape(arr.shape[:-1])     # (N, 1) labels or weights for (N,)
    if arr.ndim != len(spec.shape):
        raise DataError(f"{what} has rank {arr.ndim} (shape {arr.shape}); the model expects rank {len(spec.shape)}: "
                        f"shape {spec.describe()} where N is the number of samples")
    for axis, want in enumerate(spec.shape[1:], start=1):
        if isinstance(want, int) and arr.shape[axis] != want:
            if len(spec.shape) == 2:
                raise DataError(f"{what} has {arr.shape[1]} features per sample (shape {arr.shape}); "
                                f"the model expects {want}: shape {spec.describe()}")
            raise DataError(f"{what} has samples of shape {arr.shape[1:]} (shape {arr.shape}); the model expects "
                            f"{tuple(spec.shape[1:])}: shape {spec.describe()}")
    if arr.dtype.kind == "f" and not _all_finite(arr):
        finite = np.isfinite(arr)
        if not finite.all():
            bad = _first_bad(~finite)
            raise DataError(f"{what} contains {arr[bad]} at index {bad}; every value must be finite (no NaN or Inf)")
    if spec.dtype.kind in "iu":
        if arr.dtype.kind == "f":
            frac = arr != np.round(arr)
            if frac.any():
                bad = _first_bad(frac)
                raise DataError(f"{what} holds the non-integer value {arr[bad]} at index {bad}; the model expects "
                                f"integer class indices ({spec.dtype})")
        if classes is not None:
            out = (arr < 0) | (arr >= classes)
            if out.any():
                bad = _first_bad(out)
                raise DataError(f"{what} holds the label {arr[bad]} at index {bad}; labels must be integers in "
                                f"[0, {classes - 1}] for this model's {classes} classes")
    if spec.role == "sample_weight" and (arr < 0).any():
        bad = _first_bad(arr < 0)
        raise DataError(f"sample_weight holds {arr[bad]} at index {bad}; sample weights must be >= 0")
    return _cast(arr, spec, what)


def _cast(arr, spec, what):
    """The array in the graph's dtype. Finite float64 values beyond float32's range (1e300)
    would become inf in the cast, and NaN in the weights a step later: check after it."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=spec.dtype)
    if out.dtype.kind == "f" and out.dtype != arr.dtype and not _all_finite(out):
        finite = np.isfinite(out)
        if not finite.all():
            bad = _first_bad(~finite)
            raise DataError(f"{what} holds {arr[bad]} at index {bad}, beyond the range of {spec.dtype} "
                            f"(largest finite: {np.finfo(spec.dtype).max:.4g}), which the model computes in; "
                            "scale the data into that range")
    return out


def check_lengths(arrays):
    """All arrays of a dataset must have the same number of samples."""
    lengths = {name: len(a) for name, a in arrays.items() if a is not None}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{role} has {n}" for role, n in lengths.items())
        raise DataError(f"the data arrays differ in length: {desc} samples; they must have the same number of samples")


class ArrayBatches:
    """In-memory arrays, cut into batches of ``batch_size`` (the last one may be shorter)."""

    def __init__(self, arrays, batch_size, shuffle):
        self.arrays = {k: v for k, v in arrays.items() if v is not None}   # graph input name -> array
        self.n = len(next(iter(self.arrays.values())))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.steps = math.ceil(self.n / batch_size)

    def order(self, rng):
        """The epoch's sample order, drawn from the trainer's generator (None: in order)."""
        return rng.permutation(self.n) if self.shuffle else None

    def batches(self, order, get_plan, skip=0):
        """Yield one filled Plan per batch, from batch ``skip`` on. ``get_plan(n, weighted)``
        gives the plan for n samples (weighted: the batch carries sample weights)."""
        for plan, _ in self.executions(order, get_plan, skip=skip):
            yield plan

    def executions(self, order, get_plan, get_loop=None, steps=1, skip=0):
        """Yield ``(plan, k)`` from batch ``skip`` on: ``k`` consecutive full batches
        stacked into one train_loop plan (``get_loop(n)``, ``steps`` = k), or one batch
        in a one-step plan (the batches left over and the short last one)."""
        bs = self.batch_size
        full = self.n // bs
        singles, loops = {}, {}
        b = skip
        while b < self.steps:
            if steps > 1 and get_loop is not None and b + steps <= full:
                entry = loops.get(bs)
                if entry is None:
                    plan = get_loop(bs)
                    entry = loops[bs] = (plan, [(src, plan.host[name]) for name, src in self.arrays.items()])
                plan, fills = entry
                for j in range(steps):
                    self._fill(fills, b + j, order, j)
                yield plan, steps
                b += steps
                continue
            size = min(bs, self.n - b * bs)
            entry = singles.get(size)
            if entry is None:
                plan = get_plan(size, "sample_weight" in self.arrays)
                entry = singles[size] = (plan, [(src, plan.host[name]) for name, src in self.arrays.items()])
            plan, fills = entry
            self._fill(fills, b, order)
            yield plan, 1
            b += 1

    def _fill(self, fills, b, order, slot=None):
        """Batch ``b`` into the bound buffers (into their slice ``slot`` for a train_loop)."""
        lo = b * self.batch_size
        hi = min(lo + self.batch_size, self.n)
        idx = None if order is None else order[lo:hi]
        for src, buf in fills:
            out = buf if slot is None else buf[slot]
            if idx is None:
                np.copyto(out, src[lo:hi])
            else:                       # gather the rows straight into the bound buffer
                src.take(idx, 0, out, "clip")


class IterableBatches:
    """An iterable of ``(x, y[, sample_weight])`` batches (or of ``x`` alone for predict),
    validated as each batch arrives. A re-iterable (a list, or an object whose
    ``__iter__`` returns a fresh iterator) gives one pass per epoch; a one-shot iterator
    needs ``steps`` per epoch."""

    def __init__(self, data, check, roles, steps=None):
        self.data = data
        self.check = check            # (tuple of arrays) -> {graph input name: array}
        self.roles = roles
        self.steps = steps
        self._iter = None
        self.one_shot = iter(data) is data

    def order(self, rng):
        return None

    def _source(self):
        """(iterator, whether it may be restarted when it runs out)."""
        if self.one_shot:
            return self.data, False
        if self.steps is not None and self._iter is not None:
            return self._iter, True   # continue where the last epoch stopped (Keras steps_per_epoch)
        self._iter = iter(self.data)
        return self._iter, False

    def batches(self, order, get_plan, skip=0):
        it, may_restart = self._source()
        b = 0
        seen = 0
        while self.steps is None or b < self.steps:
            item = next(it, _END)
            if item is _END:
                if may_restart:           # a re-iterable ran out within steps_per_epoch: a new pass
                    it = self._iter = iter(self.data)
                    may_restart = False
                    continue
                if seen == 0 and b == 0:
                    raise DataError("the batch iterable yielded no batches" + (
                        " (a one-shot iterator or generator is exhausted after one pass: pass a list, an object "
                        "whose __iter__ returns a fresh iterator, or steps_per_epoch)" if self.one_shot else ""))
                return
            seen += 1
            may_restart = self.steps is not None and not self.one_shot
            if b < skip:
                b += 1
                continue
            arrays = self.check(_as_tuple(item, self.roles))
            n = len(next(iter(arrays.values())))
            plan = get_plan(n, "sample_weight" in arrays)
            for name, src in arrays.items():
                np.copyto(plan.host[name], src)
            b += 1
            yield plan


def _as_tuple(item, roles):
    if roles == ("x",):               # predict: a batch of x, or (x, ...) whose first element is x
        return (item[0],) if isinstance(item, tuple) else (item,)
    if not isinstance(item, (tuple, list)) or not 1 <= len(item) <= len(roles):
        want = " or ".join("(" + ", ".join(roles[:k]) + ")" for k in range(2 if len(roles) > 1 else 1, len(roles) + 1))
        raise DataError(f"each batch must be a tuple {want}, got {type(item).__name__}"
                        + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""))
    return tuple(item)


def split_validation(arrays, fraction):
    """Keras validation_split: the last ``fraction`` of the samples, before shuffling."""
    n = len(next(a for a in arrays.values() if a is not None))
    k = int(n * (1.0 - fraction))
    if k <= 0 or k >= n:
        raise DataError(f"validation_split={fraction} leaves {k} training and {n - k} validation samples out of "
                        f"{n}; both parts need at least one sample")
    train = {r: (a[:k] if a is not None else None) for r, a in arrays.items()}
    val = {r: (a[k:] if a is not None else None) for r, a in arrays.items()}
    return train, val

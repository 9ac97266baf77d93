"""From what a user passes to fit/evaluate/predict to a batch source the loops drive.

Arrays -> ArrayBatches (validated and converted once); anything else iterable ->
IterableBatches (each batch validated as it arrives). Which graph inputs exist (is
there a sample_weight input?) comes from the manifest's data specs.
"""
import numbers

import numpy as np

from symgrad.compiler.errors import DataError, ParameterError

from .data import ArrayBatches, IterableBatches, Spec, check_array, check_lengths, split_validation

DEFAULT_BATCH_SIZE = 32


def data_specs(manifest):
    """([x Spec], [y Spec]) of a manifest: its ``inputs`` / ``outputs`` lists (several inputs
    and outputs), or ``data.x`` / ``data.y`` (every bundle has them for one of each).
    A Spec's ``key`` is the input's or output's name in the model."""
    data = manifest.get("data", {})
    xs, ys = manifest.get("inputs"), manifest.get("outputs")
    if isinstance(xs, list) and isinstance(ys, list) and xs and ys and (len(xs) > 1 or len(ys) > 1):
        x_specs = [Spec("x", e) for e in xs]
        y_specs = [Spec("y", e["labels"]) for e in ys]
        for s, e in zip(x_specs + y_specs, xs + ys):
            s.key = e.get("key", s.name)
        return x_specs, y_specs
    x_specs = [Spec("x", data["x"])]
    y_specs = [Spec("y", data["y"])] if "y" in data else []
    for s in x_specs + y_specs:
        s.key = None
    return x_specs, y_specs


def structured(value, specs, role):
    """A user's x or y for several inputs/outputs (a list in order, or a dict by name) as
    [(spec, array-like)]; one spec takes the value itself."""
    if len(specs) == 1:
        if isinstance(value, dict) and specs[0].key is not None and set(value) == {specs[0].key}:
            value = value[specs[0].key]
        return [(specs[0], value)]
    keys = [s.key for s in specs]
    if isinstance(value, dict):
        missing = [k for k in keys if k not in value]
        unknown = sorted(set(value) - set(keys))
        if missing or unknown:
            raise DataError(f"{role} is a dict with keys {sorted(value)}; the model's {_ROLE[role]} are "
                            f"{keys}" + (f" (missing {missing})" if missing else "")
                            + (f" (unknown {unknown})" if unknown else ""))
        return [(s, value[s.key]) for s in specs]
    if isinstance(value, (list, tuple)) and len(value) == len(specs) and not _numeric_list(value):
        return list(zip(specs, value))
    raise DataError(f"the model has {len(specs)} {_ROLE[role]} ({', '.join(keys)}): pass {role} as a list of "
                    f"{len(specs)} arrays in that order, or a dict {{name: array}}; got {type(value).__name__}"
                    + (f" of length {len(value)}" if isinstance(value, (list, tuple)) else ""))


_ROLE = {"x": "inputs", "y": "outputs"}


def _numeric_list(value):
    """A plain nested list of numbers (one array), not a list of arrays."""
    return all(isinstance(v, (int, float, np.number)) for v in value)


class Inputs:
    def __init__(self, manifest, classes):
        data = manifest.get("data", {})
        self.x_specs, self.y_specs = data_specs(manifest)
        self.specs = {role: Spec(role, data[role]) for role in ("x", "y", "sample_weight") if role in data}
        self.specs.setdefault("x", self.x_specs[0])
        if self.y_specs:
            self.specs.setdefault("y", self.y_specs[0])
        # classes: {label input name: number of classes} (a single int: the one label's)
        self.classes = classes if isinstance(classes, dict) else (
            {self.y_specs[0].name: classes} if self.y_specs else {})
        # weighted: every graph takes sample_weight; optional: only the *_weighted variants do
        self.can_weight = "sample_weight" in self.specs
        self.weighted = self.can_weight and not data["sample_weight"].get("optional", False)

    # ------------------------------------------------------------ arrays
    def arrays(self, x, y=None, sample_weight=None, class_weight=None, need_y=True, what=""):
        """Validated arrays keyed by graph input name."""
        specs = self.specs
        several_x = len(self.x_specs) > 1
        out = {spec.name: check_array(v, spec, what=(f"x[{spec.key!r}]" if several_x else "x") + what)
               for spec, v in structured(x, self.x_specs, "x")}
        if need_y:
            if y is None:
                raise DataError("y (the labels) is missing; pass y, or an iterable of (x, y) batches as x")
            several_y = len(self.y_specs) > 1
            for spec, v in structured(y, self.y_specs, "y"):
                out[spec.name] = check_array(v, spec, self.classes.get(spec.name),
                                             what=(f"y[{spec.key!r}]" if several_y else "y") + what)
            w = None
            if sample_weight is not None:
                if not self.can_weight:
                    raise DataError("this program was compiled without a sample_weight input and its bundle has "
                                    "no weighted graph variants (a bundle from before them, or built by hand); "
                                    "compile it again, or with sample_weight=True")
                w = check_array(sample_weight, specs["sample_weight"], what="sample_weight" + what)
            if class_weight is not None:
                if len(self.y_specs) > 1:
                    raise ParameterError("class_weight is for a model with one output (as in Keras); with several "
                                         "outputs pass sample_weight")
                w = self._class_weights(class_weight, out[specs["y"].name], w)
            if w is not None:
                out[specs["sample_weight"].name] = w
            check_lengths(out)
            if self.weighted and w is None:       # the graph has the input: unweighted means all ones
                n = len(out[self.x_specs[0].name])
                out[specs["sample_weight"].name] = np.ones(n, specs["sample_weight"].dtype)
        elif sample_weight is not None:
            raise ParameterError("sample_weight is only used by fit and evaluate")
        if several_x:
            check_lengths(out)
        return out

    def _class_weights(self, class_weight, y, w):
        if not isinstance(class_weight, dict):
            raise ParameterError(f"class_weight must be a dict {{class index: weight}}, got {type(class_weight).__name__}")
        if not self.can_weight:
            raise DataError("class_weight needs graphs with a sample_weight input; this bundle has none (it "
                            "predates weighted variants): compile it again, or with sample_weight=True")
        labels = (y if y.ndim == 1 else y.argmax(-1)).astype(np.int64)
        classes = self.classes.get(self.specs["y"].name)      # the one output's (None: not integer labels)
        # the table is sized by the classes (or the labels present), never by a key's value
        n_classes = classes or (y.shape[-1] if y.ndim > 1 else int(labels.max()) + 1)
        table = np.ones(n_classes)
        dtype = self.specs["sample_weight"].dtype
        largest = float(np.finfo(dtype).max)
        for k, v in class_weight.items():
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or k < 0 or (
                    classes or y.ndim > 1) and k >= n_classes:
                accepted = f"integers 0 to {n_classes - 1}" if (classes or y.ndim > 1) else "integers >= 0"
                raise ParameterError(f"class_weight has the key {k!r}, which is not a class index; accepted: "
                                     f"{accepted} (the class labels)")
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v <= largest:
                raise ParameterError(f"class_weight[{k!r}] must be a number from 0 to {largest:.4g}, got {v!r}")
            if k < n_classes:          # a class that no label names weights nothing
                table[int(k)] = v
        cw = table[labels].astype(dtype)
        if w is None:
            return cw
        with np.errstate(over="ignore"):
            out = w * cw
        if not np.isfinite(out).all():
            raise DataError(f"sample_weight times class_weight exceeds the range of {dtype} "
                            f"(largest finite: {largest:.4g}); scale the weights down")
        return out

    # ------------------------------------------------------------ sources
    def _checker(self, need_y):
        def check(item):
            if need_y:
                if len(item) < 2:
                    raise DataError("each batch must be a tuple (x, y) or (x, y, sample_weight); got one element")
                return self.arrays(item[0], item[1], item[2] if len(item) > 2 else None, what=" batch")
            return self.arrays(item[0], need_y=False, what=" batch")
        return check

    def source(self, x, y=None, sample_weight=None, class_weight=None, batch_size=None, shuffle=False,
               steps=None, need_y=True):
        if x is None:
            raise DataError("x is missing; pass an array of inputs or an iterable of batches")
        if _is_batches(x, y, need_y):
            if batch_size is not None:
                raise ParameterError("batch_size must be None when x is an iterable of batches (the batches set it)")
            if sample_weight is not None or class_weight is not None:
                raise ParameterError("with an iterable of batches, put sample weights inside each batch "
                                     "as (x, y, sample_weight)")
            roles = ("x", "y", "sample_weight") if need_y else ("x",)
            return IterableBatches(x, self._checker(need_y), roles, steps)
        arrays = self.arrays(x, y, sample_weight, class_weight, need_y)
        src = ArrayBatches(arrays, batch_size or DEFAULT_BATCH_SIZE, shuffle)
        if steps is not None:
            src.steps = min(src.steps, steps)
        return src

    def train_sources(self, x, y, sample_weight, class_weight, batch_size, shuffle, steps, validation_split):
        """(train source, validation source or None) for fit's arrays and validation_split."""
        if validation_split:
            if _is_batches(x, y, True):
                raise ParameterError("validation_split needs arrays; with an iterable of batches pass validation_data")
            arrays = self.arrays(x, y, sample_weight, class_weight)
            train, val = split_validation(arrays, validation_split)
            t = ArrayBatches(train, batch_size or DEFAULT_BATCH_SIZE, shuffle)
            if steps is not None:
                t.steps = min(t.steps, steps)
            return t, ArrayBatches(val, batch_size or DEFAULT_BATCH_SIZE, False)
        return self.source(x, y, sample_weight, class_weight, batch_size, shuffle, steps), None

    def validation_source(self, data, batch_size, steps):
        if isinstance(data, tuple):
            if not 2 <= len(data) <= 3:
                raise DataError(f"validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight_val), "
                                f"got a tuple of {len(data)}")
            return self.source(data[0], data[1], data[2] if len(data) == 3 else None, None,
                               batch_size or DEFAULT_BATCH_SIZE, False, steps)
        if isinstance(data, (np.ndarray, list)) and not _looks_like_batches(data):
            raise DataError("validation_data must be a tuple (x_val, y_val[, sample_weight_val]) or an iterable "
                            "of (x, y) batches")
        return IterableBatches(data, self._checker(True), ("x", "y", "sample_weight"), steps)


def _looks_like_batches(obj):
    return isinstance(obj, list) and len(obj) > 0 and all(isinstance(b, tuple) for b in obj)


def _is_batches(x, y, need_y):
    if isinstance(x, (np.ndarray, dict)):     # a dict holds a model's several inputs by name
        return False
    if need_y:
        return y is None and hasattr(x, "__iter__")
    # predict: lists and tuples are array-likes, other iterables (generators, loaders) are batches
    return not isinstance(x, (list, tuple)) and hasattr(x, "__iter__") and not hasattr(x, "__array__")

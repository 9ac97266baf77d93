"""Epoch accumulators for stateful metrics (compiler/metrics_stateful.py).

The graphs output each batch's statistics as ``state/<metric>/<part>``; ``MetricStates``
sums counts and concatenates per-sample scores over the epoch, then finishes each metric
with NumPy, the same definitions as scikit-learn:

- precision / recall / f1_score: micro counts (f1 macro: the mean of per-class F1, 0 where a
  class has no tp, fp or fn, as scikit-learn's zero_division=0);
- mean_iou: the mean of tp / (tp + fp + fn) over classes with a non-zero denominator
  (jaccard_score(average='macro') over the labels that occur);
- auc: ROC from average ranks (roc_auc_score, ties counted half) or PR as average precision
  (average_precision_score: sum over distinct thresholds of (R_k - R_{k-1}) * P_k).
"""
import numpy as np


def _div(a, b):
    return float(a) / float(b) if b else 0.0


def roc_auc(score, label):
    score, label = np.ravel(score).astype(np.float64), np.ravel(label) > 0.5
    pos, neg = int(label.sum()), int((~label).sum())
    if pos == 0 or neg == 0:
        return float("nan")         # undefined, as scikit-learn (which raises)
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):                # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(score, label):
    score, label = np.ravel(score).astype(np.float64), np.ravel(label) > 0.5
    pos = int(label.sum())
    if pos == 0:
        return 0.0
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], label[order]
    tps, fps = np.cumsum(t), np.cumsum(~t)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]      # the end of each distinct threshold
    precision = tps[last] / (tps[last] + fps[last])
    recall = tps[last] / pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def finish(kind, config, acc):
    if kind in ("precision", "recall", "f1_score"):
        tp, fp, fn = (np.ravel(acc[k]) for k in ("tp", "fp", "fn"))
        if kind == "precision":
            return _div(tp.sum(), tp.sum() + fp.sum())
        if kind == "recall":
            return _div(tp.sum(), tp.sum() + fn.sum())
        if config.get("average") == "macro":
            return float(np.mean([_div(2 * a, 2 * a + b + c) for a, b, c in zip(tp, fp, fn)]))
        return _div(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())
    if kind == "mean_iou":
        tp = np.ravel(acc["tp"])
        union = np.ravel(acc["predicted"]) + np.ravel(acc["actual"]) - tp
        present = union > 0
        return float(np.mean(tp[present] / union[present])) if present.any() else 0.0
    if kind == "auc":
        score, label = np.concatenate(acc["score"]), np.concatenate(acc["label"])
        return roc_auc(score, label) if config.get("curve", "ROC") == "ROC" else average_precision(score, label)
    raise ValueError(f"unknown stateful metric kind {kind!r}")


class MetricStates:
    """Accumulates the ``state/`` outputs of one graph over an epoch."""

    def __init__(self, manifest, output_names):
        self.metrics = []
        for name, entry in (manifest.get("metric_states") or {}).items():
            parts = {p: (spec["output"], spec["accumulate"]) for p, spec in entry["parts"].items()}
            if all(out in output_names for out, _ in parts.values()):
                self.metrics.append((name, entry["kind"], entry.get("config", {}), parts))
        self.reset()

    def __bool__(self):
        return bool(self.metrics)

    def reset(self):
        self.acc = {name: {p: ([] if mode == "concat" else 0.0) for p, (_, mode) in parts.items()}
                    for name, _, _, parts in self.metrics}

    def update(self, outputs):
        """Add one batch: ``outputs`` maps output names to the plan's NumPy buffers."""
        for name, _, _, parts in self.metrics:
            acc = self.acc[name]
            for p, (out, mode) in parts.items():
                if mode == "concat":
                    acc[p].append(np.array(outputs[out], copy=True))
                else:
                    acc[p] = acc[p] + np.asarray(outputs[out], dtype=np.float64)

    def results(self, running=False):
        """{metric: value} so far. ``running=True`` (batch logs) leaves out the metrics that
        keep every score (AUC), whose value would cost a sort of the whole epoch per batch."""
        return {name: finish(kind, config, self.acc[name]) for name, kind, config, parts in self.metrics
                if not (running and any(mode == "concat" for _, mode in parts.values()))}

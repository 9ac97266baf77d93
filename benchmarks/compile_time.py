"""Compile time of losses: declaration -> ONNX bytes, for one-line custom expressions and
every catalogue entry (plus a few heavier variants), split between

- sympy:  declare + stabilise + build the IR + differentiate (sympy.diff, VJP rules), and
- emit:   sympy.cse + the ONNX printer + make_model + the full checker + SerializeToString.

The split is measured by timing the emit stage functions that Loss.to_onnx calls.
``cold`` is the first compile of that loss in the process (what a user waits for);
``warm`` is the best of the repeats (sympy's caches are then hot).

    python benchmarks/compile_time.py            # full table, 3 repeats
    python benchmarks/compile_time.py --quick    # CI smoke: one compile each
"""
import argparse
import os
import statistics
import sys
import time
from contextlib import contextmanager

from symgrad.compiler import Loss, losses
from symgrad.compiler import loss as loss_module

CUSTOM = {
    "squared error": "(y_pred - y_true)**2",
    "log-cosh": "log(cosh(y_pred - y_true))",
    "pseudo-huber": "sqrt(1 + (y_pred - y_true)**2) - 1",
    "huber (piecewise)": "mean(Piecewise((0.5*(y_pred - y_true)**2, Abs(y_pred - y_true) <= 1), "
                         "(Abs(y_pred - y_true) - 0.5, True)))",
    "logistic": "log(1 + exp(-y_true*y_pred))",
    "bce of sigmoid": "-(y_true*log(sigmoid(y_pred)) + (1 - y_true)*log(1 - sigmoid(y_pred)))",
    "softmax CE": "-sum(y_true*log(softmax(y_pred)))",
    "logsumexp CE": "logsumexp(y_pred) - sum(y_true*y_pred)",
    "cosine": "-sum(y_true*y_pred)/(norm(y_true)*norm(y_pred))",
    "poisson (log rate)": "exp(y_pred) - y_true*y_pred",
}
VARIANTS = {
    "binary_crossentropy(from_logits, pos_weight, smoothing)":
        ("binary_crossentropy", {"from_logits": True, "pos_weight": 2.0, "label_smoothing": 0.1}),
    "binary_focal_crossentropy(from_logits, alpha)":
        ("binary_focal_crossentropy", {"from_logits": True, "alpha": 0.25}),
    "categorical_crossentropy(class_weight, smoothing)":
        ("categorical_crossentropy", {"class_weight": [1.0] * 10, "label_smoothing": 0.1}),
    "sparse_categorical_crossentropy(class_weight, ignore_index)":
        ("sparse_categorical_crossentropy", {"class_weight": [1.0] * 10, "ignore_index": -100}),
    "kl_divergence(log_input, log_target)": ("kl_divergence", {"log_input": True, "log_target": True}),
    "triplet_margin(p=1, swap)": ("triplet_margin", {"p": 1, "swap": True}),
}
QUICK_CUSTOM = ("squared error", "softmax CE")


class EmitClock:
    """Accumulates the time spent in the emit-stage functions a module calls (by default
    those emit_loss calls; for compile_model, program.py's, which also tidies)."""

    STAGES = ("emit_values", "make_model", "check")

    def __init__(self, module=loss_module, stages=STAGES):
        self.seconds = 0.0
        self.module, self.stages = module, stages

    @contextmanager
    def installed(self):
        saved = {n: getattr(self.module, n) for n in self.stages}
        for n, f in saved.items():
            setattr(self.module, n, self._timed(f))
        try:
            yield self
        finally:
            for n, f in saved.items():
                setattr(self.module, n, f)

    def _timed(self, f):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t
        return wrapper


def compile_once(declare, clock, opset):
    """(total, emit, nodes, bytes) for one declaration -> ONNX bytes."""
    clock.seconds = 0.0
    t = time.perf_counter()
    loss = declare()
    model = loss.to_onnx(opset=opset, shape=loss.example_shape)
    t_ser = time.perf_counter()
    data = model.SerializeToString()
    end = time.perf_counter()
    return end - t, clock.seconds + (end - t_ser), len(model.graph.node), len(data)


def measure(rows, repeat, opset):
    results = []
    with EmitClock().installed() as clock:
        compile_once(lambda: Loss.from_expression("(y_pred - y_true)**2"), clock, opset)   # imports, first-call costs
        for kind, label, declare in rows:
            runs = [compile_once(declare, clock, opset) for _ in range(repeat)]
            total, emit, nodes, nbytes = runs[0]
            warm = min(r[0] for r in runs)
            results.append(dict(kind=kind, label=label, sympy=total - emit, emit=emit, total=total, warm=warm,
                                nodes=nodes, bytes=nbytes))
    return results


def build_rows(quick):
    rows = []
    for label, text in CUSTOM.items():
        if not quick or label in QUICK_CUSTOM:
            rows.append(("custom", label, lambda text=text: Loss.from_expression(text)))
    for name in losses.names():
        rows.append(("catalogue", name, lambda name=name: losses.get(name)))
    if not quick:
        for label, (name, params) in VARIANTS.items():
            rows.append(("variant", label, lambda name=name, params=params: losses.get(name, **params)))
    return rows


def print_table(results, budget, repeat):
    width = max(len(r["label"]) for r in results)
    head = f"{'kind':9s} {'loss':{width}s} {'sympy ms':>9s} {'emit ms':>8s} {'cold ms':>8s}"
    head += f" {'warm ms':>8s}" if repeat > 1 else ""
    head += f" {'nodes':>6s} {'bytes':>7s}"
    print(head)
    print("-" * len(head))
    for r in results:
        line = (f"{r['kind']:9s} {r['label']:{width}s} {1e3 * r['sympy']:9.1f} {1e3 * r['emit']:8.1f} "
                f"{1e3 * r['total']:8.1f}")
        line += f" {1e3 * r['warm']:8.1f}" if repeat > 1 else ""
        line += f" {r['nodes']:6d} {r['bytes']:7d}"
        print(line + ("  over budget" if r["total"] > budget else ""))
    slowest = max(results, key=lambda r: r["total"])
    over = [r for r in results if r["total"] > budget]
    catalogue = [r["total"] for r in results if r["kind"] == "catalogue"]
    print()
    print(f"slowest: {slowest['label']} ({slowest['kind']}) {1e3 * slowest['total']:.1f} ms "
          f"(sympy {1e3 * slowest['sympy']:.1f} ms, emit {1e3 * slowest['emit']:.1f} ms)")
    print(f"catalogue: {len(catalogue)} entries, median {1e3 * statistics.median(catalogue):.1f} ms, "
          f"total {sum(catalogue):.2f} s")
    print(f"over the {1e3 * budget:.0f} ms budget: {len(over)} of {len(results)}"
          + (": " + ", ".join(r["label"] for r in over) if over else ""))
    return over


def model_rows(quick):
    from symgrad.compiler import Sequential, layers, optimizers

    def mlp(widths, opt):
        return lambda: (Sequential([layers.Dense(w, activation="relu") for w in widths] + [layers.Dense(10)],
                                   input_shape=(784,)), opt())

    def cnn():
        return (Sequential([layers.Conv2D(8, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
                            layers.Flatten(), layers.Dense(10)], input_shape=(1, 28, 28)), optimizers.SGD(0.01))

    rows = [("MLP 784-256-10, SGD", mlp([256], lambda: optimizers.SGD(0.01))),
            ("MLP 784-256-10, Adam", mlp([256], optimizers.Adam))]
    if not quick:
        rows += [("MLP 784-1024x3-10, Adam", mlp([1024] * 3, optimizers.Adam)), ("CNN 1x28x28, SGD", cnn)]
    return rows


def measure_models(rows, opset):
    """compile_model (all five graphs, tidied and checked) per model: (label, total, emit)."""
    from symgrad.compiler import compile_model, program as program_module
    clock = EmitClock(program_module, ("emit_values", "make_model", "check", "tidy"))
    results = []
    with clock.installed():
        for label, declare in rows:
            model, opt = declare()
            clock.seconds = 0.0
            t = time.perf_counter()
            program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                                    optimizer=opt, metrics=["accuracy"], opset=opset)
            program.bundle()
            total = time.perf_counter() - t
            results.append((label, total, clock.seconds))
    return results


def print_models(results, budget):
    print(f"\n{'model (compile_model: 5 graphs)':34s} {'sympy ms':>9s} {'emit ms':>8s} {'total ms':>9s}")
    for label, total, emit in results:
        flag = "  over budget" if total > budget else ""
        print(f"{label:34s} {1e3 * (total - emit):9.1f} {1e3 * emit:8.1f} {1e3 * total:9.1f}{flag}")
    over = [r for r in results if r[1] > budget]
    print(f"over the {budget:.1f} s model budget: {len(over)} of {len(results)}")
    return over


def measure_imports(quick, opset):
    """from_onnx on a resnet18-sized graph (onnx.helper-built, torchvision's names):
    import = OnnxModel (opset check, folding, tracing the graph once), compile =
    compile_model on it (all five graphs, tidied and checked). (label, import, compile)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from onnx_models import resnet
    from symgrad.compiler import compile_model, optimizers
    from symgrad.compiler.onnx_import import OnnxModel
    rows = [("resnet 1-1-1-1, 8-64 wide, 32px", dict(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64), image=32,
                                                     classes=10))]
    if not quick:
        rows = [("resnet18 (11.7 M weights), 224px", dict())]
    results = []
    for label, kwargs in rows:
        source = resnet(**kwargs)
        t = time.perf_counter()
        model = OnnxModel(source)
        t_import = time.perf_counter() - t
        t = time.perf_counter()
        program = compile_model(model, loss=losses.get("sparse_categorical_crossentropy", from_logits=True),
                                optimizer=optimizers.SGD(0.01), opset=opset)
        program.bundle()
        results.append((label, t_import, time.perf_counter() - t))
    return results


def print_imports(results, budget):
    print(f"\n{'imported ONNX model (from_onnx)':34s} {'import s':>9s} {'compile s':>9s} {'total s':>8s}")
    for label, t_import, t_compile in results:
        total = t_import + t_compile
        flag = "  over budget" if total > budget else ""
        print(f"{label:34s} {t_import:9.2f} {t_compile:9.2f} {total:8.2f}{flag}")
    over = [r for r in results if r[1] + r[2] > budget]
    print(f"over the {budget:.0f} s import budget: {len(over)} of {len(results)}")
    return over


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run: one compile each, fewer custom losses")
    parser.add_argument("--repeat", type=int, default=3, help="compiles per loss (default 3; 1 with --quick)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per loss (default 0.3)")
    parser.add_argument("--model-budget", type=float, default=2.0, help="seconds per model (default 2)")
    parser.add_argument("--import-budget", type=float, default=10.0,
                        help="seconds to import and compile an ONNX model (default 10)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a loss or model is over its budget")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else max(1, args.repeat)
    results = measure(build_rows(args.quick), repeat, args.opset)
    over = print_table(results, args.budget, repeat)
    over_models = print_models(measure_models(model_rows(args.quick), args.opset), args.model_budget)
    over_imports = print_imports(measure_imports(args.quick, args.opset), args.import_budget)
    return 1 if (over or over_models or over_imports) and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())

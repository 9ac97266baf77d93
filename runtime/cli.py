"""The ``symgrad`` command line.

    symgrad loss NAME -p k=v -o f.onnx      symgrad explain NAME|EXPR
    symgrad compile MODEL.py -o bundle/     symgrad train bundle/ --data d.npz
    symgrad export bundle/ -o model.onnx    symgrad inspect f.onnx
    symgrad artifacts m.onnx --loss L -o b/ symgrad ops
    symgrad demo

A user's mistake (a SymgradError, a bad argument, a missing file) prints one line to
stderr and exits with status 2. Only loss, explain, compile and demo import the compiler
(and so sympy); train, export and inspect read bundles and ONNX files without it.
"""
import argparse
import json
import os
import sys

from symgrad.compiler.errors import BundleError, DataError, SymgradError

EXIT_USAGE = 2


class CLIError(SymgradError):
    """A mistake in the command line itself (argparse's complaints end up here)."""

    def __init__(self, message, prog=None):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus an error on two lines and exits; we want one line."""

    def error(self, message):
        raise CLIError(f"{message} (see '{self.prog} --help')", prog=self.prog)


def _fmt():
    return argparse.RawDescriptionHelpFormatter


# ---------------------------------------------------------------------------- helpers

def _params(pairs):
    """-p k=v pairs -> dict; values are JSON when they parse (1.5, true, null), else strings."""
    out = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"-p {pair!r} is not of the form name=value (e.g. -p delta=1.0)")
        try:
            value = json.loads(raw)
        except ValueError:
            value = {"True": True, "False": False, "None": None}.get(raw, raw)
        out[key.strip()] = value
    return out


def _write_onnx(model, path):
    from symgrad.compiler.atomic import write_bytes
    try:
        write_bytes(path, model.SerializeToString())
    except OSError as exc:
        raise CLIError(f"cannot write {os.fspath(path)!r}: {exc.strerror or exc}") from None


def _need_file(path, what):
    if os.path.isfile(path):
        return
    if os.path.isdir(path):
        raise CLIError(f"{what} {path!r} is a folder; expected a file")
    if os.path.exists(path):
        raise CLIError(f"{what} {path!r} is not a regular file (it is a device, a pipe or a socket); expected a file")
    raise CLIError(f"{what} {path!r} does not exist")


def _signature(model):
    def dims(vi):
        return "[" + ", ".join(d.dim_param or str(d.dim_value) for d in vi.type.tensor_type.shape.dim) + "]"
    ins = ", ".join(f"{v.name}{dims(v)}" for v in model.graph.input)
    outs = ", ".join(f"{v.name}{dims(v)}" for v in model.graph.output)
    return ins, outs


# ---------------------------------------------------------------------------- verbs

def cmd_loss(args):
    from symgrad.compiler import Loss, losses
    params = _params(args.param)
    if args.expression is not None and args.name is not None:
        raise CLIError("give a catalogue NAME or -e EXPR, not both")
    if args.expression is not None:
        reduction = params.pop("reduction", "sum_over_batch_size")
        name = os.path.splitext(os.path.basename(args.output))[0] if args.output else None   # -o NAME.onnx names it
        loss = Loss.from_expression(args.expression, reduction=reduction, params=params or None, name=name)
    elif args.name is not None:
        loss = losses.get(args.name, **params)
    else:
        raise CLIError("give a catalogue loss NAME (symgrad loss --list) or -e EXPR")
    model = loss.to_onnx(opset=args.opset, dtype=args.dtype, sample_weight=args.sample_weight)
    out = args.output or f"{loss.name}.onnx"
    _write_onnx(model, out)
    ins, outs = _signature(model)
    print(f"wrote {out}: loss {loss.name!r}, opset {args.opset}, {args.dtype}, {len(model.graph.node)} nodes")
    print(f"  inputs:  {ins}\n  outputs: {outs}")


def cmd_loss_list(_args):
    from symgrad.compiler import losses
    for name in losses.names():
        print(name)


def _looks_like_name(text):
    return text.replace("_", "a").isalnum() and text not in ("y_true", "y_pred")


def cmd_explain(args):
    from symgrad.compiler import Loss, losses
    from symgrad.compiler.errors import UnknownNameError
    params = _params(args.param)
    target = args.target.strip()
    try:
        print(losses.explain(target, **params))
        return
    except UnknownNameError:
        if _looks_like_name(target):
            raise                           # a misspelt catalogue name: the error suggests close ones
    reduction = params.pop("reduction", "sum_over_batch_size")
    loss = Loss.from_expression(target, reduction=reduction, params=params or None)
    lines = [f"# custom loss: {loss.expression}", "", f"- Reduction: {loss.reduction}"]
    if loss.params:
        lines.append("- Parameters: " + ", ".join(f"{s.name}={v:g}" for s, v in loss.params.items()))
    lines += ["", "Loss before the reduction, and its derivative:", "", "```text",
              f"L = {loss.expression}", f"dL/dy_pred = {loss.gradient_expression()}"]
    if loss.stable_expression != loss.expression:
        lines.append(f"emitted as: {loss.stable_expression}")
    lines += ["```", "", "$$", loss.latex(), "$$"]
    print("\n".join(lines))


def _load_model_file(path):
    """Run MODEL.py and return its namespace; an exception in it becomes one line."""
    import runpy
    import traceback
    _need_file(path, "model file")
    try:
        return runpy.run_path(path, run_name="__symgrad_model__")
    except SymgradError:
        raise
    except SystemExit as exc:   # sys.exit() in the model file must not end symgrad with status 0
        raise CLIError(f"{path} called sys.exit({exc.code!r}) while being loaded; a model file must define "
                       "model, loss and optimizer and not exit") from None
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if os.path.abspath(f.filename) == os.path.abspath(path)]
        where = f" at line {frames[-1].lineno}" if frames else ""
        raise CLIError(f"{path}{where} raised {type(exc).__name__}: {exc}") from None


def cmd_compile(args):
    from symgrad.compiler import compile_model
    from symgrad.compiler.bundle import check_target
    check_target(args.output)               # refuse a target that is not a bundle before compiling
    ns = _load_model_file(args.model)
    missing = [k for k in ("model", "loss", "optimizer") if k not in ns]
    if missing:
        raise CLIError(f"{args.model} must define model, loss and optimizer; missing: {', '.join(missing)}")
    program = compile_model(ns["model"], loss=ns["loss"], optimizer=ns["optimizer"], metrics=ns.get("metrics"),
                            opset=args.opset, dtype=args.dtype)
    program.save(args.output)
    manifest = program.bundle().manifest
    n_params = sum(_numel(p["shape"]) for p in manifest["params"])
    print(f"wrote bundle {args.output}: {len(manifest['params'])} parameter tensors ({n_params:,} numbers), "
          f"graphs {', '.join(manifest['graphs'])}, opset {manifest['opset']}, {manifest['dtype']}")


def _numel(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _load_npz(path):
    from symgrad.runtime.npz import read_npz
    _need_file(path, "data file")
    data = read_npz(path)
    for key in ("x", "y"):
        if key not in data:
            raise DataError(f"{path} has no array {key!r} (it has {', '.join(sorted(data)) or 'none'}); "
                            "expected x, y and optionally x_val, y_val, sample_weight")
    if ("x_val" in data) != ("y_val" in data):
        raise DataError(f"{path} has only one of x_val and y_val; give both or neither")
    return data


def _load_trainer(path, provider="cpu"):
    from symgrad.runtime.trainer import Trainer
    if not os.path.isdir(path):
        raise BundleError(f"no bundle at {path!r}: expected a folder made by 'symgrad compile'")
    return Trainer.load(path, provider=provider)


def cmd_train(args):
    from symgrad.compiler.bundle import check_target
    from symgrad.runtime import callbacks
    data = _load_npz(args.data)
    trainer = _load_trainer(args.bundle, args.provider)
    check_target(args.output or args.bundle)    # before training, not after: the result must have a place
    cbs = []
    if args.checkpoint_dir:
        # an ONNX inference model per epoch, and the full training state, so that running
        # the same command again after a crash resumes where it stopped
        cbs.append(callbacks.ModelCheckpoint(os.path.join(args.checkpoint_dir, "epoch_{epoch:03d}.onnx")))
        cbs.append(callbacks.BackupAndRestore(os.path.join(args.checkpoint_dir, "backup")))
    validation = (data["x_val"], data["y_val"]) if "x_val" in data else None
    kwargs = {}
    if "sample_weight" in data:
        kwargs["sample_weight"] = data["sample_weight"]
    history = trainer.fit(data["x"], data["y"], epochs=args.epochs, batch_size=args.batch_size,
                          validation_data=validation, callbacks=cbs, verbose=0 if args.quiet else 1,
                          shuffle=not args.no_shuffle, **kwargs)
    out = args.output or args.bundle
    trainer.save(out)
    last = {k: v[-1] for k, v in history.history.items() if v}
    summary = ", ".join(f"{k}={v:.4f}" for k, v in last.items())
    print(f"trained {len(history.history.get('loss', []))} epoch(s): {summary}; saved to {out}")
    if args.checkpoint_dir:
        print(f"checkpoints in {args.checkpoint_dir}")


def cmd_export(args):
    trainer = _load_trainer(args.bundle)
    trainer.export(args.output, opset=args.opset, output_activation=args.output_activation)
    opset = args.opset or trainer.manifest.get("opset")
    print(f"wrote {args.output}: the inference graph with the bundle's weights (step {trainer.step}), opset {opset}")


def cmd_inspect(args):
    import collections
    import onnx
    from symgrad.compiler.untrusted import load_onnx
    _need_file(args.file, "ONNX file")
    model = load_onnx(args.file, "ONNX file", external_data=False)    # an untrusted file: see untrusted.py
    if not model.graph.node and not model.graph.input:
        raise CLIError(f"{args.file} is not an ONNX model (it holds no graph)")
    elem = {v: k.lower() for k, v in onnx.TensorProto.DataType.items()}

    def describe(vi):
        t = vi.type.tensor_type
        dims = ", ".join(d.dim_param or str(d.dim_value) for d in t.shape.dim)
        return f"  {vi.name}: {elem.get(t.elem_type, '?')}[{dims}]"

    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    inits = {i.name for i in model.graph.initializer}
    n_weights = sum(_numel(i.dims) for i in model.graph.initializer)
    print(f"{args.file}: graph {model.graph.name!r}, opset {opsets}, ir_version {model.ir_version}, "
          f"producer {model.producer_name or '?'} {model.producer_version}".rstrip())
    print("inputs:")
    print("\n".join(describe(v) for v in model.graph.input if v.name not in inits) or "  (none)")
    print("outputs:")
    print("\n".join(describe(v) for v in model.graph.output) or "  (none)")
    print(f"initializers: {len(inits)} ({n_weights:,} numbers)")
    hist = collections.Counter(n.op_type if not n.domain else f"{n.domain}.{n.op_type}" for n in model.graph.node)
    print(f"ops ({len(model.graph.node)} nodes):")
    width = max((len(k) for k in hist), default=0)
    for op, count in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {op:<{width}}  {count}")


def cmd_demo(args):
    from symgrad.runtime.cli_demo import run_demo
    run_demo(out_dir=args.out_dir, epochs=args.epochs, batch_size=args.batch_size, plot=not args.no_plot,
             progress=not args.quiet, seed=args.seed)


# ---------------------------------------------------------------------------- parser

_EXAMPLES = {
    "loss": """examples:
  symgrad loss huber -p delta=1.0 -o huber.onnx
  symgrad loss binary_focal_crossentropy -p gamma=2 --opset 13 -o focal.onnx
  symgrad loss -e "log(cosh(y_pred - y_true))" -o logcosh.onnx
  symgrad loss -e "delta**2*(sqrt(1 + ((y_pred - y_true)/delta)**2) - 1)" -p delta=1.5 -o ph.onnx
  symgrad loss --list""",
    "explain": """examples:
  symgrad explain huber
  symgrad explain huber -p delta=2
  symgrad explain "log(cosh(y_pred - y_true))\"""",
    "compile": """MODEL.py defines model, loss and optimizer (and optionally metrics), e.g.:

  from symgrad.compiler import Sequential, layers, losses, optimizers
  model = Sequential([layers.Dense(32, activation="relu"), layers.Dense(10)], input_shape=(64,))
  loss = losses.get("sparse_categorical_crossentropy", from_logits=True)
  optimizer = optimizers.Adam(1e-3)
  metrics = ["accuracy"]

example:
  symgrad compile model.py -o bundle/""",
    "train": """data.npz holds x and y (optionally x_val, y_val, sample_weight), e.g.
numpy.savez("data.npz", x=x, y=y, x_val=xv, y_val=yv).

example:
  symgrad train bundle/ --data data.npz --epochs 10 --batch-size 64 --checkpoint-dir ckpt/""",
    "export": """example:
  symgrad export bundle/ -o model.onnx --opset 17""",
    "inspect": """example:
  symgrad inspect model.onnx""",
    "demo": """example:
  symgrad demo --out-dir demo_output/""",
}


def build_parser():
    parser = _Parser(prog="symgrad", formatter_class=_fmt(),
                     description="Compile sympy-declared losses and models to ONNX, train them with onnxruntime.",
                     epilog="examples:\n  symgrad demo\n  symgrad loss huber -p delta=1.0 -o huber.onnx\n"
                            "  symgrad explain huber\n\nRun 'symgrad VERB --help' for each verb.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    def verb(name, help_text, func):
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=_EXAMPLES[name],
                           formatter_class=_fmt())
        p.set_defaults(func=func)
        return p

    def opset_dtype(p):
        p.add_argument("--opset", type=int, default=17, help="ONNX opset, 13 to 21 (default 17)")
        p.add_argument("--dtype", default="float32", help="float32 or float64 (default float32)")

    p = verb("loss", "Write a loss (catalogue NAME or -e EXPR) and its gradient as ONNX.", cmd_loss)
    p.add_argument("name", nargs="?", metavar="NAME", help="catalogue loss name (see --list)")
    p.add_argument("-e", "--expression", metavar="EXPR", help="a loss expression over y_true and y_pred")
    p.add_argument("-p", "--param", action="append", metavar="K=V", help="a parameter, repeatable")
    p.add_argument("-o", "--output", metavar="F.onnx", help="output file (default NAME.onnx)")
    p.add_argument("--sample-weight", action="store_true", help="add a per-sample weight input")
    p.add_argument("--list", action="store_true", help="list the catalogue's loss names and exit")
    opset_dtype(p)

    p = verb("explain", "Print a loss's formula and derivative, as text and as LaTeX.", cmd_explain)
    p.add_argument("target", metavar="NAME|EXPR", help="catalogue loss name or a loss expression")
    p.add_argument("-p", "--param", action="append", metavar="K=V", help="a parameter, repeatable")

    p = verb("compile", "Compile MODEL.py (model, loss, optimizer) into an artifact bundle.", cmd_compile)
    p.add_argument("model", metavar="MODEL.py")
    p.add_argument("-o", "--output", required=True, metavar="BUNDLE", help="bundle folder to write")
    opset_dtype(p)

    p = verb("train", "Train a bundle on data from an .npz file; saves the trained state.", cmd_train)
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("--data", required=True, metavar="DATA.npz")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--checkpoint-dir", metavar="DIR", help="save a checkpoint at the end of every epoch")
    p.add_argument("-o", "--output", metavar="BUNDLE", help="where to save the trained bundle (default: in place)")
    p.add_argument("--provider", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--no-shuffle", action="store_true", help="keep the samples' order")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = verb("export", "Export a bundle's inference graph with its weights as one ONNX file.", cmd_export)
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("-o", "--output", default="model.onnx", metavar="F.onnx", help="default model.onnx")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset, 13 to 21 (default: the bundle's)")
    p.add_argument("--output-activation", choices=["softmax", "sigmoid"], default=None,
                   help="append it to y_pred (probabilities from a model trained on logits)")

    p = verb("inspect", "Show an ONNX file's inputs, outputs, opset and op histogram.", cmd_inspect)
    p.add_argument("file", metavar="F.onnx")

    p = verb("demo", "Compile an MLP, train it on scikit-learn's digits, export model.onnx.", cmd_demo)
    p.add_argument("--out-dir", default=".", help="where model.onnx and the curve go (default: here)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plot", action="store_true", help="skip the training-curve PNG")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    from symgrad.runtime import cli_onnx  # artifacts, ops: the ONNX importer's verbs
    _EXAMPLES.update(cli_onnx.EXAMPLES)
    cli_onnx.add_verbs(verb)
    return parser


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.verb is None:
            raise CLIError("choose a verb: loss, explain, compile, artifacts, train, export, inspect, ops, demo "
                           "(see 'symgrad --help')")
        if args.verb == "loss" and args.list:
            args.func = cmd_loss_list
        for name in ("epochs", "batch_size"):
            if getattr(args, name, 1) < 1:
                raise CLIError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
        args.func(args)
    except (SymgradError, OSError) as exc:
        prog = getattr(exc, "prog", None) or (
            f"symgrad {args.verb}" if "args" in locals() and getattr(args, "verb", None) else "symgrad")
        message = str(exc) if not isinstance(exc, OSError) or isinstance(exc, SymgradError) else _os_message(exc)
        print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("symgrad: interrupted", file=sys.stderr)
        return 130
    return 0


def _os_message(exc):
    if exc.filename:
        return f"{exc.strerror or exc}: {exc.filename!r}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())

"""``symgrad artifacts`` (an ONNX model in, a training bundle out: what onnxruntime-training's
generate_artifacts did, with standard-domain graphs) and ``symgrad ops`` (the op table)."""
EXAMPLES = {
    "artifacts": """examples:
  symgrad artifacts resnet18.onnx --loss sparse_categorical_crossentropy -p from_logits=true \\
          --optimizer adamw --lr 1e-3 --frozen conv1.weight -o bundle/
  symgrad artifacts model.onnx -e "mean((y_pred - y_true)**2)" --optimizer sgd --lr 0.01 -o bundle/""",
    "ops": """examples:
  symgrad ops
  symgrad ops --status differentiable""",
}


def add_verbs(verb):
    """Register the two verbs through cli.build_parser's ``verb(name, help, func)``."""
    p = verb("artifacts", "Make a training bundle from an ONNX model (any loss, any optimizer).", cmd_artifacts)
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--loss", metavar="NAME", help="catalogue loss name (symgrad loss --list)")
    p.add_argument("-e", "--expression", metavar="EXPR", help="a loss expression over y_true and y_pred")
    p.add_argument("-p", "--param", action="append", metavar="K=V", help="a loss parameter, repeatable")
    p.add_argument("--optimizer", default="adam", help="optimizer name (default adam)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's)")
    p.add_argument("--trainable", action="append", metavar="NAME",
                   help="train only these initializers (repeatable; default: every float weight)")
    p.add_argument("--frozen", action="append", metavar="NAME", help="keep this initializer fixed (repeatable)")
    p.add_argument("--output-name", metavar="NAME", help="the graph output the loss reads (default: the only one)")
    p.add_argument("--batchnorm", default="fixed", choices=("fixed", "train"),
                   help="BatchNormalization statistics: fixed (default) or trained as state")
    p.add_argument("--metric", action="append", metavar="NAME", help="a metric, repeatable (e.g. accuracy)")
    p.add_argument("-o", "--output", required=True, metavar="BUNDLE", help="bundle folder to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset of the emitted graphs, 13 to 21 (default 17)")
    p.add_argument("--dtype", default="float32", help="float32 or float64 (default float32)")

    p = verb("ops", "List the ONNX ops the importer differentiates, passes through or folds.", cmd_ops)
    p.add_argument("--status", choices=("differentiable", "passes through", "folded at import", "not supported"),
                   help="only the rows with this status")


def cmd_artifacts(args):
    from symgrad.compiler import Loss, from_onnx, losses, optimizers
    from symgrad.runtime.cli import CLIError, _need_file, _numel, _params
    _need_file(args.model, "ONNX model")
    params = _params(args.param)
    if (args.loss is None) == (args.expression is None):
        raise CLIError("give the loss as --loss NAME or -e EXPR (one of them)")
    if args.expression is not None:
        reduction = params.pop("reduction", "sum_over_batch_size")
        loss = Loss.from_expression(args.expression, reduction=reduction, params=params or None)
    else:
        loss = losses.get(args.loss, **params)
    opt_kwargs = {} if args.lr is None else {"learning_rate": args.lr}
    optimizer = optimizers.get(args.optimizer, **opt_kwargs)
    program = from_onnx(args.model, loss=loss, optimizer=optimizer, trainable=args.trainable,
                        frozen=args.frozen or (), output=args.output_name, metrics=args.metric,
                        batchnorm=args.batchnorm, opset=args.opset, dtype=args.dtype)
    program.save(args.output)
    manifest = program.manifest
    trained = [p for p in manifest["params"] if p["trainable"]]
    print(f"wrote bundle {args.output}: {len(trained)} trained tensors ({sum(_numel(p['shape']) for p in trained):,} "
          f"numbers), {len(manifest['params']) - len(trained)} frozen, {len(manifest['state'])} state; loss "
          f"{loss.name!r}, optimizer {optimizer.name}, opset {manifest['opset']}, standard domain only")


def cmd_ops(args):
    from symgrad.compiler.onnx_import.table import render_text
    print(render_text(args.status))

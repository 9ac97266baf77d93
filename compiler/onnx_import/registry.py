"""The one table of ONNX ops the importer knows: ``{op_type: Translator}``.

Each family module registers its translators with ``@translates``; docs/ops.md, the
``symgrad ops`` command and the per-op gradient tests are all generated from this table.
A translator turns one ONNX node into IR (or folds it to a constant) through the
``ImportContext``; it never emits ONNX itself.
"""
DIFFERENTIABLE = "differentiable"
PASS_THROUGH = "passes through"
FOLDED = "folded at import"
NOT_SUPPORTED = "not supported"


class Translator:
    """``fn(ctx, node)`` returns the node's outputs (IR values, sympy expressions or
    NumPy constants). ``status`` is one of the four words above; ``note`` says how the
    op is differentiated or why it is not; ``sample`` builds the small graph that the
    generated gradient test checks (None: no test, the note says why)."""

    def __init__(self, op_type, fn, status, note, family, sample=None):
        self.op_type, self.fn, self.status, self.note, self.family = op_type, fn, status, note, family
        self.samples = [] if sample is None else list(sample) if isinstance(sample, (list, tuple)) else [sample]


TRANSLATORS = {}
# ops known not to be importable, with the reason; the table lists them as not supported
NOT_SUPPORTED_REASONS = {}


def translates(*op_types, status=DIFFERENTIABLE, note="", sample=None):
    """Register ``fn`` for each op type; ``sample`` is a callable(op_type) -> test case."""
    def deco(fn):
        family = fn.__module__.rsplit(".", 1)[-1]
        for op in op_types:
            TRANSLATORS[op] = Translator(op, fn, status, note, family, sample)
        return fn
    return deco


def unsupported(reason, *op_types):
    for op in op_types:
        NOT_SUPPORTED_REASONS[op] = reason


def load_families():
    """Import every family module (registration happens on import)."""
    from . import elementwise, linalg, pooling, normalization, shape, reductions, structural, recurrent  # noqa: F401,E501
    return TRANSLATORS


class Sample:
    """The small graph a generated gradient test builds for one op: the first input is
    the data (its shape includes the batch), further float shapes become initializers
    (weights), NumPy arrays become constant initializers as given, None an absent
    optional input, the string "x" the data input once more. ``low``/``high`` bound the random floats (keep away from kinks and
    poles); ``attrs`` are the node's attributes."""

    def __init__(self, *inputs, low=-1.5, high=1.5, outputs=1, opset=None, **attrs):
        self.inputs, self.low, self.high, self.outputs, self.opset, self.attrs = \
            inputs, low, high, outputs, opset, attrs

"""The ONNX front end: an existing ONNX model becomes a symgrad model, and
``from_onnx`` compiles it into a training program with any loss and optimizer.

A front end, not a second compiler: elementwise ops become sympy expressions (their
derivatives come from sympy.diff), structural ops become the IR primitives and their
VJP rules, shape arithmetic folds at import, and ``compile_model`` does the rest.
"""
from ..emit import DEFAULT_OPSET
from .graph import OnnxModel


def from_onnx(source, loss, optimizer, trainable=None, frozen=(), output=None, metrics=None,
              batchnorm="fixed", input_shape=None, constants_as_weights=False, opset=DEFAULT_OPSET,
              dtype="float32", sample_weight=False):
    """A training ``Program`` for the ONNX model ``source`` (a path or an onnx.ModelProto).

    loss: a catalogue name, a Loss or an expression string (as in compile_model);
    trainable: None (every float initializer the model reads as a tensor) or a list of
    initializer names; frozen: names kept fixed; output: the graph output the loss reads
    (default: the only one); batchnorm: "fixed" (running statistics stay as they are,
    like PyTorch eval() fine-tuning) or "train" (batch statistics in training, running
    ones updated as state); input_shape: one sample's shape, for files whose non-batch
    dims are symbolic; constants_as_weights: float Constant nodes become weights too."""
    from ..program import compile_model
    model = OnnxModel(source, trainable=trainable, frozen=frozen, output=output, batchnorm=batchnorm,
                      input_shape=input_shape, constants_as_weights=constants_as_weights)
    return compile_model(model, loss=_loss(loss), optimizer=optimizer, metrics=metrics, opset=opset, dtype=dtype,
                         sample_weight=sample_weight)


def _loss(loss):
    if isinstance(loss, str):
        from .. import losses
        from ..errors import UnknownNameError
        try:
            return losses.get(loss)
        except UnknownNameError:
            if any(c in loss for c in "()+-*/ "):
                from ..loss import Loss
                return Loss.from_expression(loss)
            raise
    return loss


__all__ = ["from_onnx", "OnnxModel"]

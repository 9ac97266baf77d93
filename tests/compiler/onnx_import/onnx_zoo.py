"""The nine model-zoo architectures the onnx wheel ships (backend/test/data/light), made
trainable: their weights are ConstantOfShape nodes filled with 0.02, replaced here by
seeded random initializers (He-normal kernels, unit-scale batch-norm statistics)."""
import os

import numpy as np
import onnx
from onnx import numpy_helper

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
MODELS = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
          "vgg19", "zfnet512"]


def _draw(name, shape, rng):
    lower = name.lower()
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else int(shape[0] if "classifier" in lower else shape[1])
        return rng.standard_normal(size=shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / max(fan_in, 1)))
    if any(k in lower for k in ("var", "riv")):
        return rng.uniform(0.5, 1.5, size=shape)
    if any(k in lower for k in ("scale", "_s_0", "bn_s")):
        return 1 + 0.1 * rng.normal(size=shape)
    return 0.05 * rng.normal(size=shape)


def logits(model):
    """The tensor the final Softmax reads (the graph output when there is none)."""
    soft = [n for n in model.graph.node if n.op_type == "Softmax"]
    return soft[-1].input[0] if soft else model.graph.output[0].name


def data_input(model):
    inits = {t.name for t in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)


def load(name, seed=0):
    """The model with random initializers in place of its ConstantOfShape weights."""
    model = onnx.load(os.path.join(LIGHT, f"light_{name}.onnx"))
    rng = np.random.default_rng(seed)
    shapes = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    keep, used_shapes = [], set()
    for node in model.graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            shape = tuple(int(d) for d in shapes[node.input[0]])
            used_shapes.add(node.input[0])
            model.graph.initializer.append(
                numpy_helper.from_array(_draw(node.output[0], shape, rng).astype(np.float32), node.output[0]))
            # IR 3: an initializer is also a graph input
            model.graph.input.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, shape))
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    inits = [t for t in model.graph.initializer if t.name not in used_shapes]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    inputs = [i for i in model.graph.input if i.name not in used_shapes]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return model

"""ONNX models for the importer's benchmarks, built with onnx.helper (no torch):
``resnet(blocks=(2, 2, 2, 2))`` has torchvision resnet18's graph (Conv + BatchNormalization
+ Relu basic blocks, MaxPool, GlobalAveragePool, Flatten, Gemm) and its parameter names;
``stem="cifar"`` swaps its 7x7/2 conv + max-pool stem for one 3x3/1 conv, the usual
ResNet for 32x32 images (the ImageNet stem would leave the last stage 2x2)."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class _Graph:
    def __init__(self, seed):
        self.nodes, self.inits, self.rng = [], [], np.random.default_rng(seed)

    def weight(self, name, shape, std=None, value=None):
        if value is None:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            value = self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std or np.sqrt(2.0 / fan_in))
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op, ins, out, **attrs):
        self.nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    def conv_bn(self, x, prefix, bn, cin, cout, k, stride, relu=True):
        w = self.weight(f"{prefix}.weight", (cout, cin, k, k))
        y = self.node("Conv", [x, w], f"{prefix}_out", kernel_shape=[k, k], strides=[stride, stride],
                      pads=[k // 2] * 4)
        stats = [self.weight(f"{bn}.weight", (cout,), value=np.ones(cout)),
                 self.weight(f"{bn}.bias", (cout,), value=np.zeros(cout)),
                 self.weight(f"{bn}.running_mean", (cout,), value=np.zeros(cout)),
                 self.weight(f"{bn}.running_var", (cout,), value=np.ones(cout))]
        y = self.node("BatchNormalization", [y] + stats, f"{bn}_out")
        return self.node("Relu", [y], f"{bn}_relu") if relu else y


STEMS = ("imagenet", "cifar")


def resnet(blocks=(2, 2, 2, 2), widths=(64, 128, 256, 512), classes=1000, image=224, seed=0, stem="imagenet"):
    if stem not in STEMS:
        raise ValueError(f"resnet: stem must be one of {STEMS}, got {stem!r}")
    g = _Graph(seed)
    if stem == "imagenet":
        x = g.conv_bn("input", "conv1", "bn1", 3, widths[0], 7, 2)
        x = g.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    else:
        x = g.conv_bn("input", "conv1", "bn1", 3, widths[0], 3, 1)
    cin = widths[0]
    for stage, (n, cout) in enumerate(zip(blocks, widths), start=1):
        for b in range(n):
            p = f"layer{stage}.{b}"
            stride = 2 if (b == 0 and stage > 1) else 1
            y = g.conv_bn(x, f"{p}.conv1", f"{p}.bn1", cin, cout, 3, stride)
            y = g.conv_bn(y, f"{p}.conv2", f"{p}.bn2", cout, cout, 3, 1, relu=False)
            short = x
            if stride != 1 or cin != cout:
                short = g.conv_bn(x, f"{p}.downsample.0", f"{p}.downsample.1", cin, cout, 1, stride, relu=False)
            x = g.node("Relu", [g.node("Add", [y, short], f"{p}_add")], f"{p}_relu")
            cin = cout
    x = g.node("GlobalAveragePool", [x], "avgpool")
    x = g.node("Flatten", [x], "flatten", axis=1)
    w = g.weight("fc.weight", (classes, cin), std=0.01)
    b = g.weight("fc.bias", (classes,), value=np.zeros(classes))
    g.node("Gemm", [x, w, b], "logits", transB=1)
    graph = helper.make_graph(g.nodes, "resnet", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                ["batch", 3, image, image])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
                              g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def cnn8(seed=0):
    """train_throughput's cnn8-pool-10 as an exporter writes it: Conv 8x3x3 + Relu,
    MaxPool 2, Flatten, Gemm 1352 -> 10, on 1x28x28."""
    g = _Graph(seed)
    w = g.weight("conv.weight", (8, 1, 3, 3))
    b = g.weight("conv.bias", (8,), value=np.zeros(8))
    x = g.node("Relu", [g.node("Conv", ["input", w, b], "conv", kernel_shape=[3, 3])], "relu")
    x = g.node("MaxPool", [x], "pool", kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Flatten", [x], "flatten", axis=1)
    fw = g.weight("fc.weight", (10, 8 * 13 * 13), std=0.05)
    fb = g.weight("fc.bias", (10,), value=np.zeros(10))
    g.node("Gemm", [x, fw, fb], "logits", transB=1)
    graph = helper.make_graph(g.nodes, "cnn8", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                              ["batch", 1, 28, 28])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def train_flops(model, batch):
    """FLOPs (multiply-adds x 2) of one training step of ``model``'s Conv and Gemm nodes,
    counted as train_throughput counts its other rows: forward, weight gradient, and input
    gradient except where the input is the graph's data input (nothing needs that one)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    data_inputs = {v.name for v in model.graph.input} - {t.name for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out, w = shapes[node.output[0]], shapes[node.input[1]]
            macs = batch * int(np.prod(out[1:])) * int(np.prod(w[1:]))   # (Cin / group) * kh * kw per output
        elif node.op_type == "Gemm":
            w = shapes[node.input[1]]
            macs = batch * w[0] * w[1]
        else:
            continue
        total += 2 * macs * (2 if node.input[0] in data_inputs else 3)
    return total

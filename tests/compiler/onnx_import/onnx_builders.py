"""Small ONNX models built with onnx.helper for the importer's tests."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(nodes, inputs, outputs, inits, opset=17, name="g"):
    graph = helper.make_graph(nodes, name, inputs, outputs,
                              [numpy_helper.from_array(a, n) for n, a in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          ir_version=helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))
    onnx.checker.check_model(m, full_check=True)
    return m


def small_cnn(seed=0, dtype=np.float32, classes=3):
    """Conv(pad 1) -> BN -> Relu -> MaxPool -> Conv(stride 2) -> Relu -> GlobalAveragePool -> Flatten -> Gemm,
    on (N, 2, 6, 6) images; the classifier weight is tied through Identity to show the names survive."""
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits = {
        "conv1.weight": rng.normal(0, 0.5, (4, 2, 3, 3)), "conv1.bias": rng.normal(0, 0.1, 4),
        "bn1.weight": 1 + 0.1 * rng.normal(size=4), "bn1.bias": 0.1 * rng.normal(size=4),
        "bn1.running_mean": 0.1 * rng.normal(size=4), "bn1.running_var": rng.uniform(0.5, 1.5, 4),
        "conv2.weight": rng.normal(0, 0.4, (5, 4, 3, 3)),
        "fc.weight": rng.normal(0, 0.5, (classes, 5)), "fc.bias": np.zeros(classes),
    }
    inits = {k: np.asarray(v, dtype=dtype) for k, v in inits.items()}
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                                "bn1.running_var"], ["b1"], epsilon=1e-5, name="bn1"),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        helper.make_node("Conv", ["p1", "conv2.weight"], ["c2"], strides=[2, 2], auto_pad="SAME_UPPER",
                         name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Identity", ["fc.weight"], ["fc.weight.tied"], name="tie"),
        helper.make_node("Gemm", ["f", "fc.weight.tied", "fc.bias"], ["logits"], transB=1, name="fc"),
    ]
    return model(nodes, [helper.make_tensor_value_info("x", elem, ["batch", 2, 6, 6])],
                 [helper.make_tensor_value_info("logits", elem, ["batch", classes])], inits, name="small_cnn")


__all__ = ["model", "small_cnn", "TensorProto", "helper"]

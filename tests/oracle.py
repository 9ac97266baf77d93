"""Independent oracles for the tests: float64 central finite differences and a runner
for emitted ONNX models. Nothing here uses symgrad's own gradient code."""
import numpy as np
import onnx
import onnxruntime as ort


def session(model):
    """An onnxruntime session for a ModelProto, after the full checker."""
    onnx.checker.check_model(model, full_check=True)
    assert all(op.domain in ("", "ai.onnx") for op in model.opset_import), "non-standard domain"
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node), "non-standard op domain"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run(model, **feeds):
    sess = session(model)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def central_fd(f, x, h=1e-6):
    """d f(x) / d x for a scalar-valued f of a float64 array x, by central differences."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        step = h * max(1.0, abs(old))
        flat[i] = old + step
        fp = f(x)
        flat[i] = old - step
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * step)
    return g

"""Optional: the structural ops against PyTorch (forward and autograd gradient, float64).
Skips without torch; torch is never a dependency of symgrad or of CI."""
import numpy as np
import pytest

from symgrad.compiler import ops
from op_harness import CompiledOp

torch = pytest.importorskip("torch")
F = torch.nn.functional
rng = np.random.default_rng(5)


def compare(fn, torch_fn, inputs, rtol=1e-9):
    """Forward and the gradient of sum(G * y) for each float input, symgrad vs torch."""
    c = CompiledOp(fn, inputs)
    ts = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    y = torch_fn(*ts)
    G = rng.standard_normal(tuple(y.shape))
    (y * torch.tensor(G)).sum().backward()
    got = c.run(inputs, G)
    np.testing.assert_allclose(got["y"], y.detach().numpy(), rtol=rtol, atol=rtol)
    for i, t in enumerate(ts):
        if t.requires_grad:
            np.testing.assert_allclose(got[f"grad_in{i}"], t.grad.numpy(), rtol=1e-8, atol=1e-9,
                                       err_msg=f"grad of input {i}")


@pytest.mark.parametrize("kw", [dict(stride=2, padding=1, output_padding=1), dict(stride=(1, 2), groups=2, dilation=2),
                                dict(stride=3, padding=(1, 0), output_padding=(2, 1))])
def test_conv_transpose2d(kw):
    groups = kw.get("groups", 1)
    x, w, b = rng.standard_normal((2, 4, 3, 4)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(3 * groups)
    pad = kw.get("padding", 0)
    pad = (pad, pad) if isinstance(pad, int) else pad
    mine = dict(strides=kw.get("stride", 1), pads=tuple(pad) * 2, output_padding=kw.get("output_padding", 0),
                dilations=kw.get("dilation", 1), groups=groups)
    compare(lambda x, w, b: ops.conv_transpose(x, w, b, **mine), lambda x, w, b: F.conv_transpose2d(x, w, b, **kw),
            [x, w, b])


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_avg_and_max_pool(ceil_mode, count_include_pad):
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0
    compare(lambda v: ops.avg_pool(v, 3, 2, padding=1, ceil_mode=ceil_mode, count_include_pad=count_include_pad),
            lambda v: F.avg_pool2d(v, 3, 2, padding=1, ceil_mode=ceil_mode, count_include_pad=count_include_pad),
            [x])
    compare(lambda v: ops.max_pool(v, 3, 2, padding=1, dilations=2, ceil_mode=ceil_mode),
            lambda v: F.max_pool2d(v, 3, 2, padding=1, dilation=2, ceil_mode=ceil_mode), [x])


@pytest.mark.parametrize("mode, align", [("nearest", None), ("bilinear", False), ("bilinear", True)])
def test_resize_as_interpolate(mode, align):
    x = rng.standard_normal((1, 2, 4, 5))
    ctm = "asymmetric" if mode == "nearest" else ("align_corners" if align else "pytorch_half_pixel")
    compare(lambda v: ops.resize(v, sizes=(None, None, 7, 3), mode="nearest" if mode == "nearest" else "linear",
                                 coordinate_transformation_mode=ctm, nearest_mode="floor"),
            lambda v: F.interpolate(v, size=(7, 3), mode=mode, align_corners=align), [x])


def test_norms_pads_and_pixel_shuffle():
    x, s, b = rng.standard_normal((2, 6, 3, 4)), rng.standard_normal(6), rng.standard_normal(6)
    compare(lambda x, s, b: ops.group_norm(x, 3, s, b), lambda x, s, b: F.group_norm(x, 3, s, b), [x, s, b])
    compare(lambda x, s, b: ops.instance_norm(x, s, b), lambda x, s, b: F.instance_norm(x, weight=s, bias=b),
            [x, s, b])
    compare(lambda v: ops.lrn(v, 3, 1e-2, 0.75, 1.5), lambda v: F.local_response_norm(v, 3, 1e-2, 0.75, 1.5), [x])
    for mode, tmode in (("reflect", "reflect"), ("edge", "replicate")):
        compare(lambda v: ops.pad(v, (0, 0, 1, 2, 0, 0, 2, 1), mode=mode),
                lambda v: F.pad(v, (2, 1, 1, 2), mode=tmode), [x])
    y = rng.standard_normal((2, 8, 2, 3))
    compare(lambda v: ops.depth_to_space(v, 2, "CRD"), lambda v: F.pixel_shuffle(v, 2), [y])
    compare(lambda v: ops.space_to_depth(v, 2, "CRD"), lambda v: F.pixel_unshuffle(v, 2),
            [rng.standard_normal((2, 2, 4, 6))])

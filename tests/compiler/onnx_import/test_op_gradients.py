"""One generated gradient test per differentiable row of the op table (docs/ops.md):
a new row gets its test by declaring its Sample next to its translator."""
import pytest

from symgrad.compiler.onnx_import.registry import DIFFERENTIABLE, load_families

from onnx_op_cases import check_gradient

TABLE = load_families()
DIFF_OPS = sorted(op for op, t in TABLE.items() if t.status == DIFFERENTIABLE)


def test_every_differentiable_row_declares_a_sample():
    missing = [op for op in DIFF_OPS if TABLE[op].sample is None]
    assert not missing, f"differentiable ops without a gradient-test sample: {missing}"


@pytest.mark.parametrize("op_type", DIFF_OPS)
def test_gradient_matches_finite_differences(op_type):
    assert check_gradient(op_type, TABLE[op_type].sample) >= 1

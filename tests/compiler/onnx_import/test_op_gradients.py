"""One generated gradient test per differentiable row of the op table (docs/ops.md):
a new row gets its test by declaring its Sample next to its translator."""
import pytest

from symgrad.compiler.onnx_import.registry import DIFFERENTIABLE, load_families

from onnx_op_cases import check_gradient

TABLE = load_families()
DIFF_OPS = sorted(op for op, t in TABLE.items() if t.status == DIFFERENTIABLE)
CASES = [(op, k) for op in DIFF_OPS for k in range(len(TABLE[op].samples))]


def test_every_differentiable_row_declares_a_sample():
    missing = [op for op in DIFF_OPS if not TABLE[op].samples]
    assert not missing, f"differentiable ops without a gradient-test sample: {missing}"


@pytest.mark.parametrize("op_type,k", CASES, ids=[op if k == 0 else f"{op}-{k}" for op, k in CASES])
def test_gradient_matches_finite_differences(op_type, k):
    assert check_gradient(op_type, TABLE[op_type].samples[k]) >= 1

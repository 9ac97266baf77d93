"""Layers that combine several inputs (functional API): Add, Subtract, Multiply,
Average, Concatenate."""
import sympy

from .. import ir, ops
from ..errors import ParameterError, ShapeError
from .base import Layer, from_ir_shape, to_ir_shape


class _Merge(Layer):
    n_inputs = None  # a list of inputs
    min_inputs = 2

    def _check(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(input_shape[0], tuple) \
                or len(input_shape) < self.min_inputs:
            raise ShapeError(f"{type(self).__name__} {self.name!r} takes a list of at least {self.min_inputs} "
                             f"inputs, got {input_shape!r}")

    def build(self, input_shape):
        self._check(input_shape)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        try:
            return from_ir_shape(ir.broadcast_shapes(*[to_ir_shape(s) for s in input_shape]))
        except ShapeError:
            raise ShapeError(f"{type(self).__name__} {self.name!r}: the input shapes "
                             f"{', '.join(map(str, input_shape))} do not broadcast") from None


class Add(_Merge):
    def call(self, xs):
        return sympy.Add(*xs)


class Subtract(_Merge):
    def _check(self, input_shape):
        super()._check(input_shape)
        if len(input_shape) != 2:
            raise ShapeError(f"Subtract {self.name!r} takes exactly 2 inputs, got {len(input_shape)}")

    def call(self, xs):
        return xs[0] - xs[1]


class Multiply(_Merge):
    def call(self, xs):
        return sympy.Mul(*xs)


class Average(_Merge):
    def call(self, xs):
        return sympy.Add(*xs) / len(xs)


class Concatenate(_Merge):
    """Join along ``axis`` (default -1, as Keras; use axis=1 for NCHW channels)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ParameterError(f"Concatenate: parameter 'axis' must be an integer, got {axis!r}")
        self.axis = axis

    def _check(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(input_shape[0], tuple):
            raise ShapeError(f"Concatenate {self.name!r} takes a list of inputs, got {input_shape!r}")
        rank = len(input_shape[0])
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ShapeError(f"Concatenate {self.name!r}: axis {self.axis} is not a feature axis of rank {rank} "
                             f"inputs (axis 0 is the batch)")

    def call(self, xs):
        return ops.concat(list(xs), axis=self.axis)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        rank = len(input_shape[0])
        axis = self.axis % rank
        for s in input_shape:
            if len(s) != rank or any(s[i] != input_shape[0][i] for i in range(rank) if i != axis) or s[axis] is None:
                raise ShapeError(f"Concatenate {self.name!r} on axis {self.axis}: the inputs "
                                 f"{', '.join(map(str, input_shape))} differ off that axis")
        out = list(input_shape[0])
        out[axis] = sum(s[axis] for s in input_shape)
        return tuple(out)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}

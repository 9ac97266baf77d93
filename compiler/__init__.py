"""symgrad.compiler: sympy -> ONNX. Knows nothing of onnxruntime.

Attributes load lazily (PEP 562) so that ``symgrad.compiler.errors`` and the bundle
format can be used by the runtime without importing sympy.
"""
import importlib

_EXPORTS = {
    "Loss": ".loss",
    "losses": ".losses",
    "layers": ".layers",
    "ops": ".ops",
    "optimizers": ".optimizers",
    "Sequential": ".model",
    "Model": ".model",
    "Input": ".model",
    "Layer": ".layers",
    "compile_model": ".program",
    "Program": ".program",
    "gradcheck": ".gradcheck",
    "parse_expression": ".parse",
    "from_onnx": ".onnx_import",
}
_ERRORS = ("SymgradError", "ExpressionError", "ExpressionSyntaxError", "UnknownSymbolError",
           "UnsupportedFunctionError", "MissingPredictionError", "NonDifferentiableError", "ParameterError",
           "UnknownNameError", "OpsetError", "ShapeError", "DataError", "BundleError", "ProviderError", "GradcheckError",
           "UnsupportedOpError", "OnnxModelError", "SaveError", "FolderInUseError")
__all__ = sorted(list(_EXPORTS) + list(_ERRORS))


def __getattr__(name):
    if name in _ERRORS:
        return getattr(importlib.import_module(".errors", __name__), name)
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name], __name__)
        value = module if _EXPORTS[name].lstrip(".") == name else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'symgrad.compiler' has no attribute {name!r}")


def __dir__():
    return __all__

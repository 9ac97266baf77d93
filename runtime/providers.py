"""Execution providers and session options: what a user names, what onnxruntime needs.

``"cpu"`` always works; ``"cuda"`` needs the onnxruntime-gpu wheel (the ``[cuda]``
extra). Every mistake is a ProviderError or ParameterError that says what is accepted.
"""
import numbers

import onnxruntime as ort

from symgrad.compiler.errors import ParameterError, ProviderError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
_LEVELS = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
           "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
           "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
           "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
_MODES = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL, "parallel": ort.ExecutionMode.ORT_PARALLEL}
# SessionOptions attributes a user may set by keyword, with the Python types accepted
_PLAIN = {"intra_op_num_threads": int, "inter_op_num_threads": int, "enable_cpu_mem_arena": bool,
          "enable_mem_pattern": bool, "enable_mem_reuse": bool, "enable_profiling": bool,
          "profile_file_prefix": str, "log_severity_level": int, "log_verbosity_level": int,
          "optimized_model_filepath": str, "use_deterministic_compute": bool}
SESSION_KEYWORDS = sorted(list(_PLAIN) + ["graph_optimization_level", "execution_mode", "session_options",
                                          "config_entries", "provider_options", "device_id"])


class Device:
    """Where the state lives: ``type`` is "cpu" or "cuda" (the OrtValue device name)."""

    def __init__(self, name, device_id=0, provider_options=None):
        self.type = name
        self.id = device_id
        self.provider_options = dict(provider_options or {})

    @property
    def ort_providers(self):
        if self.type == "cuda":
            opts = {"device_id": self.id, **self.provider_options}
            return [(PROVIDERS["cuda"], opts), PROVIDERS["cpu"]]
        return [(PROVIDERS["cpu"], self.provider_options)] if self.provider_options else [PROVIDERS["cpu"]]

    def __repr__(self):
        return f"Device({self.type!r}, {self.id})"


def resolve_device(provider, device_id=0, provider_options=None):
    """Map a user's provider name to a Device; raise ProviderError for an unknown name or
    a provider this onnxruntime build lacks."""
    if not isinstance(provider, str):
        raise ProviderError(f"provider must be a string, got {provider!r}; accepted: 'cpu', 'cuda'")
    key = provider.strip().lower()
    key = {v.lower(): k for k, v in PROVIDERS.items()}.get(key, key)
    if key not in PROVIDERS:
        raise ProviderError(f"unknown provider {provider!r}; accepted: 'cpu', 'cuda' "
                            "(or 'CPUExecutionProvider', 'CUDAExecutionProvider')")
    available = ort.get_available_providers()
    if key == "cuda" and PROVIDERS["cuda"] not in available:
        raise ProviderError(
            "provider 'cuda' needs onnxruntime-gpu, which is not installed: this onnxruntime "
            f"{ort.__version__} offers {', '.join(available)}. Install it with "
            "pip install \"symgrad[cuda]\" (uninstall the CPU-only 'onnxruntime' package first: "
            "the two wheels share one module name), or use provider='cpu'.")
    if isinstance(device_id, bool) or not isinstance(device_id, numbers.Integral) or device_id < 0:
        raise ParameterError(f"device_id must be an integer >= 0, got {device_id!r}")
    if provider_options is not None and not isinstance(provider_options, dict):
        raise ParameterError(f"provider_options must be a dict of onnxruntime provider options, got {provider_options!r}")
    return Device(key, int(device_id), provider_options)


def session_options(opts):
    """Build an ort.SessionOptions from keywords (see SESSION_KEYWORDS). Returns
    (SessionOptions, device_id, provider_options).

    The CPU defaults are onnxruntime's own (all cores, sequential execution, memory arena
    and patterns on, spinning threads), kept by measurement (benchmarks/session_options.py,
    2 cores, quiet machine, Trainer.fit relative to these defaults): the parallel execution
    mode with 2 inter-op threads ran 0.30-0.62x; spinning off 0.63-0.89x on the MLPs; arena
    or memory patterns off 0.98-1.06x (noise). One exception: the two-conv CNN ran 1.12x on
    one thread (its small conv-backward ops parallelise poorly), which a user can choose
    with intra_op_num_threads=1. On a machine shared with other busy processes, spinning
    threads cost far more (spinning off was 7.8x faster at a load average of 14):
    ``config_entries={"session.intra_op.allow_spinning": "0"}`` there."""
    opts = dict(opts)
    unknown = sorted(set(opts) - set(SESSION_KEYWORDS))
    if unknown:
        raise ParameterError(f"unknown session option(s) {', '.join(map(repr, unknown))}; accepted: "
                             f"{', '.join(SESSION_KEYWORDS)}")
    so = opts.pop("session_options", None)
    if so is None:
        so = ort.SessionOptions()
    elif not isinstance(so, ort.SessionOptions):
        raise ParameterError(f"session_options must be an onnxruntime.SessionOptions, got {type(so).__name__}")
    device_id = opts.pop("device_id", 0)
    provider_options = opts.pop("provider_options", None)
    for key, value in opts.pop("config_entries", {}).items():
        so.add_session_config_entry(str(key), str(value))
    for key, value in opts.items():
        if key == "graph_optimization_level":
            value = _choice(key, value, _LEVELS, ort.GraphOptimizationLevel)
        elif key == "execution_mode":
            value = _choice(key, value, _MODES, ort.ExecutionMode)
        else:
            kind = _PLAIN[key]
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            if not ok or (kind is int and key.endswith("threads") and value < 0):
                what = {int: "an integer >= 0" if key.endswith("threads") else "an integer",
                        bool: "True or False", str: "a string"}[kind]
                raise ParameterError(f"session option {key!r} must be {what}, got {value!r}")
        setattr(so, key, value)
    return so, device_id, provider_options


def _choice(key, value, table, enum):
    if isinstance(value, enum):
        return value
    if isinstance(value, str) and value.lower() in table:
        return table[value.lower()]
    raise ParameterError(f"session option {key!r} must be one of {', '.join(map(repr, table))} "
                         f"(or an onnxruntime.{enum.__name__}), got {value!r}")

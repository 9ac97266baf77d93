"""onnxruntime sessions with the training state resident in OrtValues.

- ``GraphSession``: one InferenceSession per graph kind of the bundle.
- ``StateStore``: parameters, model state and optimizer slots, two OrtValues per
  updated tensor on the session's device. A step reads buffer ``parity`` and writes
  buffer ``1 - parity``; flipping ``parity`` is the whole hand-over (ping-pong), so the
  state is never copied to NumPy on a step, and the previous state stays available for
  one step (TerminateOnNaN rolls back to it).
- ``Plan``: one graph at one batch size. It owns the host buffers of the batch (and of
  the dropout noise) and one IOBinding per parity, bound once; a step is "fill the
  buffers in place, run the binding". Scalar outputs (loss, metrics) land in one NumPy
  vector without any call.
"""
import numpy as np
import onnxruntime as ort

from symgrad.compiler.errors import BundleError, ProviderError, ShapeError

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
              "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def np_type(node_arg):
    try:
        return np.dtype(_ORT_TYPES[node_arg.type])
    except KeyError:
        raise BundleError(f"graph value {node_arg.name!r} has type {node_arg.type}, which the runtime "
                          f"cannot feed; accepted: {', '.join(_ORT_TYPES)}") from None


def aligned_zeros(shape, dtype, align=64):
    """Zeros whose data starts on a 64-byte boundary, so that vectorised kernels take the
    same path in every process (a resumed run must reproduce the original bit for bit)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.zeros(n + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + n].view(dtype).reshape(shape)


def on_device(array, device):
    """An OrtValue holding ``array``: on the CPU it shares the array's memory (so the array
    must stay alive; the OrtValue keeps a reference), on CUDA it is a device copy."""
    if device.type == "cpu":
        buf = aligned_zeros(np.shape(array), np.asarray(array).dtype)
        np.copyto(buf, array)
        return ort.OrtValue.ortvalue_from_numpy(buf)
    array = np.array(array, order="C")
    try:
        return ort.OrtValue.ortvalue_from_numpy(array, device.type, device.id)
    except RuntimeError as exc:
        raise ProviderError(f"cannot allocate the training state on {device.type} device {device.id} ({exc}); "
                            "check that onnxruntime-gpu matches the installed CUDA (pip install \"symgrad[cuda]\") "
                            "or use provider='cpu'") from None


class GraphSession:
    """One graph of the bundle in its own InferenceSession."""

    def __init__(self, kind, model_bytes, spec, device, options):
        self.kind = kind
        try:
            self.session = ort.InferenceSession(model_bytes, sess_options=options, providers=device.ort_providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"onnxruntime cannot load the bundle's {kind!r} graph: {exc}") from None
        if device.type == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise ProviderError("onnxruntime-gpu is installed but could not start the CUDA execution provider "
                                f"(session providers: {self.session.get_providers()}); check the CUDA and cuDNN "
                                "libraries (pip install \"symgrad[cuda]\" pulls matching ones) or use provider='cpu'")
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = {o.name: o for o in self.session.get_outputs()}
        feeds = dict(spec.get("feeds") or {})
        # by convention "next/<name>" feeds "<name>" when a manifest leaves feeds out
        for out in self.outputs:
            if out.startswith("next/") and out not in feeds and out[5:] in self.inputs:
                feeds[out] = out[5:]
        self.feeds = feeds
        # train_loop runs ``steps`` train steps per call: stacked batches, (steps,) scalars
        self.steps = int(spec.get("steps", 1)) if kind == "train_loop" else 1
        # loss and metrics: rank-0 outputs (one per step of a train_loop) that feed nothing
        # and are no gradient
        scalar_shape = [] if self.steps == 1 else [self.steps]
        self.scalar_names = [o for o, arg in self.outputs.items()
                             if o not in feeds and not o.startswith(("grad/", "state/"))
                             and list(arg.shape) == scalar_shape]
        self._run = self.session._sess.run_with_iobinding if hasattr(self.session, "_sess") else None

    def runner(self, binding):
        """A zero-argument callable running ``binding``; calls the C++ session directly
        (the public wrapper only adds WebGPU capture checks that do not apply here)."""
        kind = self.kind
        if self._run is not None and hasattr(binding, "_iobinding"):
            run, raw = self._run, binding._iobinding

            def step():
                try:        # free when nothing is raised; a graph that fails is named, not a raw trace
                    run(raw, None)
                except Exception as exc:  # onnxruntime raises its own exception types
                    raise _run_failed(kind, exc) from None
            return step
        session = self.session

        def step_public():
            try:
                session.run_with_iobinding(binding)
            except Exception as exc:  # noqa: BLE001
                raise _run_failed(kind, exc) from None
        return step_public


def _run_failed(kind, exc):
    return BundleError(f"onnxruntime failed running the bundle's {kind!r} graph ({type(exc).__name__}: {exc}); "
                       "the bundle's graphs do not compute what its manifest declares: re-create the bundle")


class StateStore:
    """Parameters, model state and optimizer slots as ping-pong OrtValue pairs."""

    def __init__(self, entries, arrays, updated, device):
        self.device = device
        self.entries = {e["name"]: e for e in entries}
        self.pairs = {}
        self.parity = 0
        for name, entry in self.entries.items():
            if name not in arrays:
                raise BundleError(f"the bundle's initial state has no tensor {name!r}")
            a = np.array(arrays[name], dtype=np.dtype(entry["dtype"]), copy=True)
            if list(a.shape) != list(entry["shape"]):
                raise BundleError(f"initial tensor {name!r} has shape {list(a.shape)}, the manifest says {entry['shape']}")
            first = on_device(a, device)
            self.pairs[name] = (first, on_device(a.copy(), device) if name in updated else first)

    def __contains__(self, name):
        return name in self.pairs

    def current(self, name):
        return self.pairs[name][self.parity]

    def get(self, name):
        """A NumPy copy of the current value (a device-to-host copy on CUDA)."""
        return np.array(self.pairs[name][self.parity].numpy(), copy=True)

    def set(self, name, value):
        entry = self.entries[name]
        a = np.asarray(value)
        if list(a.shape) != list(entry["shape"]):
            raise ShapeError(f"weight {name!r} must have shape {tuple(entry['shape'])}, got {a.shape}")
        a = np.array(a, dtype=np.dtype(entry["dtype"]), order="C")
        self.pairs[name][self.parity].update_inplace(a)

    def snapshot(self):
        return {name: self.get(name) for name in self.pairs}


class Plan:
    """One graph at one batch size ``n`` (None for a graph without a batch dimension),
    with one IOBinding per parity."""

    def __init__(self, gs, store, n, shared):
        self.n = n
        self.host = {}          # batch / noise input name -> NumPy buffer bound zero-copy
        self.outputs = {}       # non-scalar, non-state output name -> NumPy buffer
        self.scalar_names = gs.scalar_names
        self.steps = gs.steps
        self._batch_axis = 0 if gs.steps == 1 else 1      # train_loop stacks (steps, N, ...)
        dtypes = {np_type(gs.outputs[o]) for o in self.scalar_names}
        scalar_dtype = dtypes.pop() if len(dtypes) == 1 else np.float64
        # one row per scalar output, one column per step: each row binds without a copy
        self._by_output = np.zeros((len(self.scalar_names), gs.steps), dtype=scalar_dtype)
        self.scalars = self._by_output[:, 0] if gs.steps == 1 else self._by_output.T
        keep = []               # OrtValues wrapping host buffers must outlive the bindings
        host_ov = {}
        for name, arg in gs.inputs.items():
            if name in store or name in shared:
                continue
            buf = aligned_zeros(self._shape(gs.kind, arg), np_type(arg))
            self.host[name] = buf
            host_ov[name] = ort.OrtValue.ortvalue_from_numpy(buf)
        scalar_ov = {}
        for k, name in enumerate(self.scalar_names):
            view = self._by_output[k].reshape(()) if gs.steps == 1 else self._by_output[k]
            if view.dtype != np_type(gs.outputs[name]):
                view = np.zeros(view.shape, np_type(gs.outputs[name]))
            scalar_ov[name] = ort.OrtValue.ortvalue_from_numpy(view)
        self._mixed = any(np_type(gs.outputs[o]) != self.scalars.dtype for o in self.scalar_names)
        self._scalar_ov = scalar_ov
        self.bindings = []
        for p in (0, 1):
            b = gs.session.io_binding()
            for name in gs.inputs:
                if name in store:
                    b.bind_ortvalue_input(name, store.pairs[name][p])
                elif name in shared:
                    b.bind_ortvalue_input(name, shared[name])
                else:
                    b.bind_ortvalue_input(name, host_ov[name])
            for name, arg in gs.outputs.items():
                target = gs.feeds.get(name)
                if target is not None:
                    if target not in store:
                        raise BundleError(f"the {gs.kind!r} graph feeds output {name!r} to {target!r}, "
                                          "which is not a parameter, state or slot of the manifest")
                    b.bind_ortvalue_output(name, store.pairs[target][1 - p])
                elif name in shared:
                    b.bind_ortvalue_output(name, shared[name])
                elif name in scalar_ov:
                    b.bind_ortvalue_output(name, scalar_ov[name])
                else:
                    if name not in self.outputs:
                        self.outputs[name] = aligned_zeros(self._shape(gs.kind, arg), np_type(arg))
                        host_ov[name] = ort.OrtValue.ortvalue_from_numpy(self.outputs[name])
                    b.bind_ortvalue_output(name, host_ov[name])
            self.bindings.append(b)
        keep.append(host_ov)
        self._keep = keep
        self.run = [gs.runner(b) for b in self.bindings]

    def _shape(self, kind, arg):
        shape = []
        for d in arg.shape:
            if isinstance(d, int):
                shape.append(d)
            elif self.n is not None and len(shape) == self._batch_axis:
                shape.append(self.n)          # the symbolic batch dimension
            else:
                where = "leading" if self._batch_axis == 0 else "second (after the steps)"
                raise BundleError(f"the {kind!r} graph value {arg.name!r} has shape {arg.shape}: only the "
                                  f"{where} (batch) dimension may be symbolic")
        return tuple(shape)

    def read_scalars(self):
        """The scalar outputs after a run (copied into ``scalars`` when dtypes differ):
        a vector, or for a train_loop a (steps, outputs) array, one row per step."""
        if self._mixed:
            for k, name in enumerate(self.scalar_names):
                self._by_output[k] = self._scalar_ov[name].numpy()
        return self.scalars

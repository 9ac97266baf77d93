"""The runtime matrix: every graph of three programs in six runtimes, against onnxruntime (Python).

Rows: inference, train_step, gradients, update and eval of an MLP (sparse cross-entropy,
Adam), a CNN with batch norm (categorical cross-entropy, SGD momentum) and an MSE regressor
(Adam); benchmarks/runtimes_harness.py builds them and their fixed feeds. Columns:
onnxruntime (Python), onnxruntime-node, onnxruntime-web (wasm) in headless Chromium,
OpenVINO, tract (on the portable=True graphs: it lacks SoftmaxCrossEntropyLoss) and
onnx.reference. A cell is max|a - b| / max|b| over the graph's outputs (b: onnxruntime
Python on the same graph), or why the runtime did not run it.

    python benchmarks/runtime_matrix.py              # print the table
    python benchmarks/runtime_matrix.py --readme     # and rewrite README.md's runtime matrix
    python benchmarks/runtime_matrix.py --runtimes tract,onnx.reference --programs mse   # a subset

Node.js and the browser need examples/node's npm packages (npm install --ignore-scripts)
and Debian's chromium-headless-shell; without them their cells say so.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, os.pardir)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "examples", "web"))
import runtimes_harness as harness  # noqa: E402

COLUMNS = ("onnxruntime (Python)", "onnxruntime-node", "onnxruntime-web (Chromium)", "OpenVINO", "tract",
           "onnx.reference")
NODE_MODULES = os.path.join(ROOT, "examples", "node", "node_modules")
TOLERANCE = 1e-4


def _versions():
    import onnxruntime
    out = {"onnxruntime (Python)": onnxruntime.__version__}
    for column, module in (("OpenVINO", "openvino"), ("tract", "tract"), ("onnx.reference", "onnx")):
        try:
            mod = __import__(module)
            out[column] = (getattr(mod, "__version__", None) or _dist_version(module)).split("-")[0]
        except ImportError:
            pass
    for column, package in (("onnxruntime-node", "onnxruntime-node"), ("onnxruntime-web (Chromium)", "onnxruntime-web")):
        try:
            with open(os.path.join(NODE_MODULES, package, "package.json"), encoding="utf-8") as f:
                out[column] = json.load(f)["version"]
        except OSError:
            pass
    return out


def _dist_version(name):
    from importlib.metadata import version
    try:
        return version(name)
    except Exception:
        return "?"


def _pack(arrays, chunks, offset):
    index = {}
    for name, value in arrays.items():
        a = np.array(value, order="C")
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        index[name] = {"dtype": a.dtype.name, "shape": list(a.shape), "offset": offset, "nbytes": len(raw)}
        chunks.append(raw)
        offset += len(raw)
    return index, offset


def write_jobs(folder, cases):
    """cases: {(program, kind): (onnx bytes, feeds)} -> folder/jobs.json (+ blob and models)."""
    from symgrad.compiler.atomic import write_bytes
    chunks, offset, jobs = [], 0, []
    for (program, kind), (model, feeds) in cases.items():
        name = f"{program}-{kind}.onnx"
        write_bytes(os.path.join(folder, name), model)
        inputs, offset = _pack(feeds, chunks, offset)
        jobs.append({"id": f"{program}/{kind}", "model": name, "inputs": inputs})
    write_bytes(os.path.join(folder, "jobs.bin"), b"".join(chunks))
    return write_bytes(os.path.join(folder, "jobs.json"), json.dumps({"blob": "jobs.bin", "jobs": jobs}).encode())


def _js_outputs(raw):
    return {name: np.array(o["data"], dtype=np.float64).reshape(o["dims"]) for name, o in raw.items()}


def _node_missing(package):
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not os.path.isdir(os.path.join(NODE_MODULES, package)):
        return f"{package} not installed (npm install --ignore-scripts in examples/node)"
    return None


def run_node(jobs_path, web):
    why = _node_missing("onnxruntime-web" if web else "onnxruntime-node")
    if why:
        return why
    cmd = ["node", os.path.join(HERE, "js", "run_graphs.js"), jobs_path] + (["--web"] if web else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        return f"failed: {proc.stderr.strip()[-300:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_chromium(folder):
    why = _node_missing("playwright-core")
    if why:
        return why
    import serve
    server, base = serve.start(folder, folder, extra_routes={"/bench/": os.path.join(HERE, "js")})
    try:
        url = f"{base}/bench/run_graphs.html?jobs=/data/jobs.json"
        proc = subprocess.run(["node", os.path.join(ROOT, "examples", "web", "browser.js"), url, "--timeout-ms",
                               "300000"], capture_output=True, text=True, timeout=600)
    finally:
        server.shutdown()
        server.server_close()
    if proc.returncode:
        return f"failed: {proc.stderr.strip()[-300:]}"
    page = json.loads(proc.stdout.strip().splitlines()[-1])[0]
    return dict(page["outputs"], _browser=page.get("browser"))


def _reason(exc):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    m = re.search(r"Unimplemented\((\w+)\)", str(exc))
    return f"no {m.group(1)}" if m else text[:120]


def matrix(programs, runtimes):
    """{(program, kind): {column: float or reason}}, plus notes (browser version)."""
    cells, notes = {}, {}
    cases = {}
    for program in programs:
        feeds, graphs = harness.graph_feeds(harness.load_program(program))
        portable = harness.graph_feeds(harness.load_program(program, portable=True)) if "tract" in runtimes else None
        for kind in harness.KINDS:
            want = harness.run_onnxruntime(graphs[kind], feeds[kind])
            row = cells.setdefault((program, kind), {})
            row["onnxruntime (Python)"] = 0.0
            cases[program, kind] = (graphs[kind], feeds[kind], want)
            for column in ("OpenVINO", "tract", "onnx.reference"):
                if column not in runtimes:
                    continue
                why = harness.available(column)
                if why:
                    row[column] = why
                    continue
                f, g = (portable if column == "tract" else (feeds, graphs))
                ref = harness.run_onnxruntime(g[kind], f[kind]) if column == "tract" else want
                try:
                    row[column] = harness.relative_difference(harness.PYTHON_RUNTIMES[column](g[kind], f[kind]), ref)
                except Exception as exc:  # the runtime's refusal is the cell
                    row[column] = _reason(exc)
    js_columns = [c for c in ("onnxruntime-node", "onnxruntime-web (Chromium)") if c in runtimes]
    if js_columns:
        with tempfile.TemporaryDirectory() as folder:
            jobs = write_jobs(folder, {k: (m, f) for k, (m, f, _) in cases.items()})
            for column in js_columns:
                raw = run_node(jobs, web=False) if column == "onnxruntime-node" else run_chromium(folder)
                if isinstance(raw, dict) and raw.get("_browser"):
                    notes["browser"] = raw.pop("_browser")
                for key, (_, _, want) in cases.items():
                    if isinstance(raw, str):
                        cells[key][column] = raw
                        continue
                    out = raw.get(f"{key[0]}/{key[1]}", {"error": "no result"})
                    if "error" in out:
                        cells[key][column] = _reason(out["error"])
                        continue
                    try:
                        cells[key][column] = harness.relative_difference(_js_outputs(out), want)
                    except AssertionError as exc:
                        cells[key][column] = str(exc)
    return cells, notes


def _cell(value):
    if isinstance(value, float):
        return f"{value:.1e}" if value else "0"
    return value


def table(cells, runtimes, notes):
    cols = [c for c in COLUMNS if c in runtimes]
    versions = _versions()
    head = [f"{c} {versions[c]}" if c in versions else c for c in cols]
    if "browser" in notes and "onnxruntime-web (Chromium)" in cols:
        i = cols.index("onnxruntime-web (Chromium)")
        head[i] = head[i].replace("(Chromium)", f"(Chromium {notes['browser'].split('.')[0]})")
    lines = ["| program | graph | " + " | ".join(head) + " |", "|---|---|" + "---:|" * len(cols)]
    for (program, kind), row in cells.items():
        lines.append(f"| {program} | {kind} | " + " | ".join("reference" if c == COLUMNS[0] else _cell(row.get(c, "not run")) for c in cols) + " |")
    return "\n".join(lines)


def worst(cells):
    values = [v for row in cells.values() for v in row.values() if isinstance(v, float)]
    failures = [(k, c, v) for k, row in cells.items() for c, v in row.items() if not isinstance(v, float)]
    return max(values) if values else None, failures


def update_readme(text):
    path = os.path.join(ROOT, "README.md")
    with open(path, encoding="utf-8") as f:
        readme = f.read()
    new, n = re.subn(r"(<!-- runtime-matrix:start -->\n)(?:.*?\n)?(<!-- runtime-matrix:end -->)",
                     lambda m: m.group(1) + text + "\n" + m.group(2), readme, flags=re.S)
    if not n:
        print("README.md has no runtime-matrix markers; table not written", file=sys.stderr)
        return
    from symgrad.compiler.atomic import write_bytes
    write_bytes(path, new.encode("utf-8"))
    print("README.md runtime matrix updated")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", action="store_true", help="rewrite the runtime matrix in README.md")
    ap.add_argument("--runtimes", default=",".join(COLUMNS), help="comma-separated columns to run")
    ap.add_argument("--programs", default=",".join(harness.PROGRAMS), help="comma-separated programs")
    ap.add_argument("--json", help="also write the cells as JSON here")
    ap.add_argument("--quick", action="store_true", help="CI smoke run: the MSE program, Python runtimes only")
    args = ap.parse_args(argv)
    if args.quick:
        args.runtimes, args.programs = "onnxruntime (Python),OpenVINO,tract,onnx.reference", "mse"
        args.readme = False
    runtimes = [r for r in args.runtimes.split(",") if r]
    unknown = set(runtimes) - set(COLUMNS)
    if unknown:
        ap.error(f"unknown runtimes {sorted(unknown)}; accepted: {', '.join(COLUMNS)}")
    programs = [p for p in args.programs.split(",") if p]
    cells, notes = matrix(programs, runtimes)
    text = (f"Generated {datetime.date.today().isoformat()} by `python benchmarks/runtime_matrix.py --readme`: "
            "max\\|a − b\\| / max\\|b\\| over each graph's outputs against onnxruntime (Python) on the same "
            "fixed feeds (benchmarks/runtimes_harness.py); tract runs the `portable=True` graphs.\n\n"
            + table(cells, runtimes, notes))
    print(text)
    top, failures = worst(cells)
    print(f"\nlargest difference: {top:.1e} (tolerance {TOLERANCE:.0e}); cells that did not run: {len(failures)}"
          if top is not None else "\nno cell ran")
    for (program, kind), column, why in failures:
        print(f"  {program}/{kind} in {column}: {why}")
    if args.json:
        from symgrad.compiler.atomic import write_bytes
        write_bytes(args.json, json.dumps({f"{p}/{k}": row for (p, k), row in cells.items()}, indent=1).encode())
    if args.readme:
        update_readme(text)
    return 0 if (top is None or top < TOLERANCE) and not failures else 1


if __name__ == "__main__":
    sys.exit(main())

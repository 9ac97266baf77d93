"""Training in a real browser: examples/web's page trains the digits MLP in headless
Chromium with onnxruntime-web (wasm), served from 127.0.0.1, and its per-step losses
equal the Python Trainer's on the same batches to 1e-5 (SGD and Adam), as do its final
parameters (for Adam, those whose gradient is not identically zero) and its predictions.

Needs Debian's chromium-headless-shell and examples/node's npm packages (onnxruntime-web,
playwright-core), which .ci/run installs. Locally a missing piece skips with the command
that installs it; in CI (CI set) it fails with that reason instead.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from needs import require

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
WEB = os.path.join(ROOT, "examples", "web")
NODE_MODULES = os.path.join(ROOT, "examples", "node", "node_modules")
sys.path.insert(0, WEB)
import digits  # noqa: E402
import serve  # noqa: E402

BROWSERS = ("/usr/bin/chromium-headless-shell", "/usr/lib/chromium/headless_shell", "/usr/bin/chromium")


def _why_not():
    if shutil.which("node") is None:
        return "node is not on PATH: install Node.js >= 18"
    for package in ("onnxruntime-web", "playwright-core"):
        if not os.path.isdir(os.path.join(NODE_MODULES, package)):
            return f"examples/node/node_modules has no {package}: run 'npm install --ignore-scripts' in examples/node"
    wanted = os.environ.get("SYMGRAD_CHROMIUM")
    if not (os.path.exists(wanted) if wanted else any(os.path.exists(b) for b in BROWSERS)):
        return ("no headless Chromium: apt-get update && apt-get install -y --no-install-recommends "
                "chromium-headless-shell (or set SYMGRAD_CHROMIUM)")
    return None


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory):
    require(_why_not())
    pytest.importorskip("sklearn", reason="the digits come from scikit-learn (pip install scikit-learn)")
    root = tmp_path_factory.mktemp("web")
    python = {opt: digits.write_story(str(root / opt), opt) for opt in digits.OPTIMIZERS}
    server, base = serve.start(str(root))
    try:
        urls = [f"{base}/web/index.html?bundle=/bundle/{opt}/bundle/&batches=/bundle/{opt}/data/batches.json"
                for opt in digits.OPTIMIZERS]
        out = subprocess.run(["node", os.path.join(WEB, "browser.js"), *urls], capture_output=True, text=True,
                             timeout=240)
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, f"the browser run failed: {out.stderr[-3000:]}"
    pages = json.loads(out.stdout.strip().splitlines()[-1])
    return {opt: (python[opt], page) for opt, page in zip(digits.OPTIMIZERS, pages)}


@pytest.mark.parametrize("opt", digits.OPTIMIZERS)
def test_browser_losses_equal_pythons(browser_run, opt):
    py, page = browser_run[opt]
    assert page["browser"], "no browser version: the page did not run in Chromium"
    assert len(page["losses"]) == len(py["losses"]) == 12 and page["steps"] == 12
    np.testing.assert_allclose(page["losses"], py["losses"], rtol=0, atol=1e-5)
    assert py["losses"][-1] < py["losses"][0] - 0.3, "the loss barely moved: the comparison would be weak"


@pytest.mark.parametrize("opt", digits.OPTIMIZERS)
def test_browser_trained_weights_and_predictions_equal_pythons(browser_run, opt):
    py, page = browser_run[opt]
    compared = 0
    for name, value in py["state"].items():
        got = np.array(page["state"][name], dtype=np.float64).reshape(value.shape)
        if opt == "adam" and not name.startswith("adam/") and np.all(py["state"][f"adam/m/{name}"] == 0):
            continue  # gradient identically zero: Adam turns each runtime's rounding noise into full steps
        np.testing.assert_allclose(got, value, rtol=0, atol=1e-5, err_msg=name)
        compared += 1
    assert compared >= 4
    pred = np.array(page["prediction"]["data"]).reshape(page["prediction"]["dims"])
    np.testing.assert_allclose(pred, py["prediction"], rtol=0, atol=1e-4)

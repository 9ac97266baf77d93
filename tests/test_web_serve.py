"""examples/web/serve.py: the page's server answers only from its routed folders, on 127.0.0.1."""
import os
import sys
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples", "web"))
import serve  # noqa: E402


@pytest.fixture
def server(tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "manifest.json").write_text('{"format": "symgrad-bundle"}')
    (tmp_path / "secret.txt").write_text("not served")
    srv, base = serve.start(str(tmp_path / "bundle"))
    yield base
    srv.shutdown()
    srv.server_close()


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as exc:
        return exc.code, b"", None


def test_serves_the_page_the_module_and_the_bundle(server):
    assert server.startswith("http://127.0.0.1:")
    status, body, ctype = _get(server + "/bundle/manifest.json")
    assert status == 200 and b"symgrad-bundle" in body and ctype == "application/json"
    status, body, ctype = _get(server + "/js/trainer.js")
    assert status == 200 and b"class Trainer" in body and ctype == "text/javascript"
    assert _get(server + "/js/formats.js")[0] == 200
    status, body, _ = _get(server + "/")            # redirected to the page
    assert status == 200 and b"symgrad" in body and b"/js/trainer.js" in body


@pytest.mark.parametrize("path", ["/bundle/../secret.txt", "/bundle/%2e%2e/secret.txt", "/js/bundle.js",
                                  "/js/trainer.js/x", "/etc/passwd", "/web/../../node/package.json"])
def test_nothing_outside_the_routes_is_served(server, path):
    assert _get(server + path)[0] == 404

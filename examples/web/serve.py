"""Serve the training page (examples/web) on 127.0.0.1 for a quick look or a test.

    python examples/web/serve.py BUNDLE_DIR --data DIR_WITH_batches.json [--port 8000]
    python examples/web/serve.py --demo                 # compiles the digits MLP first (needs scikit-learn)

then open http://127.0.0.1:8000/ . Routes: /web/ (this folder), /js/trainer.js (the shared
trainer module in examples/node), /ort/ (onnxruntime-web's dist/ from examples/node's
node_modules: run `npm install --ignore-scripts` there first), /bundle/ and /data/.
/js/formats.js too: trainer.js's byte formats.
Only loopback is bound: the page is for this machine.
"""
import argparse
import functools
import http.server
import os
import posixpath
import sys
import tempfile
import threading
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = os.path.join(HERE, os.pardir, "node")
ORT_DIST = os.path.join(NODE, "node_modules", "onnxruntime-web", "dist")


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
                      ".json": "application/json", ".onnx": "application/octet-stream",
                      ".bin": "application/octet-stream"}

    def __init__(self, *args, routes, **kwargs):
        self.routes = routes
        super().__init__(*args, directory=HERE, **kwargs)

    def translate_path(self, path):
        """A URL path to a file under one route's folder; anything else to a name that does
        not exist (a 404), never a file outside the routed folders."""
        path = posixpath.normpath(urllib.parse.unquote(urllib.parse.urlsplit(path).path))
        for prefix, target in self.routes.items():
            if path == prefix.rstrip("/") or path.startswith(prefix):
                rest = path[len(prefix):].lstrip("/")
                if not prefix.endswith("/"):          # a single file
                    return target if not rest else os.devnull + "/missing"
                parts = [p for p in rest.split("/") if p not in ("", ".", "..")]
                return os.path.join(target, *parts)
        return os.devnull + "/missing"

    def do_GET(self):
        if self.path in ("/", "/index.html"):
            self.send_response(302)
            self.send_header("Location", "/web/index.html")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):           # quiet: a test reads stdout
        pass


def make_server(bundle_dir, data_dir=None, port=0, extra_routes=None):
    """A ThreadingHTTPServer on 127.0.0.1 (port 0: any free port); call serve_forever().
    extra_routes: {URL prefix: folder, or exact URL path: file} served besides the page's."""
    routes = {"/web/": HERE, "/js/trainer.js": os.path.abspath(os.path.join(NODE, "trainer.js")),
              "/js/formats.js": os.path.abspath(os.path.join(NODE, "formats.js")),
              "/ort/": os.path.abspath(ORT_DIST), "/bundle/": os.path.abspath(bundle_dir)}
    if data_dir is not None:
        routes["/data/"] = os.path.abspath(data_dir)
    routes.update(extra_routes or {})
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, routes=routes))


def start(bundle_dir, data_dir=None, extra_routes=None):
    """Serve in a daemon thread; returns (server, base URL). server.shutdown() stops it."""
    server = make_server(bundle_dir, data_dir, extra_routes=extra_routes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Serve symgrad's browser training page on 127.0.0.1.")
    ap.add_argument("bundle", nargs="?", help="a bundle folder (program.save / symgrad compile)")
    ap.add_argument("--data", help="a folder with batches.json (examples/node/batches.py writes one)")
    ap.add_argument("--demo", action="store_true", help="compile the digits MLP and its batches first")
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args(argv)
    if not os.path.isdir(ORT_DIST):
        sys.exit(f"error: {ORT_DIST} is missing: run 'npm install --ignore-scripts' in examples/node")
    if not args.bundle and not args.demo:
        ap.error("give a bundle folder, or --demo")
    with tempfile.TemporaryDirectory(prefix="symgrad-web-") as tmp:   # the demo's files, removed on exit
        if args.demo:
            sys.path.insert(0, HERE)
            from digits import write_story
            write_story(tmp, "adam")
            args.bundle, args.data = os.path.join(tmp, "bundle"), os.path.join(tmp, "data")
        server = make_server(args.bundle, args.data, args.port)
        print(f"serving http://127.0.0.1:{server.server_address[1]}/  (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


if __name__ == "__main__":
    main()

// The page: fetch a bundle and a batches file, train with the shared trainer module
// (/js/trainer.js + /js/formats.js, the files Node.js uses) on onnxruntime-web, draw the
// loss curve as it goes, then predict with the trained weights. The result is left in window.symgradResult
// for tests (examples/web/browser.js reads it).
//
// URL parameters: bundle (default /bundle/), batches (default /data/batches.json).
'use strict';

(async function main() {
  const params = new URLSearchParams(location.search);
  const bundleUrl = params.get('bundle') || '/bundle/';
  const batchesUrl = params.get('batches') || '/data/batches.json';
  const status = document.getElementById('status');
  const say = (text) => { status.textContent = text; };

  async function bytes(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  }
  async function json(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }

  function draw(losses, total) {
    const canvas = document.getElementById('curve');
    const g = canvas.getContext('2d');
    const w = canvas.width;
    const h = canvas.height;
    g.clearRect(0, 0, w, h);
    if (!losses.length) return;
    const top = Math.max(...losses) * 1.05;
    g.fillStyle = '#555';
    g.font = '13px sans-serif';
    g.fillText(`loss (max ${top.toFixed(3)})`, 8, 14);
    g.fillText(`step ${losses.length}/${total}`, w - 90, h - 8);
    g.strokeStyle = '#1f6feb';
    g.lineWidth = 2;
    g.beginPath();
    losses.forEach((v, i) => {
      const x = 10 + (i / Math.max(total - 1, 1)) * (w - 20);
      const y = h - 10 - (v / top) * (h - 30);
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
  }

  try {
    ort.env.wasm.numThreads = 1;          // no cross-origin isolation needed
    ort.env.wasm.wasmPaths = '/ort/';
    const manifest = await json(`${bundleUrl}manifest.json`);
    const files = {};
    for (const name of symgrad.bundleFiles(manifest)) files[name] = await bytes(bundleUrl + name);
    const bundle = symgrad.parseBundle(manifest, files, bundleUrl);
    const index = await json(batchesUrl);
    const blob = await bytes(new URL(index.blob, new URL(batchesUrl, location.href)).href);
    const epochs = symgrad.parseBatches(index, blob);
    const total = epochs.reduce((n, e) => n + e.length, 0);
    const trainer = await symgrad.Trainer.create(ort, bundle, { executionProviders: ['wasm'] });

    const losses = [];
    const live = {
      onBatchEnd: async (batch, logs) => {
        losses.push(logs.loss);
        draw(losses, total);
        say(`step ${losses.length}/${total}  loss ${logs.loss.toFixed(5)}`);
        await new Promise((r) => setTimeout(r, 0));   // let the page repaint
      },
    };
    const history = await trainer.fit(epochs, { callbacks: [live] });

    const first = epochs[0][0].inputs[manifest.data.x.name];
    const pred = await trainer.predict(first);
    const [n, classes] = pred.dims;
    const predicted = [];
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let j = 1; j < classes; j++) if (pred.data[i * classes + j] > pred.data[i * classes + best]) best = j;
      predicted.push(best);
    }
    const labels = epochs[0][0].inputs[manifest.data.y.name];
    const shown = predicted.map((p, i) => `<span class="digit">${p}<br><small>label ${labels.data[i]}</small></span>`);
    document.getElementById('predictions').innerHTML = `<p>Predictions on the first batch:</p>${shown.join('')}`;
    say(`trained ${total} steps: loss ${losses[0].toFixed(4)} → ${losses[losses.length - 1].toFixed(4)}`);
    window.symgradResult = {
      done: true, losses, epochs: history.history, steps: trainer.step,
      prediction: { dims: pred.dims, data: Array.from(pred.data) }, state: Object.fromEntries(
        Object.entries(trainer.snapshot()).map(([k, t]) => [k, Array.from(t.data, Number)])),
    };
  } catch (err) {
    say(`error: ${err.message}`);
    window.symgradResult = { done: true, error: String(err && err.stack || err) };
  }
}());

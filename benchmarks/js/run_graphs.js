// Run ONNX graphs on given inputs with onnxruntime-node or onnxruntime-web, for
// benchmarks/runtime_matrix.py. The same code runs under Node.js and in the browser
// (run_graphs.html); only the file access differs.
//
//   node run_graphs.js JOBS.json [--web]      prints {job id: {output: {dims, data}} | {error}}
//
// JOBS.json: {"blob": "jobs.bin", "jobs": [{"id": ..., "model": "file.onnx",
//             "inputs": {name: {dtype, shape, offset, nbytes}}}]}  (paths relative to JOBS.json)
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.runGraphs = factory();
}(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  // read(path) -> Promise<Uint8Array>; symgrad: the shared trainer module (readTensors).
  async function runJobs(ort, symgrad, index, read, executionProviders) {
    const blob = await read(index.blob);
    const results = {};
    for (const job of index.jobs) {
      try {
        const session = await ort.InferenceSession.create(await read(job.model),
          { executionProviders, intraOpNumThreads: 1, interOpNumThreads: 1 });
        const feeds = {};
        for (const [name, t] of Object.entries(symgrad.readTensors(job.inputs, blob))) {
          feeds[name] = new ort.Tensor(t.dtype, t.data, t.shape);
        }
        const out = await session.run(feeds);
        const outputs = {};
        for (const [name, t] of Object.entries(out)) outputs[name] = { dims: t.dims, data: Array.from(t.data, Number) };
        results[job.id] = outputs;
      } catch (err) {
        results[job.id] = { error: String(err && err.message || err) };
      }
    }
    return results;
  }

  return { runJobs };
}));

if (typeof require !== 'undefined' && typeof module !== 'undefined' && require.main === module) {
  const fs = require('fs');
  const path = require('path');
  const nodeDir = path.join(__dirname, '..', '..', 'examples', 'node');
  const symgrad = require(path.join(nodeDir, 'trainer.js'));
  const [jobsPath, flag] = process.argv.slice(2);
  const web = flag === '--web';
  const ort = require(path.join(nodeDir, 'node_modules', web ? 'onnxruntime-web' : 'onnxruntime-node'));
  if (web) ort.env.wasm.numThreads = 1;
  const index = JSON.parse(fs.readFileSync(jobsPath, 'utf8'));
  const read = async (name) => new Uint8Array(fs.readFileSync(path.join(path.dirname(jobsPath), name)));
  module.exports.runJobs(ort, symgrad, index, read, [web ? 'wasm' : 'cpu'])
    .then((r) => console.log(JSON.stringify(r)))
    .catch((err) => { console.error(`error: ${err.message}`); process.exit(2); });
}

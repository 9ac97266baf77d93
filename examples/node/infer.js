#!/usr/bin/env node
// Run a model exported by symgrad (trainer.export / `symgrad export`) in onnxruntime-node.
//
//   node infer.js model.onnx [inputs.json]
//
// inputs.json: {"blob"?: "x.bin", "inputs": {"x": {"dtype": "float32", "shape": [2, 64],
// "data": [...]}}} (or offset/nbytes into the blob instead of data). Without it, the
// model's inputs are filled with a fixed pattern at batch size 2, as a smoke run.
// Prints {"outputs": {name: {"dims": [...], "data": [...]}}, "argmax": [...]} as JSON.
'use strict';

const ort = require('onnxruntime-node');
const { loadInputs } = require('./bundle');
const { arrayType } = require('./trainer');

function pattern(meta, batch) {
  const shape = meta.shape.map((d) => (typeof d === 'number' ? d : batch));
  const size = shape.reduce((a, b) => a * b, 1);
  const T = arrayType(meta.type);
  const data = new T(size);
  for (let i = 0; i < size; i++) data[i] = T === BigInt64Array ? 0n : Math.sin(i) * 0.5;
  return new ort.Tensor(meta.type, data, shape);
}

async function main() {
  const [modelPath, inputsPath] = process.argv.slice(2);
  if (!modelPath || modelPath === '--help' || modelPath === '-h') {
    console.error('usage: node infer.js model.onnx [inputs.json]');
    process.exit(modelPath ? 0 : 2);
  }
  const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'] });
  const feeds = {};
  if (inputsPath) {
    for (const [name, t] of Object.entries(loadInputs(inputsPath))) feeds[name] = new ort.Tensor(t.dtype, t.data, t.shape);
  } else {
    for (const meta of session.inputMetadata) feeds[meta.name] = pattern(meta, 2);
  }
  const results = await session.run(feeds);
  const outputs = {};
  for (const [name, t] of Object.entries(results)) {
    outputs[name] = { dims: t.dims, data: Array.from(t.data, Number) };
  }
  // The predicted class per row of the first 2-D output (a classifier's logits).
  const first = results[session.outputNames[0]];
  let argmax = null;
  if (first.dims.length === 2) {
    const [n, c] = first.dims;
    argmax = [];
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let j = 1; j < c; j++) if (first.data[i * c + j] > first.data[i * c + best]) best = j;
      argmax.push(best);
    }
  }
  console.log(JSON.stringify({ outputs, argmax }));
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(2);
});

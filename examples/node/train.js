#!/usr/bin/env node
// Train a symgrad bundle from Node.js.
//
//   node train.js BUNDLE_DIR BATCHES.json [--resume CKPT] [--checkpoint CKPT] [--export MODEL.onnx]
//                 [--save-state FILE] [--web] [--quiet]
//
// BATCHES.json indexes a raw blob of batches (trainer.js: parseBatches); Python writes one
// with batches.py. --resume starts from a checkpoint (written here or by Python's
// Trainer.save_checkpoint); --checkpoint writes the final training state in the same
// format, which Python's Trainer.load_checkpoint reads; --export writes the trained
// inference model. --web runs onnxruntime-web (wasm) instead of onnxruntime-node.
// Prints {"losses": [per step], "epochs": {...}, "steps": n} as JSON on the last line.
'use strict';

const fs = require('fs');
const { loadBundle, loadBatches, saveState, writeAtomic } = require('./bundle');
const { Trainer } = require('./trainer');

const FLAGS = { '--resume': 'resume', '--checkpoint': 'checkpoint', '--export': 'export', '--save-state': 'saveState' };

function parseArgs(argv) {
  const args = { positional: [], quiet: false, web: false };
  for (let i = 0; i < argv.length; i++) {
    if (FLAGS[argv[i]]) args[FLAGS[argv[i]]] = argv[++i];
    else if (argv[i] === '--quiet') args.quiet = true;
    else if (argv[i] === '--web') args.web = true;
    else if (argv[i] === '--help' || argv[i] === '-h') args.help = true;
    else args.positional.push(argv[i]);
  }
  return args;
}

function runtime(web) {
  if (!web) return require('onnxruntime-node');
  const ort = require('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  return ort;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help || args.positional.length !== 2) {
    console.error('usage: node train.js BUNDLE_DIR BATCHES.json [--resume CKPT] [--checkpoint CKPT] '
      + '[--export MODEL.onnx] [--save-state FILE] [--web] [--quiet]');
    process.exit(args.help ? 0 : 2);
  }
  const [bundleDir, batchesPath] = args.positional;
  const bundle = loadBundle(bundleDir);
  const epochs = loadBatches(batchesPath);
  const trainer = await Trainer.create(runtime(args.web), bundle, args.web ? { executionProviders: ['wasm'] } : {});
  if (args.resume) trainer.restore(new Uint8Array(fs.readFileSync(args.resume)), `checkpoint ${args.resume}`);

  const losses = [];
  // TF.js-style callbacks: one records every step's loss, one reports each epoch.
  const recorder = { onBatchEnd: async (batch, logs) => { losses.push(logs.loss); } };
  const reporter = {
    onEpochEnd: async (epoch, logs) => {
      if (!args.quiet) {
        const parts = Object.entries(logs).map(([k, v]) => `${k}=${v.toFixed(4)}`);
        console.error(`epoch ${epoch + 1}/${epochs.length} ${parts.join(' ')}`);
      }
    },
  };
  const history = await trainer.fit(epochs, { callbacks: [recorder, reporter] });
  if (args.saveState) saveState(bundle.manifest, trainer.snapshot(), args.saveState);
  if (args.checkpoint) writeAtomic(args.checkpoint, trainer.checkpoint());
  if (args.export) writeAtomic(args.export, trainer.exportInference());
  console.log(JSON.stringify({ losses, epochs: history.history, steps: trainer.step }));
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(2);
});

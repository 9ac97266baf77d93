#!/usr/bin/env node
// Train a symgrad bundle from Node.js.
//
//   node train.js BUNDLE_DIR BATCHES.json [--save-state final.bin] [--quiet]
//
// BATCHES.json indexes a raw blob of batches (see bundle.js: loadBatches); Python writes
// one with examples/node/write_batches.py. Prints {"losses": [per step], "epochs": [...]}
// as JSON on the last line of stdout.
'use strict';

const { loadBundle, loadBatches, saveState } = require('./bundle');
const { Trainer } = require('./trainer');

function parseArgs(argv) {
  const args = { positional: [], saveState: null, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--save-state') args.saveState = argv[++i];
    else if (argv[i] === '--quiet') args.quiet = true;
    else if (argv[i] === '--help' || argv[i] === '-h') args.help = true;
    else args.positional.push(argv[i]);
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help || args.positional.length !== 2) {
    console.error('usage: node train.js BUNDLE_DIR BATCHES.json [--save-state FILE] [--quiet]');
    process.exit(args.help ? 0 : 2);
  }
  const [bundleDir, batchesPath] = args.positional;
  const bundle = loadBundle(bundleDir);
  const epochs = loadBatches(batchesPath);
  const trainer = await Trainer.create(bundle);

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
  console.log(JSON.stringify({ losses, epochs: history.history, steps: trainer.step }));
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(2);
});

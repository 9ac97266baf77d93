// Node.js file access for the shared trainer module (trainer.js): read a symgrad artifact
// bundle (docs/internals.md §3), batch and input files, and write checkpoints, state and
// exported models atomically. The browser does the same reading with fetch (../web/app.js).
'use strict';

const fs = require('fs');
const path = require('path');
const { parseBundle, bundleFiles, parseBatches, readTensors, packState } = require('./formats');

// {manifest, dir, graphs: {kind: Uint8Array}, state: {name: {dtype, shape, data}}}
function loadBundle(dir) {
  const mpath = path.join(dir, 'manifest.json');
  if (!fs.existsSync(mpath)) throw new Error(`${dir} is not a symgrad bundle: manifest.json is missing`);
  const manifest = JSON.parse(fs.readFileSync(mpath, 'utf8'));
  if (manifest.format !== 'symgrad-bundle') throw new Error(`${mpath} is not a symgrad bundle manifest`);
  const files = {};
  for (const name of bundleFiles(manifest)) {
    const file = path.join(dir, path.basename(name));
    if (fs.existsSync(file)) files[name] = new Uint8Array(fs.readFileSync(file));
  }
  return { ...parseBundle(manifest, files, `bundle ${dir}`), dir };
}

function loadBatches(indexPath) {
  const index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  return parseBatches(index, new Uint8Array(fs.readFileSync(path.join(path.dirname(indexPath), index.blob))));
}

// An inputs file for infer.js: {"blob"?: "x.bin", "inputs": {name: entry}} (entries as in batches).
function loadInputs(indexPath) {
  const index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  const blob = index.blob ? new Uint8Array(fs.readFileSync(path.join(path.dirname(indexPath), index.blob)))
    : new Uint8Array(0);
  return readTensors(index.inputs, blob);
}

// Temporary name, then rename: a reader never sees half a file.
function writeAtomic(file, bytes) {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

// Raw tensors in the state.bin layout of the manifest (for comparing weights).
function saveState(manifest, state, file) {
  writeAtomic(file, packState(manifest, state));
}

module.exports = { loadBundle, loadBatches, loadInputs, saveState, writeAtomic };

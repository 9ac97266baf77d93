// Read a symgrad artifact bundle (docs/internals.md §3) and batch files without Python.
//
// A bundle is manifest.json + ONNX graphs + state.bin (raw little-endian arrays at the
// offsets the manifest gives). Nothing here knows about the model: every name, shape
// and dtype comes from the manifest, so any bundle symgrad compiles trains the same way.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};
const SECTIONS = ['params', 'state', 'slots'];

function arrayType(dtype) {
  const T = ARRAYS[dtype];
  if (!T) throw new Error(`dtype ${JSON.stringify(dtype)} is not supported; accepted: ${Object.keys(ARRAYS).join(', ')}`);
  return T;
}

// A typed array over bytes [offset, offset + nbytes) of a Buffer; copied so that it is
// aligned and owns its memory (state.bin offsets need not be multiples of 8).
function view(buffer, dtype, offset, nbytes) {
  const T = arrayType(dtype);
  if (offset + nbytes > buffer.length) {
    throw new Error(`file is truncated: bytes ${offset}..${offset + nbytes} requested, ${buffer.length} present`);
  }
  const copy = buffer.buffer.slice(buffer.byteOffset + offset, buffer.byteOffset + offset + nbytes);
  return new T(copy);
}

function readChecked(dir, name, checksums) {
  const file = path.join(dir, name);
  if (!fs.existsSync(file)) throw new Error(`bundle ${dir} is incomplete: ${name} is missing`);
  const data = fs.readFileSync(file);
  const want = checksums[name];
  if (want) {
    const got = 'sha256:' + crypto.createHash('sha256').update(data).digest('hex');
    if (got !== want) throw new Error(`bundle ${dir}: ${name} is corrupt (checksum mismatch)`);
  }
  return data;
}

// {manifest, dir, graphs: {kind: Buffer}, state: {name: {dtype, shape, data}}}
function loadBundle(dir) {
  const mpath = path.join(dir, 'manifest.json');
  if (!fs.existsSync(mpath)) throw new Error(`${dir} is not a symgrad bundle: manifest.json is missing`);
  const manifest = JSON.parse(fs.readFileSync(mpath, 'utf8'));
  if (manifest.format !== 'symgrad-bundle') throw new Error(`${mpath} is not a symgrad bundle manifest`);
  if (manifest.format_version > 1) {
    throw new Error(`${mpath} has format version ${manifest.format_version}; this loop reads version 1`);
  }
  const checksums = manifest.checksums || {};
  const raw = readChecked(dir, manifest.state_file || 'state.bin', checksums);
  const state = {};
  for (const section of SECTIONS) {
    for (const e of manifest[section] || []) {
      state[e.name] = { dtype: e.dtype, shape: e.shape, data: view(raw, e.dtype, e.offset, e.nbytes) };
    }
  }
  const graphs = {};
  for (const [kind, g] of Object.entries(manifest.graphs)) graphs[kind] = readChecked(dir, g.file, checksums);
  return { manifest, dir, graphs, state };
}

// A batches file is an index (JSON) beside one raw little-endian blob:
//   {"blob": "batches.bin", "epochs": [[{"inputs": {name: {dtype, shape, offset, nbytes}},
//                                        "learning_rate": 0.1, "step": 1}, ...], ...]}
// learning_rate and step are optional per batch (the manifest's optimizer config and the
// running 1-based step count are used when absent).
function loadBatches(indexPath) {
  const index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  const blob = fs.readFileSync(path.join(path.dirname(indexPath), index.blob));
  return index.epochs.map((batches) => batches.map((b) => (
    { inputs: readTensors(b.inputs, blob), learning_rate: b.learning_rate, step: b.step })));
}

// {name: {dtype, shape, offset, nbytes}} over `blob`, or {name: {dtype, shape, data: [numbers]}}.
function readTensors(entries, blob) {
  const out = {};
  for (const [name, e] of Object.entries(entries)) {
    let data;
    if (Array.isArray(e.data)) {
      const T = arrayType(e.dtype);
      data = T === BigInt64Array ? BigInt64Array.from(e.data.map(BigInt)) : T.from(e.data);
    } else {
      data = view(blob, e.dtype, e.offset, e.nbytes);
    }
    out[name] = { dtype: e.dtype, shape: e.shape, data };
  }
  return out;
}

// An inputs file for infer.js: {"blob"?: "x.bin", "inputs": {name: entry}} (entries as above).
function loadInputs(indexPath) {
  const index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  const blob = index.blob ? fs.readFileSync(path.join(path.dirname(indexPath), index.blob)) : Buffer.alloc(0);
  return readTensors(index.inputs, blob);
}

// Write tensors in the state.bin layout of the manifest (for comparing final weights).
function saveState(manifest, state, file) {
  const chunks = [];
  for (const section of SECTIONS) {
    for (const e of manifest[section] || []) {
      const d = state[e.name].data;
      chunks.push(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
    }
  }
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, Buffer.concat(chunks));
  fs.renameSync(tmp, file);  // atomic: a reader never sees half a file
}

module.exports = { loadBundle, loadBatches, loadInputs, saveState, arrayType };

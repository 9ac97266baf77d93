// The file formats of symgrad's JavaScript trainer (trainer.js), for Node.js and the browser
// alike: bundles (manifest + graphs + state.bin, checksums verified with the SHA-256 below),
// batch files, runtime/checkpoint.py's checkpoints (read and written), and the export of an
// inference graph with weights baked in. Pure byte work: no file system, no onnxruntime.
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.symgradFormats = factory();
}(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

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

  // A typed array over bytes [offset, offset + nbytes) of a Uint8Array; copied so that it
  // is aligned and owns its memory (offsets in state.bin need not be multiples of 8).
  function view(bytes, dtype, offset, nbytes) {
    const T = arrayType(dtype);
    if (offset + nbytes > bytes.length) {
      throw new Error(`file is truncated: bytes ${offset}..${offset + nbytes} requested, ${bytes.length} present`);
    }
    return new T(bytes.buffer.slice(bytes.byteOffset + offset, bytes.byteOffset + offset + nbytes));
  }

  function bytesOf(data) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }

  // ------------------------------------------------------------------ sha256
  // Synchronous and the same everywhere (WebCrypto is async and absent on plain http pages).
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2]);

  function sha256(data) {
    const n = data.length;
    const padded = new Uint8Array(((n + 9 + 63) >> 6) << 6);
    padded.set(data);
    padded[n] = 0x80;
    const dv = new DataView(padded.buffer);
    dv.setUint32(padded.length - 8, Math.floor(n / 0x20000000));
    dv.setUint32(padded.length - 4, (n << 3) >>> 0);
    const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
      0x5be0cd19]);
    const w = new Uint32Array(64);
    const rot = (x, k) => (x >>> k) | (x << (32 - k));
    for (let off = 0; off < padded.length; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + 4 * i);
      for (let i = 16; i < 64; i++) {
        const s0 = rot(w[i - 15], 7) ^ rot(w[i - 15], 18) ^ (w[i - 15] >>> 3);
        const s1 = rot(w[i - 2], 17) ^ rot(w[i - 2], 19) ^ (w[i - 2] >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
      }
      let [a, b, c, d, e, f, g, hh] = h;
      for (let i = 0; i < 64; i++) {
        const t1 = (hh + (rot(e, 6) ^ rot(e, 11) ^ rot(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
        const t2 = ((rot(a, 2) ^ rot(a, 13) ^ rot(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      const v = [a, b, c, d, e, f, g, hh];
      for (let i = 0; i < 8; i++) h[i] = (h[i] + v[i]) >>> 0;
    }
    const out = new Uint8Array(32);
    const ov = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) ov.setUint32(4 * i, h[i]);
    return out;
  }

  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  const utf8 = (s) => new TextEncoder().encode(s);

  // ------------------------------------------------------------------ bundles
  // files: {file name: Uint8Array} holding at least the state file and the graphs.
  // Returns {manifest, graphs: {kind: Uint8Array}, state: {name: {dtype, shape, data}}}.
  function parseBundle(manifest, files, where = 'bundle') {
    if (manifest.format !== 'symgrad-bundle') throw new Error(`${where}: manifest.json is not a symgrad bundle manifest`);
    if (manifest.format_version > 1) {
      throw new Error(`${where} has format version ${manifest.format_version}; this trainer reads version 1`);
    }
    const checksums = manifest.checksums || {};
    const checked = (name) => {
      const data = files[name];
      if (!data) throw new Error(`${where} is incomplete: ${name} is missing`);
      if (checksums[name] && `sha256:${hex(sha256(data))}` !== checksums[name]) {
        throw new Error(`${where}: ${name} is corrupt (checksum mismatch)`);
      }
      return data;
    };
    const raw = checked(manifest.state_file || 'state.bin');
    const state = {};
    for (const section of SECTIONS) {
      for (const e of manifest[section] || []) {
        state[e.name] = { dtype: e.dtype, shape: e.shape, data: view(raw, e.dtype, e.offset, e.nbytes) };
      }
    }
    const graphs = {};
    for (const [kind, g] of Object.entries(manifest.graphs)) graphs[kind] = checked(g.file);
    return { manifest, graphs, state };
  }

  // The file names parseBundle needs, for a reader that fetches them one by one.
  function bundleFiles(manifest) {
    return [manifest.state_file || 'state.bin', ...Object.values(manifest.graphs).map((g) => g.file)];
  }

  // A batches file is an index (JSON) beside one raw little-endian blob:
  //   {"blob": "batches.bin", "epochs": [[{"inputs": {name: {dtype, shape, offset, nbytes}},
  //                                        "learning_rate": 0.1, "step": 1}, ...], ...]}
  // learning_rate and step are optional per batch (the manifest's optimizer config and the
  // running 1-based step count are used when absent).
  function parseBatches(index, blob) {
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

  // The state in the state.bin layout of the manifest (raw arrays at the manifest's offsets).
  function packState(manifest, state) {
    const chunks = [];
    for (const section of SECTIONS) for (const e of manifest[section] || []) chunks.push(bytesOf(state[e.name].data));
    return concat(chunks);
  }

  function concat(chunks) {
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) { out.set(c, at); at += c.length; }
    return out;
  }

  // ------------------------------------------------------------------ checkpoints
  // runtime/checkpoint.py's format: MAGIC | u64 LE header length | header JSON | payload | sha256.
  const MAGIC = utf8('SYMGRAD-CKPT\n');

  // json.dumps(value) as Python writes it by default (", " and ": ", non-ASCII escaped),
  // for the fingerprint, which hashes that text. Holds for strings, integers, lists, null.
  function pythonJson(value) {
    if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
    if (typeof value === 'string') {
      return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => (c === '\u007f' ? c
        : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
    }
    return JSON.stringify(value === undefined ? null : value);
  }

  // checkpoint.fingerprint: what a checkpoint must match to be restored into a trainer.
  function fingerprint(manifest) {
    const key = [];
    for (const s of SECTIONS) for (const e of manifest[s] || []) key.push([s, e.name, e.shape, e.dtype]);
    key.push((manifest.optimizer || {}).name);
    return `sha256:${hex(sha256(utf8(pythonJson(key))))}`;
  }

  // Python's json writes NaN and Infinity bare (a callback's best value may be inf): map
  // them, outside strings, to what JSON.parse accepts.
  function parsePythonJson(text) {
    let out = '';
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === '"') {
        let j = i + 1;
        while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
        out += text.slice(i, j + 1);
        i = j;
      } else if (text.startsWith('NaN', i)) { out += 'null'; i += 2; }
      else if (text.startsWith('-Infinity', i)) { out += '-1e999'; i += 8; }
      else if (text.startsWith('Infinity', i)) { out += '1e999'; i += 7; }
      else out += c;
    }
    return JSON.parse(out);
  }

  function writeCheckpoint(manifest, state, meta) {
    const entries = [];
    const chunks = [];
    let offset = 0;
    for (const s of SECTIONS) {
      for (const e of manifest[s] || []) {
        const raw = bytesOf(state[e.name].data);
        entries.push({ name: `tensor/${e.name}`, dtype: e.dtype, shape: e.shape, offset, nbytes: raw.length });
        chunks.push(raw);
        offset += raw.length;
      }
    }
    const header = utf8(JSON.stringify({ format: 'symgrad-checkpoint', version: 1, tensors: entries, meta }));
    const length = new Uint8Array(8);
    new DataView(length.buffer).setBigUint64(0, BigInt(header.length), true);
    const body = concat([MAGIC, length, header, ...chunks]);
    return concat([body, sha256(body)]);
  }

  // {tensors: {name: {dtype, shape, data}}, meta}; throws on a damaged or foreign file.
  function readCheckpoint(bytes, where = 'checkpoint') {
    const magicOk = bytes.length >= MAGIC.length + 8 + 32 && MAGIC.every((b, i) => bytes[i] === b);
    if (!magicOk) throw new Error(`${where} is not a symgrad training checkpoint (bad magic bytes)`);
    const body = bytes.subarray(0, bytes.length - 32);
    const digest = sha256(body);
    if (!digest.every((b, i) => b === bytes[body.length + i])) {
      throw new Error(`${where} is corrupt or truncated (checksum mismatch)`);
    }
    const hlen = Number(new DataView(body.buffer, body.byteOffset).getBigUint64(MAGIC.length, true));
    const start = MAGIC.length + 8;
    const header = parsePythonJson(new TextDecoder().decode(body.subarray(start, start + hlen)));
    if (header.format !== 'symgrad-checkpoint') throw new Error(`${where} is not a symgrad training checkpoint`);
    if (!(header.version <= 1)) throw new Error(`${where} has format version ${header.version}; this trainer reads 1`);
    const payload = body.subarray(start + hlen);
    const tensors = {};
    for (const e of header.tensors) {
      if (!ARRAYS[e.dtype]) continue;  // callback state this trainer does not use
      tensors[e.name] = { dtype: e.dtype, shape: e.shape, data: view(payload, e.dtype, e.offset, e.nbytes) };
    }
    return { tensors, meta: header.meta };
  }

  // ------------------------------------------------------------------ ONNX export
  // The inference graph with the given weights as initializers instead of inputs: a few
  // protobuf fields rewritten (ModelProto.graph = 7, metadata_props = 14; GraphProto
  // initializer = 5, input = 11; ValueInfoProto.name = 1; TensorProto dims = 1,
  // data_type = 2, name = 8, raw_data = 9), everything else copied byte for byte.
  const ONNX_TYPES = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float64: 11 };

  function varint(value) {
    let v = BigInt(value);
    const out = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v) byte |= 0x80;
      out.push(byte);
    } while (v);
    return Uint8Array.from(out);
  }

  function readVarint(bytes, at) {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = bytes[at++];
      if (b === undefined) throw new Error('ONNX model is truncated');
      v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (!(b & 0x80)) return [v, at];
    }
  }

  // [{field, start, end, payload?}] of one message's top-level fields.
  function fields(bytes) {
    const out = [];
    let at = 0;
    while (at < bytes.length) {
      const start = at;
      let key;
      [key, at] = readVarint(bytes, at);
      const field = Number(key >> 3n);
      const wire = Number(key & 7n);
      let payload = null;
      if (wire === 0) [, at] = readVarint(bytes, at);
      else if (wire === 1) at += 8;
      else if (wire === 5) at += 4;
      else if (wire === 2) {
        let n;
        [n, at] = readVarint(bytes, at);
        payload = bytes.subarray(at, at + Number(n));
        at += Number(n);
      } else throw new Error(`ONNX model has an unsupported protobuf wire type ${wire}`);
      out.push({ field, start, end: at, payload });
    }
    return out;
  }

  const lengthDelimited = (field, payload) => concat([varint((field << 3) | 2), varint(payload.length), payload]);
  const varintField = (field, value) => concat([varint(field << 3), varint(value)]);

  function tensorProto(name, t) {
    const dims = t.shape.map((d) => varintField(1, d));
    return concat([...dims, varintField(2, ONNX_TYPES[t.dtype]), lengthDelimited(8, utf8(name)),
      lengthDelimited(9, bytesOf(t.data))]);
  }

  function bakeWeights(modelBytes, weights, props = {}) {
    const text = new TextDecoder();
    const parts = [];
    for (const f of fields(modelBytes)) {
      if (f.field !== 7) { parts.push(modelBytes.subarray(f.start, f.end)); continue; }
      const graph = [];
      const baked = [];
      for (const g of fields(f.payload)) {
        if (g.field === 11) {
          const nameField = fields(g.payload).find((v) => v.field === 1);
          const name = nameField ? text.decode(nameField.payload) : '';
          if (weights[name]) { baked.push(name); continue; }
        }
        graph.push(f.payload.subarray(g.start, g.end));
      }
      for (const name of baked) graph.push(lengthDelimited(5, tensorProto(name, weights[name])));
      parts.push(lengthDelimited(7, concat(graph)));
    }
    for (const [key, value] of Object.entries(props)) {
      parts.push(lengthDelimited(14, concat([lengthDelimited(1, utf8(key)), lengthDelimited(2, utf8(String(value)))])));
    }
    return concat(parts);
  }

  return {
    SECTIONS, arrayType, sha256, hex, parseBundle, bundleFiles, parseBatches, readTensors, packState, fingerprint,
    writeCheckpoint, readCheckpoint, bakeWeights,
  };
}));

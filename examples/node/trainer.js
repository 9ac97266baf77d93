// symgrad's JavaScript trainer: one module for Node.js (onnxruntime-node or
// onnxruntime-web) and for the browser (onnxruntime-web), which differ only in how they
// read files; bundle.js (Node) and ../web/app.js (browser) do that part.
//
// One step runs the bundle's train_step graph: data + hyper-parameters + the current
// params/state/slots in, loss + metrics + next/<name> out. The manifest's `feeds` says
// which output becomes which input on the next step, so the loop holds the state as
// onnxruntime tensors and never converts it. Callbacks follow TensorFlow.js
// (onTrainBegin, onEpochBegin, onBatchBegin, onBatchEnd, onEpochEnd, onTrainEnd; each
// may be async).
//
// Beside the loop: checkpoints in runtime/checkpoint.py's format (written here, read by
// Trainer.load_checkpoint in Python, and the reverse) and the export of the inference model
// with the trained weights baked in (as trainer.export does in Python). The byte formats
// live in formats.js (load it first in a page); this module re-exports them.
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory(require('./formats'));
  else root.symgrad = factory(root.symgradFormats);
}(typeof self !== 'undefined' ? self : this, function (formats) {
  'use strict';
  const { SECTIONS, arrayType, fingerprint, writeCheckpoint, readCheckpoint, bakeWeights } = formats;

  // The graph input that sets the batch size: the first model input (`inputs` lists every
  // input of a model with several; `data.x` is the one input of the others).
  function firstInput(m) {
    return m.inputs && m.inputs.length ? m.inputs[0].name : m.data.x.name;
  }

  // ------------------------------------------------------------------ the trainer
  class Trainer {
    // ort: onnxruntime-node or onnxruntime-web; bundle: parseBundle's result.
    // options: {executionProviders (default ['cpu'] in Node, ['wasm'] in a browser), threads}
    static async create(ort, bundle, options = {}) {
      const trainer = new Trainer(ort, bundle, options);
      trainer.session = await trainer.sessionFor('train_step');
      return trainer;
    }

    constructor(ort, bundle, options) {
      this.ort = ort;
      this.bundle = bundle;
      this.manifest = bundle.manifest;
      this.options = options;
      this.sessions = {};
      this.feeds = bundle.manifest.graphs.train_step.feeds || {};
      this.state = {};
      for (const [name, t] of Object.entries(bundle.state)) this.state[name] = this.tensor(t);
      const cfg = (this.manifest.optimizer || {}).config || {};
      const saved = this.manifest.trainer || {};
      this.learningRate = saved.learning_rate !== undefined ? saved.learning_rate : cfg.learning_rate;
      this.step = saved.step || 0;  // updates made so far; the graph's `step` is the 1-based number of the next one
      this.epoch = 0;
      this.stopTraining = false;
    }

    tensor(t) {
      return new this.ort.Tensor(t.dtype, t.data, t.shape);
    }

    scalar(dtype, value) {
      return new this.ort.Tensor(dtype, new (arrayType(dtype))([value]), []);
    }

    async sessionFor(kind) {
      if (!this.sessions[kind]) {
        if (!this.bundle.graphs[kind]) throw new Error(`the bundle has no ${JSON.stringify(kind)} graph`);
        const browser = typeof window !== 'undefined';
        this.sessions[kind] = await this.ort.InferenceSession.create(this.bundle.graphs[kind], {
          executionProviders: this.options.executionProviders || [browser ? 'wasm' : 'cpu'],
          intraOpNumThreads: this.options.threads || 1,
          interOpNumThreads: 1,
        });
      }
      return this.sessions[kind];
    }

    // Run one update on `batch` ({inputs: {name: {dtype, shape, data}}, learning_rate?, step?}).
    async trainOnBatch(batch) {
      const m = this.manifest;
      const dtype = m.dtype || 'float32';
      const feeds = {};
      for (const [name, t] of Object.entries(batch.inputs)) feeds[name] = this.tensor(t);
      const n = batch.inputs[firstInput(m)].shape[0];
      const sw = m.data.sample_weight;
      if (sw && this.session.inputNames.includes(sw.name) && !feeds[sw.name]) {
        feeds[sw.name] = new this.ort.Tensor(sw.dtype, new (arrayType(sw.dtype))(n).fill(1), [n]);
      }
      for (const r of m.random_inputs || []) {  // e.g. dropout noise, uniform in [0, 1)
        if (feeds[r.name]) continue;
        const shape = r.shape.map((d) => (typeof d === 'number' ? d : n));
        const data = new (arrayType(r.dtype))(shape.reduce((a, b) => a * b, 1));
        for (let i = 0; i < data.length; i++) data[i] = Math.random();
        feeds[r.name] = new this.ort.Tensor(r.dtype, data, shape);
      }
      const step = batch.step !== undefined ? batch.step : this.step + 1;
      const lr = batch.learning_rate !== undefined ? batch.learning_rate : this.learningRate;
      feeds[m.hyper.learning_rate] = this.scalar(dtype, lr);
      feeds[m.hyper.step] = this.scalar(dtype, step);
      for (const name of this.session.inputNames) if (this.state[name]) feeds[name] = this.state[name];
      const out = await this.session.run(feeds);
      for (const [output, input] of Object.entries(this.feeds)) this.state[input] = out[output];
      this.step = step;
      this.learningRate = lr;  // a per-batch rate is a schedule's setting: it stays, as in Python
      const logs = { loss: Number(out.loss.data[0]), size: n };
      for (const name of Object.keys(out)) {
        // per-output losses of a model with several outputs come as metric/<output>_loss
        if (name.startsWith('metric/')) logs[name.slice(7)] = Number(out[name].data[0]);
      }
      return logs;
    }

    // y_pred of the inference graph for x ({dtype, shape, data}) with the current weights.
    async predict(x) {
      const session = await this.sessionFor('inference');
      const feeds = {};
      for (const name of session.inputNames) feeds[name] = name === this.manifest.data.x.name ? this.tensor(x) : this.state[name];
      const out = await session.run(feeds);
      return out[session.outputNames[0]];
    }

    // epochs: an array of epochs, each an array of batches. Returns the TF.js-style history.
    // callbacks: one object or a list; a callback with setModel(trainer) gets the trainer
    // (set trainer.stopTraining = true to stop after the current batch, as in TF.js).
    async fit(epochs, { callbacks = [] } = {}) {
      const cbs = Array.isArray(callbacks) ? callbacks : [callbacks];
      for (const cb of cbs) if (cb.setModel) cb.setModel(this);
      const call = async (hook, ...args) => {
        for (const cb of cbs) if (cb[hook]) await cb[hook](...args);
      };
      const history = { epoch: [], history: {} };
      this.stopTraining = false;
      await call('onTrainBegin', {});
      for (let e = 0; e < epochs.length && !this.stopTraining; e++) {
        await call('onEpochBegin', e, {});
        const sums = {};
        let seen = 0;
        for (let b = 0; b < epochs[e].length && !this.stopTraining; b++) {
          await call('onBatchBegin', b, { batch: b, size: epochs[e][b].inputs[firstInput(this.manifest)].shape[0] });
          const logs = await this.trainOnBatch(epochs[e][b]);
          for (const [k, v] of Object.entries(logs)) if (k !== 'size') sums[k] = (sums[k] || 0) + v * logs.size;
          seen += logs.size;
          await call('onBatchEnd', b, { batch: b, ...logs });  // this batch's own values, as TF.js
        }
        const epochLogs = {};  // sample-weighted means over the epoch, as Keras and TF.js report them
        for (const [k, v] of Object.entries(sums)) epochLogs[k] = v / seen;
        history.epoch.push(e);
        for (const [k, v] of Object.entries(epochLogs)) (history.history[k] = history.history[k] || []).push(v);
        this.epoch += 1;
        await call('onEpochEnd', e, epochLogs);
      }
      await call('onTrainEnd', {});
      return history;
    }

    // The current state as plain {name: {dtype, shape, data}}.
    snapshot() {
      const out = {};
      for (const [name, t] of Object.entries(this.state)) out[name] = { dtype: t.type, shape: t.dims, data: t.data };
      return out;
    }

    // The whole training state in Python's checkpoint format (Trainer.load_checkpoint
    // reads it). No random state travels: Node draws dropout noise from Math.random.
    checkpoint() {
      const meta = {
        kind: 'training-state', fingerprint: fingerprint(this.manifest), step: this.step,
        learning_rate: this.learningRate, rng: null, position: { epoch: this.epoch, batch: 0 }, callbacks: {},
        writer: 'symgrad.js',
      };
      return writeCheckpoint(this.manifest, this.snapshot(), meta);
    }

    // Restore a checkpoint written by this module or by Python's Trainer.save_checkpoint.
    restore(bytes, where = 'checkpoint') {
      const { tensors, meta } = readCheckpoint(bytes, where);
      if (meta.fingerprint !== fingerprint(this.manifest)) {
        throw new Error(`${where} was written for a different program (its parameters, state, slots or optimizer differ)`);
      }
      const next = {};
      for (const s of SECTIONS) {
        for (const e of this.manifest[s] || []) {
          const t = tensors[`tensor/${e.name}`];
          if (!t) throw new Error(`${where} lacks tensor ${JSON.stringify(e.name)}`);
          next[e.name] = this.tensor(t);
        }
      }
      Object.assign(this.state, next);  // all or nothing: every tensor was read before any is replaced
      this.step = meta.step;
      this.learningRate = meta.learning_rate;
      this.epoch = (meta.position || {}).epoch || 0;
    }

    // The inference model (x -> y_pred) with the current weights baked in, as ONNX bytes.
    exportInference() {
      const weights = {};
      for (const [name, t] of Object.entries(this.snapshot())) weights[name] = t;
      return bakeWeights(this.bundle.graphs.inference, weights,
        { 'symgrad.kind': 'inference', 'symgrad.step': this.step });
    }
  }

  return { Trainer, ...formats };
}));

// A small training loop over a symgrad bundle with onnxruntime-node.
//
// One step runs the bundle's train_step graph: data + hyper-parameters + the current
// params/state/slots in, loss + metrics + next/<name> out. The manifest's `feeds` says
// which output becomes which input on the next step, so the loop holds the state as
// onnxruntime tensors and never converts it. Callbacks follow TensorFlow.js
// (onTrainBegin, onEpochBegin, onBatchBegin, onBatchEnd, onEpochEnd, onTrainEnd; each
// may be async).
'use strict';

const ort = require('onnxruntime-node');
const { arrayType } = require('./bundle');

function tensor(t) {
  return new ort.Tensor(t.dtype, t.data, t.shape);
}

// The graph input that sets the batch size: the first model input (`inputs` lists every
// input of a model with several; `data.x` is the one input of the others).
function firstInput(m) {
  return m.inputs && m.inputs.length ? m.inputs[0].name : m.data.x.name;
}

function scalar(dtype, value) {
  return new ort.Tensor(dtype, new (arrayType(dtype))([value]), []);
}

class Trainer {
  static async create(bundle, options = {}) {
    const spec = bundle.manifest.graphs.train_step;
    const session = await ort.InferenceSession.create(bundle.graphs.train_step, {
      executionProviders: ['cpu'],
      intraOpNumThreads: options.threads || 1,
      interOpNumThreads: 1,
    });
    return new Trainer(bundle, spec, session);
  }

  constructor(bundle, spec, session) {
    this.manifest = bundle.manifest;
    this.session = session;
    this.feeds = spec.feeds || {};
    this.state = {};
    for (const [name, t] of Object.entries(bundle.state)) this.state[name] = tensor(t);
    const cfg = (this.manifest.optimizer || {}).config || {};
    this.learningRate = cfg.learning_rate;
    this.step = 0;  // updates made so far; the graph's `step` input is the 1-based number of the next one
    this.stopTraining = false;
  }

  // Run one update on `batch` ({inputs: {name: {dtype, shape, data}}, learning_rate?, step?}).
  async trainOnBatch(batch) {
    const m = this.manifest;
    const dtype = m.dtype || 'float32';
    const feeds = {};
    for (const [name, t] of Object.entries(batch.inputs)) feeds[name] = tensor(t);
    const x = batch.inputs[firstInput(m)];
    const n = x.shape[0];
    const sw = m.data.sample_weight;
    if (sw && this.session.inputNames.includes(sw.name) && !feeds[sw.name]) {
      feeds[sw.name] = new ort.Tensor(sw.dtype, new (arrayType(sw.dtype))(n).fill(1), [n]);
    }
    for (const r of m.random_inputs || []) {  // e.g. dropout noise, uniform in [0, 1)
      if (feeds[r.name]) continue;
      const shape = r.shape.map((d) => (typeof d === 'number' ? d : n));
      const data = new (arrayType(r.dtype))(shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < data.length; i++) data[i] = Math.random();
      feeds[r.name] = new ort.Tensor(r.dtype, data, shape);
    }
    const step = batch.step !== undefined ? batch.step : this.step + 1;
    const lr = batch.learning_rate !== undefined ? batch.learning_rate : this.learningRate;
    feeds[m.hyper.learning_rate] = scalar(dtype, lr);
    feeds[m.hyper.step] = scalar(dtype, step);
    for (const name of this.session.inputNames) {
      if (this.state[name]) feeds[name] = this.state[name];
    }
    const out = await this.session.run(feeds);
    for (const [output, input] of Object.entries(this.feeds)) this.state[input] = out[output];
    this.step = step;
    const logs = { loss: Number(out.loss.data[0]), size: n };
    for (const name of Object.keys(out)) {  // per-output losses of a model with several come as metric/<output>_loss
      if (name.startsWith('metric/')) logs[name.slice(7)] = Number(out[name].data[0]);
    }
    return logs;
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
      await call('onEpochEnd', e, epochLogs);
    }
    await call('onTrainEnd', {});
    return history;
  }

  // The current state as plain {name: {dtype, shape, data}} (for saveState).
  snapshot() {
    const out = {};
    for (const [name, t] of Object.entries(this.state)) out[name] = { dtype: t.type, shape: t.dims, data: t.data };
    return out;
  }
}

module.exports = { Trainer };

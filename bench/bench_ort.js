#!/usr/bin/env node
// bench_ort.js — the ONNX Runtime half of inferd's benchmark: times one model
// at one batch size through onnxruntime-node's in-process session.run and
// prints one JSON line with the same fields as bench_inferd.c.
//
// Inputs are built exactly as bench_inferd.c builds them (same xorshift32
// stream per input, or the fixture's input_<i>.pb rows tiled to the batch),
// so both engines compute on identical bytes; keep the two in step.
//
// What is timed: load = InferenceSession.create from the file (parse, graph
// optimisation, kernel setup); one run = `await session.run(feeds)`, which
// includes the binding's marshalling and the allocation of every output.
// Peak RSS is process.resourceUsage().maxRSS; the RSS before onnxruntime-node
// is loaded is printed beside it (node itself takes tens of MB).
//
//   node bench/bench_ort.js MODEL.onnx [--batch N] [--threads N]
//        [--input-from DIR [--as-is]] [--shape NAME=D1,D2,...] [--seed N]
//        [--min-time S] [--min-iters N] [--max-iters N] [--warmup S]
'use strict';

// ONNX Runtime 1.30 otherwise writes /tmp/mat-debug-<pid>.log and tries to
// send usage data out; it reads the variable when the native library loads,
// so it must be set before the require below.
process.env.ORT_DISABLE_TELEMETRY = '1';

const baselineRssMb = process.resourceUsage().maxRSS / 1024;
const fs = require('fs');
const path = require('path');

function parseArgs(argv) {
  const opt = {
    modelPath: null, inputDir: null, batch: 1, threads: 1, seed: 1, minTime: 1.0,
    warmup: 0.2, minIters: 200, maxIters: 200000, shapes: {}, asIs: false,
  };
  const int = (v, lo, hi) => {
    if (!/^[0-9]+$/.test(v || '')) throw new Error(`bad number '${v}'`);
    const n = Number(v);
    if (n < lo || n > hi) throw new Error(`${n} out of range [${lo}, ${hi}]`);
    return n;
  };
  const seconds = (v) => {
    const n = Number(v);
    if (v === undefined || !(n >= 0 && n <= 3600)) throw new Error(`bad seconds '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    switch (a) {
      case '--batch': opt.batch = int(v, 1, 1 << 20); i++; break;
      case '--threads': opt.threads = int(v, 1, 256); i++; break;
      case '--seed': opt.seed = int(v, 0, 0x7fffffff); i++; break;
      case '--min-iters': opt.minIters = int(v, 1, 1e8); i++; break;
      case '--max-iters': opt.maxIters = int(v, 1, 1e8); i++; break;
      case '--min-time': opt.minTime = seconds(v); i++; break;
      case '--warmup': opt.warmup = seconds(v); i++; break;
      case '--input-from': opt.inputDir = v; i++; break;
      // every input_<i>.pb exactly as stored, as bench_inferd.c's --as-is
      case '--as-is': opt.asIs = true; break;
      case '--shape': {
        const m = /^([^=]+)=([0-9]+(?:,[0-9]+)*)?$/.exec(v || '');
        if (!m) throw new Error(`bad --shape '${v}'`);
        opt.shapes[m[1]] = m[2] ? m[2].split(',').map(Number) : [];
        i++;
        break;
      }
      default:
        if (a.startsWith('-') || opt.modelPath) throw new Error(`bad argument '${a}'`);
        opt.modelPath = a;
    }
  }
  if (!opt.modelPath) throw new Error('usage: bench_ort.js MODEL.onnx [--batch N] [--threads N] ...');
  opt.maxIters = Math.max(opt.maxIters, opt.minIters);
  return opt;
}

// ---- a minimal TensorProto reader (the ONNX test-data .pb format) ----------

const DTYPES = {
  1: { name: 'float32', array: Float32Array },
  2: { name: 'uint8', array: Uint8Array },
  3: { name: 'int8', array: Int8Array },
  6: { name: 'int32', array: Int32Array },
  7: { name: 'int64', array: BigInt64Array },
  9: { name: 'bool', array: Uint8Array },
  11: { name: 'float64', array: Float64Array },
};

function readTensorProto(buf) {
  let pos = 0;
  const varint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  };
  const dims = [];
  let dataType = 0;
  let raw = null;
  const floats = [];
  const doubles = [];
  const ints = []; // int32_data (also bool/uint8/int8) and int64_data
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) {
      const v = varint();
      if (field === 1) dims.push(Number(BigInt.asIntN(64, v)));
      else if (field === 2) dataType = Number(v);
      else if (field === 5 || field === 7) ints.push(BigInt.asIntN(64, v));
    } else if (wire === 2) {
      const len = Number(varint());
      const body = buf.subarray(pos, pos + len);
      const end = pos + len;
      if (field === 9) {
        raw = body;
      } else if (field === 4) {
        for (let o = 0; o + 4 <= len; o += 4) floats.push(body.readFloatLE(o));
      } else if (field === 10) {
        for (let o = 0; o + 8 <= len; o += 8) doubles.push(body.readDoubleLE(o));
      } else if (field === 1 || field === 5 || field === 7) {
        while (pos < end) {
          const v = BigInt.asIntN(64, varint());
          if (field === 1) dims.push(Number(v)); else ints.push(v);
        }
      }
      pos = end;
    } else if (wire === 5) {
      if (field === 4) floats.push(buf.readFloatLE(pos));
      pos += 4;
    } else if (wire === 1) {
      if (field === 10) doubles.push(buf.readDoubleLE(pos));
      pos += 8;
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
  }
  const dtype = DTYPES[dataType];
  if (!dtype) throw new Error(`unsupported TensorProto data_type ${dataType}`);
  const count = dims.reduce((a, b) => a * b, 1);
  const data = new dtype.array(count);
  if (raw) {
    const bytes = new Uint8Array(data.buffer);
    bytes.set(raw.subarray(0, bytes.length));
  } else if (dataType === 1) {
    data.set(floats);
  } else if (dataType === 11) {
    data.set(doubles);
  } else if (dataType === 7) {
    data.set(ints);
  } else {
    data.set(ints.map(Number));
  }
  return { type: dtype.name, dims, data };
}

// ---- inputs, built as bench_inferd.c builds them ---------------------------

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array,
  uint8: Uint8Array, int8: Int8Array, bool: Uint8Array,
};

function inputSeed(seed, index) {
  const s = (Math.imul(seed + 1, 0x9E3779B1) + Math.imul(index, 0x7F4A7C15)) >>> 0;
  return s || 1;
}

// xorshift32 with the same constants as bench_inferd.c: floats uniform in
// [0, 1) from the top 24 bits, integers in [0, 10), bools 0/1.
function fillRandom(type, data, state) {
  let x = state;
  for (let i = 0; i < data.length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    if (type === 'float32' || type === 'float64') data[i] = (x >>> 8) / 16777216;
    else if (type === 'int64') data[i] = BigInt(x % 10);
    else if (type === 'bool') data[i] = x & 1;
    else data[i] = x % 10;
  }
}

function makeInput(ort, opt, meta, index) {
  if (!meta.isTensor) throw new Error(`input '${meta.name}' is not a tensor`);
  const TypedArray = ARRAYS[meta.type];
  if (!TypedArray) throw new Error(`input '${meta.name}': no generator for ${meta.type}`);
  let fixture = null;
  if (opt.inputDir) {
    const file = path.join(opt.inputDir, `input_${index}.pb`);
    if (fs.existsSync(file)) fixture = readTensorProto(fs.readFileSync(file));
    if (opt.asIs) {
      if (!fixture) throw new Error(`--as-is: ${file} is missing`);
      if (fixture.type !== meta.type) throw new Error(`input '${meta.name}': ${file} is ${fixture.type}, the model takes ${meta.type}`);
      return new ort.Tensor(meta.type, fixture.data, fixture.dims);
    }
    if (fixture && (fixture.dims.length < 1 || fixture.dims[0] < 1)) fixture = null;
  }
  const shape = opt.shapes[meta.name];
  const declared = meta.shape;
  const rank = shape ? shape.length + 1 : declared ? declared.length : fixture ? fixture.dims.length : -1;
  if (rank < 1) throw new Error(`input '${meta.name}' has no batch dimension`);
  const dims = [];
  for (let d = 0; d < rank; d++) {
    let dim = -1;
    if (d === 0) dim = opt.batch;
    else if (shape) dim = shape[d - 1];
    else if (declared && declared.length > d && typeof declared[d] === 'number' && declared[d] >= 0) dim = declared[d];
    else if (fixture && fixture.dims.length === rank) dim = fixture.dims[d];
    if (dim < 0) throw new Error(`input '${meta.name}': dim ${d} unknown (give --shape or --input-from)`);
    dims.push(dim);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  const data = new TypedArray(count);
  const sameRows = fixture && fixture.dims.length === rank && fixture.type === meta.type &&
    fixture.dims.every((d, k) => k === 0 || d === dims[k]);
  if (sameRows) {
    const rowLen = count / dims[0];
    for (let r = 0; r < dims[0]; r++) {
      const src = (r % fixture.dims[0]) * rowLen;
      data.set(fixture.data.subarray(src, src + rowLen), r * rowLen);
    }
  } else {
    fillRandom(meta.type, data, inputSeed(opt.seed, index));
  }
  return new ort.Tensor(meta.type, data, dims);
}

// Nearest-rank percentile, the rule bench_inferd.c uses.
function percentile(sorted, p) {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function main() {
  let opt;
  try {
    opt = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench_ort: ${e.message}\n`);
    return 64;
  }
  const head = { engine: 'onnxruntime', model: opt.modelPath, batch: opt.batch, threads: opt.threads };
  const ort = require('onnxruntime-node');
  head.version = ort.env.versions.node || ort.env.versions.common;
  const sessionOptions = {
    intraOpNumThreads: opt.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  let session;
  const t0 = process.hrtime.bigint();
  try {
    session = await ort.InferenceSession.create(opt.modelPath, sessionOptions);
  } catch (e) {
    emit({ ...head, status: 'load_failed', error: e.message });
    return 2;
  }
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const feeds = {};
  try {
    session.inputNames.forEach((name, i) => {
      const meta = session.inputMetadata.find((m) => m.name === name) || session.inputMetadata[i];
      feeds[name] = makeInput(ort, opt, meta, i);
    });
  } catch (e) {
    emit({ ...head, status: 'error', error: e.message });
    return 2;
  }
  try {
    const warmStart = process.hrtime.bigint();
    for (let k = 0; k < 3 || Number(process.hrtime.bigint() - warmStart) / 1e9 < opt.warmup; k++) {
      await session.run(feeds);
    }
    const samples = new Float64Array(opt.maxIters);
    let n = 0;
    let total = 0n;
    const cpuStarted = process.cpuUsage();
    const started = process.hrtime.bigint();
    while (n < opt.maxIters &&
           (n < opt.minIters || Number(process.hrtime.bigint() - started) / 1e9 < opt.minTime)) {
      const a = process.hrtime.bigint();
      await session.run(feeds);
      const b = process.hrtime.bigint();
      samples[n++] = Number(b - a) / 1e3;
      total += b - a;
    }
    const cpu = process.cpuUsage(cpuStarted);
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    const sorted = samples.subarray(0, n).sort();
    const totalS = Number(total) / 1e9;
    const r3 = (x) => Math.round(x * 1000) / 1000;
    emit({
      ...head,
      status: 'ok',
      iters: n,
      load_ms: r3(loadMs),
      median_us: r3(percentile(sorted, 50)),
      p99_us: r3(percentile(sorted, 99)),
      mean_us: r3((totalS / n) * 1e6),
      min_us: r3(sorted[0]),
      throughput_rows_s: Math.round((opt.batch * n / totalS) * 10) / 10,
      peak_rss_mb: Math.round(peakRssMb * 100) / 100,
      baseline_rss_mb: Math.round(baselineRssMb * 100) / 100,
      // CPU time of the process over the timed runs per run (all threads;
      // bench_inferd.c reports the same), robust to waiting for a core
      cpu_us_per_run: r3((cpu.user + cpu.system) / n),
    });
  } catch (e) {
    emit({ ...head, status: 'run_failed', error: e.message });
    return 2;
  }
  return 0;
}

main().then((rc) => { process.exitCode = rc; });

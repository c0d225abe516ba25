#!/usr/bin/env node
// ort_eval.js — runs one ONNX model through ONNX Runtime (onnxruntime-node)
// for the Python test-case generators and fixtures, which take ONNX Runtime's
// answers as the expected values (never inferd's own).
//
// Reads one JSON request on stdin:
//   {"model": "path.onnx",
//    "inputs": {"name": {"dtype": "float32", "dims": [2, 3], "data": "<base64 of the raw little-endian bytes>"}},
//    "strings": {"name": {"dims": [2], "values": ["a", "b"]}}}   (string tensors)
// and prints one JSON line: {"pid": N, "ort_version": "...", "outputs": {"name":
// {"dtype": "...", "dims": [...], "data": "<base64>"} or {"dims", "values"} for strings}}.
// Exit status 2 with {"error": "..."} when ONNX Runtime refuses the model.
'use strict';

// ONNX Runtime 1.30 otherwise writes /tmp/mat-debug-<pid>.log and tries to
// send usage data to an outside address. The native library reads the
// variable when it loads, so it is set before the require below.
process.env.ORT_DISABLE_TELEMETRY = '1';

const path = require('path');
const fs = require('fs');
// The repository's node_modules (npm ci), else Node's own resolution
// (NODE_PATH), for a checkout whose node_modules is being reinstalled.
const local = path.join(__dirname, '..', 'node_modules', 'onnxruntime-node');
const ort = require(fs.existsSync(path.join(local, 'package.json')) ? local : 'onnxruntime-node');

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array,
  int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array,
  int64: BigInt64Array, uint64: BigUint64Array, bool: Uint8Array, float16: Uint16Array,
};

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

function toTensor(spec) {
  const Array_ = ARRAYS[spec.dtype];
  if (!Array_) throw new Error(`unknown dtype '${spec.dtype}'`);
  const bytes = Buffer.from(spec.data, 'base64');
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  const data = new Array_(copy.buffer, 0, bytes.length / Array_.BYTES_PER_ELEMENT);
  return new ort.Tensor(spec.dtype, data, spec.dims);
}

function fromTensor(t) {
  if (t.type === 'string') return { dtype: 'string', dims: t.dims, values: Array.from(t.data) };
  const view = t.data;
  const bytes = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  return { dtype: t.type, dims: t.dims, data: bytes.toString('base64') };
}

async function main() {
  const request = JSON.parse(await readStdin());
  const feeds = {};
  for (const [name, spec] of Object.entries(request.inputs || {})) feeds[name] = toTensor(spec);
  for (const [name, spec] of Object.entries(request.strings || {}))
    feeds[name] = new ort.Tensor('string', spec.values, spec.dims);
  let session;
  try {
    session = await ort.InferenceSession.create(request.model, { graphOptimizationLevel: 'disabled' });
  } catch (e) {
    process.stdout.write(JSON.stringify({ pid: process.pid, error: `load: ${e.message}` }) + '\n');
    return 2;
  }
  let results;
  try {
    results = await session.run(feeds);
  } catch (e) {
    process.stdout.write(JSON.stringify({ pid: process.pid, error: `run: ${e.message}` }) + '\n');
    return 2;
  }
  const outputs = {};
  for (const name of session.outputNames) outputs[name] = fromTensor(results[name]);
  process.stdout.write(JSON.stringify({
    pid: process.pid,
    ort_version: ort.env.versions.node || ort.env.versions.common,
    outputs,
  }) + '\n');
  return 0;
}

main().then((code) => { process.exitCode = code; }, (e) => {
  process.stderr.write(`ort_eval: ${e.stack || e}\n`);
  process.exitCode = 1;
});

#!/usr/bin/env node
// ort_server.js — ONNX Runtime's peer in the HTTP benchmark (bench/serve/throughput.sh):
// onnxruntime-node's in-process session behind node's own http module, one
// process, one event loop, answering the book's POST /predict
// ({"data": [[...]]} → {"prediction": [p0, p1, ...]}, row 0 as the book does)
// the way a JavaScript user would write it. JSON.stringify writes the
// shortest round-trip digits, as Python and inferd do, so the bodies match.
//
// onnxruntime-node hands back tensors only, so the model given here has its
// final ZipMap removed (throughput.sh writes that copy; the class
// probabilities are the ZipMap's input, the same numbers).
//
//   node bench/serve/ort_server.js MODEL.onnx PORT
'use strict';

// read when the native library loads: set before the require
process.env.ORT_DISABLE_TELEMETRY = '1';

const http = require('http');
const ort = require('onnxruntime-node');

async function main() {
  const [modelPath, portText] = process.argv.slice(2);
  if (!modelPath || !portText) {
    console.error('usage: node ort_server.js MODEL.onnx PORT');
    process.exit(64);
  }
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
  });
  const inputName = session.inputNames[0];
  // the class probabilities: the one float output (the other is the label)
  const outputName = session.outputNames.find((n) => /prob/.test(n)) || session.outputNames[session.outputNames.length - 1];

  async function predict(body) {
    const rows = JSON.parse(body).data;
    const width = rows[0].length;
    const flat = new Float32Array(rows.length * width);
    rows.forEach((row, r) => flat.set(row, r * width));
    const out = await session.run({ [inputName]: new ort.Tensor('float32', flat, [rows.length, width]) },
                                  [outputName]);
    const probabilities = out[outputName].data;
    const first = Array.from(probabilities.subarray(0, probabilities.length / rows.length));
    return JSON.stringify({ prediction: first });
  }

  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/health') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"health":"ok"}');
      return;
    }
    if (req.method !== 'POST' || req.url !== '/predict') {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"error":"not found"}');
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      predict(Buffer.concat(chunks).toString()).then((text) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(text);
      }, (e) => {
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: String(e.message || e) }));
      });
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(Number(portText), '127.0.0.1');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

#!/usr/bin/env node
// validate_openapi.js — validates an OpenAPI document with
// @apidevtools/swagger-parser (schema + $ref + path-parameter checks).
// Usage: node validate_openapi.js FILE.json   (exit 0 when valid; the
// validator's message on stderr and exit 1 otherwise). The Python server
// tests fetch /openapi.json from a running server and call this script.
"use strict";
const path = require("path");
const fs = require("fs");

// Resolve the package from the repository's node_modules even when this
// script is run from elsewhere (CTest runs it from the build tree).
const root = path.resolve(__dirname, "..", "..");
let SwaggerParser;
try {
  SwaggerParser = require(require.resolve("@apidevtools/swagger-parser", { paths: [root] }));
} catch (e) {
  console.error("validate_openapi: @apidevtools/swagger-parser is not installed (run `npm ci` at the repository root)");
  process.exit(77);
}

const file = process.argv[2];
if (!file) {
  console.error("usage: validate_openapi.js FILE.json");
  process.exit(2);
}
const doc = JSON.parse(fs.readFileSync(file, "utf8"));
SwaggerParser.validate(doc)
  .then((api) => {
    console.log(`valid: ${api.info.title} ${api.info.version}, ${Object.keys(api.paths).length} paths`);
  })
  .catch((err) => {
    console.error(`invalid: ${err.message}`);
    process.exit(1);
  });

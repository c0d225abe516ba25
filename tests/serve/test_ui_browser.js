#!/usr/bin/env node
// The dashboard (/ui) and Swagger UI (/docs) in a real browser: Debian's
// chromium, headless, driven by npm's puppeteer-core (never a downloaded
// browser), against a real `inferd serve --repository` holding two models
// (the digits CNN of tools/gen_image_fixtures.py, two versions split 90/10
// with a shadow, and the iris SVC) plus a model named like an HTML tag whose
// labels are HTML. Checks: the model list, a chart updating while requests
// stream, a traffic edit with the admin token taking effect on the server
// (and a wrong token refused), the try-it upload answering the right digit,
// markup from models shown as text and never run, no console errors, and
// both pages working with the network cut off from everything but the
// server. Screenshots go to docs/ (ui-dashboard.png, ui-docs.png).
//
// Environment: INFERD (the binary), IMAGE_FIXTURES (generated fixtures),
// CHROMIUM (default /usr/bin/chromium), INFERD_TEST_REQUIRE ("chromium":
// fail instead of skipping when the browser or puppeteer-core is missing),
// INFERD_UI_SCREENSHOTS (directory for the screenshots; default docs/, where
// the README's come from: CTest writes them into the build tree instead).
"use strict";

const assert = require("node:assert/strict");
const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const SOURCE = path.resolve(__dirname, "..", "..");
const INFERD = process.env.INFERD || path.join(SOURCE, "build", "inferd");
const FIXTURES = process.env.IMAGE_FIXTURES || path.join(SOURCE, "build", "tests", "image", "generated");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const REQUIRED = (process.env.INFERD_TEST_REQUIRE || "").split(",").includes("chromium");
const SHOTS = process.env.INFERD_UI_SCREENSHOTS || path.join(SOURCE, "docs");
fs.mkdirSync(SHOTS, {recursive: true});
const SLOW = Number(process.env.INFERD_TEST_SLOW || "1");
const TOKEN = "ui-browser-test-token-0123456789";
const HOSTILE = "<img src=x onerror=window.__xss=1>";

function skip(message) {
  if (REQUIRED) {
    console.error("FAIL: " + message + " (required by INFERD_TEST_REQUIRE)");
    process.exit(1);
  }
  console.log("SKIP: " + message);
  process.exit(77);
}

let puppeteer;
try {
  puppeteer = require("puppeteer-core");
} catch (e) {
  skip("npm's puppeteer-core is not installed (ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts)");
}
if (!fs.existsSync(CHROMIUM)) skip(`${CHROMIUM} is missing (apt-get install chromium)`);

function run(...args) {
  const r = spawnSync(INFERD, args, { encoding: "utf8", timeout: 120000 });
  assert.equal(r.status, 0, `inferd ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const port = s.address().port; s.close(() => resolve(port)); });
    s.on("error", reject);
  });
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

async function waitReady(base, proc, log) {
  const deadline = Date.now() + 60000 * SLOW;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error("inferd serve exited: " + fs.readFileSync(log, "utf8"));
    try {
      const r = await fetch(base + "/v2/health/ready");
      if (r.ok) return;
    } catch (e) { /* not listening yet */ }
    await sleep(50);
  }
  throw new Error("inferd serve not ready: " + fs.readFileSync(log, "utf8"));
}

// A repository of two models (and a hostile one): DIR/<name>/<version>/ as
// `inferd models import` writes them, which is the repository layout.
function makeRepository(dir) {
  const digits = path.join(FIXTURES, "digits");
  const importDigits = () => run("models", "--store", dir, "import", path.join(digits, "model.onnx"), "--name", "digits",
    "--labels", path.join(digits, "labels.json"), "--task", "classification", "--preprocess",
    path.join(digits, "preprocessing.json"));
  importDigits();
  importDigits(); // version 2: the same network, so the shadow agrees
  fs.writeFileSync(path.join(dir, "digits", "config.json"), JSON.stringify({
    version_policy: { all: true }, traffic: { "1": 90, "2": 10 }, shadow: { version: "2", percent: 100 } }));
  run("models", "--store", dir, "import", path.join(SOURCE, "models", "iris_svc.onnx"), "--name", "iris", "--labels",
    path.join(SOURCE, "models", "iris_labels.json"));
}

// Labels that are markup, for a model named like a tag: shown as text, never run.
function hostileLabels(file) {
  const labels = { "0": HOSTILE, "1": "<script>window.__xss=2</script>", "2": "<b>bold</b>" };
  for (let i = 3; i < 10; i++) labels[String(i)] = `<i onmouseover=window.__xss=${i}>${i}</i>`;
  fs.writeFileSync(file, JSON.stringify(labels));
  return labels;
}

async function startServer(args, tmp, name) {
  const port = await freePort();
  const log = path.join(tmp, name + ".log");
  const out = fs.openSync(log, "w");
  const proc = spawn(INFERD, ["serve", ...args, "--port", String(port)], { stdio: ["ignore", out, out] });
  const base = `http://127.0.0.1:${port}`;
  fs.closeSync(out);
  await waitReady(base, proc, log);
  return { proc, base, log };
}

// SIGTERM, then the server must exit 0 with no sanitizer report (under ASan,
// LeakSanitizer reports at exit).
async function stopServer(s) {
  if (!s) return;
  if (s.proc.exitCode === null) {
    s.proc.kill("SIGTERM");
    await new Promise(r => (s.proc.exitCode !== null ? r() : s.proc.on("exit", r)));
  }
  const log = fs.readFileSync(s.log, "utf8");
  if (s.proc.exitCode !== 0 || /ERROR: (Address|Leak)Sanitizer|runtime error:/.test(log)) {
    console.error(`FAIL: inferd serve exited with ${s.proc.exitCode}:\n${log.slice(-6000)}`);
    process.exitCode = 1;
  }
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "inferd-ui-"));
  const repo = path.join(tmp, "repo");
  fs.mkdirSync(repo);
  makeRepository(repo);
  let browser, primary, hostile, streaming = false;
  const failures = [];
  try {
    primary = await startServer(["--repository", repo, "--model-control", "explicit", "--admin-token", TOKEN], tmp, "main");
    const base = primary.base;
    const labelsFile = path.join(tmp, "hostile-labels.json");
    const labels = hostileLabels(labelsFile);
    hostile = await startServer([path.join(repo, "digits", "1", "model.onnx"), "--name", "<script>", "--labels", labelsFile],
      tmp, "hostile");

    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: path.join(tmp, "chromium-profile"),
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
    });
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 1400 });
    const consoleErrors = [];
    page.on("console", m => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", e => consoleErrors.push("page error: " + e.message));
    page.on("response", r => { if (r.status() >= 400) consoleErrors.push(`(${r.status()} for ${r.request().method()} ${r.url()})`); });
    page.on("dialog", d => { consoleErrors.push("dialog opened: " + d.message()); d.dismiss(); });
    // offline: nothing but the server may be reached (no CDN)
    await page.setRequestInterception(true);
    const outside = [];
    page.on("request", r => {
      if (r.url().startsWith(base + "/") || r.url().startsWith("data:") || r.url().startsWith("blob:")) r.continue();
      else { outside.push(r.url()); r.abort(); }
    });

    // ---- a browser asking for / lands on /ui
    const t0 = Date.now();
    const response = await page.goto(base + "/", { waitUntil: "load" });
    assert.equal(new URL(page.url()).pathname, "/ui");
    const headers = response.headers();
    assert.match(headers["content-security-policy"], /default-src 'none'/);
    assert.match(headers["content-security-policy"], /script-src 'self'/);
    assert.equal(headers["x-content-type-options"], "nosniff");
    const firstPaint = await page.evaluate(() => new Promise(resolve => {
      const seen = performance.getEntriesByType("paint").find(e => e.name === "first-contentful-paint");
      if (seen) return resolve(seen.startTime);
      new PerformanceObserver(list => {
        const p = list.getEntries().find(e => e.name === "first-contentful-paint");
        if (p) resolve(p.startTime);
      }).observe({ type: "paint", buffered: true });
      setTimeout(() => resolve(null), 5000);
    }));
    const weight = await page.evaluate(() => performance.getEntriesByType("resource")
      .filter(e => e.name.includes("/ui/app.")).reduce((a, e) => a + e.transferSize, 0) +
      performance.getEntriesByType("navigation")[0].transferSize);
    console.log(`/ui loaded in ${Date.now() - t0} ms, first contentful paint ${firstPaint && firstPaint.toFixed(0)} ms, ` +
      `page weight ${weight} bytes transferred`);

    // ---- the model list
    await page.waitForFunction(() => document.querySelectorAll("#models .model").length === 2, { timeout: 15000 * SLOW });
    const shown = await page.$$eval("#models .model-name", els => els.map(e => e.textContent));
    assert.deepEqual(shown, ["digits", "iris"]);
    const digitsVersions = await page.$$eval('#models .model[data-model="digits"] tbody tr', rows =>
      rows.map(r => [r.dataset.version, r.querySelector("td:nth-child(2) span").textContent, r.querySelector(".weight-value").textContent]));
    assert.deepEqual(digitsVersions, [["1", "READY", "90"], ["2", "READY", "10"]]);
    const shadowText = await page.$eval('#models .model[data-model="digits"] h3', e => e.textContent);
    assert.match(shadowText, /shadow: version 2 at 100%/);

    // ---- a chart updating while requests stream
    const png = fs.readFileSync(path.join(FIXTURES, "digits", "digit_000.png"));
    streaming = true;
    const stream = (async () => {
      while (streaming) {
        try {
        await fetch(base + "/v2/models/digits/infer", { method: "POST", body: png, headers: { "Content-Type": "image/png" } });
        await fetch(base + "/v2/models/iris/infer", { method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ inputs: [{ name: "float_input", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }] }) });
        } catch (e) {
          if (streaming) failures.push("a streamed request failed: " + e.message);
          return;
        }
        await sleep(20);
      }
    })();
    const before = await page.$eval("#chart-rps", c => c.toDataURL());
    await page.waitForFunction(() => [...document.querySelectorAll("#legend li")].some(li =>
      li.querySelector(".legend-name").textContent.startsWith("digits:") && !/ 0\.0 req\/s$/.test(li.textContent)),
      { timeout: 15000 * SLOW });
    const pointsBefore = Number(await page.$eval("#chart-p99", c => c.dataset.points));
    await sleep(2500);
    const pointsAfter = Number(await page.$eval("#chart-p99", c => c.dataset.points));
    const after = await page.$eval("#chart-rps", c => c.toDataURL());
    assert.ok(pointsAfter > pointsBefore, `the p99 chart gained points (${pointsBefore} -> ${pointsAfter})`);
    assert.notEqual(after, before, "the req/s chart was redrawn with the traffic");
    // an error shows among the recent errors, its message as text
    await fetch(base + "/v2/models/iris/infer", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ inputs: [{ name: "float_input", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] }) });
    await page.waitForFunction(() => [...document.querySelectorAll("#errors tbody tr")].some(r => r.textContent.includes("/v2/models/iris/infer")),
      { timeout: 10000 * SLOW });

    // ---- the inventory
    await page.waitForFunction(() => document.querySelectorAll("#inventory tbody tr").length >= 3, { timeout: 20000 * SLOW });
    const inventory = await page.$$eval("#inventory tbody tr", rows => rows.map(r => [...r.cells].map(c => c.textContent)));
    const digitsRow = inventory.find(r => r[0] === "digits" && r[1] === "1");
    assert.ok(digitsRow, JSON.stringify(inventory));
    assert.match(digitsRow[2], /^[0-9a-f]{16}$/);
    assert.match(digitsRow[3], /ai\.onnx: 13/);
    assert.match(digitsRow[4], /pytorch/);

    // ---- a traffic edit with the token takes effect on the server
    await page.screenshot({ path: path.join(SHOTS, "ui-dashboard.png"), fullPage: true });
    await page.type("#token", TOKEN);
    await page.click("#unlock");
    await page.waitForFunction(() => document.querySelector("#token-state").textContent === "editing unlocked", { timeout: 10000 * SLOW });
    const tokenInCookie = await page.evaluate(() => document.cookie);
    assert.equal(tokenInCookie, "", "no cookie holds the token");
    assert.ok(!page.url().includes(TOKEN), "the token is not in the URL");
    await page.waitForSelector('#models .model[data-model="digits"] input.weight', { timeout: 10000 * SLOW });
    // the list is redrawn by the poll until an input has focus: a handle may go stale before the click
    const setWeight = async (version, value) => {
      for (let attempt = 0; ; attempt++) {
        const input = await page.waitForSelector(`#models .model[data-model="digits"] input.weight[data-version="${version}"]`);
        try {
          await input.click({ clickCount: 3 });
          await input.type(String(value));
          return;
        } catch (e) {
          if (attempt === 5 || !/detached/.test(e.message)) throw e;
        }
      }
    };
    await setWeight("1", 30);
    await setWeight("2", 70);
    await page.click('#models .model[data-model="digits"] button.apply-traffic');
    await page.waitForFunction(() => /traffic of digits is now/.test(document.querySelector("#edit-result").textContent), { timeout: 10000 * SLOW });
    const status = await (await fetch(base + "/v2/repository/models/digits/status", { headers: { Authorization: "Bearer " + TOKEN } })).json();
    assert.deepEqual(status.versions.map(v => [v.version, v.weight]), [["1", 30], ["2", 70]]);
    // weights that do not sum to 100: the server refuses and the page says why
    await page.waitForSelector('#models .model[data-model="digits"] input.weight[data-version="1"]');
    await setWeight("1", 50);
    await page.click('#models .model[data-model="digits"] button.apply-traffic');
    await page.waitForFunction(() => /not changed: 400/.test(document.querySelector("#edit-result").textContent), { timeout: 10000 * SLOW });
    const unchanged = await (await fetch(base + "/v2/repository/models/digits/status", { headers: { Authorization: "Bearer " + TOKEN } })).json();
    assert.deepEqual(unchanged.versions.map(v => [v.version, v.weight]), [["1", 30], ["2", 70]]);
    const stored = await page.evaluate(() => Object.keys(sessionStorage));
    assert.deepEqual(stored, ["inferd.admin_token"]);
    // the refused edit's 400 is the one expected line
    consoleErrors.splice(0).filter(e => !/status of 400|^\(400 for POST .*\/traffic\)$/.test(e)).forEach(e => failures.push("console: " + e));

    // ---- try it: an uploaded digit answers its label
    const listing = JSON.parse(fs.readFileSync(path.join(FIXTURES, "digits", "digits.json"), "utf8")).digits;
    const picture = Object.keys(listing).sort().find(n => n.endsWith(".png"));
    await page.select("#try-model", "digits");
    const upload = await page.$("#try-image");
    await upload.uploadFile(path.join(FIXTURES, "digits", picture));
    await page.click("#try-run");
    await page.waitForSelector("#try-topk-table:not([hidden])", { timeout: 15000 * SLOW });
    const top = await page.$$eval("#try-topk-table .top-label", els => els.map(e => e.textContent));
    assert.equal(top.length, 5);
    assert.equal(top[0], `digit ${listing[picture]}`);
    // the answer names the version that answered
    assert.match(await page.$eval("#try-output", e => e.textContent), /^answered by digits:[12]\n/);
    await page.screenshot({ path: path.join(SHOTS, "ui-dashboard-edit.png"), fullPage: true });

    // ---- a wrong token is refused (in a page of its own: its 403 is an expected console line)
    const other = await browser.newPage();
    const otherErrors = [];
    other.on("console", m => { if (m.type() === "error") otherErrors.push(m.text()); });
    await other.goto(base + "/ui", { waitUntil: "load" });
    await other.evaluate(() => sessionStorage.clear());
    await other.reload({ waitUntil: "load" });
    await other.type("#token", "not-the-token-at-all-0000");
    await other.click("#unlock");
    await other.waitForFunction(() => document.querySelector("#edit-result").textContent === "wrong token", { timeout: 10000 * SLOW });
    assert.equal(await other.$eval("#token-state", e => e.textContent), "read-only");
    assert.equal(await other.$$eval("input.weight", els => els.length), 0);
    assert.ok(otherErrors.every(e => /status of 403/.test(e)), otherErrors.join("\n"));
    await other.close();

    streaming = false;
    await stream;

    // ---- a model named <script> with labels that are markup: text, never run
    const evil = await browser.newPage();
    const evilErrors = [];
    evil.on("console", m => { if (m.type() === "error") evilErrors.push(m.text()); });
    evil.on("pageerror", e => evilErrors.push("page error: " + e.message));
    evil.on("dialog", d => { evilErrors.push("dialog opened: " + d.message()); d.dismiss(); });
    await evil.goto(hostile.base + "/ui", { waitUntil: "load" });
    await evil.waitForFunction(() => document.querySelectorAll("#models .model").length === 1, { timeout: 15000 * SLOW });
    assert.equal(await evil.$eval("#models .model-name", e => e.textContent), "<script>");
    await (await evil.$("#try-image")).uploadFile(path.join(FIXTURES, "digits", picture));
    await evil.click("#try-run");
    await evil.waitForSelector("#try-topk-table:not([hidden])", { timeout: 15000 * SLOW });
    const evilTop = await evil.$$eval("#try-topk-table .top-label", els => els.map(e => e.textContent));
    assert.equal(evilTop[0], labels[String(listing[picture])]);
    await evil.waitForFunction(() => document.querySelectorAll("#inventory tbody tr").length === 1, { timeout: 20000 * SLOW });
    await evil.hover("#try-topk-table");
    const xss = await evil.evaluate(() => ({ flag: typeof window.__xss, imgs: document.querySelectorAll("main img, main b, main i").length,
      scripts: document.querySelectorAll("script").length }));
    assert.deepEqual(xss, { flag: "undefined", imgs: 0, scripts: 1 });
    assert.deepEqual(evilErrors, []);
    await evil.close();

    // ---- /docs: Swagger UI from the binary, offline
    await page.goto(base + "/docs", { waitUntil: "load" });
    await page.waitForSelector(".swagger-ui .opblock", { timeout: 20000 * SLOW });
    const operations = await page.$$eval(".swagger-ui .opblock-summary-path", els => els.map(e => e.textContent.replace(/\u200b/g, "")));
    assert.ok(operations.includes("/prediction"), operations.join(", "));
    assert.ok(operations.includes("/v2/models/{model}/infer") || operations.some(o => o.startsWith("/v2/models/")), operations.join(", "));
    await page.screenshot({ path: path.join(SHOTS, "ui-docs.png") });

    assert.deepEqual(outside, [], "nothing outside the server was requested");
    consoleErrors.forEach(e => failures.push("console: " + e));
  } finally {
    streaming = false;
    if (browser) await browser.close();
    await stopServer(primary);
    await stopServer(hostile);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (failures.length) {
    console.error("FAIL:\n" + failures.join("\n"));
    process.exit(1);
  }
  if (process.exitCode) process.exit(process.exitCode);
  console.log("OK: /ui and /docs in chromium");
}

main().catch(e => { console.error("FAIL:", e); process.exit(1); });

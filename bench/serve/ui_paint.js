#!/usr/bin/env node
// ui_paint.js — the dashboard's page weight and time to first contentful
// paint in Debian's chromium (headless, puppeteer-core): URL loaded N times,
// each in a fresh page with the cache disabled; prints one JSON line with
// the medians. Used by bench/serve/image_bench.sh.
"use strict";
const puppeteer = require("puppeteer-core");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

async function main() {
  const [url, times] = [process.argv[2], Number(process.argv[3] || 5)];
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "inferd-paint-"));
  const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
    userDataDir: profile, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"] });
  const fcps = [], bytes = [];
  let files = 0;
  try {
    for (let i = 0; i < times; i++) {
      const page = await browser.newPage();
      await page.setCacheEnabled(false);
      await page.goto(url, { waitUntil: "load" });
      const m = await page.evaluate(() => new Promise(resolve => {
        const done = fcp => {
          const res = performance.getEntriesByType("resource").filter(e => new URL(e.name).pathname.startsWith("/ui/app."));
          const nav = performance.getEntriesByType("navigation")[0];
          resolve({ fcp, bytes: nav.transferSize + res.reduce((a, e) => a + e.transferSize, 0), files: 1 + res.length });
        };
        const seen = performance.getEntriesByType("paint").find(e => e.name === "first-contentful-paint");
        if (seen) return done(seen.startTime);
        new PerformanceObserver(l => { const p = l.getEntries().find(e => e.name === "first-contentful-paint"); if (p) done(p.startTime); })
          .observe({ type: "paint", buffered: true });
      }));
      fcps.push(m.fcp); bytes.push(m.bytes); files = m.files;
      await page.close();
    }
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  const median = a => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(JSON.stringify({ loads: times, fcp_ms: median(fcps), bytes: median(bytes), files }));
}
main().catch(e => { console.error(e); process.exit(1); });

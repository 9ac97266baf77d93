#!/usr/bin/env node
// Open the training page in headless Chromium and print what it computed.
//
//   node browser.js URL [URL...] [--screenshot page.png] [--timeout-ms 120000]
//
// Uses the system's Chromium (Debian's chromium-headless-shell, or $SYMGRAD_CHROMIUM) through
// playwright-core's executablePath: nothing downloads a browser. Opens each URL in turn in
// one browser and prints a JSON list of the pages' window.symgradResult on the last line;
// exits 2 with the reason when the browser is missing or a page fails. --screenshot
// captures the last page.
'use strict';

const fs = require('fs');
const path = require('path');

const CANDIDATES = ['/usr/bin/chromium-headless-shell', '/usr/lib/chromium/headless_shell', '/usr/bin/chromium'];

function findBrowser() {
  const wanted = process.env.SYMGRAD_CHROMIUM;
  if (wanted) return fs.existsSync(wanted) ? wanted : null;
  return CANDIDATES.find((p) => fs.existsSync(p)) || null;
}

async function main() {
  const argv = process.argv.slice(2);
  const opt = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
  const urls = argv.filter((a, i) => !a.startsWith('--') && !(i && argv[i - 1].startsWith('--')));
  if (!urls.length) {
    console.error('usage: node browser.js URL [URL...] [--screenshot page.png] [--timeout-ms N]');
    process.exit(2);
  }
  const executablePath = findBrowser();
  if (!executablePath) {
    throw new Error('no Chromium found (looked for $SYMGRAD_CHROMIUM, then ' + CANDIDATES.join(', ')
      + '): apt-get install -y --no-install-recommends chromium-headless-shell');
  }
  const { chromium } = require(path.join(__dirname, '..', 'node', 'node_modules', 'playwright-core'));
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run'],
  });
  try {
    const results = [];
    for (const url of urls) {
      const page = await browser.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      await page.goto(url);
      await page.waitForFunction(() => window.symgradResult && window.symgradResult.done,
        null, { timeout: Number(opt('--timeout-ms', 120000)) });
      const result = await page.evaluate(() => window.symgradResult);
      const shot = opt('--screenshot', null);
      if (shot) await page.screenshot({ path: shot, fullPage: true });
      if (result.error) throw new Error(`${url} failed: ${result.error}; console: ${errors.join(' | ')}`);
      result.browser = browser.version();
      results.push(result);
      await page.close();
    }
    console.log(JSON.stringify(results));
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(2);
});

// dashboard_check.mjs - load briefd's /dashboard in headless Chromium, print its figures as JSON, save a screenshot.
//
// usage: node dashboard_check.mjs URL SCREENSHOT.png [--key KEY] [--timeout MS]
//   URL         the dashboard, e.g. http://127.0.0.1:8080/dashboard
//   SCREENSHOT  where to write a full-page PNG
//   --key KEY   auth is on: expect the API key dialog, type KEY, then check that a reload
//               does not ask again (the key is kept in sessionStorage)
// Prints one JSON object on stdout; exits 1 with a message on stderr when the page does not
// become ready, logs errors, or a figure is missing. Chromium is the system one
// (CHROMIUM_BIN, default /usr/bin/chromium) with a fresh user-data-dir; nothing is downloaded.
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

function parseArgs(argv) {
  const out = { url: null, shot: null, key: null, timeout: 30000 };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--key') out.key = argv[++i];
    else if (argv[i] === '--timeout') out.timeout = Number(argv[++i]);
    else pos.push(argv[i]);
  }
  [out.url, out.shot] = pos;
  if (!out.url || !out.shot) {
    process.stderr.write('usage: node dashboard_check.mjs URL SCREENSHOT.png [--key KEY] [--timeout MS]\n');
    process.exit(2);
  }
  return out;
}

const TILES = ['jobs', 'refine-rate', 'cost-per-job', 'cost-total', 'savings', 'degraded',
  'cache-hit-rate', 'failed',
  // the Quality section (shadow judging and feedback)
  'q-judged', 'q-judged-sub', 'q-served', 'q-served-sub', 'q-gap', 'q-gap-sub', 'q-missed',
  'q-needless', 'q-feedback', 'q-feedback-sub', 'q-eval-usd'];
const TABLES = { 'by-source': 'source-row', 'by-tenant': 'tenant-row', 'by-policy': 'policy-row',
  tokens: 'tokens-row', 'latency-table': 'latency-row', 'quality-models': 'quality-model-row',
  'feedback-decisions': 'feedback-decision-row', 'feedback-policies': 'feedback-policy-row' };

// Runs in the page: every figure the test compares, as text and raw value.
function readFigures({ tiles, tables }) {
  const q = (sel, root = document) => root.querySelector(sel);
  const fig = (el) => el && {
    text: el.textContent.trim(),
    value: el.hasAttribute('data-value') ? Number(el.getAttribute('data-value')) : null,
  };
  const out = { tiles: {}, tables: {}, charts: {} };
  for (const id of tiles) out.tiles[id] = fig(q(`[data-testid="${id}"]`));
  for (const [table, rowId] of Object.entries(tables)) {
    const rows = {};
    for (const tr of document.querySelectorAll(`[data-testid="${table}"] tr[data-testid="${rowId}"]`)) {
      const r = {};
      for (const td of tr.querySelectorAll('td[data-field]')) r[td.getAttribute('data-field')] = fig(td);
      rows[tr.getAttribute('data-key')] = r;
    }
    out.tables[table] = rows;
  }
  // A chart counts as drawn when its canvas has a size and some non-transparent pixels.
  for (const c of document.querySelectorAll('canvas[data-testid]')) {
    let painted = 0;
    if (c.width && c.height) {
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 3; i < px.length; i += 4 * 7) if (px[i] !== 0) painted++;
    }
    out.charts[c.getAttribute('data-testid')] = { width: c.width, height: c.height, painted };
  }
  const lu = q('[data-testid="last-updated"]');
  out.last_updated = { text: lu.textContent.trim(), ts: lu.getAttribute('data-ts') };
  out.window = Number(document.body.getAttribute('data-window'));
  out.state = document.body.getAttribute('data-state');
  out.error_banner = q('[data-testid="api-error"]').textContent.trim();
  out.auto_refresh = q('[data-testid="auto-refresh"]').checked;
  out.title = document.title;
  return out;
}

async function waitState(page, states, timeout) {
  const sel = states.map((s) => `body[data-state="${s}"]`).join(', ');
  await page.waitForSelector(sel, { timeout, state: 'attached' });
  return page.evaluate(() => document.body.getAttribute('data-state'));
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const profile = mkdtempSync(join(tmpdir(), 'briefd-chromium-'));
  const problems = [];
  const logs = [];
  let aborting = false;   // the unreachable-API check is on: failed requests are expected
  let ctx = null;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1440, height: 900 },
      deviceScaleFactor: 1,
      locale: 'en-US',
      timezoneId: 'UTC',
    });
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => {
      logs.push(`${m.type()}: ${m.text()}`);
      if (m.type() === 'error' && !aborting && !/status of 40[13]/.test(m.text())) problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => {
      if (!aborting) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && !(args.key && [401, 403].includes(r.status()))) problems.push(`HTTP ${r.status()} for ${r.url()}`);
    });

    const result = {};
    const resp = await page.goto(args.url, { waitUntil: 'load', timeout: args.timeout });
    result.http_status = resp ? resp.status() : null;
    result.content_type = resp ? resp.headers()['content-type'] : null;
    if (result.http_status !== 200) {
      throw new Error(`GET ${args.url} answered ${result.http_status} (${result.content_type}), not the page`);
    }

    if (args.key) {
      const st = await waitState(page, ['auth', 'ready', 'error'], args.timeout);
      if (st !== 'auth') throw new Error(`auth is on but the page did not ask for a key (state ${st})`);
      await page.locator('[data-testid="key-dialog"]').waitFor({ state: 'visible', timeout: args.timeout });
      await page.fill('[data-testid="key-input"]', args.key);
      await page.click('[data-testid="key-submit"]');
      await waitState(page, ['ready'], args.timeout);
      await page.reload({ waitUntil: 'load' });
      const again = await waitState(page, ['ready', 'auth', 'error'], args.timeout);
      result.asked_again_after_reload = again !== 'ready';
      result.key_in_session_storage = await page.evaluate(() => sessionStorage.getItem('briefd.apiKey') !== null);
    } else {
      const st = await waitState(page, ['ready', 'error', 'auth'], args.timeout);
      if (st !== 'ready') {
        const banner = await page.textContent('[data-testid="api-error"]');
        throw new Error(`page state ${st}: ${banner}`);
      }
    }
    Object.assign(result, await page.evaluate(readFigures, { tiles: TILES, tables: TABLES }));
    mkdirSync(dirname(args.shot), { recursive: true });
    await page.screenshot({ path: args.shot, fullPage: true });
    result.screenshot = args.shot;

    // Every tile is filled; a dash is right only where /v1/stats has no figure (the caller
    // compares the values).
    for (const id of TILES) {
      if (!result.tiles[id] || !result.tiles[id].text) problems.push(`tile ${id} is empty`);
    }
    if (result.tiles.jobs && result.tiles.jobs.value === null) problems.push('tile jobs has no value');
    for (const [id, c] of Object.entries(result.charts)) {
      if (!c.painted) problems.push(`chart ${id} drew nothing`);
    }

    // The API going away must be reported on the page, with the last figures kept.
    await page.route('**/v1/stats*', (route) => route.abort('connectionrefused'));
    aborting = true;
    await page.click('[data-testid="refresh"]');
    await waitState(page, ['error'], args.timeout);
    result.unreachable = await page.evaluate(() => ({
      banner: document.querySelector('[data-testid="api-error"]').textContent.trim(),
      visible: document.querySelector('[data-testid="api-error"]').offsetParent !== null,
      jobs: document.querySelector('[data-testid="jobs"]').textContent.trim(),
      last_updated: document.querySelector('[data-testid="last-updated"]').textContent.trim(),
    }));
    await page.screenshot({ path: args.shot.replace(/\.png$/, '') + '-unreachable.png', fullPage: false });
    await page.unroute('**/v1/stats*');

    result.problems = problems;
    process.stdout.write(JSON.stringify(result, null, 1) + '\n');
    if (problems.length) {
      process.stderr.write('dashboard_check: ' + problems.join('\n  ') + '\nbrowser log:\n  ' + logs.join('\n  ') + '\n');
      process.exitCode = 1;
    }
  } catch (e) {
    process.stderr.write(`dashboard_check: ${e.stack || e}\nproblems: ${problems.join('; ')}\nbrowser log:\n  ${logs.join('\n  ')}\n`);
    process.exitCode = 1;
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

main();

// What the browser tests run against: a real physioregd (temp data dir, ports 0, the page's
// embedded copy) with the demo register loaded through deploy/demo/load.sh, and Debian's
// Chromium driven by playwright-core.
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceDir = process.env.PHYSIOREG_SOURCE_DIR || path.resolve(here, '../..');
export const buildDir = process.env.PHYSIOREG_BUILD_DIR || path.join(sourceDir, 'build/dev');
export const artifactsDir = process.env.PHYSIOREG_ARTIFACTS_DIR || path.join(buildDir, 'test-artifacts');
export const CHROMIUM = '/usr/bin/chromium';
export const ZBARIMG = '/usr/bin/zbarimg'; // Debian zbar-tools: reads the page's QR code

const INSTALL_HINT = 'run deploy/install-deps.sh (it installs Debian\'s chromium and zbar-tools and runs ' +
  '`npm ci --prefix tests/web`)';

// Fails (never skips) when the browser or the npm packages are missing.
export async function loadBrowserModules() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: ${INSTALL_HINT}`);
  if (!existsSync(ZBARIMG)) throw new Error(`${ZBARIMG} is missing: ${INSTALL_HINT}`);
  if (!existsSync(path.join(here, 'node_modules/playwright-core')) ||
      !existsSync(path.join(here, 'node_modules/@axe-core/playwright'))) {
    throw new Error(`tests/web/node_modules is missing or incomplete: ${INSTALL_HINT}`);
  }
  const require = createRequire(import.meta.url);
  const { chromium } = require('playwright-core');
  const { AxeBuilder } = await import('@axe-core/playwright');
  return { chromium, AxeBuilder };
}

export function launchBrowser(chromium) {
  // The browser runs on the real clock even when the suite runs under faketime: the page takes
  // "today" from the registry's answers, never from the browser.
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k === 'LD_PRELOAD' || k.startsWith('FAKETIME')) delete env[k];
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    env,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--disable-background-networking', '--no-first-run', '--disable-component-update', '--disable-quic', '--disable-sync'],
  });
}

// Starts physioregd, loads the demo register, waits until search sees all of it.
export async function startRegistry() {
  const binary = path.join(buildDir, 'service/physioregd');
  for (const f of [binary, path.join(buildDir, 'client/physioreg'),
    path.join(buildDir, 'tools/demo/physioreg-demo')]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: build physioregd, physioreg and physioreg-demo first`);
  }
  const tmp = mkdtempSync(path.join(tmpdir(), 'physioreg-web-'));
  const dataDir = path.join(tmp, 'data');
  // Limits off: the whole suite browses one server from one address, far past a patient's
  // rate (tests/service/limits_e2e_test.cc covers the limits).
  const child = spawn(binary, [`--data_dir=${dataDir}`, '--grpc_address=127.0.0.1:0',
    '--http_address=127.0.0.1:0', '--rate_limits=false'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const registry = { child, tmp, dataDir, output: '', grpc: null, http: null, ready: false };
  let exited = null;
  const waiters = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.done()) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
      else if (exited) { waiters.splice(waiters.indexOf(w), 1); w.reject(new Error(`physioregd exited (${exited}) before ${w.what}:\n${registry.output}`)); }
    }
  };
  const onData = (chunk) => {
    registry.output += chunk;
    const grpc = /serving gRPC on (\S+):(\d+) /.exec(registry.output);
    if (grpc) registry.grpc = `${grpc[1]}:${grpc[2]}`;
    const http = /serving HTTP on (http:\/\/\S+?)\/?\s/.exec(registry.output);
    if (http) registry.http = http[1];
    if (/search index ready/.test(registry.output)) registry.ready = true;
    check();
  };
  child.stdout.setEncoding('utf8').on('data', onData);
  child.stderr.setEncoding('utf8').on('data', (c) => { registry.output += c; });
  child.on('exit', (code, signal) => { exited = signal || `code ${code}`; check(); });
  const waitFor = (what, done) => new Promise((resolve, reject) => {
    waiters.push({ what, done, resolve, reject });
    check();
  });
  registry.stop = () => stopRegistry(registry, () => exited);
  try {
    await waitFor('serving gRPC and HTTP', () => registry.grpc && registry.http);
    await waitFor('search index ready', () => registry.ready);
    const demo = path.join(tmp, 'demo.jsonl');
    await promisify(execFile)(path.join(sourceDir, 'deploy/demo/load.sh'),
      [buildDir, registry.grpc, path.join(dataDir, 'regulator.token'), demo]);
    registry.demo = readFileSync(demo, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    // The index follows the register's writes; wait until it lists every demo registrant.
    for (;;) {
      const r = await fetch(`${registry.http}/v1/practitioners?page_size=1`);
      if (r.ok && Number((await r.json()).totalSize || 0) === registry.demo.length) break;
      if (exited) throw new Error(`physioregd exited (${exited}):\n${registry.output}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  } catch (e) {
    await registry.stop();
    throw e;
  }
  return registry;
}

async function stopRegistry(registry, exited) {
  if (!exited()) {
    const gone = new Promise((res) => registry.child.once('exit', res));
    registry.child.kill('SIGTERM');
    await gone;
  }
  rmSync(registry.tmp, { recursive: true, force: true });
}

export function artifactPath(name) {
  mkdirSync(artifactsDir, { recursive: true });
  return path.join(artifactsDir, name);
}

// The JSON API, straight from Node, for what the page should show.
export async function apiGet(registry, pathAndQuery) {
  const r = await fetch(`${registry.http}${pathAndQuery}`);
  if (!r.ok) throw new Error(`GET ${pathAndQuery}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

// The real CLI, as the regulator.
export async function runCli(registry, args) {
  await promisify(execFile)(path.join(buildDir, 'client/physioreg'),
    ['--address', registry.grpc, '--token-file', path.join(registry.dataDir, 'regulator.token'), ...args]);
}

// The text of the one QR code in an image.
export async function decodeQr(imagePath) {
  const { stdout } = await promisify(execFile)(ZBARIMG, ['--raw', '-q', imagePath]);
  return stdout.replace(/\n$/, '');
}

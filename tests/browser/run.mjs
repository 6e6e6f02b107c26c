#!/usr/bin/env node
// The browser tests' runner: starts the gateway (`smsgate demo` on free
// loopback ports, a fresh temporary store, the simulated modem and
// customers), waits until it is ready and its demo user exists, runs every
// *.test.mjs here with node's test runner (one file at a time, tests in
// order), stops the gateway (also on failure or Ctrl-C), and exits non-zero
// if any test failed or the gateway did not stop cleanly.
//
//   node tests/browser/run.mjs target/release/smsgate [FILE.test.mjs ...]
//
// Needs `npm ci` in tests/browser and /usr/bin/chromium (see TESTING.md).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { gatewayEnv, startGateway } from './lib/gateway.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const [binaryArg, ...only] = process.argv.slice(2);
if (!binaryArg) {
  console.error('usage: node tests/browser/run.mjs PATH/TO/smsgate [FILE.test.mjs ...]');
  process.exit(2);
}
const binary = path.resolve(binaryArg);
const files = only.length > 0
  ? only.map((f) => path.resolve(f))
  : fs.readdirSync(here).filter((f) => f.endsWith('.test.mjs')).sort().map((f) => path.join(here, f));

let gateway = null;
let stopping = null;
async function stop() {
  stopping ??= (async () => (gateway ? gateway.stop() : null))();
  return stopping;
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    await stop();
    process.exit(130);
  });
}

let testStatus = 1;
let stopped = null;
try {
  gateway = await startGateway(binary);
  console.log(`browser tests: smsgate demo at ${gateway.url}, simulator control ${gateway.control}, data ${gateway.tmp}`);
  testStatus = await new Promise((resolve) => {
    const tests = spawn(
      process.execPath,
      ['--test', '--test-reporter=spec', '--test-concurrency=1', ...files],
      { cwd: here, env: { ...process.env, ...gatewayEnv(gateway) }, stdio: 'inherit' },
    );
    tests.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
} catch (e) {
  console.error(`browser tests: ${e.message}`);
} finally {
  stopped = await stop();
}

let failed = testStatus !== 0;
if (stopped && stopped.code !== 0) {
  console.error(`browser tests: the gateway did not stop cleanly: ${JSON.stringify(stopped)}`);
  failed = true;
}
if (gateway) {
  if (failed) {
    const log = fs.readFileSync(gateway.logPath, 'utf8').trimEnd().split('\n');
    console.error(`\nbrowser tests: the gateway's last log lines (all in ${gateway.logPath}):`);
    console.error(log.slice(-40).join('\n'));
  } else {
    gateway.cleanUp();
  }
}
process.exit(failed ? 1 : 0);

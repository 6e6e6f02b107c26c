// The gateway under test: `smsgate demo` (the daemon, a simulated SIM800
// modem and its simulated customers, the web inbox's demo user) on free
// loopback ports, with its data in a fresh temporary directory; and the
// calls the tests make beside the browser (the simulator's control API, the
// gateway's own API with the demo's admin token).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/// How long the daemon may take to print its banner, be ready, make its user.
const START_TIMEOUT_MS = 60_000;
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT_MS = 15_000;

/// Poll `check` (async, returns a value or a falsy one) every `everyMs`
/// until it gives a value; throw `what` after `timeoutMs`.
export async function waitFor(what, check, { timeoutMs = 15_000, everyMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/// Start `smsgate demo` from `binary`. Resolves to a gateway whose `stop()`
/// must be called (the runner does, also on failure).
export async function startGateway(binary) {
  if (!fs.existsSync(binary)) {
    throw new Error(`no smsgate binary at ${binary} (build one: cargo build --release)`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smsgate-browser-'));
  const token = `browser_${randomBytes(16).toString('hex')}`;
  const child = spawn(
    binary,
    ['demo', '--api', '127.0.0.1:0', '--control', '127.0.0.1:0'],
    {
      // The demo keeps its store in TMPDIR; the token is the demo's admin token.
      env: { ...process.env, TMPDIR: tmp, SMSGATE_API_TOKEN: token, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const log = fs.createWriteStream(path.join(tmp, 'daemon.log'));
  let stdout = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
    log.write(chunk);
  });
  child.stderr.on('data', (chunk) => log.write(chunk));
  let exited = null;
  const exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });

  const gateway = {
    tmp,
    token,
    logPath: path.join(tmp, 'daemon.log'),
    url: null,
    control: null,
    password: null,
    child,
    async stop() {
      if (exited === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exit;
        clearTimeout(timer);
      }
      log.end();
      return exited;
    },
    /// Remove the temporary directory (after stop; keep it to read the log).
    cleanUp() {
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };

  try {
    // The banner: "Inbox    http://127.0.0.1:PORT/inbox   (sign in as demo with password HEX)"
    // and "control  http://127.0.0.1:PORT   (...)".
    await waitFor('the demo banner', async () => {
      if (exited) throw new Error(`smsgate demo exited (${JSON.stringify(exited)}); log: ${gateway.logPath}`);
      const inbox = stdout.match(/Inbox\s+(http:\/\/[^/\s]+)\/inbox\s+\(sign in as (\S+) with password (\S+)\)/);
      const control = stdout.match(/control\s+(http:\/\/\S+)/);
      if (!inbox || !control) return null;
      gateway.url = inbox[1];
      gateway.user = inbox[2];
      gateway.password = inbox[3];
      gateway.control = control[1];
      return true;
    }, { timeoutMs: START_TIMEOUT_MS });
    await waitFor('/readyz', async () => (await fetch(`${gateway.url}/readyz`)).status === 200, {
      timeoutMs: START_TIMEOUT_MS,
    });
    // The demo makes its web user through the API just after it starts.
    await waitFor('the demo user', async () => {
      const users = await api(gateway, 'GET', '/v1/users');
      return JSON.stringify(users).includes(`"${gateway.user}"`);
    }, { timeoutMs: START_TIMEOUT_MS });
  } catch (e) {
    await gateway.stop();
    throw e;
  }
  return gateway;
}

/// The environment the test files read the gateway from.
export function gatewayEnv(g) {
  return {
    SMSGATE_URL: g.url,
    SMSGATE_CONTROL: g.control,
    SMSGATE_TOKEN: g.token,
    SMSGATE_USER: g.user,
    SMSGATE_PASSWORD: g.password,
  };
}

/// The gateway a test file runs against (set by the runner).
export function gatewayFromEnv() {
  const g = {
    url: process.env.SMSGATE_URL,
    control: process.env.SMSGATE_CONTROL,
    token: process.env.SMSGATE_TOKEN,
    user: process.env.SMSGATE_USER,
    password: process.env.SMSGATE_PASSWORD,
  };
  for (const [k, v] of Object.entries(g)) {
    if (!v) throw new Error(`SMSGATE_${k.toUpperCase()} is not set: run the tests with run.mjs`);
  }
  return g;
}

/// The gateway's API with the admin token: the parsed JSON (or null for
/// an empty body); a non-2xx answer throws with its body.
export async function api(g, method, pathAndQuery, body) {
  const answer = await fetch(`${g.url}${pathAndQuery}`, {
    method,
    headers: {
      authorization: `Bearer ${g.token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await answer.text();
  if (!answer.ok) throw new Error(`${method} ${pathAndQuery}: ${answer.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/// A text from a phone to the simulated modem (the simulator stores it
/// and announces it with +CMTI, as a modem does).
export async function inject(g, from, text) {
  const answer = await fetch(`${g.control}/inject`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ from, text }),
  });
  if (answer.status !== 202) throw new Error(`inject: ${answer.status} ${await answer.text()}`);
}

/// What the simulated network received from the modem (texts the gateway sent).
export async function received(g) {
  const answer = await fetch(`${g.control}/received`);
  if (!answer.ok) throw new Error(`received: ${answer.status}`);
  return answer.json();
}

/// The path of a contact's thread (its number percent-encoded).
export function threadPath(contact) {
  return `/threads/${encodeURIComponent(contact)}`;
}

// The web inbox in a real browser (issue 13): Debian's chromium against the
// real daemon (`smsgate demo`: a simulated modem and simulated customers),
// found by the contract's accessible names. Run by run.mjs, which starts
// the daemon and sets SMSGATE_*; the tests run in order, one after another
// (the thread they share moves from open to closed).
//
// The demo's customers: Chloe Martin (+15550100003) writes an urgent
// complaint a person must answer; Dev Patel (+15550100004) texts STOP.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';

import {
  DESKTOP,
  PHONE,
  horizontalOverflow,
  launch,
  liveReady,
  newPage,
  screenshot,
  signIn,
  signedInPage,
} from './lib/browser.mjs';
import { api, gatewayFromEnv, inject, received, threadPath, waitFor } from './lib/gateway.mjs';

const g = gatewayFromEnv();
const CHLOE = { number: '+15550100003', name: 'Chloe Martin' };
const DEV = { number: '+15550100004', name: 'Dev Patel' };
/// Numbers of our own phones (not the demo's customers), one per scenario.
const ASKER = '+15550199001';
const URGENT = '+15550199002';
const LIVE = '+15550199003';
const KEYBOARD = '+15550199004';
const TIMEOUT = { timeout: 90_000 };

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/// A page for one test, closed (with its context) when the test ends.
async function pageFor(t, { signedIn = true, viewport = DESKTOP } = {}) {
  const page = signedIn ? await signedInPage(browser, g, viewport) : await newPage(browser, g, viewport);
  t.after(() => page.context().close());
  return page;
}

/// The inbox list's rows, as their text.
async function inboxRows(page) {
  return page.locator('#inbox-list').getByRole('listitem').allInnerTexts();
}

/// The link to `contact`'s thread in the inbox list (its text has the
/// contact's name or number).
function threadLink(page, text) {
  return page.locator('#inbox-list').getByRole('link', { name: new RegExp(text.replace('+', '\\+')) });
}

/// Wait until the simulated network got `text` for `to` from the modem.
async function waitReceived(to, text) {
  return waitFor(`the simulated customer ${to} to receive “${text}”`, async () => {
    const got = await received(g);
    return got.find((m) => m.to === to && m.text === text);
  }, { timeoutMs: 30_000 });
}

/// Wait until `contact`'s thread waits on us (GET /v1/inbox lists it).
async function inInbox(contact) {
  await waitFor(`${contact} in GET /v1/inbox`, async () => {
    const inbox = await api(g, 'GET', '/v1/inbox?limit=100');
    return inbox.items.some((i) => i.contact === contact);
  }, { timeoutMs: 60_000, everyMs: 200 });
}

/// A thread's timeline items through the API (what the store holds).
async function timeline(contact) {
  const view = await api(g, 'GET', `/v1/threads/${encodeURIComponent(contact)}?limit=200`);
  return view.items;
}

test('sign in with "Username", "Password" and "Sign in"; a wrong password is refused in words', TIMEOUT, async (t) => {
  const page = await pageFor(t, { signedIn: false });
  await page.goto('/');
  assert.match(new URL(page.url()).pathname, /^\/login$/);
  await page.getByLabel('Username').fill(g.user);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong username or password.' }).waitFor();
  assert.match(new URL(page.url()).pathname, /^\/login$/);

  await signIn(page, g);
  assert.equal(new URL(page.url()).pathname, '/inbox');
  await page.getByRole('heading', { level: 1, name: 'Inbox', exact: true }).waitFor();
  const main = page.getByRole('navigation', { name: 'Main' });
  for (const name of ['Inbox', 'Contacts', 'Campaigns', 'Dashboard', 'Modems']) {
    assert.equal(await main.getByRole('link', { name, exact: true }).count(), 1, `navigation link ${name}`);
  }
  const filters = page.getByRole('navigation', { name: 'Filters' });
  for (const name of ['Mine', 'Urgent', 'Open', 'Waiting on customer', 'Snoozed', 'Closed', 'All']) {
    assert.equal(await filters.getByRole('link', { name, exact: true }).count(), 1, `filter link ${name}`);
  }
  assert.deepEqual(page.scriptErrors, []);
});

test('the urgent threads come first, before a question that has waited longer', TIMEOUT, async (t) => {
  // A question first (waits longest), then an urgent complaint: the
  // complaint must be listed above the question all the same. (The live
  // update has its own test; this one loads the page once both are in.)
  // Chloe (a demo customer) writes her complaint a few seconds after the
  // demo starts: wait for it first, so that her wait is the oldest urgent
  // one whatever the build's speed.
  await inInbox(CHLOE.number);
  await inject(g, ASKER, 'Hi, how much is a consultation?');
  await inInbox(ASKER);
  await inject(g, URGENT, 'This is urgent: I was charged twice, please call me asap');
  await inInbox(URGENT);
  const page = await pageFor(t);
  const rows = await inboxRows(page);
  const at = (text) => rows.findIndex((r) => r.includes(text));
  for (const x of [ASKER, URGENT, CHLOE.name]) assert.ok(at(x) >= 0, `${x} is listed:\n${rows.join('\n---\n')}`);
  const urgent = rows.map((r) => /\bUrgent\b/.test(r));
  assert.ok(urgent[at(CHLOE.name)], `Chloe's thread is marked urgent: ${rows[at(CHLOE.name)]}`);
  assert.ok(urgent[at(URGENT)], `the complaint is marked urgent: ${rows[at(URGENT)]}`);
  assert.ok(!urgent[at(ASKER)], `the question is not urgent: ${rows[at(ASKER)]}`);
  // Every urgent row before every other; among urgent ones the oldest wait first.
  assert.deepEqual(urgent, [...urgent].sort((a, b) => Number(b) - Number(a)), rows.join('\n---\n'));
  assert.equal(at(CHLOE.name), 0, `Chloe's complaint is first:\n${rows.join('\n---\n')}`);
  assert.ok(at(URGENT) < at(ASKER));
  assert.match(rows[0], /charged twice/);
  await screenshot(page, 'inbox-urgent-first');
});

test('open the urgent thread from the inbox', TIMEOUT, async (t) => {
  const page = await pageFor(t);
  await Promise.all([
    page.waitForURL(`**${threadPath(CHLOE.number)}`),
    threadLink(page, CHLOE.name).click(),
  ]);
  await page.getByRole('heading', { level: 1, name: `${CHLOE.name} (${CHLOE.number})` }).waitFor();
  await page.locator('#timeline').getByText(/charged twice/).waitFor();
  assert.match(await page.locator('#thread-state').innerText(), /Urgent/);
  assert.equal(await page.getByRole('textbox', { name: 'Reply' }).isEnabled(), true);
  await screenshot(page, 'thread-urgent');
});

test('reply with "Reply" and "Send": the simulated customer receives the text', TIMEOUT, async (t) => {
  const page = await pageFor(t);
  await page.goto(threadPath(CHLOE.number));
  const text = 'Sorry about that, Chloe. I have refunded the second charge.';
  await page.getByRole('textbox', { name: 'Reply' }).fill(text);
  // The counter, as the person types: one GSM-7 part.
  await page.locator('#counter').getByText(/GSM-7 · 1 part\b/).waitFor();
  await Promise.all([
    page.waitForURL(`**${threadPath(CHLOE.number)}`),
    page.getByRole('button', { name: 'Send' }).click(),
  ]);
  await page.locator('#timeline').getByText(text).waitFor();
  const sent = await waitReceived(CHLOE.number, text);
  assert.equal(sent.parts, 1);
  // The author of the reply is the signed-in person.
  const items = await timeline(CHLOE.number);
  const reply = items.find((i) => i.kind === 'message' && i.body === text);
  assert.ok(reply, JSON.stringify(items));
  assert.equal(reply.author, g.user);
});

test('add a note with "Note" and "Add note"', TIMEOUT, async (t) => {
  const page = await pageFor(t);
  await page.goto(threadPath(CHLOE.number));
  const text = 'Refund issued in the till; check the card statement tomorrow.';
  await page.getByRole('textbox', { name: 'Note' }).fill(text);
  await Promise.all([
    page.waitForURL(`**${threadPath(CHLOE.number)}`),
    page.getByRole('button', { name: 'Add note' }).click(),
  ]);
  const note = page.locator('#timeline li.note').filter({ hasText: text });
  await note.waitFor();
  assert.match(await note.innerText(), new RegExp(`Note by ${g.user}`));
  const items = await timeline(CHLOE.number);
  const stored = items.find((i) => i.kind === 'note' && i.text === text);
  assert.ok(stored, JSON.stringify(items));
  assert.equal(stored.author, g.user);
});

test('assign to me: the thread is in "Mine"', TIMEOUT, async (t) => {
  // The complaint from our own phone: open, waiting on us, nobody's yet.
  const page = await pageFor(t);
  await page.goto(threadPath(URGENT));
  assert.match(await page.locator('#thread-state').innerText(), /Not assigned/);
  await Promise.all([
    page.waitForURL(`**${threadPath(URGENT)}`),
    page.getByRole('button', { name: 'Assign to me' }).click(),
  ]);
  await page.locator('#thread-state').getByText(`Assigned to ${g.user}`).waitFor();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Inbox', exact: true }).click();
  await page.getByRole('navigation', { name: 'Filters' }).getByRole('link', { name: 'Mine', exact: true }).click();
  await page.waitForURL('**/inbox?filter=mine');
  await threadLink(page, URGENT).waitFor();
  assert.match(await page.locator('#inbox-list').getByRole('listitem').filter({ hasText: URGENT }).innerText(),
    new RegExp(`Assigned to ${g.user}`));
});

test('close: the thread leaves "Open" and is in "Closed"', TIMEOUT, async (t) => {
  const page = await pageFor(t);
  await page.goto(threadPath(URGENT));
  await Promise.all([
    page.waitForURL(`**${threadPath(URGENT)}`),
    page.getByRole('button', { name: 'Close', exact: true }).click(),
  ]);
  await page.getByRole('button', { name: 'Reopen' }).waitFor();
  assert.match(await page.locator('#thread-state').innerText(), /\bClosed\b/);
  const filters = page.getByRole('navigation', { name: 'Filters' });
  await page.goto('/inbox');
  await filters.getByRole('link', { name: 'Closed', exact: true }).click();
  await page.waitForURL('**/inbox?filter=closed');
  await threadLink(page, URGENT).waitFor();
  await filters.getByRole('link', { name: 'Open', exact: true }).click();
  await page.waitForURL('**/inbox?filter=open');
  // The page is rendered from the store after the close: what it lists is final.
  await threadLink(page, ASKER).waitFor();
  assert.equal(await threadLink(page, URGENT).count(), 0, (await inboxRows(page)).join('\n---\n'));
});

test('a new inbound text appears in an open inbox page without a reload', TIMEOUT, async (t) => {
  const page = await pageFor(t);
  let navigations = 0;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });
  await page.evaluate(() => {
    window.sameDocument = true;
  });
  assert.equal(await threadLink(page, LIVE).count(), 0);
  await liveReady(page);
  // A question the rules route to a team. (A text routed nowhere can stay
  // out of an open page until the next event: the page refreshes on
  // message.received, which can come before the engine has opened the
  // thread, and opening a new thread sends no event of its own. Reported;
  // tests/browser/bench_live.mjs counts how often the first refresh
  // misses.)
  await inject(g, LIVE, 'How much is a consultation for a child?');
  await threadLink(page, LIVE).waitFor({ timeout: 30_000 });
  assert.match(
    await page.locator('#inbox-list').getByRole('listitem').filter({ hasText: LIVE }).innerText(),
    /consultation for a child/,
  );
  assert.equal(navigations, 0, 'the page navigated');
  assert.equal(await page.evaluate(() => window.sameDocument), true, 'the page was reloaded');
  await page.getByRole('status').filter({ hasText: /^Updated / }).waitFor();
  assert.deepEqual(page.scriptErrors, []);
});

test("an opted-out contact's thread says so and its reply box is disabled", TIMEOUT, async (t) => {
  const page = await pageFor(t);
  // Dev Patel texts STOP a few seconds after the demo starts.
  await waitFor('Dev Patel to opt out', async () => {
    await page.goto(threadPath(DEV.number));
    return (await page.getByRole('alert').filter({ hasText: 'has opted out' }).count()) === 1;
  }, { timeoutMs: 60_000, everyMs: 500 });
  assert.match(await page.getByRole('alert').innerText(), new RegExp(`${DEV.name} has opted out`));
  assert.equal(await page.getByRole('textbox', { name: 'Reply' }).isDisabled(), true);
  assert.equal(await page.getByRole('button', { name: 'Send' }).isDisabled(), true);
  await screenshot(page, 'thread-opted-out');
});

test('keyboard only: sign in and reply with Tab and Enter', TIMEOUT, async (t) => {
  const page = await pageFor(t, { signedIn: false });
  const focused = () =>
    page.evaluate(() => {
      const e = document.activeElement;
      return { id: e?.id ?? '', tag: e?.tagName ?? '', text: (e?.textContent ?? '').trim(), href: e?.getAttribute('href') ?? '' };
    });
  /// Press Tab until `wanted(focused)`; at most 100 presses.
  const tabTo = async (what, wanted) => {
    for (let i = 0; i < 100; i += 1) {
      if (wanted(await focused())) return;
      await page.keyboard.press('Tab');
    }
    assert.fail(`Tab never reached ${what}`);
  };
  // The text is in before the inbox page loads (the live update has its own test).
  await inject(g, KEYBOARD, 'Is the clinic open on Saturday mornings?');
  await inInbox(KEYBOARD);
  await page.goto('/login');
  await tabTo('Username', (f) => f.id === 'username');
  await page.keyboard.type(g.user);
  await page.keyboard.press('Tab');
  assert.equal((await focused()).id, 'password');
  await page.keyboard.type(g.password);
  await Promise.all([page.waitForURL('**/inbox'), page.keyboard.press('Enter')]);
  await threadLink(page, KEYBOARD).waitFor();
  const href = threadPath(KEYBOARD);
  await tabTo(`the link to ${KEYBOARD}`, (f) => f.tag === 'A' && f.href === href);
  await Promise.all([page.waitForURL(`**${href}`), page.keyboard.press('Enter')]);
  await tabTo('Reply', (f) => f.id === 'reply');
  const text = 'Yes, we are open 9 to 12 on Saturdays.';
  await page.keyboard.type(text);
  await tabTo('Send', (f) => f.tag === 'BUTTON' && f.text === 'Send');
  await Promise.all([page.waitForURL(`**${href}`), page.keyboard.press('Enter')]);
  await page.locator('#timeline').getByText(text).waitFor();
  await waitReceived(KEYBOARD, text);
});

test('import a CSV with a bad line on Contacts: "Line N: ..." and the good lines kept', TIMEOUT, async (t) => {
  const page = await pageFor(t);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Contacts', exact: true }).click();
  await page.waitForURL('**/contacts');
  // Line 1 is the header; line 3 has no valid number.
  const csv = [
    'number,name,tags',
    '+15550177001,Erin Quinn,csv-import',
    'not a number,Bad Row,csv-import',
    '+15550177002,Finn Ortiz,csv-import',
    '',
  ].join('\n');
  await page.getByLabel('CSV file').setInputFiles({ name: 'contacts.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await page.getByText(/^Line 3: /).waitFor({ timeout: 15_000 });
  await page.getByText('2 imported, 0 updated').waitFor();
  const body = await page.locator('main').innerText();
  assert.doesNotMatch(body, /Line [124]: /, body);
  assert.doesNotMatch(body, /\{"|"code"/, 'a raw problem shown');
  for (const [number, name] of [['+15550177001', 'Erin Quinn'], ['+15550177002', 'Finn Ortiz']]) {
    const contact = await api(g, 'GET', `/v1/contacts/${encodeURIComponent(number)}`);
    assert.equal(contact.name, name);
  }
  await screenshot(page, 'contacts-import');
});

test('the dashboard shows the five metrics, each with a number', TIMEOUT, async (t) => {
  const page = await pageFor(t);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard', exact: true }).click();
  await page.waitForURL('**/dashboard');
  for (const name of ['Reply rate', 'Time to first response', 'Conversion rate', 'Opt-out rate', 'Cost per outcome']) {
    const heading = page.getByRole('heading', { name, exact: true });
    await heading.waitFor({ timeout: 5_000 });
    // The heading's section: the value and its counts.
    const box = (await heading.locator('xpath=..').innerText()).replace(name, '');
    assert.match(box, /\d/, `${name} has no number: ${box}`);
  }
});

test('a form posted from another site is refused and changes nothing', TIMEOUT, async (t) => {
  const page = await pageFor(t);
  const mark = 'Cross-site note that must not be stored';
  const target = `${g.url}${threadPath(ASKER)}`;
  // Another site: 127.0.0.2 is loopback, but not the gateway's origin nor its site.
  const attacker = http.createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>Win a prize</title>
      <form method="post" action="${target}/note"><input type="hidden" name="csrf" value="guessed">
      <input type="hidden" name="text" value="${mark}"><button>Claim the prize</button></form>
      <form method="post" action="${target}/state"><input type="hidden" name="csrf" value="guessed">
      <input type="hidden" name="state" value="closed"><button>Claim another</button></form>`);
  });
  await new Promise((resolve) => attacker.listen(0, '127.0.0.2', resolve));
  t.after(() => attacker.close());
  const origin = `http://127.0.0.2:${attacker.address().port}`;
  const before = await timeline(ASKER);
  for (const button of ['Claim the prize', 'Claim another']) {
    await page.goto(origin);
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(target)),
      page.getByRole('button', { name: button }).click(),
    ]);
    assert.equal(answer.status(), 403);
    await page.getByRole('alert').filter({ hasText: 'sent from another site' }).waitFor();
  }
  // The refusals were answered: the thread is as it was.
  assert.deepEqual(await timeline(ASKER), before);
  const thread = await api(g, 'GET', `/v1/threads/${encodeURIComponent(ASKER)}?limit=1`);
  assert.notEqual(thread.thread.state, 'closed');
});

test('the Modems page runs the technician\'s probe over the gateway\'s connection and shows the result', TIMEOUT, async (t) => {
  const page = await pageFor(t);
  await page.goto('/modems');
  await page.getByRole('button', { name: 'Run probe' }).first().click();
  await page.waitForURL(/\/modems/);
  const card = page.getByRole('region', { name: "Technician's probe" }).first();
  await card.getByText('Last run').waitFor();
  const text = await card.innerText();
  assert.match(text, /IMEI \d{15}/);
  assert.match(text, /OK: ready to send and receive SMS\./);
  await screenshot(page, 'modems-probed');
  assert.deepEqual(page.scriptErrors, []);
});

test('every page at 1280 and 360 px: a screenshot each, no horizontal scroll at 360 px', TIMEOUT, async (t) => {
  const pages = [
    ['inbox', '/inbox'],
    ['inbox-closed', '/inbox?filter=closed'],
    ['thread', threadPath(CHLOE.number)],
    ['thread-opted-out', threadPath(DEV.number)],
    ['contacts', '/contacts'],
    ['campaigns', '/campaigns'],
    ['dashboard', '/dashboard'],
    ['modems', '/modems'],
    ['users', '/users'],
    ['rules', '/rules'],
    ['modem-settings', '/settings/modems'],
  ];
  const overflowing = [];
  for (const viewport of [DESKTOP, PHONE]) {
    const login = await newPage(browser, g, viewport);
    await login.goto('/login');
    await screenshot(login, 'login');
    if (viewport === PHONE && (await horizontalOverflow(login)) > 0) overflowing.push('login');
    await login.context().close();

    const page = await pageFor(t, { viewport });
    for (const [name, path] of pages) {
      const answer = await page.goto(path);
      assert.equal(answer.status(), 200, `${path}: ${answer.status()}`);
      await screenshot(page, name);
      if (viewport === PHONE) {
        const over = await horizontalOverflow(page);
        if (over > 0) overflowing.push(`${name} (${over} px too wide)`);
      }
    }
    assert.deepEqual(page.scriptErrors, []);
  }
  assert.deepEqual(overflowing, [], `pages wider than 360 px: ${overflowing.join(', ')}`);
});

// The pre-chat page's whole story in real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core), against a running `tessera serve`:
//   two visitors wait and see the queue move; an agent sees the waiting list live and joins; messages both
//   ways; the visitor's network drops while the agent writes, and comes back: every message shown once, in
//   order; the visitor closes; logout; a session ended elsewhere sends the page to the login form; a browser
//   without EventSource falls back to long-poll and fetches nothing while its tab is hidden.
// Usage: node story.js <base url> <artifacts dir>. Users (made by the caller): alice, carol, dave (visitors),
// bob (agent); password "<name>-pw". Exits 0 when every check passed; prints one line per step.
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const BASE = process.argv[2];
const ARTIFACTS = process.argv[3];
const T = 15000; // a deadline for any one page condition (they normally hold within milliseconds)

function step(text) {
  process.stdout.write(`story: ${text}\n`);
}

function check(cond, text) {
  if (!cond) throw new Error(`check failed: ${text}`);
}

async function shot(page, name) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  step(`screenshot ${file}`);
}

async function text(page, selector) {
  return (await page.locator(selector).innerText()).trim();
}

// Every page: no console error, no uncaught exception, no CSP violation. Requests are recorded.
function watch(page, name, problems) {
  page.requests = [];
  page.on('request', (r) => page.requests.push({ url: r.url(), method: r.method(), at: Date.now() }));
  page.on('pageerror', (e) => problems.push(`${name}: uncaught ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const t = m.text();
    // A request that fails while the browser is offline, or one refused or cut on purpose (the 401 after a
    // logout, the 503 and the resets made below), is logged by Chromium itself; anything else is a defect.
    if (/ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_RESET|status of (401|503)|ERR_NETWORK_CHANGED/.test(t)) return;
    problems.push(`${name}: console error: ${t}`);
  });
  return page;
}

async function messages(page) {
  return page.locator('#chat-messages li .bubble').allInnerTexts();
}

async function login(page, user, { keyboard } = {}) {
  await page.goto(BASE + '/');
  await page.getByRole('heading', { name: 'Log in' }).waitFor({ timeout: T });
  if (keyboard) {
    // Keyboard only: the username field has focus on arrival; Tab to the password; Enter submits.
    check(await page.evaluate(() => document.activeElement.id === 'login-username'), 'username focused at first');
    await page.keyboard.type(user);
    await page.keyboard.press('Tab');
    await page.keyboard.type(`${user}-pw`);
    await page.keyboard.press('Enter');
  } else {
    await page.getByLabel('Username').fill(user);
    await page.getByLabel('Password').fill(`${user}-pw`);
    await page.getByRole('button', { name: 'Log in' }).click();
  }
  await page.getByText(`Signed in as ${user}`).waitFor({ timeout: T });
}

async function startChat(page, topic, { keyboard } = {}) {
  await page.getByRole('heading', { name: 'How can we help?' }).waitFor({ timeout: T });
  if (keyboard) {
    check(await page.evaluate(() => document.activeElement.id === 'start-topic'), 'topic focused after login');
    await page.keyboard.type(topic);
    await page.keyboard.press('Enter');
  } else {
    await page.getByLabel('Topic').fill(topic);
    await page.getByRole('button', { name: 'Start chat' }).click();
  }
  await page.locator('#chat-topic', { hasText: topic }).waitFor({ timeout: T });
}

async function send(page, body) {
  // Enter sends; the input keeps focus for the next one.
  await page.getByLabel('Message').fill(body);
  await page.getByLabel('Message').press('Enter');
  await page.waitForFunction(() => document.getElementById('chat-input').value === '', null, { timeout: T });
}

// Waits for the page's transport (data-transport) to be `want`; on a timeout, says what the page shows.
async function waitTransport(page, want, timeout) {
  try {
    await page.waitForFunction((w) => document.body.dataset.transport === w, want, { timeout });
  } catch (e) {
    const now = await page.evaluate(() => `${document.body.dataset.transport} / ${document.getElementById('chat-conn').textContent}`);
    throw new Error(`transport ${want} not reached: ${now}; requests: ${JSON.stringify(page.requests.slice(-8).map((r) => r.url))}`);
  }
}

async function waitMessages(page, expected, what) {
  await page.waitForFunction(
    (n) => document.querySelectorAll('#chat-messages li').length >= n,
    expected.length,
    { timeout: T },
  );
  const got = await messages(page);
  check(JSON.stringify(got) === JSON.stringify(expected), `${what}: messages ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
}

// One picture of the story (docs/page.png is a copy): the agent's screen and the visitor's phone side by side.
async function composite(browser, names, out) {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  const imgs = names.map((n) => fs.readFileSync(path.join(ARTIFACTS, `${n}.png`)).toString('base64'));
  const style = 'border-radius:14px;box-shadow:0 10px 32px rgba(16,24,40,.16);border:1px solid #d5dbe3';
  await page.setContent(
    '<body style="margin:0;padding:36px;background:#e4e9f0;display:flex;gap:36px;align-items:flex-start;width:max-content">' +
      imgs.map((b) => `<img style="${style}" src="data:image/png;base64,${b}">`).join('') +
      '</body>',
  );
  await page.screenshot({ path: path.join(ARTIFACTS, `${out}.png`), fullPage: true });
  await page.close();
  step(`screenshot ${path.join(ARTIFACTS, `${out}.png`)}`);
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const problems = [];
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const desktop = { viewport: { width: 1120, height: 900 }, deviceScaleFactor: 1 };
    const alice = watch(await (await browser.newContext(desktop)).newPage(), 'alice', problems);
    const carol = watch(await (await browser.newContext(desktop)).newPage(), 'carol', problems);
    const bobContext = await browser.newContext(desktop);
    const bob = watch(await bobContext.newPage(), 'bob', problems);

    // The page itself: its headers, and its controls' names.
    const res = await alice.goto(BASE + '/');
    const csp = res.headers()['content-security-policy'] || '';
    check(/default-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), `CSP without inline script: ${csp}`);
    check(res.headers()['x-content-type-options'] === 'nosniff', 'nosniff on the page');
    for (const name of ['Username', 'Password']) await alice.getByLabel(name).waitFor({ timeout: T });
    await alice.getByRole('button', { name: 'Log in' }).waitFor({ timeout: T });
    step('the login form: labelled Username, Password, Log in; CSP without inline script');

    // Carol waits first, then Alice (keyboard only): Alice is 2nd.
    await login(carol, 'carol');
    await startChat(carol, 'Change my delivery address');
    await carol.getByText('You are next in the queue.').waitFor({ timeout: T });
    await login(alice, 'alice', { keyboard: true });
    await startChat(alice, 'A question about my invoice', { keyboard: true });
    await alice.getByText('Waiting for an agent').waitFor({ timeout: T });
    await alice.getByText('You are 2nd in the queue.').waitFor({ timeout: T });
    check(await alice.evaluate(() => document.activeElement.id === 'chat-input'), 'the message input has focus');
    const ring = await alice.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(ring !== 'none', `a visible focus ring (outline ${ring})`);
    // Whether or not an agent is online, a waiting visitor can leave a message instead of waiting.
    await carol.getByRole('button', { name: 'Leave a message instead' }).waitFor({ timeout: T });
    step('visitors wait: carol next, alice 2nd (alice keyboard only, with a focus ring)');
    await shot(alice, 'visitor-waiting');

    // The agent's waiting list, live: both, oldest first; a third visitor appears without a reload. Its first
    // answer is a 503 with Retry-After: 1: the page waits that long before it asks again.
    let refused = 0;
    await bob.route('**/api/prechats?status=waiting*', (route) => {
      if (refused++ > 0) return route.fallback();
      return route.fulfill({ status: 503, headers: { 'Retry-After': '1', 'Content-Type': 'application/json' },
        body: '{"error":"unavailable","message":"a backend is not answering; retry shortly"}' });
    });
    await login(bob, 'bob');
    await bob.getByRole('heading', { name: 'Waiting list' }).waitFor({ timeout: T });
    await bob.locator('#queue-list li').nth(1).waitFor({ timeout: T });
    const lists = bob.requests.filter((r) => r.url.includes('/api/prechats?status=waiting'));
    check(refused >= 2 && lists.length >= 2, `the list was asked again after the 503 (${lists.length})`);
    const gap = lists[1].at - lists[0].at; // a lower bound only: the page cannot ask sooner than it waits
    check(gap >= 950, `the retry came ${gap} ms after a 503 with Retry-After: 1`);
    await bob.unroute('**/api/prechats?status=waiting*');
    const topics = await bob.locator('#queue-list .topic').allInnerTexts();
    check(JSON.stringify(topics) === JSON.stringify(['Change my delivery address', 'A question about my invoice']),
      `the waiting list, oldest first: ${JSON.stringify(topics)}`);
    const dave = watch(await (await browser.newContext(desktop)).newPage(), 'dave', problems);
    await dave.addInitScript(() => {
      delete window.EventSource; // an old browser or a proxy that breaks streams: long-poll
    });
    await login(dave, 'dave');
    await startChat(dave, 'Is there a student discount?');
    await bob.locator('#queue-list li').nth(2).waitFor({ timeout: T });
    await bob.getByText('3 visitors are waiting.').waitFor({ timeout: T });
    step('the agent sees the waiting list live: a new visitor appears without a reload');
    await shot(bob, 'agent-waiting-list');

    // Bob joins Carol: Alice moves up, live.
    await bob.locator('#queue-list li', { hasText: 'Change my delivery address' }).getByRole('button', { name: 'Join' }).click();
    await bob.getByText('You are talking with the visitor').waitFor({ timeout: T });
    await carol.getByText('An agent has joined').waitFor({ timeout: T });
    await alice.getByText('You are next in the queue.').waitFor({ timeout: T });
    step('the agent joins carol; alice moves up to next, live');
    await bob.getByRole('button', { name: 'Close chat' }).click();
    await carol.getByText('Chat closed').waitFor({ timeout: T });
    await bob.getByRole('button', { name: 'Back to the waiting list' }).click();
    await bob.locator('#queue-list li').nth(1).waitFor({ timeout: T });

    // Bob joins Alice; messages both ways (one with markup, shown as text).
    await bob.locator('#queue-list li', { hasText: 'A question about my invoice' }).getByRole('button', { name: 'Join' }).click();
    await alice.getByText('An agent has joined').waitFor({ timeout: T });
    await send(bob, 'Hello, I am Bob. How can I help?');
    await send(alice, 'Hi Bob, my last invoice shows the wrong VAT number.');
    await send(bob, 'Sorry about that. Which invoice number is it?');
    await send(alice, 'It is <INV-2041>, from March.');
    const talk = [
      'Hello, I am Bob. How can I help?',
      'Hi Bob, my last invoice shows the wrong VAT number.',
      'Sorry about that. Which invoice number is it?',
      'It is <INV-2041>, from March.',
    ];
    await waitMessages(alice, talk, 'alice');
    await waitMessages(bob, talk, 'bob');
    check((await alice.locator('#chat-messages inv-2041').count()) === 0, 'a message is text, never markup');
    step('messages both ways, in order; markup shown as text');

    // Typing: Alice types (without sending); Bob sees it on the stream, Alice does not see her own.
    await alice.locator('#chat-input').pressSequentially('One more thing', { delay: 20 });
    await bob.getByText('The visitor is typing…').waitFor({ timeout: T }).catch((e) => {
      throw new Error(`${e.message}; alice: ${JSON.stringify(alice.requests.slice(-4))}; bob: ${JSON.stringify(bob.requests.slice(-4))}`);
    });
    check(await alice.locator('#chat-typing').isHidden(), 'one does not see one\'s own typing');
    await shot(bob, 'typing');
    await alice.locator('#chat-input').fill('');
    await bob.locator('#chat-typing').waitFor({ state: 'hidden', timeout: T }); // expires after about 5 s
    step('typing: the visitor types, the agent sees "The visitor is typing…", gone after a few seconds');

    // The network drops for Alice while Bob writes; back online, every message once, in order.
    const before = alice.requests.length;
    await alice.context().setOffline(true);
    await alice.waitForFunction(() => document.body.dataset.live === 'down', null, { timeout: T });
    const offline = await text(alice, '#chat-conn');
    const meanwhile = ['I have found it.', 'The corrected invoice is on its way.', 'Anything else?'];
    for (const m of meanwhile) await send(bob, m);
    await waitMessages(bob, [...talk, ...meanwhile], 'bob while alice is offline');
    check((await messages(alice)).length === talk.length, 'nothing reaches alice while she is offline');
    await alice.context().setOffline(false);
    await waitMessages(alice, [...talk, ...meanwhile], 'alice after the drop');
    await alice.waitForFunction(() => document.body.dataset.live === 'up', null, { timeout: T });
    const resumed = alice.requests.slice(before).filter((r) => /\/events\?after=\d+/.test(r.url));
    check(resumed.length >= 1, 'the stream reopened from the last message');
    const ids = await alice.locator('#chat-messages li').evaluateAll((lis) => lis.map((li) => Number(li.dataset.id)));
    check(new Set(ids).size === ids.length && ids.every((v, i) => i === 0 || v > ids[i - 1]), `ids once, ascending: ${ids}`);
    step(`network drop ("${offline}") and resume (${resumed[0].url.replace(BASE, '')}): nothing lost, nothing doubled`);
    await send(alice, 'No, that is all. Thank you!');
    await waitMessages(bob, [...talk, ...meanwhile, 'No, that is all. Thank you!'], 'bob');
    await shot(alice, 'conversation-visitor');
    await shot(bob, 'conversation-agent');

    // Phone-sized.
    await alice.setViewportSize({ width: 390, height: 844 });
    const overflow = await alice.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `no sideways scrolling at 390 px (overflow ${overflow})`);
    await alice.getByRole('button', { name: 'Send' }).waitFor({ timeout: T });
    await shot(alice, 'phone-visitor');
    await bob.setViewportSize({ width: 390, height: 844 });
    await shot(bob, 'phone-agent');
    await bob.setViewportSize({ width: 1120, height: 900 });
    step('phone size (390x844): no sideways scrolling, every control reachable');
    await composite(browser, ['conversation-agent', 'phone-visitor'], 'story');

    // Alice closes; both see it.
    await alice.getByRole('button', { name: 'Close chat' }).click();
    await alice.getByText('Chat closed').waitFor({ timeout: T });
    await bob.getByText('Chat closed').waitFor({ timeout: T });
    check(await alice.getByLabel('Message').isHidden(), 'no message box in a closed chat');
    step('the visitor closes: both see "Chat closed"');

    // Dave has no EventSource: long-poll. Bob joins him; a hidden tab fetches nothing new.
    await bob.getByRole('button', { name: 'Back to the waiting list' }).click();
    await bob.locator('#queue-list li', { hasText: 'Is there a student discount?' }).getByRole('button', { name: 'Join' }).click();
    await dave.getByText('An agent has joined').waitFor({ timeout: T });
    check(await dave.evaluate(() => document.body.dataset.transport) === 'longpoll', 'dave is on long-poll');
    await send(bob, 'Yes: 20 % with a student card.');
    await waitMessages(dave, ['Yes: 20 % with a student card.'], 'dave (long-poll)');
    await send(dave, 'Great, thanks.');
    await waitMessages(bob, ['Yes: 20 % with a student card.', 'Great, thanks.'], 'bob with dave');
    await dave.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await send(bob, 'Bye!');
    // The long-polls held when the tab was hidden answer (the message, the meta); after that, nothing.
    await waitMessages(dave, ['Yes: 20 % with a student card.', 'Great, thanks.', 'Bye!'], 'dave hidden');
    // A visible tab would ask again at once; a hidden one must not. An absence can only be observed over
    // time: a window longer than one ETag-poll period.
    const quietFrom = dave.requests.length;
    await dave.waitForTimeout(2500);
    const extra = dave.requests.slice(quietFrom).map((r) => r.url.replace(BASE, ''));
    check(extra.length === 0, `a hidden tab fetches nothing new (got ${JSON.stringify(extra)})`);
    await dave.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await send(bob, 'Have a nice day.');
    await waitMessages(dave, ['Yes: 20 % with a student card.', 'Great, thanks.', 'Bye!', 'Have a nice day.'], 'dave visible');
    step(`long-poll without EventSource; a hidden tab started ${extra.length} request(s) in 2.5 s`);

    // Log out (Alice, with the button); Bob's session ends elsewhere: his page shows the login form.
    await alice.getByRole('button', { name: 'Log out' }).click();
    await alice.getByRole('heading', { name: 'Log in' }).waitFor({ timeout: T });
    await alice.getByText('You have logged out.').waitFor({ timeout: T });
    const after = await alice.evaluate(async () => (await fetch('/api/auth/session')).status);
    check(after === 401, `no session after logout (${after})`);
    await bob.getByRole('button', { name: 'Close chat' }).click();
    await bob.getByRole('button', { name: 'Back to the waiting list' }).click();
    await bob.getByRole('heading', { name: 'Waiting list' }).waitFor({ timeout: T });
    const out = await bobContext.request.post(BASE + '/api/auth/logout', { headers: { Origin: BASE } });
    check(out.status() === 204, `logout from another tab (${out.status()})`);
    await bob.getByText('Your session has ended. Please log in again.').waitFor({ timeout: T });
    await bob.getByLabel('Username').waitFor({ timeout: T });
    await shot(bob, 'session-ended');
    // The same through the event stream: Carol waits in a new chat; her session ends in another tab.
    await carol.getByRole('button', { name: 'Start a new chat' }).click();
    await startChat(carol, 'One more question');
    await carol.waitForFunction(() => document.body.dataset.live === 'up', null, { timeout: T });
    const out2 = await carol.context().request.post(BASE + '/api/auth/logout', { headers: { Origin: BASE } });
    check(out2.status() === 204, `carol's logout from another tab (${out2.status()})`);
    await carol.getByText('Your session has ended. Please log in again.').waitFor({ timeout: T });
    await carol.getByLabel('Username').waitFor({ timeout: T });
    step('logout; a session ended elsewhere (401, on the list long-poll and on the stream) shows the login form');

    // The fallbacks in order: a stream that keeps failing gives way to long-poll, long-polls that keep failing
    // to ETag polling; a message still arrives.
    // Both kinds are cut from the start (a held request that began before its route would be a real one).
    await alice.route('**/api/prechats/*/events*', (route) => route.abort('connectionreset'));
    await alice.route(/\/api\/prechats\/\d+\/(meta|messages)\?.*wait=/, (route) => route.abort('connectionreset'));
    const from = alice.requests.length;
    await login(alice, 'alice');
    await startChat(alice, 'Fallbacks');
    await waitTransport(alice, 'poll', 60000);
    await send(alice, 'Still there?');
    await waitMessages(alice, ['Still there?'], 'alice on ETag polling');
    const tried = alice.requests.slice(from).map((r) => r.url.replace(BASE, ''));
    const firstEvents = tried.findIndex((u) => /\/events\?/.test(u));
    const firstWait = tried.findIndex((u) => /wait=/.test(u));
    const lastWait = tried.length - 1 - [...tried].reverse().findIndex((u) => /wait=/.test(u));
    const firstPoll = tried.findIndex((u, i) => i > lastWait && /\/(meta|messages\?after=\d+)$/.test(u));
    check(firstEvents >= 0 && firstWait > firstEvents && firstPoll > firstWait,
      `stream, then long-poll, then ETag polling: ${JSON.stringify(tried)}`);
    await alice.getByRole('button', { name: 'Close chat' }).click();
    await alice.getByText('Chat closed').waitFor({ timeout: T });
    await alice.getByRole('button', { name: 'Log out' }).click();
    await alice.getByText('You have logged out.').waitFor({ timeout: T });
    step('a failing stream falls back to long-poll, failing long-polls to ETag polling; messages still arrive');

    check(problems.length === 0, `no page errors: ${JSON.stringify(problems)}`);
    step('no console errors, no CSP violations');
  } finally {
    await browser.close();
  }
}

main().then(
  () => {
    step('PASS');
    process.exit(0);
  },
  (e) => {
    process.stderr.write(`story: FAIL: ${e.stack || e}\n`);
    process.exit(1);
  },
);

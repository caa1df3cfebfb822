// Browser test of the livechat chat page: two browser users and one plain
// TCP (IRC) user share a room. Run through run.sh, which builds and starts
// the daemon and sets LIVECHAT_URL and LIVECHAT_TCP.
//
// Every wait has a deadline; nothing sleeps and hopes.
import { chromium } from 'playwright-core';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseLine } from '../static/irc.js';
import { createRequire } from 'node:module';
const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const here = path.dirname(fileURLToPath(import.meta.url));
const URL_ = process.env.LIVECHAT_URL;
const TCP = process.env.LIVECHAT_TCP;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOT_DIR || path.join(here, 'screenshots');
const T = Number(process.env.E2E_TIMEOUT_MS || 10000); // per wait
if (!URL_ || !TCP) {
  console.error('FAIL setup: LIVECHAT_URL and LIVECHAT_TCP must be set (use web/e2e/run.sh)');
  process.exit(2);
}
const u = new URL(URL_);
if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) {
  console.error(`FAIL setup: ${URL_} is not loopback`);
  process.exit(2);
}
fs.mkdirSync(SHOTS, { recursive: true });

// The daemon is fresh for every run (run.sh), so the names can be the ones
// a person would pick; E2E_SUFFIX makes them unique against a shared one.
const sfx = process.env.E2E_SUFFIX || '';
const ROOM = `lobby${sfx}`; // typed without the #, as a person would
const CHAN = `#${ROOM}`;
const ROOM2 = `random${sfx}`;
const CHAN2 = `#${ROOM2}`;
const NICK_A = `alice${sfx}`;
const NICK_B = `bob${sfx}`;
const NICK_T = `carol${sfx}`;
const ACCOUNT = NICK_A; // A registers the nick it is using
const PASSWORD = 'correct-horse-battery';
const XSS = '<script>alert(1)</script><b>x</b>';

// ------------------------------------------------------------------ steps

let failures = 0;
const problems = []; // page errors, CSP violations, dialogs
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`PASS ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e && e.message ? e.message.split('\n')[0] : e}`);
    throw e;
  }
}

async function until(what, fn, timeout = T) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last instanceof Error ? ': ' + last.message : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ------------------------------------------------------------------ TCP user

class TcpUser {
  constructor(addr) {
    const i = addr.lastIndexOf(':');
    this.host = addr.slice(0, i);
    this.port = Number(addr.slice(i + 1));
    this.lines = [];
    this.buf = '';
  }
  connect() {
    return new Promise((resolve, reject) => {
      this.sock = net.createConnection({ host: this.host, port: this.port }, resolve);
      this.sock.setEncoding('utf8');
      this.sock.on('error', reject);
      this.sock.on('data', (d) => {
        this.buf += d;
        let nl;
        while ((nl = this.buf.indexOf('\n')) >= 0) {
          const line = this.buf.slice(0, nl).replace(/\r$/, '');
          this.buf = this.buf.slice(nl + 1);
          const m = parseLine(line);
          if (m.command === 'PING') this.send(`PONG :${m.params[0] || ''}`);
          this.lines.push(m);
        }
      });
    });
  }
  send(line) { this.sock.write(line + '\r\n'); }
  // wait for a line matching pred, among those from index `from` on.
  wait(what, pred, timeout = T, from = 0) {
    return until(`TCP user: ${what}`, () => this.lines.slice(from).find(pred), timeout);
  }
  close() { try { this.send('QUIT :done'); this.sock.end(); } catch (e) { /* gone */ } }
}

// ------------------------------------------------------------------ browser

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const profiles = [];

// Each user gets their own browser with a fresh, empty profile directory.
async function openUser(label, { viewport = { width: 1280, height: 800 }, colorScheme = 'light', isMobile = false, deviceScaleFactor = 1 } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `livechat-e2e-${label}-`));
  profiles.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport, colorScheme, isMobile, hasTouch: isMobile, deviceScaleFactor,
    timezoneId: 'UTC', locale: 'en-GB',
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(T);
  page.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy|Refused to/.test(m.text())) problems.push(`${label}: console ${m.type()}: ${m.text()}`);
  });
  page.on('dialog', (d) => { problems.push(`${label}: a ${d.type()} dialog fired: ${d.message()}`); d.dismiss().catch(() => {}); });
  // Anything but the daemon's loopback address is a test bug.
  await ctx.route('**/*', (route) => {
    const r = new URL(route.request().url());
    if (r.host === u.host || r.protocol === 'data:') return route.continue();
    problems.push(`${label}: request to ${r.href} blocked`);
    return route.abort();
  });
  return { ctx, page, label };
}

async function joinFromStart(page, { room, nick }) {
  await page.goto(URL_);
  await page.locator('#start-room').click();
  await page.keyboard.type(room);
  if (nick) {
    await page.locator('#start-nick').click();
    await page.keyboard.type(nick);
  }
  await page.locator('#start-submit').click();
  await page.locator('#app').waitFor({ state: 'visible' });
}

const messageTexts = (page) => page.locator('#log-inner .buffer:not([hidden]) .msg-text');
async function seesMessage(page, text, who) {
  await until(`${who} to see “${text}”`, async () => {
    const all = await messageTexts(page).allTextContents();
    return all.some((t) => t.includes(text));
  });
}
async function sendFromPage(page, text) {
  const input = page.locator('#input');
  await input.click();
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}
const memberNames = (page) => page.locator('#member-list .member-name').allTextContents();

// ------------------------------------------------------------------ the test

const tcp = new TcpUser(TCP);
let A, B, C, P, D, E, F;
const started = Date.now();

try {
  await step('page loads with its CSP and no inline code', async () => {
    A = await openUser('A');
    const resp = await A.page.goto(URL_);
    const csp = resp.headers()['content-security-policy'] || '';
    if (!/default-src 'self'/.test(csp)) throw new Error(`unexpected CSP: ${csp}`);
    await A.page.locator('#start-form').waitFor();
    const inline = await A.page.evaluate(() => ({
      scripts: [...document.scripts].filter((s) => !s.src).length,
      styled: document.querySelectorAll('[style]').length,
    }));
    if (inline.scripts || inline.styled) throw new Error(`inline script/style found: ${JSON.stringify(inline)}`);
  });

  await step(`page A joins ${CHAN} as ${NICK_A} by typing a room without #`, async () => {
    await joinFromStart(A.page, { room: ROOM, nick: NICK_A });
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"]`).waitFor();
    await until('A in its own member list', async () => (await memberNames(A.page)).includes(NICK_A));
    const title = await A.page.locator('#room-name').textContent();
    if (title !== CHAN) throw new Error(`room title ${title}`);
  });

  await step(`page B joins ${CHAN} as ${NICK_B}`, async () => {
    B = await openUser('B');
    await joinFromStart(B.page, { room: ROOM, nick: NICK_B });
    await until('B sees A and B as members', async () => { const m = await memberNames(B.page); return m.includes(NICK_A) && m.includes(NICK_B); });
  });

  await step(`TCP user ${NICK_T} joins over plain IRC`, async () => {
    await tcp.connect();
    tcp.send(`NICK ${NICK_T}`);
    tcp.send(`USER carol 0 * :Carol on TCP`);
    await tcp.wait('001', (m) => m.command === '001');
    tcp.send(`JOIN ${CHAN}`);
    await tcp.wait('366', (m) => m.command === '366');
    await until('A lists the TCP user', async () => (await memberNames(A.page)).includes(NICK_T));
    await until('B lists the TCP user', async () => (await memberNames(B.page)).includes(NICK_T));
    // A made the room, so A is its operator and is listed first with @.
    const prefix = await A.page.locator('#member-list .member', { hasText: NICK_A }).locator('.member-prefix').textContent();
    if (prefix !== '@') throw new Error(`A's prefix is “${prefix}”, want @`);
  });

  const fromA = 'Hi both! Anyone up for lunch at noon?';
  await step('A sends; B and the TCP user receive it; A sees its own echo', async () => {
    await sendFromPage(A.page, fromA);
    await seesMessage(B.page, fromA, 'B');
    await tcp.wait('A’s message', (m) => m.command === 'PRIVMSG' && m.params[0] === CHAN && m.params[1] === fromA && m.nick === NICK_A);
    await until('A’s message confirmed by echo-message', async () =>
      (await A.page.locator('.msg.is-self:not(.is-pending)', { hasText: fromA }).count()) === 1);
  });

  const fromB = 'Count me in. The usual place?';
  await step('B sends; A and the TCP user receive it', async () => {
    await sendFromPage(B.page, fromB);
    await seesMessage(A.page, fromB, 'A');
    await tcp.wait('B’s message', (m) => m.command === 'PRIVMSG' && m.params[1] === fromB && m.nick === NICK_B);
  });

  await step('a pasted block goes out as one draft/multiline message: one message on each page, lines for the TCP user', async () => {
    const paste = ['menu:', '  soup', '  bread'];
    await A.page.locator('#input').click();
    await A.page.locator('#input').fill(paste.join('\n'));
    await A.page.keyboard.press('Enter');
    for (const [who, page] of [['A', A.page], ['B', B.page]]) {
      await until(`${who} shows the paste as one message`, async () => {
        const all = await messageTexts(page).allTextContents();
        return all.filter((t) => t === paste.join('\n')).length === 1 && !all.includes('  soup');
      });
    }
    for (const line of paste) {
      await tcp.wait(`the line “${line}”`, (m) => m.command === 'PRIVMSG' && m.params[1] === line && m.nick === NICK_A);
    }
    await until('A’s paste confirmed by echo-message', async () =>
      (await A.page.locator('.msg.is-self:not(.is-pending)', { hasText: 'bread' }).count()) === 1);
  });

  const fromT = 'Sounds good, I will book a table for three: https://example.com/booking?table=3.';
  await step('the TCP user sends; both pages show it with a safe link', async () => {
    tcp.send(`PRIVMSG ${CHAN} :${fromT}`);
    await seesMessage(A.page, 'I will book a table', 'A');
    await seesMessage(B.page, 'I will book a table', 'B');
    const msg = A.page.locator(`.msg[data-nick="${NICK_T}"]`, { hasText: 'book a table' });
    const href = await msg.locator('a').getAttribute('href');
    if (href !== 'https://example.com/booking?table=3') throw new Error(`link href ${href}`);
    const rel = await msg.locator('a').getAttribute('rel');
    if (!/noopener/.test(rel)) throw new Error(`link rel ${rel}`);
  });

  await step('a bot (user mode +B) gets a bot badge beside its nick, in the message and the member list', async () => {
    tcp.send(`MODE ${NICK_T} +B`);
    await tcp.wait('the +B echo', (m) => m.command === 'MODE' && m.params[1] === '+B');
    tcp.send(`PRIVMSG ${CHAN} :beep boop, I am a bot now`);
    await seesMessage(A.page, 'I am a bot now', 'A');
    const msg = A.page.locator(`.msg[data-nick="${NICK_T}"]`, { hasText: 'I am a bot now' });
    await until('the bot badge on the message', async () => (await msg.locator('.tag-bot').count()) === 1);
    await until('the bot badge in the member list', async () =>
      (await A.page.locator('#member-list .member', { hasText: NICK_T }).locator('.tag-bot').count()) === 1);
    if (await A.page.locator(`.msg[data-nick="${NICK_B}"] .tag-bot`).count()) throw new Error('a person has a bot badge');
    tcp.send(`MODE ${NICK_T} -B`);
    await tcp.wait('the -B echo', (m) => m.command === 'MODE' && m.params[1] === '-B');
  });

  await step('typing shows on the other page and clears when the message lands', async () => {
    await B.page.locator('#input').click();
    await B.page.keyboard.type('On my way');
    await A.page.locator('#typing', { hasText: `${NICK_B} is typing` }).waitFor();
    await B.page.keyboard.type(' in ten minutes.');
    await B.page.keyboard.press('Enter');
    await seesMessage(A.page, 'On my way in ten minutes.', 'A');
    await until('typing cleared', async () => (await A.page.locator('#typing').textContent()) === '');
  });

  await step(`A registers the account ${ACCOUNT} from the account dialog`, async () => {
    await A.page.locator('#me-button').click();
    await A.page.locator('#account-dialog').waitFor({ state: 'visible' });
    await A.page.locator('#account-guest .seg button[data-amode="register"]').click();
    const prefilled = await A.page.locator('#acct-name').inputValue();
    if (prefilled !== NICK_A) throw new Error(`account name prefilled with “${prefilled}”, want the nick`);
    await A.page.locator('#acct-password').click();
    await A.page.keyboard.type('short');
    await A.page.screenshot({ path: path.join(SHOTS, 'account-dialog.png') });
    await A.page.locator('#account-submit').click();
    await until('a short password refused', async () => /8 characters/.test(await A.page.locator('#account-error').textContent()));
    await A.page.locator('#acct-password').fill('');
    await A.page.locator('#acct-password').click();
    await A.page.keyboard.type(PASSWORD);
    await A.page.locator('#account-submit').click();
    await A.page.locator('#account-dialog').waitFor({ state: 'hidden', timeout: 20000 });
    await A.page.locator('.toast', { hasText: `Account ${ACCOUNT} created` }).waitFor();
    await until('A’s header shows the account', async () =>
      (await A.page.locator('#me-nick').textContent()) === ACCOUNT && (await A.page.locator('#me-account').textContent()) === 'Logged in');
    const thanks = 'Great, thanks Carol!';
    await sendFromPage(A.page, thanks);
    await seesMessage(B.page, thanks, 'B');
    await until('B sees A’s message marked as from a logged-in user', async () =>
      (await B.page.locator('.msg.is-first', { hasText: thanks }).locator('.verified').count()) === 1);
    await tcp.wait('account tag-free line for the plain client', (m) => m.command === 'PRIVMSG' && m.params[1] === thanks && m.nick === ACCOUNT);
  });

  await step('a second room from the + box and from /join; unread badge with mention', async () => {
    await A.page.locator('#join-open').click();
    await A.page.locator('#join-input').click();
    await A.page.keyboard.type(ROOM2);
    await A.page.keyboard.press('Enter');
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN2}"].is-active`).waitFor();
    await sendFromPage(B.page, `/join ${ROOM2}`);
    await B.page.locator(`#tabs-rooms .tab[title="${CHAN2}"].is-active`).waitFor();
    tcp.send(`JOIN ${CHAN2}`);
    await tcp.wait('joined the side room', (m) => m.command === '366' && m.params[1] === CHAN2);
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"]`).click();
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"].is-active`).waitFor();
    tcp.send(`PRIVMSG ${CHAN2} :psst, over here`);
    tcp.send(`PRIVMSG ${CHAN2} :${ACCOUNT}: got a minute?`);
    await until('badge 2 on the side room, marked as a mention', async () => {
      const badge = A.page.locator(`#tabs-rooms .tab[title="${CHAN2}"] .badge`);
      return (await badge.textContent()) === '2' && await badge.isVisible() && /is-mention/.test(await badge.getAttribute('class'));
    });
    if (!/^\(2\) /.test(await A.page.title())) throw new Error(`title without the unread count: ${await A.page.title()}`);
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN2}"]`).click();
    await until('badge cleared', async () => !(await A.page.locator(`#tabs-rooms .tab[title="${CHAN2}"] .badge`).isVisible()));
    await A.page.locator('.msg.is-mention', { hasText: 'got a minute?' }).waitFor();
  });

  await step('markup in a message is shown as text, never run or parsed', async () => {
    await sendFromPage(A.page, XSS);
    tcp.send(`PRIVMSG ${CHAN2} :javascript:alert(2) <img src=x onerror=alert(3)>`);
    for (const [p, who] of [[A.page, 'A'], [B.page, 'B']]) {
      await seesMessage(p, XSS, who);
      await seesMessage(p, '<img src=x onerror=alert(3)>', who);
      const found = await p.evaluate(() => {
        const log = document.getElementById('log-inner');
        return {
          b: log.querySelectorAll('.msg-text b').length,
          script: log.querySelectorAll('script').length,
          img: log.querySelectorAll('img').length,
          jsLinks: [...log.querySelectorAll('a')].filter((a) => !/^https?:/.test(a.href)).length,
          text: [...log.querySelectorAll('.msg-text')].map((e) => e.textContent).filter((t) => t.includes('<script>')),
        };
      });
      if (found.b || found.script || found.img || found.jsLinks) throw new Error(`${who}: elements created from message text: ${JSON.stringify(found)}`);
      if (!found.text.some((t) => t === XSS)) throw new Error(`${who}: literal text not shown: ${JSON.stringify(found.text)}`);
    }
    await tcp.wait('the markup arrives verbatim', (m) => m.command === 'PRIVMSG' && m.params[1] === XSS);
    const dialogs = problems.filter((p) => /dialog/.test(p));
    if (dialogs.length) throw new Error(dialogs.join('; '));
  });

  await step('a wrong password on the start screen is refused with a clear error; the right one logs in', async () => {
    C = await openUser('C');
    await C.page.goto(URL_);
    await C.page.locator('#mode-login').click();
    await C.page.locator('#start-room').click();
    await C.page.keyboard.type(ROOM2);
    await C.page.locator('#start-account').click();
    await C.page.keyboard.type(ACCOUNT);
    await C.page.locator('#start-password').click();
    await C.page.keyboard.type('not-the-password');
    await C.page.locator('#start-submit').click();
    await until('the login error', async () => /Wrong account name or password/.test(await C.page.locator('#start-error').textContent() || ''), 20000);
    if (await C.page.locator('#app').isVisible()) throw new Error('the app opened after a failed login');
    await C.page.locator('#start-password').fill('');
    await C.page.locator('#start-password').click();
    await C.page.keyboard.type(PASSWORD);
    await C.page.locator('#start-submit').click();
    let rateLimited = false;
    await until('logged in, or told to wait', async () => {
      if (await C.page.locator('#app').isVisible()) return true;
      const err = await C.page.locator('#start-error').textContent();
      if (/try again in/i.test(err || '')) { rateLimited = true; return true; }
      return false;
    }, 20000);
    if (rateLimited) throw new Error('the correct password was rate limited after one mistake: ' + await C.page.locator('#start-error').textContent());
    await until('C shows as logged in', async () => (await C.page.locator('#me-account').textContent()) === 'Logged in');
    await C.page.locator(`#tabs-rooms .tab[title="${CHAN2}"]`).waitFor();
    await seesMessage(C.page, 'psst, over here', 'C (history)');
    await C.ctx.close();
    C = null;
  });

  await step('a private message opens a conversation tab', async () => {
    tcp.send(`PRIVMSG ${ACCOUNT} :are you coming to lunch too?`);
    await A.page.locator(`#tabs-dms .tab[title="${NICK_T}"]`).waitFor();
    await A.page.locator(`#tabs-dms .tab[title="${NICK_T}"]`).click();
    await seesMessage(A.page, 'are you coming to lunch too?', 'A (private)');
    await sendFromPage(A.page, 'yes, see you there');
    await tcp.wait('private reply', (m) => m.command === 'PRIVMSG' && m.params[0] === NICK_T && m.params[1] === 'yes, see you there');
  });

  await step('closing a room tab parts the room', async () => {
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN2}"]`).click();
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN2}"] .tab-close`).click();
    await tcp.wait('A parts the side room', (m) => m.command === 'PART' && m.params[0] === CHAN2 && m.nick === ACCOUNT);
    await until('tab gone', async () => (await A.page.locator(`#tabs-rooms .tab[title="${CHAN2}"]`).count()) === 0);
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"]`).click();
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"].is-active`).waitFor();
  });

  await step('B reloads, is back in both rooms and sees the earlier messages once each', async () => {
    await B.page.reload();
    await B.page.locator('#app').waitFor({ state: 'visible' });
    await B.page.locator(`#tabs-rooms .tab[title="${CHAN2}"].is-active`).waitFor(); // where B was
    await B.page.locator(`#tabs-rooms .tab[title="${CHAN}"]`).waitFor();
    await seesMessage(B.page, XSS, 'B after reload');
    await B.page.locator(`#tabs-rooms .tab[title="${CHAN}"]`).click();
    for (const text of [fromA, fromB, 'I will book a table', 'Great, thanks Carol!']) await seesMessage(B.page, text, 'B after reload');
    await until('each earlier message exactly once', async () => {
      const all = await messageTexts(B.page).allTextContents();
      const count = (s) => all.filter((t) => t === s).length;
      return count(fromA) === 1 && count(fromB) === 1 && count('Great, thanks Carol!') === 1;
    });
    const time = await B.page.locator('.msg', { hasText: fromA }).locator('time').getAttribute('datetime');
    if (!time) throw new Error('history message has no time');
    const nick = await B.page.locator('#me-nick').textContent();
    if (!nick.startsWith(NICK_B)) throw new Error(`B came back as ${nick}`);
    await until('B sees the TCP user after reload', async () => (await memberNames(B.page)).includes(NICK_T));
  });

  const afterReload = 'Back again after a reload, all good.';
  await step('B talks after the reload; A and the TCP user get it', async () => {
    await sendFromPage(B.page, afterReload);
    await seesMessage(A.page, afterReload, 'A');
    await tcp.wait('B after reload', (m) => m.command === 'PRIVMSG' && m.params[1] === afterReload);
  });

  await step('/me, /topic and screenshots: desktop, dark, phone, phone drawers', async () => {
    tcp.send(`PRIVMSG ${CHAN} :\x01ACTION waves from the terminal\x01`);
    await seesMessage(A.page, 'waves from the terminal', 'A');
    await A.page.locator('.msg.is-action', { hasText: 'waves from the terminal' }).waitFor();
    await sendFromPage(A.page, '/topic Lunch plans and everything else');
    await A.page.locator('#room-topic', { hasText: 'Lunch plans' }).waitFor();
    await B.page.locator('#room-topic', { hasText: 'Lunch plans' }).waitFor();
    await tcp.wait('TOPIC', (m) => m.command === 'TOPIC' && m.params[1] === 'Lunch plans and everything else');
    await sendFromPage(B.page, 'See you all at twelve then.');
    await seesMessage(A.page, 'See you all at twelve then.', 'A');
    await until('toasts gone', async () => (await A.page.locator('.toast').count()) === 0);
    await A.page.mouse.move(1, 400);
    await A.page.screenshot({ path: path.join(SHOTS, 'chat.png') });

    // D registers on the start screen, in dark mode.
    D = await openUser('D', { colorScheme: 'dark' });
    await D.page.goto(URL_);
    await D.page.locator('#mode-register').click();
    await D.page.locator('#start-room').click();
    await D.page.keyboard.type(ROOM);
    await D.page.locator('#start-account').click();
    await D.page.keyboard.type(`dana${sfx}`);
    await D.page.locator('#start-password').click();
    await D.page.keyboard.type(PASSWORD);
    await D.page.locator('#start-submit').click();
    await D.page.locator('#app').waitFor({ state: 'visible', timeout: 20000 });
    await D.page.locator('.toast', { hasText: `Account dana${sfx} created` }).waitFor();
    await until('D is dana and logged in', async () =>
      (await D.page.locator('#me-nick').textContent()) === `dana${sfx}` && (await D.page.locator('#me-account').textContent()) === 'Logged in');
    await seesMessage(D.page, 'See you all at twelve', 'D');
    await until('toasts gone', async () => (await D.page.locator('.toast').count()) === 0);
    await D.page.mouse.move(1, 400);
    await D.page.screenshot({ path: path.join(SHOTS, 'chat-dark.png') });

    P = await openUser('P', { viewport: { width: 390, height: 844 }, isMobile: true, deviceScaleFactor: 2 });
    await P.page.goto(URL_);
    await P.page.screenshot({ path: path.join(SHOTS, 'start-phone.png') });
    await joinFromStart(P.page, { room: ROOM }); // no nickname: a guest
    await seesMessage(P.page, 'See you all at twelve', 'phone');
    const guest = await P.page.locator('#me-nick').textContent();
    if (!/^guest-\d+$/.test(guest)) throw new Error(`a guest without a nickname is “${guest}”`);
    const overflow = await P.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    if (overflow) throw new Error('the phone layout scrolls sideways');
    const input = await P.page.locator('#input').boundingBox();
    if (!input || input.y + input.height > 844 || input.height < 44) throw new Error(`composer not at the bottom or too small: ${JSON.stringify(input)}`);
    await P.page.screenshot({ path: path.join(SHOTS, 'chat-phone.png') });
    await P.page.locator('#members-toggle').click();
    await P.page.locator('#members.is-open').waitFor();
    await until('members drawer slid in', async () => { const bb = await P.page.locator('#members').boundingBox(); return bb && Math.abs(bb.x + bb.width - 390) < 1; });
    await P.page.screenshot({ path: path.join(SHOTS, 'chat-phone-members.png') });
    await P.page.locator('#scrim').click({ position: { x: 20, y: 300 } });
    await P.page.locator('#rooms-toggle').click();
    await P.page.locator('#sidebar.is-open').waitFor();
    await until('rooms drawer slid in', async () => { const bb = await P.page.locator('#sidebar').boundingBox(); return bb && Math.abs(bb.x) < 1; });
    await P.page.screenshot({ path: path.join(SHOTS, 'chat-phone-rooms.png') });
    await P.page.locator('#leave-button').click();
    await P.page.locator('#start').waitFor({ state: 'visible' });
    if ((await P.page.locator('#start-room').inputValue()) !== ROOM) throw new Error('the start screen forgot the room');
  });

  await step('a dropped connection shows a banner, reconnects, rejoins and fills the gap', async () => {
    await A.page.evaluate(() => window.livechat.dropConnection());
    await A.page.locator('#banner').waitFor({ state: 'visible' });
    if (!/Disconnected/.test(await A.page.locator('#banner-text').textContent())) throw new Error('banner text: ' + await A.page.locator('#banner-text').textContent());
    await tcp.wait('A gone', (m) => m.command === 'QUIT' && m.nick === ACCOUNT);
    const missed = 'Did you get the last message, Alice?';
    tcp.send(`PRIVMSG ${CHAN} :${missed}`);
    const mark = tcp.lines.length;
    await A.page.locator('#banner-action', { hasText: 'Reconnect now' }).click();
    await A.page.locator('#banner').waitFor({ state: 'hidden' });
    await tcp.wait('A back in the room', (m) => m.command === 'JOIN' && m.nick === ACCOUNT && m.params[0] === CHAN, T, mark);
    await until('A logged in again as itself', async () =>
      (await A.page.locator('#me-nick').textContent()) === ACCOUNT && (await A.page.locator('#me-account').textContent()) === 'Logged in');
    await seesMessage(A.page, missed, 'A after reconnect');
    await until('no duplicates after the reconnect', async () => {
      const all = await messageTexts(A.page).allTextContents();
      return all.filter((t) => t === fromA).length === 1 && all.filter((t) => t === missed).length === 1;
    });
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"]:not(.is-parted)`).waitFor();
  });

  await step('a long history pages in with “Load earlier messages”, in order, once each', async () => {
    const hist = new TcpUser(TCP);
    await hist.connect();
    hist.send(`NICK dave${sfx}`);
    hist.send('USER dave 0 * :Dave');
    await hist.wait('001', (m) => m.command === '001');
    hist.send(`JOIN #history${sfx}`);
    const N = 75;
    for (let i = 1; i <= N; i++) hist.send(`PRIVMSG #history${sfx} :history line ${i}`);
    hist.send('PING :seeded');
    await hist.wait('all sent', (m) => m.command === 'PONG' && m.params[m.params.length - 1] === 'seeded', 30000);
    await sendFromPage(A.page, `/join history${sfx}`);
    await A.page.locator(`#tabs-rooms .tab[title="#history${sfx}"].is-active`).waitFor();
    await seesMessage(A.page, `history line ${N}`, 'A');
    const more = A.page.locator('.buffer:not([hidden]) .more');
    await more.waitFor();
    const before = (await messageTexts(A.page).allTextContents()).filter((t) => t.startsWith('history line')).length;
    if (before >= N) throw new Error(`all ${before} lines came at once; nothing to page`);
    await more.click();
    await until('all lines, in order, once each, and no more button', async () => {
      const lines = (await messageTexts(A.page).allTextContents()).filter((t) => t.startsWith('history line'));
      return lines.length === N && lines.every((t, i) => t === `history line ${i + 1}`) && (await more.count()) === 0;
    });
    // Scrolled up, a new message does not yank the view; a button offers it.
    await A.page.locator('#log').evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
    hist.send(`PRIVMSG #history${sfx} :a new one while you read`);
    await seesMessage(A.page, 'a new one while you read', 'A');
    await A.page.locator('#jump').waitFor({ state: 'visible' });
    if (await A.page.locator('#log').evaluate((el) => el.scrollTop) > 5) throw new Error('the view moved while scrolled up');
    await A.page.locator('#jump').click();
    await until('at the bottom', async () => A.page.locator('#log').evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 2));
    await A.page.locator('#jump').waitFor({ state: 'hidden' });
    hist.close();
  });

  const doomed = 'This message will self-destruct.';
  await step('A deletes its own message: removed on both pages, nothing for the TCP user, gone after a reload', async () => {
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"]`).click();
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"].is-active`).waitFor();
    await sendFromPage(A.page, doomed);
    await seesMessage(B.page, doomed, 'B');
    await tcp.wait('the doomed message', (m) => m.command === 'PRIVMSG' && m.params[1] === doomed);
    const mark = tcp.lines.length;
    const mine = A.page.locator('.msg.is-self:not(.is-pending)', { hasText: doomed });
    await mine.hover();
    await mine.locator('.msg-delete').click();
    for (const [p, who] of [[A.page, 'A'], [B.page, 'B']]) {
      await until(`${who} shows the message as deleted`, async () => {
        const all = await messageTexts(p).allTextContents();
        return !all.includes(doomed) && await p.locator('.msg.is-redacted', { hasText: 'Message deleted' }).count() === 1;
      });
    }
    if (await B.page.locator('.msg', { hasText: fromA }).locator('.msg-delete').count() !== 0) throw new Error('B is offered to delete A’s message');
    await A.page.locator('.msg.is-self', { hasText: 'Great, thanks Carol!' }).hover();
    await A.page.screenshot({ path: path.join(SHOTS, 'message-deleted.png') });
    tcp.send('PING :after-redact');
    await tcp.wait('a barrier', (m) => m.command === 'PONG' && m.params[m.params.length - 1] === 'after-redact', T, mark);
    if (tcp.lines.slice(mark).some((m) => m.command === 'REDACT')) throw new Error('the plain IRC client got a REDACT it never asked for');
    await B.page.reload();
    await B.page.locator('#app').waitFor({ state: 'visible' });
    await B.page.locator(`#tabs-rooms .tab[title="${CHAN}"]`).click();
    await seesMessage(B.page, afterReload, 'B after reload');
    const all = await messageTexts(B.page).allTextContents();
    if (all.some((t) => t === doomed || t === 'Message deleted')) throw new Error('the deleted message came back with the history');
  });

  const MARKS = `#marks${sfx}`;
  const badge = (p, room) => p.locator(`#tabs-rooms .tab[title="${room}"] .badge`);
  const unread = async (p, room) => (await badge(p, room).isVisible()) ? await badge(p, room).textContent() : '0';
  await step('read markers: a second device and a reload show the same unread counts', async () => {
    await sendFromPage(A.page, `/join ${MARKS.slice(1)}`);
    await A.page.locator(`#tabs-rooms .tab[title="${MARKS}"].is-active`).waitFor();
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"]`).click();
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"].is-active`).waitFor();
    tcp.send(`JOIN ${MARKS}`);
    for (let i = 1; i <= 3; i++) tcp.send(`PRIVMSG ${MARKS} :marks line ${i}`);
    await until('A counts 3 unread', async () => await unread(A.page, MARKS) === '3');

    // A second device of the same account, looking at another room,
    // counts the same three from the history and A's marker.
    E = await openUser('E');
    await E.page.goto(URL_);
    await E.page.locator('#mode-login').click();
    await E.page.locator('#start-room').click();
    await E.page.keyboard.type(`${ROOM}, ${MARKS.slice(1)}`);
    await E.page.locator('#start-account').click();
    await E.page.keyboard.type(ACCOUNT);
    await E.page.locator('#start-password').click();
    await E.page.keyboard.type(PASSWORD);
    await E.page.locator('#start-submit').click();
    await E.page.locator('#app').waitFor({ state: 'visible', timeout: 20000 });
    await E.page.locator(`#tabs-rooms .tab[title="${CHAN}"].is-active`).waitFor();
    await until('E counts the same 3 unread', async () => await unread(E.page, MARKS) === '3');

    // Reading on one device clears the count on the other.
    await A.page.locator(`#tabs-rooms .tab[title="${MARKS}"]`).click();
    await until('A read them', async () => await unread(A.page, MARKS) === '0');
    await until('E hears A read them', async () => await unread(E.page, MARKS) === '0');
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"]`).click();
    await A.page.locator(`#tabs-rooms .tab[title="${CHAN}"].is-active`).waitFor();
    tcp.send(`PRIVMSG ${MARKS} :marks line 4`);
    tcp.send(`PRIVMSG ${MARKS} :marks line 5, ${ACCOUNT}?`);
    await until('2 new on A', async () => await unread(A.page, MARKS) === '2');
    await until('2 new on E', async () => await unread(E.page, MARKS) === '2');

    // A reload logs in again (with the kept login token) and counts from
    // the marker, not from zero.
    await A.page.reload();
    await A.page.locator('#app').waitFor({ state: 'visible', timeout: 20000 });
    await until('2 unread after the reload, with the mention', async () =>
      await unread(A.page, MARKS) === '2' && /is-mention/.test(await badge(A.page, MARKS).getAttribute('class')));
    await until('nothing unread where A had read', async () => await unread(A.page, CHAN) === '0');

    await E.page.locator(`#tabs-rooms .tab[title="${MARKS}"]`).click();
    await seesMessage(E.page, 'marks line 5', 'E');
    await until('A hears E read them', async () => await unread(A.page, MARKS) === '0');
    await E.ctx.close();
    E = null;
  });

  // ---------------------------------------------------------------- issue 15: commands, directory, moderation,
  // notifications, keyboard and text, accessibility. F is a fresh guest who
  // makes her own room (so she is its operator) and the TCP user joins it.
  const OPS = `#ops${sfx}`;
  const NICK_F = `frank${sfx}`;
  const infoTexts = (p) => p.locator('#log-inner .buffer:not([hidden]) .event-text').allTextContents();
  const seesInfo = (p, re, what) => until(`F to see ${what}`, async () => (await infoTexts(p)).some((t) => re.test(t)));
  const tcpSees = (what, pred, from) => tcp.wait(what, pred, T, from);

  await step('every slash command reaches the server and its answer shows in the page', async () => {
    F = await openUser('F');
    await joinFromStart(F.page, { room: OPS.slice(1), nick: NICK_F });
    await F.page.locator(`#tabs-rooms .tab[title="${OPS}"].is-active`).waitFor();
    tcp.send(`JOIN ${OPS}`);
    await until('F lists the TCP user', async () => (await memberNames(F.page)).includes(NICK_T));
    let mark = tcp.lines.length;
    const cmd = async (line) => { mark = tcp.lines.length; await sendFromPage(F.page, line); };
    await cmd(`/whois ${NICK_T}`);
    await seesInfo(F.page, new RegExp(`WHOIS ${NICK_T} is .*Carol on TCP`), 'the whois answer');
    await cmd('/names');
    await seesInfo(F.page, new RegExp(`2 people in ${OPS}: .*${NICK_T}`), 'the names answer');
    for (const [line, mode] of [[`/op ${NICK_T}`, '+o'], [`/deop ${NICK_T}`, '-o'], [`/voice ${NICK_T}`, '+v'], [`/devoice ${NICK_T}`, '-v'], ['/mode +m', '+m']]) {
      await cmd(line);
      await tcpSees(`${line} as MODE ${mode}`, (m) => m.command === 'MODE' && m.params[0] === OPS && m.params[1] === mode, mark);
    }
    await cmd('/mode');
    await seesInfo(F.page, new RegExp(`${OPS} modes: \\+\\w*m`), 'the room modes');
    await cmd('/mode -m'); // a moderated room would silence the TCP user below
    await tcpSees('MODE -m', (m) => m.command === 'MODE' && m.params[1] === '-m', mark);
    await cmd('/topic Ops corner');
    await tcpSees('TOPIC', (m) => m.command === 'TOPIC' && m.params[1] === 'Ops corner', mark);
    await cmd('/topic');
    await seesInfo(F.page, /Topic of .*: Ops corner/, 'the topic answer');
    await cmd(`/invite ${NICK_B}`);
    await seesInfo(F.page, new RegExp(`Invited ${NICK_B} to ${OPS}`), 'the invite confirmation');
    await B.page.locator('.event-text', { hasText: `invites you to ${OPS}` }).waitFor();
    await cmd(`/msg ${NICK_T} a private word`);
    await tcpSees('/msg', (m) => m.command === 'PRIVMSG' && m.params[0] === NICK_T && m.params[1] === 'a private word', mark);
    await F.page.locator(`#tabs-rooms .tab[title="${OPS}"]`).click();
    await cmd(`/notice ${NICK_T} heads up`);
    await tcpSees('/notice', (m) => m.command === 'NOTICE' && m.params[1] === 'heads up', mark);
    await cmd('/me checks the list');
    await tcpSees('/me', (m) => m.command === 'PRIVMSG' && m.params[1] === '\x01ACTION checks the list\x01', mark);
    await cmd('/away at lunch');
    await seesInfo(F.page, /marked as away/, 'away');
    await cmd('/back');
    await seesInfo(F.page, /You are back/, 'back');
    await cmd(`/who ${OPS}`);
    await seesInfo(F.page, new RegExp(`End of the list for ${OPS}`), 'the who answer');
    await cmd(`/ban ${NICK_T}`);
    await tcpSees('/ban', (m) => m.command === 'MODE' && m.params[1] === '+b', mark);
    await cmd('/bans');
    await seesInfo(F.page, /Ban on .*\*!\*@/, 'the ban list');
    const mask = tcp.lines.slice(mark).length >= 0 && (await infoTexts(F.page)).map((t) => /Ban on \S+: (\S+)/.exec(t)).filter(Boolean).pop()[1];
    await cmd(`/unban ${mask}`);
    await tcpSees('/unban', (m) => m.command === 'MODE' && m.params[1] === '-b' && m.params[2] === mask, mark);
    await cmd(`/kick ${NICK_T} enough for now`);
    await tcpSees('/kick', (m) => m.command === 'KICK' && m.params[1] === NICK_T && m.params[2] === 'enough for now', mark);
    await cmd('/claim');
    await seesInfo(F.page, /Log in first/, 'the claim answer (a guest cannot own a room)');
    await cmd('/motd');
    await cmd('/help');
    await seesInfo(F.page, /\/kick <nick>/, 'the help');
    await sendFromPage(F.page, 'to be taken back');
    await F.page.locator('.msg.is-self:not(.is-pending)', { hasText: 'to be taken back' }).waitFor();
    await cmd('/delete');
    await F.page.locator('.msg.is-redacted', { hasText: 'Message deleted' }).waitFor();
    await cmd(`/nick ${NICK_F}x`);
    await until('F renamed', async () => (await F.page.locator('#me-nick').textContent()) === `${NICK_F}x`);
    const unknown = (await infoTexts(F.page)).filter((t) => /Unknown command/.test(t));
    if (unknown.length) throw new Error(unknown.join(' | '));
  });

  await step('the room directory lists rooms with member counts, searches, and joins by click', async () => {
    await F.page.locator('#dir-open').click();
    await F.page.locator('#rooms-dialog').waitFor({ state: 'visible' });
    const row = F.page.locator(`#dir-list .dir-room[data-room="${CHAN}"]`);
    await row.waitFor();
    if (!/\d+ people/.test(await row.locator('.dir-count').textContent())) throw new Error('no member count');
    await F.page.locator('#dir-search').fill(ROOM2);
    await until('search narrows the list', async () => {
      const names = await F.page.locator('#dir-list .dir-room:not(.dir-create) .dir-name').allTextContents();
      return names.length >= 1 && names.every((n) => n.includes(ROOM2));
    });
    await F.page.screenshot({ path: path.join(SHOTS, 'directory.png') });
    await F.page.locator(`#dir-list .dir-room[data-room="${CHAN2}"]`).click();
    await F.page.locator(`#tabs-rooms .tab[title="${CHAN2}"].is-active`).waitFor();
    await sendFromPage(F.page, '/list');
    await F.page.locator('#rooms-dialog').waitFor({ state: 'visible' });
    await F.page.keyboard.press('Escape');
    await F.page.locator('#rooms-dialog').waitFor({ state: 'hidden' });
  });

  await step('the member list works from the keyboard, and an operator moderates from it', async () => {
    await F.page.locator(`#tabs-rooms .tab[title="${OPS}"]`).click();
    tcp.send(`JOIN ${OPS}`);
    await until('the TCP user back in the list', async () => (await memberNames(F.page)).includes(NICK_T));
    const first = F.page.locator('#member-list button.member').first();
    await first.focus();
    await F.page.keyboard.press('ArrowDown');
    const focused = await F.page.evaluate(() => document.activeElement?.dataset.nick);
    if (focused !== NICK_T) throw new Error(`ArrowDown focused ${focused}`);
    await F.page.keyboard.press('Enter');
    await F.page.locator('#member-dialog').waitFor({ state: 'visible' });
    if (await F.page.locator('#member-mod').isHidden()) throw new Error('an operator gets no moderation actions');
    let mark = tcp.lines.length;
    await F.page.locator('#member-actions button[data-act="Give voice"]').click();
    await tcpSees('voice from the menu', (m) => m.command === 'MODE' && m.params[1] === '+v' && m.params[2] === NICK_T, mark);
    await F.page.locator('#member-list button.member', { hasText: NICK_T }).click();
    await F.page.locator('#member-reason').fill('menu kick');
    mark = tcp.lines.length;
    await F.page.locator('#member-kick').click();
    await tcpSees('kick from the menu', (m) => m.command === 'KICK' && m.params[2] === 'menu kick', mark);
    tcp.send(`JOIN ${OPS}`);
    await until('the TCP user back again', async () => (await memberNames(F.page)).includes(NICK_T));
  });

  await step('a mention while the tab is hidden notifies (Notification stubbed); a muted room does not', async () => {
    await F.page.evaluate(() => {
      window.__notes = [];
      window.Notification = class { constructor(title, o) { window.__notes.push({ title, body: o && o.body }); } close() {} };
      window.Notification.permission = 'granted';
      window.Notification.requestPermission = async () => 'granted';
    });
    await F.page.locator('#notify-toggle').click();
    await until('notifications on', async () => (await F.page.locator('#notify-toggle').getAttribute('aria-pressed')) === 'true');
    await F.page.evaluate(() => { Object.defineProperty(document, 'hidden', { configurable: true, get: () => true }); document.dispatchEvent(new Event('visibilitychange')); });
    tcp.send(`PRIVMSG ${OPS} :${NICK_F}x: are you there?`);
    await until('a notification', async () => (await F.page.evaluate(() => window.__notes)).some((n) => n.title.includes(NICK_T) && /are you there/.test(n.body)));
    await F.page.locator('#mute-toggle').click();
    tcp.send(`PRIVMSG ${OPS} :${NICK_F}x: and now?`);
    await seesMessage(F.page, 'and now?', 'F');
    const n = await F.page.evaluate(() => window.__notes.length);
    if (n !== 1) throw new Error(`${n} notifications; the muted room notified`);
    await F.page.locator('#mute-toggle').click();
    await F.page.evaluate(() => { delete document.hidden; document.dispatchEvent(new Event('visibilitychange')); });
  });

  await step('keyboard and text: recall, room switching, IRC formatting, www links, long paste asks', async () => {
    await sendFromPage(F.page, 'first try');
    await F.page.locator('#input').click();
    await F.page.keyboard.press('ArrowUp');
    if ((await F.page.locator('#input').inputValue()) !== 'first try') throw new Error('Up did not recall the last message');
    await F.page.locator('#input').fill('');
    const active = () => F.page.locator('#tabs-rooms .tab.is-active').getAttribute('title');
    const before = await active();
    await F.page.keyboard.press('Alt+ArrowDown');
    await until('Alt+Down switched rooms', async () => (await active()) !== before);
    await F.page.keyboard.press('Alt+ArrowUp');
    await until('Alt+Up switched back', async () => (await active()) === before);
    tcp.send(`PRIVMSG ${OPS} :\x02bold\x02 \x1ditalic\x1d \x1funder\x1f \x0304red\x03 <i>not markup</i> see www.example.com.`);
    const msg = F.page.locator('.msg', { hasText: 'not markup' });
    await msg.waitFor();
    const got = await msg.evaluate((el) => ({
      b: el.querySelector('.irc-b')?.textContent, i: el.querySelector('.irc-i')?.textContent,
      u: el.querySelector('.irc-u')?.textContent, red: el.querySelector('.irc-fg-4')?.textContent,
      tags: el.querySelectorAll('.msg-text i, .msg-text script').length,
      href: el.querySelector('a')?.getAttribute('href'), text: el.querySelector('.msg-text').textContent,
    }));
    if (got.b !== 'bold' || got.i !== 'italic' || got.u !== 'under' || got.red !== 'red' || got.tags || got.href !== 'https://www.example.com/' || /[\x02\x03\x1d\x1f]/.test(got.text)) throw new Error(JSON.stringify(got));
    const lines = Array.from({ length: 7 }, (_, i) => `pasted line ${i + 1}`).join('\n');
    await F.page.locator('#input').fill(lines);
    await F.page.locator('#input').press('Enter');
    await F.page.locator('#paste-dialog').waitFor({ state: 'visible' });
    await F.page.locator('#paste-cancel').click();
    if ((await F.page.locator('#input').inputValue()) !== lines) throw new Error('cancel lost the pasted text');
    await F.page.locator('#input').press('Enter');
    const mark = tcp.lines.length;
    await F.page.locator('#paste-send').click();
    await tcpSees('all seven lines', (m) => m.command === 'PRIVMSG' && m.params[1] === 'pasted line 7', mark);
    await until('the time beside a grouped message does not wrap', async () => F.page.evaluate(() => {
      const t = [...document.querySelectorAll('.buffer:not([hidden]) .msg-side-time')];
      return t.length > 0 && t.every((e) => getComputedStyle(e).whiteSpace === 'nowrap');
    }));
  });

  const axeScan = async (p, what) => {
    await p.evaluate(AXE + '\n;0'); // evaluate runs outside the page's CSP
    const res = await p.evaluate(() => window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
    const bad = res.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ') + ' ' + (n.failureSummary || '').split('\n').slice(1, 2).join('')).join('; ')}`);
    if (bad.length) throw new Error(`${what}: ${bad.join(' | ')}`);
  };
  await step('axe-core finds no WCAG 2.1 AA violations: chat light and dark, start screen, directory', async () => {
    await until('toasts gone', async () => (await F.page.locator('.toast').count()) === 0);
    await axeScan(F.page, 'chat, light');
    await until('D toasts gone', async () => (await D.page.locator('.toast').count()) === 0);
    await axeScan(D.page, 'chat, dark');
    await axeScan(P.page, 'start screen, phone');
    await F.page.locator('#dir-open').click();
    await F.page.locator('#dir-list .dir-room').first().waitFor();
    await axeScan(F.page, 'room directory');
    await F.page.keyboard.press('Escape');
  });

  // ---------------------------------------------------------------- login tokens (issue 15, item 4)
  await step('a logged-in browser stays logged in across a reload and a second tab, and keeps its operator status', async () => {
    const kept = await A.page.evaluate(() => localStorage.getItem('livechat.login'));
    if (!kept || !JSON.parse(kept).token) throw new Error(`no login token kept: ${kept}`);
    const stored = await A.page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    if (stored.includes(PASSWORD)) throw new Error('the password is in the browser storage');
    // A room A makes and owns, shared with the TCP user, so that it lives
    // on while A reloads: the account gets its operator status back.
    const OWNED = `#owned${sfx}`;
    await sendFromPage(A.page, `/join ${OWNED}`);
    await A.page.locator(`#tabs-rooms .tab[title="${OWNED}"].is-active`).waitFor();
    await sendFromPage(A.page, `/quote ROOM CLAIM ${OWNED}`);
    await until('the claim confirmed', async () => /now owned by/.test(await A.page.locator('#log-inner').innerText()));
    tcp.send(`JOIN ${OWNED}`);
    await tcp.wait('the TCP user in the owned room', (m) => m.command === '366' && m.params[1] === OWNED);
    await A.page.reload();
    await A.page.locator('#app').waitFor({ state: 'visible', timeout: 20000 });
    if (await A.page.locator('#start-password').isVisible()) throw new Error('the reload asked for the password');
    await until('A is logged in after the reload', async () => (await A.page.locator('#me-account').textContent()) === 'Logged in'
      && (await A.page.locator('#me-nick').textContent()) === ACCOUNT);
    await A.page.locator(`#tabs-rooms .tab[title="${OWNED}"]`).click();
    await until('A is an operator again', async () =>
      (await A.page.locator('#member-list .member', { hasText: NICK_A }).locator('.member-prefix').textContent().catch(() => '')) === '@');
    const tab2 = await A.ctx.newPage();
    tab2.on('pageerror', (e) => problems.push(`A tab 2: page error: ${e.message}`));
    await tab2.goto(URL_);
    await tab2.locator('#app').waitFor({ state: 'visible', timeout: 20000 });
    await until('the second tab is logged in', async () => (await tab2.locator('#me-account').textContent()) === 'Logged in');
    await tab2.close();
  });

  await step('a revoked login token is refused: the login form comes back with a clear message', async () => {
    await sendFromPage(A.page, '/quote TOKEN REVOKE ALL');
    await until('the revocation confirmed', async () => /Revoked \d+ login tokens/.test(await A.page.locator('#log-inner .buffer:not([hidden])').innerText()));
    await A.page.reload();
    await A.page.locator('#start-password').waitFor({ state: 'visible', timeout: 20000 });
    await until('the expired-or-revoked message', async () => /expired or was revoked/.test(await A.page.locator('#start-error').textContent() || ''));
    if (await A.page.locator('#app').isVisible()) throw new Error('the app opened with a revoked token');
    if (await A.page.locator('#start-account').inputValue() !== ACCOUNT) throw new Error('the account name is not filled in');
    if (await A.page.evaluate(() => localStorage.getItem('livechat.login'))) throw new Error('the refused token is still kept');
    // The password logs in again and a new token is kept; “Log out”
    // revokes and forgets it, so a reload stays logged out.
    await A.page.locator('#start-password').click();
    await A.page.keyboard.type(PASSWORD);
    await A.page.locator('#start-submit').click();
    await A.page.locator('#app').waitFor({ state: 'visible', timeout: 20000 });
    await until('a new token kept', async () => !!(await A.page.evaluate(() => localStorage.getItem('livechat.login'))));
    await A.page.locator('#me-button').click();
    await A.page.locator('#logout-button').click();
    await until('A is logged out', async () => (await A.page.locator('#me-account').textContent()) !== 'Logged in');
    if (await A.page.evaluate(() => localStorage.getItem('livechat.login'))) throw new Error('log out left the token');
  });

  await step('no page errors, CSP violations, dialogs or off-host requests', async () => {
    if (problems.length) throw new Error(problems.join(' | '));
  });
} catch (e) {
  // Leave evidence for whoever reads the log.
  for (const u of [A, B, C, P, D, E, F]) {
    if (!u) continue;
    try {
      await u.page.screenshot({ path: path.join(SHOTS, `failure-${u.label}.png`) });
      const log = await u.page.locator('#log-inner .buffer:not([hidden])').innerText().catch(() => '');
      console.log(`--- page ${u.label} (screenshot ${path.join(SHOTS, `failure-${u.label}.png`)}):\n${log.slice(-1500)}`);
    } catch (err) { /* closed */ }
  }
  if (problems.length) console.log('--- problems:\n' + problems.join('\n'));
  console.log('--- TCP user saw:\n' + tcp.lines.slice(-15).map((m) => `${m.source || ''} ${m.command} ${m.params.join(' | ')}`).join('\n'));
} finally {
  tcp.close();
  for (const u of [A, B, C, P, D, E, F]) { if (u) await u.ctx.close().catch(() => {}); }
  for (const d of profiles) fs.rmSync(d, { recursive: true, force: true });
}

const secs = ((Date.now() - started) / 1000).toFixed(1);
if (failures) {
  console.log(`FAIL browser test (${secs} s)`);
  process.exit(1);
}
console.log(`PASS browser test (${secs} s); screenshots in ${SHOTS}`);

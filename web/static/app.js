// livechat web client: one WebSocket to the page's own origin, one IRC
// line per text message. User text only ever reaches the DOM as text
// nodes; links are built element by element with http(s) hrefs only.
import * as irc from './irc.js';

const WANTED_CAPS = [
  'server-time', 'message-tags', 'echo-message', 'batch', 'draft/chathistory',
  'multi-prefix', 'away-notify', 'account-tag', 'account-notify', 'extended-join',
  'setname', 'standard-replies', 'draft/account-registration', 'invite-notify',
  'labeled-response', 'draft/read-marker', 'draft/message-redaction', 'draft/multiline',
];
const GROUP_GAP_MS = 5 * 60 * 1000;
const MAX_MESSAGES = 1500;
const HISTORY_PAGE = 50;
const PREFS_KEY = 'livechat.prefs';
const RESUME_KEY = 'livechat.resume';

// ---------------------------------------------------------------- DOM utils

const $ = (id) => document.getElementById(id);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const ICONS = {
  join: ['M10 17l5-5-5-5', 'M15 12H3', 'M14 4h4a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2h-4'],
  part: ['M14 17l5-5-5-5', 'M19 12H7', 'M10 4H6a2 2 0 0 0-2 2v12a2 2 0 0 0 2 2h4'],
  nick: ['M4 20h4L19 9l-4-4L4 16z', 'M13.5 6.5l4 4'],
  topic: ['M5 9h14', 'M5 15h14', 'M10 4 8 20', 'M16 4l-2 16'],
  mode: ['M12 3l7 3v6c0 4.5-3 7.5-7 9-4-1.5-7-4.5-7-9V6z'],
  error: ['M12 8v5', 'M12 16.5v.01', 'M10.3 3.9 2.4 18a2 2 0 0 0 1.7 3h15.8a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z'],
  info: ['M12 11v6', 'M12 7.5v.01', 'M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z'],
  close: ['M6 6l12 12', 'M18 6 6 18'],
  check: ['M12 2.5l2.4 1.8 3-.1.9 2.9 2.4 1.8-1 2.8 1 2.9-2.4 1.7-.9 2.9-3-.1L12 21.5l-2.4-1.8-3 .1-.9-2.9-2.4-1.7 1-2.9-1-2.8 2.4-1.8.9-2.9 3 .1z', 'M8.5 12.2l2.3 2.3 4.7-4.8'],
  at: ['M16 12a4 4 0 1 1-8 0 4 4 0 0 1 8 0z', 'M16 12v1.5a2.5 2.5 0 0 0 5 0V12a9 9 0 1 0-3.5 7.1'],
  trash: ['M4 7h16', 'M10 11v6', 'M14 11v6', 'M6 7l1 13h10l1-13', 'M9 7V4h6v3'],
};

function icon(name, cls) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  if (cls) svg.setAttribute('class', cls);
  for (const d of ICONS[name] || []) {
    const p = document.createElementNS(NS, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

// nickSlot gives each nick one of the 16 colour slots: its hash slot if
// that is free and not next to another nick's, else the free slot farthest
// (around the colour wheel) from those taken, so the people in view get
// distinct colours (a hash alone gave two of three users the same teal).
// Slots are handed out once per page load, so a nick keeps its colour.
const nickSlots = new Map();
const slotUse = new Array(16).fill(0);
function nickSlot(nick) {
  const key = irc.fold(nick);
  let slot = nickSlots.get(key);
  if (slot !== undefined) return slot;
  const want = irc.nickColor(nick);
  const dist = (a, b) => Math.min((a - b + 16) % 16, (b - a + 16) % 16);
  const score = (c) => {
    let near = 16;
    for (let t = 0; t < 16; t++) if (slotUse[t]) near = Math.min(near, dist(c, t));
    return near;
  };
  slot = want;
  if (score(want) < 2) {
    // The least used slot, farthest from the others; the hash breaks ties.
    let best = -1;
    for (let k = 0; k < 16; k++) {
      const c = (want + k) % 16;
      const v = score(c) * 100 - slotUse[c] * 1000;
      if (best < 0 || v > best) { best = v; slot = c; }
    }
  }
  slotUse[slot]++;
  nickSlots.set(key, slot);
  return slot;
}

function avatar(nick, cls = '') {
  const letter = (nick.replace(/^[^A-Za-z0-9]+/, '')[0] || nick[0] || '?');
  return h('span', { class: `avatar ${cls} nc-${nickSlot(nick)}`, 'aria-hidden': 'true', text: letter });
}

function nickSpan(nick, cls = '') {
  return h('span', { class: `nick-c nc-${nickSlot(nick)} ${cls}`, text: nick });
}

// richText renders message text: mIRC bold/italic/underline/colours as
// spans with classes (never markup from the text), http(s) and www. links
// made with DOM calls, everything else a text node.
function richText(text) {
  const frag = document.createDocumentFragment();
  for (const f of irc.parseFormatting(text)) {
    const cls = [];
    if (f.bold) cls.push('irc-b');
    if (f.italic) cls.push('irc-i');
    if (f.underline) cls.push('irc-u');
    if (f.strike) cls.push('irc-s');
    if (f.mono) cls.push('irc-m');
    if (f.fg != null) cls.push(`irc-fg irc-fg-${f.fg}`);
    if (f.bg != null) cls.push(`irc-bg irc-bg-${f.bg}`);
    const into = cls.length ? h('span', { class: cls.join(' ') }) : frag;
    for (const seg of irc.linkify(f.text)) {
      if (seg.href) {
        const a = document.createElement('a');
        a.href = seg.href;
        a.target = '_blank';
        a.rel = 'noopener noreferrer nofollow';
        a.textContent = seg.text;
        into.append(a);
      } else {
        into.append(document.createTextNode(seg.text));
      }
    }
    if (into !== frag) frag.append(into);
  }
  return frag;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const dayKey = (t) => { const d = new Date(t); return d.getFullYear() * 400 + d.getMonth() * 32 + d.getDate(); };
function dayLabel(t) {
  const k = dayKey(t);
  const now = Date.now();
  if (k === dayKey(now)) return 'Today';
  if (k === dayKey(now - 864e5)) return 'Yesterday';
  return dayFmt.format(new Date(t));
}

function toast(text, kind = '') {
  const el = h('div', { class: `toast ${kind ? 'is-' + kind : ''}`, role: kind === 'error' ? 'alert' : 'status', text });
  $('toasts').append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 6000 : 3500);
}

function loadJSON(store, key) {
  try { return JSON.parse(store.getItem(key) || 'null'); } catch (e) { return null; }
}
function saveJSON(store, key, v) {
  try { if (v == null) store.removeItem(key); else store.setItem(key, JSON.stringify(v)); } catch (e) { /* private mode */ }
}

// ---------------------------------------------------------------- state

const S = {
  ws: null,
  phase: 'idle', // idle | connecting | caps | registering | online | closed
  intent: null, // {mode, nick, rooms, account, password, resumed}
  nick: '',
  account: '',
  password: null, // kept in memory only, to log in again after a reconnect
  userHost: '',
  offered: new Map(),
  caps: new Set(),
  capsOutstanding: 0,
  isupport: { prefixModes: 'ov', prefixChars: '@+', listModes: 'be', alwaysArg: 'k', setArg: 'l', chathistory: 100 },
  buffers: new Map(),
  active: null,
  batches: new Map(),
  multilineSeq: 0, // draft/multiline batch references we send
  auth: null, // {kind: login|register, from: start|dialog, name, timer}
  focusOnJoin: new Set(),
  userClosed: false,
  reconnectTimer: null,
  reconnectAt: 0,
  reconnectAttempt: 0,
  closeReason: '',
  lastRx: 0,
  pingSent: 0,
  atBottom: true,
  hiddenUnread: 0,
  typingSent: 0,
  nickFallback: 0,
  welcomed: false,
  labelSeq: 0,
  queries: new Map(), // label -> {b, kind, limit}: our CHATHISTORY requests
};

const hasCap = (c) => S.caps.has(c);
const isMe = (nick) => nick != null && irc.fold(nick) === irc.fold(S.nick);
const isRoom = (name) => typeof name === 'string' && name[0] === '#';

// ---------------------------------------------------------------- buffers

function getBuffer(name) { return S.buffers.get(irc.fold(name)); }

function ensureBuffer(name, type) {
  let b = getBuffer(name);
  if (b) return b;
  b = {
    key: irc.fold(name), name, type, // room | query
    messages: [], ids: new Set(), pending: [],
    members: new Map(), namesPending: false,
    topic: '', joined: false, closing: false,
    unread: 0, mention: false,
    // draft/read-marker: the time of the last message read, as the server
    // keeps it for the account (0: none); known once the server said.
    marker: 0, markerKnown: false, markTimer: null,
    typing: new Map(),
    noMoreHistory: false, loadingHistory: false, historyKnown: false,
    scroll: { atBottom: true, fromBottom: 0 },
    listEl: h('div', { class: 'buffer', hidden: true, role: 'log', 'aria-live': 'polite', 'data-buffer': name }),
    tabEl: null,
  };
  S.buffers.set(b.key, b);
  $('log-inner').append(b.listEl);
  buildTab(b);
  renderBuffer(b);
  if (!S.active) activate(b);
  // A room's marker comes with its JOIN; a conversation's is asked for.
  if (type === 'query' && markersOn()) send('MARKREAD', [name]);
  saveResume();
  return b;
}

function removeBuffer(b) {
  const list = orderedBuffers();
  const idx = list.indexOf(b);
  S.buffers.delete(b.key);
  b.listEl.remove();
  b.tabEl?.remove();
  if (S.active === b) {
    S.active = null;
    const next = list[idx + 1] || list[idx - 1];
    if (next && next !== b) activate(next);
    else renderChrome();
  }
  updateDmHead();
  updateTitle();
  saveResume();
}

function renameBuffer(b, newName) {
  S.buffers.delete(b.key);
  b.key = irc.fold(newName);
  b.name = newName;
  b.listEl.dataset.buffer = newName;
  const clash = S.buffers.get(b.key);
  if (clash && clash !== b) removeBuffer(clash);
  S.buffers.set(b.key, b);
  buildTab(b);
  if (S.active === b) renderChrome();
}

function orderedBuffers() {
  const rooms = [...S.buffers.values()].filter((b) => b.type === 'room');
  const dms = [...S.buffers.values()].filter((b) => b.type === 'query');
  return rooms.concat(dms);
}

function buildTab(b) {
  const old = b.tabEl;
  const close = h('button', {
    class: 'tab-close', type: 'button', title: b.type === 'room' ? 'Leave room' : 'Close conversation',
    'aria-label': (b.type === 'room' ? 'Leave ' : 'Close ') + b.name,
    onclick: (e) => { e.stopPropagation(); closeBuffer(b); },
  }, icon('close'));
  const lead = b.type === 'room'
    ? h('span', { class: 'tab-hash', text: '#' })
    : avatar(b.name, 'avatar-xs');
  const name = h('span', { class: 'tab-name', text: b.type === 'room' ? b.name.slice(1) : b.name });
  const badge = h('span', { class: 'badge', hidden: true });
  // A row is two buttons side by side, the room and its close button (a
  // button inside a tab would be a control nested in a control); the open
  // one is aria-current.
  const label = h('button', { type: 'button', class: 'tab-label' }, lead, name, badge, h('span', { class: 'sr-only tab-unread', text: ' unread' }), h('span', { class: 'sr-only tab-muted', text: ', muted' }));
  const li = h('li', {
    class: 'tab', 'data-key': b.key, title: b.name,
    onclick: () => { activate(b); closeDrawers(); },
  }, label, close);
  b.tabEl = li;
  b.tabLabel = label;
  b.tabBadge = badge;
  if (old) old.replaceWith(li);
  else (b.type === 'room' ? $('tabs-rooms') : $('tabs-dms')).append(li);
  updateTab(b);
  updateDmHead();
}

function updateTab(b) {
  if (!b.tabEl) return;
  b.tabEl.classList.toggle('is-active', S.active === b);
  if (S.active === b) b.tabLabel.setAttribute('aria-current', 'true');
  else b.tabLabel.removeAttribute('aria-current');
  b.tabEl.querySelector('.tab-muted').hidden = !isMuted(b);
  b.tabEl.classList.toggle('is-unread', b.unread > 0);
  b.tabEl.classList.toggle('is-parted', b.type === 'room' && !b.joined && S.phase === 'online');
  b.tabBadge.hidden = b.unread === 0;
  b.tabBadge.textContent = b.unread > 99 ? '99+' : String(b.unread);
  b.tabBadge.classList.toggle('is-mention', b.mention);
  b.tabEl.querySelector('.tab-unread').hidden = b.unread === 0;
}

function updateDmHead() {
  $('dm-head').hidden = ![...S.buffers.values()].some((b) => b.type === 'query');
}

function updateTitle() {
  let total = S.hiddenUnread;
  let mention = false;
  // With read markers the open tab has unread messages too, while the
  // page is hidden or unfocused.
  for (const b of S.buffers.values()) { if (b !== S.active || fromMarker(b)) total += b.unread; mention ||= b.mention; }
  const room = S.active ? S.active.name + ' · ' : '';
  document.title = (total ? `(${total}) ` : '') + room + 'livechat';
  const other = [...S.buffers.values()].filter((b) => b !== S.active).reduce((n, b) => n + b.unread, 0);
  const badge = $('rooms-toggle-badge');
  badge.hidden = other === 0;
  badge.textContent = other > 99 ? '99+' : String(other);
  badge.classList.toggle('is-mention', mention);
}

function activate(b) {
  const log = $('log');
  if (S.active && S.active !== b) {
    S.active.scroll = { atBottom: S.atBottom, fromBottom: log.scrollHeight - log.scrollTop };
    S.active.listEl.hidden = true;
    const prev = S.active;
    S.active = b;
    updateTab(prev);
  }
  S.active = b;
  b.listEl.hidden = false;
  if (fromMarker(b)) markRead(b);
  else { b.unread = 0; b.mention = false; }
  updateTab(b);
  renderChrome();
  if (b.scroll.atBottom) scrollToBottom();
  else log.scrollTop = log.scrollHeight - b.scroll.fromBottom;
  onScroll();
  updateTitle();
  saveResume();
  if (matchMedia('(pointer: fine)').matches) $('input').focus();
}

function renderChrome() {
  const b = S.active;
  const noBuffer = !b;
  $('room-name').textContent = b ? b.name : 'No room';
  $('room-topic').textContent = b ? (b.type === 'room' ? (b.topic ? irc.stripFormatting(b.topic) : '') : 'Direct message') : 'Join a room to start chatting';
  $('room-topic').title = b && b.topic ? irc.stripFormatting(b.topic) : '';
  $('members-toggle').hidden = !b || b.type !== 'room';
  $('input').placeholder = b ? (b.type === 'room' ? `Message ${b.name}` : `Message ${b.name}`) : 'Join a room first';
  $('input').disabled = noBuffer || S.phase !== 'online';
  $('send').disabled = noBuffer || S.phase !== 'online';
  renderMembers();
  renderTyping();
  renderNotifyControls();
  if (noBuffer) {
    let empty = $('no-buffer');
    if (!empty) {
      empty = h('div', { class: 'empty', id: 'no-buffer' });
      $('log-inner').append(empty);
    }
    empty.textContent = '';
    if (S.focusOnJoin.size) empty.append(h('strong', { text: 'Joining…' }));
    else empty.append(h('strong', { text: 'You are not in any room' }), 'Use the + next to Rooms to join one, or type /join lobby below.');
    $('input').disabled = S.phase !== 'online';
    $('send').disabled = S.phase !== 'online';
  } else {
    $('no-buffer')?.remove();
  }
  if (b && b.type === 'room') {
    const hash = '#' + encodeURIComponent(b.name.slice(1));
    if (location.hash !== hash) history.replaceState(null, '', location.pathname + location.search + hash);
  }
}

function closeBuffer(b) {
  if (b.type === 'room' && b.joined && S.phase === 'online') {
    b.closing = true;
    send('PART', [b.name]);
    // The PART echo removes it; if the server is slow, don't leave the tab hanging.
    setTimeout(() => { if (S.buffers.get(b.key) === b && b.closing) removeBuffer(b); }, 4000);
  } else {
    removeBuffer(b);
  }
}

// ---------------------------------------------------------------- read markers

// IRCv3 draft/read-marker: a logged-in user's clients share, per room and
// conversation, the time of the last message read. Unread counts are the
// messages newer than it, so a reload or a second device shows the same
// counts; guests (who have no marker) count what arrives while they look
// elsewhere, as before.
const markersOn = () => hasCap('draft/read-marker') && !!S.account;
const fromMarker = (b) => markersOn() && b.markerKnown;
const countsAsUnread = (m) => m.kind === 'msg' || m.kind === 'action' || m.kind === 'notice';

// reading: the user can see the open tab (the page is visible and focused).
const reading = () => !document.hidden && document.hasFocus();

// recount derives a buffer's badge from its marker.
function recount(b) {
  if (!fromMarker(b)) return;
  let n = 0;
  let mention = false;
  for (const m of b.messages) {
    if (!countsAsUnread(m) || m.self || m.pending || m.redacted || m.time <= b.marker) continue;
    n++;
    if (m.mention || b.type === 'query') mention = true;
  }
  b.unread = n;
  b.mention = mention;
  updateTab(b);
  updateTitle();
}

// markRead moves the marker to the newest message of the open tab when
// the user is looking at it, and tells the server (once per burst).
function markRead(b) {
  if (!b || !fromMarker(b)) return;
  if (S.active === b && reading() && S.phase === 'online') {
    let newest = 0;
    for (const m of b.messages) if (m.kind !== 'event' && !m.pending && !m.failed && m.time > newest) newest = m.time;
    if (newest > b.marker) {
      b.marker = newest;
      clearTimeout(b.markTimer);
      b.markTimer = setTimeout(() => {
        b.markTimer = null;
        if (S.buffers.get(b.key) === b) send('MARKREAD', [b.name, 'timestamp=' + new Date(b.marker).toISOString()]);
      }, 250);
    }
  }
  recount(b);
}

// askMarkers (re)learns every buffer's marker, after logging in.
function askMarkers() {
  if (!markersOn()) return;
  for (const b of S.buffers.values()) {
    b.markerKnown = false;
    send('MARKREAD', [b.name]);
  }
}

// ---------------------------------------------------------------- messages

function makeMessage(fields) {
  return Object.assign({ kind: 'msg', id: null, time: Date.now(), nick: '', account: null, bot: false, text: '', self: false, pending: false, failed: false, mention: false, el: null }, fields);
}

function mentions(text) {
  if (!S.nick) return false;
  const esc = S.nick.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const word = 'A-Za-z0-9_\\-\\[\\]{}\\\\|^`';
  return new RegExp(`(^|[^${word}])${esc}($|[^${word}])`, 'i').test(text);
}

// addMessage puts a message into its buffer in time order. live means it
// just happened (counts as unread, may scroll); history does not.
function addMessage(b, m, { live = true } = {}) {
  m.buf = b;
  if (m.id) {
    if (b.ids.has(m.id)) return false;
    b.ids.add(m.id);
  }
  const wasAtBottom = S.active === b && S.atBottom;
  const last = b.messages[b.messages.length - 1];
  if (!last || last.time <= m.time || m.pending) {
    b.messages.push(m);
    if (b.messages.length > MAX_MESSAGES) { b.messages.splice(0, b.messages.length - MAX_MESSAGES); renderBuffer(b); }
    else appendNode(b, m, last);
  } else {
    let i = b.messages.length;
    while (i > 0 && b.messages[i - 1].time > m.time) i--;
    b.messages.splice(i, 0, m);
    renderBuffer(b);
  }
  if (fromMarker(b)) {
    if (live) markRead(b);
  } else if (live && countsAsUnread(m) && !m.self) {
    if (S.active !== b) {
      b.unread++;
      if (m.mention || b.type === 'query') b.mention = true;
      updateTab(b);
    } else if (document.hidden) {
      S.hiddenUnread++;
    }
    updateTitle();
  }
  if (S.active === b) {
    if (wasAtBottom || m.self) scrollToBottom();
    else if (live && m.kind !== 'event') $('jump').hidden = false;
  }
  return true;
}

function event(b, iconName, parts, { time = Date.now(), cls = '', live = true } = {}) {
  return addMessage(b, makeMessage({ kind: 'event', icon: iconName, parts, time, cls }), { live });
}

function errorLine(text, b = S.active) {
  if (b) event(b, 'error', [text], { cls: 'is-error' });
  else toast(text, 'error');
}

function infoLine(text, b = S.active) {
  if (b) event(b, 'info', [text]);
  else toast(text);
}

function renderBuffer(b) {
  const el = b.listEl;
  el.textContent = '';
  if (wantsMoreButton(b)) {
    el.append(h('button', {
      class: 'btn btn-small more', type: 'button', text: b.loadingHistory ? 'Loading…' : 'Load earlier messages',
      disabled: b.loadingHistory, onclick: () => loadEarlier(b),
    }));
  }
  if (!b.messages.some((m) => m.kind !== 'event')) {
    el.append(h('div', { class: 'empty' },
      h('strong', { text: b.type === 'room' ? `Welcome to ${b.name}` : `Conversation with ${b.name}` }),
      b.type === 'room' ? 'No messages yet. Say hello!' : 'Messages here are only seen by the two of you.'));
  }
  let prev = null;
  for (const m of b.messages) {
    const node = renderItem(m, prev);
    el.append(node);
    prev = m;
  }
}

function appendNode(b, m, prev) {
  b.listEl.querySelector(':scope > .empty')?.remove();
  if (wantsMoreButton(b) && !b.listEl.querySelector(':scope > .more')) {
    renderBuffer(b);
    return;
  }
  b.listEl.append(renderItem(m, prev));
}

function groupable(m) { return m.kind === 'msg' || m.kind === 'notice'; }

function renderItem(m, prev) {
  const frag = document.createDocumentFragment();
  if (!prev || dayKey(prev.time) !== dayKey(m.time)) {
    frag.append(h('div', { class: 'day', role: 'separator', text: dayLabel(m.time) }));
    prev = null;
  }
  let node;
  if (m.kind === 'event') {
    const text = h('span', { class: 'event-text' });
    for (const p of m.parts) {
      if (typeof p === 'string') text.append(document.createTextNode(p));
      else if (p.nick) text.append(h('b', null, nickSpan(p.nick)));
      else if (p.strong) text.append(h('b', { text: p.strong }));
      else if (p.rich) text.append(richText(p.rich));
    }
    text.append(h('span', { class: 'msg-time', title: fullFmt.format(new Date(m.time)), text: timeFmt.format(new Date(m.time)) }));
    node = h('div', { class: `event ${m.cls || ''} is-${m.icon}` }, h('span', { class: 'event-icon' }, icon(m.icon)), text);
  } else {
    const first = !(prev && groupable(prev) && groupable(m) && irc.fold(prev.nick) === irc.fold(m.nick) && prev.bot === m.bot &&
      m.time - prev.time < GROUP_GAP_MS && !prev.failed);
    const cls = ['msg', `is-${m.kind}`];
    if (first) cls.push('is-first');
    if (m.pending) cls.push('is-pending');
    if (m.failed) cls.push('is-failed');
    if (m.mention && !m.redacted) cls.push('is-mention');
    if (m.self) cls.push('is-self');
    if (m.redacted) cls.push('is-redacted');
    if (m.deleting) cls.push('is-deleting');
    node = h('div', { class: cls.join(' '), 'data-msgid': m.id || null, 'data-nick': m.nick });
    const t = new Date(m.time);
    const timeEl = h('time', { class: 'msg-time', datetime: t.toISOString(), title: fullFmt.format(t), text: timeFmt.format(t) });
    const body = m.redacted
      ? h('div', { class: 'msg-text', text: redactedText(m) })
      : h('div', { class: 'msg-text' }, richText(m.text));
    if (first || m.kind === 'action') {
      node.append(avatar(m.nick));
      const head = h('div', { class: 'msg-head' }, nickSpan(m.nick, 'msg-nick'));
      if (m.account) head.append(h('span', { title: `Logged in as ${m.account}`, class: 'verified-wrap' }, icon('check', 'verified')));
      if (m.bot) head.append(h('span', { class: 'tag-bot', title: `${m.nick} is a bot`, text: 'bot' }));
      head.append(timeEl);
      if (m.kind === 'notice') head.append(h('span', { class: 'tag-guest', text: 'notice' }));
      node.append(head);
    } else {
      node.append(h('span', { class: 'msg-side-time', title: fullFmt.format(t), text: timeFmt.format(t) }));
    }
    node.append(body);
    if (canDelete(m)) {
      node.append(h('button', {
        class: 'msg-delete', type: 'button', title: 'Delete message', 'aria-label': 'Delete message',
        disabled: m.deleting, onclick: () => deleteMessage(m),
      }, icon('trash')));
    }
    if (m.failed) node.append(h('div', { class: 'msg-failed-note', text: typeof m.failed === 'string' ? m.failed : 'Not delivered' }));
    node.querySelectorAll('.msg-nick').forEach((n) => n.addEventListener('click', () => openQuery(m.nick)));
  }
  m.el = node;
  frag.append(node);
  return frag;
}

// redactedText says who removed a message, and why if they said.
function redactedText(m) {
  const { by, reason } = m.redacted;
  const who = !by || irc.fold(by) === irc.fold(m.nick) ? 'Message deleted' : `Message removed by ${by}`;
  return reason ? `${who}: ${irc.stripFormatting(reason)}` : who;
}

// canDelete: one's own messages, and in a room one operates anyone's; the
// server decides in the end (draft/message-redaction).
function canDelete(m) {
  const b = m.buf;
  if (!b || !m.id || m.redacted || m.pending || !hasCap('draft/message-redaction')) return false;
  if (m.self) return true;
  const me = b.type === 'room' && b.members.get(irc.fold(S.nick));
  return !!(me && me.prefixes.includes('@'));
}

function deleteMessage(m) {
  const b = m.buf;
  if (!b || S.phase !== 'online' || !send('REDACT', [b.name, m.id])) return;
  m.deleting = true;
  rerenderMessage(b, m);
}

function rerenderMessage(b, m) {
  const idx = b.messages.indexOf(m);
  if (idx < 0 || !m.el) return;
  const old = m.el;
  const frag = renderItem(m, b.messages[idx - 1] || null);
  // Only the message node itself is replaced; a day separator it may
  // bring along already exists before it.
  old.replaceWith(m.el);
  void frag;
}

// ---------------------------------------------------------------- scrolling

function scrollToBottom() {
  const log = $('log');
  log.scrollTop = log.scrollHeight;
  S.atBottom = true;
  $('jump').hidden = true;
}

function onScroll() {
  const log = $('log');
  S.atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  if (S.atBottom) $('jump').hidden = true;
}

// ---------------------------------------------------------------- members

function rank(prefixes) {
  if (!prefixes) return S.isupport.prefixChars.length;
  let r = S.isupport.prefixChars.length;
  for (const c of prefixes) r = Math.min(r, S.isupport.prefixChars.indexOf(c));
  return r < 0 ? S.isupport.prefixChars.length : r;
}

function renderMembers() {
  const b = S.active;
  const list = $('member-list');
  list.textContent = '';
  const count = b && b.type === 'room' ? b.members.size : 0;
  $('members-count').textContent = String(count);
  $('members-toggle').setAttribute('aria-label', `${count} members`);
  $('members-count-2').textContent = String(count);
  if (!b || b.type !== 'room') return;
  const members = [...b.members.values()].sort((x, y) => rank(x.prefixes) - rank(y.prefixes) || irc.fold(x.nick).localeCompare(irc.fold(y.nick)));
  let lastGroup = null;
  for (const mem of members) {
    const r = rank(mem.prefixes);
    const groupOf = (rr) => (rr === 0 ? 'Operators' : rr < S.isupport.prefixChars.length ? 'Voiced' : 'Online');
    const group = groupOf(r);
    if (group !== lastGroup) {
      const n = members.filter((x) => groupOf(rank(x.prefixes)) === group).length;
      list.append(h('li', { class: 'member-group', text: `${group} — ${n}` }));
      lastGroup = group;
    }
    // A button per member: reachable with Tab, arrows move between them,
    // and Enter opens the member's menu (message, whois, moderation).
    const btn = h('button', {
      type: 'button', class: `member ${mem.away ? 'is-away' : ''}`, 'data-nick': mem.nick,
      title: mem.away ? `${mem.nick} is away` : mem.nick,
      onclick: () => openMemberMenu(b, mem.nick),
      onkeydown: memberKeys,
    },
    h('span', { class: 'member-avatar' }, avatar(mem.nick, 'avatar-xs'),
      mem.prefixes ? h('span', { class: 'member-prefix', 'aria-hidden': 'true', text: mem.prefixes[0] }) : null),
    h('span', { class: 'member-name' }, nickSpan(mem.nick)),
    mem.prefixes ? h('span', { class: 'sr-only', text: mem.prefixes[0] === '@' ? ', operator' : ', voiced' }) : null,
    mem.away ? h('span', { class: 'member-you', text: 'away' }) : null,
    mem.bot ? h('span', { class: 'tag-bot', title: `${mem.nick} is a bot`, text: 'bot' }) : null,
    isMe(mem.nick) ? h('span', { class: 'member-you', text: 'you' }) : null);
    list.append(h('li', null, btn));
  }
}

// memberKeys: Up/Down/Home/End move between the member buttons.
function memberKeys(e) {
  const all = [...document.querySelectorAll('#member-list button.member')];
  const i = all.indexOf(e.currentTarget);
  let j = -1;
  if (e.key === 'ArrowDown') j = Math.min(all.length - 1, i + 1);
  else if (e.key === 'ArrowUp') j = Math.max(0, i - 1);
  else if (e.key === 'Home') j = 0;
  else if (e.key === 'End') j = all.length - 1;
  if (j < 0) return;
  e.preventDefault();
  all[j].focus();
}

// Member lists re-render at most once a frame: a big room's NAMES or a
// burst of joins costs one rebuild.
let membersFrame = 0;
function memberUpdated(b) {
  if (S.active !== b || membersFrame) return;
  membersFrame = requestAnimationFrame(() => { membersFrame = 0; renderMembers(); });
}

function splitPrefixes(entry) {
  let i = 0;
  while (i < entry.length && S.isupport.prefixChars.includes(entry[i])) i++;
  let nick = entry.slice(i);
  const bang = nick.indexOf('!');
  if (bang >= 0) nick = nick.slice(0, bang);
  return { prefixes: entry.slice(0, i), nick };
}

function forRoomsWith(nick, fn) {
  const key = irc.fold(nick);
  for (const b of S.buffers.values()) {
    if (b.type === 'room' && b.members.has(key)) fn(b, b.members.get(key));
  }
}

// ---------------------------------------------------------------- typing

function renderTyping() {
  const b = S.active;
  const el = $('typing');
  if (!b) { el.textContent = ''; return; }
  const now = Date.now();
  const nicks = [...b.typing.entries()].filter(([, until]) => until > now).map(([n]) => n);
  el.textContent = nicks.length === 0 ? '' : nicks.length === 1 ? `${nicks[0]} is typing…` :
    nicks.length === 2 ? `${nicks[0]} and ${nicks[1]} are typing…` : 'Several people are typing…';
}
setInterval(() => {
  const now = Date.now();
  for (const b of S.buffers.values()) for (const [n, until] of b.typing) if (until <= now) b.typing.delete(n);
  renderTyping();
}, 1000);

function sendTyping(state) {
  const b = S.active;
  if (!b || S.phase !== 'online' || !hasCap('message-tags')) return;
  if (b.type === 'room' && !b.joined) return;
  const now = Date.now();
  if (state === 'active') {
    if (now - S.typingSent < 3000) return;
    S.typingSent = now;
  } else {
    if (!S.typingSent) return;
    S.typingSent = 0;
  }
  send('TAGMSG', [b.name], { '+typing': state });
}

// ---------------------------------------------------------------- connection

function wsURL() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
}

function send(command, params = [], tags = null) {
  if (!S.ws || S.ws.readyState !== WebSocket.OPEN) return false;
  const line = irc.formatLine(command, params, tags);
  S.ws.send(line);
  return true;
}

function connect(intent) {
  clearTimeout(S.reconnectTimer);
  S.reconnectTimer = null;
  if (S.ws) { const old = S.ws; S.ws = null; try { old.close(); } catch (e) { /* gone */ } }
  S.intent = intent;
  S.phase = 'connecting';
  S.userClosed = false;
  S.closeReason = '';
  S.offered = new Map();
  S.caps = new Set();
  S.capsOutstanding = 0;
  S.batches.clear();
  S.welcomed = false;
  S.nickFallback = 0;
  S.auth = null;
  let ws;
  try {
    ws = new WebSocket(wsURL(), ['text.ircv3.net']);
  } catch (e) {
    onConnectFailed('Could not open a connection: ' + e.message);
    return;
  }
  ws.binaryType = 'arraybuffer';
  S.ws = ws;
  const dec = new TextDecoder();
  const openTimer = setTimeout(() => { if (S.ws === ws && S.phase === 'connecting') ws.close(); }, 15000);
  ws.onopen = () => {
    if (S.ws !== ws) return;
    clearTimeout(openTimer);
    S.phase = 'caps';
    S.lastRx = Date.now();
    send('CAP', ['LS', '302']);
  };
  ws.onmessage = (ev) => {
    if (S.ws !== ws) return;
    S.lastRx = Date.now();
    const data = typeof ev.data === 'string' ? ev.data : dec.decode(ev.data);
    for (const line of data.split(/\r?\n/)) {
      if (!line) continue;
      let msg;
      try { msg = irc.parseLine(line); } catch (e) { console.warn('unparsable line', line, e); continue; }
      try { handle(msg); } catch (e) { console.error('handling', line, e); }
    }
  };
  ws.onclose = (ev) => {
    clearTimeout(openTimer);
    if (S.ws !== ws) return;
    S.ws = null;
    onClosed(ev);
  };
  ws.onerror = () => { /* onclose follows */ };
}

function onClosed(ev) {
  const wasOnline = S.welcomed;
  const phase = S.phase;
  S.phase = 'closed';
  for (const b of S.buffers.values()) { b.joined = false; b.members.clear(); b.typing.clear(); }
  clearAuth();
  if (S.userClosed) return;
  const reason = S.closeReason || (ev && ev.reason) || (phase === 'connecting' ? 'could not reach the server' : 'the connection was lost');
  if (!isAppShown()) {
    setStartBusy(false);
    showStartError(phase === 'connecting' ? 'Could not connect to the chat server. Check your connection and try again.' : `Disconnected: ${reason}`);
    return;
  }
  if (wasOnline) infoLine(`Disconnected: ${reason}`);
  renderChrome();
  for (const b of S.buffers.values()) updateTab(b);
  scheduleReconnect(reason);
}

function onConnectFailed(text) {
  S.phase = 'closed';
  setStartBusy(false);
  showStartError(text);
}

function scheduleReconnect(reason) {
  const delay = Math.min(30000, 1000 * 2 ** Math.min(S.reconnectAttempt, 5));
  S.reconnectAttempt++;
  S.reconnectAt = Date.now() + delay;
  clearTimeout(S.reconnectTimer);
  S.reconnectTimer = setTimeout(reconnectNow, delay);
  showBanner(reason);
}

function showBanner(reason) {
  const banner = $('banner');
  banner.hidden = false;
  banner.classList.remove('is-info');
  const tick = () => {
    if (!S.reconnectTimer) return;
    const secs = Math.max(0, Math.ceil((S.reconnectAt - Date.now()) / 1000));
    $('banner-text').textContent = `Disconnected (${reason}). Reconnecting in ${secs}s…`;
    setTimeout(tick, 500);
  };
  tick();
  $('banner-action').hidden = false;
}

function hideBanner() { $('banner').hidden = true; }

function reconnectIntent() {
  const rooms = [...S.buffers.values()].filter((b) => b.type === 'room').map((b) => b.name);
  const active = S.active ? S.active.name : null;
  if (S.account && loginToken) return tokenIntent(loginToken, rooms, active);
  if (S.account && S.password) return { mode: 'login', account: S.account, password: S.password, rooms, nick: '', active, resumed: true };
  return { mode: 'guest', nick: S.nick || (S.intent && S.intent.nick) || '', rooms, active, resumed: true };
}

function reconnectNow() {
  clearTimeout(S.reconnectTimer);
  S.reconnectTimer = null;
  $('banner-text').textContent = 'Reconnecting…';
  $('banner-action').hidden = true;
  connect(reconnectIntent());
}

// keepalive: a connection that has gone quiet is probed, then replaced.
setInterval(() => {
  if (S.phase !== 'online' || !S.ws) return;
  const quiet = Date.now() - S.lastRx;
  if (quiet > 150000) { S.closeReason = 'no answer from the server'; S.ws.close(); }
  else if (quiet > 90000 && Date.now() - S.pingSent > 60000) { S.pingSent = Date.now(); send('PING', ['lc-' + Date.now()]); }
}, 10000);

// ---------------------------------------------------------------- registration

function requestCaps() {
  const want = WANTED_CAPS.filter((c) => S.offered.has(c));
  if (want.length === 0) { finishCaps(); return; }
  S.capsOutstanding = 1;
  send('CAP', ['REQ', want.join(' ')]);
}

function finishCaps() {
  if (S.phase !== 'caps') return;
  S.phase = 'registering';
  const it = S.intent;
  if (it.mode === 'guest' && it.nick) send('NICK', [it.nick]);
  send('USER', ['web', '0', '*', 'livechat web']);
  send('CAP', ['END']);
  // Without a nick the first real command makes this connection a guest
  // (see docs/PROTOCOL.md): the join itself, or the login/registration.
  if (it.mode === 'login') startAuth('login', 'start', it.account, it.password);
  else if (it.mode === 'register') startAuth('register', 'start', it.account, it.password);
  else if (it.mode === 'token') startAuth('token', 'start', it.account, it.token);
  else if (!it.nick) joinRooms(it.rooms);
}

function startAuth(kind, from, name, password) {
  clearAuth();
  S.auth = { kind, from, name, password, timer: setTimeout(() => authFailed('The server did not answer. Try again.'), 20000) };
  if (kind === 'token') send('TOKEN', ['LOGIN', name, password]);
  else if (kind === 'login') send('LOGIN', [name, password]);
  else if (from === 'start') send('REGISTER', [name, password]); // the netcat form: also makes us a guest first
  else send('REGISTER', [name, '*', password]); // IRCv3 draft/account-registration
}

function clearAuth() {
  if (S.auth) clearTimeout(S.auth.timer);
  S.auth = null;
}

function authSucceeded(account) {
  const a = S.auth;
  clearAuth();
  S.account = account;
  if (a && a.kind !== 'token') { S.password = a.password; askLoginToken(); }
  updateMe();
  if (!a) return;
  if (a.from === 'start') {
    if (!S.intent.resumed) savePrefs({ mode: 'login', account });
    enterApp();
    if (a.kind === 'register') toast(`Account ${account} created. You are logged in.`, 'ok');
    joinRooms(S.intent.rooms);
  } else {
    closeAccountDialog();
    toast(a.kind === 'register' ? `Account ${account} created. You are logged in.` : `Logged in as ${account}.`, 'ok');
  }
  saveResume();
}

function authFailed(text, code) {
  if (code === 'INVALID_TOKEN' && S.auth && S.auth.kind === 'token') { tokenRefused(); return; }
  const a = S.auth;
  clearAuth();
  if (!a) return;
  if (a.from === 'start') {
    if (S.intent && S.intent.resumed && isAppShown()) {
      // An automatic re-login failed: carry on as a guest.
      S.password = null;
      S.account = '';
      updateMe();
      errorLine(`Could not log in again: ${text}`);
      joinRooms(S.intent.rooms);
      return;
    }
    S.userClosed = true;
    send('QUIT', ['Login failed']);
    try { S.ws && S.ws.close(); } catch (e) { /* gone */ }
    setStartBusy(false);
    showStartError(text);
    $('start-password').select();
  } else {
    showAccountError(text);
  }
}

function joinRooms(rooms) {
  const list = (rooms || []).map(irc.roomName).filter(Boolean);
  if (list.length === 0) return;
  for (const r of list) S.focusOnJoin.add(irc.fold(r));
  // JOIN takes a comma list; keep each line well inside 512 bytes.
  let batch = [];
  for (const r of list) {
    if (batch.length && irc.byteLength(batch.concat(r).join(',')) > 400) { send('JOIN', [batch.join(',')]); batch = []; }
    batch.push(r);
  }
  if (batch.length) send('JOIN', [batch.join(',')]);
  // Reopen the tab the user was last looking at when its JOIN returns.
  S.focusOnJoin = new Set([irc.fold(S.intent && S.intent.active ? S.intent.active : list[0])]);
}

function onWelcome(nick) {
  S.nick = nick;
  S.welcomed = true;
  S.phase = 'online';
  S.reconnectAttempt = 0;
  hideBanner();
  updateMe();
  const it = S.intent;
  if (it.mode === 'guest') {
    if (!it.resumed) savePrefs({ mode: 'guest', nick: it.nick });
    enterApp();
    if (it.nick) joinRooms(it.rooms);
    if (S.nickFallback && it.nick) infoLine(`The nickname ${it.nick} was taken, so you are ${nick}.`);
  }
  for (const b of S.buffers.values()) updateTab(b);
  renderChrome();
  saveResume();
}

// ---------------------------------------------------------------- incoming

function serverTime(m) {
  const t = m.tags.time ? Date.parse(m.tags.time) : NaN;
  return Number.isFinite(t) ? t : Date.now();
}

const handlers = {};

function handle(m) {
  if (m.tags.batch && S.batches.has(m.tags.batch) && m.command !== 'BATCH') {
    const batch = S.batches.get(m.tags.batch);
    if (batch.type === 'chathistory' || batch.type === 'draft/multiline') { batch.lines.push(m); return; }
  }
  const fn = handlers[m.command];
  if (fn) { fn(m); return; }
  if (/^[45]\d\d$/.test(m.command)) { genericError(m); return; }
}

handlers.PING = (m) => send('PONG', m.params.length ? [m.params[m.params.length - 1]] : []);
handlers.PONG = () => {};

handlers.ERROR = (m) => {
  S.closeReason = m.params[0] || 'closed by the server';
};
handlers.ACK = () => {};

handlers.CAP = (m) => {
  const sub = (m.params[1] || '').toUpperCase();
  const list = () => (m.params[m.params.length - 1] || '').split(' ').filter(Boolean);
  if (sub === 'LS') {
    for (const c of list()) {
      const eq = c.indexOf('=');
      S.offered.set(eq < 0 ? c : c.slice(0, eq), eq < 0 ? '' : c.slice(eq + 1));
    }
    if (m.params[2] === '*' && m.params.length > 3) return; // more to come
    if (S.phase === 'caps') requestCaps();
  } else if (sub === 'ACK') {
    for (const c of list()) { if (c[0] === '-') S.caps.delete(c.slice(1)); else S.caps.add(c); }
    if (--S.capsOutstanding <= 0) finishCaps();
  } else if (sub === 'NAK') {
    const caps = list();
    S.capsOutstanding--;
    // REQ is all-or-nothing: ask for each one alone so that one refusal
    // does not cost the rest.
    if (caps.length > 1) {
      for (const c of caps) { S.capsOutstanding++; send('CAP', ['REQ', c]); }
    }
    if (S.capsOutstanding <= 0) finishCaps();
  } else if (sub === 'NEW') {
    const want = list().map((c) => c.split('=')[0]).filter((c) => WANTED_CAPS.includes(c) && !S.caps.has(c));
    for (const c of list()) S.offered.set(c.split('=')[0], c.split('=')[1] || '');
    if (want.length && S.phase === 'online') send('CAP', ['REQ', want.join(' ')]);
  } else if (sub === 'DEL') {
    for (const c of list()) { S.caps.delete(c); S.offered.delete(c); }
  }
};

handlers['001'] = (m) => onWelcome(m.params[0]);

handlers['005'] = (m) => {
  for (const tok of m.params.slice(1, -1)) {
    const [k, v = ''] = tok.split('=');
    if (k === 'PREFIX') {
      const mm = /^\(([^)]*)\)(.*)$/.exec(v);
      if (mm) { S.isupport.prefixModes = mm[1]; S.isupport.prefixChars = mm[2]; }
    } else if (k === 'CHANMODES') {
      const [a = '', b = '', c = ''] = v.split(',');
      S.isupport.listModes = a; S.isupport.alwaysArg = b; S.isupport.setArg = c;
    } else if (k === 'CHATHISTORY') {
      S.isupport.chathistory = parseInt(v, 10) || 100;
    }
  }
};

function nickError(m) {
  const nick = m.params[1] || '';
  const text = m.params[m.params.length - 1] || 'That nickname cannot be used';
  if (!S.welcomed && S.phase === 'registering') {
    const it = S.intent;
    if (m.command === '433' && it.nick && !/registered/i.test(text) && S.nickFallback < 4) {
      // Taken by someone connected: try a variant, as IRC clients do.
      S.nickFallback++;
      const base = it.nick.slice(0, 26);
      const alt = S.nickFallback === 1 ? base + '_' : base + Math.floor(10 + Math.random() * 990);
      send('NICK', [alt]);
      return;
    }
    if (it.resumed && isAppShown()) {
      // Reconnecting with a nick we lost: become a guest instead.
      it.nick = '';
      joinRooms(it.rooms);
      return;
    }
    S.userClosed = true;
    try { S.ws && S.ws.close(); } catch (e) { /* gone */ }
    setStartBusy(false);
    showStartError(/registered/i.test(text)
      ? `The nickname ${nick} belongs to an account. Log in to use it, or pick another.`
      : m.command === '432' ? `“${nick}” is not a valid nickname. ${text.replace(/^Erroneous nickname:\s*/i, 'Use ')}.` : text);
    return;
  }
  if ($('account-dialog').open) showAccountError(text);
  else errorLine(`${nick}: ${text}`);
}
handlers['431'] = nickError;
handlers['432'] = nickError;
handlers['433'] = nickError;
handlers['437'] = nickError;

handlers['451'] = () => {};

handlers['900'] = (m) => {
  const account = m.params[2];
  const p = irc.parseSource(m.params[1] || '');
  if (p.user && p.host) S.userHost = `${p.user}@${p.host}`;
  if (S.auth) authSucceeded(account);
  else { S.account = account; updateMe(); }
  askMarkers();
};
handlers['901'] = () => {
  S.account = '';
  S.password = null;
  forgetLoginToken(false);
  updateMe();
  saveResume();
  infoLine('You are logged out.');
};
handlers['903'] = () => {};

handlers.REGISTER = (m) => {
  if ((m.params[0] || '').toUpperCase() === 'SUCCESS' && S.auth) S.auth.registered = m.params[1];
};

handlers.FAIL = (m) => {
  const [cmd = '', code = ''] = m.params;
  const desc = m.params[m.params.length - 1] || code;
  if ((cmd === 'LOGIN' || cmd === 'REGISTER' || cmd === 'TOKEN') && S.auth) { authFailed(friendlyAuthError(cmd, code, desc), code); return; }
  if (cmd === 'TOKEN') return; // a server without tokens: the page keeps the password in memory as before
  if (cmd === 'CHATHISTORY') {
    if (m.tags.label) S.queries.delete(m.tags.label);
    const target = m.params[3] || m.params[2];
    const b = target && getBuffer(target);
    if (b) { b.loadingHistory = false; b.noMoreHistory = true; renderBuffer(b); }
    return;
  }
  if (cmd === 'PRIVMSG' || cmd === 'NOTICE') {
    const b = m.params.length > 3 ? getBuffer(m.params[2]) : null;
    failPending(b || S.active, desc);
    return;
  }
  if (cmd === 'MARKREAD') return; // best effort: the counts stay local
  if (cmd === 'REDACT') {
    const b = getBuffer(m.params[2] || '');
    const msg = b && b.messages.find((x) => x.id === m.params[3]);
    if (msg) { msg.deleting = false; rerenderMessage(b, msg); }
    errorLine(code === 'REDACT_FORBIDDEN' ? 'You can only delete your own messages.' : desc, b || S.active);
    return;
  }
  errorLine(desc);
};
handlers.WARN = (m) => infoLine(m.params[m.params.length - 1]);

handlers.MARKREAD = (m) => {
  const [target = '', ts = ''] = m.params;
  const b = getBuffer(target);
  if (!b) return;
  const t = ts.startsWith('timestamp=') ? Date.parse(ts.slice(10)) : 0;
  b.markerKnown = true;
  if (Number.isFinite(t) && t > b.marker) b.marker = t; // only forward, whatever order answers come in
  markRead(b);
};

// draft/message-redaction: a message someone took back (or an operator
// removed) is shown as removed wherever it is; the server has dropped it
// from history, so a reload does not bring it back.
handlers.REDACT = (m) => {
  const [target = '', id = '', reason = ''] = m.params;
  // msgids are unique across the server, so another connection of ours
  // (under another nick) finds its copy wherever it is.
  let b = isRoom(target) ? getBuffer(target) : getBuffer(isMe(m.nick) ? target : m.nick);
  if (!isRoom(target) && !(b && b.ids.has(id))) b = [...S.buffers.values()].find((x) => x.type === 'query' && x.ids.has(id));
  const msg = b && b.messages.find((x) => x.id === id);
  if (!msg) return; // the spec: a msgid we never saw is ignored
  msg.redacted = { by: m.nick || '', reason };
  msg.deleting = false;
  msg.mention = false;
  rerenderMessage(b, msg);
  recount(b);
};
handlers.NOTE = () => {};

function friendlyAuthError(cmd, code, desc) {
  switch (code) {
    case 'INVALID_CREDENTIALS': return 'Wrong account name or password.';
    case 'ACCOUNT_EXISTS': return desc && /in use/.test(desc) ? desc : 'That account name is already taken. Pick another, or log in.';
    case 'BAD_ACCOUNT_NAME': return 'Account names use letters, digits and -_[]{}\\|^` (not starting with a digit, - or guest-), at most 30 characters.';
    case 'WEAK_PASSWORD': return desc || 'That password is too weak.';
    case 'RATE_LIMITED': return desc || 'Too many attempts; wait a little and try again.';
    case 'ALREADY_AUTHENTICATED': return desc || 'You are already logged in.';
    case 'INVALID_TOKEN': return 'Your saved login has expired or was revoked. Log in with your password.';
    case 'TEMPORARILY_UNAVAILABLE': return desc || 'Accounts are not available right now; try again soon.';
    default: return desc || `${cmd} failed (${code}).`;
  }
}

handlers.BATCH = (m) => {
  const ref = m.params[0] || '';
  if (ref[0] === '+') {
    const outer = m.tags.batch && S.batches.get(m.tags.batch);
    const label = m.tags.label || (outer && outer.label) || null;
    S.batches.set(ref.slice(1), { type: m.params[1], params: m.params.slice(2), lines: [], label, start: m });
  } else if (ref[0] === '-') {
    const batch = S.batches.get(ref.slice(1));
    S.batches.delete(ref.slice(1));
    if (batch && batch.type === 'chathistory') applyHistory(batch);
    if (batch && batch.type === 'draft/multiline') applyMultiline(batch);
  }
};

// applyMultiline shows a draft/multiline batch as the one message it is:
// the batch start carries the msgid, time and account, the lines the text.
function applyMultiline(batch) {
  const first = batch.lines[0];
  if (!first) return;
  const start = batch.start;
  const lines = batch.lines.map((l) => ({ text: l.params[1] || '', concat: 'draft/multiline-concat' in l.tags }));
  const tags = { ...start.tags };
  delete tags.batch;
  const m = { ...start, tags, command: first.command, params: [batch.params[0] || '', irc.joinMultiline(lines)] };
  const outer = start.tags.batch && S.batches.get(start.tags.batch);
  if (outer) { outer.lines.push(m); return; } // a message in a history batch
  handle(m);
}

function historyMessage(m) {
  if (m.command !== 'PRIVMSG' && m.command !== 'NOTICE') return null;
  const text = m.params[1] || '';
  const action = irc.ctcpAction(text);
  if (action == null && text[0] === '\x01') return null;
  return makeMessage({
    kind: action != null ? 'action' : m.command === 'NOTICE' ? 'notice' : 'msg',
    id: m.tags.msgid || null, time: serverTime(m), nick: m.nick || '', account: m.tags.account || null, bot: isBot(m),
    text: action != null ? action : text, self: isMe(m.nick), mention: !isMe(m.nick) && mentions(text),
  });
}

function applyHistory(batch) {
  const target = batch.params[0];
  if (!target) return;
  const b = isRoom(target) ? getBuffer(target) : ensureBuffer(target, 'query');
  if (!b) return;
  const query = batch.label ? S.queries.get(batch.label) : null;
  if (batch.label) S.queries.delete(batch.label);
  let added = 0;
  const log = $('log');
  const fromBottom = log.scrollHeight - log.scrollTop;
  const wasAtBottom = S.atBottom;
  const msgs = batch.lines.map(historyMessage).filter(Boolean);
  const refId = query && /^msgid=/.test(query.ref) ? query.ref.slice(6) : null;
  added = mergeHistory(b, msgs, {
    beforeId: query && query.kind === 'before' ? refId : null,
    afterId: query && query.kind === 'after' ? refId : null,
  });
  if (query && query.b === b && (query.kind === 'latest' || query.kind === 'before')) {
    b.historyKnown = true;
    if (batch.lines.length < query.limit) b.noMoreHistory = true;
  } else if (!query && b.loadingHistory && added === 0) {
    b.noMoreHistory = true;
  }
  b.loadingHistory = false;
  renderBuffer(b);
  if (S.active === b) {
    if (wasAtBottom) scrollToBottom();
    else log.scrollTop = log.scrollHeight - fromBottom;
  }
  markRead(b); // history newer than the marker is unread
}

// queryHistory sends a CHATHISTORY request. With labeled-response its
// answer carries our label, which ties it to the request (the room, the
// kind, the page size) when several are in flight.
function queryHistory(b, kind, ref) {
  if (!hasCap('draft/chathistory') || S.phase !== 'online') return;
  const limit = Math.min(HISTORY_PAGE, S.isupport.chathistory);
  let tags = null;
  if (hasCap('labeled-response')) {
    const label = 'h' + (++S.labelSeq);
    S.queries.set(label, { b, kind, limit, ref });
    tags = { label };
  } else if (kind === 'latest') {
    b.historyKnown = true; // cannot tell the answers apart: keep the button
  }
  send('CHATHISTORY', [kind.toUpperCase(), b.name, ref, String(limit)], tags);
}

// mergeHistory inserts a batch (oldest first) into the buffer. Timestamps
// have millisecond resolution and often tie, so the batch is placed by its
// anchors (messages already shown, or the query's reference), and by time
// only where it has none. Returns how many messages were new.
function mergeHistory(b, msgs, { beforeId = null, afterId = null } = {}) {
  const list = b.messages;
  const posOf = (id) => (id ? list.findIndex((x) => x.id === id) : -1);
  const present = msgs.map((m) => !!(m.id && b.ids.has(m.id)));
  const firstAnchor = present.indexOf(true);
  let added = 0;
  const insert = (j, m) => { m.buf = b; list.splice(j, 0, m); if (m.id) b.ids.add(m.id); added++; };
  // New messages before the first anchor go in front of it, newest first.
  let tail = firstAnchor >= 0 ? posOf(msgs[firstAnchor].id) : posOf(beforeId);
  const leadEnd = firstAnchor >= 0 ? firstAnchor : tail >= 0 ? msgs.length : 0;
  for (let k = leadEnd - 1; k >= 0; k--) {
    let j = tail;
    while (j > 0 && list[j - 1].time > msgs[k].time) j--;
    insert(j, msgs[k]);
    tail = j;
  }
  // The rest follow the message before them in the batch.
  let pos = posOf(afterId);
  for (let k = leadEnd; k < msgs.length; k++) {
    const m = msgs[k];
    if (present[k] || (m.id && b.ids.has(m.id))) { pos = posOf(m.id); continue; }
    let j;
    if (pos < 0) {
      j = list.length;
      while (j > 0 && list[j - 1].time > m.time) j--;
    } else {
      j = pos + 1;
      while (j < list.length && list[j].time < m.time) j++;
    }
    insert(j, m);
    pos = j;
  }
  return added;
}

function loadEarlier(b) {
  const oldest = b.messages.find((m) => m.id && !m.pending);
  if (!oldest || S.phase !== 'online') return;
  b.loadingHistory = true;
  renderBuffer(b);
  queryHistory(b, 'before', 'msgid=' + oldest.id);
}

function wantsMoreButton(b) {
  return b.type === 'room' && hasCap('draft/chathistory') && b.historyKnown && !b.noMoreHistory && b.messages.some((m) => m.id);
}

handlers.JOIN = (m) => {
  const room = m.params[0];
  if (isMe(m.nick)) {
    if (m.user && m.host) S.userHost = `${m.user}@${m.host}`;
    const existed = getBuffer(room);
    const b = ensureBuffer(room, 'room');
    if (b.name !== room) { b.name = room; buildTab(b); }
    const rejoin = existed && existed.messages.some((x) => x.id);
    b.joined = true;
    b.closing = false;
    b.historyAsked = false;
    b.members.clear();
    b.topic = b.topic || '';
    updateTab(b);
    b.rejoined = !!rejoin;
    if (rejoin) event(b, 'join', ['You are back in ', { strong: b.name }], { time: serverTime(m) });
    if (S.focusOnJoin.has(b.key)) { S.focusOnJoin.delete(b.key); activate(b); } else if (S.active === b) renderChrome();
    saveResume();
    return;
  }
  const b = getBuffer(room);
  if (!b) return;
  const account = hasCap('extended-join') && m.params[1] && m.params[1] !== '*' ? m.params[1] : null;
  b.members.set(irc.fold(m.nick), { nick: m.nick, prefixes: '', away: false, account });
  memberUpdated(b);
  event(b, 'join', [{ nick: m.nick }, ' joined'], { time: serverTime(m) });
};

handlers.PART = (m) => {
  const b = getBuffer(m.params[0]);
  if (!b) return;
  const reason = m.params[1];
  if (isMe(m.nick)) {
    b.joined = false;
    b.members.clear();
    if (b.closing) { removeBuffer(b); return; }
    event(b, 'part', ['You left ', { strong: b.name }], { time: serverTime(m) });
    updateTab(b);
    memberUpdated(b);
    return;
  }
  b.members.delete(irc.fold(m.nick));
  b.typing.delete(m.nick);
  memberUpdated(b);
  event(b, 'part', [{ nick: m.nick }, ' left', reason ? ` (${reason})` : ''], { time: serverTime(m) });
};

handlers.QUIT = (m) => {
  const reason = m.params[0] || '';
  forRoomsWith(m.nick, (b) => {
    b.members.delete(irc.fold(m.nick));
    b.typing.delete(m.nick);
    memberUpdated(b);
    event(b, 'part', [{ nick: m.nick }, ' left the chat', reason && reason !== 'Quit' && reason !== 'Quit:' ? ` (${reason.replace(/^Quit: /, '')})` : ''], { time: serverTime(m) });
  });
  const q = getBuffer(m.nick);
  if (q && q.type === 'query') event(q, 'part', [{ nick: m.nick }, ' left the chat'], { time: serverTime(m) });
};

handlers.KICK = (m) => {
  const [room, who, reason] = m.params;
  const b = getBuffer(room);
  if (!b) return;
  if (isMe(who)) {
    b.joined = false;
    b.members.clear();
    memberUpdated(b);
    updateTab(b);
    event(b, 'error', ['You were removed from ', { strong: room }, ' by ', { nick: m.nick || 'the server' }, reason ? `: ${reason}` : ''], { cls: 'is-error', time: serverTime(m) });
    return;
  }
  b.members.delete(irc.fold(who));
  memberUpdated(b);
  event(b, 'part', [{ nick: who }, ' was removed by ', { nick: m.nick || 'the server' }, reason ? ` (${reason})` : ''], { time: serverTime(m) });
};

handlers.NICK = (m) => {
  const old = m.nick;
  const nu = m.params[0];
  if (!old || !nu) return;
  const me = isMe(old);
  if (me) { S.nick = nu; updateMe(); saveResume(); }
  forRoomsWith(old, (b, mem) => {
    b.members.delete(irc.fold(old));
    mem.nick = nu;
    b.members.set(irc.fold(nu), mem);
    b.typing.delete(old);
    memberUpdated(b);
    event(b, 'nick', me ? ['You are now known as ', { nick: nu }] : [{ nick: old }, ' is now known as ', { nick: nu }], { time: serverTime(m) });
  });
  const q = getBuffer(old);
  if (q && q.type === 'query' && !me) {
    renameBuffer(q, nu);
    event(q, 'nick', [{ nick: old }, ' is now known as ', { nick: nu }], { time: serverTime(m) });
  }
};

handlers.MODE = (m) => {
  const target = m.params[0];
  if (!isRoom(target)) return;
  const b = getBuffer(target);
  if (!b) return;
  const changes = irc.parseModes(m.params[1] || '', m.params.slice(2), S.isupport);
  const setter = m.nick || m.source || 'The server';
  for (const c of changes) {
    const pi = S.isupport.prefixModes.indexOf(c.mode);
    if (pi >= 0 && c.arg) {
      const mem = b.members.get(irc.fold(c.arg));
      const ch = S.isupport.prefixChars[pi];
      if (mem) {
        let p = mem.prefixes.replace(ch, '');
        if (c.add) p = [...(p + ch)].sort((x, y) => S.isupport.prefixChars.indexOf(x) - S.isupport.prefixChars.indexOf(y)).join('');
        mem.prefixes = p;
      }
      const what = c.mode === 'o' ? (c.add ? ' made ' : ' removed operator status from ') : c.mode === 'v' ? (c.add ? ' gave voice to ' : ' took voice from ') : ` set ${c.add ? '+' : '-'}${c.mode} on `;
      event(b, 'mode', [{ nick: setter }, what, { nick: c.arg }, c.mode === 'o' && c.add ? ' an operator' : ''], { time: serverTime(m) });
    } else {
      event(b, 'mode', [{ nick: setter }, ` set mode ${c.add ? '+' : '-'}${c.mode}${c.arg ? ' ' + c.arg : ''}`], { time: serverTime(m) });
    }
  }
  memberUpdated(b);
};

handlers.TOPIC = (m) => {
  const b = getBuffer(m.params[0]);
  if (!b) return;
  b.topic = m.params[1] || '';
  if (S.active === b) renderChrome();
  event(b, 'topic', b.topic ? [{ nick: m.nick || 'The server' }, ' changed the topic to ', { rich: b.topic }] : [{ nick: m.nick }, ' cleared the topic'], { time: serverTime(m), cls: 'is-topic' });
};
handlers['331'] = (m) => {
  const b = getBuffer(m.params[1]);
  if (asked.topic.delete(irc.fold(m.params[1] || ''))) infoLine(`${m.params[1]} has no topic.`, b || S.active);
  if (b) { b.topic = ''; if (S.active === b) renderChrome(); }
};
handlers['332'] = (m) => {
  const b = getBuffer(m.params[1]);
  if (!b) return;
  b.topic = m.params[2] || ''; // shown in the header; changes get an event line
  if (asked.topic.delete(b.key)) infoLine(`Topic of ${b.name}: ${irc.stripFormatting(b.topic)}`, b);
  if (S.active === b) renderChrome();
};
handlers['333'] = () => {};

handlers['353'] = (m) => {
  const want = asked.names.get(irc.fold(m.params[2] || ''));
  if (want) want.push(...(m.params[3] || '').split(' ').filter(Boolean));
  const b = getBuffer(m.params[2]);
  if (!b) return;
  if (!b.namesPending) { b.members.clear(); b.namesPending = true; }
  for (const entry of (m.params[3] || '').split(' ').filter(Boolean)) {
    const { prefixes, nick } = splitPrefixes(entry);
    const old = b.members.get(irc.fold(nick));
    b.members.set(irc.fold(nick), { nick, prefixes, away: old ? old.away : false, account: old ? old.account : null });
  }
};
handlers['366'] = (m) => {
  const want = asked.names.get(irc.fold(m.params[1] || ''));
  if (want) {
    asked.names.delete(irc.fold(m.params[1] || ''));
    infoLine(`${want.length} ${want.length === 1 ? 'person' : 'people'} in ${m.params[1]}: ${want.join(', ') || 'nobody'}`, getBuffer(m.params[1]) || S.active);
  }
  const b = getBuffer(m.params[1]);
  if (!b) return;
  b.namesPending = false;
  memberUpdated(b);
  if (!b.joined || b.historyAsked) return;
  b.historyAsked = true;
  // With draft/chathistory a JOIN replays nothing: a first join asks for
  // the latest page, and a rejoin after a disconnect for what was said
  // meanwhile.
  const last = [...b.messages].reverse().find((x) => x.id && !x.pending);
  if (b.rejoined && last) queryHistory(b, 'after', 'msgid=' + last.id);
  else queryHistory(b, 'latest', '*');
};

handlers.AWAY = (m) => {
  const away = m.params.length > 0;
  forRoomsWith(m.nick, (b, mem) => { mem.away = away; memberUpdated(b); });
};
handlers.ACCOUNT = (m) => {
  const acct = m.params[0] === '*' ? null : m.params[0];
  forRoomsWith(m.nick, (b, mem) => { mem.account = acct; });
};
handlers.SETNAME = () => {};
handlers.INVITE = (m) => {
  if (!isMe(m.params[0])) return;
  infoLine(`${m.nick} invites you to ${m.params[1]}. Type /join ${m.params[1]} to accept.`);
};

handlers.TAGMSG = (m) => {
  const typing = m.tags['+typing'];
  if (!typing || isMe(m.nick)) return;
  const target = m.params[0];
  const b = isRoom(target) ? getBuffer(target) : getBuffer(m.nick);
  if (!b) return;
  if (typing === 'active') b.typing.set(m.nick, Date.now() + 6000);
  else b.typing.delete(m.nick);
  if (S.active === b) renderTyping();
};

function onMessage(m, kind) {
  const target = m.params[0] || '';
  const text = m.params[1] || '';
  const fromServer = !m.nick || (m.nick && !m.user && !m.host && m.source && m.source.includes('.'));
  if (fromServer || target === '*') {
    if (/^You are \S+\. Type HELP/.test(text)) return; // the netcat hint
    if (S.welcomed) infoLine(text);
    return;
  }
  const me = isMe(m.nick);
  let name;
  if (isRoom(target)) name = target;
  else if (me) name = target;
  else name = m.nick;
  let b = getBuffer(name);
  if (!b) {
    if (isRoom(name)) return;
    b = ensureBuffer(name, 'query');
  }
  const action = irc.ctcpAction(text);
  if (action == null && text[0] === '\x01') return; // other CTCP: not shown
  b.typing.delete(m.nick);
  if (S.active === b) renderTyping();
  if (me && hasCap('echo-message')) {
    const p = b.pending.find((x) => x.raw === text);
    if (p) {
      b.pending.splice(b.pending.indexOf(p), 1);
      clearTimeout(p.timer);
      p.pending = false;
      p.failed = false;
      p.id = m.tags.msgid || null;
      if (p.id) { if (b.ids.has(p.id)) return; b.ids.add(p.id); }
      p.time = serverTime(m);
      p.account = m.tags.account || null;
      rerenderMessage(b, p);
      markRead(b);
      return;
    }
  }
  const msg = makeMessage({
    kind: action != null ? 'action' : kind === 'NOTICE' ? 'notice' : 'msg',
    id: m.tags.msgid || null, time: serverTime(m), nick: m.nick, account: m.tags.account || null, bot: isBot(m),
    text: action != null ? action : text, self: me, mention: !me && mentions(text),
  });
  markBot(b, m);
  addMessage(b, msg);
  if (msg.mention && document.hidden) notifyTitle();
  notifyMessage(b, msg);
}
// isBot: the sender is in bot mode (user mode +B); the server tags its
// messages with "bot" (IRCv3 bot-mode).
const isBot = (m) => m.tags.bot !== undefined;

// markBot remembers that a room member is a bot, for the member list.
function markBot(b, m) {
  const mem = isBot(m) && b.type === 'room' ? b.members.get(irc.fold(m.nick)) : null;
  if (!mem || mem.bot) return;
  mem.bot = true;
  if (S.active === b) renderMembers();
}
handlers.PRIVMSG = (m) => onMessage(m, 'PRIVMSG');
handlers.NOTICE = (m) => onMessage(m, 'NOTICE');

function notifyTitle() { updateTitle(); }

// Numerics that are answers we need not show.
for (const n of ['002', '003', '004', '250', '251', '252', '253', '254', '255', '265', '266', '375', '372', '376', '422', '324', '329', '315', '352', '354', '318', '311', '312', '317', '319', '330', '378', '671', '704', '705', '706', '221', '396']) handlers[n] = handlers[n] || (() => {});
handlers['305'] = () => infoLine('You are back.');
handlers['306'] = () => infoLine('You are marked as away.');
handlers['341'] = (m) => infoLine(`Invited ${m.params[1]} to ${m.params[2]}.`);

function failPending(b, text) {
  if (!b) return;
  const p = b.pending.shift();
  if (p) { clearTimeout(p.timer); p.pending = false; p.failed = text || 'Not delivered'; rerenderMessage(b, p); }
  else errorLine(text, b);
}

function genericError(m) {
  const text = m.params[m.params.length - 1] || `Error ${m.command}`;
  const subject = m.params.length > 2 ? m.params[1] : null;
  const b = subject ? getBuffer(subject) : null;
  switch (m.command) {
    case '404': case '401': case '411': case '412':
      failPending(b || S.active, text);
      return;
    case '403': case '405': case '470': case '471': case '473': case '474': case '475': case '476': case '477': {
      if (subject) S.focusOnJoin.delete(irc.fold(subject));
      if (!S.active) renderChrome();
      const why = { '470': `it sends you to ${m.params[2]} (+f)`, '471': 'it is full', '473': 'it is invite-only', '474': 'you are banned', '475': 'it needs a key (/join room key)', '477': 'only logged-in users may join it (log in first)' }[m.command];
      if (b && b.type === 'room' && !b.joined) errorLine(`Could not join ${subject}: ${why || text}`, b);
      else if (b && b.pending.length) failPending(b, text);
      else if (S.active) errorLine(why ? `Could not join ${subject}: ${why}` : `${subject}: ${text}`);
      else toast(why ? `Could not join ${subject}: ${why}` : `${subject}: ${text}`, 'error');
      return;
    }
    case '442':
      if (b) { b.joined = false; b.closing ? removeBuffer(b) : updateTab(b); }
      return;
    case '482': errorLine(`${subject}: you need to be an operator for that.`, b || S.active); return;
    default:
      errorLine(subject && !/^[*]$/.test(subject) && !text.includes(subject) ? `${subject}: ${text}` : text, b || S.active);
  }
}

// ---------------------------------------------------------------- sending

function maxTextBytes(target, prefixLen = 0) {
  // The server relays ":nick!user@host PRIVMSG target :text\r\n" in 512.
  const source = `:${S.nick}!${S.userHost || 'x'.repeat(10) + '@' + 'x'.repeat(63)} `;
  return Math.max(60, 510 - irc.byteLength(source + `PRIVMSG ${target} :`) - prefixLen - 4);
}

// sendMultiline sends a paste of several lines as one draft/multiline
// message, shown as one message here and by clients that take the batch
// (the server sends others the lines one by one). false: it is one line,
// or passes the server's limits, and goes out line by line.
function sendMultiline(b, text) {
  const lines = irc.multilineLines(text, maxTextBytes(b.name), irc.multilineLimits(S.offered.get('draft/multiline')));
  if (!lines) return false;
  const ref = 'ml' + (++S.multilineSeq);
  const ok = send('BATCH', ['+' + ref, 'draft/multiline', b.name]) &&
    lines.every((l) => send('PRIVMSG', [b.name, l.text], l.concat ? { batch: ref, 'draft/multiline-concat': '' } : { batch: ref })) &&
    send('BATCH', ['-' + ref]);
  if (!ok) { errorLine('Not connected.', b); return true; }
  const joined = irc.joinMultiline(lines);
  const msg = makeMessage({ kind: 'msg', nick: S.nick, account: S.account || null, text: joined, self: true, raw: joined });
  trackPending(b, msg);
  addMessage(b, msg, { live: false });
  return true;
}

// trackPending waits for the server's echo of a message we sent, and marks
// it failed if none comes.
function trackPending(b, msg) {
  if (!hasCap('echo-message')) return;
  msg.pending = true;
  msg.timer = setTimeout(() => {
    if (!msg.pending) return;
    const i = b.pending.indexOf(msg);
    if (i >= 0) b.pending.splice(i, 1);
    msg.pending = false;
    msg.failed = 'No confirmation from the server';
    rerenderMessage(b, msg);
  }, 20000);
  b.pending.push(msg);
}

function sendText(b, text, { action = false } = {}) {
  if (!b) { errorLine('Join a room first: /join lobby'); return; }
  if (b.type === 'room' && !b.joined) { errorLine(`You are not in ${b.name}. Type /join ${b.name} to join again.`, b); return; }
  if (!action && hasCap('draft/multiline') && hasCap('batch') && sendMultiline(b, text)) return;
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  for (const line of lines) {
    for (const piece of irc.splitText(line, maxTextBytes(b.name, action ? 9 : 0))) {
      const raw = action ? `\x01ACTION ${piece}\x01` : piece;
      if (!send('PRIVMSG', [b.name, raw])) { errorLine('Not connected.', b); return; }
      const msg = makeMessage({ kind: action ? 'action' : 'msg', nick: S.nick, account: S.account || null, text: piece, self: true, raw });
      trackPending(b, msg);
      addMessage(b, msg, { live: false });
    }
  }
}

function openQuery(nick) {
  if (!nick || isMe(nick) || isRoom(nick)) return null;
  const existed = getBuffer(nick);
  const b = ensureBuffer(nick, 'query');
  activate(b);
  if (!existed) queryHistory(b, 'latest', '*');
  return b;
}

function joinRoom(input, key) {
  const name = irc.roomName(input);
  if (!name) { toast('Room names cannot contain spaces or commas.', 'error'); return false; }
  const b = getBuffer(name);
  if (b && b.joined) { activate(b); return true; }
  S.focusOnJoin.add(irc.fold(name));
  send('JOIN', key ? [name, key] : [name]);
  return true;
}

// Every command the server has (daemon/commands.go), as a person types
// it in the page; the room is the open one unless a #room is given.
const HELP = [
  '/join <room> [key] — join a room (the # is optional); /list [search] — browse the rooms',
  '/part [reason] — leave this room; /close — close this tab',
  '/msg <nick|room> <text> — private message; /query <nick> opens a conversation; /notice <target> <text>',
  '/me <action> — say something in the third person',
  '/nick <name> — change your nickname; /away [message], /back',
  '/whois <nick> — who someone is; /who <room|mask>; /names [room] — who is in a room',
  '/topic [text] — show or set the topic (operators set it)',
  '/op, /deop, /voice, /devoice <nick> — room roles (operators)',
  '/kick <nick> [reason], /ban <nick|mask>, /unban <mask>, /bans — moderation (operators)',
  '/mode [+|-modes args] — show or change room modes (i m n t k l b e o v); /invite <nick> [room]',
  '/claim, /drop — own this room with your account so it is kept, or release it',
  '/delete — take back your last message here',
  '/login <account> <password>, /register <account> <password>, /logout (all: every device); /setname <real name>; /oper <name> <password>',
  '/motd, /clear, /quit [reason]; /quote <raw IRC line> — send a command as is',
  'Keys: ↑ recalls your last message, Alt+↑/↓ switch rooms, Ctrl+K finds a room, Tab completes nicks',
];

// Replies the page shows only because the user asked for them (the page
// itself sends NAMES, MODE and the like quietly).
const asked = {
  whois: new Map(), // folded nick -> lines
  names: new Map(), // folded room -> nicks
  who: new Set(), modes: new Set(), bans: new Set(), topic: new Set(),
  motd: false, list: null,
};

// roomArg takes a leading #room from args, else the open room.
function roomArg(args, cmd) {
  if (args[0] && isRoom(args[0])) return args.shift();
  const b = S.active;
  if (b && b.type === 'room') return b.name;
  errorLine(`/${cmd}: open a room first, or name one: /${cmd} #room …`);
  return null;
}

function runCommand(text) {
  const m = /^\/(\S+)\s*(.*)$/s.exec(text);
  if (!m) return;
  const cmd = m[1].toLowerCase();
  const rest = m[2].trim();
  const args = rest.split(/\s+/).filter(Boolean);
  const b = S.active;
  const usage = (u) => errorLine(`Usage: ${u}`);
  switch (cmd) {
    case 'join': case 'j':
      if (!args[0]) { usage('/join <room> [key]'); return; }
      for (const r of args[0].split(',')) joinRoom(r, args[1]);
      return;
    case 'part': case 'leave':
      if (!b) return;
      if (b.type === 'room') { b.closing = true; send('PART', rest ? [b.name, rest] : [b.name]); } else removeBuffer(b);
      return;
    case 'close': if (b) closeBuffer(b); return;
    case 'me': if (rest) sendText(b, rest, { action: true }); else usage('/me <action>'); return;
    case 'msg': case 'query': {
      if (!args[0]) { usage(`/${cmd} <nick> [text]`); return; }
      const target = args[0];
      const body = rest.slice(target.length).trim();
      const tb = isRoom(target) ? getBuffer(target) : openQuery(target);
      if (isRoom(target) && !tb) { if (body) send('PRIVMSG', [target, body]); infoLine(`Sent to ${target}.`); return; }
      if (body && tb) sendText(tb, body);
      return;
    }
    case 'notice': {
      if (args.length < 2) { usage('/notice <nick|room> <text>'); return; }
      send('NOTICE', [args[0], rest.slice(args[0].length).trim()]);
      infoLine(`Notice sent to ${args[0]}.`);
      return;
    }
    case 'nick':
      if (!args[0]) { usage('/nick <name>'); return; }
      send('NICK', [args[0]]);
      return;
    case 'topic': {
      const room = roomArg(args, 'topic');
      if (!room) return;
      const t = args.join(' ');
      if (!t) asked.topic.add(irc.fold(room));
      send('TOPIC', t ? [room, t] : [room]);
      return;
    }
    case 'away': send('AWAY', rest ? [rest] : ['Away']); return;
    case 'back': send('AWAY', []); return;
    case 'login': case 'register':
      if (args.length < 2) { openAccountDialog(cmd); return; }
      startAuth(cmd, 'dialog', args[0], args.slice(1).join(' '));
      return;
    case 'logout': logOut(/^all$/i.test(rest)); return;
    case 'whois': case 'wi':
      if (!args[0]) { usage('/whois <nick>'); return; }
      asked.whois.set(irc.fold(args[0]), []);
      send('WHOIS', [args[0]]);
      return;
    case 'who':
      if (!args[0] && !(b && b.type === 'room')) { usage('/who <room|nick|mask>'); return; }
      asked.who.add(irc.fold(args[0] || b.name));
      send('WHO', [args[0] || b.name]);
      return;
    case 'names': {
      const room = args[0] ? irc.roomName(args[0]) : (b && b.type === 'room' ? b.name : null);
      if (!room) { usage('/names <room>'); return; }
      asked.names.set(irc.fold(room), []);
      send('NAMES', [room]);
      return;
    }
    case 'list': case 'rooms':
      openDirectory(rest);
      return;
    case 'op': case 'deop': case 'voice': case 'devoice': case 'kick': case 'ban': case 'unban': {
      const room = roomArg(args, cmd);
      if (!room) return;
      if (!args[0]) { usage(`/${cmd} ${cmd === 'unban' ? '<mask>' : cmd === 'ban' ? '<nick|mask>' : '<nick>'}${cmd === 'kick' ? ' [reason]' : ''}`); return; }
      if (cmd === 'kick') send('KICK', args.length > 1 ? [room, args[0], args.slice(1).join(' ')] : [room, args[0]]);
      else send(cmd.toUpperCase(), [room, args[0]]);
      return;
    }
    case 'bans': {
      const room = roomArg(args, cmd);
      if (!room) return;
      asked.bans.add(irc.fold(room));
      send('MODE', [room, 'b']);
      return;
    }
    case 'mode': {
      const room = roomArg(args, cmd);
      if (!room) return;
      if (!args.length) asked.modes.add(irc.fold(room));
      else if (/^[+-]?b$/.test(args[0]) && args.length === 1) asked.bans.add(irc.fold(room));
      send('MODE', [room, ...args]);
      return;
    }
    case 'invite': {
      if (!args[0]) { usage('/invite <nick> [room]'); return; }
      const room = args[1] ? irc.roomName(args[1]) : (b && b.type === 'room' ? b.name : null);
      if (!room) { usage('/invite <nick> <room>'); return; }
      send('INVITE', [args[0], room]);
      return;
    }
    case 'claim': case 'drop': case 'unclaim': {
      const room = roomArg(args, cmd);
      if (room) send('ROOM', [cmd === 'claim' ? 'CLAIM' : 'DROP', room]);
      return;
    }
    case 'delete': case 'redact': {
      const mine = b && [...b.messages].reverse().find((x) => x.self && x.id && !x.redacted);
      if (!mine || !canDelete(mine)) { errorLine('You have no message here to delete.'); return; }
      deleteMessage(mine);
      return;
    }
    case 'motd': asked.motd = true; send('MOTD'); return;
    case 'setname':
      if (!rest) { usage('/setname <real name>'); return; }
      send('SETNAME', [rest]);
      return;
    case 'oper':
      if (args.length < 2) { usage('/oper <name> <password>'); return; }
      send('OPER', [args[0], args[1]]);
      return;
    case 'quit': case 'disconnect':
      if (rest) send('QUIT', [rest]);
      leaveApp();
      return;
    case 'quote': case 'raw':
      if (rest && S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(rest.replace(/[\r\n]+/g, ' '));
      return;
    case 'clear':
      if (b) { b.messages = []; b.ids = new Set(); renderBuffer(b); }
      return;
    case 'help': case 'commands':
      for (const l of HELP) infoLine(l);
      return;
    default:
      errorLine(`Unknown command /${cmd}. Type /help for the list; start with // to send a message that begins with /.`);
  }
}

// ---------------------------------------------------------------- asked-for replies

const nickOf = (m) => m.params[1] || '';
function whoisLine(m, line) {
  const lines = asked.whois.get(irc.fold(nickOf(m)));
  if (lines) lines.push(line);
  return !!lines;
}
handlers['311'] = (m) => { const [, nick, user, host, , real] = m.params; whoisLine(m, `${nick} is ${user}@${host}${real ? ` (${real})` : ''}`); };
handlers['312'] = (m) => whoisLine(m, `on ${m.params[2]}${m.params[3] ? ` (${m.params[3]})` : ''}`);
handlers['313'] = (m) => whoisLine(m, 'is an IRC operator');
handlers['317'] = (m) => {
  const idle = parseInt(m.params[2], 10) || 0;
  const since = parseInt(m.params[3], 10);
  whoisLine(m, `idle ${idle < 60 ? idle + ' s' : idle < 3600 ? Math.floor(idle / 60) + ' min' : Math.floor(idle / 3600) + ' h'}${since ? `, connected since ${fullFmt.format(new Date(since * 1000))}` : ''}`);
};
handlers['319'] = (m) => whoisLine(m, `in ${m.params[2] || 'no rooms'}`);
handlers['330'] = (m) => whoisLine(m, `logged in as ${m.params[2]}`);
handlers['301'] = (m) => {
  if (whoisLine(m, `away: ${m.params[2] || ''}`)) return;
  const b = getBuffer(m.params[1]);
  if (b) infoLine(`${m.params[1]} is away: ${m.params[2] || ''}`, b);
};
handlers['338'] = handlers['378'] = handlers['671'] = handlers['320'] = (m) => whoisLine(m, m.params.slice(2).join(' '));
handlers['318'] = (m) => {
  const key = irc.fold(nickOf(m));
  const lines = asked.whois.get(key);
  if (!lines) return;
  asked.whois.delete(key);
  if (lines.length) infoLine(`WHOIS ${lines.join(' · ')}`);
};
handlers['352'] = (m) => {
  const mask = irc.fold(m.params[1] || '');
  if (!asked.who.size) return;
  const [, room, user, host, , nick, flags, rest = ''] = m.params;
  infoLine(`${nick} (${user}@${host})${room && room !== '*' ? ' in ' + room : ''} ${flags} ${rest.replace(/^\d+ /, '')}`.trim());
  void mask;
};
handlers['315'] = (m) => {
  const key = irc.fold(m.params[1] || '');
  if (asked.who.delete(key)) infoLine(`End of the list for ${m.params[1]}.`);
};
handlers['324'] = (m) => {
  const key = irc.fold(m.params[1] || '');
  if (asked.modes.delete(key)) infoLine(`${m.params[1]} modes: ${m.params.slice(2).join(' ') || 'none'}`, getBuffer(m.params[1]) || S.active);
};
handlers['367'] = (m) => {
  const key = irc.fold(m.params[1] || '');
  if (!asked.bans.has(key)) return;
  infoLine(`Ban on ${m.params[1]}: ${m.params[2]}${m.params[3] ? ` (set by ${m.params[3]})` : ''}`, getBuffer(m.params[1]) || S.active);
};
handlers['368'] = (m) => {
  if (asked.bans.delete(irc.fold(m.params[1] || ''))) infoLine(`End of the ban list of ${m.params[1]}.`, getBuffer(m.params[1]) || S.active);
};
handlers['375'] = () => {};
handlers['372'] = (m) => { if (asked.motd) infoLine(m.params[m.params.length - 1]); };
handlers['376'] = handlers['422'] = (m) => {
  if (asked.motd && m.command === '422') infoLine(m.params[m.params.length - 1]);
  asked.motd = false;
};

// ---------------------------------------------------------------- room directory

// The directory lists the server's rooms (LIST) with member counts and
// topics, filtered as you type; a click joins.
function openDirectory(search = '') {
  const d = $('rooms-dialog');
  $('dir-search').value = search;
  asked.list = null;
  $('dir-status').textContent = 'Loading rooms…';
  $('dir-list').textContent = '';
  if (!d.open) d.showModal();
  $('dir-search').focus();
  if (!send('LIST')) $('dir-status').textContent = 'Not connected.';
}

handlers['321'] = () => { asked.list = []; };
handlers['322'] = (m) => {
  if (!asked.list) asked.list = [];
  asked.list.push({ name: m.params[1], users: parseInt(m.params[2], 10) || 0, topic: m.params[3] || '' });
};
handlers['323'] = () => {
  if (!asked.list) asked.list = [];
  asked.list.sort((x, y) => y.users - x.users || irc.fold(x.name).localeCompare(irc.fold(y.name)));
  renderDirectory();
};

function renderDirectory() {
  const list = $('dir-list');
  list.textContent = '';
  const rooms = asked.list || [];
  const q = irc.fold($('dir-search').value.trim().replace(/^#/, ''));
  const shown = rooms.filter((r) => !q || irc.fold(r.name).includes(q) || irc.fold(irc.stripFormatting(r.topic)).includes(q));
  for (const r of shown) {
    const joined = getBuffer(r.name)?.joined;
    list.append(h('li', null, h('button', {
      type: 'button', class: 'dir-room', 'data-room': r.name,
      onclick: () => { closeDirectory(); joinRoom(r.name); closeDrawers(); },
    },
    h('span', { class: 'dir-name', text: r.name }),
    h('span', { class: 'dir-count', text: `${r.users} ${r.users === 1 ? 'person' : 'people'}` }),
    joined ? h('span', { class: 'dir-joined', text: 'joined' }) : null,
    r.topic ? h('span', { class: 'dir-topic', text: irc.stripFormatting(r.topic) }) : null)));
  }
  const name = q && irc.roomName(q);
  if (name && !rooms.some((r) => irc.fold(r.name) === irc.fold(name))) {
    list.append(h('li', null, h('button', {
      type: 'button', class: 'dir-room dir-create',
      onclick: () => { closeDirectory(); joinRoom(name); closeDrawers(); },
    }, h('span', { class: 'dir-name', text: `Create ${name}` }))));
  }
  $('dir-status').textContent = asked.list == null ? 'Loading rooms…'
    : rooms.length === 0 ? 'No rooms yet: type a name to create one.'
      : `${shown.length} of ${rooms.length} rooms`;
}

function closeDirectory() { const d = $('rooms-dialog'); if (d.open) d.close(); }

// ---------------------------------------------------------------- member menu

// The member menu: message and whois for everyone; for an operator of the
// room, op/voice and kick/ban (the server decides in the end).
let menuFor = null;
function openMemberMenu(b, nick) {
  menuFor = { b, nick };
  const mem = b.members.get(irc.fold(nick));
  const me = b.members.get(irc.fold(S.nick));
  const amOp = !!(me && me.prefixes.includes('@'));
  const isOp = !!(mem && mem.prefixes.includes('@'));
  const isVoiced = !!(mem && mem.prefixes.includes('+'));
  $('member-title').textContent = nick;
  $('member-sub').textContent = `${b.name}${isOp ? ' · operator' : isVoiced ? ' · voiced' : ''}${mem && mem.account ? ' · logged in as ' + mem.account : ''}${mem && mem.away ? ' · away' : ''}`;
  const acts = $('member-actions');
  acts.textContent = '';
  const act = (label, fn, cls = '') => acts.append(h('button', { type: 'button', class: `btn ${cls}`, 'data-act': label, text: label, onclick: () => { fn(); closeMemberMenu(); } }));
  if (!isMe(nick)) act('Message', () => { openQuery(nick); closeDrawers(); });
  act('Whois', () => runCommand(`/whois ${nick}`));
  const mod = $('member-mod');
  mod.hidden = !amOp;
  if (amOp) {
    act(isOp ? 'Remove operator' : 'Make operator', () => send(isOp ? 'DEOP' : 'OP', [b.name, nick]));
    act(isVoiced ? 'Take voice' : 'Give voice', () => send(isVoiced ? 'DEVOICE' : 'VOICE', [b.name, nick]));
    $('member-reason').value = '';
  }
  const d = $('member-dialog');
  if (!d.open) d.showModal();
  acts.querySelector('button')?.focus();
}

function closeMemberMenu() { const d = $('member-dialog'); if (d.open) d.close(); }

function moderate(kind) {
  if (!menuFor) return;
  const { b, nick } = menuFor;
  const reason = $('member-reason').value.trim();
  if (kind === 'kick') send('KICK', reason ? [b.name, nick, reason] : [b.name, nick]);
  else {
    send('BAN', [b.name, nick]);
    send('KICK', [b.name, nick, reason || 'Banned']);
  }
  closeMemberMenu();
}

// ---------------------------------------------------------------- notifications

// Desktop notifications (and an optional sound) for a mention or a private
// message while the tab is hidden. Permission is asked only when the user
// turns them on; a room can be muted.
const NOTIFY_KEY = 'livechat.notify';
const notifyPrefs = Object.assign({ on: false, sound: false, muted: [] }, loadJSON(localStorage, NOTIFY_KEY) || {});
const saveNotify = () => saveJSON(localStorage, NOTIFY_KEY, notifyPrefs);
function isMuted(b) { return !!b && notifyPrefs.muted.includes(b.key); }

function renderNotifyControls() {
  const on = notifyPrefs.on && 'Notification' in window && Notification.permission === 'granted';
  $('notify-toggle').setAttribute('aria-pressed', String(on));
  $('notify-toggle').textContent = on ? 'Notifications on' : 'Notifications off';
  $('sound-toggle').setAttribute('aria-pressed', String(notifyPrefs.sound));
  $('sound-toggle').textContent = notifyPrefs.sound ? 'Sound on' : 'Sound off';
  const b = S.active;
  const mt = $('mute-toggle');
  mt.hidden = !b;
  const muted = isMuted(b);
  mt.setAttribute('aria-pressed', String(muted));
  mt.setAttribute('aria-label', muted ? `Unmute ${b ? b.name : ''}` : `Mute ${b ? b.name : ''}`);
  mt.title = muted ? 'Muted: no notifications from here. Click to unmute.' : 'Mute notifications from here';
  mt.classList.toggle('is-muted', muted);
}

async function toggleNotifications() {
  if (notifyPrefs.on) { notifyPrefs.on = false; saveNotify(); renderNotifyControls(); return; }
  if (!('Notification' in window)) { toast('This browser cannot show notifications.', 'error'); return; }
  let perm = Notification.permission;
  if (perm === 'default') {
    try { perm = await Notification.requestPermission(); } catch (e) { perm = 'denied'; }
  }
  if (perm !== 'granted') { toast('Notifications are blocked for this site in the browser settings.', 'error'); return; }
  notifyPrefs.on = true;
  saveNotify();
  renderNotifyControls();
  toast('You will be notified of mentions and private messages while this tab is hidden.', 'ok');
}

function toggleMute() {
  const b = S.active;
  if (!b) return;
  notifyPrefs.muted = isMuted(b) ? notifyPrefs.muted.filter((k) => k !== b.key) : notifyPrefs.muted.concat(b.key);
  saveNotify();
  renderNotifyControls();
  updateTab(b);
}

let audioCtx = null;
function beep() {
  try {
    audioCtx ||= new AudioContext();
    const o = audioCtx.createOscillator();
    const g = audioCtx.createGain();
    o.frequency.value = 880;
    g.gain.setValueAtTime(0.08, audioCtx.currentTime);
    g.gain.exponentialRampToValueAtTime(0.0001, audioCtx.currentTime + 0.25);
    o.connect(g).connect(audioCtx.destination);
    o.start();
    o.stop(audioCtx.currentTime + 0.25);
  } catch (e) { /* no audio: the notification is enough */ }
}

function notifyMessage(b, msg) {
  if (!document.hidden || msg.self || isMuted(b)) return;
  if (!(msg.mention || b.type === 'query')) return;
  if (notifyPrefs.sound) beep();
  if (!notifyPrefs.on || !('Notification' in window) || Notification.permission !== 'granted') return;
  const text = irc.stripFormatting(msg.text);
  const title = b.type === 'query' ? `${msg.nick} (private)` : `${msg.nick} in ${b.name}`;
  try {
    const n = new Notification(title, { body: msg.kind === 'action' ? `* ${msg.nick} ${text}` : text, tag: 'livechat-' + b.key });
    n.onclick = () => { window.focus(); if (S.buffers.get(b.key) === b) activate(b); n.close?.(); };
  } catch (e) { /* some browsers only notify from a service worker */ }
}

// ---------------------------------------------------------------- recall, paste

// Up on an empty composer recalls what you sent (Down goes forward again).
const sentHistory = [];
let recallAt = -1;
function remember(text) {
  if (sentHistory[sentHistory.length - 1] !== text) sentHistory.push(text);
  if (sentHistory.length > 50) sentHistory.shift();
  recallAt = -1;
}
function recall(e) {
  const ta = $('input');
  const browsing = recallAt >= 0 && ta.value === sentHistory[recallAt];
  if (e.key === 'ArrowUp') {
    if (!(ta.value === '' || browsing) || !sentHistory.length) return;
    if (ta.value.slice(0, ta.selectionStart).includes('\n')) return;
    recallAt = recallAt < 0 ? sentHistory.length - 1 : Math.max(0, recallAt - 1);
  } else {
    if (!browsing || ta.value.slice(ta.selectionEnd).includes('\n')) return;
    recallAt = recallAt + 1 < sentHistory.length ? recallAt + 1 : -1;
  }
  e.preventDefault();
  ta.value = recallAt < 0 ? '' : sentHistory[recallAt];
  ta.setSelectionRange(ta.value.length, ta.value.length);
  autosize();
}

// countMessages says how many messages a text becomes.
function countMessages(b, text) {
  let n = 0;
  for (const line of text.split(/\r?\n/)) if (line.trim() !== '') n += irc.splitText(line, maxTextBytes(b.name)).length;
  return n;
}

let pastePending = null;
function askBeforeSending(b, text, n) {
  pastePending = { b, text };
  $('paste-text').textContent = `This will send ${n} separate messages to ${b.name}. Send them all?`;
  $('paste-dialog').showModal();
  $('paste-send').focus();
}

// switchBuffer moves to the previous (-1) or next (+1) room or conversation.
function switchBuffer(dir) {
  const list = orderedBuffers();
  if (!list.length) return;
  const i = list.indexOf(S.active);
  activate(list[(i + dir + list.length) % list.length]);
}

function submitComposer() {
  const input = $('input');
  const text = input.value;
  if (!text.trim()) return;
  if (S.phase !== 'online') { toast('Not connected yet.', 'error'); return; }
  remember(text);
  if (text.startsWith('/') && !text.startsWith('//')) runCommand(text.trim());
  else {
    const body = text.startsWith('//') ? text.slice(1) : text;
    const n = S.active ? countMessages(S.active, body) : 0;
    // A long paste would become many messages: ask first, and keep the
    // text in the composer if the answer is no.
    if (n > 5) { askBeforeSending(S.active, body, n); return; }
    sendText(S.active, body);
  }
  S.typingSent = 0; // a message ends typing for those who see it
  input.value = '';
  autosize();
}

function autosize() {
  const ta = $('input');
  ta.style.height = 'auto';
  ta.style.height = Math.min(ta.scrollHeight + 2, 160) + 'px';
}

// Tab completes nicks of the room's members.
let completion = null;
function completeNick(e) {
  const ta = $('input');
  const b = S.active;
  if (!b) return;
  const pos = ta.selectionStart;
  const before = ta.value.slice(0, pos);
  if (!completion || completion.pos !== pos || completion.value !== ta.value) {
    const m = /(\S*)$/.exec(before);
    const word = m[1];
    if (!word) return;
    const names = b.type === 'room' ? [...b.members.values()].map((x) => x.nick) : [b.name];
    const matches = names.filter((n) => irc.fold(n).startsWith(irc.fold(word)) && !isMe(n)).sort();
    if (!matches.length) return;
    completion = { start: pos - word.length, matches, i: -1, atStart: pos - word.length === 0 };
  }
  e.preventDefault();
  completion.i = (completion.i + 1) % completion.matches.length;
  const nick = completion.matches[completion.i];
  const insert = nick + (completion.atStart ? ': ' : ' ');
  const after = ta.value.slice(pos);
  ta.value = ta.value.slice(0, completion.start) + insert + after;
  const np = completion.start + insert.length;
  ta.setSelectionRange(np, np);
  completion.pos = np;
  completion.value = ta.value;
}

// ---------------------------------------------------------------- start screen

let startMode = 'guest';

function setStartMode(mode) {
  startMode = mode;
  document.querySelectorAll('#start .seg button').forEach((b) => b.setAttribute('aria-selected', b.dataset.mode === mode ? 'true' : 'false'));
  document.querySelectorAll('#start-form [data-for]').forEach((el) => { el.hidden = !el.dataset.for.split(' ').includes(mode); });
  $('start-submit').textContent = mode === 'login' ? 'Log in and join' : mode === 'register' ? 'Create account and join' : 'Join chat';
  $('start-password').autocomplete = mode === 'register' ? 'new-password' : 'current-password';
  hideStartError();
}

function showStartError(text) {
  const el = $('start-error');
  el.textContent = text;
  el.hidden = false;
}
function hideStartError() { $('start-error').hidden = true; }

function setStartBusy(busy, label) {
  const btn = $('start-submit');
  btn.disabled = busy;
  if (busy) btn.textContent = label || 'Connecting…';
  else setStartMode(startMode);
}

function isAppShown() { return !$('app').hidden; }

function enterApp() {
  if (isAppShown()) return;
  $('start').hidden = true;
  $('app').hidden = false;
  setStartBusy(false);
  renderChrome();
}

function leaveApp() {
  S.userClosed = true;
  clearTimeout(S.reconnectTimer);
  S.reconnectTimer = null;
  forgetLoginToken(true);
  if (S.ws) { send('QUIT', ['Leaving']); const ws = S.ws; setTimeout(() => ws.close(), 300); }
  S.ws = null;
  S.phase = 'idle';
  S.account = '';
  S.password = null;
  for (const b of [...S.buffers.values()]) removeBuffer(b);
  S.active = null;
  saveJSON(sessionStorage, RESUME_KEY, null);
  hideBanner();
  $('app').hidden = true;
  $('start').hidden = false;
  prefillStart();
}

function onStartSubmit(e) {
  e.preventDefault();
  hideStartError();
  const roomsRaw = $('start-room').value.trim() || 'lobby';
  const rooms = roomsRaw.split(/[,\s]+/).filter(Boolean);
  const bad = rooms.find((r) => !irc.roomName(r));
  if (bad) { showStartError(`“${bad}” is not a valid room name.`); return; }
  const intent = { mode: startMode, rooms: rooms.map(irc.roomName), nick: '', account: '', password: '' };
  if (startMode === 'guest') {
    const nick = $('start-nick').value.trim();
    if (nick && !irc.NICK_RE.test(nick)) {
      showStartError('Nicknames use letters, digits and -_[]{}\\|^`, start with a letter or one of _[]{}\\|^`, and have at most 30 characters.');
      return;
    }
    intent.nick = nick;
  } else {
    intent.account = $('start-account').value.trim();
    intent.password = $('start-password').value;
    if (!intent.account) { showStartError('Enter your account name.'); $('start-account').focus(); return; }
    if (!irc.NICK_RE.test(intent.account)) { showStartError('Account names follow the nickname rules: letters, digits and -_[]{}\\|^`, at most 30 characters.'); return; }
    if (!intent.password) { showStartError('Enter your password.'); $('start-password').focus(); return; }
    if (startMode === 'register' && [...intent.password].length < 8) { showStartError('Passwords need at least 8 characters.'); return; }
  }
  savePrefs({ rooms: roomsRaw });
  setStartBusy(true, startMode === 'guest' ? 'Connecting…' : startMode === 'login' ? 'Logging in…' : 'Creating account…');
  connect(intent);
}

function savePrefs(patch) {
  const p = loadJSON(localStorage, PREFS_KEY) || {};
  for (const [k, v] of Object.entries(patch)) if (v !== undefined) p[k] = v;
  saveJSON(localStorage, PREFS_KEY, p);
}

function prefillStart() {
  const p = loadJSON(localStorage, PREFS_KEY) || {};
  let fromHash = '';
  try { fromHash = decodeURIComponent(location.hash.slice(1)); } catch (e) { /* a malformed link: ignore it */ }
  $('start-room').value = fromHash || p.rooms || '';
  $('start-nick').value = p.nick || '';
  $('start-account').value = p.account || '';
  $('start-password').value = '';
  setStartMode(p.mode === 'login' ? 'login' : 'guest');
}

// Reloading the page brings a guest straight back to their rooms; the
// state lives in sessionStorage, so it is per tab and gone with it.
function saveResume() {
  if (!S.welcomed || S.userClosed) return;
  const rooms = [...S.buffers.values()].filter((b) => b.type === 'room').map((b) => b.name);
  saveJSON(sessionStorage, RESUME_KEY, {
    nick: S.nick, account: S.account || '', rooms,
    active: S.active ? S.active.name : null,
  });
}

// ---------------------------------------------------------------- login token

// After a password login the page asks the server for a login token
// (TOKEN NEW, docs/PROTOCOL.md) and keeps it in localStorage, never the
// password. A reload, a second tab or a reconnect logs in with it (TOKEN
// LOGIN), which costs the server no password hash and keeps the account,
// so room operator status comes back too. Logging out revokes it; a
// revoked or expired one brings back the login form with a message.
const TOKEN_KEY = 'livechat.login';
let loginToken = null; // {account, id, token}: also in memory, so a tab whose token another tab dropped is told, not silently a guest

function savedLoginToken() {
  const t = loadJSON(localStorage, TOKEN_KEY);
  return t && typeof t.account === 'string' && typeof t.token === 'string' && typeof t.id === 'string' ? t : null;
}

function tokenIntent(t, rooms, active) {
  return { mode: 'token', account: t.account, token: t.token, rooms, nick: '', active, resumed: true };
}

function askLoginToken() {
  const t = savedLoginToken();
  if (t && irc.fold(t.account) === irc.fold(S.account)) { loginToken = t; return; }
  send('TOKEN', ['NEW', 'web page']);
}

handlers.TOKEN = (m) => {
  const [sub, id = ''] = m.params;
  if (sub === 'LIST') { infoLine(`Login token ${id} (${m.params[5] || ''}): last used ${m.params[3] || '?'}, expires ${m.params[4] || '?'}`); return; }
  if (sub === 'END' || sub === 'REVOKED') { infoLine(m.params[m.params.length - 1]); return; }
  if (sub !== 'NEW' || !S.account || !m.params[2]) return;
  loginToken = { account: S.account, id: m.params[1], token: m.params[2] };
  saveJSON(localStorage, TOKEN_KEY, loginToken);
  S.password = null; // the token replaces it, also for reconnects
};

// forgetLoginToken drops the token here, and with revoke on the server
// too (which needs the connection still logged in: before LOGOUT).
function forgetLoginToken(revoke) {
  const t = loginToken || savedLoginToken();
  if (revoke && t && S.account) send('TOKEN', ['REVOKE', t.id]);
  loginToken = null;
  const stored = savedLoginToken();
  if (!t || (stored && stored.id === t.id)) saveJSON(localStorage, TOKEN_KEY, null);
}

function logOut(everywhere = false) {
  forgetLoginToken(!everywhere);
  send('LOGOUT', everywhere ? ['ALL'] : []);
}

// resumeWithToken logs in with a kept token on page load; false if none.
function resumeWithToken(resume) {
  const t = savedLoginToken();
  if (!t) return false;
  loginToken = t;
  const p = loadJSON(localStorage, PREFS_KEY) || {};
  let rooms = resume && resume.rooms && resume.rooms.length ? resume.rooms : String(p.rooms || 'lobby').split(/[,\s]+/).map(irc.roomName).filter(Boolean);
  if (!rooms.length) rooms = ['#lobby'];
  setStartMode('login');
  $('start-account').value = t.account;
  setStartBusy(true, 'Logging in…');
  connect(tokenIntent(t, rooms, resume ? resume.active : null));
  return true;
}

// tokenRefused: the server no longer knows the token (revoked, expired, or
// the account deleted). Forget it and ask for the password.
function tokenRefused() {
  const account = loginToken ? loginToken.account : (S.intent && S.intent.account) || '';
  clearAuth();
  forgetLoginToken(false);
  if (isAppShown()) leaveApp();
  else {
    S.userClosed = true;
    try { if (S.ws) S.ws.close(); } catch (e) { /* gone */ }
  }
  setStartBusy(false);
  setStartMode('login');
  $('start-account').value = account;
  showStartError('Your saved login has expired or was revoked. Log in with your password.');
  $('start-password').focus();
}

// ---------------------------------------------------------------- account dialog

let accountMode = 'login';

function openAccountDialog(mode) {
  const d = $('account-dialog');
  const loggedIn = !!S.account;
  $('account-guest').hidden = loggedIn;
  $('account-user').hidden = !loggedIn;
  $('account-title').textContent = loggedIn ? 'Your account' : 'Keep your nickname';
  $('account-name').textContent = S.account;
  $('nick-input').value = S.nick;
  setAccountMode(mode === 'register' ? 'register' : mode === 'login' ? 'login' : accountMode);
  $('account-error').hidden = true;
  if (!d.open) d.showModal();
  if (!loggedIn) $('acct-name').focus();
}

function closeAccountDialog() {
  const d = $('account-dialog');
  if (d.open) d.close();
  $('acct-password').value = '';
  $('account-submit').disabled = false;
}

function setAccountMode(mode) {
  accountMode = mode;
  document.querySelectorAll('#account-guest .seg button').forEach((b) => b.setAttribute('aria-selected', b.dataset.amode === mode ? 'true' : 'false'));
  $('account-submit').textContent = mode === 'register' ? 'Create account' : 'Log in';
  $('acct-password').autocomplete = mode === 'register' ? 'new-password' : 'current-password';
  $('account-blurb').textContent = mode === 'register'
    ? 'Register an account to reserve your nickname. The account name becomes your nickname.'
    : 'Log in to use your registered nickname.';
  if (mode === 'register' && !$('acct-name').value && S.nick && !/^guest-/i.test(S.nick)) $('acct-name').value = S.nick;
  $('account-error').hidden = true;
}

function showAccountError(text) {
  const el = $('account-error');
  el.textContent = text;
  el.hidden = false;
  $('account-submit').disabled = false;
  setAccountMode.busy = false;
  $('account-submit').textContent = accountMode === 'register' ? 'Create account' : 'Log in';
}

function onAccountSubmit(e) {
  e.preventDefault();
  const name = $('acct-name').value.trim();
  const password = $('acct-password').value;
  if (!name || !password) { showAccountError('Enter an account name and a password.'); return; }
  if (!irc.NICK_RE.test(name)) { showAccountError('Account names use letters, digits and -_[]{}\\|^`, at most 30 characters.'); return; }
  if (accountMode === 'register' && [...password].length < 8) { showAccountError('Passwords need at least 8 characters.'); return; }
  if (S.phase !== 'online') { showAccountError('Not connected.'); return; }
  $('account-error').hidden = true;
  $('account-submit').disabled = true;
  $('account-submit').textContent = accountMode === 'register' ? 'Creating account…' : 'Logging in…';
  startAuth(accountMode, 'dialog', name, password);
}

function updateMe() {
  $('me-nick').textContent = S.nick || '…';
  const sub = $('me-account');
  sub.textContent = S.account ? 'Logged in' : 'Guest · Log in';
  sub.classList.toggle('is-user', !!S.account);
  const av = avatar(S.nick || '?', 'avatar-sm');
  av.id = 'me-avatar';
  $('me-avatar').replaceWith(av);
  $('me-button').title = S.account ? `Logged in as ${S.account}` : 'Log in or register to keep your nickname';
  if ($('account-dialog').open) openAccountDialog();
  renderMembers();
}

// ---------------------------------------------------------------- drawers

function closeDrawers() {
  $('sidebar').classList.remove('is-open');
  $('members').classList.remove('is-open');
  $('rooms-toggle').setAttribute('aria-expanded', 'false');
  $('members-toggle').setAttribute('aria-expanded', String(!$('members').classList.contains('is-collapsed') && matchMedia('(min-width: 1081px)').matches));
  $('scrim').hidden = true;
}

function toggleMembers() {
  if (matchMedia('(min-width: 1081px)').matches) {
    const collapsed = $('members').classList.toggle('is-collapsed');
    document.querySelector('.body').classList.toggle('no-members', collapsed);
    $('members-toggle').setAttribute('aria-expanded', String(!collapsed));
    return;
  }
  toggleDrawer('members', 'members-toggle');
}

function toggleRooms() {
  toggleDrawer('sidebar', 'rooms-toggle');
}

// toggleDrawer opens a phone drawer (closing any other) or closes it.
function toggleDrawer(drawer, button) {
  const open = !$(drawer).classList.contains('is-open');
  closeDrawers();
  if (open) {
    $(drawer).classList.add('is-open');
    $(button).setAttribute('aria-expanded', 'true');
    $('scrim').hidden = false;
  }
}

// ---------------------------------------------------------------- wiring

function init() {
  document.querySelectorAll('#start .seg button').forEach((b) => b.addEventListener('click', () => setStartMode(b.dataset.mode)));
  $('start-form').addEventListener('submit', onStartSubmit);

  $('composer').addEventListener('submit', (e) => { e.preventDefault(); submitComposer(); });
  $('input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submitComposer(); return; }
    if (e.key === 'Tab' && !e.shiftKey && $('input').value) { completeNick(e); return; }
    completion = null;
    if ((e.key === 'ArrowUp' || e.key === 'ArrowDown') && !e.altKey && !e.ctrlKey && !e.metaKey && !e.shiftKey) recall(e);
  });
  $('input').addEventListener('input', () => {
    autosize();
    const v = $('input').value;
    if (v && !v.startsWith('/')) sendTyping('active');
    else if (!v) sendTyping('done');
  });

  $('log').addEventListener('scroll', onScroll, { passive: true });
  new ResizeObserver(() => { if (S.atBottom) scrollToBottom(); }).observe($('log'));
  $('jump').addEventListener('click', scrollToBottom);

  $('join-open').addEventListener('click', () => {
    const f = $('join-form');
    f.hidden = !f.hidden;
    if (!f.hidden) $('join-input').focus();
  });
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('join-input').value.trim();
    if (!v) return;
    if (joinRoom(v)) { $('join-input').value = ''; $('join-form').hidden = true; closeDrawers(); }
  });
  $('join-input').addEventListener('keydown', (e) => { if (e.key === 'Escape') $('join-form').hidden = true; });

  $('members-toggle').addEventListener('click', toggleMembers);
  $('rooms-toggle').addEventListener('click', toggleRooms);
  $('scrim').addEventListener('click', closeDrawers);
  $('banner-action').addEventListener('click', reconnectNow);
  $('leave-button').addEventListener('click', leaveApp);

  $('me-button').addEventListener('click', () => openAccountDialog());
  $('account-close').addEventListener('click', closeAccountDialog);
  $('account-form').addEventListener('submit', onAccountSubmit);
  document.querySelectorAll('#account-guest .seg button').forEach((b) => b.addEventListener('click', () => setAccountMode(b.dataset.amode)));
  $('logout-button').addEventListener('click', () => { logOut(); closeAccountDialog(); });
  $('nick-submit').addEventListener('click', () => {
    const n = $('nick-input').value.trim();
    if (!irc.NICK_RE.test(n)) { showAccountError('Nicknames use letters, digits and -_[]{}\\|^`, at most 30 characters.'); return; }
    if (isMe(n)) { closeAccountDialog(); return; }
    const once = (m) => { if (isMe(n)) closeAccountDialog(); void m; };
    send('NICK', [n]);
    setTimeout(once, 800);
  });

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) { S.hiddenUnread = 0; updateTitle(); markRead(S.active); }
  });
  window.addEventListener('focus', () => markRead(S.active));
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeDrawers();
    if (!isAppShown()) return;
    if (e.altKey && !e.ctrlKey && !e.metaKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
      e.preventDefault();
      switchBuffer(e.key === 'ArrowUp' ? -1 : 1);
    } else if ((e.ctrlKey || e.metaKey) && !e.altKey && (e.key === 'k' || e.key === 'K')) {
      e.preventDefault();
      openDirectory();
    }
  });

  $('dir-open').addEventListener('click', () => openDirectory());
  $('dir-search').addEventListener('input', renderDirectory);
  $('dir-search').addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault();
    $('dir-list').querySelector('button')?.click();
  });
  $('dir-close').addEventListener('click', closeDirectory);
  $('member-close').addEventListener('click', closeMemberMenu);
  $('member-kick').addEventListener('click', () => moderate('kick'));
  $('member-ban').addEventListener('click', () => moderate('ban'));
  $('notify-toggle').addEventListener('click', toggleNotifications);
  $('sound-toggle').addEventListener('click', () => { notifyPrefs.sound = !notifyPrefs.sound; saveNotify(); renderNotifyControls(); });
  $('mute-toggle').addEventListener('click', toggleMute);
  $('paste-send').addEventListener('click', () => {
    const p = pastePending;
    pastePending = null;
    $('paste-dialog').close();
    if (!p || S.buffers.get(p.b.key) !== p.b) return;
    sendText(p.b, p.text);
    $('input').value = '';
    autosize();
    $('input').focus();
  });
  $('paste-cancel').addEventListener('click', () => { pastePending = null; $('paste-dialog').close(); $('input').focus(); });
  window.addEventListener('pagehide', () => {
    // Free the nick at once so that a reload gets it back.
    if (S.ws && S.ws.readyState === WebSocket.OPEN) { send('QUIT', ['Page closed']); }
  });

  prefillStart();
  const resume = loadJSON(sessionStorage, RESUME_KEY);
  if (resumeWithToken(resume)) {
    // Logged in before, in this tab or another: straight back in.
  } else if (resume && resume.rooms && resume.rooms.length) {
    if (resume.account) {
      // No password is stored: ask for it, with the rest filled in.
      setStartMode('login');
      $('start-account').value = resume.account;
      $('start-room').value = resume.rooms.map((r) => r.replace(/^#/, '')).join(', ');
      $('start-password').focus();
    } else {
      setStartBusy(true, 'Reconnecting…');
      connect({ mode: 'guest', nick: resume.nick || '', rooms: resume.rooms, active: resume.active, resumed: true });
    }
  } else {
    (startMode === 'guest' && !$('start-room').value ? $('start-room') : $('start-nick')).focus();
  }
}

init();

// A hook for the browser test: drop the connection as a network failure
// would. Nothing else (least of all the in-memory password) is exposed.
window.livechat = Object.freeze({ dropConnection: () => { if (S.ws) S.ws.close(); } });

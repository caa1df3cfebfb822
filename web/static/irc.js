// IRC line parsing and formatting for the livechat page. Pure functions,
// no DOM: web/e2e/irc.test.mjs runs them under node.

// Tag values escape ; space \ CR LF (IRCv3 message-tags).
export function unescapeTag(v) {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c !== '\\') { out += c; continue; }
    i++;
    if (i >= v.length) break; // a lone trailing backslash is dropped
    const n = v[i];
    out += n === ':' ? ';' : n === 's' ? ' ' : n === 'r' ? '\r' : n === 'n' ? '\n' : n;
  }
  return out;
}

export function escapeTag(v) {
  return String(v).replace(/[\\; \r\n]/g, (c) =>
    c === '\\' ? '\\\\' : c === ';' ? '\\:' : c === ' ' ? '\\s' : c === '\r' ? '\\r' : '\\n');
}

// parseSource splits nick!user@host; a server name has only a host.
export function parseSource(src) {
  if (src == null) return { nick: null, user: null, host: null };
  const bang = src.indexOf('!');
  const at = src.indexOf('@', bang < 0 ? 0 : bang);
  if (bang < 0 && at < 0) {
    // A bare name: a server if it has a dot, else a nick.
    return src.includes('.') ? { nick: null, user: null, host: src } : { nick: src, user: null, host: null };
  }
  const nickEnd = bang >= 0 ? bang : at;
  return {
    nick: src.slice(0, nickEnd),
    user: bang >= 0 ? src.slice(bang + 1, at >= 0 ? at : src.length) : null,
    host: at >= 0 ? src.slice(at + 1) : null,
  };
}

// parseLine turns one line (without CR LF) into
// {tags, source, nick, user, host, command, params}.
export function parseLine(line) {
  line = String(line).replace(/[\r\n]+$/, '');
  const msg = { tags: {}, source: null, nick: null, user: null, host: null, command: '', params: [] };
  let i = 0;
  const n = line.length;
  const skipSpaces = () => { while (i < n && line[i] === ' ') i++; };
  const word = () => {
    const sp = line.indexOf(' ', i);
    const w = line.slice(i, sp < 0 ? n : sp);
    i = sp < 0 ? n : sp;
    return w;
  };
  skipSpaces();
  if (line[i] === '@') {
    i++;
    for (const part of word().split(';')) {
      if (!part) continue;
      const eq = part.indexOf('=');
      if (eq < 0) msg.tags[part] = '';
      else msg.tags[part.slice(0, eq)] = unescapeTag(part.slice(eq + 1));
    }
    skipSpaces();
  }
  if (line[i] === ':') {
    i++;
    msg.source = word();
    Object.assign(msg, parseSource(msg.source));
    skipSpaces();
  }
  msg.command = word().toUpperCase();
  for (;;) {
    skipSpaces();
    if (i >= n) break;
    if (line[i] === ':') {
      msg.params.push(line.slice(i + 1));
      break;
    }
    msg.params.push(word());
  }
  return msg;
}

// formatLine builds a line from a command and its parameters; the last
// one is sent as a trailing parameter when it needs to be. CR, LF and NUL
// are removed so that no parameter can smuggle in another command.
export function formatLine(command, params = [], tags = null) {
  const clean = (s) => String(s).replace(/[\r\n\0]/g, ' ');
  let line = '';
  if (tags) {
    const parts = Object.entries(tags).map(([k, v]) => (v === '' || v == null ? k : k + '=' + escapeTag(v)));
    if (parts.length) line = '@' + parts.join(';') + ' ';
  }
  line += command;
  params.forEach((p, idx) => {
    p = clean(p);
    const last = idx === params.length - 1;
    if (last && (p === '' || p.includes(' ') || p[0] === ':')) line += ' :' + p;
    else line += ' ' + p.replace(/ /g, '');
  });
  return line;
}

const enc = new TextEncoder();
export function byteLength(s) { return enc.encode(s).length; }

// splitText cuts text into pieces of at most maxBytes UTF-8 bytes,
// preferring to break at spaces and never inside a code point.
export function splitText(text, maxBytes, keepSpaces = false) {
  const out = [];
  let rest = text;
  while (byteLength(rest) > maxBytes) {
    let bytes = 0;
    let cut = 0; // index in code units
    let lastSpace = -1;
    for (const ch of rest) {
      const b = byteLength(ch);
      if (bytes + b > maxBytes) break;
      bytes += b;
      cut += ch.length;
      if (ch === ' ') lastSpace = cut;
    }
    if (cut === 0) break; // cannot happen for maxBytes >= 4
    const at = lastSpace > cut / 2 ? lastSpace : cut;
    out.push(keepSpaces ? rest.slice(0, at) : rest.slice(0, at).replace(/ $/, ''));
    rest = rest.slice(at);
  }
  if (rest !== '' || out.length === 0) out.push(rest);
  return out;
}

// multilineLines turns a paste into the lines of a draft/multiline batch:
// one per line of text (blank lines kept inside, dropped at the ends),
// each long one cut into pieces of at most maxBytes that continue it
// (concat), which join back into exactly the text. It returns null when
// the paste passes the server's limits (the capability's max-bytes and
// max-lines), so the caller can send it another way.
export function multilineLines(text, maxBytes, limits = {}) {
  const rows = text.replace(/\r\n?/g, '\n').split('\n');
  while (rows.length && rows[0].trim() === '') rows.shift();
  while (rows.length && rows[rows.length - 1].trim() === '') rows.pop();
  const out = [];
  let bytes = 0;
  for (const row of rows) {
    splitText(row, maxBytes, true).forEach((piece, i) => {
      out.push({ text: piece, concat: i > 0 });
      bytes += byteLength(piece);
    });
  }
  if (out.length < 2) return null;
  if (limits.maxLines && out.length > limits.maxLines) return null;
  if (limits.maxBytes && bytes > limits.maxBytes) return null;
  return out;
}

// joinMultiline is the text of a received multiline message: its lines
// on lines of their own, a concat line run on from the one before.
export function joinMultiline(lines) {
  return lines.map((l, i) => (i > 0 && !l.concat ? '\n' : '') + l.text).join('');
}

// multilineLimits reads the draft/multiline capability's value
// ("max-bytes=4096,max-lines=100").
export function multilineLimits(value) {
  const out = {};
  for (const kv of (value || '').split(',')) {
    const [k, v] = kv.split('=');
    if (k === 'max-bytes') out.maxBytes = Number(v) || 0;
    if (k === 'max-lines') out.maxLines = Number(v) || 0;
  }
  return out;
}

// stripFormatting removes mIRC formatting codes (bold, colours, ...).
export function stripFormatting(s) {
  return s
    .replace(/\x03(\d{1,2}(,\d{1,2})?)?/g, '')
    .replace(/\x04([0-9a-fA-F]{6}(,[0-9a-fA-F]{6})?)?/g, '')
    .replace(/[\x02\x0f\x11\x16\x1d\x1e\x1f]/g, '');
}

// ctcpAction returns the text of a CTCP ACTION (/me), or null.
export function ctcpAction(text) {
  const m = /^\x01ACTION(?: ([^\x01]*))?\x01?$/.exec(text);
  return m ? (m[1] || '') : null;
}

// linkify splits text into [{text}|{text, href}] segments; http(s) URLs
// and bare www. names (linked as https) become links, nothing else.
export function linkify(text) {
  const out = [];
  const re = /\b(?:https?:\/\/|www\.(?=[a-z0-9-]+\.[a-z0-9]))[^\s<>"']+/gi;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    let url = m[0];
    // Trailing punctuation belongs to the sentence, and a closing paren
    // only to the URL if it opened one.
    for (;;) {
      const c = url[url.length - 1];
      if (/[.,;:!?'"]/.test(c)) { url = url.slice(0, -1); continue; }
      if (c === ')' && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) { url = url.slice(0, -1); continue; }
      break;
    }
    let href = null;
    try {
      const u = new URL(/^www\./i.test(url) ? 'https://' + url : url);
      if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href;
    } catch (e) { href = null; }
    if (!href) continue;
    if (m.index > last) out.push({ text: text.slice(last, m.index) });
    out.push({ text: url, href });
    last = m.index + url.length;
    re.lastIndex = last;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

// parseFormatting splits text with mIRC formatting codes into segments
// [{text, bold, italic, underline, strike, mono, fg, bg}], fg/bg being
// colour numbers 0-15 or null (extended 16-98 and hex colours are
// dropped: the page has no safe class for them). The caller renders
// each segment as a text node in a span with classes, so no code can
// make markup.
export function parseFormatting(s) {
  const out = [];
  const st = { bold: false, italic: false, underline: false, strike: false, mono: false, reverse: false, fg: null, bg: null };
  let buf = '';
  const flush = () => {
    if (!buf) return;
    let { fg, bg } = st;
    if (st.reverse) [fg, bg] = [bg == null ? 0 : bg, fg == null ? 1 : fg];
    out.push({ text: buf, bold: st.bold, italic: st.italic, underline: st.underline, strike: st.strike, mono: st.mono, fg, bg });
    buf = '';
  };
  const colour = (n) => { const v = parseInt(n, 10); return v >= 0 && v <= 15 ? v : null; };
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    switch (c) {
      case '\x02': flush(); st.bold = !st.bold; break;
      case '\x1d': flush(); st.italic = !st.italic; break;
      case '\x1f': flush(); st.underline = !st.underline; break;
      case '\x1e': flush(); st.strike = !st.strike; break;
      case '\x11': flush(); st.mono = !st.mono; break;
      case '\x16': flush(); st.reverse = !st.reverse; break;
      case '\x0f': flush(); Object.assign(st, { bold: false, italic: false, underline: false, strike: false, mono: false, reverse: false, fg: null, bg: null }); break;
      case '\x03': {
        flush();
        const m = /^(\d{1,2})(?:,(\d{1,2}))?/.exec(s.slice(i + 1));
        if (!m) { st.fg = null; st.bg = null; break; }
        st.fg = colour(m[1]);
        if (m[2] !== undefined) st.bg = colour(m[2]);
        i += m[0].length;
        break;
      }
      case '\x04': {
        flush();
        const m = /^([0-9a-fA-F]{6})(?:,([0-9a-fA-F]{6}))?/.exec(s.slice(i + 1));
        if (m) i += m[0].length;
        break;
      }
      default: buf += c;
    }
  }
  flush();
  return out;
}

// fold compares nicks and rooms as the server does (CASEMAPPING=ascii).
export function fold(s) {
  return String(s).replace(/[A-Z]/g, (c) => c.toLowerCase());
}

export const NICK_RE = /^[A-Za-z_\[\]{}\\|^`][A-Za-z0-9_\-\[\]{}\\|^`]{0,29}$/;

// roomName adds the # a user may leave out; null for an invalid name.
export function roomName(s) {
  s = String(s).trim();
  if (!s) return null;
  if (s[0] !== '#') s = '#' + s;
  if (s.length < 2 || byteLength(s) > 64 || /[\s,\x00-\x1f\x7f]/.test(s)) return null;
  return s;
}

// nickColor picks one of 16 palette slots for a nick, stable across
// sessions and case-insensitive.
export function nickColor(nick) {
  let h = 5381;
  const f = fold(nick);
  for (let i = 0; i < f.length; i++) h = ((h * 33) ^ f.charCodeAt(i)) >>> 0;
  return h % 16;
}

// parseModes walks a MODE change with the server's mode types, yielding
// {add, mode, arg}. prefixModes are o/v style (always an argument).
export function parseModes(modeStr, args, { prefixModes = 'ov', listModes = 'be', alwaysArg = 'k', setArg = 'l' } = {}) {
  const out = [];
  let add = true;
  let ai = 0;
  for (const c of modeStr) {
    if (c === '+') { add = true; continue; }
    if (c === '-') { add = false; continue; }
    let arg = null;
    if (prefixModes.includes(c) || listModes.includes(c) || alwaysArg.includes(c) || (add && setArg.includes(c))) {
      arg = args[ai++] ?? null;
    }
    out.push({ add, mode: c, arg });
  }
  return out;
}

// Unit test of the page's IRC helpers (web/static/irc.js) under node.
import assert from 'node:assert/strict';
import * as irc from '../static/irc.js';

const cases = [];
const test = (name, fn) => cases.push([name, fn]);

test('parse: tags with escapes, source, params, trailing', () => {
  const m = irc.parseLine('@time=2026-11-29T10:00:00.000Z;msgid=abc;+x=a\\sb\\:c\\\\d\\ne;flag :nick!~user@host PRIVMSG #room :hello :) world');
  assert.deepEqual(m.tags, { time: '2026-11-29T10:00:00.000Z', msgid: 'abc', '+x': 'a b;c\\d\ne', flag: '' });
  assert.equal(m.source, 'nick!~user@host');
  assert.equal(m.nick, 'nick'); assert.equal(m.user, '~user'); assert.equal(m.host, 'host');
  assert.equal(m.command, 'PRIVMSG');
  assert.deepEqual(m.params, ['#room', 'hello :) world']);
});
test('parse: tag escapes at the edges', () => {
  assert.equal(irc.unescapeTag('ab\\'), 'ab');
  assert.equal(irc.unescapeTag('\\x\\'), 'x');
  assert.equal(irc.parseLine('@a=;b FOO').tags.a, '');
});
test('parse: server source, numerics, empty trailing, extra spaces, CRLF', () => {
  const m = irc.parseLine(':livechat.local 353 me = #r :@op +v plain\r\n');
  assert.equal(m.nick, null); assert.equal(m.host, 'livechat.local');
  assert.deepEqual(m.params, ['me', '=', '#r', '@op +v plain']);
  assert.deepEqual(irc.parseLine('TOPIC #r :').params, ['#r', '']);
  assert.deepEqual(irc.parseLine('ping   a  b').params, ['a', 'b']);
  assert.equal(irc.parseLine('ping x').command, 'PING');
  assert.deepEqual(irc.parseLine(':n JOIN #a').params, ['#a']);
  assert.equal(irc.parseLine(':n JOIN #a').nick, 'n');
});
test('format: trailing only when needed, no line breaks smuggled', () => {
  assert.equal(irc.formatLine('PRIVMSG', ['#r', 'hi there']), 'PRIVMSG #r :hi there');
  assert.equal(irc.formatLine('JOIN', ['#r']), 'JOIN #r');
  assert.equal(irc.formatLine('PRIVMSG', ['#r', ':)']), 'PRIVMSG #r ::)');
  assert.equal(irc.formatLine('PRIVMSG', ['#r', '']), 'PRIVMSG #r :');
  assert.equal(irc.formatLine('PRIVMSG', ['#r', 'a\r\nQUIT :x']), 'PRIVMSG #r :a  QUIT :x');
  assert.equal(irc.formatLine('TAGMSG', ['#r'], { '+typing': 'active', label: 'a b;c' }), '@+typing=active;label=a\\sb\\:c TAGMSG #r');
});
test('tags round trip', () => {
  for (const v of ['plain', 'a b', 'x;y', 'back\\slash', 'cr\rlf\n', '']) {
    const line = irc.formatLine('TAGMSG', ['#r'], { k: v || 'z' });
    assert.equal(irc.parseLine(line).tags.k, v || 'z');
  }
});
test('splitText: by UTF-8 bytes, at spaces, never inside a character', () => {
  const parts = irc.splitText('héllo wörld ' + 'ü'.repeat(40), 20);
  for (const p of parts) assert.ok(irc.byteLength(p) <= 20, p);
  assert.equal(parts.join(''), 'héllo wörld' + 'ü'.repeat(40));
  assert.deepEqual(irc.splitText('short', 100), ['short']);
  const emoji = irc.splitText('😀'.repeat(10), 9);
  assert.ok(emoji.every((p) => irc.byteLength(p) <= 9 && !/[\ud800-\udbff]$/.test(p)));
});
test('multiline: a paste as lines and pieces that join back exactly', () => {
  const long = 'word '.repeat(30);
  const lines = irc.multilineLines('\nfirst\r\n\n' + long + '\nlast\n\n', 40);
  assert.equal(lines[0].text, 'first');
  assert.equal(lines[1].text, '');
  assert.ok(lines.every((l) => irc.byteLength(l.text) <= 40));
  assert.ok(lines.slice(3).some((l) => l.concat));
  assert.equal(irc.joinMultiline(lines), 'first\n\n' + long + '\nlast');
  assert.equal(irc.multilineLines('one line', 40), null);
  assert.equal(irc.multilineLines('a\nb\nc', 40, { maxLines: 2 }), null);
  assert.equal(irc.multilineLines('aaaa\nbbbb', 40, { maxBytes: 6 }), null);
  assert.deepEqual(irc.multilineLimits('max-bytes=4096,max-lines=100'), { maxBytes: 4096, maxLines: 100 });
});
test('linkify: only http(s), trailing punctuation left out', () => {
  assert.deepEqual(irc.linkify('see https://example.com/a?b=1. ok'), [
    { text: 'see ' }, { text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' }, { text: '. ok' }]);
  assert.deepEqual(irc.linkify('javascript:alert(1) data:text/html,x'), [{ text: 'javascript:alert(1) data:text/html,x' }]);
  const wiki = irc.linkify('(https://en.wikipedia.org/wiki/Foo_(bar))');
  assert.equal(wiki[1].href, 'https://en.wikipedia.org/wiki/Foo_(bar)');
  assert.equal(irc.linkify('<https://x.org/"><b>')[1].text, 'https://x.org/');
});
test('linkify: bare www. names link to https, other words do not', () => {
  assert.deepEqual(irc.linkify('go to www.example.com, now'), [
    { text: 'go to ' }, { text: 'www.example.com', href: 'https://www.example.com/' }, { text: ', now' }]);
  assert.deepEqual(irc.linkify('www.x and awww.example.com'), [{ text: 'www.x and awww.example.com' }]);
  assert.equal(irc.linkify('www.example.org/a?b=1')[0].href, 'https://www.example.org/a?b=1');
});
test('parseFormatting: bold, italic, underline, colours, reset; no codes left in text', () => {
  const segs = irc.parseFormatting('a\x02b\x1dc\x0f \x0304,12red\x03 \x1fu\x1f\x0399x\x04ff0000hex');
  assert.deepEqual(segs.map((x) => x.text), ['a', 'b', 'c', ' ', 'red', ' ', 'u', 'x', 'hex']);
  assert.ok(segs[1].bold && !segs[1].italic && segs[2].bold && segs[2].italic && !segs[3].bold);
  assert.equal(segs[4].fg, 4); assert.equal(segs[4].bg, 12);
  assert.equal(segs[5].fg, null); assert.ok(segs[6].underline);
  assert.equal(segs[7].fg, null); // 99: no colour
  assert.equal(segs.map((x) => x.text).join(''), irc.stripFormatting('a\x02b\x1dc\x0f \x0304,12red\x03 \x1fu\x1f\x0399x\x04ff0000hex'));
  assert.deepEqual(irc.parseFormatting('<b>x</b>'), [{ text: '<b>x</b>', bold: false, italic: false, underline: false, strike: false, mono: false, fg: null, bg: null }]);
});
test('names, nicks, colours, formatting, CTCP, modes', () => {
  assert.equal(irc.roomName('lobby'), '#lobby');
  assert.equal(irc.roomName(' #Lobby '), '#Lobby');
  assert.equal(irc.roomName('a b'), null);
  assert.equal(irc.roomName('a,b'), null);
  assert.equal(irc.roomName(''), null);
  assert.ok(irc.NICK_RE.test('wendy') && irc.NICK_RE.test('[x]_|^') && !irc.NICK_RE.test('9lives') && !irc.NICK_RE.test('-x'));
  assert.equal(irc.nickColor('Wendy'), irc.nickColor('wendy'));
  assert.equal(irc.stripFormatting('\x02bold\x02 \x0304,12red\x03 \x1ditalic\x0f'), 'bold red italic');
  assert.equal(irc.ctcpAction('\x01ACTION waves\x01'), 'waves');
  assert.equal(irc.ctcpAction('hello'), null);
  assert.deepEqual(irc.parseModes('+ov-k+lb', ['a', 'b', 'key', '5', 'm!*@*']).map((c) => `${c.add ? '+' : '-'}${c.mode}=${c.arg}`),
    ['+o=a', '+v=b', '-k=key', '+l=5', '+b=m!*@*']);
  assert.deepEqual(irc.parseModes('-l+m', []).map((c) => c.arg), [null, null]);
});

let failed = 0;
for (const [name, fn] of cases) {
  try { fn(); console.log(`PASS irc.js: ${name}`); } catch (e) { failed++; console.log(`FAIL irc.js: ${name}: ${e.message}`); }
}
if (failed) process.exit(1);

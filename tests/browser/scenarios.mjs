// The web client in real Chromium (Debian's /usr/lib/chromium/chromium with a fake camera and
// microphone), driven by playwright-core, against the real tiaojie binary. Run by `./run`,
// which puts everything in a loopback-only network namespace. Assertions read the DOM and
// RTCPeerConnection.getStats(), never sleeps alone. Screenshots go to docs/screenshots/.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const BIN = path.resolve(root, process.env.TIAOJIE_BIN ?? 'target/debug/tiaojie');
const CHROMIUM = process.env.TIAOJIE_CHROMIUM ?? '/usr/lib/chromium/chromium';
const SHOTS = path.join(root, 'docs/screenshots');
const PORT = 8080;
const BASE = `http://127.0.0.1:${PORT}`;
const SECRET = 'browser-scenarios-secret-0123456789abcdefghij';
const only = process.argv[2];

const dataDir = mkdtempSync(path.join(tmpdir(), 'tiaojie-browser-'));
// The court bridge (tiaojie-court-bridge, beside the server binary): its key is made first so
// the server can trust it; it learns the server's key from `tiaojie keys server-public`.
const BRIDGE_BIN = path.join(path.dirname(BIN), 'tiaojie-court-bridge');
const BRIDGE_PORT = 8090;
const BRIDGE = `http://127.0.0.1:${BRIDGE_PORT}`;
const JUDGE_TOKEN = 'browser-judge-token-0123456789abcdef';
const bridgeDir = path.join(dataDir, 'bridge');
const bridgeConfig = path.join(dataDir, 'court-bridge.toml');
const writeBridgeConfig = (serverKey) =>
  writeFileSync(
    bridgeConfig,
    `name = "browser-court"\nserver_url = "ws://127.0.0.1:${PORT}/confirmation/bridge"\n` +
      `server_public_key = "${serverKey}"\ndata_dir = "${bridgeDir}"\nlisten = "127.0.0.1:${BRIDGE_PORT}"\n\n` +
      `[[judges]]\nid = "judge-qian"\nname = "钱法官"\ntoken = "${JUDGE_TOKEN}"\n`,
  );
writeBridgeConfig('A'.repeat(43) + '=');
const bridgeKey = execFileSync(BRIDGE_BIN, ['--config', bridgeConfig, 'key']).toString().trim();
const env = {
  ...process.env,
  TIAOJIE_SERVER_LISTEN: `127.0.0.1:${PORT}`,
  TIAOJIE_SERVER_DATA_DIR: dataDir,
  TIAOJIE_AUTH_SECRET: SECRET,
  TIAOJIE_MEDIA_BIND: '127.0.0.1:50000',
  TIAOJIE_SIGNALING_RESUME_GRACE: '8s',
  TIAOJIE_LOG_LEVEL: process.env.TIAOJIE_LOG_LEVEL ?? 'warn',
  TIAOJIE_CONFIRMATION_BRIDGE_KEYS: bridgeKey,
};
writeBridgeConfig(execFileSync(BIN, ['keys', 'server-public'], { env }).toString().trim());

function token(args) {
  return execFileSync(BIN, ['token', 'create', ...args], { env }).toString().trim();
}

function joinToken(room, identity, name, role) {
  return token(['--room', room, '--identity', identity, '--name', name, '--role', role, '--ttl', '1h']);
}

const adminToken = () => token(['--identity', 'admin', '--role', 'admin', '--ttl', '1h']);

async function api(method, path, body) {
  const response = await fetch(`${BASE}/api${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken()}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

async function until(what, check, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last === true || (last && last.ok)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

// ---- the server and the browser ---------------------------------------------------------------

async function startServer() {
  const server = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  await until('the server to answer /healthz', async () => {
    try {
      return (await fetch(`${BASE}/healthz`)).ok;
    } catch {
      return false;
    }
  });
  return server;
}

async function startBridge() {
  const bridge = spawn(BRIDGE_BIN, ['--config', bridgeConfig, 'serve'], {
    env: { ...process.env, TIAOJIE_LOG: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await until('the court bridge to be connected', async () => {
    try {
      return (await (await fetch(`${BRIDGE}/healthz`)).json()).connected === true;
    } catch {
      return false;
    }
  });
  return bridge;
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    '--no-sandbox',
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    '--allow-loopback-in-peer-connection',
    '--autoplay-policy=no-user-gesture-required',
  ],
});

// Every context a scenario opens, so the runner closes what a scenario left open (a failed
// one above all): pages left playing fake video load the two cores and fail what comes next.
const openContexts = new Set();

// ---- every message in the person's language ------------------------------------------------

/**
 * Installed in every page: while the page is in Chinese, any text that becomes visible is read
 * for English words — including a refusal shown for a moment — and kept in
 * `window.__english` with the screen it appeared on. Allowed: the language switch ("English"), PDF,
 * SHA-256, hashes and links.
 */
function watchForEnglish() {
  const ALLOWED = new Set(['English', 'SHA', 'PDF']);
  window.__english = [];
  const screen = () => [...document.querySelectorAll('[data-screen]')].find((s) => !s.hidden)?.id ?? location.pathname;
  const scan = (root) => {
    if (document.documentElement.lang !== 'zh-CN' || !root) return;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.currentNode; node; node = walker.nextNode()) {
      if (node.nodeType !== Node.TEXT_NODE) continue;
      const parent = node.parentElement;
      // Device names in the pickers are the browser's, not ours.
      if (!parent || ['SCRIPT', 'STYLE', 'OPTION', 'TITLE'].includes(parent.tagName)) continue;
      if (parent.checkVisibility && !parent.checkVisibility()) continue;
      const text = node.textContent
        .replace(/https?:\/\/\S+/g, ' ')
        .replace(/\b[0-9a-f]{8,}\b/gi, ' ');
      const words = (text.match(/[A-Za-z][A-Za-z'’]*[A-Za-z]/g) ?? []).filter((w) => !ALLOWED.has(w));
      if (words.length) window.__english.push({ screen: screen(), words, text: node.textContent.slice(0, 200) });
    }
  };
  const start = () => {
    scan(document.body);
    new MutationObserver((mutations) => {
      for (const m of mutations) scan(m.type === 'characterData' ? m.target.parentElement : m.target);
    }).observe(document.body, { childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ['hidden', 'class'] });
  };
  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);
}

/** Fails with every English text a Chinese page has shown since the last look, and where. */
async function assertChinese(p, where) {
  if (p.page.isClosed()) return;
  const found = await p.page.evaluate(() => {
    const seen = window.__english ?? [];
    window.__english = [];
    return seen;
  }).catch(() => []);
  if (found.length) {
    const lines = found.slice(0, 10).map((f) => `  [${f.screen}] ${f.words.join(', ')} in: ${JSON.stringify(f.text)}`);
    throw new Error(`English on a Chinese page (${where}, ${p.identity ?? p.page.url()}):\n${lines.join('\n')}`);
  }
}

/**
 * In the page: every visible label, button, header or badge whose text is squeezed into a column
 * (a character or so per line, as a too-narrow button or a table header on a phone shows it).
 */
function squeezedText() {
  const found = [];
  for (const el of document.querySelectorAll('button, th, label, summary, h1, h2, h3, .badge, caption, dt')) {
    if (!el.getClientRects().length) continue;
    // Each run of text on its own (a label's text, not the field it holds): its line boxes
    // are the distinct tops of its fragments.
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const chars = [...node.data.replace(/\s+/g, '')].length;
      if (chars < 2) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
      if (tops.size >= 2 && chars / tops.size < 2) {
        found.push({ tag: el.tagName.toLowerCase(), text: node.data.trim(), lines: tops.size });
      }
    }
  }
  return found;
}

/** Fails when the page shows text squeezed into a column (see `squeezedText`). */
async function assertLayout(p, where) {
  if (p.page.isClosed()) return;
  const found = await p.page.evaluate(squeezedText);
  if (found.length) {
    const lines = found.slice(0, 10).map((f) => `  <${f.tag}> ${JSON.stringify(f.text)} on ${f.lines} lines`);
    const size = p.page.viewportSize();
    throw new Error(`text squeezed into a column (${where}, ${size.width}×${size.height}):\n${lines.join('\n')}`);
  }
}

/** A person with their own browser context (own storage) on a phone- or desktop-sized page. */
async function person(viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, locale: 'zh-CN' });
  await context.addInitScript(watchForEnglish);
  openContexts.add(context);
  context.on('close', () => openContexts.delete(context));
  const page = await context.newPage();
  // A page a scenario closes is read for English first: what it showed counts too.
  const close = context.close.bind(context);
  context.close = async (options) => {
    try {
      await assertChinese({ page }, 'its last screen');
    } finally {
      await close(options);
    }
  };
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  if (process.env.DEBUG_CONSOLE) page.on('console', (m) => console.error(`[console ${m.type()}] ${m.text()}`));
  return { context, page };
}

async function enter(room, identity, name, role, beforeJoin) {
  const p = await person();
  p.identity = identity;
  await beforeJoin?.(p);
  await p.page.goto(`${BASE}/join?token=${joinToken(room, identity, name, role)}`);
  await p.page.locator('#check').waitFor();
  await p.page.locator('#join').click();
  return p;
}

/**
 * A page's signaling through a WebSocket route that can be cut: `install` before the page
 * connects; `cut()` closes the socket and refuses new ones; `restore()` lets them through.
 */
function cuttableSignaling() {
  let cut = false;
  const sockets = [];
  const close = (ws) => ws.close({ code: 4999, reason: 'network cut (test)' });
  return {
    install: (p) =>
      p.page.routeWebSocket(/\/ws$/, (ws) => {
        if (cut) return close(ws);
        sockets.push(ws);
        ws.connectToServer();
      }),
    async cut() {
      cut = true;
      for (const ws of sockets.splice(0)) await close(ws);
    },
    restore() {
      cut = false;
    },
  };
}

/** Per remote publisher: video frames decoded and audio packets received so far. */
function inbound(p) {
  return p.page.evaluate(async () => {
    const s = window.tiaojie;
    const out = {};
    if (!s.media?.pc) return out;
    for (const [id, stream] of s.media.streams) {
      out[id] = { video: 0, audio: 0 };
      for (const track of stream.getTracks()) {
        const receiver = s.media.pc.getReceivers().find((r) => r.track === track);
        if (!receiver) continue;
        (await receiver.getStats()).forEach((x) => {
          if (x.type !== 'inbound-rtp') return;
          if (x.kind === 'video') out[id].video = x.framesDecoded ?? 0;
          else out[id].audio = x.packetsReceived ?? 0;
        });
      }
    }
    return out;
  });
}

async function receivesFrom(p, others, kinds = ['video', 'audio']) {
  await until(`${p.identity} to decode ${kinds} from ${others}`, async () => {
    const stats = await inbound(p);
    const ok = others.every((o) => kinds.every((k) => (stats[o]?.[k] ?? 0) > 5));
    return { ok, stats };
  });
}

/** Video frames decoded from `from`'s shared screen. */
function screenFrames(p, from) {
  return p.page.evaluate(async (from) => {
    const s = window.tiaojie;
    const track = s.media?.screens.get(from)?.getVideoTracks()[0];
    const receiver = track && s.media.pc.getReceivers().find((r) => r.track === track);
    let frames = 0;
    if (receiver) (await receiver.getStats()).forEach((x) => x.type === 'inbound-rtp' && (frames = x.framesDecoded ?? 0));
    return frames;
  }, from);
}

/**
 * Clicks `action` on `p`'s page and takes the file it downloads; checks it is a PDF whose text
 * (pdftotext) holds each of `expected`.
 */
async function downloadPdf(p, locator, expected) {
  const [download] = await Promise.all([p.page.waitForEvent('download'), locator.click()]);
  const file = await download.path();
  const bytes = readFileSync(file);
  if (bytes.subarray(0, 5).toString() !== '%PDF-') throw new Error(`${download.suggestedFilename()} is not a PDF`);
  const text = execFileSync('pdftotext', [file, '-']).toString().replace(/\s+/g, '');
  for (const e of expected) {
    if (!text.includes(e)) throw new Error(`${e} not in ${download.suggestedFilename()}: ${text.slice(0, 400)}`);
  }
  return download.suggestedFilename();
}

/** Counts of `kind` from `from` grow (true) or stand still (false) over `ms`. */
async function flowing(p, from, kind, ms = 2500) {
  const before = (await inbound(p))[from]?.[kind] ?? 0;
  await new Promise((r) => setTimeout(r, ms));
  const after = (await inbound(p))[from]?.[kind] ?? 0;
  return after > before;
}

async function shot(p, name) {
  mkdirSync(SHOTS, { recursive: true });
  await p.page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
  await assertChinese(p, `screenshot ${name}`);
  await assertLayout(p, `screenshot ${name}`);
}

/** Every open page of the scenario: nothing English was shown. */
async function assertAllChinese(where) {
  for (const context of openContexts) {
    for (const page of context.pages()) await assertChinese({ page }, where);
  }
}

// ---- scenarios ----------------------------------------------------------------------------

const scenarios = {
  async 'a mediator admits two parties from the lobby and all three see and hear each other'() {
    await api('POST', '/rooms', { name: 's1', lobby: true });
    const m = await enter('s1', 'mediator', '李调解员', 'mediator');
    const a = await enter('s1', 'party-a', '张三', 'party');
    const b = await enter('s1', 'party-b', '王五', 'party');
    for (const p of [a, b]) {
      await p.page.locator('#lobby').waitFor();
      await p.page.locator('#lobby-message').filter({ hasText: '调解员将允许您进入' }).waitFor();
    }
    await shot(a, 'lobby');
    // The mediator sees both waiting and admits them.
    const waiting = m.page.locator('#waiting li');
    await until('two people waiting', async () => ({
      ok: (await waiting.count()) === 2,
      waiting: await waiting.allTextContents(),
      screen: await m.page.evaluate(() => [...document.querySelectorAll('[data-screen]')].find((s) => !s.hidden)?.id),
    }));
    await shot(m, 'mediator-lobby-list');
    for (const name of ['张三', '王五']) {
      await m.page.locator('#waiting li', { hasText: name }).getByRole('button', { name: '允许进入' }).click();
    }
    for (const p of [a, b]) await p.page.locator('#room').waitFor();
    await receivesFrom(m, ['party-a', 'party-b']);
    await receivesFrom(a, ['mediator', 'party-b']);
    await receivesFrom(b, ['mediator', 'party-a']);
    // The page offered its camera and microphone `sendrecv`: the SFU answers those lines
    // `recvonly`, so the page holds no phantom remote track (its own stream echoed back).
    for (const [p, others] of [[m, ['party-a', 'party-b']], [a, ['mediator', 'party-b']], [b, ['mediator', 'party-a']]]) {
      const seen = await p.page.evaluate(() => ({
        streams: [...window.tiaojie.media.streams.keys()].sort(),
        own: window.tiaojie.media.pc
          .getTransceivers()
          .filter((t) => window.tiaojie.local.getTracks().includes(t.sender.track))
          .map((t) => t.currentDirection),
      }));
      if (JSON.stringify(seen.streams) !== JSON.stringify(others) || seen.own.length !== 2 || seen.own.some((d) => d !== 'sendonly')) {
        throw new Error(`${p.identity}: remote streams and own lines ${JSON.stringify(seen)}`);
      }
    }
    // Names and roles are on the tiles.
    await a.page.locator('[data-tile="mediator"] .role', { hasText: '调解员' }).waitFor();
    await shot(m, 'room-three-people');
    await m.page.setViewportSize({ width: 390, height: 844 });
    await shot(m, 'room-phone');
    return { m, a, b };
  },

  async 'a party on audio only stops receiving video, keeps audio, and gets video back'(ctx) {
    const { a } = ctx;
    await a.page.locator('#audio-only-toggle').click();
    await until('video to stop', async () => !(await flowing(a, 'mediator', 'video')));
    if (!(await flowing(a, 'mediator', 'audio'))) throw new Error('audio stopped with video');
    await a.page.locator('#audio-only-toggle[aria-pressed="true"]').waitFor();
    await shot(a, 'audio-only');
    await a.page.locator('#audio-only-toggle').click();
    await until('video to resume', () => flowing(a, 'mediator', 'video'));
  },

  async 'the mediator mutes a party and nobody receives its audio until unmuted'(ctx) {
    const { m, a, b } = ctx;
    const tile = m.page.locator('[data-tile="party-b"]');
    await tile.locator('button.mod').first().click();
    await a.page.locator('[data-tile="party-b"] .badge', { hasText: '已静音' }).waitFor();
    for (const p of [m, a]) {
      await until(`${p.identity} to stop hearing party-b`, async () => !(await flowing(p, 'party-b', 'audio')));
    }
    await tile.locator('button.mod').first().click();
    for (const p of [m, a]) {
      await until(`${p.identity} to hear party-b again`, () => flowing(p, 'party-b', 'audio'));
    }
    await b.page.locator('#room').waitFor();
  },

  async 'the mediator starts recording, everyone sees it at once, and pause and stop show too'(ctx) {
    const { m, a, b } = ctx;
    if (await a.page.locator('#record-toggle').isVisible()) throw new Error('a party sees the record button');
    await m.page.getByRole('button', { name: '开始录制' }).click();
    for (const p of [m, a, b]) {
      await p.page.locator('#recording:not([hidden])', { hasText: '正在录音录像' }).waitFor();
    }
    await shot(a, 'recording');
    await m.page.getByRole('button', { name: '暂停录制' }).click();
    await b.page.locator('#recording', { hasText: '录制已暂停' }).waitFor();
    await m.page.getByRole('button', { name: '继续录制' }).click();
    await b.page.locator('#recording', { hasText: '正在录音录像' }).waitFor();
    await new Promise((r) => setTimeout(r, 2000));
    await m.page.getByRole('button', { name: '停止录制' }).click();
    for (const p of [m, a, b]) await p.page.locator('#recording').waitFor({ state: 'hidden' });
    // The browsers' own Opus and VP8 become playable files.
    const list = await until(
      'the recording to finish with its files',
      async () => {
        const all = await api('GET', '/recordings');
        return { ok: all[0]?.state === 'finished', all };
      },
      30000,
    );
    // Those in the room are shown the fingerprint (chain head) the signed manifest commits to.
    await a.page.locator('#chat-log li.notice', { hasText: list.all[0].chain_head }).waitFor();
    const kinds = list.all[0].files.map((f) => f.kind).sort();
    if (kinds.filter((k) => k === 'video').length !== 3 || !kinds.includes('mixed')) {
      throw new Error(`unexpected files: ${JSON.stringify(list.all[0].files)}`);
    }
  },

  async 'a party shares its screen, the others see it, and it stops when the rooms split'(ctx) {
    const { m, a, b } = ctx;
    await a.page.locator('#screen-share').click();
    for (const p of [m, b]) {
      await p.page.locator('[data-screen-tile="party-a"] .name', { hasText: '张三 共享的屏幕' }).waitFor();
      await until(`${p.identity} to decode party-a's screen`, async () => ({
        ok: (await screenFrames(p, 'party-a')) > 5,
      }));
    }
    await a.page.locator('#screen-share[aria-pressed="true"]').waitFor();
    await m.page.locator('[data-tile="party-a"] .badge', { hasText: '正在共享屏幕' }).waitFor();
    await shot(m, 'screen-share');
    // The mediator takes party-b aside (背对背): the share ends for everyone, and the sharer's
    // own page stops capturing and says why.
    await m.page.evaluate(() => window.tiaojie.signaling.moderate('move', 'party-b', { space: 'private:respondent' }));
    await a.page.locator('#chat-log li.notice', { hasText: '屏幕共享已停止' }).waitFor();
    await a.page.locator('#screen-share[aria-pressed="false"]:disabled').waitFor();
    await m.page.locator('[data-screen-tile]').waitFor({ state: 'detached' });
    const capturing = await a.page.evaluate(() => Boolean(window.tiaojie.media.screen));
    if (capturing) throw new Error('the sharer still captures its screen after the split');
    // Together again: sharing is possible once more; the sharer starts and stops it.
    await m.page.evaluate(() => window.tiaojie.signaling.moderate('move', 'party-b', { space: 'joint' }));
    await a.page.locator('#screen-share:enabled').click();
    await b.page.locator('[data-screen-tile="party-a"]').waitFor();
    await a.page.locator('#screen-share[aria-pressed="true"]').click();
    for (const p of [m, b]) await p.page.locator('[data-screen-tile]').waitFor({ state: 'detached' });
  },

  async 'a party whose network drops and returns within the grace period never leaves'() {
    // The party's signaling is cut for a few seconds, then let through again.
    const network = cuttableSignaling();
    const c = await enter('s4', 'party-c', '赵六', 'party', network.install);
    const m = await enter('s4', 'mediator-2', '钱调解员', 'mediator');
    await until('party-c in the room', () =>
      c.page.evaluate(() => ({
        ok: !document.getElementById('room').hidden,
        screen: [...document.querySelectorAll('[data-screen]')].find((x) => !x.hidden)?.id,
        error: document.getElementById('error-message').textContent,
      })),
    );
    await receivesFrom(m, ['party-c']);
    await m.page.evaluate(() => {
      window.leftEvents = [];
      window.tiaojie.signaling.addEventListener('participant.left', (e) => window.leftEvents.push(e.detail.identity));
    });
    await network.cut();
    await c.page.locator('#reconnecting').waitFor();
    await shot(c, 'reconnecting');
    await m.page.locator('[data-tile="party-c"] .badge', { hasText: '等待重连' }).waitFor();
    await new Promise((r) => setTimeout(r, 3000));
    network.restore();
    await c.page.locator('#reconnecting').waitFor({ state: 'hidden', timeout: 15000 });
    await m.page.locator('[data-tile="party-c"] .badge', { hasText: '等待重连' }).waitFor({ state: 'detached' });
    const left = await m.page.evaluate(() => window.leftEvents);
    if (left.length) throw new Error(`the mediator saw leaves: ${left}`);
    await until('media from party-c to keep flowing', () => flowing(m, 'party-c', 'video'));
    await until('media to party-c to keep flowing', () => flowing(c, 'mediator-2', 'audio'));
    // The party's connection works again: a chat message goes through.
    await c.page.locator('#chat-input').fill('我回来了');
    await c.page.locator('#chat-form button').click();
    await m.page.locator('#chat-log li', { hasText: '我回来了' }).waitFor();
    await c.context.close();
    await m.context.close();
  },

  async 'after the grace period the page offers to enter again, and that works'() {
    const network = cuttableSignaling();
    const e = await enter('s9', 'party-e', '冯九', 'party', network.install);
    const m = await enter('s9', 'mediator-5', '陈调解员', 'mediator');
    await m.page.locator('[data-tile="party-e"]').waitFor();
    await network.cut();
    // The grace period (8 s here) runs out: the others see the party leave, the party's page
    // stops trying and offers to enter again.
    await m.page.locator('[data-tile="party-e"]').waitFor({ state: 'detached', timeout: 20000 });
    await e.page.locator('#rejoin').waitFor({ timeout: 20000 });
    await e.page.locator('#reconnecting-text', { hasText: '未能恢复连接' }).waitFor();
    network.restore();
    await e.page.locator('#rejoin').click();
    await e.page.locator('#join').click();
    await e.page.locator('#room').waitFor();
    await m.page.locator('[data-tile="party-e"]').waitFor();
    await receivesFrom(m, ['party-e']);
    for (const p of [m, e]) await p.context.close();
  },

  async 'a declined person is told so, and the admin page lists live rooms and acts on them'() {
    await api('POST', '/rooms', { name: 's7', lobby: true });
    const m = await enter('s7', 'mediator-3', '孙调解员', 'mediator');
    const d = await enter('s7', 'party-d', '周七', 'party');
    await d.page.locator('#lobby').waitFor();
    await m.page.locator('#waiting li', { hasText: '周七' }).getByRole('button', { name: '拒绝' }).click();
    await d.page.locator('#left-message', { hasText: '调解员未允许您进入本次调解' }).waitFor();
    // Declined is out: a new link for 周七 is refused until the mediator lets them back.
    const again = await enter('s7', 'party-d', '周七', 'party');
    await again.page.locator('#error-message', { hasText: '该链接已被撤销' }).waitFor();
    const removed = m.page.locator('#removed li', { hasText: '周七' });
    await removed.waitFor();
    await shot(m, 'moderation-removed');
    await removed.getByRole('button', { name: '允许返回' }).click();
    await m.page.locator('#removed-box').waitFor({ state: 'hidden' });
    const back = await enter('s7', 'party-d', '周七', 'party');
    await back.page.locator('#lobby').waitFor();
    await m.page.locator('#waiting li', { hasText: '周七' }).waitFor();
    for (const p of [again, back]) await p.context.close();

    const admin = await person();
    await admin.page.goto(`${BASE}/admin`);
    await admin.page.locator('#admin-token').fill(adminToken());
    await admin.page.locator('#token-form button').click();
    const room = admin.page.locator('[data-room="s7"]');
    await room.locator('td', { hasText: '孙调解员' }).waitFor();
    await admin.page.locator('#cases table').waitFor();
    await shot(admin, 'admin');
    await room.getByRole('button', { name: '关闭调解室' }).click();
    await m.page.locator('#left-message', { hasText: '调解室已关闭' }).waitFor();
    for (const p of [m, d, admin]) await p.context.close();
  },

  async 'a mediation: identity checks, a private room and signing the agreement'() {
    // The mediator's staff token opens the case; everyone gets a personal link.
    const staff = token(['--identity', 'med-wang', '--name', '王调解', '--role', 'mediator', '--ttl', '1h']);
    const asStaff = async (method, path, body) => {
      const response = await fetch(`${BASE}/api${path}`, {
        method,
        headers: { authorization: `Bearer ${staff}`, 'content-type': 'application/json' },
        body: body ? JSON.stringify(body) : undefined,
      });
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
      return response.json();
    };
    // The mediator opens the case and issues the links on the admin page, with a staff token.
    const desk = await person();
    await desk.page.goto(`${BASE}/admin`);
    await desk.page.fill('#admin-token', staff);
    await desk.page.locator('#token-form button').click();
    await desk.page.locator('#new-case-box summary').click();
    const form = desk.page.locator('#new-case');
    await form.locator('[name=number]').fill('(2026)京0105民诉前调7号');
    await form.locator('[name=case_type]').fill('民间借贷纠纷');
    await form.locator('[name=amount]').fill('40000');
    await form.locator('[name=mediator_id]').fill('med-wang');
    await form.locator('[name=mediator_name]').fill('王调解');
    // People with pickers: a row per person, sides and "represents" chosen, nothing typed as
    // codes. Two party rows (one per side) are there to begin with.
    const rows = form.locator('#member-rows .member');
    for (const [i, [account, name]] of [['p-zhang', '张三'], ['p-li', '李四']].entries()) {
      await rows.nth(i).locator('[name=name]').fill(name);
      await rows.nth(i).locator('[name=id]').fill(account);
    }
    await form.locator('#add-agent').click();
    const agent = rows.nth(2);
    await agent.locator('[name=name]').fill('赵律师');
    await agent.locator('[name=id]').fill('lawyer-zhao');
    await agent.locator('[name=side]').selectOption('applicant');
    await agent.locator('[name=represents]').selectOption({ label: '张三' });
    await form.locator('button[type=submit]').click();
    const row = desk.page.locator('#cases tr', { hasText: '(2026)京0105民诉前调7号' });
    await row.locator('[data-action="start-session"]').click();
    await desk.page.locator('#cases tr.links li').nth(3).waitFor();
    await shot(desk, 'mediation-case-desk');
    const id = await row.getAttribute('data-case');
    const people = {};
    for (const who of ['med-wang', 'p-zhang', 'p-li', 'lawyer-zhao']) {
      const link = await desk.page.locator(`#cases tr.links li[data-person="${who}"] code`).textContent();
      const p = await person();
      p.identity = who;
      await p.page.goto(link);
      await p.page.locator('#join').click();
      people[who] = p;
    }
    await desk.context.close();
    const { 'med-wang': m, 'p-zhang': zhang, 'p-li': li, 'lawyer-zhao': zhao } = people;
    const click = (p, action) => p.page.locator(`[data-action="${action}"]`).click();

    // In the waiting room each party reads the warning and answers the consents.
    for (const p of [zhang, li]) {
      await p.page.locator('#lobby #case .warning-text').waitFor();
      await click(p, 'ack-warning');
      for (const subject of ['online_mediation', 'recording', 'recording_replaces_minutes']) {
        await click(p, `consent-${subject}-yes`);
        await p.page.locator(`[data-subject="${subject}"] .ok`).waitFor();
      }
    }
    await click(zhao, 'ack-warning');
    await zhao.page.locator('#case .own-checks .ok', { hasText: '已确认知悉' }).waitFor();
    await shot(li, 'mediation-party-checks');
    // The same on a phone: labels and buttons keep their words on a line.
    await li.page.setViewportSize({ width: 390, height: 844 });
    await shot(li, 'mediation-party-checks-phone');
    await li.page.setViewportSize({ width: 1280, height: 800 });

    // The mediator's table is live and true: everyone present shows where they are, in words,
    // and what they still lack; the admit button waits for the checks.
    for (const who of ['p-zhang', 'p-li', 'lawyer-zhao']) {
      await m.page.locator(`#case .person-check[data-person="${who}"] .where`, { hasText: '在等候室等候' }).waitFor();
    }
    await m.page.locator('#case .person-check[data-person="p-li"] .lacking', { hasText: '身份尚未核验' }).waitFor();
    await m.page.locator('#waiting li', { hasText: '李四' }).locator('button[disabled]', { hasText: '允许进入' }).waitFor();
    // Starting too early is refused, naming who lacks what; then the mediator verifies everyone.
    await click(m, 'start');
    await m.page.locator('#case .case-note', { hasText: '张三：身份尚未核验' }).waitFor();
    await click(m, 'verify-p-zhang-id_document_video');
    await m.page.locator('.person-check[data-person="p-zhang"] .item', { hasText: '已核验' }).filter({ hasText: '证件比对' }).waitFor();
    await click(m, 'verify-p-li-face_recognition');
    await m.page.locator('.person-check[data-person="p-li"] .item', { hasText: '已核验' }).filter({ hasText: '人脸识别' }).waitFor();
    // An offline check is recorded with a note, in the page's own dialog.
    await click(m, 'verify-lawyer-zhao-offline');
    await m.page.locator('dialog.ask [name=note]').fill('律师证线下核验');
    await m.page.locator('dialog.ask [data-action="dialog-ok"]').click();
    await m.page.locator('.person-check[data-person="lawyer-zhao"] .item', { hasText: '已核验' }).filter({ hasText: '线下核验' }).waitFor();
    await zhang.page.locator('#case .own-checks .ok', { hasText: '身份已核验' }).waitFor();
    await shot(m, 'mediation-identity-check');
    await click(m, 'start');
    for (const p of [zhang, li, zhao]) await p.page.locator('#room').waitFor();
    await m.page.locator('#case .phase', { hasText: '调解中' }).waitFor();
    await receivesFrom(li, ['p-zhang', 'med-wang']);

    // 背对背: one click takes the applicant side (party and lawyer) and the mediator aside.
    await click(m, 'private-applicant');
    await zhang.page.locator('#where', { hasText: '单独调解室（申请方）' }).waitFor();
    await zhao.page.locator('#where', { hasText: '单独调解室（申请方）' }).waitFor();
    await li.page.locator('#elsewhere [data-person="p-zhang"]', { hasText: '单独调解室（申请方）' }).waitFor();
    await until('李四 to hear nothing more of 张三', async () => !(await flowing(li, 'p-zhang', 'audio', 1500)));
    await receivesFrom(zhang, ['med-wang']);
    await zhang.page.fill('#chat-input', '私下说：底线四万');
    await zhang.page.locator('#chat-form button').click();
    await zhao.page.locator('#chat-log', { hasText: '底线四万' }).waitFor();
    await new Promise((r) => setTimeout(r, 500));
    if ((await li.page.locator('#chat-log').textContent()).includes('底线四万')) {
      throw new Error('the other side read the private room chat');
    }
    await shot(zhang, 'mediation-private-room');
    // A judge is asked to assist: invited from the panel, joins with the link, and the
    // mediator brings the judge into the private room.
    await m.page.fill('#invite-id', 'judge-sun');
    await m.page.fill('#invite-name', '孙法官');
    await click(m, 'invite-judge');
    const judgeLink = await m.page.locator('#case .invite-link code').textContent();
    const judge = await person();
    judge.identity = 'judge-sun';
    await judge.page.goto(judgeLink);
    await judge.page.locator('#join').click();
    await judge.page.locator('#room').waitFor();
    await click(m, 'goto-judge-sun-private:applicant');
    await judge.page.locator('#where', { hasText: '单独调解室（申请方）' }).waitFor();
    await receivesFrom(judge, ['p-zhang'], ['audio']);
    await click(m, 'goto-judge-sun-joint');
    await judge.context.close();
    await click(m, 'joint-applicant');
    await zhang.page.locator('#where', { hasText: '调解室' }).waitFor();
    await until('李四 to hear 张三 again', () => flowing(li, 'p-zhang', 'audio', 1000));
    // Back from the private room, the mediator sees the other side again (a new keyframe).
    await until('the mediator to see 李四 again', () => flowing(m, 'p-li', 'video', 1000), 20000);

    // More time, by both parties' consent: proposed by the mediator, agreed on each page.
    await m.page.locator('#case .limit', { hasText: '30 天' }).waitFor();
    await click(m, 'propose-extension');
    await m.page.locator('dialog.ask [name=days]').fill('5');
    await m.page.locator('dialog.ask [data-action="dialog-ok"]').click();
    for (const p of [zhang, li]) {
      await p.page.locator('#case .extension .pending', { hasText: '5 天' }).waitFor();
      await click(p, 'extension-yes');
    }
    await m.page.locator('#case .limit', { hasText: '35 天' }).waitFor();

    // Minutes, live; the agreement from the template; everyone signs; it takes effect.
    await m.page.fill('#minutes-editor', '调解笔录：双方同意分期还款。');
    await li.page.locator('#case .minutes-text', { hasText: '分期还款' }).waitFor();
    await click(li, 'confirm-minutes');
    await li.page.locator('#case .minutes .ok', { hasText: '已确认' }).waitFor();
    // Both parties consented in the waiting room: once the session is recorded, the recording
    // may replace the minutes.
    await m.page.getByRole('button', { name: '开始录制' }).click();
    await zhang.page.locator('#recording:not([hidden])').waitFor();
    await click(m, 'replace-minutes');
    await zhang.page.locator('#case .minutes .ok', { hasText: '代替笔录' }).waitFor();
    await m.page.fill('#agreement-terms', '一、李四于2026年12月31日前向张三支付人民币四万元。');
    // Anyone's change to the case redraws the panel; what the mediator typed must survive it.
    await m.page.evaluate(() => window.tiaojie.case.render());
    const kept = await m.page.locator('#agreement-terms').inputValue();
    if (!kept.includes('四万元')) throw new Error(`the terms typed were lost on a redraw: "${kept}"`);
    await click(m, 'draft');
    const hash = await m.page.locator('#case .sha256').textContent();
    for (const p of [zhang, li]) await p.page.locator('#case .sha256', { hasText: hash }).waitFor();
    // Each signer reads the whole text over the whole page; "sign" waits for its end.
    const sign = async (p, name) => {
      await click(p, 'read-agreement');
      const reader = p.page.locator('dialog.reader');
      await reader.locator('.agreement-text', { hasText: '四万元' }).waitFor();
      await reader.locator('.reader-version .sha256', { hasText: hash }).waitFor();
      if (p === li) await shot(li, 'mediation-signing');
      await reader.locator('.agreement-end').scrollIntoViewIfNeeded();
      await reader.locator('[data-action="sign"]:enabled').click();
      await p.page.locator('#case .signatures li', { hasText: name }).waitFor();
    };
    // On a phone too: the text fills the screen's width, the buttons stay in reach.
    await li.page.setViewportSize({ width: 390, height: 844 });
    await click(li, 'read-agreement');
    if (await li.page.locator('dialog.reader [data-action="sign"]').isEnabled()) {
      const tall = await li.page.evaluate(() => {
        const text = document.querySelector('dialog.reader .agreement-text');
        return text.scrollHeight > text.clientHeight;
      });
      if (tall) throw new Error('"sign" is enabled before the end of the text was seen');
    }
    await shot(li, 'mediation-signing-phone');
    await li.page.locator('dialog.reader [data-action="close-reader"]').click();
    await li.page.setViewportSize({ width: 1280, height: 800 });
    await sign(zhang, '张三');
    await sign(li, '李四');
    await sign(m, '王调解');
    for (const p of [zhang, li, m]) await p.page.locator('#case .effective').waitFor();
    const agreement = await asStaff('GET', `/cases/${id}/agreement`);
    if (!agreement.effective_at || agreement.signatures.length !== 3) {
      throw new Error(`agreement not in effect: ${JSON.stringify(agreement)}`);
    }
    if (agreement.signatures.some((s) => s.sha256 !== hash)) throw new Error('a signature names another hash');
    await shot(m, 'mediation-signed');
    // The 调解协议书 and the 调解笔录 as the court's PDF documents, from a party's page.
    const name = await downloadPdf(li, li.page.locator('#case [data-action="document"]'), ['调解协议书', '四万元', '张三', '李四', hash]);
    if (!name.endsWith('.pdf') || !name.includes('调解协议书')) throw new Error(`file name ${name}`);
    await downloadPdf(li, li.page.locator('#case [data-action="minutes-document"]'), ['调解笔录', '双方同意分期还款']);

    // The mediator records success: the room closes; each party may rate the session.
    await click(m, 'outcome-success');
    for (const p of [zhang, li]) {
      await p.page.locator('#left #case .rating').waitFor();
      await p.page.locator('#left h1', { hasText: '调解成功' }).waitFor();
      // Out of the room the page no longer says it is being recorded.
      if (await p.page.locator('#recording').isVisible()) throw new Error('still "recording" after the session');
    }
    await li.page.fill('#rating-comment', '调解员很耐心');
    await click(li, 'rate-4');
    await li.page.locator('#case .rating .ok', { hasText: '4' }).waitFor();
    await shot(li, 'mediation-rating');
    const ratings = await api('GET', '/ratings/mediators');
    const wang = ratings.find((r) => r.mediator === 'med-wang');
    if (!wang || wang.count !== 1 || wang.average !== 4) throw new Error(`ratings: ${JSON.stringify(ratings)}`);

    // 司法确认: both parties apply; the judge, on the court bridge's own page inside the court
    // network, sees the verified application, accepts it and rules it valid; the parties see it.
    await click(zhang, 'apply-confirmation');
    await zhang.page.locator('#case .confirmation .applicants', { hasText: '张三' }).waitFor();
    // 李四's page learns of it by itself: its room has closed, and the case's changes arrive
    // as events over the connection that follows the case (no poll).
    await li.page.locator('#case .confirmation .applicants', { hasText: '张三' }).waitFor({ timeout: 5000 });
    await click(li, 'apply-confirmation');
    await li.page.locator('#case .court-status[data-status="received"]').waitFor({ timeout: 20000 });
    await shot(li, 'confirmation-applied');
    const court = await person();
    await court.page.goto(BRIDGE);
    await court.page.fill('#token', JUDGE_TOKEN);
    await court.page.locator('#login button').click();
    await court.page.locator('#list tr', { hasText: '(2026)京0105民诉前调7号' }).click();
    await court.page.locator('#checks', { hasText: '有效（来自调解平台，未被篡改）' }).waitFor();
    if (await court.page.locator('#checks .bad').count()) throw new Error('the judge sees a failed check');
    await court.page.locator('#agreement-text', { hasText: '四万元' }).waitFor();
    // Roles, methods and people in words, not codes.
    await court.page.locator('#signatures li', { hasText: '李四（当事人）' }).filter({ hasText: '人脸识别（核验人 王' }).waitFor();
    await court.page.locator('#identity-checks li', { hasText: '张三：证件比对 通过' }).waitFor();
    // What crossed with the application: the minutes and each consent, by name.
    await court.page.locator('#minutes', { hasText: '双方同意分期还款' }).waitFor();
    await court.page.locator('#minutes', { hasText: '以录音录像代替笔录' }).waitFor();
    await court.page.locator('#minutes li', { hasText: '李四' }).filter({ hasText: '确认第 1 稿' }).waitFor();
    await court.page.locator('#consents li', { hasText: '张三（申请人）同意在线调解' }).waitFor();
    await court.page.locator('#consents li', { hasText: '赵律师（张三的代理人）确认知悉虚假调解警示' }).waitFor();
    // Only what the state allows: a received application is accepted or not, nothing else.
    const offered = async () => (await court.page.locator('#actions button').allTextContents()).sort().join('、');
    if ((await offered()) !== ['不予受理', '受理'].sort().join('、')) throw new Error(`offered: ${await offered()}`);
    await shot(court, 'confirmation-judge');
    await court.page.getByRole('button', { name: '受理', exact: true }).click();
    await court.page.locator('#status', { hasText: '审查中' }).waitFor();
    if ((await offered()).includes('受理、')) throw new Error(`after acceptance: ${await offered()}`);
    await court.page.locator('#log li', { hasText: '钱法官 受理' }).waitFor();
    // A ruling is written in a form of the page, from a template the judge completes.
    await court.page.getByRole('button', { name: '裁定协议有效' }).click();
    const ruling = court.page.locator('form.act[data-act="confirm"]');
    await ruling.locator('[name=ruling_number]').fill('(2026)京0105民特7号');
    if (!(await ruling.locator('[name=ruling_text]').inputValue()).includes('调解协议有效')) throw new Error('no ruling template');
    await shot(court, 'confirmation-ruling-form');
    await ruling.getByRole('button', { name: '确认办理' }).click();
    await court.page.locator('#status', { hasText: '裁定协议有效' }).waitFor();
    await court.page.locator('#ruling', { hasText: '(2026)京0105民特7号' }).waitFor();
    await court.page.locator('#actions', { hasText: '无可办理事项' }).waitFor();
    // The parties hear of it as an event (their rooms have closed): no page reload, no poll.
    for (const p of [zhang, li]) {
      await p.page.locator('#case .court-status[data-status="confirmed"]').waitFor({ timeout: 10000 });
      await p.page.locator('#case .court-detail', { hasText: '(2026)京0105民特7号' }).waitFor();
      await p.page.locator('#case .court-ruling', { hasText: '调解协议有效' }).waitFor();
    }
    await li.page.locator('#case [data-action="ruling-document"]').scrollIntoViewIfNeeded();
    await shot(li, 'confirmation-confirmed');
    // The ruling's document came from the court network with the ruling: the party and the
    // judge download the same 民事裁定书.
    await downloadPdf(li, li.page.locator('#case [data-action="ruling-document"]'), ['民事裁定书', '(2026)京0105民特7号', '钱法官']);
    await downloadPdf(court, court.page.locator('#ruling-pdf'), ['民事裁定书', '(2026)京0105民特7号']);
    const confirmed = await asStaff('GET', `/cases/${id}`);
    if (confirmed.confirmation.updates.length !== 2) throw new Error(`court updates: ${JSON.stringify(confirmed.confirmation)}`);
    await court.context.close();
    for (const p of Object.values(people)) await p.context.close();

    // Later, the session's links long expired: the mediator's desk issues the parties'
    // follow-up links, and one opens straight onto the ended case with the court's ruling.
    const later = await person();
    await later.page.goto(`${BASE}/admin`);
    await later.page.fill('#admin-token', staff);
    await later.page.locator('#token-form button').click();
    await later.page.locator('#cases tr', { hasText: '(2026)京0105民诉前调7号' }).locator('[data-action="follow-up"]').click();
    const followUp = await later.page.locator('#cases tr.links li[data-person="p-zhang"] code').textContent();
    if ((await later.page.locator('#cases tr.links li').count()) !== 2) throw new Error('follow-up links for the parties only');
    await later.context.close();
    const back = await person();
    await back.page.goto(followUp);
    await back.page.locator('#left h1', { hasText: '调解成功' }).waitFor();
    await back.page.locator('#left-message', { hasText: '调解协议已经生效' }).waitFor();
    await back.page.locator('#left-case .court-status[data-status="confirmed"]').waitFor();
    await shot(back, 'mediation-follow-up');
    await back.context.close();
  },

  async 'someone who refuses the camera and microphone is told so and can still enter'() {
    // A second browser that denies the permission prompt instead of faking consent. (It enters
    // listen-only; its media is not checked here: without the permission Chromium offers ICE
    // only the default route's interface, and this namespace has only loopback.)
    const denying = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--use-fake-device-for-media-stream', '--deny-permission-prompts'],
    });
    try {
      const page = await (await denying.newContext({ locale: 'zh-CN' })).newPage();
      await page.goto(`${BASE}/join?token=${joinToken('s8', 'listener', '吴八', 'party')}`);
      await page.locator('#check-note', { hasText: '未获准使用摄像头或麦克风' }).waitFor();
      await page.locator('#join').click();
      await page.locator('#room').waitFor();
      await page.locator('#cam[disabled]').waitFor();
    } finally {
      await denying.close();
    }
  },

  async 'a forged or expired link shows a clear error page'() {
    const valid = joinToken('s5', 'x', 'X', 'party');
    const [head, payload, sig] = valid.split('.');
    const forged = `${head}.${payload}.${sig.slice(0, -4)}AAAA`;
    const p = await person();
    await p.page.goto(`${BASE}/join?token=${forged}`);
    await p.page.locator('#join').click();
    await p.page.locator('#error-message', { hasText: '签名不符' }).waitFor();
    await shot(p, 'error-forged-link');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    claims.exp = Math.floor(Date.now() / 1000) - 60;
    const expired = `${head}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
    await p.page.goto(`${BASE}/join?token=${expired}`);
    await p.page.locator('#error-message', { hasText: '已过期' }).waitFor();
    await p.page.goto(`${BASE}/join`);
    await p.page.evaluate(() => sessionStorage.clear());
    await p.page.reload();
    await p.page.locator('#error-message', { hasText: '没有找到参会链接' }).waitFor();
    await p.context.close();
  },

  async 'Chinese by default, English on request'() {
    const p = await person({ width: 390, height: 844 });
    await p.page.goto(`${BASE}/join?token=${joinToken('s6', 'y', 'Y', 'party')}`);
    await p.page.locator('#join', { hasText: '进入调解室' }).waitFor();
    if ((await p.page.getAttribute('html', 'lang')) !== 'zh-CN') throw new Error('not zh-CN');
    await shot(p, 'device-check-phone');
    await p.page.locator('#lang-switch').click();
    await p.page.locator('#join', { hasText: 'Enter the room' }).waitFor();
    await p.page.locator('#check h1', { hasText: 'Check your devices' }).waitFor();
    // The choice survives a reload.
    await p.page.reload();
    await p.page.locator('#join', { hasText: 'Enter the room' }).waitFor();
    await p.context.close();
  },
};

/** Closes every open context except those of the people in `keep`; returns `keep`. */
async function closeAllBut(keep) {
  const kept = new Set(Object.values(keep).map((p) => p?.context));
  for (const context of [...openContexts]) {
    if (!kept.has(context)) await context.close().catch(() => {});
  }
  return keep;
}

// Scenarios that take a context share the pages the first scenario (the setup) leaves open.
// One of them runs on its own (`only`), or after a failure in the chain, on fresh pages: the
// setup runs again first, so a failure never cascades into the scenarios after it.
const SETUP = Object.keys(scenarios)[0];

/** Runs one scenario and reports it; returns [ok, context]. */
async function attempt(name, run, ctx) {
  const started = Date.now();
  try {
    const next = (await run(ctx)) ?? ctx;
    await assertAllChinese(name);
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
    return [true, next];
  } catch (e) {
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
    // What each open page showed when it failed, to look at.
    const dir = path.join(tmpdir(), 'tiaojie-browser-failures');
    mkdirSync(dir, { recursive: true });
    let n = 0;
    for (const context of openContexts) {
      for (const page of context.pages()) {
        const file = path.join(dir, `${Date.now()}-${(n += 1)}.png`);
        if (await page.screenshot({ path: file }).then(() => true, () => false)) console.log(`     page ${page.url()} → ${file}`);
      }
    }
    return [false, {}];
  }
}

const server = await startServer();
const bridge = await startBridge();
let failed = 0;
let ctx = {};
let chainReady = false;
let setupFailed = false;
try {
  for (const [name, run] of Object.entries(scenarios)) {
    if (only && !name.includes(only)) continue;
    const chained = run.length > 0;
    if (!chained || !chainReady) ctx = await closeAllBut({});
    if (chained && !chainReady) {
      if (setupFailed) {
        console.log(`SKIP ${name}: it needs "${SETUP}", which failed`);
        continue;
      }
      const [ok, setup] = await attempt(`${SETUP} (again, for: ${name})`, scenarios[SETUP], {});
      if (!ok) {
        failed += 1;
        setupFailed = true;
        continue;
      }
      ctx = setup;
    }
    const [ok, next] = await attempt(name, run, ctx);
    if (!ok) failed += 1;
    if (!ok && name === SETUP) setupFailed = true;
    ctx = await closeAllBut(next);
    chainReady = ok && (chained || name === SETUP);
  }
} finally {
  await browser.close();
  bridge.kill('SIGTERM');
  server.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(failed ? `${failed} browser scenario(s) failed` : 'all browser scenarios passed');
process.exit(failed ? 1 : 0);

// The participant client: personal link → device check → lobby or room; reconnection within
// the server's grace period; moderation for those whose grants allow it. What a person may
// receive is decided by the server (lobby, private rooms, mutes), never here.

import { CasePanel } from './case.js';
import { describe } from './errors.js';
import { t } from './i18n.js';
import { MediaSession } from './media.js';
import { JOINT, LOBBY, isPrivate, placeLabel } from './place.js';
import { FINAL_CLOSE_CODES, Signaling, SignalingError } from './signaling.js';
import { ask, h, showScreen, tr, wireLanguageSwitch } from './ui.js';

const state = {
  token: null,
  room: null,
  you: null,
  participants: new Map(), // identity → participant info from the server
  speaker: null,
  signaling: null,
  media: null,
  local: null,
  audioOnly: false,
  leaving: false,
  reconnecting: false,
  qualityTimer: null,
  case: null, // the mediation panel, when this room is a case's session
  removed: new Map(), // identity → name: people this moderator's room put out, to let back
};

// Tests and support staff read this to see what the page believes.
window.tiaojie = state;

wireLanguageSwitch();
start();

function start() {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get('token');
  if (fromUrl) {
    // Keep the token out of the address bar (screenshots, shoulder-surfing, history).
    sessionStorage.setItem('tiaojie.token', fromUrl);
    history.replaceState(null, '', '/join');
  }
  state.token = fromUrl || sessionStorage.getItem('tiaojie.token');
  if (!state.token) return fail('link.missing');
  const claims = decodeClaims(state.token);
  if (!claims || typeof claims.room !== 'string') return fail('link.malformed');
  if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) return fail('link.expired');
  state.room = claims.room;
  followUpOrCheck(claims);
}

/**
 * A link to a session that has ended opens its case instead (the outcome, the signed
 * agreement, a rating, judicial confirmation); any other goes to the device check.
 */
async function followUpOrCheck(claims) {
  const panel = new CasePanel(state.token, () => ({ identity: claims.sub }));
  try {
    if ((await panel.load()) && panel.session()?.phase === 'ended') {
      state.case = panel;
      finish('left.ended');
      return;
    }
  } catch {
    // Not a case's room, or the server will say what is wrong at the join.
  }
  deviceCheck();
}

/** The token's claims, read without verifying (the server verifies). */
function decodeClaims(token) {
  try {
    const part = token.split('.')[1];
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

function fail(key, vars) {
  stopQuality();
  tr(document.getElementById('error-message'), key, vars);
  showScreen('error');
}

/** How someone takes part, in words: 申请人 / 被申请人 / an agent for whom, else their role. */
function standingOf(p) {
  const m = state.case?.view?.members.find((x) => x.id === p.identity);
  return m ? state.case.standing(m) : t(`role.${p.role}`);
}

/** The server's own reasons (docs/protocol.md) in words; an operator's own words as they are. */
function closeReason(reason) {
  const key = `close.${reason}`;
  return t(key) === key ? reason : t(key);
}

/** A person's name, from the room or the case. */
function nameOf(id) {
  if (id === state.you?.identity) return state.you.name;
  return state.participants.get(id)?.name ?? state.case?.nameOf(id);
}

/** The refusal in the person's language: the error screen, for a failure to enter. */
function failWith(error) {
  stopQuality();
  const message = document.getElementById('error-message');
  message.textContent = describe(error, nameOf);
  delete message.dataset.i18n;
  showScreen('error');
}

/** A refused request while in the room: said where the person is, the call goes on. */
function refused(error) {
  const text = describe(error, nameOf);
  const note = document.getElementById('room-note');
  if (state.you?.grants.includes('moderate') && !document.getElementById('moderation').hidden) {
    note.textContent = text;
    note.hidden = false;
  }
  addNotice(text);
}

// ---- device check -------------------------------------------------------------------------

async function deviceCheck() {
  showScreen('check');
  const note = document.getElementById('check-note');
  const preview = document.getElementById('preview');
  const audioOnly = document.getElementById('audio-only');
  const join = document.getElementById('join');
  // The button works at once; joining waits for the devices (a permission prompt may be open).
  const devices = (async () => {
    try {
      state.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    } catch (e) {
      state.local = null;
      note.hidden = false;
      tr(note, e?.name === 'NotAllowedError' ? 'check.denied' : 'check.no_device');
    }
    if (state.local) {
      preview.srcObject = state.local;
      await fillDeviceLists();
      meterMicrophone(state.local);
    }
  })();
  audioOnly.addEventListener('change', () => {
    for (const track of state.local?.getVideoTracks() ?? []) track.enabled = !audioOnly.checked;
  });
  document.getElementById('speaker-test').onclick = speakerTest;
  join.onclick = async () => {
    join.disabled = true;
    await devices;
    state.audioOnly = audioOnly.checked;
    enter();
  };
}

async function fillDeviceLists() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, id] of [
    ['videoinput', 'camera-select'],
    ['audioinput', 'mic-select'],
  ]) {
    const select = document.getElementById(id);
    select.replaceChildren(
      ...devices
        .filter((d) => d.kind === kind)
        .map((d, i) => h('option', { value: d.deviceId }, d.label || `${kind} ${i + 1}`)),
    );
    select.onchange = () => switchDevice(kind === 'videoinput' ? 'video' : 'audio', select.value);
  }
}

async function switchDevice(kind, deviceId) {
  const constraints = { [kind]: { deviceId: { exact: deviceId } } };
  const fresh = await navigator.mediaDevices.getUserMedia(constraints);
  for (const old of state.local.getTracks().filter((x) => x.kind === kind)) {
    state.local.removeTrack(old);
    old.stop();
  }
  for (const track of fresh.getTracks()) state.local.addTrack(track);
  document.getElementById('preview').srcObject = state.local;
}

function meterMicrophone(stream) {
  if (!stream.getAudioTracks().length) return;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  ctx.createMediaStreamSource(stream).connect(analyser);
  const data = new Uint8Array(analyser.fftSize);
  const meter = document.getElementById('mic-meter');
  const tick = () => {
    if (document.getElementById('check').hidden) return ctx.close();
    analyser.getByteTimeDomainData(data);
    const peak = data.reduce((m, v) => Math.max(m, Math.abs(v - 128)), 0);
    meter.value = Math.min(100, Math.round((peak / 128) * 100));
    requestAnimationFrame(tick);
  };
  tick();
}

function speakerTest() {
  const ctx = new AudioContext();
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.frequency.value = 440;
  gain.gain.value = 0.1;
  osc.connect(gain).connect(ctx.destination);
  osc.start();
  const status = document.getElementById('speaker-status');
  tr(status, 'check.speaker.playing');
  setTimeout(() => {
    osc.stop();
    ctx.close();
    status.textContent = '';
    delete status.dataset.i18n;
  }, 1500);
}

// ---- joining ------------------------------------------------------------------------------

async function enter() {
  const signaling = new Signaling();
  state.signaling = signaling;
  try {
    await signaling.connect();
    const joined = await signaling.join(state.room, state.token);
    listen(signaling);
    present(joined);
    loadCase();
    state.media = new MediaSession(signaling);
    state.media.addEventListener('streams', renderTiles);
    state.media.addEventListener('screen', () => {
      renderControls();
      renderTiles();
    });
    if (state.local && state.audioOnly) {
      for (const track of state.local.getVideoTracks()) {
        state.local.removeTrack(track);
        track.stop();
      }
    }
    await state.media.start(state.local);
    if (state.audioOnly) await setAudioOnly(true);
    startQuality();
  } catch (e) {
    signaling.drop();
    failWith(e);
  }
}

/** Loads the mediation panel once; a room that is no case's session has none. */
async function loadCase() {
  if (state.case) return;
  const panel = new CasePanel(state.token, () => state.you, () => state.participants);
  try {
    if (await panel.load()) {
      state.case = panel;
      render();
    }
  } catch (e) {
    addNotice(t('case.failed', { reason: describe(e, nameOf) }));
  }
}

/** Takes in a `joined` or `resumed` reply. */
function present(reply) {
  state.you = reply.you;
  state.participants = new Map(reply.participants.map((p) => [p.identity, p]));
  state.recording = reply.recording ?? { state: 'off' };
  // A page that reloads shows its conversation again (the server kept it for this person).
  if (reply.type === 'joined') {
    document.getElementById('chat-log').replaceChildren();
    for (const m of reply.chat ?? []) addChat(m.from, m.text, m.to);
  }
  render();
}

function listen(signaling) {
  const on = (type, f) => signaling.addEventListener(type, (e) => f(e.detail));
  on('participant.joined', (m) => {
    state.participants.set(m.participant.identity, m.participant);
    render();
  });
  on('participant.updated', (m) => {
    if (m.participant.identity === state.you.identity) {
      // The server ended our share (the mediator split the rooms): stop capturing too.
      if (state.you.screen && !m.participant.screen && state.media?.screen) {
        state.media.stopScreen().catch(() => {});
        addNotice(t('room.screen.ended'));
      }
      state.you = m.participant;
    } else state.participants.set(m.participant.identity, m.participant);
    if (m.participant.identity === state.you.identity && m.participant.media === 'lost') {
      state.media?.restart();
    }
    render();
  });
  on('participant.left', (m) => {
    // A removed person stays out (every link of theirs) until a moderator lets them back:
    // keep their name where the moderator can do that.
    const name = state.participants.get(m.identity)?.name;
    if (m.reason === 'removed' && name && state.you.grants.includes('moderate')) {
      state.removed.set(m.identity, name);
    }
    state.participants.delete(m.identity);
    render();
  });
  on('recording.updated', (m) => {
    state.recording = m.recording;
    renderRecording();
  });
  on('recording.finished', (m) =>
    addNotice(t(m.complete ? 'recording.saved' : 'recording.saved_incomplete', { head: m.chain_head })),
  );
  on('speaker.active', (m) => {
    state.speaker = m.identity;
    renderTiles();
  });
  on('case.updated', () =>
    state.case
      ?.load()
      .then(render)
      .catch(() => {}),
  );
  on('minutes.updated', (m) => state.case?.minutesUpdated(m).catch(() => {}));
  on('chat', (m) => addChat(m.from, m.text, m.to));
  on('removed', (m) => finish('left.removed', { reason: closeReason(m.reason || 'removed_by_moderator') }));
  on('room.closed', (m) => (m.reason ? finish('left.closed', { reason: closeReason(m.reason) }) : finish('left.closed_plain')));
  on('closed', (e) => closed(e.detail ?? e));
}

function closed({ code }) {
  // Sockets opened while reconnecting close too; the loop that opened them handles that.
  if (state.leaving || state.reconnecting) return;
  if (code === 4002) return finish('left.elsewhere');
  if (FINAL_CLOSE_CODES.has(code)) return;
  reconnect();
}

// ---- reconnection -------------------------------------------------------------------------

async function reconnect() {
  state.reconnecting = true;
  try {
    await resumeWithinGrace();
  } finally {
    state.reconnecting = false;
  }
}

async function resumeWithinGrace() {
  const banner = document.getElementById('reconnecting');
  banner.hidden = false;
  tr(document.getElementById('reconnecting-text'), 'reconnect.lost');
  document.getElementById('rejoin').hidden = true;
  const deadline = Date.now() + state.signaling.resumeGraceMs;
  let wait = 500;
  while (Date.now() < deadline && !state.leaving) {
    try {
      await state.signaling.connect();
      const reply = await state.signaling.resume();
      present(reply);
      banner.hidden = true;
      return;
    } catch (e) {
      if (e instanceof SignalingError && e.code === 'resume_failed') break;
      state.signaling.drop();
      await new Promise((r) => setTimeout(r, wait));
      // Short steps: a network that comes back is used within two seconds, well inside the
      // grace period.
      wait = Math.min(wait * 2, 2000);
    }
  }
  tr(document.getElementById('reconnecting-text'), 'reconnect.failed');
  const rejoin = document.getElementById('rejoin');
  rejoin.hidden = false;
  rejoin.onclick = () => location.reload();
}

// ---- the room -----------------------------------------------------------------------------

function render() {
  // Once out of the room, the page stays on what it says about the end.
  if (!state.you || state.leaving) return;
  const inLobby = state.you.space === LOBBY;
  showScreen(inLobby ? 'lobby' : 'room');
  const where = document.getElementById('where');
  tr(where, ...placeLabel(state.you.space));
  if (state.case) {
    document.getElementById(inLobby ? 'lobby-case' : 'room-case').append(state.case.root);
    state.case.render();
  }
  document.getElementById('room-case').hidden = !state.case;
  renderElsewhere();
  renderAway();
  renderControls();
  renderTiles();
  renderModeration();
  renderRecording();
}

/** Whoever stays in the joint room while the mediator is with the other side is told so; a
 * chat box with nobody to read it says so. */
function renderAway() {
  const others = [...state.participants.values()];
  const mediatorAway =
    state.you.space === JOINT &&
    state.you.role !== 'mediator' &&
    others.some((p) => p.role === 'mediator' && isPrivate(p.space));
  document.getElementById('away-note').hidden = !mediatorAway;
  const alone = !others.some((p) => p.space === state.you.space);
  document.getElementById('chat-alone').hidden = !alone;
  document.getElementById('chat-input').disabled = alone;
  document.querySelector('#chat-form button').disabled = alone;
}


/** Where the people outside your part of the room are (they are neither seen nor heard). */
function renderElsewhere() {
  const others = [...state.participants.values()].filter((p) => p.space !== state.you.space);
  const list = document.getElementById('elsewhere');
  list.replaceChildren(
    ...others.map((p) =>
      h('li', { dataset: { person: p.identity, space: p.space } }, `${p.name} · ${standingOf(p)} — `, tr(h('span', {}), ...placeLabel(p.space))),
    ),
  );
  document.getElementById('elsewhere-box').hidden = others.length === 0;
}

/** The recording indicator everyone sees, and the mediator's record buttons. */
function renderRecording() {
  const rec = state.recording ?? { state: 'off' };
  const on = rec.state !== 'off';
  const indicator = document.getElementById('recording');
  indicator.hidden = !on;
  indicator.classList.toggle('paused', rec.state === 'paused');
  if (on) {
    const notHere = isPrivate(state.you?.space) && !rec.private_rooms;
    const key =
      rec.state === 'paused'
        ? 'recording.paused'
        : notHere
          ? 'recording.not_here'
          : rec.mode === 'audio'
            ? 'recording.audio'
            : 'recording.audio_video';
    tr(document.getElementById('recording-text'), key);
  }
  const controls = document.getElementById('record-controls');
  controls.hidden = !state.you?.grants.includes('record');
  if (controls.hidden) return;
  const toggle = document.getElementById('record-toggle');
  tr(toggle, on ? 'recording.stop' : 'recording.start');
  toggle.setAttribute('aria-pressed', String(on));
  toggle.classList.toggle('danger', on);
  const pause = document.getElementById('record-pause');
  pause.hidden = !on;
  tr(pause, rec.state === 'paused' ? 'recording.resume' : 'recording.pause');
}

async function record(action) {
  const note = document.getElementById('room-note');
  note.hidden = true;
  try {
    await state.signaling.record(action);
  } catch (e) {
    note.textContent = t('recording.failed', { reason: describe(e, nameOf) });
    note.hidden = false;
  }
}

function renderControls() {
  const mic = document.getElementById('mic');
  const cam = document.getElementById('cam');
  const audioOnly = document.getElementById('audio-only-toggle');
  tr(mic, state.you.audio_muted ? 'room.mic.on' : 'room.mic.off');
  mic.setAttribute('aria-pressed', String(state.you.audio_muted));
  tr(cam, state.you.video_muted ? 'room.cam.on' : 'room.cam.off');
  cam.setAttribute('aria-pressed', String(state.you.video_muted));
  cam.disabled = !state.local?.getVideoTracks().length;
  tr(audioOnly, state.audioOnly ? 'room.audio_only.off' : 'room.audio_only.on');
  audioOnly.setAttribute('aria-pressed', String(state.audioOnly));
  const screen = document.getElementById('screen-share');
  const sharing = Boolean(state.media?.screen);
  tr(screen, sharing ? 'room.screen.stop' : 'room.screen.start');
  screen.setAttribute('aria-pressed', String(sharing));
  const why = !navigator.mediaDevices?.getDisplayMedia
    ? 'room.screen.unsupported'
    : !state.you.grants.includes('publish')
      ? 'room.screen.not_allowed'
      : !sharing && roomsSplit()
        ? 'room.screen.split'
        : null;
  screen.disabled = Boolean(why);
  screen.title = why ? t(why) : '';
}

/** Anyone (you included) in a private room: screen sharing is stopped until all are back. */
function roomsSplit() {
  return [state.you, ...state.participants.values()].some((p) => isPrivate(p.space));
}

async function toggleScreen() {
  if (state.media.screen) return state.media.stopScreen();
  let capture;
  try {
    capture = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch {
    return; // the picker was cancelled
  }
  try {
    await state.media.shareScreen(capture.getVideoTracks()[0]);
  } catch (e) {
    addNotice(e.code === 'rooms_split' ? t('room.screen.split') : t('room.screen.failed', { reason: describe(e, nameOf) }));
  }
}

/** A shared screen's tile: big, first, named as a screen. */
function screenTileFor(identity) {
  let tile = document.querySelector(`[data-screen-tile="${CSS.escape(identity)}"]`);
  if (!tile) {
    const video = h('video', { autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    tile = h('figure', { class: 'tile screen', dataset: { screenTile: identity } }, video, h('figcaption', {}, h('span', { class: 'name' })));
    document.getElementById('tiles').prepend(tile);
  }
  return tile;
}

function renderScreens(everyone) {
  const shown = new Map();
  for (const p of everyone) {
    const mine = p.identity === state.you.identity;
    const stream = mine
      ? state.media?.screen && new MediaStream([state.media.screen.track])
      : p.screen && state.media?.screens.get(p.identity);
    if (stream) shown.set(p, stream);
  }
  const keep = new Set([...shown.keys()].map((p) => p.identity));
  for (const tile of document.querySelectorAll('[data-screen-tile]')) {
    if (!keep.has(tile.dataset.screenTile)) tile.remove();
  }
  for (const [p, stream] of shown) {
    const tile = screenTileFor(p.identity);
    const video = tile.querySelector('video');
    const track = stream.getVideoTracks()[0];
    if (video.srcObject?.getVideoTracks()[0] !== track) video.srcObject = stream;
    tile.querySelector('.name').textContent = t('room.screen.of', { name: p.name });
  }
}

function tileFor(identity) {
  let tile = document.querySelector(`[data-tile="${CSS.escape(identity)}"]`);
  if (!tile) {
    const video = h('video', { autoplay: true, playsinline: true });
    if (identity === state.you.identity) video.muted = true;
    tile = h(
      'figure',
      { class: 'tile', dataset: { tile: identity } },
      video,
      h('figcaption', {}, h('span', { class: 'name' }), h('span', { class: 'role' }), h('span', { class: 'badges' })),
    );
    document.getElementById('tiles').append(tile);
  }
  return tile;
}

function renderTiles() {
  if (!state.you) return;
  const everyone = [state.you, ...state.participants.values()].filter(
    (p) => p.identity === state.you.identity || p.space === state.you.space,
  );
  const keep = new Set(everyone.map((p) => p.identity));
  for (const tile of document.querySelectorAll('[data-tile]')) {
    if (!keep.has(tile.dataset.tile)) tile.remove();
  }
  renderScreens(everyone);
  for (const p of everyone) {
    const tile = tileFor(p.identity);
    const mine = p.identity === state.you.identity;
    const stream = mine ? state.local : state.media?.streams.get(p.identity);
    const video = tile.querySelector('video');
    if (stream && video.srcObject !== stream) video.srcObject = stream;
    if (!stream) video.srcObject = null;
    tile.querySelector('.name').textContent = p.name + (mine ? ` ${t('room.you')}` : '');
    tile.querySelector('.role').textContent = standingOf(p);
    // The last speaker stays "speaking" until someone else speaks; not one whose line is down.
    const speaking = state.speaker === p.identity && p.connection !== 'reconnecting';
    const badges = tile.querySelector('.badges');
    badges.replaceChildren(
      ...[
        p.audio_muted && 'room.muted',
        p.video_muted && 'room.camera_off',
        p.connection === 'reconnecting' && 'room.reconnecting',
        p.screen && 'room.screen.sharing',
        speaking && 'room.speaking',
      ]
        .filter(Boolean)
        .map((key) => tr(h('span', { class: `badge ${key.replace('.', '-')}` }), key)),
    );
    tile.classList.toggle('speaking', speaking);
    if (!mine && state.you.grants.includes('moderate')) {
      const muteKey = p.audio_muted ? 'moderation.unmute' : 'moderation.mute';
      badges.append(
        tr(h('button', { class: 'mod', onclick: () => moderateMute(p) }), muteKey),
        tr(h('button', { class: 'mod danger', onclick: () => moderateRemove(p) }), 'moderation.remove'),
      );
    }
  }
}

function renderModeration() {
  const panel = document.getElementById('moderation');
  panel.hidden = !state.you.grants.includes('moderate');
  if (panel.hidden) return;
  const waiting = [...state.participants.values()].filter((p) => p.space === LOBBY);
  const list = document.getElementById('waiting');
  list.replaceChildren(
    ...waiting.map((p) =>
      h(
        'li',
        {},
        h('span', {}, `${p.name} · ${standingOf(p)}`, waitingNote(p)),
        h(
          'span',
          {},
          tr(
            h('button', {
              'data-action': `admit-${p.identity}`,
              // The server admits nobody without their checks; the button says so first.
              disabled: lacking(p).length > 0,
              onclick: () => state.signaling.moderate('admit', p.identity).catch(refused),
            }),
            'moderation.admit',
          ),
          ' ',
          tr(
            h('button', {
              class: 'danger',
              onclick: () =>
                state.signaling
                  .moderate('remove', p.identity, { reason: 'declined' })
                  .catch(refused),
            }),
            'moderation.decline',
          ),
        ),
      ),
    ),
  );
  if (!waiting.length) list.append(tr(h('li', { class: 'empty' }), 'moderation.none_waiting'));
  renderRemoved();
}

/** People removed from this room: a moderator lets them back in (their links work again). */
function renderRemoved() {
  document.getElementById('removed-box').hidden = state.removed.size === 0;
  document.getElementById('removed').replaceChildren(
    ...[...state.removed].map(([identity, name]) =>
      h(
        'li',
        {},
        h('span', {}, name),
        tr(
          h('button', {
            'data-action': `readmit-${identity}`,
            onclick: () =>
              state.signaling
                .moderate('readmit', identity)
                .then(() => {
                  state.removed.delete(identity);
                  addNotice(t('moderation.readmitted', { name }));
                  renderModeration();
                })
                .catch(refused),
          }),
          'moderation.readmit',
        ),
      ),
    ),
  );
}

/** The checks a waiting person of a case still lacks (none outside a case's room). */
function lacking(p) {
  return state.case?.missingFor(p.identity) ?? [];
}

/** Under a waiting person's name: what they still lack, in words. */
function waitingNote(p) {
  const missing = lacking(p);
  if (!missing.length) return null;
  return h('small', { class: 'lacking' }, h('br'), t('moderation.lacking', { list: missing.map((m) => t(`check.${m.check}`)).join('、') }));
}

function moderateMute(p) {
  state.signaling
    .moderate('mute', p.identity, { kind: 'audio', muted: !p.audio_muted })
    .catch(refused);
}

function moderateRemove(p) {
  state.signaling
    .moderate('remove', p.identity, { reason: 'removed_by_moderator' })
    .catch(refused);
}

async function toggleMute(kind) {
  const field = kind === 'audio' ? 'audio_muted' : 'video_muted';
  const muted = !state.you[field];
  state.media.setEnabled(kind, !muted);
  await state.signaling.mute(kind, muted);
}

async function setAudioOnly(on) {
  state.audioOnly = on;
  await state.media.setAudioOnly(on);
  renderControls();
}

function addChat(from, text, to) {
  const sender = from === state.you.identity ? state.you : state.participants.get(from);
  const item = h('li', {}, h('b', {}, sender?.name ?? from), to ? ' → ' : '', ': ', text);
  document.getElementById('chat-log').append(item);
  item.scrollIntoView({ block: 'nearest' });
}

/** A line from the system (not a person) in the message log. */
function addNotice(text) {
  const item = h('li', { class: 'notice', role: 'status' }, text);
  document.getElementById('chat-log').append(item);
  item.scrollIntoView({ block: 'nearest' });
}

async function sendChat(event) {
  event.preventDefault();
  const input = document.getElementById('chat-input');
  const text = input.value.trim();
  if (!text) return;
  await state.signaling.chat(text);
  addChat(state.you.identity, text, null);
  input.value = '';
}

function startQuality() {
  const show = async () => {
    const level = (await state.media?.quality()) ?? 'unknown';
    const el = document.getElementById('quality');
    el.dataset.level = level;
    tr(el, 'room.quality', { level: t(`quality.${level}`) });
  };
  show();
  state.qualityTimer = setInterval(show, 2000);
}

function stopQuality() {
  clearInterval(state.qualityTimer);
}

/** 离开 asks first: leaving ends this person's presence in the session. */
async function confirmLeave() {
  const staff = state.you?.grants.includes('moderate');
  const answer = await ask({ title: 'room.leave', text: staff ? 'room.leave.confirm_staff' : 'room.leave.confirm', confirm: 'room.leave', danger: true });
  if (answer) leave();
}

async function leave() {
  state.leaving = true;
  try {
    await state.signaling.leave();
  } catch {
    // Leaving anyway.
  }
  finish('left.title');
}

function finish(key, vars) {
  state.leaving = true;
  stopQuality();
  state.media?.close();
  // Out of the room, nothing of this person is being recorded: the indicator goes.
  state.recording = { state: 'off' };
  renderRecording();
  tr(document.getElementById('left-message'), key, vars);
  tr(document.querySelector('#left h1'), 'left.title');
  showScreen('left');
  // The case stays readable after the session (outcome, agreement), and a party rates it;
  // its changes (the court's ruling) keep arriving as events.
  if (state.case) {
    document.getElementById('left-case').append(state.case.root);
    state.case
      .load()
      .then(sayOutcome)
      .catch(() => {});
    followCase();
  }
}

/** After the mediation, the page says how it ended, not only that the person left. */
function sayOutcome() {
  const outcome = state.case?.view?.outcome;
  if (!outcome) return;
  tr(document.querySelector('#left h1'), `left.outcome_title.${outcome.result}`);
  tr(document.getElementById('left-message'), `left.outcome.${outcome.result}`);
}

/** Follows the case over its own connection once out of the room (and again if it drops). */
async function followCase() {
  if (state.following) return;
  state.following = true;
  let wait = 1000;
  for (;;) {
    const signaling = new Signaling();
    try {
      await signaling.connect();
      signaling.addEventListener('case.updated', () =>
        state.case
          ?.load()
          .then(sayOutcome)
          .catch(() => {}),
      );
      const closed = new Promise((resolve) => signaling.addEventListener('closed', resolve));
      await signaling.follow(state.token);
      wait = 1000;
      // Changes made while the connection was down are read once it is back.
      state.case?.load().then(sayOutcome).catch(() => {});
      await closed;
    } catch (e) {
      // A link that can follow nothing (expired) stops here; the page still shows the case.
      if (e instanceof SignalingError && e.code !== 'network') return;
    }
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 30_000);
  }
}

document.getElementById('mic').onclick = () => toggleMute('audio').catch(refused);
document.getElementById('cam').onclick = () => toggleMute('video').catch(refused);
document.getElementById('audio-only-toggle').onclick = () => setAudioOnly(!state.audioOnly).catch(refused);
document.getElementById('screen-share').onclick = () => toggleScreen().catch(refused);
document.getElementById('leave').onclick = confirmLeave;
document.getElementById('record-toggle').onclick = () =>
  record(state.recording?.state === 'off' ? 'start' : 'stop');
document.getElementById('record-pause').onclick = () =>
  record(state.recording?.state === 'paused' ? 'resume' : 'pause');
document.getElementById('lobby-leave').onclick = confirmLeave;
document.getElementById('chat-form').onsubmit = (e) => sendChat(e).catch(refused);

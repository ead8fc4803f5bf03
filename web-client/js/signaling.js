// The signaling protocol, version 1 — this module mirrors docs/protocol.md and is the only
// place the client speaks it. Requests get exactly one reply (resolved, or rejected with a
// SignalingError carrying the protocol's error code); events are dispatched by their `type`
// (`participant.joined`, `media.offer`, …); `closed` reports how the socket ended.

export const PROTOCOL_VERSION = 1;

/** A refusal: its stable `code` and `details` (tagged by `reason`) are what a page says. */
export class SignalingError extends Error {
  constructor(code, message, details = null) {
    super(message || code);
    this.code = code;
    this.details = details;
  }
}

/** Close codes after which the client must not resume (docs/protocol.md, "Close codes"). */
export const FINAL_CLOSE_CODES = new Set([1000, 4001, 4002, 4003]);

export class Signaling extends EventTarget {
  constructor(url = defaultUrl()) {
    super();
    this.url = url;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.lastSeq = 0;
    this.resumeToken = null;
    this.resumeGraceMs = 30000;
  }

  /** Opens the WebSocket; resolves when it is open. */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        resolve();
      };
      ws.onerror = () => reject(new SignalingError('network', 'cannot reach the server'));
      ws.onmessage = (e) => this.receive(e.data);
      ws.onclose = (e) => {
        // Closed before it opened: no error event is promised, so fail the connect here.
        if (!opened) reject(new SignalingError('network', 'cannot reach the server'));
        if (this.ws !== ws) return;
        this.ws = null;
        for (const { reject: fail } of this.pending.values()) {
          fail(new SignalingError('network', 'connection closed'));
        }
        this.pending.clear();
        this.dispatchEvent(new CustomEvent('closed', { detail: { code: e.code, reason: e.reason } }));
      };
    });
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Closes the socket without telling the server (the network failed, or a test cut it). */
  drop() {
    this.ws?.close(4000, 'client dropped');
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof msg.seq === 'number' && msg.seq > this.lastSeq) this.lastSeq = msg.seq;
    if (msg.id !== undefined && this.pending.has(msg.id)) {
      const { resolve, reject } = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.type === 'error') reject(new SignalingError(msg.code, msg.message, msg.details));
      else resolve(msg);
      return;
    }
    this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
  }

  /** Sends a request; resolves with its reply. */
  request(message) {
    if (!this.open) return Promise.reject(new SignalingError('network', 'not connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...message, id }));
    });
  }

  async join(room, token) {
    const reply = await this.request({ type: 'join', v: PROTOCOL_VERSION, room, token });
    this.remember(reply);
    this.resumeGraceMs = reply.resume_grace_ms ?? this.resumeGraceMs;
    return reply;
  }

  async resume() {
    const reply = await this.request({
      type: 'resume',
      resume_token: this.resumeToken,
      last_seq: this.lastSeq,
    });
    this.remember(reply);
    return reply;
  }

  remember(reply) {
    this.resumeToken = reply.resume_token;
    if (typeof reply.seq === 'number') this.lastSeq = Math.max(this.lastSeq, reply.seq);
  }

  /** Hears of the case's changes (`case.updated`) without being in a room. */
  follow(token) {
    return this.request({ type: 'follow', v: PROTOCOL_VERSION, token });
  }

  leave() {
    return this.request({ type: 'leave' });
  }

  participants() {
    return this.request({ type: 'participants' });
  }

  chat(text, to = null) {
    return this.request({ type: 'chat', text, to });
  }

  mute(kind, muted) {
    return this.request({ type: 'mute', kind, muted });
  }

  /** `action`: mute, remove, admit or move; `extra`: kind/muted, reason, space. */
  moderate(action, target, extra = {}) {
    return this.request({ type: 'moderate', action, target, ...extra });
  }

  /** `screen`: the mid of the line that shares our screen, if we share one. */
  offer(sdp, screen = null) {
    return this.request(screen ? { type: 'offer', sdp, screen } : { type: 'offer', sdp });
  }

  answer(sdp) {
    return this.request({ type: 'answer', sdp });
  }

  preferences(prefs) {
    return this.request({ type: 'preferences', ...prefs });
  }

  /** `action`: start, pause, resume or stop; `mode` (start): audio or audio_video. */
  record(action, mode) {
    return this.request({ type: 'record', action, ...(mode ? { mode } : {}) });
  }
}

function defaultUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

// One RTCPeerConnection to the SFU (docs/protocol.md, "media plane"): the client offers what it
// publishes, answers the server's offers as others' tracks come and go, and reports each
// publisher's incoming stream (the stream id is the publisher's identity; `screen!<identity>`
// for a shared screen). A screen share is one more sending line, declared in our offers.

export class MediaSession extends EventTarget {
  constructor(signaling) {
    super();
    this.signaling = signaling;
    this.pc = null;
    this.local = null;
    this.streams = new Map(); // identity → MediaStream
    this.screens = new Map(); // identity → MediaStream of their shared screen
    this.screen = null; // our own share: { track, transceiver }
    this.queue = Promise.resolve();
    this.onOffer = (e) => this.serialize(() => this.answerServer(e.detail.sdp));
    signaling.addEventListener('media.offer', this.onOffer);
  }

  /** Connects, publishing `local` (a MediaStream, possibly without tracks). */
  async start(local) {
    this.local = local;
    this.pc?.close();
    this.streams.clear();
    this.screens.clear();
    this.endScreen();
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    this.pc = pc;
    // Our own lines publish; the SFU opens a line of its own for each track we receive. A
    // line without a device only brings the connection up (the SFU sends nothing on it).
    this.own = new Set();
    for (const kind of ['audio', 'video']) {
      const track = local?.getTracks().find((t) => t.kind === kind);
      this.own.add(
        track
          ? pc.addTransceiver(track, { direction: 'sendrecv', streams: [local] })
          : pc.addTransceiver(kind, { direction: 'recvonly' }),
      );
    }
    pc.ontrack = (e) => this.track(e);
    pc.onconnectionstatechange = () => this.emit('state', pc.connectionState);
    await this.serialize(async () => {
      await this.offer();
    });
  }

  /** Offers again with an ICE restart (after the server reported our media lost). */
  async restart() {
    if (!this.pc) return;
    await this.serialize(() => this.offer({ iceRestart: true }));
  }

  // Our offer, declaring the screen we share (if any); run inside `serialize`.
  async offer(options) {
    const pc = this.pc;
    await pc.setLocalDescription(await pc.createOffer(options));
    const mid = this.screen?.transceiver.mid ?? null;
    const reply = await this.signaling.offer(pc.localDescription.sdp, mid);
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
  }

  /**
   * Shares `track` (from getDisplayMedia) as our screen. The server refuses while anyone is in
   * a private room (`rooms_split`): the offer is rolled back and the capture stopped.
   */
  async shareScreen(track) {
    await this.serialize(async () => {
      if (!this.pc || this.screen) {
        track.stop();
        return;
      }
      const transceiver = this.pc.addTransceiver(track, { direction: 'sendonly' });
      this.screen = { track, transceiver };
      try {
        await this.offer();
      } catch (e) {
        if (this.pc.signalingState === 'have-local-offer') {
          await this.pc.setLocalDescription({ type: 'rollback' });
        }
        this.endScreen();
        throw e;
      }
      // The browser's own "stop sharing" ends the track.
      track.addEventListener('ended', () => this.stopScreen());
      this.emit('screen', true);
    });
  }

  /** Ends our share (we stopped it, or the server did when the rooms split). */
  async stopScreen() {
    if (!this.screen) return;
    await this.serialize(async () => {
      if (!this.screen) return;
      this.endScreen();
      if (this.pc) await this.offer();
    });
  }

  endScreen() {
    if (!this.screen) return;
    this.screen.track.stop();
    this.screen.transceiver.stop();
    this.screen = null;
    this.emit('screen', false);
  }

  // Negotiations run one at a time: a server offer waits for our own to finish.
  serialize(step) {
    const run = this.queue.then(step, step);
    this.queue = run.catch((e) => {
      console.warn('negotiation failed', e);
      this.emit('error', e);
    });
    return run;
  }

  async answerServer(sdp) {
    if (!this.pc) return;
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    await this.signaling.answer(this.pc.localDescription.sdp);
    this.prune();
  }

  // A publisher's stream is replaced, not edited, whenever its tracks change: a <video> that
  // keeps a MediaStream whose video track was swapped in place (a return from a private room
  // brings the track back on a new media line) goes on showing the old, ended one.
  track(e) {
    // A track on one of our own lines is never anyone's media (docs/protocol.md).
    if (this.own?.has(e.transceiver)) return;
    const stream = e.streams[0]?.id;
    if (!stream) return;
    if (stream.startsWith('screen!')) {
      const identity = stream.slice('screen!'.length);
      this.screens.set(identity, new MediaStream([e.track]));
      e.track.addEventListener('ended', () => this.dropScreen(identity, e.track));
      this.emit('streams', this.streams);
      return;
    }
    const identity = stream;
    const old = this.streams.get(identity)?.getTracks() ?? [];
    const tracks = [...old.filter((t) => t.kind !== e.track.kind || t.readyState === 'live'), e.track];
    this.streams.set(identity, new MediaStream(tracks));
    e.track.addEventListener('ended', () => this.drop(identity, e.track));
    this.emit('streams', this.streams);
  }

  dropScreen(identity, track) {
    if (!this.screens.get(identity)?.getTracks().includes(track)) return;
    this.screens.delete(identity);
    this.emit('streams', this.streams);
  }

  drop(identity, track) {
    const stream = this.streams.get(identity);
    if (!stream?.getTracks().includes(track)) return;
    const rest = stream.getTracks().filter((t) => t !== track);
    if (rest.length) this.streams.set(identity, new MediaStream(rest));
    else this.streams.delete(identity);
    this.emit('streams', this.streams);
  }

  // Tracks stopped by a server offer (a leaver, a policy change) leave their streams.
  prune() {
    const live = new Set(
      this.pc
        .getTransceivers()
        .filter((t) => !t.stopped && t.currentDirection !== 'inactive' && t.currentDirection !== 'sendonly')
        .map((t) => t.receiver.track),
    );
    for (const [identity, stream] of [...this.streams]) {
      const tracks = stream.getTracks();
      const kept = tracks.filter((t) => live.has(t));
      if (kept.length === tracks.length) continue;
      if (kept.length) this.streams.set(identity, new MediaStream(kept));
      else this.streams.delete(identity);
    }
    for (const [identity, stream] of [...this.screens]) {
      if (!stream.getTracks().every((t) => live.has(t))) this.screens.delete(identity);
    }
    this.emit('streams', this.streams);
  }

  /** Enables or disables a local track (the server is told separately with `mute`). */
  setEnabled(kind, enabled) {
    for (const t of this.local?.getTracks() ?? []) {
      if (t.kind === kind) t.enabled = enabled;
    }
  }

  setAudioOnly(on) {
    return this.signaling.preferences({ audio_only: on });
  }

  /** A rough connection quality from the last stats: good, fair or poor. */
  async quality() {
    if (!this.pc) return 'unknown';
    const stats = await this.pc.getStats();
    let rtt = null;
    let lost = 0;
    let received = 0;
    stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined) {
        rtt = s.currentRoundTripTime;
      }
      if (s.type === 'inbound-rtp') {
        lost += s.packetsLost ?? 0;
        received += s.packetsReceived ?? 0;
      }
    });
    if (rtt === null && received === 0) return 'unknown';
    const loss = received + lost > 0 ? lost / (received + lost) : 0;
    if ((rtt ?? 0) > 0.4 || loss > 0.08) return 'poor';
    if ((rtt ?? 0) > 0.15 || loss > 0.02) return 'fair';
    return 'good';
  }

  close() {
    this.signaling.removeEventListener('media.offer', this.onOffer);
    this.endScreen();
    this.pc?.close();
    this.pc = null;
    for (const t of this.local?.getTracks() ?? []) t.stop();
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

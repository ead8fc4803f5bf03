// One RTCPeerConnection to the SFU (docs/protocol.md, "media plane"): the client offers what it
// publishes, answers the server's offers as others' tracks come and go, and reports each
// publisher's incoming stream (the stream id is the publisher's identity).

export class MediaSession extends EventTarget {
  constructor(signaling) {
    super();
    this.signaling = signaling;
    this.pc = null;
    this.local = null;
    this.streams = new Map(); // identity → MediaStream
    this.queue = Promise.resolve();
    this.onOffer = (e) => this.serialize(() => this.answerServer(e.detail.sdp));
    signaling.addEventListener('media.offer', this.onOffer);
  }

  /** Connects, publishing `local` (a MediaStream, possibly without tracks). */
  async start(local) {
    this.local = local;
    this.pc?.close();
    this.streams.clear();
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    this.pc = pc;
    for (const kind of ['audio', 'video']) {
      const track = local?.getTracks().find((t) => t.kind === kind);
      if (track) pc.addTransceiver(track, { direction: 'sendrecv', streams: [local] });
      else pc.addTransceiver(kind, { direction: 'recvonly' });
    }
    pc.ontrack = (e) => this.track(e);
    pc.onconnectionstatechange = () => this.emit('state', pc.connectionState);
    await this.serialize(async () => {
      await pc.setLocalDescription(await pc.createOffer());
      const reply = await this.signaling.offer(pc.localDescription.sdp);
      await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    });
  }

  /** Offers again with an ICE restart (after the server reported our media lost). */
  async restart() {
    if (!this.pc) return;
    await this.serialize(async () => {
      await this.pc.setLocalDescription(await this.pc.createOffer({ iceRestart: true }));
      const reply = await this.signaling.offer(this.pc.localDescription.sdp);
      await this.pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    });
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
    const identity = e.streams[0]?.id;
    if (!identity) return;
    const old = this.streams.get(identity)?.getTracks() ?? [];
    const tracks = [...old.filter((t) => t.kind !== e.track.kind || t.readyState === 'live'), e.track];
    this.streams.set(identity, new MediaStream(tracks));
    e.track.addEventListener('ended', () => this.drop(identity, e.track));
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
    this.pc?.close();
    this.pc = null;
    for (const t of this.local?.getTracks() ?? []) t.stop();
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

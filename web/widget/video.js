// Video for the widget and the workspace: the device check (camera preview, microphone level) and one
// peer connection to the broker's SFU, signalled over the chat socket (docs/protocol.md, "Video").
// ICE restarts by itself when the network changes; a reload rejoins the same visit.

const CAMERA = { width: 640, height: 480 };
/** The stream id the server gives a shared screen on this side's connection (`media::sfu::screen`). */
const SCREEN_STREAM = 'examroom-screen';

/**
 * Camera and microphone (or, with `camera: false`, the microphone alone), shown in `preview`, with a live level
 * written to `meter` (a <meter> element).
 */
export async function deviceCheck(preview, meter, { camera = true } = {}) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: camera ? CAMERA : false });
  preview.srcObject = stream;
  preview.muted = true;
  await preview.play().catch(() => {});
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const samples = new Uint8Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getByteTimeDomainData(samples);
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, Math.abs(s - 128));
    meter.value = peak / 128;
  }, 100);
  let stopped = false;
  // Idempotent: joining stops the meter, and ending the video stops it again.
  return { stream, stop() { if (stopped) return; stopped = true; clearInterval(timer); ctx.close(); } };
}

/**
 * The connection's quality as a person would put it: `good`, `fair` or `poor`, from the round trip of the
 * selected candidate pair and the share of incoming packets lost since the last reading (`last`: the previous
 * result's `totals`). Resolves `{ level, rttMs, lossPct, totals }`, or null before the connection has stats.
 */
export async function connectionQuality(pc, last) {
  const stats = await pc.getStats();
  let rtt = null;
  let lost = 0;
  let received = 0;
  stats.forEach((s) => {
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && s.currentRoundTripTime != null) rtt = s.currentRoundTripTime * 1000;
    if (s.type === 'inbound-rtp') { lost += Math.max(0, s.packetsLost || 0); received += s.packetsReceived || 0; }
  });
  if (rtt === null) return null;
  const dl = lost - (last?.lost || 0);
  const dr = received - (last?.received || 0);
  const lossPct = dl + dr > 0 ? (100 * dl) / (dl + dr) : 0;
  const level = rtt < 300 && lossPct < 2 ? 'good' : rtt < 600 && lossPct < 8 ? 'fair' : 'poor';
  return { level, rttMs: rtt, lossPct, totals: { lost, received } };
}

/** How long a new connection may take to connect before the call joins anew. */
const WATCHDOG_MS = 15000;
/** A connection this young, still coming up, is not replaced by a repeated request to rejoin. */
const REJOIN_SETTLE_MS = 5000;

export class VideoCall {
  /**
   * @param channel the chat Channel
   * @param started the `video_started` frame (visit id, ICE servers, transport policy)
   * @param stream local camera and microphone
   * @param remote <video> element for the other participant
   * @param onState called with this side's connection state
   */
  constructor(channel, started, stream, remote, onState) {
    this.channel = channel;
    this.remote = remote;
    this.onState = onState;
    this.stream = stream;
    this.devices = { microphone: true, camera: stream.getVideoTracks().length > 0 };
    window.addEventListener('online', () => this.restart());
    this.connect(started);
  }

  /** A peer connection for the visit `started` names, offered at once. */
  connect(started) {
    this.started = started;
    this.connectedAt = Date.now();
    // The server keeps a connection per socket: an ICE restart must come from the socket that made it.
    this.generation = this.channel.generation;
    this.visitId = started.visit_id;
    /** How many times the visit had moved when this connection was made (see `rejoin`). */
    this.epoch = started.epoch || 0;
    this.pending = [];
    this.offerAgain = false;
    // A screen shown on the connection this one replaces is gone with it (the server offers it again), and so are
    // the tiles of a third participant on (the server names the new connection's streams again).
    this.onScreen?.(null);
    this.onTilesReset?.();
    const pc = new RTCPeerConnection({
      iceServers: started.ice_servers,
      iceTransportPolicy: started.ice_transport_policy === 'relay' ? 'relay' : 'all',
    });
    this.pc = pc;
    const stream = this.stream;
    // Always both kinds, so a visit that starts audio only can bring video back with `replaceTrack` alone.
    for (const kind of ['audio', 'video']) {
      const track = stream.getTracks().find((t) => t.kind === kind);
      this[kind] = pc.addTransceiver(track || kind, { direction: 'sendrecv', streams: [stream] }).sender;
    }
    // The nurse's screen capture for the recording, after camera and microphone (a rejoin carries it over).
    this.screenTransceiver = this.screen?.readyState === 'live' ? pc.addTransceiver(this.screen, { direction: 'sendonly' }) : null;
    const inbound = new MediaStream();
    this.remote.srcObject = inbound;
    pc.ontrack = (e) => {
      // The other side's shared screen comes on a stream of its own (the server's offer adds it).
      const stream = e.streams[0];
      if (stream?.id === SCREEN_STREAM) {
        stream.onremovetrack = () => { if (!stream.getTracks().length) this.onScreen?.(null); };
        this.onScreen?.(stream);
        return;
      }
      // A third participant on: each one more comes on a stream of their own (the server's offer adds a pair).
      if (/^sfu-[^-]+-/.test(stream?.id || '') && this.onTile) { this.onTile(stream); return; }
      inbound.addTrack(e.track);
      this.remote.play().catch(() => {});
    };
    pc.onicecandidate = (e) => {
      if (e.candidate) this.channel.send({ type: 'video_candidate', visit_id: this.visitId, candidate: e.candidate.toJSON() });
    };
    pc.onconnectionstatechange = () => {
      this.onState(pc.connectionState);
      if (pc.connectionState === 'failed') this.restart();
    };
    // Not connected after a while (an answer or candidates lost while the socket moved between servers): join
    // anew rather than wait forever.
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.pc === pc && pc.connectionState !== 'connected' && pc.signalingState !== 'closed') this.rejoin(this.started);
    }, WATCHDOG_MS);
    // A changed network (Wi-Fi to cellular) shows up as "disconnected"; give it a moment, then restart ICE.
    pc.oniceconnectionstatechange = () => {
      if (pc.iceConnectionState === 'disconnected') {
        clearTimeout(this.restartTimer);
        this.restartTimer = setTimeout(() => { if (pc.iceConnectionState === 'disconnected') this.restart(); }, 2000);
      }
    };
    this.offer();
  }

  /**
   * The visit moved to another server (`video_started` with a higher `epoch` than this connection's): a new peer
   * connection there, with the same camera and microphone, no new question; this side's mute and camera state are
   * told again.
   */
  rejoin(started) {
    const old = this.pc;
    // Asked again for the same visit while a connection made on this very socket is still coming up (the
    // socket's return and the old connection's failure both ask): give that one its time, the watchdog
    // covers it if it never connects.
    const young = Date.now() - this.connectedAt < REJOIN_SETTLE_MS;
    if ((started.epoch || 0) === this.epoch && this.generation === this.channel.generation && young
      && ['new', 'connecting'].includes(old.connectionState)) return;
    old.onconnectionstatechange = null;
    old.oniceconnectionstatechange = null;
    clearTimeout(this.restartTimer);
    old.close();
    this.connect(started);
    this.channel.send({ type: 'video_media', visit_id: this.visitId, ...this.devices });
  }

  /**
   * Runs one signalling step after the ones before it: frames are handled as they arrive, and an answer, the
   * server's offer and a new offer of ours must not interleave (a rollback in the wrong state throws).
   */
  step(fn) {
    // A step queued for a connection since replaced (a rejoin) does nothing to the new one.
    const pc = this.pc;
    this.signaling = (this.signaling || Promise.resolve())
      .then(() => (pc === this.pc ? fn() : undefined))
      .catch((e) => console.warn(`signalling: ${e.message}`));
    return this.signaling;
  }

  /** The offer that had to wait for an answer, now (its options kept: an ICE restart stays one). */
  offerPending() {
    const options = this.offerAgain;
    this.offerAgain = false;
    if (options) this.offer(options === true ? undefined : options);
  }

  offer(options) {
    return this.step(() => this.makeOffer(options));
  }

  async makeOffer(options) {
    // One negotiation at a time: an offer while another waits for its answer goes after it.
    if (this.pc.signalingState !== 'stable') { this.offerAgain = options || true; return; }
    const offer = await this.pc.createOffer(options);
    await this.pc.setLocalDescription(offer);
    // The server records the track it names as the screen (by the id the offer's msid gives it), and forwards
    // it to nobody.
    const t = this.screenTransceiver;
    const id = t?.sender.track && t.direction === 'sendonly' ? msidTrack(offer.sdp, t.mid) : null;
    const screen = id ? { screen_track: id, screen_shared: !!this.screenShared } : {};
    this.channel.send({ type: 'video_offer', visit_id: this.visitId, sdp: offer.sdp, ...screen });
  }

  /**
   * The server's own offer (the other side's screen shared, or no longer). Polite: an offer of ours that
   * crossed it is rolled back (the server ignores it) and made again once this is answered.
   */
  serverOffer(sdp) {
    return this.step(() => this.takeServerOffer(sdp));
  }

  async takeServerOffer(sdp) {
    if (this.pc.signalingState === 'have-local-offer') {
      await this.pc.setLocalDescription({ type: 'rollback' });
      this.offerAgain = this.offerAgain || true;
    }
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.channel.send({ type: 'video_server_answer', visit_id: this.visitId, sdp: answer.sdp });
    for (const c of this.pending.splice(0)) await this.pc.addIceCandidate(c).catch(() => {});
    this.offerPending();
  }

  /** Shows this side's screen capture to the other side too (`true`), or to the recording only. */
  shareScreen(shared) {
    this.screenShared = shared;
    this.renegotiate();
  }

  /**
   * Sends `track` (a screen capture) for the recording only, or stops sending it (`null`): both renegotiate.
   * A capture the browser ends (its own "Stop sharing") stops the same way and calls `onEnded`.
   */
  async setScreen(track, onEnded) {
    if (this.screen && this.screen !== track) this.screen.stop();
    this.screen = track;
    if (!track) this.screenShared = false;
    // One section for the screen however often it starts and stops: the server caps the sections per side.
    const t = this.screenTransceiver;
    if (track) {
      track.addEventListener('ended', () => { if (this.screen === track) { this.setScreen(null); onEnded?.(); } });
      if (t) { await t.sender.replaceTrack(track); t.direction = 'sendonly'; } else this.screenTransceiver = this.pc.addTransceiver(track, { direction: 'sendonly' });
    } else if (t) {
      await t.sender.replaceTrack(null);
      t.direction = 'inactive';
    }
    this.renegotiate();
  }

  restart() {
    if (this.pc.signalingState === 'closed') return;
    // The socket changed since this connection was made (a reconnect): the server would answer from a new
    // connection, so join anew instead of restarting ICE.
    if (this.channel.generation !== this.generation) { this.rejoin(this.started); return; }
    this.offer({ iceRestart: true }).catch(() => {});
  }

  /**
   * The server asks for a new offer on this connection (someone joined who receives video only as H.264: the
   * answer asks us to send it); one offer at a time, so it waits for the answer to an offer still out.
   */
  renegotiate() {
    // The socket changed since this connection was made: the server would take an offer as a new join.
    if (this.channel.generation !== this.generation) { this.rejoin(this.started); return; }
    this.offer();
  }

  answer(sdp) {
    return this.step(() => this.takeAnswer(sdp));
  }

  async takeAnswer(sdp) {
    // An answer to an offer this connection no longer waits for (made before a rejoin or a restart) is stale.
    if (this.pc.signalingState !== 'have-local-offer') return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    for (const c of this.pending.splice(0)) await this.pc.addIceCandidate(c).catch(() => {});
    this.offerPending();
  }

  candidate(c) {
    return this.step(() => this.takeCandidate(c));
  }

  async takeCandidate(c) {
    if (!this.pc.remoteDescription) { this.pending.push(c); return; }
    await this.pc.addIceCandidate(c).catch(() => {});
  }

  /** Mute or unmute, camera off or on (the track is disabled, not stopped); the other side is told. */
  setDevices(devices) {
    Object.assign(this.devices, devices);
    for (const t of this.stream.getAudioTracks()) t.enabled = this.devices.microphone;
    for (const t of this.stream.getVideoTracks()) t.enabled = this.devices.camera;
    this.channel.send({ type: 'video_media', visit_id: this.visitId, ...this.devices });
  }

  /**
   * Applies the visit's mode: audio only stops the camera (its light goes off); video again opens it. Returns
   * false when the camera cannot be opened (blocked, missing, in use).
   */
  async applyAudioOnly(audioOnly) {
    if (audioOnly) {
      for (const t of this.stream.getVideoTracks()) { t.stop(); this.stream.removeTrack(t); }
      await this.video.replaceTrack(null);
      return true;
    }
    if (this.stream.getVideoTracks().length) return true;
    try {
      const camera = (await navigator.mediaDevices.getUserMedia({ video: CAMERA })).getVideoTracks()[0];
      camera.enabled = this.devices.camera;
      this.stream.addTrack(camera);
      await this.video.replaceTrack(camera);
      return true;
    } catch (e) {
      return false;
    }
  }

  /** Closes this side's connection; `end` also ends the video for both. */
  close(end) {
    clearTimeout(this.watchdog);
    this.channel.send({ type: end ? 'video_end' : 'video_leave', visit_id: this.visitId });
    this.pc.close();
    for (const t of this.stream.getTracks()) t.stop();
    this.screen?.stop();
    this.onState('closed');
  }
}

/** The track id the `a=msid` line of the section `mid` of `sdp` names (a sender keeps it across replaceTrack). */
function msidTrack(sdp, mid) {
  const section = sdp.split(/\r?\nm=/).find((s) => s.split(/\r?\n/).includes(`a=mid:${mid}`));
  const line = section?.split(/\r?\n/).find((l) => l.startsWith('a=msid:'));
  return line?.split(' ')[1] ?? null;
}

/**
 * What one side is sending, in words (`who` is "Your nurse" or "The patient"): shown next to the video, because
 * a frozen or silent picture alone does not say whether someone muted, turned the camera off, or lost the link.
 */
export function describeMedia(who, devices, audioOnly) {
  const parts = [];
  if (devices && !devices.microphone) parts.push(`${who} muted their microphone.`);
  if (!audioOnly && devices && !devices.camera) parts.push(`${who}'s camera is off.`);
  return parts.join(' ');
}

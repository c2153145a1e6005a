// The pre-call test (docs/protocol.md, "Pre-call test"): the camera, the microphone and a real connection to
// the broker's media server, through the same ICE servers (TURN) a visit uses, in a room of its own (nothing is
// sent to anyone or recorded). The result is one plain verdict — video will work, audio only, or blocked — with
// what to do. `verdict` is a pure function of what was measured.
import { t } from '/widget/i18n.js';

const CAMERA = { width: 640, height: 480 };
/** How long the connection may take before the network counts as blocked. */
const CONNECT_MS = 10000;
/** How long media flows before the round trip and loss are read. */
const MEASURE_MS = 3000;
/** Above these, video is unlikely to be watchable: the visit should expect audio only. */
const SLOW_RTT_MS = 500;
const SLOW_LOSS_PCT = 10;

/**
 * The verdict for what was measured: `{ microphone, camera, connected, rttMs, lossPct, route }`.
 * Returns `{ kind: 'video' | 'audio' | 'blocked', title, advice }`.
 */
export function verdict(m) {
  const chat = t('stillChat');
  if (!m.microphone) {
    return { kind: 'blocked', title: t('vMicTitle'), advice: t('vMicAdvice') + chat };
  }
  if (!m.connected) {
    return { kind: 'blocked', title: t('vNetTitle'), advice: t('vNetAdvice') + chat };
  }
  if (!m.camera) {
    return { kind: 'audio', title: t('vCamTitle'), advice: t('vCamAdvice') };
  }
  if ((m.rttMs ?? 0) > SLOW_RTT_MS || (m.lossPct ?? 0) > SLOW_LOSS_PCT) {
    return { kind: 'audio', title: t('vSlowTitle'), advice: t('vSlowAdvice') };
  }
  return { kind: 'video', title: t('vOkTitle'), advice: t('vOkAdvice') };
}

/** What the connection went through, in words. */
export function describeRoute(m) {
  if (!m.connected) return t('noServer');
  const via = m.relay ? t('viaRelay', { protocol: (m.relayProtocol || m.protocol || '').toUpperCase() })
    : t('viaDirect', { protocol: (m.protocol || '').toUpperCase() });
  const rtt = m.rttMs != null ? t('roundTrip', { ms: Math.round(m.rttMs) }) : '';
  const loss = m.lossPct != null ? t('lost', { pct: Number(m.lossPct.toFixed(1)) }) : '';
  return t('connectedVia', { via, rtt, loss });
}

/** Camera and microphone, or the microphone alone, or nothing. */
async function devices() {
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio: true, video: CAMERA }), camera: true, microphone: true };
  } catch (_) { /* the camera may be the problem: try the microphone alone */ }
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio: true }), camera: false, microphone: true };
  } catch (_) {
    return { stream: new MediaStream(), camera: false, microphone: false };
  }
}

/** The selected candidate pair's route and round trip, and the loss the server reported on what we sent. */
async function measure(pc) {
  const stats = await pc.getStats();
  const m = { connected: true };
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  if (pair) {
    const local = stats.get(pair.localCandidateId);
    m.relay = local?.candidateType === 'relay';
    m.protocol = local?.protocol;
    m.relayProtocol = local?.relayProtocol;
    if (pair.currentRoundTripTime != null) m.rttMs = pair.currentRoundTripTime * 1000;
  }
  let lost = 0; let sent = 0;
  stats.forEach((s) => {
    if (s.type === 'remote-inbound-rtp') lost += Math.max(0, s.packetsLost || 0);
    if (s.type === 'outbound-rtp') sent += s.packetsSent || 0;
  });
  if (sent > 0) m.lossPct = (100 * lost) / (sent + lost);
  return m;
}

/**
 * One run of the test over `channel`. `onFrame` must be handed the `precall_*` frames; `show(step, text)`
 * reports progress; the promise resolves with `{ measured, verdict }`.
 */
export class PrecallTest {
  constructor(channel, preview) {
    this.channel = channel;
    this.preview = preview;
    this.waiters = {};
    this.pending = [];
  }

  /** Hands a `precall_ready`, `precall_answer` or `precall_candidate` frame to the running test. */
  frame(f) {
    if (f.type === 'precall_candidate') {
      // The server trickles candidates as it gathers them, possibly before its answer is applied here.
      if (this.pc?.remoteDescription) this.pc.addIceCandidate(f.candidate).catch(() => {});
      else this.pending.push(f.candidate);
      return;
    }
    this.waiters[f.type]?.(f);
  }

  next(type, ms) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type}`)), ms);
      this.waiters[type] = (f) => { clearTimeout(timer); delete this.waiters[type]; resolve(f); };
    });
  }

  async run(show) {
    show(t('checkingDevices'));
    const found = await devices();
    this.stream = found.stream;
    // Closed while the browser was asking for the devices: release them, connect nothing.
    if (this.cancelled) { this.stop(); return null; }
    this.preview.srcObject = found.stream;
    this.preview.hidden = !found.camera;
    this.preview.muted = true;
    this.preview.play().catch(() => {});
    const measured = { camera: found.camera, microphone: found.microphone, connected: false };
    show(t('connectingServer'));
    try {
      const ready = this.next('precall_ready', 5000);
      this.channel.send({ type: 'precall_start' });
      const r = await ready;
      if (this.cancelled) return null;
      const pc = new RTCPeerConnection({ iceServers: r.ice_servers, iceTransportPolicy: r.ice_transport_policy === 'relay' ? 'relay' : 'all' });
      this.pc = pc;
      for (const kind of ['audio', 'video']) {
        const track = found.stream.getTracks().find((t) => t.kind === kind);
        pc.addTransceiver(track || kind, { direction: 'sendrecv', streams: [found.stream] });
      }
      pc.onicecandidate = (e) => { if (e.candidate) this.channel.send({ type: 'precall_candidate', candidate: e.candidate.toJSON() }); };
      const connected = new Promise((resolve) => {
        pc.onconnectionstatechange = () => {
          if (pc.connectionState === 'connected') resolve(true);
          if (pc.connectionState === 'failed') resolve(false);
        };
        setTimeout(() => resolve(false), CONNECT_MS);
      });
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const answer = this.next('precall_answer', 5000);
      this.channel.send({ type: 'precall_offer', sdp: offer.sdp });
      await pc.setRemoteDescription({ type: 'answer', sdp: (await answer).sdp });
      for (const c of this.pending.splice(0)) await pc.addIceCandidate(c).catch(() => {});
      if (await connected) {
        show(t('measuring'));
        await new Promise((r) => setTimeout(r, MEASURE_MS));
        Object.assign(measured, await measure(pc));
      }
    } catch (_) {
      // No answer from the broker, or a connection that could not be made: counted as not connected.
    } finally {
      this.stop();
    }
    return { measured, verdict: verdict(measured) };
  }

  /** Stops a run in progress: it releases everything and resolves with null. */
  cancel() {
    this.cancelled = true;
    this.stop();
  }

  /** Closes the test connection and releases the camera and microphone. */
  stop() {
    if (this.pc) { this.pc.close(); this.pc = null; this.channel.send({ type: 'precall_end' }); }
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.preview.srcObject = null;
    this.preview.hidden = true;
  }
}

const $ = (id) => document.getElementById(id);
let running = null;

/** The channel frames of the test, for the widget's handler table. */
export const precallHandlers = {
  precall_ready(f) { running?.frame(f); },
  precall_answer(f) { running?.frame(f); },
  precall_candidate(f) { running?.frame(f); },
};

/** Wires the "Test my camera and connection" button and its panel to the channel. */
export function wirePrecall(ch) {
  $('precall-open').hidden = false;
  const start = async () => {
    if (running) return;
    // A video visit holds the camera: the test is for before one.
    if (!$('video').hidden) { $('notice').hidden = false; $('notice').textContent = t('inVisitAlready'); return; }
    $('precall').hidden = false;
    $('precall-result').hidden = true;
    $('precall-again').hidden = true;
    $('precall-open').hidden = true;
    const test = new PrecallTest(ch, $('precall-preview'));
    running = test;
    const result = await test.run((text) => { if (running === test) $('precall-progress').textContent = text; });
    // Closed (or started again) meanwhile: this run's result is nobody's.
    if (running !== test || !result) return;
    running = null;
    const { measured, verdict: v } = result;
    $('precall-progress').textContent = '';
    $('precall-result').hidden = false;
    $('precall-result').dataset.kind = v.kind;
    $('precall-verdict').textContent = v.title;
    $('precall-advice').textContent = v.advice;
    $('precall-route').textContent = describeRoute(measured);
    $('precall-again').hidden = false;
    $('precall-verdict').focus();
  };
  $('precall-open').addEventListener('click', start);
  $('precall-again').addEventListener('click', start);
  $('precall-close').addEventListener('click', () => {
    running?.cancel();
    running = null;
    $('precall').hidden = true;
    $('precall-open').hidden = false;
    $('precall-open').focus();
  });
}

// Shared by the browser tests and the join-time benchmark: Debian's Chromium through playwright-core with fake
// camera and microphone, sign-in of the demo patient and nurse, and inbound media statistics of a page.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.TEST_OIDC_PROVIDER_DIR || path.resolve('tests/support'), 'package.json'));
const { chromium } = require('playwright-core');

// `insecureOrigin`: a plain-http origin off loopback to treat as secure (camera, WebCrypto), as TLS would make it
// in a deployment; the NAT test serves over http on a routed address. `askPermissions: false` keeps Chromium's
// own permission decisions (no auto-accepting fake prompt): a context then grants only what it lists, and a
// camera it does not list is refused as a patient's "Block" would be.
export function launch(insecureOrigin, { askPermissions = true } = {}) {
  const secure = insecureOrigin ? [`--unsafely-treat-insecure-origin-as-secure=${insecureOrigin}`] : [];
  const prompts = askPermissions ? ['--use-fake-ui-for-media-stream'] : [];
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [...secure, ...prompts, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--autoplay-policy=no-user-gesture-required',
      '--allow-loopback-in-peer-connection', '--auto-select-desktop-capture-source=Entire screen'],
  });
}

export function passwords(credentialsFile) {
  const creds = JSON.parse(fs.readFileSync(credentialsFile, 'utf8'));
  return (u) => creds.users.find((x) => x.username === u).password;
}

// Records every RTCPeerConnection a page (or its frames) creates, so getStats() can be read.
export const recordPeerConnections = () => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) { const pc = new Native(...args); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Native.prototype;
};

// Makes every video transceiver of the page offer only `mime` (Safari with VP8 turned off, say).
const onlyVideoCodec = (mime) => {
  const add = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function (trackOrKind, init) {
    const t = add.call(this, trackOrKind, init);
    const kind = typeof trackOrKind === 'string' ? trackOrKind : trackOrKind.kind;
    if (kind === 'video') {
      t.setCodecPreferences(RTCRtpReceiver.getCapabilities('video').codecs.filter((c) => c.mimeType === mime));
    }
    return t;
  };
};

/**
 * The patient signed in on the demo portal, a chat started; returns { page, widget }. `videoCodec` (a MIME type):
 * the patient's browser offers only that video codec.
 */
export async function patientInChat(browser, url, password, { user = 'patient', contextOptions = {}, videoCodec } = {}) {
  const ctx = await browser.newContext(contextOptions);
  await ctx.addInitScript(recordPeerConnections);
  if (videoCodec) await ctx.addInitScript(onlyVideoCodec, videoCodec);
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.log(`patient page error: ${e.message}`));
  await page.goto(`${url}/portal/`);
  await page.getByRole('button', { name: 'Sign in to MyClinic' }).click();
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password(user));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${url}/portal/`);
  const widget = page.frameLocator('#examroom-widget iframe');
  await widget.getByRole('button', { name: 'Start a chat with a nurse' }).click();
  await widget.getByText(/Your reference number: ER-/).waitFor();
  return { page, widget };
}

/** The nurse signed in to the workspace and ready for offers; returns the page. */
export async function nurseReady(browser, url, password, user = 'nurse') {
  const ctx = await browser.newContext();
  await ctx.addInitScript(recordPeerConnections);
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.log(`${user} page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'warning' || m.type() === 'error') console.log(`${user} console: ${m.text()}`); });
  await page.goto(`${url}/workspace/`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password(user));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${url}/workspace/`);
  await page.getByRole('button', { name: 'Ready' }).click();
  return page;
}

/** The nurse signed in, ready, having accepted the waiting chat; returns { page, chat }. */
export async function nurseAccepting(browser, url, password, widget) {
  const page = await nurseReady(browser, url, password);
  await page.getByRole('button', { name: 'Accept' }).click();
  await widget.getByText('A nurse has joined').waitFor();
  return { page, chat: page.locator('article.chat') };
}

/** A staff member signed in through the dev provider, landing on `path`; returns the page. */
export async function staffSignIn(browser, url, password, user, path, contextOptions = {}) {
  const ctx = await browser.newContext(contextOptions);
  await ctx.addInitScript(recordPeerConnections);
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.log(`${user} page error: ${e.message}`));
  await page.goto(`${url}/auth/login?return_to=${encodeURIComponent(path)}`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password(user));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${url}${path}`);
  return page;
}

/** A recorded video visit: the patient in the widget agreed and joined, the nurse joined, each decoding the
 * other; returns { patient, widget, nurse, chat }. */
export async function recordedVisit(browser, url, password) {
  const { page: patient, widget } = await patientInChat(browser, url, password);
  const { page: nurse, chat } = await nurseAccepting(browser, url, password, widget);
  await chat.getByRole('button', { name: 'Start video…' }).click();
  await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
  await widget.getByLabel(/I agree that this video visit is recorded/).check();
  await widget.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await widget.getByRole('button', { name: 'Join video' }).click();
  await chat.getByText('● Recording').waitFor();
  await seesOthers(nurse, 'the nurse', 1);
  await seesOthers(widgetFrame(patient), 'the patient', 1);
  return { patient, widget, nurse, chat };
}

/** The compliance console's player, open on a recording: plays every tile for `ms` from `at` s, tapping each tile's sound
 * with an analyser (the console plays it through the element; the tap passes it on), and returns per tile its
 * caption, video track, frames decoded, width, time and loudest RMS. */
export async function consoleTiles(officer, { ms = 3000, at = 0 } = {}) {
  await officer.locator('#tiles video').first().waitFor();
  if (at) await officer.getByLabel('Position in the recording (seconds)').fill(at.toFixed(1));
  return officer.evaluate(async (ms) => {
    const videos = [...document.querySelectorAll('#tiles video')];
    await Promise.all(videos.map((v) => (v.readyState >= 1 ? null : new Promise((ok, fail) => {
      v.addEventListener('loadedmetadata', ok, { once: true });
      v.addEventListener('error', () => fail(new Error(`tile ${v.dataset.track}: media error ${v.error?.code}`)), { once: true });
    }))));
    const ctx = new AudioContext();
    const meters = videos.map((v) => {
      const an = ctx.createAnalyser();
      an.fftSize = 2048;
      const src = ctx.createMediaElementSource(v);
      src.connect(an);
      an.connect(ctx.destination);
      return an;
    });
    const peaks = videos.map(() => 0);
    document.getElementById('play').click();
    const buf = new Float32Array(2048);
    for (const until = Date.now() + ms; Date.now() < until;) {
      meters.forEach((an, i) => {
        an.getFloatTimeDomainData(buf);
        let sum = 0;
        for (const x of buf) sum += x * x;
        peaks[i] = Math.max(peaks[i], Math.sqrt(sum / buf.length));
      });
      await new Promise((r) => setTimeout(r, 40));
    }
    document.getElementById('play').click();
    return videos.map((v, i) => ({
      caption: v.closest('figure').querySelector('figcaption').textContent,
      track: Number(v.dataset.track),
      frames: v.getVideoPlaybackQuality().totalVideoFrames,
      width: v.videoWidth,
      time: v.currentTime,
      rms: peaks[i],
    }));
  }, ms);
}

/** Checks `tiles` (from consoleTiles): each decoded frames and has sound (the screen has none), all in step. */
export function tilesPlayed(tiles) {
  const times = tiles.map((t) => t.time);
  for (const t of tiles) {
    if (!(t.frames > 10 && t.width > 0)) throw new Error(`tile ${t.caption} shows no video: ${JSON.stringify(tiles)}`);
    if (t.track !== 5 && !(t.rms > 0.005)) throw new Error(`tile ${t.caption} has no sound: ${JSON.stringify(tiles)}`);
  }
  if (Math.max(...times) - Math.min(...times) > 0.6) throw new Error(`tiles out of step: ${JSON.stringify(tiles)}`);
}

/** How many distinct senders' videos and audios `target` decodes now (inbound streams past a few frames). */
async function decoding(target) {
  return target.evaluate(async () => {
    const pc = window.__pcs.filter((p) => p.connectionState !== 'closed').at(-1);
    if (!pc) return { videos: 0, audios: 0 };
    const stats = await pc.getStats();
    let videos = 0;
    let audios = 0;
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 5) videos += 1;
      if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.packetsReceived > 20) audios += 1;
    });
    return { videos, audios };
  });
}

/** Waits until `target` decodes `n` others' video and audio; returns the counts. */
export async function seesOthers(target, who, n) {
  let last;
  for (let i = 0; i < 160; i++) {
    last = await decoding(target);
    if (last.videos >= n && last.audios >= n) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${who} decodes ${JSON.stringify(last)}, not ${n} others`);
}

/** The captions of the main picture and every tile in `target`, sorted, once all are named. */
export async function captions(target) {
  return target.evaluate(async () => {
    const read = () => [document.querySelector('.stage .who')?.textContent || '',
      ...[...document.querySelectorAll('.tiles figure:not([hidden]) figcaption')].map((c) => c.textContent)].sort();
    for (let i = 0; i < 40 && read().some((c) => !c); i++) await new Promise((r) => setTimeout(r, 250));
    return read();
  });
}

/** Inbound totals of the newest open peer connection in `target` (a page or frame). */
export async function inbound(target) {
  return target.evaluate(async () => {
    const pc = window.__pcs.filter((p) => p.connectionState !== 'closed').at(-1);
    if (!pc) return null;
    const out = { framesDecoded: 0, audioPackets: 0, videoPackets: 0, pli: 0, relay: false, state: pc.connectionState };
    const stats = await pc.getStats();
    const codec = (id) => stats.get(id)?.mimeType;
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.framesDecoded += s.framesDecoded || 0;
        out.videoPackets += s.packetsReceived || 0;
        out.pli += s.pliCount || 0;
        out.videoCodecIn = codec(s.codecId);
      }
      if (s.type === 'outbound-rtp' && s.kind === 'video') out.videoCodecOut = codec(s.codecId);
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPackets += s.packetsReceived || 0;
    });
    // The pair the transport selected; a nominated, succeeded pair where the transport does not say (the
    // `nominated` flag alone lags on a busy machine).
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) pair = s;
    });
    if (pair) {
      const local = stats.get(pair.localCandidateId);
      if (local && local.candidateType === 'relay') out.relay = true;
      if (local) Object.assign(out, { localProtocol: local.protocol, relayProtocol: local.relayProtocol });
      const remote = stats.get(pair.remoteCandidateId);
      if (remote) Object.assign(out, { remoteAddress: remote.address, remoteType: remote.candidateType });
    }
    return out;
  });
}

/** Frames decoded (with audio) and still increasing in `target`, or null when none came within `ms`. */
export async function mediaFlowing(target, ms) {
  const deadline = Date.now() + ms;
  let first = null;
  while (Date.now() < deadline) {
    const s = await inbound(target);
    if (s && s.framesDecoded > 0 && s.audioPackets > 0) {
      if (!first) first = s;
      else if (s.framesDecoded > first.framesDecoded + 5) return s;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return null;
}

/** Runs the widget's pre-call test (opening its panel, or again); returns { kind, title, advice, route }. */
export async function precallVerdict(widget) {
  const again = widget.getByRole('button', { name: 'Test again' });
  if (await again.isVisible()) await again.click();
  else await widget.getByRole('button', { name: 'Test my camera and connection' }).click();
  const result = widget.locator('#precall-result');
  await result.waitFor({ state: 'visible', timeout: 30000 });
  const text = async (id) => (await widget.locator(id).textContent()).trim();
  return { kind: await result.getAttribute('data-kind'), title: await text('#precall-verdict'),
    advice: await text('#precall-advice'), route: await text('#precall-route') };
}

export function widgetFrame(page) {
  return page.frames().find((f) => f.url().includes('/widget/'));
}

/**
 * The frame every newer flow shares: its arguments (BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR), a browser,
 * screenshots and steps; `passed` is printed when `body` returns, and a failure keeps a screenshot of every page.
 */
export async function flow(label, passed, body) {
  const [url, credentialsFile, artifacts] = process.argv.slice(2);
  fs.mkdirSync(artifacts, { recursive: true });
  const browser = await launch();
  const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
  const step = (msg) => console.log(`step: ${msg}`);
  try {
    await body({ url, password: passwords(credentialsFile), browser, shot, step });
    console.log(passed);
  } catch (e) {
    console.error(e);
    for (const p of browser.contexts().flatMap((c) => c.pages())) await shot(p, `failure-${label}-${p.url().split('/')[3] || 'page'}`).catch(() => {});
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

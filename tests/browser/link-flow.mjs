// One side of a video visit on an impaired link, for the bad-link benchmark (scripts/bench-network.sh) and the
// lossy-link test (tests/integration/loss.rs): the patient's browser runs in a namespace whose link is impaired,
// the nurse's beside the broker. They go in step through files in SYNC_DIR; once its media flows each side waits
// WARMUP seconds, then reads getStats() over SECONDS seconds and writes what it received (frame rate, freezes,
// audio concealment, round trip, losses asked for) and sent (bitrate, retransmissions) to SYNC_DIR/ROLE.json.
// Usage: node link-flow.mjs BROKER_URL CREDENTIALS_JSON SYNC_DIR patient|nurse SECONDS
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseReady, mediaFlowing, widgetFrame } from './lib.mjs';

const [url, credentialsFile, sync, role, seconds] = process.argv.slice(2);
const WARMUP_MS = 8000;
const password = passwords(credentialsFile);
const browser = await launch(url);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mark = (name, body = '') => fs.writeFileSync(path.join(sync, name), body);
async function until(name, ms = 180000) {
  const deadline = Date.now() + ms;
  while (!fs.existsSync(path.join(sync, name))) {
    if (Date.now() > deadline) throw new Error(`${role}: no ${name} within ${ms} ms`);
    await sleep(200);
  }
}

/** The counters this benchmark reads, summed over the newest live connection's streams. */
function snapshot(target) {
  return target.evaluate(async () => {
    const pc = window.__pcs.filter((p) => p.connectionState !== 'closed').at(-1);
    const s = {
      at: performance.now(), frames: 0, freezes: 0, freezeSeconds: 0, concealed: 0, samples: 0, sentBytes: 0, rttMs: null,
      nacksSent: 0, repairsSent: 0,
    };
    if (!pc) return s;
    const stats = await pc.getStats();
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        s.frames += r.framesDecoded || 0;
        s.freezes += r.freezeCount || 0;
        s.freezeSeconds += r.totalFreezesDuration || 0;
        s.nacksSent += r.nackCount || 0;
      }
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        s.concealed += r.concealedSamples || 0;
        s.samples += r.totalSamplesReceived || 0;
      }
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        s.sentBytes += r.bytesSent || 0;
        s.repairsSent += r.retransmittedPacketsSent || 0;
      }
      if (r.type === 'transport' && r.selectedCandidatePairId) {
        const pair = stats.get(r.selectedCandidatePairId);
        if (pair && pair.currentRoundTripTime != null) s.rttMs = pair.currentRoundTripTime * 1000;
      }
    });
    return s;
  });
}

let failed = false;
try {
  let target;
  if (role === 'patient') {
    // Chromium may report ERR_NETWORK_CHANGED while the namespace's new rules settle: try again.
    let signedIn = null;
    for (let attempt = 1; !signedIn; attempt++) {
      signedIn = await patientInChat(browser, url, password).catch((e) => {
        if (attempt >= 5) throw e;
        return sleep(2000).then(() => null);
      });
    }
    const { page, widget } = signedIn;
    mark('waiting');
    await widget.getByText('A nurse has joined').waitFor({ timeout: 120000 });
    await widget.getByRole('button', { name: 'Allow camera and microphone' }).click({ timeout: 120000 });
    await widget.getByRole('button', { name: 'Join video' }).click();
    target = () => widgetFrame(page);
  } else {
    await until('waiting');
    const page = await nurseReady(browser, url, password);
    await page.getByRole('button', { name: 'Accept' }).click();
    const chat = page.locator('article.chat');
    await chat.getByRole('button', { name: 'Start video…' }).click();
    await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
    target = () => page;
  }
  // Under a bad link media may never flow well: measure whatever comes.
  await mediaFlowing(target(), 60000);
  await sleep(WARMUP_MS);
  const a = await snapshot(target());
  await sleep(Number(seconds) * 1000);
  const b = await snapshot(target());
  const dt = (b.at - a.at) / 1000;
  const result = {
    fps: (b.frames - a.frames) / dt,
    freezes: b.freezes - a.freezes,
    freezeSeconds: b.freezeSeconds - a.freezeSeconds,
    concealedPct: b.samples > a.samples ? (100 * (b.concealed - a.concealed)) / (b.samples - a.samples) : 100,
    rttMs: b.rttMs,
    sendKbps: ((b.sentBytes - a.sentBytes) * 8) / dt / 1000,
    nacksSent: b.nacksSent - a.nacksSent,
    repairsSent: b.repairsSent - a.repairsSent,
  };
  mark(`${role}.json`, JSON.stringify(result));
  await until(role === 'patient' ? 'nurse.json' : 'patient.json');
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  await browser.close();
}
process.exitCode = failed ? 1 : 0;

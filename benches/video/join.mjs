// Join-time benchmark (not a test): the nurse elevates an accepted chat N times; each time from her click on
// "Ask the patient to join video" until both sides have decoded a first remote frame (the patient's consent
// clicks are automated and included). Then one visit is held for a while to measure the broker's CPU per
// forwarded stream (with the recorder running when LABEL contains "recorded"). Prints one Markdown table row.
// Usage: node join.mjs BROKER_URL CREDENTIALS_JSON BROKER_PID RUNS LABEL
import fs from 'node:fs';
import { launch, passwords, patientInChat, nurseAccepting, inbound, widgetFrame } from '../../tests/browser/lib.mjs';

const [url, credentialsFile, pid, runs, label] = process.argv.slice(2);
const password = passwords(credentialsFile);
const browser = await launch();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cpuSeconds = () => {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(s.length * p) - 1)]; };

async function firstFrame(target, baseline) {
  for (;;) {
    const s = await inbound(target);
    if (s && s.framesDecoded > baseline) return;
    await sleep(20);
  }
}

try {
  const { page: patient, widget } = await patientInChat(browser, url, password);
  const { page: nurse, chat } = await nurseAccepting(browser, url, password, widget);
  const joins = [];
  let relayed = true;
  for (let i = 0; i < Number(runs); i++) {
    await chat.getByRole('button', { name: 'Start video…' }).click();
    const ask = chat.getByRole('button', { name: 'Ask the patient to join video' });
    await ask.waitFor();
    const t0 = performance.now();
    await ask.click();
    // A "recorded" run consents to recording (the dev policy records every video visit with consent).
    if (label.includes('recorded')) await widget.getByLabel(/I agree that this video visit is recorded/).check();
    await widget.getByRole('button', { name: 'Allow camera and microphone' }).click();
    await widget.getByRole('button', { name: 'Join video' }).click();
    await Promise.all([firstFrame(nurse, 0), firstFrame(widgetFrame(patient), 0)]);
    joins.push(performance.now() - t0);
    relayed &&= (await inbound(nurse)).relay;
    if (i < Number(runs) - 1) {
      await chat.getByRole('button', { name: 'End video' }).click();
      await widget.getByText('The video has ended. You can keep chatting.').waitFor();
    }
  }
  // One visit in progress: 2 video + 2 audio streams forwarded by the SFU.
  await sleep(2000);
  const c0 = cpuSeconds();
  const window = 20;
  await sleep(window * 1000);
  const cpu = (cpuSeconds() - c0) / window;
  const perStream = (cpu * 100 / 4).toFixed(2);
  console.log(`| ${label} | ${joins.length} | ${pct(joins, 0.5).toFixed(0)} ms | ${pct(joins, 0.95).toFixed(0)} ms | ${relayed ? 'relay' : 'host'} | ${(cpu * 100).toFixed(1)} % | ${perStream} % |`);
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}

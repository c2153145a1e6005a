// The review player: one tile per recorded participant (the patient, the nurse, each guest or interpreter, the
// nurse's screen), each its own WebM remuxed by the broker from the sealed recording and streamed by range, all
// played on one clock so their sound mixes and their pictures stay in step. The clock is the player's own (the
// visit's time, from its start to its end), not any one participant's file: someone who joined late or left
// early, or whose file cannot be played, stops nobody else. A pause or gap shows a card over the pictures, and
// each is a band on the timeline that a click or Enter jumps to.

const ROLE = {
  patient: 'Patient',
  nurse: 'Nurse',
  guest: 'Guest',
  interpreter: 'Interpreter',
  physician: 'Physician',
};
export const GAP_WHY = {
  lost: 'media lost (server restart)',
  failover: 'media lost while the visit moved off a failed server',
  handover: 'the visit moving to another server',
};
/** How far (seconds) a tile may drift from the clock before it is put back in step. */
const DRIFT = 0.3;
/** How often the clock moves the tiles, the timeline and the card. */
const TICK_MS = 200;

const secs = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, '0')}`;

/** The tiles a manifest calls for: each recorded camera once (two nurses share one), then the screen; each with
 * when its media starts and ends (ms on the visit's clock; `left` null when it lasts to the end). */
export function feeds(manifest) {
  const out = [];
  let guests = 0;
  for (const p of manifest.participants || []) {
    if (!p.recorded || !p.tracks) continue;
    const track = p.tracks[0];
    // Guests are not named in the record (their names are theirs); staff by the name they signed in with.
    const who = p.role === 'guest' ? `${ROLE.guest} ${++guests}` : p.name || '';
    const same = out.find((f) => f.track === track);
    if (same) {
      if (who) same.names.push(who);
      same.joined = Math.min(same.joined, p.joined_ms);
      same.left = same.left === null || !p.left_ms ? null : Math.max(same.left, p.left_ms);
      continue;
    }
    out.push({ track, role: p.role, names: who ? [who] : [], joined: p.joined_ms, left: p.left_ms || null });
  }
  // A recording made before manifests named participants: the patient's and the nurse's, as that layout had them.
  if (!(manifest.participants || []).length) {
    for (const [track, role] of [[1, 'patient'], [3, 'nurse']]) {
      out.push({ track, role, names: [], joined: manifest.started_ms, left: null });
    }
  }
  const screen = manifest.screen || [];
  if (screen.length) {
    const last = screen[screen.length - 1];
    out.push({ track: 5, role: 'screen', names: [], joined: screen[0].start_ms, left: last.end_ms || null });
  }
  // The patient first, then the nurse, her screen, the guests as they came.
  return out.sort((a, b) => a.track - b.track);
}

export function caption(f) {
  if (f.role === 'screen') return "Nurse's screen";
  if (f.role === 'guest') return f.names[0] || ROLE.guest;
  const role = ROLE[f.role] || f.role;
  return f.names.length ? `${role}: ${f.names.join(', then ')}` : role;
}

/** The player on screen now: stopped when another recording is opened. */
let mounted = null;

/** Builds the player for `rec` (its metadata) into the page's stage; `url(track, kind)` is a feed's stream
 * (`kind` 'download' for its file; `track` null for the visit's original file). */
export function mount(rec, url) {
  mounted?.unmount();
  const $ = (id) => document.getElementById(id);
  const manifest = rec.manifest;
  const start = manifest.started_ms;
  const span = Math.max(1, (manifest.ended_ms || start) - start) / 1000;
  const tiles = feeds(manifest).map((f) => {
    const fig = document.createElement('figure');
    const video = document.createElement('video');
    video.preload = 'auto';
    video.playsInline = true;
    video.src = url(f.track);
    video.dataset.track = f.track;
    const cap = document.createElement('figcaption');
    cap.textContent = caption(f);
    video.setAttribute('aria-label', `${cap.textContent}: recording`);
    const note = document.createElement('p');
    note.className = 'tile-note';
    note.hidden = true;
    video.addEventListener('error', () => { note.hidden = false; note.textContent = 'This recording of theirs could not be played.'; });
    fig.append(video, note, cap);
    // Their file starts where their media does and ends where it ends: outside that the tile waits.
    const from = Math.max(0, (f.joined - start) / 1000);
    const to = f.left ? Math.min(span, (f.left - start) / 1000) : span;
    return { f, video, note, fig, from, to };
  });
  $('tiles').replaceChildren(...tiles.map((t) => t.fig));
  $('tiles').dataset.count = tiles.length;
  const position = $('position');
  position.max = span.toFixed(1);
  position.value = 0;

  const intervals = [
    ...manifest.pauses.map((p) => ({ kind: 'pause', a: p.start_ms, b: p.end_ms || manifest.ended_ms, why: `Recording paused: ${p.reason}` })),
    ...manifest.gaps.map((g) => ({ kind: 'gap', a: g.start_ms, b: g.end_ms, why: `No media: ${GAP_WHY[g.reason] || 'media lost'}` })),
  ].map((i) => ({ ...i, from: (i.a - start) / 1000, to: (i.b - start) / 1000 }))
    .sort((x, y) => x.from - y.from);

  // The clock: the visit's time `t`, moving while playing.
  let t = 0;
  let playing = false;
  let base = 0;
  const now = () => (playing ? Math.min(span, (performance.now() - base) / 1000) : t);

  /** Puts every tile where the clock is: playing inside its span, waiting (with a note) outside it. */
  function follow(time, hard) {
    for (const tile of tiles) {
      const v = tile.video;
      if (v.error) continue;
      const inside = time >= tile.from && time < tile.to;
      tile.note.hidden = inside;
      if (!inside) {
        tile.note.textContent = time < tile.from ? 'Not in the visit yet' : 'Left the visit';
        if (!v.paused) v.pause();
        continue;
      }
      // A file ends a little before the visit does: play() would start it again from the top.
      const done = v.ended || (v.duration > 0 && time >= v.duration);
      if (playing && v.paused && !done) v.play().catch(() => {});
      if ((!playing || done) && !v.paused) v.pause();
      if (hard) {
        // Asked for (a seek, a band, Play): always, loaded or not (a player keeps it as where to start).
        v.currentTime = time;
        continue;
      }
      const drift = v.currentTime - time;
      // Just after someone came in their first frame may be a little later than the clock: leave it be.
      const early = drift > 0 && time < tile.from + 2;
      if (!done && v.readyState > 0 && !v.seeking && !early && Math.abs(drift) > DRIFT) v.currentTime = time;
    }
  }
  function show(time) {
    position.value = time.toFixed(1);
    position.setAttribute('aria-valuetext', `${secs(time)} of ${secs(span)}`);
    $('clock').textContent = `${secs(time)} / ${secs(span)}`;
    const now = intervals.find((i) => time >= i.from && time < i.to);
    $('stage-card').hidden = !now;
    if (now && $('stage-card').textContent !== now.why) $('stage-card').textContent = now.why;
    // Under the card the pictures are dimmed: what shows there is the last frame before, not the visit.
    $('tiles').classList.toggle('held', Boolean(now));
    $('playhead').style.left = `${(time / span) * 100}%`;
  }
  function seek(time) {
    t = Math.max(0, Math.min(span, time));
    base = performance.now() - t * 1000;
    follow(t, true);
    show(t);
  }
  function play() {
    if (t >= span) t = 0;
    playing = true;
    base = performance.now() - t * 1000;
    $('play').textContent = 'Pause';
    follow(t, true);
  }
  function pause() {
    t = now();
    playing = false;
    $('play').textContent = 'Play';
    follow(t, false);
    show(t);
  }
  const timer = setInterval(() => {
    if (!playing) return;
    t = now();
    if (t >= span) pause();
    else {
      follow(t, false);
      show(t);
    }
  }, TICK_MS);
  $('play').textContent = 'Play';
  $('play').onclick = () => (playing ? pause() : play());
  position.oninput = () => seek(Number(position.value));

  // The timeline: a band per pause or gap, in time order, each a button that jumps to its start.
  const bands = intervals.map((i) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = i.kind;
    b.style.left = `${(i.from / span) * 100}%`;
    b.style.width = `${Math.max(1, ((i.to - i.from) / span) * 100)}%`;
    const label = `${i.why}, ${i.from.toFixed(1)} s to ${i.to.toFixed(1)} s`;
    b.title = label;
    b.setAttribute('aria-label', `${label}: go there`);
    // Just inside the band, so the card shows what the band is.
    b.addEventListener('click', () => seek(Math.min(i.to, i.from + 0.05)));
    return b;
  });
  const head = document.createElement('div');
  head.id = 'playhead';
  head.className = 'playhead';
  $('timeline').replaceChildren(...bands, head);
  show(0);

  // Downloads: the original multi-track file, and each participant's own.
  const links = [['Whole visit (all participants, original file)', null], ...tiles.map((x) => [caption(x.f), x.f.track])];
  $('downloads').replaceChildren(...links.map(([label, track]) => {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = url(track, 'download');
    a.textContent = label;
    a.setAttribute('download', '');
    li.append(a);
    return li;
  }));
  mounted = {
    unmount() {
      clearInterval(timer);
      // Their streams are closed, not left buffering under the next recording.
      for (const tile of tiles) {
        tile.video.pause();
        tile.video.removeAttribute('src');
        tile.video.load();
      }
    },
  };
  return { tiles, seek };
}

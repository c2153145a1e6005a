// Handing a chat on. "Transfer…" opens, under the chat, a queue to send it to (cold: it waits first in line
// there) and the colleagues who could take it now (warm: the colleague is asked, and the chat stays here until
// she accepts). After it, the panel folds like an ended chat, saying where the chat went (no wrap-up of her
// own: the chat is not over). The next nurse sees the conversation so far.

let pending = null; // { note, to } of the transfer asked last, until it is done or refused

const REFUSED = {
  video_live: 'End the video first: a chat in a video visit cannot be transferred.',
  unknown_queue: 'That queue does not exist any more.',
  colleague_unavailable: 'That colleague cannot take a chat right now. Choose another, or a queue.',
  conversation_closed: 'This chat has ended or is no longer yours.',
  forbidden: 'You may not transfer this chat.',
};

const NOT_TAKEN = {
  declined: 'declined', expired: 'did not answer in time', nurse_unavailable: 'went away', cancelled: 'could not take it: the chat ended',
};

/** Adds "Transfer…" to a chat panel `el` (after "Start video…"); `queues` from the welcome frame. */
export function transferControl(el, conversationId, queues, send) {
  if (!queues.length) return;
  const open = document.createElement('button');
  open.type = 'button';
  open.className = 'transfer-open';
  open.textContent = 'Transfer…';
  open.setAttribute('aria-expanded', 'false');
  el.querySelector('.video-start').after(' ', open);
  const panel = document.createElement('div');
  panel.className = 'transfer';
  panel.hidden = true;
  panel.innerHTML = `<p><label>Transfer to the queue <select class="transfer-queue"></select></label>
    <button type="button" class="transfer-go">Transfer</button></p>
    <p class="transfer-colleagues"><label>Or ask a colleague to take over <select class="transfer-nurse"></select></label>
    <button type="button" class="transfer-ask">Ask</button></p>
    <p class="transfer-none">No colleague can take a chat right now.</p>
    <p><button type="button" class="transfer-cancel secondary">Cancel</button></p>
    <p class="transfer-note" role="status"></p>`;
  const q = (sel) => panel.querySelector(sel);
  for (const name of queues) q('.transfer-queue').append(new Option(name, name));
  q('.transfer-colleagues').hidden = true;
  q('.transfer-none').hidden = true;
  el.querySelector('form').after(panel);
  const toggle = (show) => {
    panel.hidden = !show;
    open.setAttribute('aria-expanded', String(show));
    (show ? q('.transfer-queue') : open).focus();
    // Who could take it changes by the minute: asked each time the panel opens.
    if (show) send({ type: 'colleagues', conversation_id: conversationId });
  };
  open.addEventListener('click', () => toggle(panel.hidden));
  q('.transfer-cancel').addEventListener('click', () => toggle(false));
  q('.transfer-go').addEventListener('click', () => {
    const queue = q('.transfer-queue').value;
    q('.transfer-note').textContent = `Transferring to the ${queue} queue…`;
    pending = { note: q('.transfer-note'), to: `the ${queue} queue` };
    send({ type: 'transfer', conversation_id: conversationId, queue });
  });
  q('.transfer-ask').addEventListener('click', () => {
    const select = q('.transfer-nurse');
    const name = select.selectedOptions[0]?.textContent;
    if (!select.value) return;
    q('.transfer-note').textContent = `Asking ${name} to take over… The chat stays with you until they accept.`;
    pending = { note: q('.transfer-note'), to: name };
    send({ type: 'transfer', conversation_id: conversationId, nurse: select.value });
  });
}

/** The `colleagues` answer: fills the chat's list (or says nobody can take it now). */
export function showColleagues(el, f) {
  const select = el?.querySelector('.transfer-nurse');
  if (!select) return;
  select.replaceChildren(...f.nurses.map((n) => new Option(n.name ?? 'A nurse', n.nurse)));
  el.querySelector('.transfer-colleagues').hidden = f.nurses.length === 0;
  el.querySelector('.transfer-none').hidden = f.nurses.length > 0;
}

/** An error frame: shown under the transfer that caused it; true if it was one. */
export function transferRefused(code) {
  if (!pending || !(code in REFUSED)) return false;
  pending.note.textContent = REFUSED[code];
  pending = null;
  return true;
}

/** A colleague asked did not take the chat: it is still hers; say so under the transfer. */
export function transferNotTaken(el, f) {
  const note = el?.querySelector('.transfer-note');
  if (!note) return;
  note.textContent = `${f.colleague ?? 'Your colleague'} ${NOT_TAKEN[f.reason] ?? 'did not take it'}. The chat is still yours.`;
  pending = null;
}

/** The chat left this nurse by her transfer: say where it went; "Ready now" ends her wrap-up, "Close" the panel. */
export function transferred(el, send, closed) {
  const to = pending?.to;
  pending = null;
  el.querySelector('.transfer')?.remove();
  el.querySelector('.transfer-open')?.remove();
  const note = document.createElement('p');
  note.className = 'status transferred';
  note.tabIndex = -1;
  note.textContent = `Transferred${to ? ` to ${to}` : ''}: the next nurse sees the conversation so far.`;
  const actions = document.createElement('p');
  actions.innerHTML = `<button type="button" class="ready-now">Ready now</button>
    <button type="button" class="dismiss secondary">Close</button>`;
  actions.querySelector('.ready-now').addEventListener('click', () => send({ type: 'presence', state: 'ready' }));
  actions.querySelector('.dismiss').addEventListener('click', () => { el.remove(); closed(); });
  el.querySelector('h3').after(note, actions);
  note.focus();
}

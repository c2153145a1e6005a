// Handing a chat on. "Transfer…" opens, under the chat, a queue to send it to (cold: it waits first in line
// there) and the colleagues who could take it now (warm: the colleague is asked, and the chat stays here until
// she accepts). After it, the panel folds like an ended chat, saying where the chat went (no wrap-up of her
// own: the chat is not over). The next nurse sees the conversation so far.

// The transfer request on its way (until the server answers it: `transfer_asked`, `ended` or an error; error
// frames name no chat, so only one request is sent at a time), and the colleagues asked, by chat.
let inFlight = null; // { conversationId, note, to }
const asked = new Map(); // conversation id -> { note, to }

const REFUSED = {
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
  const request = (frame, to, saying) => {
    if (inFlight) { q('.transfer-note').textContent = 'Another transfer is being sent; try again in a moment.'; return; }
    q('.transfer-note').textContent = saying;
    inFlight = { conversationId, note: q('.transfer-note'), to };
    send({ type: 'transfer', conversation_id: conversationId, ...frame });
  };
  q('.transfer-go').addEventListener('click', () => {
    const queue = q('.transfer-queue').value;
    request({ queue }, `the ${queue} queue`, `Transferring to the ${queue} queue…`);
  });
  q('.transfer-ask').addEventListener('click', () => {
    const select = q('.transfer-nurse');
    const name = select.selectedOptions[0]?.textContent;
    if (!select.value) return;
    request({ nurse: select.value }, name, `Asking ${name} to take over… The chat stays with you until they accept.`);
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

/** An error frame: shown under the transfer request it answers; true if it was one. */
export function transferRefused(code) {
  if (!inFlight) return false;
  // Any error while a request is on its way answers it (only one is sent at a time).
  inFlight.note.textContent = REFUSED[code] ?? `The transfer could not be made (${code}). Try again.`;
  inFlight = null;
  return true;
}

/** `transfer_asked`: the colleague is being asked; the chat stays hers until the answer. */
export function transferAsked(f) {
  if (inFlight?.conversationId === f.conversation_id) {
    asked.set(f.conversation_id, { note: inFlight.note, to: f.colleague ?? inFlight.to });
    inFlight = null;
  }
}

/** A colleague asked did not take the chat: it is still hers; say so under the transfer (opened if closed). */
export function transferNotTaken(el, f) {
  asked.delete(f.conversation_id);
  const panel = el?.querySelector('.transfer');
  if (!panel) return;
  panel.hidden = false;
  el.querySelector('.transfer-open')?.setAttribute('aria-expanded', 'true');
  panel.querySelector('.transfer-note').textContent = `${f.colleague ?? 'Your colleague'} ${NOT_TAKEN[f.reason] ?? 'did not take it'}. The chat is still yours.`;
}

/** The chat left this nurse by her transfer: say where it went; "Ready now" ends her wrap-up, "Close" the panel. */
export function transferred(el, conversationId, send, closed) {
  const to = asked.get(conversationId)?.to ?? (inFlight?.conversationId === conversationId ? inFlight.to : undefined);
  asked.delete(conversationId);
  if (inFlight?.conversationId === conversationId) inFlight = null;
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

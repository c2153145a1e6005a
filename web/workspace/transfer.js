// Transferring a chat to another queue (a cold transfer): "Transfer…" opens a choice of queue under the chat;
// the chat then waits first in line there, and the next nurse of that queue sees the conversation so far.
// After it, the panel folds like an ended chat, saying where the chat went (no wrap-up of her own: the chat is
// not over).

let pending = null; // { note, button } of the transfer asked last, until it is done or refused

const REFUSED = {
  video_live: 'End the video first: a chat in a video visit cannot be transferred.',
  unknown_queue: 'That queue does not exist any more.',
  conversation_closed: 'This chat has ended or is no longer yours.',
  forbidden: 'You may not transfer this chat.',
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
  panel.innerHTML = `<p><label>Transfer to the queue <select></select></label>
    <button type="button" class="transfer-go">Transfer</button>
    <button type="button" class="transfer-cancel secondary">Cancel</button></p>
    <p class="transfer-note" role="status"></p>`;
  const select = panel.querySelector('select');
  for (const q of queues) select.append(new Option(q, q));
  el.querySelector('form').after(panel);
  const toggle = (show) => {
    panel.hidden = !show;
    open.setAttribute('aria-expanded', String(show));
    (show ? select : open).focus();
  };
  open.addEventListener('click', () => toggle(panel.hidden));
  panel.querySelector('.transfer-cancel').addEventListener('click', () => toggle(false));
  panel.querySelector('.transfer-go').addEventListener('click', () => {
    const note = panel.querySelector('.transfer-note');
    note.textContent = `Transferring to the ${select.value} queue…`;
    pending = { note, queue: select.value };
    send({ type: 'transfer', conversation_id: conversationId, queue: select.value });
  });
}

/** An error frame: shown under the transfer that caused it; true if it was one. */
export function transferRefused(code) {
  if (!pending || !(code in REFUSED)) return false;
  pending.note.textContent = REFUSED[code];
  pending = null;
  return true;
}

/** The chat left this nurse by her transfer: say where it went; "Ready now" ends her wrap-up, "Close" the panel. */
export function transferred(el, send, closed) {
  const queue = pending?.queue;
  pending = null;
  el.querySelector('.transfer')?.remove();
  el.querySelector('.transfer-open')?.remove();
  const note = document.createElement('p');
  note.className = 'status transferred';
  note.tabIndex = -1;
  note.textContent = `Transferred${queue ? ` to the ${queue} queue` : ''}: the next nurse there sees the conversation so far.`;
  const actions = document.createElement('p');
  actions.innerHTML = `<button type="button" class="ready-now">Ready now</button>
    <button type="button" class="dismiss secondary">Close</button>`;
  actions.querySelector('.ready-now').addEventListener('click', () => send({ type: 'presence', state: 'ready' }));
  actions.querySelector('.dismiss').addEventListener('click', () => { el.remove(); closed(); });
  el.querySelector('h3').after(note, actions);
  note.focus();
}

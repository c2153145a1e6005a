// A WebSocket to the broker that authenticates, reconnects with backoff, and keeps frames in order.
// Shared by the patient widget (token auth) and the nurse workspace (cookie auth, token null).
// A dead network shows no error on an open socket until TCP gives up, minutes later: the channel pings when the
// server has been quiet and gives the socket up when nothing comes back, so a cut link is noticed in seconds.
/** Where the widget keeps its patient session for reloads (see `openSession` in app.js). */
export const SESSION_KEY = 'examroom.session';

/** Quiet this long: ping. Quiet this long after that: the socket is dead. A new socket must open within OPEN_MS. */
const PING_AFTER_MS = 8000;
const DEAD_AFTER_MS = 15000;
const OPEN_MS = 8000;

export class Channel {
  /** `words`: the two statuses it reports, in the page's language (English by default). */
  constructor(token, onFrame, onStatus, words = {}) {
    this.token = token;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.words = { reconnecting: 'Connection lost. Reconnecting…', sessionEnded: 'Your session has ended. Please sign in again.', ...words };
    /** Where the page keeps the session this channel uses (forgotten when the server says it ended). */
    this.sessionKey = words.sessionKey || SESSION_KEY;
    this.queue = [];
    this.delay = 500;
    /** Counts the sockets this channel has had: a video call made on an earlier one cannot restart ICE on it. */
    this.generation = 0;
    this.connect();
    setInterval(() => this.checkAlive(), 2000);
  }

  connect() {
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/api/v1/ws`);
    this.ws = ws;
    this.heard = Date.now();
    this.pinged = false;
    ws.onopen = () => {
      this.delay = 500;
      this.heard = Date.now();
      if (this.token) ws.send(JSON.stringify({ v: 1, type: 'auth', token: this.token }));
    };
    ws.onmessage = (event) => {
      this.heard = Date.now();
      this.pinged = false;
      const frame = JSON.parse(event.data);
      if (frame.type === 'welcome') {
        this.ready = true;
        this.generation += 1;
        this.onFrame(frame);
        for (const f of this.queue.splice(0)) ws.send(JSON.stringify(f));
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws || this.closed) return; // a socket already given up, or a channel closed for good
      this.ready = false;
      if ([4001, 4003].includes(event.code)) {
        // The widget's saved session is over: a reload must open a new one.
        sessionStorage.removeItem(this.sessionKey);
        this.onStatus(this.words.sessionEnded);
        return;
      }
      this.onStatus(this.words.reconnecting);
      // 4012: the server asks us to reconnect (it is restarting, or missed frames): soon, but at a random moment
      // so that its sockets do not all arrive at once.
      const wait = event.code === 4012 ? 250 + Math.random() * 2000 : this.delay;
      setTimeout(() => this.connect(), wait);
      this.delay = Math.min(this.delay * 2, 10000);
    };
  }

  /** Pings a quiet socket, and gives up one that stays silent (or never opens) as if it had closed. */
  checkAlive() {
    if (this.closed) return;
    const ws = this.ws;
    const quiet = Date.now() - this.heard;
    const opening = ws.readyState === WebSocket.CONNECTING;
    if ((opening && quiet > OPEN_MS) || (!opening && ws.readyState === WebSocket.OPEN && quiet > DEAD_AFTER_MS)) {
      this.ready = false;
      this.onStatus(this.words.reconnecting);
      this.connect(); // replaces this.ws first, so the old socket's late close is ignored
      try { ws.close(); } catch (_) { /* closing a dead socket */ }
      return;
    }
    if (ws.readyState === WebSocket.OPEN && this.ready && quiet > PING_AFTER_MS && !this.pinged) {
      this.pinged = true;
      ws.send(JSON.stringify({ v: 1, type: 'ping' }));
    }
  }

  /** Closes for good (no reconnect): the page is done with the server. */
  close() {
    this.closed = true;
    try { this.ws.close(); } catch (_) { /* already closed */ }
  }

  send(frame) {
    const f = { v: 1, ...frame };
    if (this.ready && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(f));
    else this.queue.push(f);
  }
}

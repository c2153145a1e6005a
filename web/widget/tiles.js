// Pictures of the third participant on (an interpreter, a family member): each comes on a stream of its own
// (`VideoCall.onTile`), shown as a small tile beside the main picture. The server says whose picture each stream
// carries (`video_tile`), and the tile and the main picture are captioned with it; a tile nobody's media is on
// any more (they left) is hidden. Shared by the widget, the guest page and the nurse's workspace. A tile goes
// when its stream has no track left.

/** The main picture's stream: the first audio and video pair on the connection (`sfu-<visit>`). */
const MAIN = /^sfu-[^-]+$/;
/** Per call (its tiles' container): whose each stream carries, as the page words it ('' for nobody). */
const calls = new WeakMap();
const namesOf = (container) => {
  if (!calls.has(container)) calls.set(container, new Map());
  return calls.get(container);
};

function caption(tile, names, text, fallback) {
  tile.querySelector('figcaption').textContent = text;
  tile.querySelector('video').setAttribute('aria-label', text || fallback);
  tile.hidden = names.has(tile.dataset.stream) && !text;
}

/** Shows `stream` in a tile of `container` (one per stream); `label` until the server says whose it is. */
export function showTile(container, stream, label) {
  let tile = [...container.children].find((el) => el.dataset.stream === stream.id);
  if (!tile) {
    tile = document.createElement('figure');
    tile.className = 'tile';
    tile.dataset.stream = stream.id;
    const video = document.createElement('video');
    video.playsInline = true;
    video.autoplay = true;
    tile.append(video, document.createElement('figcaption'));
    container.appendChild(tile);
    stream.onremovetrack = () => { if (!stream.getTracks().length) tile.remove(); container.hidden = !container.children.length; };
  }
  const names = namesOf(container);
  caption(tile, names, names.get(stream.id) || '', label);
  const video = tile.querySelector('video');
  video.srcObject = stream;
  video.play().catch(() => {});
  container.hidden = false;
}

/**
 * Whose picture a stream shows now (`video_tile`), worded `text` ('' when nobody's): the tile's caption, or the
 * main picture's (`main`: its video, with a `.who` caption in the same stage).
 */
export function nameTile(container, main, streamId, text, fallback) {
  const names = namesOf(container);
  names.set(streamId, text);
  if (MAIN.test(streamId)) {
    main.setAttribute('aria-label', text || fallback);
    const who = main.parentElement.querySelector('.who');
    if (who) who.textContent = text;
    return;
  }
  const tile = [...container.children].find((el) => el.dataset.stream === streamId);
  if (tile) caption(tile, names, text, fallback);
}

/** Removes every tile and what they were named (the call ended, or joins again on a new connection). */
export function clearTiles(container) {
  for (const tile of [...container.children]) { tile.querySelector('video').srcObject = null; tile.remove(); }
  container.hidden = true;
  namesOf(container).clear();
}

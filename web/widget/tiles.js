// Pictures of the third participant on (an interpreter, a family member): each comes on a stream of its own
// (`VideoCall.onTile`), shown as a small tile beside the main picture. Shared by the widget, the guest page and
// the nurse's workspace. A tile goes when its stream has no track left.

/** Shows `stream` in a tile of `container` (one per stream), labelled `label` for screen readers. */
export function showTile(container, stream, label) {
  let tile = [...container.children].find((el) => el.dataset.stream === stream.id);
  if (!tile) {
    tile = document.createElement('video');
    tile.className = 'tile';
    tile.dataset.stream = stream.id;
    tile.playsInline = true;
    tile.autoplay = true;
    tile.setAttribute('aria-label', label);
    container.appendChild(tile);
    stream.onremovetrack = () => { if (!stream.getTracks().length) tile.remove(); container.hidden = !container.children.length; };
  }
  tile.srcObject = stream;
  tile.play().catch(() => {});
  container.hidden = false;
}

/** Removes every tile (the call ended). */
export function clearTiles(container) {
  for (const tile of [...container.children]) { tile.srcObject = null; tile.remove(); }
  container.hidden = true;
}

#!/usr/bin/env bash
# Builds the previous release's broker once, into a cache outside the clone, for the upgrade test (a node of the
# previous release beside one of this tree on one database); prints the binary's path. The release is named in
# deploy/previous-release (tag, commit and its last migration: the commit is what is built, so a clone without
# tags works too).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r tag commit _ < deploy/previous-release
CACHE="${PREVIOUS_RELEASE_CACHE:-${CARGO_TARGET_DIR:-$PWD/target}/previous-release}"
bin="$CACHE/examroom-$tag-${commit:0:12}"
if [ ! -x "$bin" ]; then
  if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "previous release $tag ($commit) is not in this clone's history: clone without --depth" >&2
    exit 1
  fi
  echo "building the previous release $tag ($commit) into $CACHE (once)" >&2
  src="$CACHE/src-$tag"
  rm -rf "$src"
  mkdir -p "$src"
  git archive "$commit" | tar -x -C "$src"
  (cd "$src" && CARGO_TARGET_DIR="$CACHE/target" cargo build --locked --quiet --bin examroom)
  cp "$CACHE/target/debug/examroom" "$bin.tmp"
  mv "$bin.tmp" "$bin"
  rm -rf "$src"
fi
echo "$bin"

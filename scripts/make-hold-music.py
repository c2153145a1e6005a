#!/usr/bin/env python3
"""Generates web/assets/hold-music.wav: a calm, original arpeggio (public domain, made here), so the widget's
hold music has no licence to worry about. Deterministic: running it again gives the same file."""
import math
import struct
import wave
from pathlib import Path

RATE = 11025
BEAT = 0.375  # seconds per note
# A slow I-vi-IV-V progression in C major, as arpeggios (MIDI note numbers).
CHORDS = [[60, 64, 67, 72], [57, 60, 64, 69], [53, 57, 60, 65], [55, 59, 62, 67]]


def freq(note):
    return 440.0 * 2 ** ((note - 69) / 12)


def render():
    samples = []
    for _ in range(2):
        for chord in CHORDS:
            for note in chord + chord[1:3]:
                n = int(RATE * BEAT)
                f = freq(note)
                for i in range(n):
                    t = i / RATE
                    env = min(1.0, t * 40) * math.exp(-3.0 * t)  # soft attack, gentle decay
                    v = 0.6 * math.sin(2 * math.pi * f * t) + 0.2 * math.sin(4 * math.pi * f * t)
                    samples.append(0.35 * env * v)
    return samples


def main():
    out = Path(__file__).resolve().parent.parent / "web" / "assets" / "hold-music.wav"
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", int(max(-1, min(1, s)) * 32767)) for s in render()))
    print(out)


if __name__ == "__main__":
    main()

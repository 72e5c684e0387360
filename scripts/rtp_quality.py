#!/usr/bin/env python3
"""Scores the WAV files written by examples/rtp_compare.rs: for each (reference, ours, stock,
ideal) line of pairs.txt (ideal: the same packets decoded in order with no timing), PESQ wide band (ITU-T P.862.2, via the `pesq` package) and STOI of both
receivers' output against the reference, after aligning each output to the reference by
cross-correlation. Prints one row per file and the means."""

import sys
import wave

import numpy as np
from pesq import pesq
from pystoi import stoi
from scipy.signal import correlate, resample_poly

RATE = 16000


def read(path):
    with wave.open(path, "rb") as w:
        rate = w.getframerate()
        ch = w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    x = x.reshape(-1, ch).mean(axis=1) / 32768.0
    if rate != RATE:
        x = resample_poly(x, RATE, rate)
    return x


def aligned(ref, deg):
    """`deg` shifted so that it lines up with `ref`, cut or padded to its length."""
    c = correlate(deg, ref, mode="full", method="fft")
    lag = int(np.argmax(c)) - (len(ref) - 1)
    if lag >= 0:
        deg = deg[lag:]
    else:
        deg = np.concatenate([np.zeros(-lag), deg])
    deg = deg[: len(ref)]
    return np.concatenate([deg, np.zeros(len(ref) - len(deg))]), lag


def main():
    rows = []
    for line in open(sys.argv[1]):
        ref_p, *outputs = line.strip().split("\t")
        ref = read(ref_p)
        scores = []
        for p in outputs:
            deg, lag = aligned(ref, read(p))
            scores.append((pesq(RATE, ref, deg, "wb"), stoi(ref, deg, RATE), lag))
        name = ref_p.rsplit("/", 1)[-1].replace("-ref.wav", "")
        rows.append((name, scores))
        ideal = (
            f" | ideal PESQ-WB {scores[2][0]:.3f} STOI {scores[2][1]:.3f}" if len(scores) > 2 else ""
        )
        print(
            f"{name:<16} plcjitterbuffer PESQ-WB {scores[0][0]:.3f} STOI {scores[0][1]:.3f}"
            f" | stock PESQ-WB {scores[1][0]:.3f} STOI {scores[1][1]:.3f}{ideal}",
            flush=True,
        )
    ours = np.array([r[1][0][:2] for r in rows])
    stock = np.array([r[1][1][:2] for r in rows])
    wins = sum(1 for r in rows if r[1][0][0] > r[1][1][0])
    if all(len(r[1]) > 2 for r in rows):
        ideal = np.array([r[1][2][:2] for r in rows])
        print(
            f"ideal (same packets, in order, no timing): PESQ-WB {ideal[:, 0].mean():.3f} "
            f"STOI {ideal[:, 1].mean():.3f}"
        )
    print(
        f"mean over {len(rows)}: plcjitterbuffer PESQ-WB {ours[:, 0].mean():.3f} "
        f"STOI {ours[:, 1].mean():.3f} | stock PESQ-WB {stock[:, 0].mean():.3f} "
        f"STOI {stock[:, 1].mean():.3f} | plcjitterbuffer higher in {wins} of {len(rows)}"
    )


if __name__ == "__main__":
    main()

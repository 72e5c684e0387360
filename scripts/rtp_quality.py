#!/usr/bin/env python3
"""Scores the WAV files written by examples/rtp_compare.rs: for each (reference, ours, stock)
line of pairs.txt, PESQ wide band (ITU-T P.862.2, via the `pesq` package) and STOI of both
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
        ref_p, ours_p, stock_p = line.strip().split("\t")
        ref = read(ref_p)
        scores = []
        for p in (ours_p, stock_p):
            deg, lag = aligned(ref, read(p))
            scores.append((pesq(RATE, ref, deg, "wb"), stoi(ref, deg, RATE), lag))
        name = ref_p.rsplit("/", 1)[-1].replace("-ref.wav", "")
        rows.append((name, scores))
        print(
            f"{name:<16} plcjitterbuffer PESQ-WB {scores[0][0]:.3f} STOI {scores[0][1]:.3f}"
            f" | stock PESQ-WB {scores[1][0]:.3f} STOI {scores[1][1]:.3f}",
            flush=True,
        )
    ours = np.array([r[1][0][:2] for r in rows])
    stock = np.array([r[1][1][:2] for r in rows])
    wins = sum(1 for r in rows if r[1][0][0] > r[1][1][0])
    print(
        f"mean over {len(rows)}: plcjitterbuffer PESQ-WB {ours[:, 0].mean():.3f} "
        f"STOI {ours[:, 1].mean():.3f} | stock PESQ-WB {stock[:, 0].mean():.3f} "
        f"STOI {stock[:, 1].mean():.3f} | plcjitterbuffer higher in {wins} of {len(rows)}"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""What could any concealer score? Oracle fills of the benchmark's losses, scored like bench.py.

Run it through `scripts/quality-bench.sh --bounds` after a benchmark run: it reads the
benchmark's signals, masks, results.csv and the `expand` outputs. Every fill below is built
from the *reference* itself, so each knows something a real concealer cannot; the scores bound
what better concealment of the same losses could reach, and show which targets need the lost
content itself:

- `silence`: zeros in every loss (the floor).
- `truth 20+40`: the true audio for the first 20 ms and the last 40 ms of every loss, silence
  between: a perfect extrapolation over the 20 ms a history predicts best and a perfect
  interpolation over the 40 ms of future that a jitter buffer at latency 40 holds.
- `truth 100+40`: the same with 100 ms of perfect extrapolation (beyond what any method
  predicts: speech sounds change every 50-100 ms).
- `same voice`: `truth 100+40`, and between them the same voice saying something else (the
  reference 1.5 s away), at the true level of the lost words per 20 ms: a concealer that
  sounds like the talker and knows how loud the lost words were, but not what they were.
- `true spectrum`: the lost audio's own short-time magnitude spectrum (20 ms frames) with
  random phase: knows every lost sound's spectrum, only not its waveform.
- Where `expand` loses (its own output with part of each loss replaced):
  `expand, true head 20` / `expand, true tail 40` (the truth in the first 20 ms / last
  40 ms), `expand, forward N` (silent from N ms into the loss until its last 40 ms) and
  `true tail 40` (silence, then the true last 40 ms).

Fills join the real audio with 2.5 ms raised-cosine cross-fades, so no edge clicks.
"""
import argparse
import csv
import math
import os
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import bench  # noqa: E402

FILLS = ["silence", "truth 20+40", "truth 100+40", "same voice", "true spectrum",
         "expand, true head 20", "expand, true tail 40", "expand, forward 10",
         "expand, forward 20", "expand, forward 40", "true tail 40"]


def fade(n):
    """Raised-cosine ramp 0 -> 1 over n samples."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def place(y, seg, a, rate):
    """Writes seg into y at a, cross-fading 2.5 ms at both ends into what y holds."""
    n = len(seg)
    if n == 0:
        return
    w = np.ones(n)
    f = min(int(0.0025 * rate), n // 2)
    if f > 0:
        w[:f] = fade(f)
        w[n - f:] = fade(f)[::-1]
    y[a:a + n] = w * seg + (1 - w) * y[a:a + n]


def true_spectrum(x, a, b, rate, rng):
    """x[a:b] resynthesized from its 20 ms STFT magnitudes with random phase (50 % overlap)."""
    n = int(0.02 * rate)
    hop = n // 2
    win = np.sqrt(np.hanning(n + 1)[:n])  # sqrt-Hann: analysis * synthesis sums to 1
    lo, hi = max(0, a - n), min(len(x), b + n)
    seg = x[lo:hi]
    out = np.zeros(len(seg) + n)
    for s in range(0, len(seg) - n + 1, hop):
        spec = np.fft.rfft(seg[s:s + n] * win)
        ph = np.exp(1j * rng.uniform(0, 2 * np.pi, len(spec)))
        out[s:s + n] += np.fft.irfft(np.abs(spec) * ph, n) * win
    return out[a - lo:b - lo]


def fill(x, mask, pf, rate, how, seed, expand=None):
    rng = np.random.RandomState(seed)
    y = x.copy()
    ms = rate // 1000
    for a, b in bench.lost_runs(mask):
        a, b = a * pf, min(b * pf, len(x))
        if a >= b:
            continue
        y[a:b] = 0.0
        if how == "silence":
            continue
        if how.startswith("expand") or how == "true tail 40":
            # Diagnostic: the expand output with the truth in part of the loss.
            y[a:b] = expand[a:b]
            if how == "expand, true head 20":
                n = min(20 * ms, b - a)
                f = min(int(0.0025 * rate), n)
                y[a:a + n] = x[a:a + n]
                w = fade(f)
                y[a + n - f:a + n] = (1 - w) * x[a + n - f:a + n] + w * expand[a + n - f:a + n]
            elif how == "expand, true tail 40":
                n = min(40 * ms, b - a)
                f = min(int(0.0025 * rate), n)
                y[b - n:b] = x[b - n:b]
                w = fade(f)
                y[b - n:b - n + f] = w * x[b - n:b - n + f] + (1 - w) * expand[b - n:b - n + f]
            elif how.startswith("expand, forward "):
                # Our own output, silent from N ms into the loss until its last 40 ms.
                n = int(how.split()[2]) * ms
                m1 = b - 40 * ms
                if a + n < m1:
                    f = int(0.0025 * rate)
                    y[a + n:m1] = 0.0
                    y[a + n - f:a + n] = expand[a + n - f:a + n] * fade(f)[::-1]
            elif how == "true tail 40":
                n = min(40 * ms, b - a)
                y[a:b - n] = 0.0
                y[b - n:b] = x[b - n:b]
            continue
        if how == "true spectrum":
            place(y, true_spectrum(x, a, b, rate, rng), a, rate)
            continue
        head = 20 * ms if how == "truth 20+40" else 100 * ms
        tail = 40 * ms
        if head + tail >= b - a:
            y[a:b] = x[a:b]
            continue
        if how == "same voice":
            m0, m1 = a + head, b - tail
            d = int(1.5 * rate)
            src = m0 - d if m0 - d >= 0 else m0 + d
            other = x[src:src + (m1 - m0)]
            if len(other) < m1 - m0:
                other = np.concatenate([other, np.zeros(m1 - m0 - len(other))])
            # At the lost words' level, per 20 ms block (the level is the oracle part).
            blk = 20 * ms
            seg = np.zeros(m1 - m0)
            for s in range(0, m1 - m0, blk):
                t = x[m0 + s:m0 + s + blk]
                o = other[s:s + blk]
                eo = math.sqrt(float(np.mean(o ** 2))) if len(o) else 0.0
                et = math.sqrt(float(np.mean(t ** 2))) if len(t) else 0.0
                seg[s:s + len(o)] = o * (et / eo if eo > 1e-6 else 0.0)
            place(y, seg, m0, rate)
        # The head and the tail are the truth itself (the real audio around them continues).
        y[a:a + head] = x[a:a + head]
        y[b - tail:b] = x[b - tail:b]
        if how == "same voice":
            # Cross-fade the truth's head and tail into the other words.
            f = int(0.0025 * rate)
            w = fade(f)
            y[a + head:a + head + f] = (1 - w) * x[a + head:a + head + f] + w * y[a + head:a + head + f]
            y[b - tail - f:b - tail] = w * x[b - tail - f:b - tail] + (1 - w) * y[b - tail - f:b - tail]
        else:
            f = int(0.0025 * rate)
            y[a + head:a + head + f] = x[a + head:a + head + f] * fade(f)[::-1]
            y[b - tail - f:b - tail] = x[b - tail - f:b - tail] * fade(f)
    return y


def score(job):
    from pesq import pesq

    rate, x = bench.read_wav(job["ref"])
    pf = rate * job["packet_ms"] // 1000
    expand = None
    if job["fill"].startswith("expand") or job["fill"] == "true tail 40":
        _, expand = bench.read_wav(job["deg"][:-len("-x.wav")] + "-expand.wav")
        expand = np.concatenate([expand, np.zeros(max(0, len(x) - len(expand)))])[:len(x)]
    y = fill(x, job["mask"], pf, rate, job["fill"], zlib.crc32(job["deg"].encode()), expand)
    if rate == 8000:
        mode, fs, r, d = "nb", 8000, x, y
    else:
        mode, fs = "wb", 16000
        r, d = (x, y) if rate == 16000 else (bench.resample(x, rate, 16000),
                                             bench.resample(y, rate, 16000))
    try:
        p = float(pesq(fs, r, d, mode))
    except Exception:  # noqa: BLE001
        p = float("nan")
    p_gap = float("nan")
    runs = bench.lost_runs(job["mask"])
    if job["condition"].startswith("gap") and runs:
        a = max(0, int((runs[0][0] * pf / rate - bench.GAP_CONTEXT_S) * fs))
        b = min(len(r), int((runs[-1][1] * pf / rate + bench.GAP_CONTEXT_S) * fs))
        try:
            p_gap = float(pesq(fs, r[a:b], d[a:b], mode))
        except Exception:  # noqa: BLE001
            pass
    return dict(job, pesq=p, pesq_gap=p_gap)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="the benchmark's output directory")
    ap.add_argument("--rates", default="16000,48000")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    bench.RATES[:] = rates
    signals = [s for s in bench.make_signals(a.out) if s[1] == "speech"]
    base = bench.plan(a.out, signals, ["x"], quick=False)
    jobs = [dict(j, fill=f) for j in base for f in FILLS]
    print(f"scoring {len(jobs)} oracle fills...", file=sys.stderr)
    with ProcessPoolExecutor(a.workers) as ex:
        rows = list(ex.map(score, jobs, chunksize=4))

    # The benchmark's own scores of the real methods (results.csv of the last run).
    real = {}
    path = os.path.join(a.out, "results.csv")
    if os.path.exists(path):
        with open(path) as f:
            for r in csv.DictReader(f):
                if r["kind"] != "speech":
                    continue
                k = (int(r["rate"]), int(r["packet_ms"]), r["condition"], r["method"])
                real.setdefault(k, {"pesq": [], "pesq_gap": []})
                real[k]["pesq"].append(float(r["pesq"]))
                real[k]["pesq_gap"].append(float(r["pesq_gap"]))

    def real_cell(rate, pm, c, m, key):
        v = real.get((rate, pm, c, m), {}).get(key, [])
        return bench.mean(v) if v else float("nan")

    out = []
    for rate in rates:
        ref = "appendix-i" if rate == 16000 else "sample-constant"
        need = 0.1 if rate == 16000 else 0.5
        for pm in bench.PACKETS_MS:
            for key, what in (("pesq", "whole file"), ("pesq_gap", "gap and 1 s either side")):
                conds = bench.CONDITIONS if key == "pesq" else [
                    c for c in bench.CONDITIONS if c[1][0] == "gap"]
                out.append(f"\n### Oracle fills, speech {rate} Hz, {pm} ms packets, PESQ-WB over the "
                           f"{what} (mean of {len(signals)} voices)\n")
                out.append(f"| loss | target ({ref} + {need}) | expand | "
                           + " | ".join(FILLS) + " |")
                out.append("|---|---:|---:|" + "---:|" * len(FILLS))
                for cname, _ in conds:
                    t = real_cell(rate, pm, cname, ref, key) + need
                    e = real_cell(rate, pm, cname, "expand", key)
                    cells = []
                    for fl in FILLS:
                        v = bench.mean([r[key] for r in rows if r["rate"] == rate
                                        and r["packet_ms"] == pm and r["condition"] == cname
                                        and r["fill"] == fl])
                        mark = "**" if not math.isnan(t) and v >= t else ""
                        cells.append(f"{mark}{v:.2f}{mark}")
                    out.append(f"| {cname} | {t:.2f} | {e:.2f} | " + " | ".join(cells) + " |")
    text = "\n".join(out) + "\n\nBold: the fill reaches the target.\n"
    with open(os.path.join(a.out, "bounds.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()

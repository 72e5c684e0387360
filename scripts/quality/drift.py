#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""Drift quality benchmark of plcjitterbuffer (run it through scripts/drift-quality.sh).

Clean speech (espeak-ng, 4 voices, 16 kHz, ~14 s each) is sent as RTP L16 by a sender whose
clock is off by 0, +-100, +-1000 ppm (and +-2.5 % for information), with no loss and no jitter
unless asked, through the real element in mode=fixed (examples/drift_quality.rs: Harness with
a test clock). Two starts: the speech starts with the stream ("cold": the loop pulls in while
it plays) or after 30 s of silence ("locked").

A receiver whose clock differs from the sender's must play the sender's audio on its own
clock, i.e. time-scaled by the skew (1000 ppm: 1 ms per second, 1.7 cents); that much is the
point of drift compensation, and no listener hears it. So each output is scored (PESQ wide
band, ITU-T P.862.2, and STOI, after aligning it by cross-correlation) against two references:
- "vs ideal": the input resampled by exactly the sender's clock ratio (scipy resample_poly with
  the exact rational ratio), what a perfect compensator plays: this measures what the
  compensation adds (ratio changes, the engage seam, the resampler's filter). The target: at
  +-1000 ppm every file scores >= 4.0 (the issue's "the compensation is inaudible"); the script
  fails (exit 1) otherwise.
- "vs input": the input as sent. Over a 14 s file 1000 ppm accumulates 14 ms of offset; PESQ
  realigns per utterance but not within one, and STOI not at all, so this score falls with
  the skew for any correct compensator. "ideal vs input" shows that ceiling.
`--mode off` runs the control: no compensation, the output is the input untouched (a perfect
score vs input) while the queue drifts; the target must fail on it.
"""
import argparse
import math
import os
import subprocess
import sys
import wave
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.signal import correlate, resample_poly

RATE = 16000
TARGET = 4.0
# (skew in ppm, latency in ms, checked against the target). +-2.5 % needs the larger latency
# for its pull-in swing, as in tests/drift.rs.
SKEWS = [
    (0, 60, False),
    (100, 60, False),
    (-100, 60, False),
    (1000, 60, True),
    (-1000, 60, True),
    (25000, 100, False),
    (-25000, 100, False),
]
STARTS = [("cold", 0.0), ("locked", 30.0)]
# (name, espeak-ng voice, pitch, speed, text). Written for this benchmark.
VOICES = [
    ("male-us", "en-us", 45, 150,
     "The clock in the hallway had been running fast for years, and nobody minded. "
     "Every morning the baker opens his shutters at six and sweeps the pavement. "
     "We will meet again at the station when the evening train comes in."),
    ("female-us", "en-us+f3", 60, 155,
     "Please bring the blue folder to the meeting on Thursday afternoon. "
     "A cold wind came down from the hills and rattled the windows all night. "
     "She counted the boats in the harbour and wrote the number on her hand."),
    ("male-gb", "en-gb+m3", 35, 140,
     "The train to the coast leaves from the far platform at twenty past nine. "
     "He measured the flour twice, then decided to trust his memory instead. "
     "Nothing about the old radio suggested it still worked."),
    ("female-gb", "en-gb+f4", 55, 150,
     "Seven yellow kites rose above the field as the afternoon grew warmer. "
     "If the bridge is closed, take the road along the river to the mill. "
     "The choir sang quietly while the candles burned down."),
]


def write_wav(path, x):
    x = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(x.tobytes())


def read_wav(path):
    with wave.open(path, "rb") as w:
        rate = w.getframerate()
        ch = w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return rate, x.reshape(-1, ch)[:, 0] / 32768.0


def speech(out_dir, name, voice, pitch, speed, text):
    """espeak-ng speech at 16 kHz, -26 dB RMS over its active part, 0.3 s of silence on either
    side. Returns the path of the reference WAV."""
    raw = os.path.join(out_dir, f"espeak-{name}.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", raw,
                    text], check=True)
    rate, x = read_wav(raw)
    g = math.gcd(rate, RATE)
    x = resample_poly(x, RATE // g, rate // g)
    active = x[np.abs(x) > 0.01 * np.max(np.abs(x))]
    x = x * (10 ** (-26 / 20) / np.sqrt(np.mean(active ** 2)))
    pad = np.zeros(int(0.3 * RATE))
    x = np.concatenate([pad, x, pad])
    ref = os.path.join(out_dir, f"ref-{name}.wav")
    write_wav(ref, x)
    return ref


def aligned(ref, deg):
    """`deg` shifted so that it lines up with `ref` as a whole, cut or padded to its length."""
    c = correlate(deg, ref, mode="full", method="fft")
    lag = int(np.argmax(c)) - (len(ref) - 1)
    deg = deg[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag), deg])
    deg = deg[: len(ref)]
    return np.concatenate([deg, np.zeros(len(ref) - len(deg))])


def ideal(x, ppm):
    """`x` as a perfect compensator plays it: output frame n is input frame n (1 + ppm 1e-6)."""
    if ppm == 0:
        return x
    g = math.gcd(1_000_000, 1_000_000 + ppm)
    return resample_poly(x, 1_000_000 // g, (1_000_000 + ppm) // g)


def score(job):
    from pesq import pesq
    from pystoi import stoi

    _, ref = read_wav(job["ref"])
    _, deg = read_wav(job["deg"])
    ide = ideal(ref, job["ppm"])
    vs_input = aligned(ref, deg)
    vs_ideal = aligned(ide, deg)
    return dict(
        job,
        pesq=float(pesq(RATE, ide, vs_ideal, "wb")),
        stoi=float(stoi(ide, vs_ideal, RATE)),
        pesq_input=float(pesq(RATE, ref, vs_input, "wb")),
        stoi_input=float(stoi(ref, vs_input, RATE)),
        pesq_ideal_input=float(pesq(RATE, ref, aligned(ref, ide), "wb")),
        bit_exact=bool(np.array_equal(np.round(ref * 32768), np.round(vs_input * 32768))),
    )


def fmt_skew(ppm):
    return f"{ppm / 1e4:+.1f} %" if abs(ppm) >= 10000 else f"{ppm:+d} ppm"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="the drift_quality example binary")
    ap.add_argument("--out", required=True)
    ap.add_argument("--jitter-ms", type=float, default=0.0,
                    help="uniform network jitter (the order is kept); default none")
    ap.add_argument("--mode", default="fixed",
                    help="the element's mode; off is the control the target must fail")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    refs = {v[0]: speech(args.out, *v) for v in VOICES}
    jobs = []
    for (ppm, latency, checked) in SKEWS:
        for (start, preroll) in STARTS:
            for i, name in enumerate(refs):
                deg = os.path.join(args.out, f"out-{name}-{start}-{ppm:+d}.wav")
                jobs.append(dict(voice=name, ppm=ppm, latency=latency, checked=checked,
                                 start=start, preroll=preroll, ref=refs[name], deg=deg,
                                 seed=1000 + i))
    path = os.path.join(args.out, "jobs.tsv")
    with open(path, "w") as f:
        for j in jobs:
            f.write("\t".join(str(v) for v in (j["ref"], j["deg"], j["ppm"], j["preroll"],
                                               j["latency"], args.jitter_ms, j["seed"],
                                               args.mode)) + "\n")
    out = subprocess.run([args.bench, path], check=True, stdout=subprocess.PIPE, text=True).stdout
    stats = {}
    for line in out.splitlines():
        deg, *fields = line.split("\t")
        stats[deg] = dict(f.split("=", 1) for f in fields)
    with ProcessPoolExecutor(args.workers) as ex:
        rows = list(ex.map(score, jobs))
    for r in rows:
        r.update(stats[r["deg"]])

    with open(os.path.join(args.out, "results.tsv"), "w") as f:
        keys = ["voice", "ppm", "start", "latency", "pesq", "stoi", "pesq_input", "stoi_input",
                "pesq_ideal_input", "bit_exact", "drift-ppm", "drift-ratio", "target-delay-ms",
                "max-delay-error-ms", "engaged-s", "late", "lost", "concealed-ms", "resyncs",
                "stretch-removed-ms", "stretch-compressed-ms"]
        f.write("\t".join(keys) + "\n")
        for r in rows:
            f.write("\t".join(str(r[k]) for k in keys) + "\n")

    jitter = f"{args.jitter_ms:g} ms uniform jitter" if args.jitter_ms else "no jitter"
    seconds = np.mean([read_wav(p)[1].size for p in refs.values()]) / RATE
    print(f"Clean speech (espeak-ng, {len(VOICES)} voices, 16 kHz, ~{seconds:.0f} s each) through "
          f"plcjitterbuffer mode={args.mode}: RTP L16, 20 ms packets, no loss, {jitter}.")
    print("cold: the speech starts with the stream (pull-in included); locked: after 30 s.")
    print("vs ideal: against the input resampled by exactly the sender's clock ratio (what a "
          "perfect compensator plays);")
    print("vs input: against the input as sent; ideal vs input: what a perfect compensator "
          "scores there.")
    print(f"PESQ-WB: mean (min over voices). Target: every +-1000 ppm file >= {TARGET} vs "
          "ideal.\n")
    print("| sender clock | latency | PESQ-WB vs ideal, cold | locked | STOI vs ideal, cold / "
          "locked | PESQ-WB vs input, cold | locked | ideal vs input | late / concealed | "
          f">= {TARGET} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    failed = []

    def pesq_cell(v):
        return f"{np.mean(v):.2f} ({min(v):.2f})"

    for (ppm, latency, checked) in SKEWS:
        cold = [r for r in rows if r["ppm"] == ppm and r["start"] == "cold"]
        locked = [r for r in rows if r["ppm"] == ppm and r["start"] == "locked"]
        every = cold + locked
        late = sum(int(r["late"]) for r in every)
        concealed = sum(int(r["concealed-ms"]) for r in every)
        low = [r for r in every if r["pesq"] < TARGET]
        if checked:
            verdict = "yes" if not low else "**no**"
            failed += low
        elif ppm == 0:
            exact = sum(r["bit_exact"] for r in every)
            verdict = f"(no skew; bit-exact {exact} of {len(every)})"
        else:
            verdict = "(info)"
        print(f"| {fmt_skew(ppm)} | {latency} ms "
              f"| {pesq_cell([r['pesq'] for r in cold])} "
              f"| {pesq_cell([r['pesq'] for r in locked])} "
              f"| {np.mean([r['stoi'] for r in cold]):.3f} / "
              f"{np.mean([r['stoi'] for r in locked]):.3f} "
              f"| {pesq_cell([r['pesq_input'] for r in cold])} "
              f"| {pesq_cell([r['pesq_input'] for r in locked])} "
              f"| {pesq_cell([r['pesq_ideal_input'] for r in cold])} "
              f"| {late} / {concealed} ms | {verdict} |")
    print()
    for r in rows:
        print(f"{r['voice']:<10} {fmt_skew(r['ppm']):>10} {r['start']:<6} PESQ-WB vs ideal "
              f"{r['pesq']:.3f} STOI {r['stoi']:.3f} | vs input {r['pesq_input']:.3f} STOI "
              f"{r['stoi_input']:.3f} (ideal {r['pesq_ideal_input']:.3f}) | bit-exact "
              f"{int(r['bit_exact'])} drift {r['drift-ppm']} ppm max |delay error| "
              f"{r['max-delay-error-ms']} ms resampler from {r['engaged-s']} s late {r['late']} "
              f"concealed {r['concealed-ms']} ms resyncs {r['resyncs']} removed "
              f"{r['stretch-removed-ms']} ms (cut from pauses {r['stretch-compressed-ms']} ms)")
    if failed:
        print(f"\nFAILED: {len(failed)} file(s) at +-1000 ppm below PESQ-WB {TARGET} vs ideal: "
              + ", ".join(f"{r['voice']} {r['start']} {fmt_skew(r['ppm'])} {r['pesq']:.2f}"
                          for r in failed))
        sys.exit(1)
    print(f"\nOK: every file at +-1000 ppm scores PESQ-WB >= {TARGET} against the ideal.")


if __name__ == "__main__":
    main()

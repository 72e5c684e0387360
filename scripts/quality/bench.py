#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""Concealment quality benchmark of plcjitterbuffer (run it through scripts/quality-bench.sh).

1. Reference signals: speech from espeak-ng (several voices) and a tonal, music-like signal,
   at 8, 16 and 48 kHz (16-bit mono WAV).
2. Deterministic loss masks per packet: random 5/10/20 %, Gilbert-Elliott bursts (mean burst 3
   packets) at 10/20 %, single gaps of 100 ms, 500 ms, 2 s; for 10 and 20 ms packets.
3. Every (signal, rate, packet size, condition, method) goes through the real element
   (examples/plc_bench.rs: gst_check::Harness with a test clock, output aligned by offset).
4. Scores: PESQ (P.862: narrow-band at 8 kHz, wide-band at 16 kHz, and wide-band on a 16 kHz
   resampling at 48 kHz), STOI, SNR over the concealed samples, and the pop ratio at every edge
   of every concealed stretch. Prints markdown tables and checks the targets.
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
import wave
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.signal import resample_poly

RATES = [8000, 16000, 48000]
PACKETS_MS = [10, 20]
METHODS = ["silence", "repeat", "sample-constant", "appendix-i", "expand", "neural"]
CONDITIONS = [
    ("random 5 %", ("random", 0.05)),
    ("random 10 %", ("random", 0.10)),
    ("random 20 %", ("random", 0.20)),
    ("bursts 10 %", ("gilbert", 0.10)),
    ("bursts 20 %", ("gilbert", 0.20)),
    ("gap 100 ms", ("gap", 100)),
    ("gap 500 ms", ("gap", 500)),
    ("gap 2 s", ("gap", 2000)),
]
# (name, espeak-ng voice, pitch, speed, text). The texts are written for this benchmark.
VOICES = [
    ("male-us", "en-us", 45, 150,
     "The small boat drifted past the harbour lights before anyone noticed it was empty. "
     "Every morning the baker opens his shutters at six and sweeps the pavement."),
    ("female-us", "en-us+f3", 60, 160,
     "Please bring the blue folder to the meeting on Thursday afternoon. "
     "A cold wind came down from the hills and rattled the windows all night."),
    ("male-gb", "en-gb+m3", 35, 140,
     "She measured the flour twice, then decided to trust her memory instead. "
     "The train to the coast leaves from the far platform at twenty past nine."),
]
WARMUP_PACKETS = 10
# A single gap in an 8 s file moves the whole file's PESQ very little (the 2 s gap scores alike
# for every method): the gap conditions are also scored over the gap and this much around it.
GAP_CONTEXT_S = 1.0
SEED = 20251123


def write_wav(path, rate, x):
    x = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())


def read_wav(path):
    with wave.open(path, "rb") as w:
        rate = w.getframerate()
        ch = w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return rate, x.reshape(-1, ch)[:, 0] / 32768.0


def resample(x, src, dst):
    g = math.gcd(src, dst)
    return resample_poly(x, dst // g, src // g)


def speech(out_dir, name, voice, pitch, speed, text):
    raw = os.path.join(out_dir, f"espeak-{name}.wav")
    if not os.path.exists(raw):
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed),
                        "-w", raw, text], check=True)
    rate, x = read_wav(raw)
    # 300 ms of lead-in, level at -26 dB RMS of the active part (P.56-like), trimmed to 8 s.
    active = x[np.abs(x) > 0.01 * np.max(np.abs(x))]
    x = x * (10 ** (-26 / 20) / np.sqrt(np.mean(active ** 2)))
    x = np.concatenate([np.zeros(int(0.3 * rate)), x])[: int(8.0 * rate)]
    return rate, x


def tonal(rate, seconds=7.0):
    """Chords of harmonic notes with vibrato and envelopes: a music-like test signal."""
    rng = np.random.RandomState(7)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = np.zeros(n)
    note_s = 0.45
    roots = [220.0, 246.9, 261.6, 196.0, 174.6, 220.0, 293.7, 261.6]
    for k in range(int(seconds / note_s)):
        start = int(k * note_s * rate)
        length = int(note_s * 1.3 * rate)
        seg = slice(start, min(n, start + length))
        tt = t[seg] - t[start]
        env = np.minimum(tt / 0.02, 1.0) * np.exp(-tt / 0.6)
        root = roots[k % len(roots)]
        for ratio in (1.0, 1.26, 1.5):
            f = root * ratio
            vib = 1.0 + 0.004 * np.sin(2 * np.pi * 5.5 * tt + rng.uniform(0, 6.28))
            phase = 2 * np.pi * np.cumsum(f * vib) / rate
            for h in range(1, 12):
                if h * f > 0.45 * rate:
                    break
                x[seg] += env * np.sin(h * phase + rng.uniform(0, 6.28)) / (h ** 1.2)
    x = np.concatenate([np.zeros(int(0.3 * rate)), x])
    return x * (10 ** (-20 / 20) / np.sqrt(np.mean(x ** 2)))


def mask_for(kind, value, packets, packet_ms, seed):
    rng = np.random.RandomState(seed)
    lost = np.zeros(packets, dtype=bool)
    if kind == "random":
        lost = rng.uniform(size=packets) < value
    elif kind == "gilbert":
        # Two states; bad = lost. Mean burst 3 packets: P(bad->good) = 1/3; the stationary
        # share of bad is `value`.
        r = 1.0 / 3.0
        p = value * r / (1.0 - value)
        bad = False
        for i in range(packets):
            u = rng.uniform()
            bad = (u >= r) if bad else (u < p)
            lost[i] = bad
    else:
        n = int(round(value / packet_ms))
        start = int(packets * 0.45)
        lost[start:start + n] = True
    lost[:WARMUP_PACKETS] = False
    return lost


def make_signals(out_dir):
    """Returns [(signal name, kind, {rate: wav path})]."""
    sig_dir = os.path.join(out_dir, "signals")
    os.makedirs(sig_dir, exist_ok=True)
    signals = []
    for name, voice, pitch, speed, text in VOICES:
        src_rate, x = speech(sig_dir, name, voice, pitch, speed, text)
        paths = {}
        for rate in RATES:
            p = os.path.join(sig_dir, f"{name}-{rate}.wav")
            write_wav(p, rate, resample(x, src_rate, rate))
            paths[rate] = p
        signals.append((name, "speech", paths))
    paths = {}
    for rate in RATES:
        p = os.path.join(sig_dir, f"tonal-{rate}.wav")
        write_wav(p, rate, tonal(rate))
        paths[rate] = p
    signals.append(("tonal", "tonal", paths))
    return signals


def plan(out_dir, signals, methods, quick, tag=""):
    jobs = []
    deg_dir = os.path.join(out_dir, "degraded")
    os.makedirs(deg_dir, exist_ok=True)
    for si, (sname, skind, paths) in enumerate(signals):
        for rate in RATES:
            _, x = read_wav(paths[rate])
            for packet_ms in PACKETS_MS:
                if quick and packet_ms != 20:
                    continue
                pf = rate * packet_ms // 1000
                packets = -(-len(x) // pf)
                for ci, (cname, (kind, value)) in enumerate(CONDITIONS):
                    seed = SEED + 1000 * si + 10 * ci + packet_ms
                    lost = mask_for(kind, value, packets, packet_ms, seed)
                    mask = "".join("0" if l else "1" for l in lost)
                    for method in methods:
                        name = f"{sname}-{rate}-{packet_ms}ms-c{ci}-{method}{tag}"
                        jobs.append(dict(signal=sname, kind=skind, rate=rate,
                                         packet_ms=packet_ms, condition=cname, method=method,
                                         ref=paths[rate], deg=os.path.join(deg_dir, name + ".wav"),
                                         mask=mask))
    return jobs


def run_element(bench_bin, jobs, out_dir, workers, tag="", direct=False):
    parts = [jobs[i::workers] for i in range(workers)]
    procs = []
    for k, part in enumerate(parts):
        path = os.path.join(out_dir, f"jobs-{k}{tag}.tsv")
        with open(path, "w") as f:
            for j in part:
                f.write("\t".join([j["ref"], j["deg"], str(j["packet_ms"]), j["method"],
                                   j["mask"]]) + "\n")
        procs.append(subprocess.Popen([bench_bin, "direct" if direct else "run", path],
                                      stdout=subprocess.PIPE, text=True))
    stats = {}
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"plc_bench failed ({p.returncode})")
        for line in out.splitlines():
            deg, s = line.split("\t", 1)
            stats[deg] = s
    return stats


def lost_runs(mask):
    runs, start = [], None
    for i, c in enumerate(mask + "1"):
        if c == "0" and start is None:
            start = i
        elif c == "1" and start is not None:
            runs.append((start, i))
            start = None
    return runs


def rms_envelope(x, a, b, ms):
    """The largest RMS of a 1 ms window (hop 0.5 ms) within x[a:b]: the local RMS envelope."""
    w = max(1, ms)
    hop = max(1, ms // 2)
    return max(float(np.sqrt(np.mean(x[i:i + w] ** 2))) for i in range(a, max(a + 1, b - w + 1), hop))


def score(job):
    from pesq import pesq
    from pystoi import stoi

    rate, ref = read_wav(job["ref"])
    _, deg = read_wav(job["deg"])
    n = min(len(ref), len(deg))
    ref, deg = ref[:n], deg[:n]
    if rate == 8000:
        mode, fs, r16, d16 = "nb", 8000, ref, deg
    else:
        mode, fs = "wb", 16000
        r16, d16 = (ref, deg) if rate == 16000 else (resample(ref, rate, 16000),
                                                     resample(deg, rate, 16000))
    try:
        p = float(pesq(fs, r16, d16, mode))
    except Exception:  # noqa: BLE001 (PESQ refuses e.g. a silent output)
        p = float("nan")
    s = float(stoi(ref, deg, rate, extended=False))
    pf = rate * job["packet_ms"] // 1000
    runs = lost_runs(job["mask"])
    p_gap = float("nan")
    if job["condition"].startswith("gap") and runs:
        # PESQ over the gap and GAP_CONTEXT_S on either side (at the PESQ rate).
        a = max(0, int((runs[0][0] * pf / rate - GAP_CONTEXT_S) * fs))
        b = min(len(r16), int((runs[-1][1] * pf / rate + GAP_CONTEXT_S) * fs))
        try:
            p_gap = float(pesq(fs, r16[a:b], d16[a:b], mode))
        except Exception:  # noqa: BLE001
            pass
    sig = err = 0.0
    pops = []
    ms = rate // 1000
    floor = 1e-3  # -60 dBFS RMS: a pop in digital silence still counts, inaudible wiggles do not
    for a, b in runs:
        a, b = a * pf, min(b * pf, n)
        if a >= n:
            continue
        sig += float(np.sum(ref[a:b] ** 2))
        err += float(np.sum((deg[a:b] - ref[a:b]) ** 2))
        for e in (a, b):
            if e - 20 * ms < 0 or e + 20 * ms > n:
                continue
            near = rms_envelope(deg, e - 2 * ms, e + 2 * ms, ms)
            env = max(rms_envelope(ref, e - 20 * ms, e + 20 * ms, ms),
                      rms_envelope(deg, e - 20 * ms, e - 2 * ms, ms),
                      rms_envelope(deg, e + 2 * ms, e + 20 * ms, ms), floor)
            pops.append(near / env)
    snr = 10 * math.log10(sig / err) if err > 0 and sig > 0 else float("nan")
    return dict(job, pesq=p, pesq_gap=p_gap, stoi=s, snr=snr, pop=max(pops) if pops else 0.0,
                pops_over=sum(1 for x in pops if x > 1.2), edges=len(pops))


def mean(v):
    v = [x for x in v if not math.isnan(x)]
    return sum(v) / len(v) if v else float("nan")


def table(rows, key, kind, rate, packet_ms, methods, fmt="{:.2f}", conditions=None):
    lines = ["| condition | " + " | ".join(methods) + " |",
             "|---|" + "---:|" * len(methods)]
    for cname, _ in conditions or CONDITIONS:
        cells = []
        for m in methods:
            v = mean([r[key] for r in rows if r["kind"] == kind and r["rate"] == rate
                      and r["packet_ms"] == packet_ms and r["condition"] == cname
                      and r["method"] == m])
            cells.append(fmt.format(v))
        lines.append(f"| {cname} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="the plc_bench binary")
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="20 ms packets only")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--rates", default=",".join(map(str, RATES)))
    ap.add_argument("--kinds", default="speech,tonal")
    ap.add_argument("--tag", default="", help="suffix of the degraded files (parallel runs)")
    ap.add_argument("--direct", action="store_true",
                    help="drive the concealer alone (plc_bench direct) instead of the element; "
                         "methods may then be NAME+future (told what follows each hole)")
    ap.add_argument("--candidate", default="expand",
                    help="the method the targets are checked for")
    a = ap.parse_args()
    RATES[:] = [int(r) for r in a.rates.split(",")]
    methods = a.methods.split(",")
    os.makedirs(a.out, exist_ok=True)
    signals = make_signals(a.out)
    signals = [s for s in signals if s[1] in a.kinds.split(",")]
    jobs = plan(a.out, signals, methods, a.quick, a.tag)
    what = "the concealer alone" if a.direct else "plcjitterbuffer"
    print(f"{len(jobs)} runs through {what}...", file=sys.stderr)
    stats = run_element(a.bench, jobs, a.out, a.workers, a.tag, a.direct)
    print("scoring...", file=sys.stderr)
    with ProcessPoolExecutor(a.workers) as ex:
        rows = list(ex.map(score, jobs, chunksize=4))
    for r in rows:
        r["stats"] = stats.get(r["deg"], "")
    with open(os.path.join(a.out, "results.csv"), "w", newline="") as f:
        keys = ["signal", "kind", "rate", "packet_ms", "condition", "method", "pesq", "pesq_gap",
                "stoi",
                "snr", "pop", "pops_over", "edges", "stats"]
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

    out = []
    packets = [20] if a.quick else PACKETS_MS
    for rate in RATES:
        for pm in packets:
            mode = "PESQ-NB" if rate == 8000 else "PESQ-WB"
            out.append(f"\n### Speech, {rate} Hz, {pm} ms packets: {mode} (mean of "
                       f"{len(VOICES)} voices)\n")
            out.append(table(rows, "pesq", "speech", rate, pm, methods))
    gaps = [c for c in CONDITIONS if c[1][0] == "gap"]
    for rate in RATES:
        for pm in packets:
            mode = "PESQ-NB" if rate == 8000 else "PESQ-WB"
            out.append(f"\n### Speech, {rate} Hz, {pm} ms packets: {mode} over the gap and "
                       f"{GAP_CONTEXT_S:g} s on either side (mean of {len(VOICES)} voices)\n")
            out.append(table(rows, "pesq_gap", "speech", rate, pm, methods, conditions=gaps))
    for rate in RATES:
        for pm in packets:
            out.append(f"\n### Speech, {rate} Hz, {pm} ms packets: STOI\n")
            out.append(table(rows, "stoi", "speech", rate, pm, methods, "{:.3f}"))
            out.append(f"\n### Speech, {rate} Hz, {pm} ms packets: SNR of the concealed "
                       f"stretches (dB)\n")
            out.append(table(rows, "snr", "speech", rate, pm, methods, "{:.1f}"))
    for rate in RATES:
        for pm in packets:
            out.append(f"\n### Tonal, {rate} Hz, {pm} ms packets: SNR of the concealed "
                       f"stretches (dB) / STOI\n")
            snr = table(rows, "snr", "tonal", rate, pm, methods, "{:.1f}").splitlines()
            st = table(rows, "stoi", "tonal", rate, pm, methods, "{:.2f}").splitlines()
            merged = snr[:2]
            for ls, lt in zip(snr[2:], st[2:]):
                cs, ct = ls.strip("|").split("|"), lt.strip("|").split("|")
                merged.append("|" + cs[0] + "|" + "|".join(
                    f" {x.strip()} / {y.strip()} " for x, y in zip(cs[1:], ct[1:])) + "|")
            out.append("\n".join(merged))
    out.append("\n### Pops: largest RMS envelope at an edge (+-2 ms) / local RMS envelope (+-20 ms of the reference and of the output around it), all runs (edges over 1.2)\n")
    out.append("| rate | " + " | ".join(methods) + " |")
    out.append("|---|" + "---:|" * len(methods))
    for rate in RATES:
        cells = []
        for m in methods:
            rs = [r for r in rows if r["rate"] == rate and r["method"] == m]
            cells.append(f"{max(r['pop'] for r in rs):.2f} ({sum(r['pops_over'] for r in rs)}"
                         f"/{sum(r['edges'] for r in rs)})")
        out.append(f"| {rate} | " + " | ".join(cells) + " |")

    # Targets.
    checks = []
    cand = a.candidate
    if cand in methods and "appendix-i" in methods:
        def cell(rate, pm, c, m):
            return mean([r["pesq"] for r in rows if r["kind"] == "speech" and r["rate"] == rate
                         and r["packet_ms"] == pm and r["condition"] == c and r["method"] == m])
        worst16 = min(cell(16000, pm, c, cand) - cell(16000, pm, c, "appendix-i")
                      for pm in packets for c, _ in CONDITIONS)
        checks.append(("PESQ at 16 kHz >= appendix-i + 0.1 in every condition",
                       worst16 >= 0.1, f"smallest margin {worst16:+.2f}"))

        def gap_cell(rate, pm, c, m):
            key = "pesq_gap" if c.startswith("gap") else "pesq"
            return mean([r[key] for r in rows if r["kind"] == "speech" and r["rate"] == rate
                         and r["packet_ms"] == pm and r["condition"] == c and r["method"] == m])
        worst16g = min(gap_cell(16000, pm, c, cand) - gap_cell(16000, pm, c, "appendix-i")
                       for pm in packets for c, _ in CONDITIONS)
        checks.append(("PESQ at 16 kHz >= appendix-i + 0.1 in every condition, gaps scored over "
                       f"+-{GAP_CONTEXT_S:g} s", worst16g >= 0.1,
                       f"smallest margin {worst16g:+.2f}"))
        worst = min(cell(rate, pm, c, cand) - cell(rate, pm, c, "appendix-i")
                    for rate in RATES for pm in packets for c, _ in CONDITIONS)
        checks.append(("PESQ never below appendix-i", worst >= 0.0,
                       f"smallest margin {worst:+.2f}"))
        if "sample-constant" in methods:
            worst48 = min(cell(48000, pm, c, cand) - cell(48000, pm, c, "sample-constant")
                          for pm in packets for c, _ in CONDITIONS)
            checks.append(("PESQ at 48 kHz >= sample-constant + 0.5 in every condition",
                           worst48 >= 0.5, f"smallest margin {worst48:+.2f}"))
            worst48g = min(gap_cell(48000, pm, c, cand)
                           - gap_cell(48000, pm, c, "sample-constant")
                           for pm in packets for c, _ in CONDITIONS)
            checks.append(("PESQ at 48 kHz >= sample-constant + 0.5 in every condition, gaps "
                           f"scored over +-{GAP_CONTEXT_S:g} s", worst48g >= 0.5,
                           f"smallest margin {worst48g:+.2f}"))
        pop = max(r["pop"] for r in rows if r["method"] == cand)
        checks.append((f"{cand}: every edge's RMS envelope <= 1.2 x the local RMS envelope", pop <= 1.2,
                       f"largest {pop:.2f}"))
    out.append("\n### Targets\n")
    for name, ok, detail in checks:
        out.append(f"- {'PASS' if ok else 'FAIL'}: {name} ({detail})")
    text = "\n".join(out) + "\n"
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()

// SPDX-License-Identifier: MPL-2.0
//! The engine of the concealment quality benchmark (`scripts/quality-bench.sh` drives it).
//!
//! ```text
//! cargo run --release --example plc_bench -- run JOBS.tsv
//! cargo run --release --example plc_bench -- direct JOBS.tsv
//! cargo run --release --example plc_bench -- cpu [METHOD [RATE]]
//! ```
//! `run`: every line of `JOBS.tsv` is `input.wav  output.wav  packet_ms  method  mask` (tab
//! separated). The input (16-bit PCM WAV, any rate and channel count) is cut into packets of
//! `packet_ms`; packet `i` is lost when `mask[i]` is `0`. The received packets are pushed into the
//! real `plcjitterbuffer` element (`plc=method`, `latency=40`, `silence-until-data=false`) through
//! `gst_check::Harness` with its test clock, each arriving exactly at its own time, so the run is
//! deterministic and much faster than real time. The output buffers are placed by their offset
//! (frames since the first packet), which aligns them with the input exactly, and written to
//! `output.wav`, as long as the input. One line per job is printed: the element's stats.
//!
//! `direct`: the same jobs, but the concealer alone (`Concealer`, no GStreamer), driven exactly
//! as the raw playout drives it: 10 ms output chunks, real audio through `real()`, holes
//! through `conceal()`. A method named `NAME+future` (e.g. `expand+future`) is also told what
//! follows each hole, as a jitter buffer at `latency=40` knows it: before concealing in the
//! chunk that starts at `T`, every packet that starts by `T + 40 ms` has arrived, so when the
//! packet after the hole is among them, `set_future(frames until it, the received audio from it
//! on, as far as it has arrived without a gap)` is called first. Without `+future`, the output
//! is bit-identical to the element's (except where the element itself resyncs: the 2 s gap
//! with 20 ms packets). `PLC_BENCH_LOOKAHEAD_MS` replaces the 40 ms (a jitter buffer with more
//! latency knows the end of a long gap earlier).
//!
//! `cpu`: CPU time of `Concealer::conceal` per concealed 10 ms (and of the merge that follows
//! a loss) per method, rate and channel count, measured on the pure concealer; `expand+future`
//! is told the 20 ms after each 20 ms loss (two-sided, the whole loss one region).

use std::io::Write;
use std::time::Instant;

use gst::prelude::*;
use gst_check::Harness;
use gstnetaudio::conceal::{Concealer, PlcMethod};

const MS: u64 = 1_000_000;
const LATENCY_MS: u32 = 40;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("run") if args.len() == 3 => run_jobs(&args[2], false),
        Some("direct") if args.len() == 3 => run_jobs(&args[2], true),
        Some("cpu") => cpu(
            args.get(2).map(String::as_str),
            args.get(3).map(String::as_str),
        ),
        _ => {
            eprintln!("usage: plc_bench run JOBS.tsv | plc_bench direct JOBS.tsv | plc_bench cpu");
            std::process::exit(2);
        }
    }
}

struct Wav {
    rate: u32,
    channels: usize,
    samples: Vec<i16>,
}

fn read_wav(path: &str) -> Wav {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WAVE",
        "{path}: not a WAV file"
    );
    let u16_at = |i: usize| u16::from_le_bytes([data[i], data[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let (mut rate, mut channels, mut samples) = (0, 0, None);
    let mut pos = 12;
    while pos + 8 <= data.len() {
        let id = &data[pos..pos + 4];
        let len = u32_at(pos + 4) as usize;
        let body = pos + 8;
        let end = (body + len).min(data.len());
        if id == b"fmt " {
            assert_eq!(u16_at(body), 1, "{path}: not PCM");
            channels = u16_at(body + 2) as usize;
            rate = u32_at(body + 4);
            assert_eq!(u16_at(body + 14), 16, "{path}: not 16-bit");
        } else if id == b"data" {
            samples = Some(
                data[body..end]
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect::<Vec<_>>(),
            );
        }
        pos = body + len + (len & 1);
    }
    let samples = samples.unwrap_or_else(|| panic!("{path}: no data chunk"));
    assert!(rate > 0 && channels > 0, "{path}: no fmt chunk");
    Wav {
        rate,
        channels,
        samples,
    }
}

fn write_wav(path: &str, wav: &Wav) {
    let bytes = (wav.samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + bytes as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + bytes).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(wav.channels as u16).to_le_bytes());
    out.extend_from_slice(&wav.rate.to_le_bytes());
    out.extend_from_slice(&(wav.rate * wav.channels as u32 * 2).to_le_bytes());
    out.extend_from_slice(&(wav.channels as u16 * 2).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&bytes.to_le_bytes());
    for s in &wav.samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("{path}: {e}"));
}

fn run_jobs(path: &str, direct: bool) {
    if !direct {
        gst::init().expect("gst init");
        gstnetaudio::plugin_register_static().expect("register plugin");
    }
    let jobs = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let stdout = std::io::stdout();
    for line in jobs.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 5, "bad job line: {line}");
        let packet_ms: u64 = f[2].parse().expect("packet_ms");
        let stats = if direct {
            direct_job(f[0], f[1], packet_ms, f[3], f[4].as_bytes())
        } else {
            run_job(f[0], f[1], packet_ms, f[3], f[4].as_bytes())
        };
        writeln!(stdout.lock(), "{}\t{}", f[1], stats).expect("stdout");
    }
}

/// Runs one input through the element; returns its stats as text.
fn run_job(input: &str, output: &str, packet_ms: u64, method: &str, mask: &[u8]) -> String {
    let wav = read_wav(input);
    let (rate, ch) = (wav.rate as u64, wav.channels);
    let frames = wav.samples.len() / ch;
    let packet_frames = (rate * packet_ms / 1000) as usize;
    let packets = frames.div_ceil(packet_frames);
    assert!(
        mask.len() >= packets,
        "{input}: mask shorter than {packets} packets"
    );
    assert_eq!(mask[0], b'1', "the first packet must be received");

    let mut h = Harness::new("plcjitterbuffer");
    {
        let e = h.element().expect("element");
        e.set_property("latency", LATENCY_MS);
        e.set_property("silence-until-data", false);
        e.set_property_from_str("plc", method);
    }
    h.set_src_caps_str(&format!(
        "audio/x-raw,format=S16LE,rate={rate},channels={ch},layout=interleaved"
    ));
    h.play();

    // Received packets, each arriving at its own start time.
    let mut inputs = (0..packets).filter(|&i| mask[i] == b'1').map(|i| {
        let a = i * packet_frames * ch;
        let b = ((i + 1) * packet_frames * ch).min(wav.samples.len());
        let bytes: Vec<u8> = wav.samples[a..b]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let mut buf = gst::Buffer::from_mut_slice(bytes);
        buf.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_nseconds(i as u64 * packet_ms * MS));
        (i as u64 * packet_ms * MS, buf)
    });

    let mut out = vec![0i16; frames * ch];
    let chunks = (frames as u64 * 100).div_ceil(rate);
    let latency = u64::from(LATENCY_MS) * MS;
    let mut pending = inputs.next();
    for j in 0..chunks {
        let deadline = latency + j * 10 * MS;
        while let Some((arrival, _)) = pending.as_ref() {
            if *arrival > deadline {
                break;
            }
            let (_, buf) = pending.take().unwrap();
            h.push(buf).expect("push");
            pending = inputs.next();
        }
        h.crank_single_clock_wait().expect("crank");
        let buf = h.pull().expect("output buffer");
        let offset = buf.offset() as usize;
        let map = buf.map_readable().expect("map");
        for (k, b) in map.as_slice().chunks_exact(2).enumerate() {
            let idx = offset * ch + k;
            if idx < out.len() {
                out[idx] = i16::from_le_bytes([b[0], b[1]]);
            }
        }
    }
    write_wav(
        output,
        &Wav {
            rate: wav.rate,
            channels: ch,
            samples: out,
        },
    );
    let s = h
        .element()
        .expect("element")
        .property::<gst::Structure>("stats");
    let get = |k: &str| s.get::<u64>(k).unwrap_or(0);
    format!(
        "lost={} concealed-ms={} silence-ms={} resyncs={} late={}",
        get("lost"),
        get("concealed-ms"),
        get("silence-ms"),
        get("resyncs"),
        get("late")
    )
}

/// Runs one input through the concealer alone, as the raw playout at `latency=40` would (see
/// the module docs); returns what was done as text.
fn direct_job(input: &str, output: &str, packet_ms: u64, method: &str, mask: &[u8]) -> String {
    let wav = read_wav(input);
    let (rate, ch) = (wav.rate as usize, wav.channels);
    let (name, future) = match method.strip_suffix("+future") {
        Some(name) => (name, true),
        None => (method, false),
    };
    let plc = PlcMethod::from_name(name).unwrap_or_else(|| panic!("unknown method {name}"));
    let x: Vec<f32> = wav
        .samples
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    let frames = x.len() / ch;
    let pf = rate * packet_ms as usize / 1000;
    let packets = frames.div_ceil(pf);
    assert!(
        mask.len() >= packets,
        "{input}: mask shorter than {packets} packets"
    );
    let received = |p: usize| p < packets && mask[p] == b'1';
    let mut c = Concealer::with_method(wav.rate, ch, plc);
    let lookahead_ms = std::env::var("PLC_BENCH_LOOKAHEAD_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LATENCY_MS as usize);
    let mut out = x.clone();
    let chunk = rate / 100;
    let (mut concealed, mut told, mut holes) = (0usize, 0usize, 0usize);
    let mut in_hole = false;
    for head in (0..frames).step_by(chunk) {
        let end = (head + chunk).min(frames);
        // Packets starting by this chunk's start + latency have arrived.
        let horizon = head + rate * lookahead_ms / 1000;
        let mut pos = head;
        while pos < end {
            let p = pos / pf;
            if received(p) {
                let until = ((p + 1) * pf).min(end);
                c.real(&mut out[pos * ch..until * ch]);
                in_hole = false;
                pos = until;
                continue;
            }
            let next = (p + 1..packets).find(|&q| received(q));
            let until = next.map_or(end, |q| (q * pf).min(end));
            if !in_hole {
                holes += 1;
                in_hole = true;
            }
            if let Some(q) = next.filter(|&q| future && q * pf <= horizon) {
                let mut last = q;
                while received(last + 1) && (last + 1) * pf <= horizon {
                    last += 1;
                }
                let (a, b) = (q * pf, ((last + 1) * pf).min(frames));
                c.set_future(a - pos, &x[a * ch..b * ch]);
                told += 1;
            }
            c.conceal(&mut out[pos * ch..until * ch]);
            concealed += until - pos;
            pos = until;
        }
    }
    let samples = out
        .iter()
        .map(|&v| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    write_wav(
        output,
        &Wav {
            rate: wav.rate,
            channels: ch,
            samples,
        },
    );
    format!(
        "holes={holes} concealed-ms={} set-future-calls={told}",
        concealed * 1000 / rate
    )
}

/// A vowel-like test signal with vibrato, some breath noise and a slow level change.
fn voice(rate: u32, channels: usize, frames: usize) -> Vec<f32> {
    let mut seed = 0x1234_5678u32;
    let mut out = Vec::with_capacity(frames * channels);
    let mut phase = 0.0f64;
    for n in 0..frames {
        let t = n as f64 / f64::from(rate);
        let f0 = 140.0 * (1.0 + 0.05 * (2.0 * std::f64::consts::PI * 4.0 * t).sin());
        phase += 2.0 * std::f64::consts::PI * f0 / f64::from(rate);
        let mut v = 0.0;
        let mut h = 1.0;
        while h * f0 < 0.45 * f64::from(rate) && h < 40.0 {
            v += (h * phase + 0.3 * h * h).sin() / h;
            h += 1.0;
        }
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = f64::from(seed) / f64::from(u32::MAX) - 0.5;
        let level = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 1.5 * t).sin();
        let x = (0.12 * v + 0.01 * noise) * level;
        for c in 0..channels {
            out.push((x * (1.0 - 0.3 * c as f64)) as f32);
        }
    }
    out
}

/// CPU time of concealment: 100 ms real, then 20 ms lost (two 10 ms conceal calls), repeated;
/// only the conceal calls are timed (with `set_future` for `expand+future`), and separately the
/// `real()` call right after each loss (the merge). Medians over 60 losses per pass, 4 passes
/// (`PLC_BENCH_ITER` passes, for profiling), per 10 ms.
/// `only_method` / `only_rate`: measure just that method (name, `+future` allowed) and rate.
fn cpu(only_method: Option<&str>, only_rate: Option<&str>) {
    println!("method\trate\tchannels\tus_per_concealed_10ms\tpercent_of_budget\tus_per_merge");
    let methods = PlcMethod::ALL
        .into_iter()
        .map(|m| (m, false))
        .chain([(PlcMethod::Expand, true)]);
    for (method, future) in methods {
        let name = format!("{}{}", method.name(), if future { "+future" } else { "" });
        if only_method.is_some_and(|m| m != name) {
            continue;
        }
        for rate in [8000u32, 16000, 48000] {
            if only_rate.is_some_and(|r| r != rate.to_string()) {
                continue;
            }
            for channels in [1usize, 2] {
                let ten = (rate / 100) as usize * channels;
                let cycle = 12 * ten;
                let signal = voice(rate, channels, 60 * cycle / channels);
                let mut c = Concealer::with_method(rate, channels, method);
                let mut buf = vec![0.0f32; ten];
                // Per loss (2 x 10 ms) and per merge, in ns; the medians are reported (other
                // load on the machine only adds outliers).
                let (mut losses, mut merges) = (Vec::new(), Vec::new());
                let iterations = std::env::var("PLC_BENCH_ITER")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(4);
                let blocks = signal.len() / cycle;
                for _ in 0..iterations {
                    for (b, block) in signal.chunks_exact(cycle).enumerate() {
                        for k in 0..10 {
                            buf.copy_from_slice(&block[k * ten..(k + 1) * ten]);
                            if k == 0 {
                                let t = Instant::now();
                                c.real(&mut buf);
                                merges.push(t.elapsed().as_nanos());
                            } else {
                                c.real(&mut buf);
                            }
                        }
                        // What follows the loss: the next block's start.
                        let next = ((b + 1) % blocks) * cycle;
                        let mut ns = 0;
                        for k in 0..2 {
                            let t = Instant::now();
                            if future && k == 0 {
                                c.set_future(2 * ten / channels, &signal[next..next + 2 * ten]);
                            }
                            c.conceal(&mut buf);
                            ns += t.elapsed().as_nanos();
                            std::hint::black_box(&buf);
                        }
                        losses.push(ns);
                    }
                }
                let median = |v: &mut Vec<u128>| {
                    v.sort_unstable();
                    v[v.len() / 2] as f64
                };
                let us = median(&mut losses) / 2.0 / 1000.0;
                let merge_us = median(&mut merges) / 1000.0;
                println!(
                    "{name}\t{rate}\t{channels}\t{us:.2}\t{:.3}\t{:.2}",
                    us / 10_000.0 * 100.0,
                    merge_us
                );
            }
        }
    }
}

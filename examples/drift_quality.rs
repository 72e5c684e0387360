// SPDX-License-Identifier: MPL-2.0
//! The engine of the drift quality benchmark (`scripts/drift-quality.sh` drives it): speech sent
//! as RTP L16 by a sender whose clock is off by a given skew, through the real `plcjitterbuffer`
//! (`mode=fixed`, the default), driven by `gst_check::Harness` with its test clock, so the run
//! is deterministic and much faster than real time.
//!
//! ```text
//! cargo run --release --example drift_quality -- JOBS.tsv
//! ```
//! Every line of `JOBS.tsv` is `input.wav  output.wav  skew_ppm  preroll_s  latency_ms
//! jitter_ms  seed  mode` (tab separated; `mode` is the element's: `fixed`, or `off` for the
//! control). The input is 16-bit mono PCM at any rate. The sender sends `preroll_s` of silence,
//! then the input, in 20 ms packets; packet `k` arrives `5 ms + k × 20 ms / (1 + skew)` after
//! the start, plus a uniform random delay of up to `jitter_ms` (the first packet on the fastest
//! path, the order of arrival kept), and nothing is lost. The element's output from half a
//! second before the input's first frame is due to half a second after its last is written to
//! `output.wav` (the scorer aligns it). With `preroll_s` 0 the speech starts with the stream,
//! pull-in and all; with 30 s the loop has locked before it.
//!
//! One line per job on stdout: `output.wav`, then `key=value` fields: the element's drift
//! estimate and ratio at the end, the largest |measured − target| delay while the input played,
//! when the resampler took over from the bit-exact bypass (`engaged-s`, seconds of output, or
//! `never`), and the stats that would show anything but drift compensation (`late`, `lost`,
//! `concealed-ms`, `resyncs`), and what was played faster (`stretch-removed-ms`, of it
//! `stretch-compressed-ms` cut from quiet stretches in `mode=adaptive`). Every output buffer is checked to be exactly 10 ms, contiguous.

use std::io::Write;

use gst::prelude::*;
use gst_check::Harness;

const MS: u64 = 1_000_000;
/// The fastest path through the network.
const BASE_NS: f64 = 5e6;
const PACKET_MS: u64 = 20;
const SSRC: u32 = 0xd41f_7000;
/// Output written on either side of where the input is expected, for the aligner.
const MARGIN_S: f64 = 0.5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 2 {
        eprintln!("usage: drift_quality JOBS.tsv");
        std::process::exit(2);
    }
    gst::init().expect("gst init");
    gstnetaudio::plugin_register_static().expect("register plugin");
    let jobs = std::fs::read_to_string(&args[1]).unwrap_or_else(|e| panic!("{}: {e}", args[1]));
    let stdout = std::io::stdout();
    for line in jobs.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 8, "bad job line: {line}");
        let job = Job {
            input: f[0],
            output: f[1],
            skew_ppm: f[2].parse().expect("skew_ppm"),
            preroll_s: f[3].parse().expect("preroll_s"),
            latency_ms: f[4].parse().expect("latency_ms"),
            jitter_ms: f[5].parse().expect("jitter_ms"),
            seed: f[6].parse().expect("seed"),
            mode: f[7],
        };
        let stats = run(&job);
        writeln!(stdout.lock(), "{}\t{}", job.output, stats).expect("stdout");
    }
}

struct Job<'a> {
    input: &'a str,
    output: &'a str,
    skew_ppm: f64,
    preroll_s: f64,
    latency_ms: u32,
    jitter_ms: f64,
    seed: u64,
    mode: &'a str,
}

/// SplitMix64 (the same generator as `gstnetaudio::impair`), uniform in [0, 1).
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs one job; returns its result fields.
fn run(job: &Job) -> String {
    let (rate, input) = read_wav(job.input);
    let rate64 = u64::from(rate);
    let packet_frames = (rate64 * PACKET_MS / 1000) as usize;
    let preroll = (job.preroll_s * f64::from(rate)).round() as usize;
    // Silence, the input, and a packet of silence to finish on.
    let mut media = vec![0i16; preroll];
    media.extend_from_slice(&input);
    media.resize(
        media.len().next_multiple_of(packet_frames) + packet_frames,
        0,
    );
    let packets = media.len() / packet_frames;

    // Arrivals: the sender's clock runs `skew` fast, the network adds up to `jitter` and keeps
    // the order.
    let period_ns = PACKET_MS as f64 * 1e6 / (1.0 + job.skew_ppm * 1e-6);
    let mut rng = Rng(job.seed);
    let mut last = 0u64;
    let arrivals: Vec<u64> = (0..packets)
        .map(|k| {
            let jitter = if k == 0 {
                0.0
            } else {
                rng.next_f64() * job.jitter_ms * 1e6
            };
            let a = (BASE_NS + k as f64 * period_ns + jitter) as u64;
            last = last.max(a);
            last
        })
        .collect();

    let caps = format!(
        "application/x-rtp,media=audio,encoding-name=L16,clock-rate={rate},\
         encoding-params=(string)1,payload=96"
    );
    let mut h = Harness::new("plcjitterbuffer");
    {
        let e = h.element().expect("element");
        e.set_property("latency", job.latency_ms);
        e.set_property("silence-until-data", false);
        e.set_property_from_str("mode", job.mode);
    }
    h.set_src_caps_str(&caps);
    h.play();

    // Output frame n plays about media frame n × (1 + skew): the input starts near `preroll`
    // of media, i.e. output frame preroll / (1 + skew).
    let ratio = 1.0 + job.skew_ppm * 1e-6;
    let margin = (MARGIN_S * f64::from(rate)) as i64;
    let out_start = (preroll as f64 / ratio) as i64 - margin;
    let out_end = ((preroll + input.len()) as f64 / ratio) as i64 + margin;
    let mut out = vec![0i16; (out_end - out_start) as usize];

    let origin = arrivals[0];
    let latency = u64::from(job.latency_ms) * MS;
    let chunk_frames = rate64 / 100;
    let n_chunks = (out_end as u64).div_ceil(chunk_frames);
    let (in_start, in_end) = (
        preroll as f64 / ratio,
        (preroll + input.len()) as f64 / ratio,
    );
    let mut next_packet = 0;
    let mut max_err_ms: f64 = 0.0;
    // When the resampler took over (s since the first packet), if it did.
    let mut engaged_s: Option<f64> = None;
    for j in 0..n_chunks {
        let deadline = origin + latency + j * 10 * MS;
        while next_packet < packets && arrivals[next_packet] <= deadline {
            let k = next_packet;
            let payload: Vec<u8> = media[k * packet_frames..(k + 1) * packet_frames]
                .iter()
                .flat_map(|s| s.to_be_bytes())
                .collect();
            let rtp = rtp_types::RtpPacketBuilder::<&[u8], &[u8]>::new()
                .payload_type(96)
                .sequence_number(k as u16)
                .timestamp((k * packet_frames) as u32)
                .ssrc(SSRC)
                .payload(payload.as_slice())
                .write_vec()
                .expect("an RTP packet");
            let mut buf = gst::Buffer::from_mut_slice(rtp);
            buf.get_mut()
                .unwrap()
                .set_pts(gst::ClockTime::from_nseconds(arrivals[k]));
            h.push(buf).expect("push");
            next_packet += 1;
        }
        h.crank_single_clock_wait().expect("crank");
        let buf = h.pull().expect("output buffer");
        assert_eq!(buf.offset(), j * chunk_frames, "offset of buffer {j}");
        assert_eq!(
            buf.size() as u64,
            chunk_frames * 2,
            "size of buffer {j}: not 10 ms"
        );
        assert_eq!(
            buf.pts(),
            Some(gst::ClockTime::from_nseconds(origin + j * 10 * MS)),
            "PTS of buffer {j}"
        );
        let map = buf.map_readable().expect("map");
        for (k, b) in map.as_slice().chunks_exact(2).enumerate() {
            let idx = (j * chunk_frames) as i64 + k as i64 - out_start;
            if (0..out.len() as i64).contains(&idx) {
                out[idx as usize] = i16::from_le_bytes([b[0], b[1]]);
            }
        }
        let s = stats(&h);
        if engaged_s.is_none() && s.get::<f64>("drift-ratio").unwrap_or(1.0) != 1.0 {
            engaged_s = Some(j as f64 / 100.0);
        }
        let n = (j * chunk_frames) as f64;
        if n >= in_start && n < in_end {
            let err = s.get::<f64>("measured-delay-ms").unwrap_or(0.0)
                - s.get::<f64>("target-delay-ms").unwrap_or(0.0);
            max_err_ms = max_err_ms.max(err.abs());
        }
    }
    write_wav(job.output, rate, &out);
    let s = stats(&h);
    let get = |k: &str| s.get::<u64>(k).unwrap_or_else(|e| panic!("{k}: {e}"));
    let getf = |k: &str| s.get::<f64>(k).unwrap_or_else(|e| panic!("{k}: {e}"));
    format!(
        "drift-ppm={:.1}\tdrift-ratio={:.7}\ttarget-delay-ms={:.2}\tmax-delay-error-ms={:.2}\t\
         engaged-s={}\tlate={}\tlost={}\tconcealed-ms={}\tresyncs={}\tstretch-removed-ms={}\t\
         stretch-compressed-ms={}",
        getf("drift-ppm"),
        getf("drift-ratio"),
        getf("target-delay-ms"),
        max_err_ms,
        engaged_s.map_or("never".into(), |t| format!("{t:.2}")),
        get("late"),
        get("lost"),
        get("concealed-ms"),
        get("resyncs"),
        get("stretch-removed-ms"),
        get("stretch-compressed-ms"),
    )
}

fn stats(h: &Harness) -> gst::Structure {
    h.element()
        .expect("element")
        .property::<gst::Structure>("stats")
}

/// A 16-bit mono PCM WAV file: its rate and samples.
fn read_wav(path: &str) -> (u32, Vec<i16>) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WAVE",
        "{path}: not a WAV file"
    );
    let u16_at = |i: usize| u16::from_le_bytes([data[i], data[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let (mut rate, mut samples) = (0, None);
    let mut pos = 12;
    while pos + 8 <= data.len() {
        let id = &data[pos..pos + 4];
        let len = u32_at(pos + 4) as usize;
        let body = pos + 8;
        let end = (body + len).min(data.len());
        if id == b"fmt " {
            assert_eq!(u16_at(body), 1, "{path}: not PCM");
            assert_eq!(u16_at(body + 2), 1, "{path}: not mono");
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
    assert!(rate > 0, "{path}: no fmt chunk");
    (
        rate,
        samples.unwrap_or_else(|| panic!("{path}: no data chunk")),
    )
}

fn write_wav(path: &str, rate: u32, samples: &[i16]) {
    let bytes = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + bytes as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + bytes).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&bytes.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("{path}: {e}"));
}

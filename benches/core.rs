// SPDX-License-Identifier: MPL-2.0
//! CPU cost of the real-time paths, each per 10 ms of audio (the budget: one 10 ms chunk is
//! produced every 10 ms, so a measurement of 100 us takes 1 % of one core per stream).
//!
//! * `conceal`: [`Concealer::conceal`] of 10 ms, either the first call of a loss (it snapshots
//!   the history and runs the pitch search; before each one, `real()` is given 50 ms of a voiced
//!   signal so the search has something to find and the loss state is over) or the second call
//!   of a loss (10..20 ms into it: substitution only).
//! * `real`: [`Concealer::real`] of 10 ms in the steady state (no loss before, so no merge).
//! * `playout`: one 10 ms tick of [`Playout`] at 48 kHz stereo: push what arrived by the next
//!   deadline (one datagram in the steady state) and pop one chunk; clean, and with 10 % loss and
//!   20 ms of jitter from an [`Impairment`] schedule (concealment included).
//!
//! * `opus`: the Opus decoder behind RTP input, per 10 ms at 48 kHz mono: decoding (half of a
//!   20 ms packet) and codec PLC of 10 ms, at decoder complexity 0 (classic PLC), 5 (neural deep
//!   PLC) and 10 (deep PLC plus OSCE speech enhancement, the default).
//!
//! * `cut`: adaptive mode's cut in a quiet stretch ([`QuietSplicer::offer`]) at 48 kHz stereo:
//!   judging 15 ms of a pause and cutting 10 ms out of it, or judging 15 ms of speech-level audio
//!   and passing it whole (what every chunk costs while the delay is above the target).
//!
//! Quick on purpose (`cargo bench --bench core` runs in about a minute); `scripts/bench.sh`
//! runs it and prints each median as a share of the 10 ms budget.

use std::hint::black_box;
use std::iter::Peekable;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use gstnetaudio::conceal::Concealer;
use gstnetaudio::drift::QuietSplicer;
use gstnetaudio::impair::{Impairment, Schedule};
use gstnetaudio::jitter::{Chunk, Playout};

const MS: u64 = 1_000_000;

/// The (rate, channels) pairs the concealer is measured at, with their labels.
const FORMATS: [(u32, usize, &str); 3] = [
    (8_000, 1, "8 kHz mono"),
    (48_000, 1, "48 kHz mono"),
    (48_000, 2, "48 kHz stereo"),
];

/// A voiced, vowel-like test signal: 20 harmonics of 125 Hz falling off as 1/k, slightly
/// different per channel. One second of it loops seamlessly (125 whole periods).
struct Voice {
    channels: usize,
    /// One second, interleaved.
    samples: Vec<f32>,
    /// Next frame to hand out.
    pos: usize,
}

impl Voice {
    fn new(rate: u32, channels: usize) -> Self {
        let f0 = 125.0;
        let mut samples = Vec::with_capacity(rate as usize * channels);
        for n in 0..rate as usize {
            let t = n as f64 / f64::from(rate);
            for ch in 0..channels {
                let v: f64 = (1..=20)
                    .map(|k| {
                        let k = f64::from(k);
                        let phase = 0.7 * k * (ch + 1) as f64;
                        (2.0 * std::f64::consts::PI * k * f0 * t + phase).sin() / k
                    })
                    .sum();
                samples.push((0.2 * v) as f32);
            }
        }
        Self {
            channels,
            samples,
            pos: 0,
        }
    }

    fn frames(&self) -> usize {
        self.samples.len() / self.channels
    }

    /// The next `frames` frames of the signal into `out`.
    fn fill(&mut self, frames: usize, out: &mut Vec<f32>) {
        out.clear();
        for _ in 0..frames {
            let i = self.pos * self.channels;
            out.extend_from_slice(&self.samples[i..i + self.channels]);
            self.pos = (self.pos + 1) % self.frames();
        }
    }
}

fn frames_10ms(rate: u32) -> usize {
    rate as usize / 100
}

/// Times `conceal()` of 10 ms, call number `nth` (1-based) of a loss that follows 50 ms of real
/// audio; only that call is timed.
fn bench_conceal(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rate: u32,
    channels: usize,
    nth: usize,
    name: &str,
) {
    let frames = frames_10ms(rate);
    let mut concealer = Concealer::new(rate, channels);
    let mut voice = Voice::new(rate, channels);
    let mut real = Vec::new();
    let mut out = vec![0.0; frames * channels];
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Ends the previous loss (merge) and leaves 50 ms of voice in the history.
                voice.fill(5 * frames, &mut real);
                concealer.real(&mut real);
                for _ in 1..nth {
                    concealer.conceal(&mut out);
                }
                let start = Instant::now();
                concealer.conceal(black_box(&mut out));
                total += start.elapsed();
                black_box(&out);
            }
            total
        })
    });
}

fn conceal(c: &mut Criterion) {
    let mut g = c.benchmark_group("conceal");
    for (rate, channels, label) in FORMATS {
        let first = format!("{label}, first 10 ms of a loss (with pitch search)");
        bench_conceal(&mut g, rate, channels, 1, &first);
        let next = format!("{label}, next 10 ms of a loss (10-20 ms into it)");
        bench_conceal(&mut g, rate, channels, 2, &next);
    }
    g.finish();
}

fn real(c: &mut Criterion) {
    let mut g = c.benchmark_group("real");
    for (rate, channels, label) in FORMATS {
        let mut concealer = Concealer::new(rate, channels);
        let mut voice = Voice::new(rate, channels);
        let mut buf = Vec::new();
        // Fill the history first: the measured calls are neither a stream start nor a merge.
        voice.fill(10 * frames_10ms(rate), &mut buf);
        concealer.real(&mut buf);
        voice.fill(frames_10ms(rate), &mut buf);
        g.bench_function(
            format!("{label}, 10 ms of received audio (steady, no merge)"),
            |b| b.iter(|| concealer.real(black_box(&mut buf))),
        );
    }
    g.finish();
}

/// A [`Playout`] fed by a [`Schedule`] on a simulated clock, one 10 ms output chunk per tick.
struct Sim {
    playout: Playout,
    schedule: Peekable<Schedule>,
    /// One second of 10 ms datagrams of voice; datagram `i` carries `datagrams[i % 100]`.
    datagrams: Vec<Vec<f32>>,
    out: Vec<f32>,
}

impl Sim {
    fn new(rate: u32, channels: usize, latency_ms: u64, imp: Impairment) -> Self {
        let mut voice = Voice::new(rate, channels);
        let datagrams = (0..100)
            .map(|_| {
                let mut d = Vec::new();
                voice.fill(frames_10ms(rate), &mut d);
                d
            })
            .collect();
        Self {
            playout: Playout::new(rate, channels, latency_ms * MS),
            schedule: Schedule::new(imp, 10 * MS).peekable(),
            datagrams,
            out: Vec::new(),
        }
    }

    /// Pushes every datagram that arrives by the next deadline, then pops the chunk due then.
    fn tick(&mut self) -> Chunk {
        while let Some(d) = self.schedule.peek()
            && self
                .playout
                .next_deadline()
                .is_none_or(|deadline| d.arrive_ns <= deadline)
        {
            let data = &self.datagrams[(d.index % 100) as usize];
            self.playout.push(d.arrive_ns, data);
            self.schedule.next();
        }
        self.playout.pop(&mut self.out)
    }
}

fn playout(c: &mut Criterion) {
    let cases = [
        (
            "48 kHz stereo, push 10 ms + pop 10 ms, no loss or jitter",
            Impairment::default(),
        ),
        (
            "48 kHz stereo, 10 ms tick with 10 % loss + 20 ms jitter",
            Impairment {
                loss: 0.1,
                jitter_ns: 20 * MS,
                skew_ppm: 0.0,
                seed: 5,
            },
        ),
    ];
    let mut g = c.benchmark_group("playout");
    for (name, imp) in cases {
        let mut sim = Sim::new(48_000, 2, 40, imp);
        // Past the start (the first chunks wait for the latency): the steady state.
        for _ in 0..1000 {
            sim.tick();
        }
        g.bench_function(name, |b| b.iter(|| black_box(sim.tick())));
    }
    g.finish();
}

fn opus(c: &mut Criterion) {
    use gstnetaudio::codec::{Encoding, PayloadDecoder};
    // 2 s of the voice, encoded as 20 ms SILK/hybrid packets (as a VoIP sender would).
    let mut voice = Voice::new(48_000, 1);
    let mut pcm = Vec::new();
    let mut enc =
        opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip).expect("encoder");
    enc.set_bitrate(opus::Bitrate::Bits(32000))
        .expect("bitrate");
    let packets: Vec<Vec<u8>> = (0..100)
        .map(|_| {
            voice.fill(960, &mut pcm);
            enc.encode_vec_float(&pcm, 1500).expect("encode")
        })
        .collect();
    let mut g = c.benchmark_group("opus 48 kHz mono");
    for complexity in [0, 5, 10] {
        let mut dec = PayloadDecoder::new(Encoding::Opus, 48000, 1, complexity).expect("decoder");
        let mut out = Vec::with_capacity(5760);
        let mut k = 0;
        g.bench_function(format!("decode 10 ms, complexity {complexity}"), |b| {
            b.iter(|| {
                out.clear();
                dec.decode(&packets[k % packets.len()], &mut out);
                k += 1;
                // One packet is 20 ms: half of it per 10 ms.
                black_box(out.len() / 2)
            })
        });
        g.bench_function(format!("PLC 10 ms, complexity {complexity}"), |b| {
            b.iter(|| {
                // Each loss after real audio (deep PLC works from what it heard).
                out.clear();
                dec.decode(&packets[k % packets.len()], &mut out);
                k += 1;
                out.clear();
                dec.conceal(480, &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn cut(c: &mut Criterion) {
    let (rate, ch) = (48_000u32, 2usize);
    let mut voice = Voice::new(rate, ch);
    let mut loud = Vec::new();
    voice.fill(rate as usize, &mut loud);
    let mut sp = QuietSplicer::new(rate, ch);
    sp.observe(&loud);
    let remove = 480;
    let frames = sp.input_frames(remove);
    let pause: Vec<f32> = loud[..frames * ch].iter().map(|x| x * 0.001).collect();
    let speech = loud[..frames * ch].to_vec();
    let mut out = Vec::with_capacity(frames * ch);
    let mut g = c.benchmark_group("cut 48 kHz stereo");
    for (name, media) in [
        ("pause: cut 10 ms of 15", &pause),
        ("speech: judged, kept", &speech),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                // The loudness stays where the speech put it (a pause of hours would not).
                sp.observe(&loud[..96 * ch]);
                black_box(sp.offer(media, remove, &mut out))
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = conceal, real, playout, opus, cut
}
criterion_main!(benches);

// SPDX-License-Identifier: MPL-2.0
//! Clock drift through the RTP playout itself (decoding, queue, lateness, concealment and the
//! resampler, no GStreamer): a simulated L16 sender whose clock is off by some ppm, a network
//! with loss and jitter, and the output clock popping a chunk at every deadline. The true
//! delay is measured against the sender's real clock, not the loop's own estimate.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::*;
use crate::codec::Encoding;
use crate::jitter::time::NS_PER_MS;

const RATE: u32 = 8000;
const PACKET: i64 = 160;
const SSRC: u32 = 0x00d1_f7ee;
const MS: u64 = NS_PER_MS as u64;
/// Fastest path through the network.
const BASE_NS: u64 = 5 * MS;

/// Deterministic uniform [0, 1).
struct Lcg(u64);

impl Lcg {
    fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub(super) struct Scenario {
    pub skew_ppm: f64,
    pub seconds: u64,
    pub latency_ms: u64,
    pub loss: f64,
    pub jitter_ms: f64,
    pub seed: u64,
    pub mode: DriftMode,
    /// Output chunks kept in the report.
    pub keep_chunks: usize,
    /// From these times (s) on, the jitter is this (ms) instead of `jitter_ms`.
    pub jitter_steps: Vec<(f64, f64)>,
    /// Pareto jitter (shape 2.5, scale a quarter of the cap, capped at the jitter) instead of
    /// uniform.
    pub pareto: bool,
    /// Normal jitter (mean half of it, standard deviation a sixth, clamped to 0..jitter)
    /// instead of uniform.
    pub normal: bool,
    /// Nothing arrives from `.0` s for `.1` s; what was sent meanwhile comes in a burst at the
    /// end, 1 ms apart.
    pub outage: Option<(f64, f64)>,
    /// Keep the delay series and the relative arrival delays in the report.
    pub keep_series: bool,
    /// Talkspurts: the tone plays for `.0` s, then a pause (the tone 52 dB lower) for `.1` s,
    /// over and over (sender's media time); `None`: the tone all along.
    pub talkspurts: Option<(f64, f64)>,
}

#[derive(Debug, Default)]
pub(super) struct Report {
    /// Time from which the true delay stayed within ±5 ms of the target (s).
    pub settled_s: f64,
    /// Largest |true delay − target| after 20 s (ms).
    pub max_err_after_20s_ms: f64,
    /// Largest |loop's measured delay − true delay| after 20 s (ms).
    pub max_loop_vs_true_ms: f64,
    pub max_queued_packets: usize,
    pub max_queued_ms: f64,
    pub late: u64,
    pub lost: u64,
    pub sent_lost: u64,
    pub resyncs: u64,
    pub concealed_frames: u64,
    pub last_skew_ppm: f64,
    /// The delay held: the latency plus the anchoring packet's lateness (ms).
    pub target_ms: f64,
    pub ticks: u64,
    /// The resampler was in the path at the end.
    pub resampling: bool,
    /// Arrival (ns) and index of the packet of the first resync.
    pub first_resync: Option<(u64, i64)>,
    /// The first `keep_chunks` chunks of output.
    pub out: Vec<f32>,
    /// Chunk at which the resampler took over.
    pub engaged_at: Option<u64>,
    /// True delay − target (ms) at 1, 5, 10, 20, 60 s and at the end.
    pub samples: Vec<(u64, f64)>,
    /// With `keep_series`: per chunk (time s, true delay ms, target ms).
    pub series: Vec<(f64, f64, f64)>,
    /// With `keep_series`: arrival minus fastest arrival of every packet (ms), with its send
    /// time (s).
    pub relative: Vec<(f64, f64)>,
    /// The largest second difference of the output.
    pub max_d2: f64,
    /// Media frames cut out of quiet stretches (adaptive mode lowering the delay).
    pub compressed_frames: u64,
    /// Media time (s, sender's timestamps) of the first and last frame judged for each cut.
    pub cuts: Vec<(f64, f64)>,
}

/// Amplitude of the tone loud and in a pause (-52 dB).
const LOUD: f64 = 8000.0;
const PAUSE: f64 = 20.0;

/// Whether media time `t` (s) is in a pause of `talkspurts`.
pub(super) fn in_pause(talkspurts: Option<(f64, f64)>, t: f64) -> bool {
    talkspurts.is_some_and(|(on, off)| t.rem_euclid(on + off) >= on)
}

fn payload(first: i64, talkspurts: Option<(f64, f64)>) -> Vec<u8> {
    (first..first + PACKET)
        .flat_map(|n| {
            let t = n as f64 / f64::from(RATE);
            let amp = if in_pause(talkspurts, t) { PAUSE } else { LOUD };
            let x = (std::f64::consts::TAU * 440.0 * t).sin();
            ((x * amp) as i16).to_be_bytes()
        })
        .collect()
}

/// Runs the scenario; checks the cadence of every chunk on the way.
pub(super) fn run(s: &Scenario) -> Report {
    let dec = PayloadDecoder::new(Encoding::L16, RATE, 1, 10).unwrap();
    let latency = s.latency_ms * MS;
    let mut p = RtpPlayout::new(dec, latency);
    p.set_drift_mode(s.mode);
    let mut rng = Lcg(s.seed);
    let period_ns = PACKET as f64 * 1e9 / f64::from(RATE) / (1.0 + s.skew_ppm * 1e-6);
    // Sender time of media timestamp `ts`, the fastest possible arrival.
    let fast = |ts: f64| ts / PACKET as f64 * period_ns + BASE_NS as f64;
    let mut heap: BinaryHeap<Reverse<(u64, i64)>> = BinaryHeap::new();
    let mut next_k = 0i64;
    let mut rep = Report::default();
    let end_ns = s.seconds * 1_000_000_000;
    let mut buf = Vec::new();
    let mut next_pts: Option<u64> = None;
    let mut settled_at = None;
    let mut sample_at = [1u64, 5, 10, 20, 60].into_iter().peekable();
    let mut now = 0u64;
    let mut prev2 = [0.0f64; 2];
    loop {
        // Everything sent up to 200 ms past now goes into the network.
        while (next_k as f64 * period_ns) < (now + 200 * MS) as f64 {
            let sent = next_k as f64 * period_ns;
            // The first packet starts the stream: it is not lost and comes before the second
            // can (but late by up to 10 ms: the delay held is the latency plus that).
            if next_k > 0 && rng.next_f64() < s.loss {
                rep.sent_lost += 1;
            } else {
                let t = sent / 1e9;
                let mut jitter_ms = s.jitter_ms;
                for &(from, j) in &s.jitter_steps {
                    if t >= from {
                        jitter_ms = j;
                    }
                }
                if next_k == 0 {
                    jitter_ms = jitter_ms.min(10.0);
                }
                let u = rng.next_f64();
                let draw_ms = if s.pareto {
                    (jitter_ms / 4.0 * ((1.0 - u).powf(-1.0 / 2.5) - 1.0)).min(jitter_ms)
                } else if s.normal {
                    let z = (-2.0 * (1.0 - u).ln()).sqrt()
                        * (std::f64::consts::TAU * rng.next_f64()).cos();
                    (jitter_ms / 2.0 + jitter_ms / 6.0 * z).clamp(0.0, jitter_ms)
                } else {
                    u * jitter_ms
                };
                let mut arrival = sent + BASE_NS as f64 + draw_ms * 1e6;
                if let Some((from, len)) = s.outage {
                    let end = (from + len) * 1e9;
                    if arrival >= from * 1e9 && arrival < end {
                        arrival = end + (sent - from * 1e9).max(0.0) / period_ns * 1e6;
                    }
                }
                if s.keep_series {
                    rep.relative
                        .push((t, (arrival - fast(next_k as f64 * PACKET as f64)) / 1e6));
                }
                heap.push(Reverse((arrival as u64, next_k)));
            }
            next_k += 1;
        }
        let deadline = p.next_deadline().unwrap_or(u64::MAX);
        let Some(&Reverse((arrival, k))) = heap.peek() else {
            unreachable!("the sender never stops");
        };
        if arrival <= deadline {
            heap.pop();
            let h = Header {
                seq: k as u16,
                ts: (k * PACKET) as u32,
                ssrc: SSRC,
                pt: 96,
                marker: false,
            };
            let o = p.push(arrival, h, &payload(k * PACKET, s.talkspurts));
            if rep.first_resync.is_none() && matches!(o, RtpPushOutcome::Resynced { .. }) {
                rep.first_resync = Some((arrival, k));
            }
            now = now.max(arrival);
            let q = p.queued_packets();
            rep.max_queued_packets = rep.max_queued_packets.max(q);
            continue;
        }
        if deadline > end_ns {
            break;
        }
        now = deadline;
        // The media position this chunk starts at, on the sender's clock.
        let read = p.media_read_pos();
        let head = p.media_head;
        let compressed = p.drift_stats().compressed_frames;
        let c = p.pop(&mut buf);
        rep.ticks += 1;
        let cut = p.drift_stats().compressed_frames - compressed;
        if cut > 0 {
            // The stretch judged started at the media head and was cut + the cross-fade long.
            let judged = p.drift.cut_input_frames(cut as usize) as f64;
            let ts = p.anchor_ts as f64 + (head - p.anchor_pos) as f64;
            let rate = f64::from(RATE);
            rep.cuts.push((ts / rate, (ts + judged - 1.0) / rate));
        }
        if (rep.ticks as usize) <= s.keep_chunks {
            rep.out.extend_from_slice(&buf);
        }
        if s.keep_series {
            for &x in &buf {
                let d2 = (f64::from(x) - 2.0 * prev2[1] + prev2[0]).abs();
                if rep.ticks > 1 {
                    rep.max_d2 = rep.max_d2.max(d2);
                }
                prev2 = [prev2[1], f64::from(x)];
            }
        }
        if rep.engaged_at.is_none() && p.drift_stats().resampling {
            rep.engaged_at = Some(rep.ticks - 1);
        }
        assert_eq!(c.frames, 80, "chunk {}", rep.ticks);
        assert_eq!(buf.len(), 80);
        if let Some(n) = next_pts {
            assert_eq!(c.pts, n, "contiguous pts at chunk {}", rep.ticks);
        }
        next_pts = Some(c.pts + c.duration);
        rep.max_queued_ms = rep
            .max_queued_ms
            .max(p.queued_frames() as f64 * 1000.0 / f64::from(RATE));
        if p.played_seq.is_none() {
            continue;
        }
        let ts = p.anchor_ts as f64 + (read - p.anchor_pos as f64);
        let target_ms = p.drift_stats().target_delay_ns / 1e6;
        rep.target_ms = target_ms;
        let err_ms = (deadline as f64 - fast(ts)) / 1e6 - target_ms;
        let t = deadline - p.origin.unwrap_or(0) as u64;
        if s.keep_series {
            rep.series
                .push((deadline as f64 / 1e9, err_ms + target_ms, target_ms));
        }
        if let Some(&at) = sample_at.peek()
            && t >= at * 1_000_000_000
        {
            rep.samples.push((at, err_ms));
            sample_at.next();
        }
        if err_ms.abs() > 5.0 {
            settled_at = None;
        } else if settled_at.is_none() {
            settled_at = Some(t);
        }
        if t >= 20_000_000_000 {
            rep.max_err_after_20s_ms = rep.max_err_after_20s_ms.max(err_ms.abs());
            let loop_ms = p.drift_stats().measured_delay_ns / 1e6 - target_ms;
            rep.max_loop_vs_true_ms = rep.max_loop_vs_true_ms.max((loop_ms - err_ms).abs());
        }
    }
    rep.settled_s = settled_at.map_or(f64::INFINITY, |t| t as f64 / 1e9);
    let st = p.stats();
    rep.samples.push((s.seconds, {
        let read = p.media_read_pos();
        let ts = p.anchor_ts as f64 + (read - p.anchor_pos as f64);
        (p.next_deadline().unwrap() as f64 - fast(ts)) / 1e6 - rep.target_ms
    }));
    rep.late = st.late;
    rep.lost = st.lost;
    rep.resyncs = st.resyncs;
    rep.concealed_frames = st.concealed_frames;
    rep.last_skew_ppm = p.drift_stats().skew_ppm.unwrap_or(f64::NAN);
    rep.resampling = p.drift_stats().resampling;
    rep.compressed_frames = p.drift_stats().compressed_frames;
    let l = p.ledger();
    assert_eq!(l.unaccounted(), 0, "{l:?}");
    rep
}

/// The checks every fixed-mode scenario must pass.
#[track_caller]
fn check(s: &Scenario, r: &Report) {
    eprintln!(
        "{:+} ppm {} s: target {:.1} ms, settled {:.2} s, max |err| after 20 s {:.2} ms, loop vs true {:.2} ms, \
         queue {} packets / {:.1} ms, late {}, lost {} (sent lost {}), resyncs {}, skew est \
         {:.1} ppm, samples {:?}",
        s.skew_ppm,
        s.seconds,
        r.target_ms,
        r.settled_s,
        r.max_err_after_20s_ms,
        r.max_loop_vs_true_ms,
        r.max_queued_packets,
        r.max_queued_ms,
        r.late,
        r.lost,
        r.sent_lost,
        r.resyncs,
        r.last_skew_ppm,
        r.samples
    );
    let latency = s.latency_ms as f64;
    assert!(
        (latency..=latency + 10.0).contains(&r.target_ms),
        "{}",
        r.target_ms
    );
    assert!(r.settled_s <= 20.0, "settled at {} s", r.settled_s);
    assert!(r.max_err_after_20s_ms <= 5.0, "{}", r.max_err_after_20s_ms);
    assert_eq!(r.resyncs, 0, "first at {:?}", r.first_resync);
    assert_eq!(
        r.late, 0,
        "no underrun: nothing arrived after it was needed"
    );
    // Concealment only where packets were really lost (the last ones may still be in flight).
    assert!(r.lost <= r.sent_lost && r.lost + 10 >= r.sent_lost, "{r:?}");
    assert!(r.concealed_frames <= r.lost * PACKET as u64, "{r:?}");
    // The queue never holds more than the target delay, the jitter and a packet, plus the
    // pull-in excursion of a large skew (up to ~40 ms at 2.5 %).
    let pull_in_ms = if s.skew_ppm.abs() > 5000.0 { 40.0 } else { 5.0 };
    let bound_ms = r.target_ms + s.jitter_ms + 20.0 + pull_in_ms;
    assert!(
        r.max_queued_ms <= bound_ms,
        "{} > {bound_ms}",
        r.max_queued_ms
    );
    assert!(
        (r.last_skew_ppm - s.skew_ppm).abs() < 50.0,
        "{}",
        r.last_skew_ppm
    );
}

pub(super) fn scenario(skew_ppm: f64, seconds: u64, seed: u64) -> Scenario {
    Scenario {
        skew_ppm,
        seconds,
        latency_ms: 60,
        loss: 0.05,
        jitter_ms: 30.0,
        seed,
        mode: DriftMode::Fixed,
        keep_chunks: 0,
        jitter_steps: Vec::new(),
        pareto: false,
        normal: false,
        outage: None,
        talkspurts: None,
        keep_series: false,
    }
}

const DAY: u64 = 24 * 3600;

// 24 hours of simulated time each (8.64 M chunks, ~1–5 min of wall time with the optimised
// dev profile): one test per skew so they run in parallel.

#[test]
fn plus_100_ppm_for_24_hours() {
    let s = scenario(100.0, DAY, 11);
    check(&s, &run(&s));
}

#[test]
fn minus_100_ppm_for_24_hours() {
    let s = scenario(-100.0, DAY, 12);
    check(&s, &run(&s));
}

#[test]
fn plus_1000_ppm_for_24_hours() {
    let s = scenario(1000.0, DAY, 13);
    check(&s, &run(&s));
}

#[test]
fn minus_1000_ppm_for_24_hours() {
    let s = scenario(-1000.0, DAY, 14);
    check(&s, &run(&s));
}

#[test]
fn plus_minus_two_and_a_half_percent_for_10_minutes() {
    // The pull-in swings the delay by up to ~40 ms in the first 10 s (see docs/drift.md), so
    // the latency has room for that on top of the 30 ms jitter: nothing runs dry or late.
    for (ppm, seed) in [(25_000.0, 21), (-25_000.0, 22)] {
        let mut s = scenario(ppm, 600, seed);
        s.latency_ms = 100;
        check(&s, &run(&s));
    }
}

#[test]
fn without_compensation_the_queue_drifts() {
    // The same +1000 ppm sender with mode off: the delay shrinks by 1 ms/s (the queue fills
    // with audio that plays later and later) until the buffer resyncs.
    let mut s = scenario(1000.0, 300, 3);
    s.mode = DriftMode::Off;
    let r = run(&s);
    eprintln!("off: {r:?}");
    assert!(r.resyncs > 0, "{r:?}");
    assert!(r.max_err_after_20s_ms > 30.0, "{r:?}");
}

#[test]
fn the_resampler_takes_over_and_corrects_without_a_click() {
    // A clean 440 Hz tone from a sender 1000 ppm fast: bypassed at first, then resampled at a
    // changing ratio. Neither the switch nor the ramps may bend the waveform: its second
    // difference never exceeds the sine's (plus the 16-bit rounding).
    let mut s = scenario(1000.0, 20, 8);
    s.loss = 0.0;
    s.jitter_ms = 0.0;
    s.keep_chunks = 2000;
    let r = run(&s);
    let at = r.engaged_at.expect("the resampler took over") as usize;
    // (Within a few chunks: 40 µs of delay error is already 20 ppm of proportional term.)
    assert!((1..200).contains(&at), "engaged at chunk {at}");
    let amp = 8000.0 / 32768.0;
    let w = std::f64::consts::TAU * 440.0 * 1.002 / f64::from(RATE);
    let bound = amp * w * w * 1.02 + 4.0 / 32768.0;
    let worst = r
        .out
        .windows(3)
        .map(|x| (f64::from(x[2]) - 2.0 * f64::from(x[1]) + f64::from(x[0])).abs())
        .fold(0.0, f64::max);
    assert!(worst <= bound, "{worst} > {bound}");
    // And the level holds across the switch (no dip from a misaligned history).
    let peak = |c: usize| {
        r.out[c.saturating_sub(5) * 80..(c + 5) * 80]
            .iter()
            .fold(0.0f32, |m, x| m.max(x.abs()))
    };
    assert!(
        (peak(at) - amp as f32).abs() < 0.01 * amp as f32,
        "{}",
        peak(at)
    );
    assert!(r.max_err_after_20s_ms <= 5.0, "{}", r.max_err_after_20s_ms);
    assert_eq!(r.resyncs + r.late + r.lost, 0);
}

#[test]
fn skew_free_input_is_not_resampled() {
    // No skew, no jitter: the loop never corrects, the media is copied through.
    let mut s = scenario(0.0, 120, 4);
    s.jitter_ms = 0.0;
    s.loss = 0.0;
    let r = run(&s);
    assert!(!r.resampling, "{r:?}");
    assert!(r.max_err_after_20s_ms < 0.1, "{r:?}");
    assert_eq!(r.late + r.lost + r.resyncs, 0);
}

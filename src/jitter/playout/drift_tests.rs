// SPDX-License-Identifier: MPL-2.0
//! Clock drift through the raw playout itself (placement, queue, lateness, concealment and the
//! resampler, no GStreamer): a simulated sender of raw 10 ms datagrams whose clock is off by
//! some ppm, a network with loss and order-keeping jitter, and the output clock popping a
//! chunk at every deadline. The true delay is measured against the sender's real clock: the
//! time at which the media now being read was sent, which is when it would have arrived on
//! the fastest path.

use super::*;
use crate::impair::{Impairment, Schedule};

const RATE: u32 = 8000;
const FRAMES: usize = 80;
const MS: u64 = NS_PER_MS as u64;

struct Scenario {
    skew_ppm: f64,
    seconds: u64,
    latency_ms: u64,
    loss: f64,
    jitter_ms: u64,
    mode: DriftMode,
    seed: u64,
}

impl Scenario {
    fn new(skew_ppm: f64, seconds: u64) -> Self {
        Self {
            skew_ppm,
            seconds,
            latency_ms: 40,
            loss: 0.05,
            jitter_ms: 5,
            mode: DriftMode::Fixed,
            seed: 11,
        }
    }
}

#[derive(Debug, Default)]
struct Report {
    /// Largest |true delay − delay held| after 20 s (ms).
    max_err_after_20s_ms: f64,
    /// Largest |loop's measured delay − delay held| after 20 s (ms).
    max_loop_err_after_20s_ms: f64,
    /// The delay held (the loop's target, ms) and the true delay at the end (ms).
    held_ms: f64,
    end_delay_ms: f64,
    /// True delay − held (ms) at 1, 5, 10, 20, 60 s and at the end.
    samples: Vec<(u64, f64)>,
    skew_ppm: f64,
    resampling: bool,
    max_queued_ms: f64,
    stats: Stats,
    ledger: Ledger,
}

/// Runs the scenario; checks the cadence of every chunk on the way.
fn run(s: &Scenario) -> Report {
    let mut p = Playout::new(RATE, 1, s.latency_ms * MS);
    p.set_drift_mode(s.mode);
    let imp = Impairment {
        loss: s.loss,
        jitter_ns: s.jitter_ms * MS,
        skew_ppm: s.skew_ppm,
        seed: s.seed,
    };
    let mut sched = Schedule::new(imp, 10 * MS);
    let data = vec![0.25f32; FRAMES];
    let mut buf = Vec::new();
    let mut rep = Report::default();
    let mut next_pts: Option<u64> = None;
    let mut sample_at = [1u64, 5, 10, 20, 60].into_iter().peekable();
    let end = s.seconds * 1_000_000_000;
    // Sender time (receiver ns) of media frame `pos`: frame 0 is datagram 0's first frame.
    let sent_ns = |pos: f64| pos * 1e9 / f64::from(RATE) / (1.0 + s.skew_ppm * 1e-6);
    let mut pending = sched.next();
    loop {
        let deadline = p.next_deadline();
        match (pending, deadline) {
            (Some(d), dl) if dl.is_none_or(|dl| d.arrive_ns <= dl) => {
                p.push(d.arrive_ns, &data);
                pending = sched.next();
            }
            (_, Some(dl)) if dl < end => {
                let read = p.media_read_pos();
                let c = p.pop(&mut buf);
                assert_eq!(c.frames, FRAMES);
                if let Some(pts) = next_pts {
                    assert_eq!(c.pts, pts, "contiguous");
                }
                next_pts = Some(c.pts + c.duration);
                let t = dl as f64 / 1e9;
                let true_ms = (dl as f64 - sent_ns(read)) / 1e6;
                let d = p.drift_stats();
                let held_ms = d.target_delay_ns / 1e6;
                let err = true_ms - held_ms;
                rep.held_ms = held_ms;
                rep.end_delay_ms = true_ms;
                if t > 20.0 {
                    rep.max_err_after_20s_ms = rep.max_err_after_20s_ms.max(err.abs());
                    let loop_err = (d.measured_delay_ns - d.target_delay_ns).abs() / 1e6;
                    rep.max_loop_err_after_20s_ms = rep.max_loop_err_after_20s_ms.max(loop_err);
                }
                if sample_at.peek().is_some_and(|&at| t >= at as f64) {
                    rep.samples.push((sample_at.next().unwrap_or(0), err));
                }
                let queued = p.queued_frames() as f64 * 1e3 / f64::from(RATE);
                rep.max_queued_ms = rep.max_queued_ms.max(queued);
            }
            _ => break,
        }
    }
    rep.samples
        .push((s.seconds, rep.end_delay_ms - rep.held_ms));
    let d = p.drift_stats();
    rep.skew_ppm = d.skew_ppm.unwrap_or(0.0);
    rep.resampling = d.resampling;
    rep.stats = p.stats().clone();
    rep.ledger = p.ledger();
    eprintln!(
        "{:+} ppm, {} s, {} % loss, {} ms jitter, {:?}: held {:.1} ms, error {:?}, \
         max |error| after 20 s {:.2} ms (loop {:.2} ms), skew {:.1} ppm, max queued {:.0} ms, \
         late {}, resyncs {}, skipped {} ms, trimmed {} / added {} ms, lost {} (sent {}), \
         taken back {}, moved {}",
        s.skew_ppm,
        s.seconds,
        s.loss * 100.0,
        s.jitter_ms,
        s.mode,
        rep.held_ms,
        rep.samples
            .iter()
            .map(|(t, e)| format!("{t}s {e:+.1}"))
            .collect::<Vec<_>>(),
        rep.max_err_after_20s_ms,
        rep.max_loop_err_after_20s_ms,
        rep.skew_ppm,
        rep.max_queued_ms,
        rep.stats.late,
        rep.stats.resyncs,
        rep.stats.overflow_skipped_frames / 8,
        rep.stats.delay_trimmed_frames / 8,
        rep.stats.delay_added_frames / 8,
        rep.stats.lost,
        sched.lost(),
        rep.stats.gaps_taken_back,
        rep.stats.gaps_moved,
    );
    assert_eq!(rep.ledger.unaccounted(), 0);
    rep
}

fn assert_held(r: &Report, skew_ppm: f64) {
    assert!(r.max_err_after_20s_ms < 5.0, "{r:?}");
    assert!((r.skew_ppm - skew_ppm).abs() < 50.0, "{r:?}");
    assert_eq!(r.stats.resyncs, 0, "{r:?}");
    assert_eq!(r.stats.overflow_skipped_frames, 0, "{r:?}");
    assert_eq!(r.stats.late, 0, "{r:?}");
    // The delay held is the latency plus the first datagram's lateness (at most the jitter).
    assert!(r.held_ms >= 40.0 && r.held_ms <= 46.0, "{r:?}");
    assert!(r.max_queued_ms < 40.0 + 16.0 + 10.0, "{r:?}");
}

#[test]
fn plus_1000_ppm_for_an_hour() {
    let r = run(&Scenario::new(1000.0, 3600));
    assert_held(&r, 1000.0);
    assert!(r.resampling);
}

#[test]
fn minus_1000_ppm_for_an_hour() {
    let r = run(&Scenario::new(-1000.0, 3600));
    assert_held(&r, -1000.0);
}

#[test]
fn plus_and_minus_100_ppm_for_10_minutes() {
    for skew in [100.0, -100.0] {
        let r = run(&Scenario::new(skew, 600));
        assert_held(&r, skew);
    }
}

#[test]
fn plus_minus_two_and_a_half_percent_for_10_minutes() {
    // Without loss: raw datagrams carry no sequence number, so at 2.5 % a lost datagram is
    // only seen once the skew is known, and the skew is measured on the placed positions;
    // losses hidden while it is learned bias it (see the README's limits).
    let fast = run(&Scenario {
        latency_ms: 100,
        loss: 0.0,
        ..Scenario::new(25_000.0, 600)
    });
    // Pulled in within 20 s, then held; no resync, nothing skipped, nothing late.
    assert!(fast.max_err_after_20s_ms < 5.0, "{fast:?}");
    assert!((fast.skew_ppm - 25_000.0).abs() < 100.0, "{fast:?}");
    assert_eq!(fast.stats.resyncs, 0, "{fast:?}");
    assert_eq!(fast.stats.overflow_skipped_frames, 0, "{fast:?}");
    assert_eq!(fast.stats.late, 0, "{fast:?}");
    assert_eq!(fast.stats.lost, 0, "{fast:?}");
    // 2.5 % slow: each datagram comes a quarter of a millisecond later than the last, which
    // the placement takes for a loss every few hundred ms, and the line through positions
    // with those gaps in them never shows the skew (the loop learns about -500 ppm; 1470 gaps
    // in 10 min). The output never runs dry (what is missing is concealed), nothing is late,
    // nothing resyncs.
    let slow = run(&Scenario {
        latency_ms: 100,
        loss: 0.0,
        ..Scenario::new(-25_000.0, 600)
    });
    assert_eq!(slow.stats.resyncs, 0, "{slow:?}");
    assert_eq!(slow.stats.overflow_skipped_frames, 0, "{slow:?}");
    assert_eq!(slow.stats.late, 0, "{slow:?}");
    assert!(slow.max_loop_err_after_20s_ms < 10.0, "{slow:?}");
}

#[test]
fn jitter_larger_than_a_datagram_holds_the_loop() {
    // 30 ms of order-keeping jitter on 10 ms datagrams hides losses (the placement moves gaps
    // after the fact), so the true delay is not defined datagram by datagram; the loop's own
    // delay (the fastest recent datagram's wait) stays within a datagram and a half of its
    // target, nothing resyncs or is skipped, and at most 1 % of the datagrams are late.
    for skew in [1000.0, -1000.0] {
        let r = run(&Scenario {
            jitter_ms: 30,
            latency_ms: 60,
            ..Scenario::new(skew, 600)
        });
        assert!(r.max_loop_err_after_20s_ms < 15.0, "{r:?}");
        assert_eq!(r.stats.resyncs, 0, "{r:?}");
        assert_eq!(r.stats.overflow_skipped_frames, 0, "{r:?}");
        assert!(r.stats.late < 60, "{r:?}");
        // (The skew the line through the placed positions gives is off by hundreds of ppm
        // here, the misplaced gaps tilt it: it only feeds the stats below 3000 ppm.)
    }
}

#[test]
fn skew_free_input_is_not_resampled() {
    // Without skew or jitter the loop never corrects: the output is the input, bit-exact.
    let r = run(&Scenario {
        jitter_ms: 0,
        ..Scenario::new(0.0, 120)
    });
    assert!(!r.resampling, "{r:?}");
    assert!(r.max_err_after_20s_ms < 1.0, "{r:?}");
}

#[test]
fn mode_off_drifts_until_the_queue_is_cut_or_runs_dry() {
    // The control: the same senders without compensation. A fast one fills the queue until
    // the overflow policy skips audio; a slow one runs dry until its data is late and the
    // stream resyncs.
    let fast = run(&Scenario {
        mode: DriftMode::Off,
        loss: 0.0,
        ..Scenario::new(1000.0, 300)
    });
    assert!(fast.stats.overflow_skipped_frames > 0, "{fast:?}");
    let slow = run(&Scenario {
        mode: DriftMode::Off,
        loss: 0.0,
        ..Scenario::new(-1000.0, 300)
    });
    assert!(slow.stats.resyncs > 0, "{slow:?}");
    // With compensation neither happens.
    for skew in [1000.0, -1000.0] {
        let r = run(&Scenario {
            loss: 0.0,
            ..Scenario::new(skew, 300)
        });
        assert_eq!(
            (r.stats.overflow_skipped_frames, r.stats.resyncs),
            (0, 0),
            "{r:?}"
        );
    }
}

/// Raw datagrams of a sender off by `skew_ppm`, with order-keeping uniform jitter of
/// `jitter_ms(t)` (t: send time, s) and 1 % loss (and an outage from `.0` s for `.1` s whose
/// datagrams then come in a burst), through the playout in `mode`; returns (t, target ms,
/// loop's measured ms) once a second, with the stats at the end.
fn run_trace(
    mode: DriftMode,
    skew_ppm: f64,
    seconds: u64,
    jitter_ms: impl Fn(f64) -> f64,
    outage: Option<(f64, f64)>,
) -> (Vec<(f64, f64, f64)>, Stats, DriftStats) {
    let mut p = Playout::new(RATE, 1, 40 * MS);
    p.set_drift_mode(mode);
    p.set_latency_range(10 * MS, 300 * MS);
    // Reset so the range applies to this stream from its start.
    p.reset();
    let mut rng = crate::impair::Rng::new(17);
    let period = 10e6 / (1.0 + skew_ppm * 1e-6);
    let mut last = 0u64;
    let mut arrivals = Vec::new();
    for i in 0..seconds * 100 {
        let sent = i as f64 * period;
        let t = sent / 1e9;
        let lost = rng.next_f64() < 0.01 && i > 0;
        let delay = rng.next_f64() * jitter_ms(t) * 1e6;
        if lost {
            continue;
        }
        let mut at = (sent + delay) as u64;
        if let Some((from, len)) = outage
            && t >= from
            && t < from + len
        {
            // Held in the network, released in a burst at the end, 1 ms apart.
            at = ((from + len) * 1e9) as u64 + (i as f64 * 1e6 - from * 1e11) as u64 / 100;
        }
        at = at.max(last);
        last = at;
        arrivals.push(at);
    }
    let data = vec![0.25f32; FRAMES];
    let mut buf = Vec::new();
    let mut trace = Vec::new();
    let mut next = arrivals.into_iter().peekable();
    let end = seconds * 1_000_000_000;
    let mut next_pts: Option<u64> = None;
    loop {
        let deadline = p.next_deadline();
        match (next.peek().copied(), deadline) {
            (Some(a), dl) if dl.is_none_or(|dl| a <= dl) => {
                p.push(a, &data);
                next.next();
            }
            (_, Some(dl)) if dl < end => {
                let c = p.pop(&mut buf);
                if let Some(pts) = next_pts {
                    assert_eq!(c.pts, pts, "contiguous");
                }
                next_pts = Some(c.pts + c.duration);
                if c.offset.is_multiple_of(8000) {
                    let d = p.drift_stats();
                    trace.push((
                        dl as f64 / 1e9,
                        d.target_delay_ns / 1e6,
                        d.measured_delay_ns / 1e6,
                    ));
                }
            }
            _ => break,
        }
    }
    assert_eq!(p.ledger().unaccounted(), 0);
    (trace, p.stats().clone(), p.drift_stats())
}

#[test]
fn adaptive_mode_holds_the_latency_on_raw_input() {
    // Raw datagrams have no timestamps to measure lateness against (see
    // `Playout::set_drift_mode`): adaptive mode plays exactly as fixed mode, through a jitter
    // jump from 5 to 60 ms and back.
    let jitter = |t: f64| if (20.0..40.0).contains(&t) { 60.0 } else { 5.0 };
    let (fixed, fs, _) = run_trace(DriftMode::Fixed, 300.0, 60, jitter, None);
    let (adaptive, s, d) = run_trace(DriftMode::Adaptive, 300.0, 60, jitter, None);
    // (60 ms of jitter against a latency of 40 ms: fixed mode resyncs when a run of
    // datagrams comes too late, and adaptive does exactly the same.)
    assert_eq!(fixed, adaptive);
    assert_eq!(fs, s);
    eprintln!("{s:?} {d:?}");
}

#[test]
fn after_an_outage_and_its_burst_the_delay_is_back_within_2_s() {
    // +1000 ppm, 10 ms jitter; nothing arrives from 20 s for 1 s, then the held datagrams come
    // 1 ms apart. The burst cannot play in its slots (its slots passed: late, or the
    // placement takes the outage as a loss); within 2 s after it the delay is on target again.
    for mode in [DriftMode::Fixed, DriftMode::Adaptive] {
        let (trace, s, _) = run_trace(mode, 1000.0, 40, |_| 10.0, Some((20.0, 1.0)));
        let worst_after = trace
            .iter()
            .filter(|x| x.0 >= 23.0)
            .map(|x| (x.2 - x.1).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{mode:?}: max |measured - target| from 2 s after the burst {worst_after:.2} ms; {s:?}"
        );
        assert!(worst_after < 5.0, "{mode:?}: {worst_after}");
        assert_eq!(s.resyncs, 0, "{mode:?}: {s:?}");
    }
}

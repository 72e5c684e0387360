// SPDX-License-Identifier: MPL-2.0
//! How well [`Playout`] places datagrams on the sender's timeline against a simulated network
//! (an [`Impairment`] schedule): 10 minutes of 10 ms datagrams at 8 kHz mono per condition.
//! Prints a table of numbers; asserts nothing (the pass/fail versions are the `simulation` unit
//! tests in `src/jitter/playout.rs`).
//!
//!   cargo bench --bench placement [-- --seconds 600]
//!
//! Each datagram carries its own index in every sample, so the output tells which datagram each
//! 10 ms slot played. Columns:
//! * `right %`: of the transitions between two slots that played received audio (with only
//!   concealed slots between them), the share where the second played exactly the datagram that
//!   follows the first by the slot count: the timeline held. `wrong` counts the others.
//! * `lost true/inferred`: datagrams the schedule dropped / the playout's `lost` count.
//! * `concealed`: slots not played from received audio; `needless` of them had their datagram
//!   delivered (it was late, or the timeline was off).
//! * `late`, `resyncs`, `moved`, `taken back`, `trimmed ms`: the playout's counters.
//! * `wait ms`: arrival-to-playout time of the datagrams, min..max, after the first second.

use gstnetaudio::impair::{Impairment, Schedule};
use gstnetaudio::jitter::{Playout, Stats};

const MS: u64 = 1_000_000;
const RATE: u32 = 8_000;
const FRAMES: usize = 80;
/// Indices are coded modulo this in the samples.
const CODE_MOD: u64 = 1000;

/// One condition's measured outcome.
struct Outcome {
    slots: u64,
    /// Slots played wholly from received audio.
    real: u64,
    right: u64,
    wrong: u64,
    true_lost: u64,
    stats: Stats,
    min_wait_ms: f64,
    max_wait_ms: f64,
}

impl Outcome {
    fn right_percent(&self) -> f64 {
        100.0 * self.right as f64 / (self.right + self.wrong).max(1) as f64
    }

    fn concealed(&self) -> u64 {
        self.slots - self.real
    }

    /// Concealed slots beyond the datagrams really lost.
    fn needless(&self) -> u64 {
        self.concealed().saturating_sub(self.true_lost)
    }
}

/// The sample value that codes datagram `index`.
fn code(index: u64) -> f32 {
    (index % CODE_MOD + 1) as f32 / CODE_MOD as f32
}

/// The datagram index (modulo [`CODE_MOD`]) coded in `sample`.
fn decode(sample: f32) -> u64 {
    ((sample * CODE_MOD as f32).round() as u64).saturating_sub(1)
}

fn simulate(imp: Impairment, latency_ms: u64, seconds: u64) -> Outcome {
    let n = seconds * 100;
    let mut playout = Playout::new(RATE, 1, latency_ms * MS);
    let mut schedule = Schedule::new(imp, 10 * MS);
    let mut out = Vec::new();
    let mut o = Outcome {
        slots: 0,
        real: 0,
        right: 0,
        wrong: 0,
        true_lost: 0,
        stats: Stats::default(),
        min_wait_ms: f64::INFINITY,
        max_wait_ms: f64::NEG_INFINITY,
    };
    let mut delivered = 0;
    // The datagram played by the last real slot, and the concealed slots since.
    let mut last_real: Option<(u64, u64)> = None;
    for d in schedule.by_ref() {
        if d.index >= n {
            break;
        }
        // Play every slot due before this arrival.
        while let Some(deadline) = playout.next_deadline()
            && deadline < d.arrive_ns
        {
            let chunk = playout.pop(&mut out);
            o.slots += 1;
            if chunk.real_frames == chunk.frames {
                // The last sample is past any cross-fade of a merge.
                let idx = decode(out[chunk.frames - 1]);
                o.real += 1;
                if let Some((prev, since)) = last_real {
                    if (prev + since + 1) % CODE_MOD == idx {
                        o.right += 1;
                    } else {
                        o.wrong += 1;
                    }
                }
                last_real = Some((idx, 0));
            } else if let Some((_, since)) = last_real.as_mut() {
                *since += 1;
            }
        }
        delivered += 1;
        playout.push(d.arrive_ns, &[code(d.index); FRAMES]);
        if o.slots > 100
            && let Some(w) = playout.stats().last_wait_ns
        {
            let w = w as f64 / MS as f64;
            o.min_wait_ms = o.min_wait_ms.min(w);
            o.max_wait_ms = o.max_wait_ms.max(w);
        }
    }
    o.true_lost = n - delivered;
    o.stats = playout.stats().clone();
    o
}

fn main() {
    // `cargo bench` passes `--bench`; the only option of our own is `--seconds N`.
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse().expect("--seconds takes a whole number"))
        .unwrap_or(600);

    let mut conditions = vec![(0.0, 20, 40)];
    for latency_ms in [40, 60] {
        for jitter_ms in [0, 5, 20, 40] {
            conditions.push((0.1, jitter_ms, latency_ms));
        }
    }

    println!(
        "Placement: {seconds} s of 10 ms datagrams at 8 kHz mono per condition \
         (independent loss, uniform 0..jitter delay keeping the order, seed 5)"
    );
    println!(
        "{:<31} {:>8} {:>7} {:>13} {:>9} {:>9} {:>5} {:>5} {:>7} {:>5} {:>6} {:>7} {:>13}",
        "condition",
        "right %",
        "wrong",
        "lost true/inf",
        "concealed",
        "needless",
        "late",
        "resyn",
        "moved",
        "back",
        "trim",
        "overfl",
        "wait ms"
    );
    for (loss, jitter_ms, latency_ms) in conditions {
        let imp = Impairment {
            loss,
            jitter_ns: jitter_ms * MS,
            skew_ppm: 0.0,
            seed: 5,
        };
        let o = simulate(imp, latency_ms, seconds);
        let s = &o.stats;
        let name = format!(
            "{:>2.0} % loss, {jitter_ms:>2} ms jitter, lat {latency_ms}",
            loss * 100.0
        );
        println!(
            "{:<31} {:>8.2} {:>7} {:>13} {:>9} {:>9} {:>5} {:>5} {:>7} {:>5} {:>6} {:>7} {:>13}",
            name,
            o.right_percent(),
            o.wrong,
            format!("{}/{}", o.true_lost, s.lost),
            o.concealed(),
            o.needless(),
            s.late,
            s.resyncs,
            s.gaps_moved,
            s.gaps_taken_back,
            s.delay_trimmed_frames * 1000 / u64::from(RATE),
            s.overflow_skipped_frames * 1000 / u64::from(RATE),
            format!("{:.1}..{:.1}", o.min_wait_ms, o.max_wait_ms),
        );
    }
    println!(
        "(trim: ms of gaps cut by delay control; overfl: ms skipped by the queue bound; \
         wait: arrival to playout after the first second)"
    );
}

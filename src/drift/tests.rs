// SPDX-License-Identifier: MPL-2.0
//! Scenario tests of the whole drift loop (estimators + controller + queue or resampler) on
//! the simulation in [`super::sim`]. Each test states which consumer it runs: `Analytic`
//! models the queue as a number (cheap, for long runs), `Resampler` runs rubato for real.

use super::resample::Interpolation;
use super::sim::{
    Consumer, Jitter, Mode, Outcome, Scenario, Tick, adaptive_stationary, quantile, run,
};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn resampler() -> Consumer {
    Consumer::Resampler {
        channels: 2,
        interpolation: Interpolation::default(),
    }
}

/// Runs and keeps every tick.
fn trace(sc: &Scenario, capture: bool) -> (Outcome, Vec<Tick>) {
    let mut ticks = vec![];
    let out = run(sc, capture, |t| ticks.push(*t));
    (out, ticks)
}

/// First time after which |true delay - target| stays below `tol_ns` until the end.
fn settled_at(ticks: &[Tick], tol_ns: f64) -> u64 {
    let mut at = ticks[0].t_ns;
    for t in ticks {
        if (t.delay_ns - t.target_ns).abs() >= tol_ns {
            at = t.t_ns + 10 * MS;
        }
    }
    at
}

fn max_err_after(ticks: &[Tick], from_ns: u64) -> f64 {
    ticks
        .iter()
        .filter(|t| t.t_ns >= from_ns)
        .map(|t| (t.delay_ns - t.target_ns).abs())
        .fold(0.0, f64::max)
}

fn drift_scenario(skew_ppm: f64, seconds: u64) -> Scenario {
    Scenario {
        skew_ppm,
        jitter: vec![(0, Jitter::Uniform { max_ns: 20 * MS })],
        loss: 0.01,
        mode: Mode::Fixed {
            latency_ns: 60 * MS,
        },
        duration_ns: seconds * S,
        seed: 42,
        ..Default::default()
    }
}

fn check_converges(skew_ppm: f64) {
    let sc = Scenario {
        consumer: resampler(),
        ..drift_scenario(skew_ppm, 60)
    };
    let (out, ticks) = trace(&sc, false);
    let settled = settled_at(&ticks, 5.0 * MS as f64);
    assert!(
        settled <= 20 * S,
        "{skew_ppm} ppm settled at {} ms",
        settled / MS
    );
    assert_eq!(out.underrun_ticks, 0);
    assert_eq!(out.overrun_ticks, 0);
    // With 60 ms of latency and 20 ms of jitter nothing should arrive late once settled.
    assert!(out.late <= 5, "late {}", out.late);
    let last = ticks.last().unwrap();
    assert!(
        (last.correction_ppm - skew_ppm).abs() < 30.0,
        "correction {} for {skew_ppm}",
        last.correction_ppm
    );
    assert!((last.skew_ppm.unwrap() - skew_ppm).abs() < 30.0);
    assert!(last.locked);
}

#[test]
fn converges_at_plus_1000_ppm() {
    check_converges(1000.0);
}

#[test]
fn minus_1000_ppm() {
    check_converges(-1000.0);
}

#[test]
fn plus_minus_100_ppm_for_24_hours() {
    // Analytic queue (no resampler: 8.6 million ticks per run), 20 ms jitter, 1 % loss.
    for skew in [100.0, -100.0] {
        let sc = drift_scenario(skew, 24 * 3600);
        let mut worst = 0.0f64;
        let mut max_step_locked = 0.0f64;
        let (mut sum_sq, mut n_locked) = (0.0f64, 0u64);
        let mut last_corr = None;
        let out = run(&sc, false, |t| {
            if t.t_ns >= 20 * S {
                worst = worst.max((t.delay_ns - t.target_ns).abs());
                if let Some(c) = last_corr
                    && t.locked
                {
                    let step: f64 = t.correction_ppm - c;
                    max_step_locked = max_step_locked.max(step.abs());
                    sum_sq += step * step;
                    n_locked += 1;
                }
            }
            last_corr = Some(t.correction_ppm);
        });
        assert!(out.ticks > 8_639_000);
        assert_eq!(out.underrun_ticks, 0, "{skew}");
        assert_eq!(out.overrun_ticks, 0, "{skew}");
        assert!(out.late < 10, "{skew}: late {}", out.late);
        assert!(worst < 5.0 * MS as f64, "{skew}: {} ms", worst / MS as f64);
        // Locked nearly all the time, with a ratio that changes by a few ppm per second
        // (rms) and never faster than 15 ppm/s (0.15 ppm per 10 ms tick).
        assert!(n_locked as f64 > 0.99 * out.ticks as f64, "{n_locked}");
        let rms_per_s = (sum_sq / n_locked as f64).sqrt() * 100.0;
        assert!(rms_per_s < 3.0, "{skew}: rms slew {rms_per_s} ppm/s");
        assert!(max_step_locked <= 0.15, "{max_step_locked}");
    }
}

#[test]
fn two_and_a_half_percent_no_exhaustion() {
    for (skew, consumer) in [(25_000.0, resampler()), (-25_000.0, Consumer::Analytic)] {
        let sc = Scenario {
            consumer,
            ..drift_scenario(skew, 120)
        };
        let (out, ticks) = trace(&sc, false);
        assert_eq!(out.underrun_ticks, 0, "{skew}");
        assert_eq!(out.overrun_ticks, 0, "{skew}");
        let settled = settled_at(&ticks, 5.0 * MS as f64);
        assert!(settled <= 30 * S, "{skew}: settled at {} ms", settled / MS);
        // The delay swings by less than 50 ms while the loop pulls in 2.5 % (the 60 ms target
        // never runs dry; the excess stays far below the 1 s capacity).
        let worst = max_err_after(&ticks, 0);
        assert!(worst < 50.0 * MS as f64, "{skew}: {}", worst / MS as f64);
        let last = ticks.last().unwrap();
        assert!(
            (last.correction_ppm - skew).abs() < 300.0,
            "{}",
            last.correction_ppm
        );
    }
}

#[test]
fn adaptive_target_follows_jitter_up_at_once_and_down_within_seconds() {
    let sc = Scenario {
        skew_ppm: 300.0,
        jitter: vec![
            (0, Jitter::Uniform { max_ns: 5 * MS }),
            (20 * S, Jitter::Uniform { max_ns: 60 * MS }),
            (40 * S, Jitter::Uniform { max_ns: 5 * MS }),
        ],
        mode: Mode::Adaptive {
            min_ns: 10 * MS,
            max_ns: 500 * MS,
        },
        expand_above_ns: Some(15 * MS),
        duration_ns: 70 * S,
        ..Default::default()
    };
    let (out, ticks) = trace(&sc, false);
    let at = |s: f64| {
        ticks
            .iter()
            .find(|t| t.t_ns as f64 >= s * 1e9)
            .copied()
            .unwrap()
    };
    // Before: small target, delay on it.
    let before = at(19.9);
    assert!(before.target_ns < 15.0 * 1e6, "{}", before.target_ns / 1e6);
    assert!((before.delay_ns - before.target_ns).abs() < 5e6);
    // Up at once: the target within 0.6 s, the delay (by concealment) within 1 s.
    let up = at(20.6);
    assert!(up.target_ns > 55e6, "{}", up.target_ns / 1e6);
    let up = at(21.0);
    assert!(up.delay_ns > up.target_ns - 16e6, "{}", up.delay_ns / 1e6);
    assert!(out.expanded_ticks > 3);
    // On target (as the receiver measures it: the target is relative to its own baseline,
    // which 60 ms of jitter in a FIFO network lifts by a few ms above the true fastest path).
    let steady = at(39.0);
    assert!((steady.measured_ns - steady.target_ns).abs() < 5e6);
    // Down within seconds: the target within 5 s, the delay (at most 1 % faster playback,
    // 10 ms/s) a few seconds later.
    let down = at(45.0);
    assert!(down.target_ns < 15e6, "{}", down.target_ns / 1e6);
    let settled = ticks
        .iter()
        .filter(|t| t.t_ns >= 52 * S)
        .map(|t| (t.measured_ns - t.target_ns).abs())
        .fold(0.0, f64::max);
    assert!(settled < 5e6, "{}", settled / 1e6);
    // Late packets: at most the ones during the jump (the first ~0.5 s of large jitter).
    assert!(out.late < 60, "late {}", out.late);
}

#[test]
fn outage_then_burst_returns_to_target_within_2_s() {
    for mode in [
        Mode::Fixed {
            latency_ns: 60 * MS,
        },
        Mode::Adaptive {
            min_ns: 10 * MS,
            max_ns: 500 * MS,
        },
    ] {
        let sc = Scenario {
            skew_ppm: -200.0,
            jitter: vec![(0, Jitter::Uniform { max_ns: 20 * MS })],
            outage: Some((30 * S, S)),
            mode,
            expand_above_ns: Some(15 * MS),
            duration_ns: 45 * S,
            consumer: resampler(),
            ..Default::default()
        };
        let (out, ticks) = trace(&sc, false);
        let before = ticks
            .iter()
            .rfind(|t| t.t_ns < 30 * S)
            .map(|t| t.target_ns)
            .unwrap();
        let after: Vec<Tick> = ticks
            .iter()
            .filter(|t| t.t_ns >= 31 * S + 5 * MS + 2 * S)
            .copied()
            .collect();
        for t in &after {
            assert!(
                (t.delay_ns - t.target_ns).abs() < 5e6,
                "{mode:?} at {} ms: delay {} target {}",
                t.t_ns / MS,
                t.delay_ns / 1e6,
                t.target_ns / 1e6
            );
            assert!((t.target_ns - before).abs() < 5e6, "{mode:?}");
        }
        // Without clicks from the drift loop: the ratio moves by at most 100 ppm per tick
        // (the acquisition slew), and no tick was concealed to move the delay.
        assert!(out.max_step_ppm <= 100.0 + 1e-6, "{}", out.max_step_ppm);
        assert_eq!(out.expanded_ticks, 0, "{mode:?}");
        // The held packets (one second of them, less the last few that still make it in
        // time) arrive too late to play; of the others at most 1 % may be late.
        assert!(out.late >= 80, "{mode:?} late {}", out.late);
        assert!(
            out.late <= 100 + out.received / 100,
            "{mode:?} late {}",
            out.late
        );
    }
}

#[test]
fn drift_loop_output_is_a_click_free_sine() {
    // +1000 ppm through the real resampler, jitter well inside the latency, no loss: every
    // packet is played, so the output must be one continuous 440 Hz sine whatever the ratio
    // does; a dropped or duplicated sample would show as a jump in the second difference.
    let sc = Scenario {
        consumer: resampler(),
        loss: 0.0,
        ..drift_scenario(1000.0, 30)
    };
    let (out, _) = trace(&sc, true);
    assert_eq!(out.late, 0);
    let w = std::f64::consts::TAU * 440.0 * 1.001 / 48_000.0;
    let bound = 0.5 * w * w * 1.05;
    let worst = out.output[100..]
        .windows(3)
        .map(|x| (x[2] as f64 - 2.0 * x[1] as f64 + x[0] as f64).abs())
        .fold(0.0, f64::max);
    assert!(worst < bound, "{worst} vs {bound}");
    // And the pitch is the sender's: 440 Hz * (1 + 1000 ppm) once locked.
    let tail = &out.output[out.output.len() - 9_600..];
    let thd = super::sim::thd_n_db(tail, 440.0 * 1.001 / 48_000.0);
    assert!(thd < -60.0, "{thd}");
}

/// Adaptive mode on a stationary trace: (mean true delay, q95 of the true relative delays,
/// fraction late), after a 10 s warm-up.
pub(super) fn adaptive_on(jitter: Jitter, seed: u64) -> (f64, f64, f64) {
    let (mean, out) = adaptive_stationary(jitter, seed);
    let q95 = quantile(&out.relative_delays, 0.95);
    (mean, q95, out.late as f64 / out.received as f64)
}

#[test]
fn adaptive_mean_delay_within_q95_plus_10_ms_on_uniform_jitter() {
    for j in [5, 20, 40, 80] {
        let (mean, q95, late) = adaptive_on(Jitter::Uniform { max_ns: j * MS }, j);
        assert!(
            mean <= q95 + 10e6,
            "{j} ms: mean {} q95 {}",
            mean / 1e6,
            q95 / 1e6
        );
        assert!(late <= 0.01, "{j} ms: late {late}");
    }
}

#[test]
fn adaptive_mean_delay_within_q95_plus_10_ms_on_pareto_jitter() {
    for (k, j) in [5u64, 10, 20, 40, 80].into_iter().enumerate() {
        let (mean, q95, late) = adaptive_on(Jitter::pareto(j * MS), 100 + k as u64);
        assert!(
            mean <= q95 + 10e6,
            "{j} ms: mean {} q95 {}",
            mean / 1e6,
            q95 / 1e6
        );
        if j <= 40 {
            assert!(late <= 0.01, "{j} ms: late {late}");
        } else {
            // Not the ≤ 1 % the issue asks for: on this trace q99 - q95 is 17 ms, so no delay
            // can be both ≤ q95 + 10 ms and late for ≤ 1 %; the target keeps the delay bound
            // and lets ~2 % arrive late (concealed).
            assert!(late <= 0.025, "{j} ms: late {late}");
        }
    }
}

// SPDX-License-Identifier: MPL-2.0
//! Clock-drift compensation by measurement: `cargo bench --bench drift` prints
//!
//! 1. convergence time and the delay error after it, per skew (real resampler in the loop);
//! 2. the delay over time under drift (the table in `docs/drift.md`);
//! 3. underruns, overruns and late packets over 24 simulated hours (analytic queue);
//! 4. adaptive mode on stationary traces: mean delay against q95 + 10 ms, and % late;
//! 5. resampler quality (THD+N) and CPU per 10 ms at 48 kHz stereo, per interpolator.
//!
//! Everything is deterministic except the CPU timings.

use std::hint::black_box;
use std::time::Instant;

use gstnetaudio::drift::sim::{
    Consumer, Jitter, Mode, Scenario, Tick, adaptive_stationary, quantile, run, thd_n_db,
};
use gstnetaudio::drift::{DriftResampler, Interpolation};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn drift(skew_ppm: f64, seconds: u64, consumer: Consumer) -> Scenario {
    Scenario {
        skew_ppm,
        jitter: vec![(0, Jitter::Uniform { max_ns: 20 * MS })],
        loss: 0.01,
        mode: Mode::Fixed {
            latency_ns: 60 * MS,
        },
        consumer,
        duration_ns: seconds * S,
        seed: 42,
        ..Default::default()
    }
}

fn resampler() -> Consumer {
    Consumer::Resampler {
        channels: 2,
        interpolation: Interpolation::default(),
    }
}

fn convergence() {
    println!("## Convergence (fixed 60 ms, 20 ms uniform jitter, 1 % loss, resampler in the loop)");
    println!(
        "| skew | delay settled (abs err < 5 ms for good) | ratio converged (abs(correction - skew) < max(50 ppm, 1 %) for good) | max abs(correction - skew) after 30 s | max abs err after | rms err after | late | underrun ticks | final correction |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for skew in [100.0, -100.0, 1000.0, -1000.0, 25_000.0, -25_000.0] {
        let mut ticks: Vec<Tick> = vec![];
        let out = run(&drift(skew, 90, resampler()), false, |t| ticks.push(*t));
        let mut settled = ticks[0].t_ns;
        for t in &ticks {
            if (t.delay_ns - t.target_ns).abs() >= 5e6 {
                settled = t.t_ns + 10 * MS;
            }
        }
        let mut ratio_at = ticks[0].t_ns;
        for t in &ticks {
            if (t.correction_ppm - skew).abs() >= (0.01 * skew.abs()).max(50.0) {
                ratio_at = t.t_ns + 10 * MS;
            }
        }
        let after: Vec<f64> = ticks
            .iter()
            .filter(|t| t.t_ns >= settled)
            .map(|t| t.delay_ns - t.target_ns)
            .collect();
        let corr_dev = ticks
            .iter()
            .filter(|t| t.t_ns >= 30 * S)
            .map(|t| (t.correction_ppm - skew).abs())
            .fold(0.0f64, f64::max);
        let max = after.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        let rms = (after.iter().map(|e| e * e).sum::<f64>() / after.len() as f64).sqrt();
        println!(
            "| {skew:+} ppm | {:.1} s | {:.1} s | {:.0} ppm | {:.2} ms | {:.2} ms | {} | {} | {:+.0} ppm |",
            settled as f64 / 1e9,
            ratio_at as f64 / 1e9,
            corr_dev,
            max / 1e6,
            rms / 1e6,
            out.late,
            out.underrun_ticks,
            ticks.last().unwrap().correction_ppm
        );
    }
    println!();
}

fn delay_table() {
    println!("## Delay - target (ms) over time, fixed 60 ms, 20 ms jitter, 1 % loss");
    let times = [0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0];
    print!("| skew |");
    for t in times {
        print!(" {t} s |");
    }
    println!();
    println!("|---|{}", "---|".repeat(times.len()));
    for skew in [1000.0, -1000.0, 25_000.0, -25_000.0] {
        let mut ticks: Vec<Tick> = vec![];
        run(&drift(skew, 61, resampler()), false, |t| ticks.push(*t));
        print!("| {skew:+} ppm |");
        for t in times {
            let k = ticks.iter().find(|k| k.t_ns as f64 >= t * 1e9).unwrap();
            print!(" {:+.1} |", (k.delay_ns - k.target_ns) / 1e6);
        }
        println!();
    }
    println!();
}

fn day() {
    println!("## 24 hours (analytic queue, fixed 60 ms, 20 ms jitter, 1 % loss)");
    println!(
        "| skew | underrun ticks | overrun ticks | late | max abs err after 20 s | rms slew locked | max slew locked | wall |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for skew in [100.0, -100.0, 1000.0, -1000.0] {
        let start = Instant::now();
        let mut worst = 0.0f64;
        let (mut sum_sq, mut n, mut max_step) = (0.0f64, 0u64, 0.0f64);
        let mut last = None;
        let out = run(&drift(skew, 24 * 3600, Consumer::Analytic), false, |t| {
            if t.t_ns >= 20 * S {
                worst = worst.max((t.delay_ns - t.target_ns).abs());
                if let Some(c) = last
                    && t.locked
                {
                    let d: f64 = t.correction_ppm - c;
                    sum_sq += d * d;
                    n += 1;
                    max_step = max_step.max(d.abs());
                }
            }
            last = Some(t.correction_ppm);
        });
        println!(
            "| {skew:+} ppm | {} | {} | {} | {:.2} ms | {:.2} ppm/s | {:.1} ppm/s | {:.1} s |",
            out.underrun_ticks,
            out.overrun_ticks,
            out.late,
            worst / 1e6,
            (sum_sq / n as f64).sqrt() * 100.0,
            max_step * 100.0,
            start.elapsed().as_secs_f64()
        );
    }
    println!();
}

fn jitter_step_and_outage() {
    println!(
        "## Adaptive mode: jitter 5 ms -> 60 ms at 20 s -> 5 ms at 40 s (uniform, 300 ppm), and a 1 s outage at 60 s"
    );
    let sc = Scenario {
        skew_ppm: 300.0,
        jitter: vec![
            (0, Jitter::Uniform { max_ns: 5 * MS }),
            (20 * S, Jitter::Uniform { max_ns: 60 * MS }),
            (40 * S, Jitter::Uniform { max_ns: 5 * MS }),
        ],
        outage: Some((60 * S, S)),
        mode: Mode::Adaptive {
            min_ns: 10 * MS,
            max_ns: 500 * MS,
        },
        expand_above_ns: Some(15 * MS),
        duration_ns: 70 * S,
        consumer: resampler(),
        ..Default::default()
    };
    let mut ticks: Vec<Tick> = vec![];
    let out = run(&sc, false, |t| ticks.push(*t));
    println!("| t | target | measured delay | true delay | correction |");
    println!("|---|---|---|---|---|");
    for t in [
        19.9, 20.1, 20.3, 20.5, 20.7, 21.0, 22.0, 25.0, 39.9, 41.0, 42.0, 43.0, 44.0, 45.0, 47.0,
        50.0, 55.0, 59.9, 60.5, 61.1, 61.5, 62.0, 63.0, 65.0,
    ] {
        let k = ticks.iter().find(|k| k.t_ns as f64 >= t * 1e9).unwrap();
        println!(
            "| {t} s | {:.1} ms | {:.1} ms | {:.1} ms | {:+.0} ppm |",
            k.target_ns / 1e6,
            k.measured_ns / 1e6,
            k.delay_ns / 1e6,
            k.correction_ppm
        );
    }
    println!(
        "late {} of {} received (the outage holds ~100), concealed ticks to raise the delay {}, largest ratio step {:.0} ppm per tick",
        out.late, out.received, out.expanded_ticks, out.max_step_ppm
    );
    println!();
}

fn adaptive() {
    println!(
        "## Adaptive mode, stationary traces (150 ppm, 0.5 % loss, 120 s, stats after 10 s; delay vs the true fastest path)"
    );
    println!("| trace | q95 | q99 | mean delay | q95 + 10 ms | mean <= q95+10 | late |");
    println!("|---|---|---|---|---|---|---|");
    let mut traces = vec![];
    for j in [5, 10, 20, 40, 80] {
        traces.push((
            format!("uniform 0..{j} ms"),
            Jitter::Uniform { max_ns: j * MS },
        ));
    }
    for j in [5, 10, 20, 40, 80] {
        traces.push((format!("normal 0..{j} ms"), Jitter::normal(j * MS)));
    }
    for j in [5, 10, 20, 40, 80] {
        traces.push((format!("Pareto cap {j} ms"), Jitter::pareto(j * MS)));
    }
    for (k, (name, jitter)) in traces.into_iter().enumerate() {
        let (mean, out) = adaptive_stationary(jitter, 100 + k as u64);
        let q95 = quantile(&out.relative_delays, 0.95);
        let q99 = quantile(&out.relative_delays, 0.99);
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.2} % |",
            q95 / 1e6,
            q99 / 1e6,
            mean / 1e6,
            (q95 + 10e6) / 1e6,
            if mean <= q95 + 10e6 { "yes" } else { "NO" },
            100.0 * out.late as f64 / out.received as f64
        );
    }
    println!();
}

fn resampler_cost() {
    println!("## Resampler: THD+N of a sine at ratio 1.001, and CPU per 10 ms at 48 kHz stereo");
    println!(
        "| interpolator | THD+N 1 kHz | 10 kHz | 18 kHz | gain at 18 / 20 kHz | CPU per 10 ms (median) | share of 10 ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, interp) in [
        ("polynomial (septic)", Interpolation::Polynomial),
        ("sinc 32", Interpolation::Sinc { len: 32 }),
        ("sinc 64", Interpolation::Sinc { len: 64 }),
        ("sinc 128 (default)", Interpolation::Sinc { len: 128 }),
    ] {
        let thd = |f: f64| {
            let mut rs = DriftResampler::new(2, 480, interp);
            rs.set_ratio(1.001);
            let mut fed = 0u64;
            let mut out = vec![];
            let mut buf = vec![0.0f32; 960];
            for _ in 0..200 {
                while rs.queued_frames() < rs.input_frames_needed(480) || fed == 0 {
                    let pkt: Vec<f32> = (fed..fed + 480)
                        .flat_map(|i| {
                            let s = (std::f64::consts::TAU * f * i as f64 / 48_000.0).sin() as f32
                                * 0.5;
                            [s, s]
                        })
                        .collect();
                    rs.push(&pkt);
                    fed += 480;
                }
                rs.pull(&mut buf).unwrap();
                out.extend(buf.chunks(2).map(|x| x[0]));
            }
            let tail = &out[4800..];
            let rms =
                (tail.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / tail.len() as f64).sqrt();
            let gain_db = 20.0 * (rms / (0.5 / 2f64.sqrt())).log10();
            (thd_n_db(tail, f / 1.001 / 48_000.0), gain_db)
        };
        // CPU: steady state, ratio moving by a few ppm every chunk.
        let mut rs = DriftResampler::new(2, 480, interp);
        let input = vec![0.25f32; 960];
        let mut buf = vec![0.0f32; 960];
        let mut times = vec![];
        for k in 0..3000 {
            rs.set_ratio(1.0 + 1e-4 * ((k as f64) * 0.01).sin());
            while rs.queued_frames() < rs.input_frames_needed(480) {
                rs.push(&input);
            }
            let t0 = Instant::now();
            rs.pull(black_box(&mut buf)).unwrap();
            times.push(t0.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        println!(
            "| {name} | {:.1} dB | {:.1} dB | {:.1} dB | {:+.2} / {:+.2} dB | {:.1} us | {:.2} % |",
            thd(1000.0).0,
            thd(10_000.0).0,
            thd(18_000.0).0,
            thd(18_000.0).1,
            thd(20_000.0).1,
            med * 1e6,
            med / 0.01 * 100.0
        );
    }
    println!();
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too, keep that quick.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    resampler_cost();
    convergence();
    delay_table();
    adaptive();
    jitter_step_and_outage();
    day();
}

// SPDX-License-Identifier: MPL-2.0
//! A deterministic simulation of a drifting sender, a jittery lossy network and a receiver
//! whose sound card takes 10 ms every 10 ms, for the tests and the bench.
//!
//! The sender emits one packet of `packet_frames` every `packet_frames / rate` seconds of *its*
//! clock, which runs `skew_ppm` fast; each packet then waits a base delay plus jitter (uniform
//! or Pareto, seeded) in a FIFO network (order kept), may be lost, and an outage holds
//! everything sent during it and releases it as a burst.
//!
//! The receiver starts playing one target delay after the first packet arrives. At each tick
//! it feeds the arrivals so far to the estimators, measures the playout delay of the position
//! it is about to play, asks the controller for a ratio and consumes 10 ms of output:
//! * [`Consumer::Analytic`]: the queue is a number: the tick consumes `frames / ratio` input
//!   frames (with the same linear ramp the resampler applies). Cheap enough for 24 h.
//! * [`Consumer::Resampler`]: a real [`DriftResampler`] fed with the packets in order (a sine,
//!   or zeros where a packet has not arrived: concealment) and pulled for 10 ms per tick.
//!
//! The *true* playout delay is measured against the sender's actual clock and the base delay
//! (the fastest path), which the receiver does not know.

use super::controller::ControllerConfig;
use super::delay::DelayConfig;
use super::driftloop::{DriftLoop, TargetMode};
use super::resample::{DriftResampler, Interpolation};
use crate::impair::Rng;
use std::f64::consts::TAU;

/// Network delay on top of the base delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Uniform in `0..=max_ns`.
    Uniform { max_ns: u64 },
    /// Pareto tail: `scale_ns * (u^(-1/shape) - 1)`, capped at `max_ns`.
    Pareto {
        scale_ns: f64,
        shape: f64,
        max_ns: u64,
    },
    /// Normal (Gaussian) around `mean_ns` with standard deviation `sd_ns`, clamped to
    /// `0..=max_ns`.
    Normal {
        mean_ns: f64,
        sd_ns: f64,
        max_ns: u64,
    },
}

impl Jitter {
    /// A Pareto trace whose largest delay is `max_ns`: shape 2.5 and a scale of a quarter of
    /// the cap, so that about 2 % of the packets are at the cap.
    pub fn pareto(max_ns: u64) -> Self {
        Jitter::Pareto {
            scale_ns: max_ns as f64 / 4.0,
            shape: 2.5,
            max_ns,
        }
    }

    /// A normal trace within `0..=max_ns`: mean half the cap, standard deviation a sixth (the
    /// clamp touches 0.3 % of the packets).
    pub fn normal(max_ns: u64) -> Self {
        Jitter::Normal {
            mean_ns: max_ns as f64 / 2.0,
            sd_ns: max_ns as f64 / 6.0,
            max_ns,
        }
    }

    fn draw(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        match *self {
            Jitter::Normal {
                mean_ns,
                sd_ns,
                max_ns,
            } => {
                // Box-Muller.
                let z = (-2.0 * (1.0 - u).ln()).sqrt() * (TAU * rng.next_f64()).cos();
                (mean_ns + sd_ns * z).clamp(0.0, max_ns as f64) as u64
            }
            Jitter::Uniform { max_ns } => (u * (max_ns as f64 + 1.0)) as u64,
            Jitter::Pareto {
                scale_ns,
                shape,
                max_ns,
            } => {
                let v = scale_ns * ((1.0 - u).powf(-1.0 / shape) - 1.0);
                (v as u64).min(max_ns)
            }
        }
    }
}

/// How the receiver chooses its target delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Fixed { latency_ns: u64 },
    Adaptive { min_ns: u64, max_ns: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Consumer {
    Analytic,
    Resampler {
        channels: usize,
        interpolation: Interpolation,
    },
}

/// Everything that defines one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub rate: u32,
    pub packet_frames: u32,
    pub skew_ppm: f64,
    pub base_delay_ns: u64,
    /// Jitter from a sender time (ns) on; the first entry should start at 0.
    pub jitter: Vec<(u64, Jitter)>,
    pub loss: f64,
    /// Sender-time window (start, length) during which nothing gets through; held packets
    /// arrive back to back (20 µs apart) when it ends.
    pub outage: Option<(u64, u64)>,
    pub mode: Mode,
    pub consumer: Consumer,
    pub controller: ControllerConfig,
    pub duration_ns: u64,
    /// More queued than this (in ns of audio) counts as an overrun tick.
    pub capacity_ns: u64,
    /// When the target is this far above the measured delay, the receiver conceals a whole
    /// tick without consuming input (delay +10 ms at once), as the element does when the
    /// adaptive target jumps; `None`: only the controller moves the delay.
    pub expand_above_ns: Option<u64>,
    pub seed: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            rate: 48_000,
            packet_frames: 480,
            skew_ppm: 0.0,
            base_delay_ns: 5_000_000,
            jitter: vec![(0, Jitter::Uniform { max_ns: 20_000_000 })],
            loss: 0.0,
            outage: None,
            mode: Mode::Fixed {
                latency_ns: 60_000_000,
            },
            consumer: Consumer::Analytic,
            controller: ControllerConfig::default(),
            duration_ns: 60_000_000_000,
            capacity_ns: 1_000_000_000,
            expand_above_ns: None,
            seed: 1,
        }
    }
}

/// The state after one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    /// Receiver time since the first packet was sent.
    pub t_ns: u64,
    /// True playout delay: play time minus fastest-path arrival of the position played.
    pub delay_ns: f64,
    /// What the receiver measured (against its own baseline estimate).
    pub measured_ns: f64,
    pub target_ns: f64,
    pub ratio: f64,
    pub correction_ppm: f64,
    pub skew_ppm: Option<f64>,
    /// Audio received and not yet played, ns.
    pub queued_ns: f64,
    pub locked: bool,
}

/// Counters of a whole run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub ticks: u64,
    /// Ticks that found nothing at all queued (the buffer ran dry).
    pub underrun_ticks: u64,
    /// Ticks with more than `capacity_ns` queued.
    pub overrun_ticks: u64,
    pub received: u64,
    pub lost: u64,
    /// Packets that arrived after their first frame was due.
    pub late: u64,
    /// Ticks concealed to raise the delay at once (`expand_above_ns`).
    pub expanded_ticks: u64,
    /// Largest change of the correction between two ticks, ppm.
    pub max_step_ppm: f64,
    /// Channel 0 of the output, when the resampler consumer runs with `capture`.
    pub output: Vec<f32>,
    /// With `capture`: every received packet's true relative delay (arrival minus the
    /// fastest path), ns, excluding the held packets of an outage.
    pub relative_delays: Vec<f64>,
}

/// Sender and network: yields (packet index, arrival ns) in arrival order.
struct Network {
    sc: Scenario,
    rng: Rng,
    next: u64,
    last_arrival: u64,
    burst_k: u64,
    period_ns: f64,
}

impl Network {
    fn new(sc: &Scenario) -> Self {
        Self {
            sc: sc.clone(),
            rng: Rng::new(sc.seed),
            next: 0,
            last_arrival: 0,
            burst_k: 0,
            period_ns: sc.packet_frames as f64 * 1e9 / sc.rate as f64,
        }
    }

    fn sent_ns(&self, index: u64) -> f64 {
        index as f64 * self.period_ns / (1.0 + self.sc.skew_ppm * 1e-6)
    }

    /// The next packet that gets through; lost ones are counted in `lost`.
    fn next(&mut self, lost: &mut u64) -> (u64, u64) {
        loop {
            let i = self.next;
            self.next += 1;
            let sent = self.sent_ns(i) as u64;
            let jitter = self
                .sc
                .jitter
                .iter()
                .rev()
                .find(|(from, _)| *from <= sent)
                .map(|j| j.1)
                .unwrap_or(Jitter::Uniform { max_ns: 0 });
            let is_lost = self.rng.next_f64() < self.sc.loss;
            let mut arrive = sent + self.sc.base_delay_ns + jitter.draw(&mut self.rng);
            if let Some((start, len)) = self.sc.outage
                && (start..start + len).contains(&sent)
            {
                arrive = arrive.max(start + len + self.burst_k * 20_000);
                self.burst_k += 1;
            }
            if is_lost && i > 0 {
                *lost += 1;
                continue;
            }
            arrive = arrive.max(self.last_arrival);
            self.last_arrival = arrive;
            return (i, arrive);
        }
    }
}

/// Run a scenario, calling `observe` after every tick; `capture` keeps the resampler's output.
pub fn run(sc: &Scenario, capture: bool, mut observe: impl FnMut(&Tick)) -> Outcome {
    let mut out = Outcome::default();
    let rate = sc.rate as f64;
    let frames = sc.packet_frames as usize;
    let tick_ns = sc.packet_frames as u64 * 1_000_000_000 / sc.rate as u64;
    let (mode, initial_target) = match sc.mode {
        Mode::Fixed { latency_ns } => (TargetMode::Fixed { latency_ns }, latency_ns),
        Mode::Adaptive { min_ns, max_ns } => (
            TargetMode::Adaptive(DelayConfig {
                min_ns,
                max_ns,
                ..Default::default()
            }),
            min_ns,
        ),
    };
    let mut drift = DriftLoop::new(sc.rate, mode, sc.controller);
    let mut net = Network::new(sc);
    let mut pending = net.next(&mut out.lost);
    let first_arrival = pending.1;
    // Packets received and not yet fed (resampler consumer), by index.
    let mut received: std::collections::BTreeSet<u64> = Default::default();
    let mut highest_end: u64 = 0;
    let mut play_pos = 0.0f64;
    let mut ratio = 1.0f64;
    let mut last_correction = 0.0f64;

    let (mut rs, channels) = match sc.consumer {
        Consumer::Resampler {
            channels,
            interpolation,
        } => (
            Some(DriftResampler::new(channels, frames, interpolation)),
            channels,
        ),
        Consumer::Analytic => (None, 1),
    };
    let mut fed: u64 = 0;
    let mut pkt = vec![0.0f32; frames * channels];
    let mut buf = vec![0.0f32; frames * channels];

    // Start so that the first tick's newest frame (the end of packet 0) has the target delay.
    let mut t = first_arrival + initial_target + tick_ns;
    while t <= sc.duration_ns {
        // Arrivals up to now.
        while pending.1 <= t {
            let (i, arrive) = pending;
            let start = i * frames as u64;
            drift.on_packet(arrive, start);
            out.received += 1;
            if capture {
                let sent = net.sent_ns(i);
                let held = sc
                    .outage
                    .is_some_and(|(s, l)| (s..s + l).contains(&(sent as u64)));
                if !held {
                    out.relative_delays
                        .push(arrive as f64 - sent - sc.base_delay_ns as f64);
                }
            }
            let is_late = match &rs {
                Some(_) => i < fed,
                None => (start as f64) < play_pos,
            };
            if is_late {
                out.late += 1;
            } else if rs.is_some() {
                received.insert(i);
            }
            highest_end = highest_end.max(start + frames as u64);
            pending = net.next(&mut out.lost);
        }

        // The delay that matters is the one of the newest input frame this tick needs: the
        // end of its 10 ms plus the resampler's look-ahead. A packet later than that is late.
        let lookahead = rs.as_ref().map_or(0.0, |r| r.lookahead_frames() as f64);
        let need_pos = play_pos + frames as f64 / ratio + lookahead;
        let decision = drift.on_tick(t, need_pos);
        let (new_ratio, measured, target) = (
            decision.ratio,
            decision.measured_delay_ns,
            decision.target_delay_ns,
        );

        let queued = highest_end as f64 - play_pos;
        if queued <= 0.0 {
            out.underrun_ticks += 1;
        }
        if queued / rate * 1e9 > sc.capacity_ns as f64 {
            out.overrun_ticks += 1;
        }
        let true_delay = t as f64
            - (need_pos / rate * 1e9 / (1.0 + sc.skew_ppm * 1e-6) + sc.base_delay_ns as f64);

        // Consume one tick.
        let expand = sc
            .expand_above_ns
            .is_some_and(|above| target - measured > above as f64);
        if expand {
            out.expanded_ticks += 1;
            if capture && rs.is_some() {
                out.output.extend(std::iter::repeat_n(0.0, frames));
            }
        }
        match &mut rs {
            _ if expand => {}
            None => {
                play_pos += frames as f64 * 0.5 * (1.0 / ratio + 1.0 / new_ratio);
            }
            Some(rs) => {
                rs.set_ratio(new_ratio);
                while (rs.queued_frames()) < rs.input_frames_needed(frames) {
                    let have = received.remove(&fed);
                    for (n, f) in pkt.chunks_mut(channels).enumerate() {
                        let m = (fed as usize * frames + n) as f64;
                        let s = if have {
                            (TAU * 440.0 * m / rate).sin() as f32 * 0.5
                        } else {
                            0.0
                        };
                        f.iter_mut().for_each(|x| *x = s);
                    }
                    rs.push(&pkt);
                    fed += 1;
                }
                rs.pull(&mut buf).expect("fed enough");
                if capture {
                    out.output.extend(buf.chunks(channels).map(|f| f[0]));
                }
                play_pos = rs.read_pos();
            }
        }
        ratio = new_ratio;
        let correction = 1.0 / ratio - 1.0;
        out.max_step_ppm = out
            .max_step_ppm
            .max((correction - last_correction).abs() * 1e6);
        last_correction = correction;
        out.ticks += 1;
        observe(&Tick {
            t_ns: t,
            delay_ns: true_delay,
            measured_ns: measured,
            target_ns: target,
            ratio,
            correction_ppm: correction * 1e6,
            skew_ppm: drift.skew().skew_ppm(),
            queued_ns: queued / rate * 1e9,
            locked: drift.controller().is_locked(),
        });
        t += tick_ns;
    }
    out
}

/// q-quantile of a sample.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q) as usize]
}

/// Adaptive mode on a stationary jitter trace (150 ppm, 0.5 % loss, 120 s, target within
/// 5..500 ms): the mean delay after a 10 s warm-up (ns), and the run's outcome.
pub fn adaptive_stationary(jitter: Jitter, seed: u64) -> (f64, Outcome) {
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    let sc = Scenario {
        skew_ppm: 150.0,
        jitter: vec![(0, jitter)],
        loss: 0.005,
        mode: Mode::Adaptive {
            min_ns: 5 * MS,
            max_ns: 500 * MS,
        },
        expand_above_ns: Some(15 * MS),
        duration_ns: 120 * S,
        seed,
        ..Default::default()
    };
    let (mut sum, mut n) = (0.0, 0.0);
    let out = run(&sc, true, |t| {
        if t.t_ns >= 10 * S {
            sum += t.delay_ns;
            n += 1.0;
        }
    });
    (sum / n, out)
}

/// THD+N in dB of a sine near `freq_per_sample` (cycles per sample): the residual after a
/// least-squares fit of a sine whose frequency is refined within ±2000 ppm first, so a slightly
/// different pitch is not counted as noise.
pub fn thd_n_db(x: &[f32], freq_per_sample: f64) -> f64 {
    let (mut lo, mut hi) = (freq_per_sample * 0.998, freq_per_sample * 1.002);
    for _ in 0..6 {
        let step = (hi - lo) / 10.0;
        let best = (0..=10)
            .map(|k| lo + step * k as f64)
            .min_by(|a, b| residual_db(x, *a).total_cmp(&residual_db(x, *b)))
            .expect("eleven candidates");
        lo = best - step;
        hi = best + step;
    }
    residual_db(x, 0.5 * (lo + hi))
}

fn residual_db(x: &[f32], freq_per_sample: f64) -> f64 {
    let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, &y) in x.iter().enumerate() {
        let (s, c) = (TAU * freq_per_sample * n as f64).sin_cos();
        ss += s * s;
        sc += s * c;
        cc += c * c;
        ys += y as f64 * s;
        yc += y as f64 * c;
    }
    let det = ss * cc - sc * sc;
    let a = (ys * cc - yc * sc) / det;
    let b = (yc * ss - ys * sc) / det;
    let (mut sig, mut res) = (0.0, 0.0);
    for (n, &y) in x.iter().enumerate() {
        let (s, c) = (TAU * freq_per_sample * n as f64).sin_cos();
        let fit = a * s + b * c;
        sig += fit * fit;
        res += (y as f64 - fit).powi(2);
    }
    10.0 * (res / sig).log10()
}

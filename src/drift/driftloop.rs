// SPDX-License-Identifier: MPL-2.0
//! The whole loop behind two calls, as the element will use it: every packet goes to
//! [`DriftLoop::on_packet`], every output tick asks [`DriftLoop::on_tick`] for the ratio.
//! The simulation drives exactly this, so what the tests measure is what gets integrated.

use super::controller::{ControllerConfig, RateController, SkewConfig, SkewEstimator};
use super::delay::{DelayConfig, DelayEstimator, Observation, playout_delay_ns};

/// How the target delay is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TargetMode {
    /// Hold the playout delay at `latency_ns`.
    Fixed { latency_ns: u64 },
    /// Follow the jitter (see [`DelayEstimator`]); `min_ns`/`max_ns` are in the config.
    Adaptive(DelayConfig),
}

/// What one tick decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickDecision {
    /// Resampling ratio (output rate / input rate) for this tick.
    pub ratio: f64,
    /// Playout delay of the newest input frame this tick needs, ns.
    pub measured_delay_ns: f64,
    pub target_delay_ns: f64,
}

#[derive(Debug, Clone)]
enum Baseline {
    Fixed(SkewEstimator, u64),
    Adaptive(Box<DelayEstimator>),
}

/// Skew/baseline estimation, target and rate control together.
#[derive(Debug, Clone)]
pub struct DriftLoop {
    baseline: Baseline,
    ctl: RateController,
    /// The skew estimate is handed to the controller as a hint only beyond this (ppm).
    min_hint_ppm: f64,
}

impl DriftLoop {
    /// `rate`: nominal sample rate of the media clock (frames per second).
    pub fn new(rate: u32, mode: TargetMode, controller: ControllerConfig) -> Self {
        let baseline = match mode {
            TargetMode::Fixed { latency_ns } => Baseline::Fixed(
                SkewEstimator::new(SkewConfig {
                    rate,
                    ..Default::default()
                }),
                latency_ns,
            ),
            TargetMode::Adaptive(mut cfg) => {
                cfg.skew.rate = rate;
                Baseline::Adaptive(Box::new(DelayEstimator::new(cfg)))
            }
        };
        Self {
            baseline,
            ctl: RateController::new(controller),
            min_hint_ppm: 0.0,
        }
    }

    /// Hands the skew estimate to the controller as a pull-in hint only when it is at least
    /// `ppm` from 0 and its standard error at most a tenth of it (default 0: always). For a
    /// caller whose media positions may step (raw datagrams placed by inference), whose line
    /// is trusted only for skews too large for the controller to learn in time from the delay
    /// error alone (and not the noisy first second of a jittery stream: 7000 ppm measured).
    pub fn set_min_hint_ppm(&mut self, ppm: f64) {
        self.min_hint_ppm = ppm;
    }

    /// A packet arrived (arrival order): its arrival time and the unwrapped media position of
    /// its first frame. Returns the relative delay in adaptive mode.
    pub fn on_packet(&mut self, arrival_ns: u64, media_pos: u64) -> Option<Observation> {
        match &mut self.baseline {
            Baseline::Fixed(s, _) => {
                s.push(arrival_ns, media_pos);
                None
            }
            Baseline::Adaptive(d) => Some(d.push(arrival_ns, media_pos)),
        }
    }

    /// Fixed mode: holds the delay at `latency_ns` from now on (adaptive mode: no effect).
    pub fn set_fixed_latency(&mut self, latency_ns: u64) {
        if let Baseline::Fixed(_, l) = &mut self.baseline {
            *l = latency_ns;
        }
    }

    /// The current target delay, ns.
    pub fn target_ns(&self) -> f64 {
        match &self.baseline {
            Baseline::Fixed(_, latency) => *latency as f64,
            Baseline::Adaptive(d) => d.target_ns() as f64,
        }
    }

    /// One output tick at `now_ns`; `need_pos` is the newest input media position (frames,
    /// fractional) the tick needs: the resampler's read position plus the frames the tick
    /// consumes plus its look-ahead. Before the first packet the delay reads as on target.
    pub fn on_tick(&mut self, now_ns: u64, need_pos: f64) -> TickDecision {
        let target = self.target_ns();
        let measured = playout_delay_ns(self.skew(), now_ns, need_pos);
        self.decide(now_ns, measured, target)
    }

    /// One output tick at `now_ns` with the delay measured by the caller (`None`: nothing to
    /// measure it from, read as on target): for a playout whose own placement of the packets
    /// defines the delay (raw datagrams carry no timestamp), so that the loop and the placement
    /// hold the same quantity. The line through the arrivals still gives the skew hint.
    pub fn on_tick_measured(
        &mut self,
        now_ns: u64,
        measured_delay_ns: Option<f64>,
    ) -> TickDecision {
        let target = self.target_ns();
        self.decide(now_ns, measured_delay_ns, target)
    }

    fn decide(&mut self, now_ns: u64, measured: Option<f64>, target: f64) -> TickDecision {
        let skew = self.skew();
        if let (Some(ppm), Some(se)) = (skew.skew_ppm(), skew.skew_stderr_ppm())
            && self.trusted_skew_ppm().is_some()
        {
            self.ctl.set_skew_hint(ppm, se);
        }
        let measured = measured.unwrap_or(target);
        TickDecision {
            ratio: self.ctl.update(now_ns, measured, target),
            measured_delay_ns: measured,
            target_delay_ns: target,
        }
    }

    /// The skew estimate where it may steer: always, or with [`DriftLoop::set_min_hint_ppm`]
    /// only when it is that far from 0 and precise to a tenth of itself.
    pub fn trusted_skew_ppm(&self) -> Option<f64> {
        let skew = self.skew();
        let ppm = skew.skew_ppm()?;
        if self.min_hint_ppm == 0.0 {
            return Some(ppm);
        }
        let se = skew.skew_stderr_ppm()?;
        (ppm.abs() >= self.min_hint_ppm && se <= ppm.abs() / 10.0).then_some(ppm)
    }

    /// The baseline (expected arrival) and skew estimate, for stats.
    pub fn skew(&self) -> &SkewEstimator {
        match &self.baseline {
            Baseline::Fixed(s, _) => s,
            Baseline::Adaptive(d) => d.skew(),
        }
    }

    pub fn controller(&self) -> &RateController {
        &self.ctl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn before_any_packet_the_delay_reads_on_target_and_the_ratio_is_one() {
        let mut d = DriftLoop::new(
            48_000,
            TargetMode::Fixed {
                latency_ns: 60 * MS,
            },
            ControllerConfig::default(),
        );
        let t = d.on_tick(0, 480.0);
        assert_eq!(t.ratio, 1.0);
        assert_eq!(t.measured_delay_ns, 60e6);
        assert!(d.on_packet(5 * MS, 0).is_none());
    }

    #[test]
    fn too_much_delay_consumes_faster() {
        let mut d = DriftLoop::new(
            48_000,
            TargetMode::Adaptive(DelayConfig::default()),
            ControllerConfig::default(),
        );
        // Packets every 10 ms, on time; the receiver plays 100 ms behind them (target 5 ms).
        for i in 0..200u64 {
            assert!(d.on_packet(i * 10 * MS, i * 480).is_some());
        }
        let need = 1990.0 * 48.0 - 100.0 * 48.0;
        let mut last = d.on_tick(1990 * MS, need);
        for k in 1..100u64 {
            last = d.on_tick(1990 * MS + k * 10 * MS, need + k as f64 * 480.0);
        }
        assert!(last.measured_delay_ns > 90e6, "{}", last.measured_delay_ns);
        assert!(last.ratio < 0.995, "{}", last.ratio);
    }
}

// SPDX-License-Identifier: MPL-2.0
//! The target delay of adaptive mode, from the relative arrival delay of each packet.
//!
//! Each packet's *relative delay* is how much later it arrived than the fastest path predicts
//! for its media position (the lower-envelope line of [`SkewEstimator`], so sender skew does
//! not show up as delay). Relative delays go into a histogram with exponential forgetting (a
//! time constant of seconds, NetEq style: old packets weigh less instead of being removed).
//! The target is
//! * the smaller of the `headroom_quantile` (0.995) of the histogram and the largest relative
//!   delay seen in the last `peak_hold_ns` (so the target falls within that time when the
//!   jitter shrinks, whatever the histogram still remembers), plus `safety_ns` for the
//!   controller's error,
//! * but at most the base `quantile` (0.95) plus `headroom_max_ns` (a heavy tail is cut
//!   there: its last few percent arrive late rather than delaying everything),
//!
//! clamped to `min_ns..=max_ns`. The 0.995 quantile needs only 0.5 % of the (recent) mass, so
//! a rise in jitter raises the target within a few packets.
//!
//! After an outage (no packet for `outage_gap_ns`, or twice the target) the held packets
//! arrive in a burst with large relative delays that say nothing about the jitter: they are
//! left out until a packet arrives within the target again.

use super::controller::{SkewConfig, SkewEstimator};
use std::collections::VecDeque;

/// Parameters of the [`DelayEstimator`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelayConfig {
    pub skew: SkewConfig,
    /// Bounds of the target (the element's min and max latency).
    pub min_ns: u64,
    pub max_ns: u64,
    pub quantile: f64,
    pub headroom_quantile: f64,
    pub headroom_max_ns: u64,
    /// Added to the high quantile (and the peak) to cover the controller's error; the
    /// `quantile + headroom_max_ns` cap still applies.
    pub safety_ns: u64,
    /// Time constant of the histogram's forgetting.
    pub decay_ns: u64,
    pub peak_hold_ns: u64,
    pub bin_ns: u64,
    pub outage_gap_ns: u64,
}

impl Default for DelayConfig {
    fn default() -> Self {
        Self {
            skew: SkewConfig::default(),
            min_ns: 5_000_000,
            max_ns: 500_000_000,
            quantile: 0.95,
            headroom_quantile: 0.995,
            headroom_max_ns: 8_000_000,
            safety_ns: 2_000_000,
            decay_ns: 2_000_000_000,
            peak_hold_ns: 4_000_000_000,
            bin_ns: 1_000_000,
            outage_gap_ns: 200_000_000,
        }
    }
}

/// What one packet told the estimator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Arrival minus expected arrival (ns); can be slightly negative while the baseline settles.
    pub relative_delay_ns: f64,
    /// Part of a burst after an outage: not counted in the histogram.
    pub burst: bool,
}

/// Adaptive-mode target delay.
#[derive(Debug, Clone)]
pub struct DelayEstimator {
    cfg: DelayConfig,
    skew: SkewEstimator,
    bins: Vec<f64>,
    total: f64,
    /// Forgetting is done by weighing new packets more: weight = exp((t - t_ref) / decay).
    t_ref: Option<u64>,
    /// Maxima of the relative delay per bucket of `peak_hold_ns / 8`: (bucket index, max).
    peaks: VecDeque<(u64, f64)>,
    last_arrival: Option<u64>,
    in_burst: bool,
    /// Newest media position seen.
    newest_pos: Option<u64>,
    /// The burst's media: newer than the newest position before the outage (`.0`), older
    /// than the first packet that arrived on time again (`.1`, open while in the burst).
    /// Stragglers of the burst that arrive after fresh packets stay left out.
    burst_span: Option<(u64, Option<u64>)>,
    target_ns: u64,
}

const PEAK_BUCKETS: u64 = 8;

impl DelayEstimator {
    pub fn new(cfg: DelayConfig) -> Self {
        let nbins = (cfg.max_ns / cfg.bin_ns.max(1)) as usize + 1;
        Self {
            skew: SkewEstimator::new(cfg.skew),
            bins: vec![0.0; nbins],
            total: 0.0,
            t_ref: None,
            peaks: VecDeque::new(),
            last_arrival: None,
            in_burst: false,
            newest_pos: None,
            burst_span: None,
            target_ns: cfg.min_ns,
            cfg,
        }
    }

    /// Feed one packet: arrival time and the media position (frames) of its first sample.
    /// Arrivals must be fed in arrival order.
    pub fn push(&mut self, arrival_ns: u64, media_pos: u64) -> Observation {
        let expected = self
            .skew
            .expected_arrival_ns(media_pos as f64)
            .unwrap_or(arrival_ns as f64);
        let rel = arrival_ns as f64 - expected;

        if let Some(last) = self.last_arrival {
            let gap = arrival_ns.saturating_sub(last);
            if gap > self.cfg.outage_gap_ns.max(2 * self.target_ns) {
                self.in_burst = true;
                self.burst_span = self.newest_pos.map(|p| (p, None));
            }
        }
        self.last_arrival = Some(arrival_ns);
        self.newest_pos = Some(self.newest_pos.map_or(media_pos, |p| p.max(media_pos)));
        if self.in_burst && rel <= self.target_ns as f64 {
            self.in_burst = false;
            if let Some((from, None)) = self.burst_span {
                self.burst_span = Some((from, Some(media_pos)));
            }
        }
        let straggler =
            matches!(self.burst_span, Some((from, Some(to))) if media_pos > from && media_pos < to);
        if self.in_burst || straggler {
            return Observation {
                relative_delay_ns: rel,
                burst: true,
            };
        }

        self.skew.push(arrival_ns, media_pos);
        self.add_to_histogram(arrival_ns, rel.max(0.0));
        self.add_peak(arrival_ns, rel.max(0.0));
        self.target_ns = self.compute_target();
        Observation {
            relative_delay_ns: rel,
            burst: false,
        }
    }

    fn add_to_histogram(&mut self, now: u64, rel: f64) {
        let t_ref = *self.t_ref.get_or_insert(now);
        let mut w = (now.saturating_sub(t_ref) as f64 / self.cfg.decay_ns as f64).exp();
        if w > 1e100 {
            // Rescale to keep the numbers finite; proportions are unchanged.
            for b in &mut self.bins {
                *b /= w;
            }
            self.total /= w;
            self.t_ref = Some(now);
            w = 1.0;
        }
        let bin = ((rel / self.cfg.bin_ns as f64) as usize).min(self.bins.len() - 1);
        self.bins[bin] += w;
        self.total += w;
    }

    fn add_peak(&mut self, now: u64, rel: f64) {
        let width = (self.cfg.peak_hold_ns / PEAK_BUCKETS).max(1);
        let bucket = now / width;
        match self.peaks.back_mut() {
            Some((b, m)) if *b == bucket => *m = m.max(rel),
            _ => self.peaks.push_back((bucket, rel)),
        }
        while let Some(&(b, _)) = self.peaks.front() {
            if b + PEAK_BUCKETS < bucket {
                self.peaks.pop_front();
            } else {
                break;
            }
        }
    }

    /// The `q` quantile of the remembered relative delays (upper edge of its bin), ns.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.total <= 0.0 {
            return 0;
        }
        let tail = (1.0 - q) * self.total;
        let mut acc = 0.0;
        for (i, b) in self.bins.iter().enumerate().rev() {
            acc += b;
            if acc > tail {
                return (i as u64 + 1) * self.cfg.bin_ns;
            }
        }
        self.cfg.bin_ns
    }

    fn compute_target(&self) -> u64 {
        let hi = self.quantile_ns(self.cfg.headroom_quantile);
        let base = self.quantile_ns(self.cfg.quantile) + self.cfg.headroom_max_ns;
        let peak = self.peaks.iter().map(|p| p.1).fold(0.0, f64::max).ceil() as u64;
        (hi.min(peak.max(self.cfg.bin_ns)) + self.cfg.safety_ns)
            .min(base)
            .clamp(self.cfg.min_ns, self.cfg.max_ns)
    }

    /// The target delay, ns, within `min_ns..=max_ns`.
    pub fn target_ns(&self) -> u64 {
        self.target_ns
    }

    /// The baseline and skew estimate behind the relative delays.
    pub fn skew(&self) -> &SkewEstimator {
        &self.skew
    }

    /// True while packets are left out as the burst after an outage.
    pub fn in_burst(&self) -> bool {
        self.in_burst
    }
}

/// How long after its expected (fastest-path) arrival the media at `playing_pos` (frames) is
/// being played at `now_ns`: the playout delay the rate controller holds at the target.
pub fn playout_delay_ns(skew: &SkewEstimator, now_ns: u64, playing_pos: f64) -> Option<f64> {
    skew.expected_arrival_ns(playing_pos)
        .map(|e| now_ns as f64 - e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impair::Rng;

    const MS: u64 = 1_000_000;

    /// Feeds 10 ms packets with uniform jitter `jitter_ms(t_s)` and returns the target every
    /// 100 ms, in ms.
    fn run(seconds: u64, jitter_ms: impl Fn(f64) -> f64) -> Vec<f64> {
        let mut est = DelayEstimator::new(DelayConfig::default());
        let mut rng = Rng::new(11);
        let mut out = vec![];
        for i in 0..seconds * 100 {
            let t = i as f64 * 0.01;
            let arrive = 1e9 + t * 1e9 + rng.next_f64() * jitter_ms(t) * 1e6;
            est.push(arrive as u64, i * 480);
            if i % 10 == 9 {
                out.push(est.target_ns() as f64 / 1e6);
            }
        }
        out
    }

    #[test]
    fn target_sits_near_the_high_quantile_of_uniform_jitter() {
        let t = run(30, |_| 40.0);
        let last = t[t.len() - 50..].iter().sum::<f64>() / 50.0;
        // q99.5 of U(0, 40) is 39.8 ms (bins round up by 1 ms), plus 2 ms of safety; the cap,
        // q95 + 8 ms, is 46 ms.
        assert!((40.0..=44.0).contains(&last), "{last}");
    }

    #[test]
    fn jitter_rise_is_followed_within_500_ms_and_fall_within_5_s() {
        let t = run(40, |t| if (10.0..20.0).contains(&t) { 60.0 } else { 5.0 });
        assert!(t[95] < 12.0, "{}", t[95]);
        // The 0.995 quantile jumps with the first few packets; the q95 + 8 ms cap needs about
        // 5 % of the remembered mass, ~0.5 s (sample i covers up to (i + 1) * 100 ms).
        assert!(t[100] > 10.0, "{}", t[100]);
        assert!(t[104] > 50.0, "{}", t[104]);
        assert!(t[150] > 55.0);
        // Back to small jitter at 20 s: within 5 s the target is back near 5 ms.
        assert!(t[249] < 12.0, "{}", t[249]);
    }

    #[test]
    fn outage_burst_does_not_raise_the_target() {
        let mut est = DelayEstimator::new(DelayConfig::default());
        let mut rng = Rng::new(5);
        let mut max_target = 0;
        for i in 0..3000u64 {
            let t = i * 10 * MS;
            let mut arrive = 1_000 * MS + t + (rng.next_f64() * 20e6) as u64;
            if (10_000 * MS..10_500 * MS).contains(&t) {
                arrive = arrive.max(1_000 * MS + 10_520 * MS + (t - 10_000 * MS) / 200);
            }
            let obs = est.push(arrive, i * 480);
            if t > 5_000 * MS {
                max_target = max_target.max(est.target_ns());
            }
            if t == 10_000 * MS {
                assert!(obs.burst);
            }
        }
        assert!(max_target < 25 * MS, "{}", max_target / MS);
    }

    #[test]
    fn burst_stragglers_after_fresh_packets_stay_out() {
        // The burst after a 1 s outage comes 1 ms apart, interleaved with fresh packets that
        // arrive on time (a network that does not keep order): the first fresh one ends the
        // burst, the older packets still arriving after it must not count as jitter.
        let mut est = DelayEstimator::new(DelayConfig::default());
        let mut rng = Rng::new(9);
        let mut packets: Vec<(u64, u64)> = (0..3000u64)
            .map(|i| {
                let t = i * 20 * MS;
                let mut arrive = 1_000 * MS + t + (rng.next_f64() * 10e6) as u64;
                if (30_000 * MS..31_000 * MS).contains(&arrive) {
                    arrive = 31_000 * MS + (t.saturating_sub(29_000 * MS)) / 20;
                }
                (arrive, i * 960)
            })
            .collect();
        packets.sort();
        let mut max_target = 0;
        for (arrive, pos) in packets {
            est.push(arrive, pos);
            if arrive > 5_000 * MS {
                max_target = max_target.max(est.target_ns());
            }
        }
        assert!(max_target < 20 * MS, "{}", max_target / MS);
    }
}

// SPDX-License-Identifier: MPL-2.0
//! The rate controller and the skew estimator.
//!
//! * [`SkewEstimator`] fits the lower envelope of (media position, arrival time): per window it
//!   keeps the packet that arrived earliest relative to the current fit (the one that queued
//!   least in the network), and fits a line through those minima by least squares, with one
//!   round of outlier rejection. Jitter only ever adds delay, so the minima sit on the fast path
//!   and the slope is not biased by jitter. The line gives the *expected arrival* of any media
//!   position (the baseline the delay estimator and the playout delay are measured from) and
//!   the sender's skew in ppm.
//! * [`RateController`] is a PI loop on the playout-delay error with two gears (wide while
//!   acquiring, narrow once locked), a slew limit on its output and a range of ±3 %. Its output
//!   is the resampling ratio (output rate / input rate, as rubato defines it).
//!
//! Pure: plain numbers in, plain numbers out; the caller passes `now`.

use std::collections::VecDeque;

const NS: f64 = 1e9;

/// Parameters of the [`SkewEstimator`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkewConfig {
    /// Nominal sample rate of the media clock (frames per second).
    pub rate: u32,
    /// Length of one window whose earliest packet becomes a fit point. The first windows are
    /// shorter (a quarter, a half) so that a first line exists after 0.5 s.
    pub window_ns: u64,
    /// How many window minima the fit keeps (the fit spans `windows * window_ns`).
    pub windows: usize,
}

impl Default for SkewConfig {
    fn default() -> Self {
        Self {
            rate: 48_000,
            window_ns: 1_000_000_000,
            windows: 60,
        }
    }
}

/// Robust estimate of the sender's clock against the receiver's: a line through the lower
/// envelope of arrival time against media position.
#[derive(Debug, Clone)]
pub struct SkewEstimator {
    cfg: SkewConfig,
    nominal_ns_per_frame: f64,
    /// Arrival and media position of the first packet: all maths is relative to it, in f64.
    origin: Option<(u64, u64)>,
    /// Window being filled: start time and its best point (x frames, y ns, residual).
    window_start: Option<u64>,
    window_best: Option<(f64, f64, f64)>,
    points: VecDeque<(f64, f64)>,
    /// Before the first fit: smallest `y - x * nominal` seen.
    min_offset: f64,
    /// Fitted line y = a + b * x (y: ns since origin, x: frames since origin).
    fit: Option<(f64, f64)>,
    /// Standard error of the slope, relative (divide by b), when at least 3 points are used.
    slope_rel_err: Option<f64>,
}

impl SkewEstimator {
    pub fn new(cfg: SkewConfig) -> Self {
        Self {
            nominal_ns_per_frame: NS / cfg.rate as f64,
            cfg,
            origin: None,
            window_start: None,
            window_best: None,
            points: VecDeque::with_capacity(cfg.windows + 1),
            min_offset: f64::INFINITY,
            fit: None,
            slope_rel_err: None,
        }
    }

    /// Feed one packet: when it arrived and the media position (in frames, unwrapped) of its
    /// first sample. Packets may come in any order; loss needs no special handling.
    pub fn push(&mut self, arrival_ns: u64, media_pos: u64) {
        let (oa, op) = *self.origin.get_or_insert((arrival_ns, media_pos));
        let window_start = *self.window_start.get_or_insert(arrival_ns);
        let window_ns = match self.points.len() {
            0 => self.cfg.window_ns / 4,
            1 => self.cfg.window_ns / 2,
            _ => self.cfg.window_ns,
        }
        .max(1);
        let x = media_pos as f64 - op as f64;
        let y = arrival_ns as f64 - oa as f64;
        if arrival_ns >= window_start + window_ns {
            self.close_window();
            // Skip empty windows (an outage) instead of walking through them one by one.
            let elapsed = arrival_ns - window_start;
            self.window_start = Some(window_start + elapsed / window_ns * window_ns);
        }
        self.min_offset = self.min_offset.min(y - x * self.nominal_ns_per_frame);
        // Pick the window's minimum against the nominal slope until the fit spans a few
        // windows: an early two-point fit is steep noise, and choosing minima against it
        // would keep tilting the next fits the same way.
        let residual = if self.points.len() >= 4 {
            y - self.predict_rel(x)
        } else {
            y - x * self.nominal_ns_per_frame
        };
        match self.window_best {
            Some((_, _, best)) if best <= residual => {}
            _ => self.window_best = Some((x, y, residual)),
        }
    }

    fn predict_rel(&self, x: f64) -> f64 {
        match self.fit {
            Some((a, b)) => a + b * x,
            None => {
                let off = if self.min_offset.is_finite() {
                    self.min_offset
                } else {
                    0.0
                };
                off + x * self.nominal_ns_per_frame
            }
        }
    }

    fn close_window(&mut self) {
        let Some((x, y, _)) = self.window_best.take() else {
            return;
        };
        self.points.push_back((x, y));
        while self.points.len() > self.cfg.windows {
            self.points.pop_front();
        }
        self.refit();
    }

    fn refit(&mut self) {
        if self.points.len() < 2 {
            return;
        }
        let Some((a, b, se0)) = fit_line(self.points.iter().copied()) else {
            return;
        };
        // One round of outlier rejection: a window whose minimum is far above the line (a
        // window that only saw a late burst after an outage) must not tilt it. The envelope
        // can only be pulled up by jitter, so reject only upward.
        let mut used = (a, b);
        let mut rel_err = se0.map(|s| s / b.abs());
        if self.points.len() >= 4 {
            let mut res: Vec<f64> = self.points.iter().map(|&(x, y)| y - (a + b * x)).collect();
            res.sort_by(f64::total_cmp);
            let med = res[res.len() / 2];
            let mut dev: Vec<f64> = res.iter().map(|r| (r - med).abs()).collect();
            dev.sort_by(f64::total_cmp);
            let mad = dev[dev.len() / 2];
            let limit = med + 4.0 * mad + 1e6; // 1 ms floor
            let kept = self
                .points
                .iter()
                .copied()
                .filter(|&(x, y)| y - (a + b * x) <= limit);
            if let Some((a2, b2, se)) = fit_line(kept) {
                used = (a2, b2);
                rel_err = se.map(|s| s / b2.abs());
            }
        }
        // A sender cannot be more than 5 % off; anything else is a broken fit.
        let nominal = self.nominal_ns_per_frame;
        if (used.1 / nominal - 1.0).abs() < 0.05 {
            self.fit = Some(used);
            self.slope_rel_err = rel_err;
        }
    }

    /// When media position `media_pos` (frames, may be fractional) arrives on the fastest
    /// network path, in receiver ns; `None` before the first packet.
    pub fn expected_arrival_ns(&self, media_pos: f64) -> Option<f64> {
        let (oa, op) = self.origin?;
        Some(oa as f64 + self.predict_rel(media_pos - op as f64))
    }

    /// Sender skew in ppm (positive: the sender's clock is fast, more frames arrive than the
    /// nominal rate), once two windows have been seen.
    pub fn skew_ppm(&self) -> Option<f64> {
        self.fit
            .map(|(_, b)| (self.nominal_ns_per_frame / b - 1.0) * 1e6)
    }

    /// Standard error of [`Self::skew_ppm`] from the fit residuals (3 windows or more); with
    /// only two windows, a bound that assumes ±1 ms of envelope noise.
    pub fn skew_stderr_ppm(&self) -> Option<f64> {
        match self.slope_rel_err {
            Some(e) => Some(e * 1e6),
            None if self.fit.is_some() && self.span_ns() > 0.0 => Some(2e6 / self.span_ns() * 1e6),
            None => None,
        }
    }

    /// Time spanned by the fit points, ns.
    pub fn span_ns(&self) -> f64 {
        match (self.points.front(), self.points.back()) {
            (Some(f), Some(l)) => l.1 - f.1,
            _ => 0.0,
        }
    }
}

/// Least squares y = a + b x; also the standard error of b when there are 3 or more points.
fn fit_line(points: impl Iterator<Item = (f64, f64)> + Clone) -> Option<(f64, f64, Option<f64>)> {
    let mut n = 0.0;
    let (mut sx, mut sy) = (0.0, 0.0);
    for (x, y) in points.clone() {
        n += 1.0;
        sx += x;
        sy += y;
    }
    if n < 2.0 {
        return None;
    }
    let (mx, my) = (sx / n, sy / n);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (x, y) in points.clone() {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
    }
    if sxx <= 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    let se = (n >= 3.0).then(|| {
        let sse: f64 = points.map(|(x, y)| (y - a - b * x).powi(2)).sum();
        (sse / (n - 2.0) / sxx).sqrt()
    });
    Some((a, b, se))
}

/// Parameters of the [`RateController`]. Gains are per second (error in seconds, correction
/// as a fraction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerConfig {
    /// Largest total correction, either way (0.03 = ±3 %).
    pub max_correction: f64,
    /// Largest correction the proportional part may add on top of the integral (how fast a
    /// delay error is worked off; 0.01 works off 10 ms per second).
    pub max_catchup: f64,
    /// Acquisition gear: proportional (1/s) and integral (1/s²) gains, output slew (1/s).
    pub acquire_kp: f64,
    pub acquire_ki: f64,
    pub acquire_slew: f64,
    /// Locked gear.
    pub lock_kp: f64,
    pub lock_ki: f64,
    pub lock_slew: f64,
    /// Time constant (s) of the lag on the locked output.
    pub lock_smooth_s: f64,
    /// Lock when |error| stayed below `lock_band_ns` for `lock_after_ns`; unlock above
    /// `unlock_band_ns`.
    pub lock_band_ns: f64,
    pub lock_after_ns: u64,
    pub unlock_band_ns: f64,
    /// For `target_settle_ns` after the target moved by more than `integrate_band_ns` (or after
    /// a first step that far off the target), the integral only learns while |error| is below
    /// `integrate_band_ns`: working off a target jump must not wind it up (a drift, by
    /// contrast, must be learned however large).
    pub integrate_band_ns: f64,
    pub target_settle_ns: u64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            max_correction: 0.03,
            max_catchup: 0.01,
            // ωn ≈ 0.28 rad/s, ζ ≈ 0.9: pulls in within ~15 s.
            acquire_kp: 0.5,
            acquire_ki: 0.08,
            acquire_slew: 0.01,
            // ωn = 0.05 rad/s, ζ = 1: a 0.1 ms step of the measured delay moves the command
            // by 10 ppm, which the 3 s output lag turns into a ramp of at most 3 ppm/s.
            lock_kp: 0.1,
            lock_ki: 0.0025,
            lock_slew: 100e-6,
            lock_smooth_s: 3.0,
            lock_band_ns: 2e6,
            lock_after_ns: 3_000_000_000,
            unlock_band_ns: 5e6,
            integrate_band_ns: 15e6,
            target_settle_ns: 10_000_000_000,
        }
    }
}

/// PI loop from the playout-delay error to the resampling ratio.
#[derive(Debug, Clone)]
pub struct RateController {
    cfg: ControllerConfig,
    /// Applied correction: the input is consumed `1 + correction` times faster than nominal.
    correction: f64,
    integral: f64,
    last_now: Option<u64>,
    locked: bool,
    in_band_since: Option<(u64, f64)>,
    hint: Option<(f64, f64)>,
    /// Target when it last moved by more than the band, and when.
    last_target: Option<f64>,
    target_moved_at: Option<u64>,
}

impl RateController {
    pub fn new(cfg: ControllerConfig) -> Self {
        Self {
            cfg,
            correction: 0.0,
            integral: 0.0,
            last_now: None,
            locked: false,
            in_band_since: None,
            hint: None,
            last_target: None,
            target_moved_at: None,
        }
    }

    /// Tell the controller what the skew estimator measures (ppm and its standard error).
    /// While acquiring, a confident estimate far from the integral replaces it, so a large
    /// skew is pulled in at once instead of being integrated out of a large delay error.
    pub fn set_skew_hint(&mut self, skew_ppm: f64, stderr_ppm: f64) {
        self.hint = Some((skew_ppm * 1e-6, stderr_ppm * 1e-6));
    }

    /// One control step. `measured_delay_ns`: how long after its expected (fastest-path)
    /// arrival the media now being played arrived; `target_delay_ns`: where it should be.
    /// Returns the resampling ratio (output rate / input rate): below 1 consumes input faster.
    pub fn update(&mut self, now_ns: u64, measured_delay_ns: f64, target_delay_ns: f64) -> f64 {
        let dt = match self.last_now {
            Some(last) if now_ns > last => (now_ns - last) as f64 / NS,
            Some(_) => 0.0,
            None => 0.0,
        };
        self.last_now = Some(now_ns);
        let err_ns = measured_delay_ns - target_delay_ns;
        let cfg = self.cfg;

        // Gear changes: lock once the error stayed inside the band, and did not move by more
        // than a fifth of the band (0.4 ms in 3 s: the rate is within ~130 ppm), for `lock_after_ns` (so a loop still sweeping through zero does
        // not lock); unlock outside the wider band.
        if err_ns.abs() > cfg.unlock_band_ns {
            self.locked = false;
            self.in_band_since = None;
        } else if err_ns.abs() < cfg.lock_band_ns {
            let (since, err_then) = *self.in_band_since.get_or_insert((now_ns, err_ns));
            if (err_ns - err_then).abs() > 0.2 * cfg.lock_band_ns {
                self.in_band_since = Some((now_ns, err_ns));
            } else if now_ns.saturating_sub(since) >= cfg.lock_after_ns {
                self.locked = true;
            }
        } else {
            self.in_band_since = None;
        }
        let (kp, ki, slew) = if self.locked {
            (cfg.lock_kp, cfg.lock_ki, cfg.lock_slew)
        } else {
            (cfg.acquire_kp, cfg.acquire_ki, cfg.acquire_slew)
        };
        let err = err_ns / NS;
        let proportional = (kp * err).clamp(-cfg.max_catchup, cfg.max_catchup);
        if !self.locked
            && let Some((hint, se)) = self.hint.take()
            && se < (2000e-6f64).max(hint.abs() / 4.0)
            && (hint - self.integral).abs() > (3.0 * se).max(200e-6)
        {
            self.integral = hint.clamp(-cfg.max_correction, cfg.max_correction);
        }

        // A start far off the target (adaptive mode starting at `latency` with a target the
        // jitter puts much lower) is worked off like a target jump: without this the integral
        // learns the whole start-up error as if it were a drift, and once the delay is down
        // (quickly, when pauses are cut) it keeps consuming faster and the delay undershoots.
        let jumped = match self.last_target {
            Some(last) => (target_delay_ns - last).abs() > cfg.integrate_band_ns,
            None => err_ns.abs() > cfg.integrate_band_ns,
        };
        if jumped || self.last_target.is_none() {
            self.last_target = Some(target_delay_ns);
        }
        if jumped {
            self.target_moved_at = Some(now_ns);
        }
        let settling = self
            .target_moved_at
            .is_some_and(|at| now_ns.saturating_sub(at) < cfg.target_settle_ns);
        if !settling || err_ns.abs() < cfg.integrate_band_ns {
            self.integral =
                (self.integral + ki * err * dt).clamp(-cfg.max_correction, cfg.max_correction);
        }
        let command = (self.integral + proportional).clamp(-cfg.max_correction, cfg.max_correction);
        // Acquiring: rate-limited only. Locked: a first-order lag as well, so the small steps
        // the measurement noise makes in the command become gentle ramps. The integral keeps
        // what acquisition learned across the gear change, so the locked output first glides
        // (at up to `lock_slew`) to where the narrow gear wants it.
        let gap = command - self.correction;
        let step = if self.locked {
            gap * (dt / cfg.lock_smooth_s).min(1.0)
        } else {
            gap
        };
        self.correction += step.clamp(-slew * dt, slew * dt);
        self.ratio()
    }

    /// Current ratio (output rate / input rate).
    pub fn ratio(&self) -> f64 {
        1.0 / (1.0 + self.correction)
    }

    /// Current correction in ppm: positive consumes input faster than nominal, which is what a
    /// fast sender needs.
    pub fn correction_ppm(&self) -> f64 {
        self.correction * 1e6
    }

    /// The integral part of the correction in ppm: the rate difference the loop has learned,
    /// without what it adds for the delay error of the moment (the sender's skew, once the
    /// delay holds).
    pub fn integral_ppm(&self) -> f64 {
        self.integral * 1e6
    }

    /// The parameters it runs with.
    pub fn config(&self) -> &ControllerConfig {
        &self.cfg
    }

    /// True once the delay error has stayed small and the narrow gear is in use.
    pub fn is_locked(&self) -> bool {
        self.locked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impair::Rng;

    const MS: u64 = 1_000_000;

    fn estimate(skew_ppm: f64, jitter_ms: f64, seconds: u64, seed: u64) -> SkewEstimator {
        let mut est = SkewEstimator::new(SkewConfig::default());
        let mut rng = Rng::new(seed);
        for i in 0..seconds * 100 {
            let sent = i as f64 * 10e6 / (1.0 + skew_ppm * 1e-6);
            let arrive = 1_000_000_000.0 + sent + rng.next_f64() * jitter_ms * 1e6;
            est.push(arrive as u64, i * 480);
        }
        est
    }

    #[test]
    fn skew_estimate_is_unbiased_by_uniform_jitter() {
        for (ppm, seed) in [
            (1000.0, 1),
            (-1000.0, 2),
            (100.0, 3),
            (0.0, 4),
            (25_000.0, 5),
        ] {
            let est = estimate(ppm, 80.0, 30, seed);
            let got = est.skew_ppm().unwrap();
            assert!((got - ppm).abs() < 40.0, "{ppm}: {got}");
            assert!(est.skew_stderr_ppm().unwrap() < 60.0);
        }
    }

    #[test]
    fn expected_arrival_follows_the_fast_path() {
        let est = estimate(500.0, 40.0, 20, 7);
        // Position 1000 packets in: sent at 10 s / (1 + 500 ppm), no base delay.
        let exp = est.expected_arrival_ns(100_000.0 * 4.8).unwrap();
        let truth = 1e9 + 1000.0 * 10e6 / 1.0005;
        assert!((exp - truth).abs() < 2e6, "{}", (exp - truth) / 1e6);
    }

    #[test]
    fn windows_seen_only_during_a_burst_are_rejected() {
        let mut est = SkewEstimator::new(SkewConfig::default());
        for i in 0..3000u64 {
            let mut arrive = 1_000_000_000 + i * 10 * MS;
            // 1.5 s outage from 10 s, then everything held arrives at once.
            let t = i * 10 * MS;
            if (10_000 * MS..11_500 * MS).contains(&t) {
                arrive = 1_000_000_000 + 11_500 * MS + (t - 10_000 * MS) / 100;
            }
            est.push(arrive, i * 480);
        }
        assert!(est.skew_ppm().unwrap().abs() < 5.0, "{:?}", est.skew_ppm());
    }

    #[test]
    fn slews_and_stays_in_range() {
        let mut c = RateController::new(ControllerConfig::default());
        let mut last = c.ratio();
        for k in 0..1000u64 {
            // A huge error: the correction may change by at most 1 %/s = 100 ppm per 10 ms.
            let r = c.update(k * 10 * MS, 500e6, 0.0);
            let d = (1.0 / r - 1.0 / last).abs();
            assert!(d <= 100e-6 + 1e-12, "{d}");
            last = r;
            assert!((1.0 / r - 1.0).abs() <= 0.03 + 1e-12);
        }
        // Too much delay: consume faster, i.e. a ratio below 1.
        assert!(c.ratio() < 1.0);
    }

    #[test]
    fn integral_removes_a_constant_skew() {
        // Plant: d(delay)/dt = skew - correction.
        let mut c = RateController::new(ControllerConfig::default());
        let skew = 300e-6;
        let mut delay = 60e6;
        for k in 0..6000u64 {
            let r = c.update(k * 10 * MS, delay, 60e6);
            delay += (skew - (1.0 / r - 1.0)) * 10e6;
        }
        assert!((delay - 60e6).abs() < 0.5e6, "{}", delay / 1e6);
        assert!((c.correction_ppm() - 300.0).abs() < 20.0);
        assert!(c.is_locked());
    }
}

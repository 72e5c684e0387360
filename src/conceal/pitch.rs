// SPDX-License-Identifier: MPL-2.0
//! Pitch period estimation by normalized cross-correlation.
//!
//! The channels are mixed to mono and normalized to a peak of 1 (the correlation does not depend
//! on the level, and this keeps the `f32` sums bounded whatever the input). A coarse search runs
//! on a copy decimated to about [`COARSE_RATE_HZ`] by block averaging; the best candidates are
//! then refined at full rate around their coarse lag. Run once per concealed stretch.

use super::ms_to_frames;

/// Shortest period searched (400 Hz).
pub(super) const MIN_PERIOD_MS: f32 = 2.5;
/// Longest period searched (50 Hz).
pub(super) const MAX_PERIOD_MS: f32 = 20.0;
/// The newest audio that is compared with its lagged copies.
pub(super) const WINDOW_MS: f32 = 20.0;
/// Rate of the coarse search.
const COARSE_RATE_HZ: u32 = 8_000;
/// Below this best correlation the audio is taken as unvoiced and the longest period is used
/// (a long repeated segment buzzes less), if the history allowed searching that far. White
/// noise reaches about 0.25 by chance; voiced speech is usually above 0.6.
const UNVOICED_CORRELATION: f32 = 0.45;
/// A shorter coarse peak within this ratio of the best one is refined as a candidate...
const SHORTER_PEAK_RATIO: f32 = 0.9;
/// ...and chosen when at full rate it is within this ratio of the best: a stationary signal
/// correlates as well at every multiple of its period, and the period itself is wanted.
const SHORTER_PERIOD_RATIO: f32 = 0.95;
/// Peak below which the history counts as silent.
const SILENCE_PEAK: f32 = 1e-12;
/// Partial sums in a dot product (lets the compiler vectorize it).
const LANES: usize = 8;

/// Pitch estimator with its scratch buffers, allocated once.
#[derive(Debug)]
pub(super) struct PitchSearch {
    min_lag: usize,
    max_lag: usize,
    window: usize,
    /// Decimation factor of the coarse search.
    factor: usize,
    /// Mono mix of the newest `window + max_lag` frames.
    mono: Vec<f32>,
    /// `mono` decimated by `factor`.
    coarse: Vec<f32>,
    /// Coarse correlation per coarse lag, from the shortest.
    scores: Vec<f32>,
    /// Normalized correlation at the period of the last estimate (0 when none): the voicing.
    score: f32,
}

impl PitchSearch {
    pub(super) fn new(rate: u32) -> Self {
        let min_lag = ms_to_frames(MIN_PERIOD_MS, rate).max(1);
        let max_lag = ms_to_frames(MAX_PERIOD_MS, rate).max(min_lag);
        let window = ms_to_frames(WINDOW_MS, rate).max(1);
        let factor = ((rate + COARSE_RATE_HZ / 2) / COARSE_RATE_HZ).max(1) as usize;
        let span = window + max_lag;
        Self {
            min_lag,
            max_lag,
            window,
            factor,
            mono: vec![0.0; span],
            coarse: vec![0.0; span / factor],
            scores: vec![0.0; max_lag / factor + 1],
            score: 0.0,
        }
    }

    /// The pitch period in frames of the end of `history` (interleaved, oldest first, at least
    /// `window + max_lag` frames), at most `longest` frames. `None` when no period fits, the
    /// history is silent, or it is unvoiced and too short to search the whole range.
    pub(super) fn estimate(
        &mut self,
        history: &[f32],
        channels: usize,
        longest: usize,
    ) -> Option<usize> {
        self.score = 0.0;
        let (period, score) = self.search(history, channels, longest)?;
        self.score = score;
        Some(period)
    }

    /// The normalized correlation at the period of the last [`PitchSearch::estimate`] (at the
    /// best coarse lag when unvoiced), 0 when it found none.
    pub(super) fn score(&self) -> f32 {
        self.score
    }

    fn search(&mut self, history: &[f32], channels: usize, longest: usize) -> Option<(usize, f32)> {
        let max_lag = self.max_lag.min(longest);
        if max_lag < self.min_lag || !self.mix_to_mono(history, channels) {
            return None;
        }
        self.decimate();
        let lo = self.min_lag.div_ceil(self.factor);
        let hi = max_lag / self.factor;
        if lo > hi {
            // A range narrower than one coarse step: search it all at full rate.
            return Some(self.refine(self.min_lag, max_lag));
        }
        self.score_coarse(lo, hi);
        let scores = &self.scores[..=hi - lo];
        let (best, best_score) = best_score(scores);
        if best_score < UNVOICED_CORRELATION {
            // With the full range searched, repeat the longest period. With a history too short
            // for that, the period may simply be out of reach: report none rather than loop a
            // segment that does not match itself.
            return (max_lag == self.max_lag).then_some((max_lag, best_score));
        }
        let (lag, score) = self.refine_around((lo + best) * self.factor, max_lag);
        if let Some(shorter) =
            first_peak_above(scores, SHORTER_PEAK_RATIO * best_score).filter(|&i| i < best)
        {
            let (short_lag, short_score) =
                self.refine_around((lo + shorter) * self.factor, max_lag);
            if short_score >= SHORTER_PERIOD_RATIO * score {
                return Some((short_lag, short_score));
            }
        }
        Some((lag, score))
    }

    /// Mixes the newest frames of `history` into `mono`, normalized to a peak of 1. False if
    /// silent.
    fn mix_to_mono(&mut self, history: &[f32], channels: usize) -> bool {
        let span = self.mono.len();
        let frames = &history[history.len() - span * channels..];
        let share = 1.0 / channels as f32;
        let mut peak = 0.0f32;
        for (m, frame) in self.mono.iter_mut().zip(frames.chunks_exact(channels)) {
            // Scaling before adding keeps the mix finite for any finite input.
            *m = frame.iter().map(|&s| s * share).sum();
            peak = peak.max(m.abs());
        }
        if peak <= SILENCE_PEAK {
            return false;
        }
        let gain = 1.0 / peak;
        self.mono.iter_mut().for_each(|m| *m *= gain);
        true
    }

    /// Block-averages `mono` into `coarse`, aligned on the newest frame.
    fn decimate(&mut self) {
        let skip = self.mono.len() - self.coarse.len() * self.factor;
        let share = 1.0 / self.factor as f32;
        for (c, block) in self
            .coarse
            .iter_mut()
            .zip(self.mono[skip..].chunks_exact(self.factor))
        {
            *c = block.iter().sum::<f32>() * share;
        }
    }

    /// Fills `scores[..=hi - lo]` with the coarse correlation at coarse lags `lo..=hi`.
    fn score_coarse(&mut self, lo: usize, hi: usize) {
        let n = self.coarse.len();
        let window = self.window / self.factor;
        let recent = &self.coarse[n - window..];
        let recent_energy = dot(recent, recent);
        for (score, lag) in self.scores.iter_mut().zip(lo..=hi) {
            let lagged = &self.coarse[n - window - lag..n - lag];
            *score = normalized_correlation(recent, recent_energy, lagged);
        }
    }

    /// The best full-rate lag within one coarse step of `center`.
    fn refine_around(&self, center: usize, max_lag: usize) -> (usize, f32) {
        let lo = center.saturating_sub(self.factor).max(self.min_lag);
        let hi = (center + self.factor).min(max_lag);
        self.refine(lo, hi)
    }

    /// The full-rate lag in `lo..=hi` (not empty) with the best correlation, the shortest on ties.
    fn refine(&self, lo: usize, hi: usize) -> (usize, f32) {
        let n = self.mono.len();
        let recent = &self.mono[n - self.window..];
        let recent_energy = dot(recent, recent);
        let mut best = (lo, f32::NEG_INFINITY);
        for lag in lo..=hi {
            let lagged = &self.mono[n - self.window - lag..n - lag];
            let score = normalized_correlation(recent, recent_energy, lagged);
            if score > best.1 {
                best = (lag, score);
            }
        }
        best
    }
}

/// Index and value of the highest score (the first of equals; 0 and -inf if empty).
fn best_score(scores: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &s) in scores.iter().enumerate() {
        if s > best.1 {
            best = (i, s);
        }
    }
    best
}

/// Index of the first interior local maximum of `scores` that reaches `threshold`. The ends are
/// left out: a score still falling from the shortest lag is no period.
fn first_peak_above(scores: &[f32], threshold: f32) -> Option<usize> {
    scores
        .windows(3)
        .position(|w| w[1] > w[0] && w[1] >= w[2] && w[1] >= threshold)
        .map(|i| i + 1)
}

/// Normalized cross-correlation of `recent` with `lagged` (equal lengths), given the energy of
/// `recent`: `sum(r*l) / sqrt(sum(r*r) * sum(l*l))`, 0 if either is silent.
fn normalized_correlation(recent: &[f32], recent_energy: f32, lagged: &[f32]) -> f32 {
    let energy = recent_energy * dot(lagged, lagged);
    if energy > f32::MIN_POSITIVE {
        dot(recent, lagged) / energy.sqrt()
    } else {
        0.0
    }
}

/// `sum(a*b)` over equal-length slices, in `LANES` independent partial sums so that it
/// vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(&x, &y)| x * y)
        .sum();
    for (xs, ys) in chunks_a.zip(chunks_b) {
        for ((sum, &x), &y) in sums.iter_mut().zip(xs).zip(ys) {
            *sum += x * y;
        }
    }
    sums.iter().sum::<f32>() + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `frames` of harmonics of `f0` with decaying amplitudes, the same in every channel but
    /// scaled per channel.
    fn harmonic(rate: u32, channels: usize, f0: f32, frames: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(frames * channels);
        for n in 0..frames {
            let t = n as f32 / rate as f32;
            let mut v = 0.0;
            let mut h = 1;
            while (h as f32) * f0 < 3800.0_f32.min(0.45 * rate as f32) {
                let phase = 0.7 * (h * h) as f32;
                v += 0.8f32.powi(h - 1)
                    * (2.0 * std::f32::consts::PI * h as f32 * f0 * t + phase).sin();
                h += 1;
            }
            for c in 0..channels {
                out.push(0.2 * v / (c + 1) as f32);
            }
        }
        out
    }

    fn estimate(rate: u32, channels: usize, f0: f32) -> Option<usize> {
        let mut search = PitchSearch::new(rate);
        let frames = ms_to_frames(70.0, rate);
        let history = harmonic(rate, channels, f0, frames);
        search.estimate(&history, channels, usize::MAX)
    }

    #[test]
    fn pitch_estimate_finds_period() {
        for rate in [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000] {
            for channels in [1, 2] {
                for f0 in [100.0, 200.0] {
                    let expected = rate as f32 / f0;
                    let found = estimate(rate, channels, f0).expect("a period") as f32;
                    assert!(
                        (found / expected - 1.0).abs() <= 0.02,
                        "{rate} Hz, {channels} ch, f0 {f0}: found {found}, expected {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn pitch_of_a_pure_tone_is_its_shortest_multiple_in_range() {
        // 1 kHz has a 1 ms period, below the range: the shortest multiple in range is 3 ms.
        let rate = 16000;
        let found = estimate(rate, 1, 1000.0).expect("a period");
        assert_eq!(found, 48);
    }

    #[test]
    fn silence_has_no_pitch_and_short_history_limits_it() {
        let mut search = PitchSearch::new(8000);
        let history = vec![0.0; 560];
        assert_eq!(search.estimate(&history, 1, usize::MAX), None);
        let history = harmonic(8000, 1, 100.0, 560);
        // The caller allows at most 10 frames (the history is almost empty): below the range.
        assert_eq!(search.estimate(&history, 1, 10), None);
        // Allowed 60 frames: the period (80) is out of reach and nothing shorter matches.
        assert_eq!(search.estimate(&history, 1, 60), None);
        // Allowed 100 frames: the period fits and is found.
        assert_eq!(search.estimate(&history, 1, 100), Some(80));
    }

    #[test]
    fn noise_is_unvoiced_and_uses_the_longest_period() {
        // White noise correlates up to about 0.25 at some lag of a 20 ms window, rarely more.
        for first_seed in 1..40u32 {
            let mut seed = first_seed;
            let history: Vec<f32> = (0..560)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect();
            assert_eq!(
                PitchSearch::new(8000).estimate(&history, 1, usize::MAX),
                Some(160),
                "seed {first_seed}"
            );
        }
    }

    #[test]
    fn correlation_is_bounded_for_extreme_values() {
        let a = [f32::MAX, -f32::MAX, f32::MAX, 1.0];
        let mut search = PitchSearch::new(8000);
        let history: Vec<f32> = a.iter().copied().cycle().take(560 * 2).collect();
        // Huge values are normalized first: no infinities, a sensible answer.
        assert!(search.estimate(&history, 2, usize::MAX).is_some());
        assert_eq!(normalized_correlation(&[0.0; 5], 0.0, &[1.0; 5]), 0.0);
        let a: Vec<f32> = (0..21).map(|i| (i as f32 * 0.3).sin()).collect();
        let b: Vec<f32> = a.iter().map(|x| -2.0 * x).collect();
        let c = normalized_correlation(&a, dot(&a, &a), &b);
        assert!((c + 1.0).abs() < 1e-6, "{c}");
    }
}

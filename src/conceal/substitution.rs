// SPDX-License-Identifier: MPL-2.0
//! Waveform substitution: the synthesis of one concealed stretch, after ITU-T G.711 Appendix I.
//!
//! The source is a snapshot of the history taken when the stretch starts. The newest
//! `periods * period` frames of it are played as a loop. At the loop seam the last quarter period
//! is cross-faded (raised cosine) into the audio that preceded the loop start, so the loop wraps
//! onto a sample that really followed it. When the loop widens (one more, older period), the old
//! and new loops run side by side in the same phase for a quarter period and are cross-faded.

use super::{Rise, ms_to_frames, peak, pitch, saturate};

/// The repeated segment widens up to this many periods.
pub(super) const MAX_PERIODS: usize = 3;
/// Loss time at which the segment widens to 2 and then to 3 periods.
const WIDEN_MS: [f32; MAX_PERIODS - 1] = [10.0, 20.0];
/// Loss time played at full level.
const FULL_LEVEL_MS: f32 = 10.0;
/// Loss time at which the linear fade after `FULL_LEVEL_MS` reaches 0.
const SILENT_AFTER_MS: f32 = 60.0;
/// Time over which the start-edge offset decays to 0.
pub(super) const START_CORRECTION_MS: f32 = 2.5;
/// The seam and widening cross-fades last `period / OVERLAP_DIVISOR` frames (at least 1).
pub(super) const OVERLAP_DIVISOR: usize = 4;

/// Overlap-add length for a period.
fn overlap_for(period: usize) -> usize {
    (period / OVERLAP_DIVISOR).max(1)
}

/// The longest period whose loop (period plus seam) fits in `available` frames of history.
pub(super) fn longest_period(available: usize) -> usize {
    // period + period / 4 <= available bounds it by 4/5 of the history (plus rounding).
    let mut period = (available * 4 / 5 + 1).min(available);
    while period > 0 && period + overlap_for(period) > available {
        period -= 1;
    }
    period
}

/// A position in a loop of `periods` periods.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    periods: usize,
    pos: usize,
}

impl Cursor {
    fn step(&mut self, period: usize) {
        self.pos += 1;
        if self.pos == self.periods * period {
            self.pos = 0;
        }
    }
}

/// The state of one concealed stretch.
#[derive(Debug)]
pub(super) struct Stretch {
    channels: usize,
    widen_at: [usize; MAX_PERIODS - 1],
    full_level: usize,
    silent_after: usize,
    /// Gain lost per frame after `full_level`.
    fade_per_frame: f64,
    /// The start-edge correction decays as `1 - correction.at(elapsed)`.
    correction: Rise,
    /// Frames in the snapshot; the loop ends there.
    end: usize,
    /// Period in frames; 0 when nothing usable: the loop is then silence.
    period: usize,
    /// The seam and widening cross-fade, of `overlap_for(period)` steps.
    overlap: Rise,
    /// The widest loop the history allows.
    max_periods: usize,
    /// The widest loop wanted.
    widest: usize,
    cursor: Cursor,
    /// The loop being faded out after a widening, and the fade's progress.
    fading: Option<Cursor>,
    fade_step: usize,
    /// Frames produced in this stretch.
    elapsed: usize,
    /// Level of the loop relative to the history it repeats (1 unless set by the caller).
    scale: f64,
    /// Apply the start-edge correction (unless the caller joins the loop in by itself).
    correct: bool,
    /// Per channel: last output minus the loop's own preceding sample (start-edge correction).
    offsets: Vec<f64>,
    /// Per channel: the largest magnitude in the real history. Concealment never exceeds it: the
    /// start-edge correction added to a loop of high-frequency content could otherwise
    /// overshoot up to twice the level (and clip).
    peaks: Vec<f64>,
}

impl Stretch {
    /// A stretch with G.711 Appendix I's level: full for 10 ms, silent after 60 ms.
    pub(super) fn new(rate: u32, channels: usize) -> Self {
        Self::with_options(rate, channels, true, MAX_PERIODS)
    }

    /// A stretch that stays at full level (`fade` false) for a caller that applies its own
    /// level, or with Appendix I's level (`fade` true); its loop widens up to `widest` periods
    /// (1 to `MAX_PERIODS`).
    pub(super) fn with_options(rate: u32, channels: usize, fade: bool, widest: usize) -> Self {
        let (full_level, silent_after) = if fade {
            (
                ms_to_frames(FULL_LEVEL_MS, rate),
                ms_to_frames(SILENT_AFTER_MS, rate),
            )
        } else {
            (usize::MAX, usize::MAX)
        };
        let correction_len = ms_to_frames(START_CORRECTION_MS, rate).max(1);
        let mut correction = Rise::with_capacity(correction_len);
        correction.set_len(correction_len);
        let longest_period = ms_to_frames(pitch::MAX_PERIOD_MS, rate);
        Self {
            channels,
            widen_at: WIDEN_MS.map(|ms| ms_to_frames(ms, rate)),
            full_level,
            silent_after,
            fade_per_frame: 1.0 / silent_after.saturating_sub(full_level).max(1) as f64,
            correction,
            end: 0,
            period: 0,
            overlap: Rise::with_capacity(overlap_for(longest_period)),
            max_periods: 1,
            widest: widest.clamp(1, MAX_PERIODS),
            cursor: Cursor { periods: 1, pos: 0 },
            fading: None,
            fade_step: 0,
            elapsed: 0,
            scale: 1.0,
            correct: true,
            offsets: vec![0.0; channels],
            peaks: vec![0.0; channels],
        }
    }

    /// Starts a stretch continuing `snapshot` (interleaved, oldest first; the newest `available`
    /// frames are real output) with a loop of `period` frames. `period` must leave room for its
    /// seam (see [`longest_period`]); `None` conceals with a fade of the last sample to zero.
    pub(super) fn start(&mut self, snapshot: &[f32], available: usize, period: Option<usize>) {
        self.end = snapshot.len() / self.channels;
        self.period = period.unwrap_or(0);
        self.overlap.set_len(overlap_for(self.period));
        let overlap = self.overlap.len();
        self.max_periods = (1..=self.widest)
            .rev()
            .find(|&k| k * self.period + overlap <= available)
            .unwrap_or(1);
        self.fading = None;
        self.fade_step = 0;
        self.elapsed = 0;
        // The loop resumes after its own last sample: measure how far that is from the output.
        self.cursor = Cursor {
            periods: 1,
            pos: self.period.saturating_sub(1),
        };
        let last = (self.end - 1) * self.channels;
        for c in 0..self.channels {
            let own = if self.period > 0 {
                self.loop_sample(snapshot, self.cursor, c)
            } else {
                0.0
            };
            self.offsets[c] = if self.correct {
                f64::from(snapshot[last + c]) - self.scale * own
            } else {
                0.0
            };
            let from = (self.end - available.min(self.end)) * self.channels;
            self.peaks[c] = peak(&snapshot[from..], self.channels, c);
        }
        self.cursor.pos = 0;
    }

    /// Plays the next stretch's loop at `scale` times its level, with or without the
    /// start-edge correction (from the next `start`).
    pub(super) fn set_scale(&mut self, scale: f64, correct: bool) {
        self.scale = scale;
        self.correct = correct;
    }

    /// The period in use, if any.
    pub(super) fn period(&self) -> Option<usize> {
        (self.period > 0).then_some(self.period)
    }

    /// True once only zeros come out.
    pub(super) fn is_silent(&self) -> bool {
        self.elapsed >= self.correction.len()
            && (self.period == 0 || self.elapsed >= self.silent_after)
    }

    /// Writes the next concealed frame into `frame` (one sample per channel).
    pub(super) fn next_frame(&mut self, snapshot: &[f32], frame: &mut [f32]) {
        let gain = self.gain();
        let correction = self.correction();
        let audible = self.period > 0 && gain > 0.0;
        for (c, (out, &offset)) in frame.iter_mut().zip(&self.offsets).enumerate() {
            let substituted = if audible {
                self.substitute(snapshot, c) * gain * self.scale
            } else {
                0.0
            };
            let peak = self.peaks[c];
            *out = saturate((substituted + offset * correction).clamp(-peak, peak));
        }
        self.advance();
    }

    /// Level of the substitution: 1, then a linear slope to 0.
    fn gain(&self) -> f64 {
        if self.elapsed < self.full_level {
            1.0
        } else if self.elapsed >= self.silent_after {
            0.0
        } else {
            (self.silent_after - self.elapsed) as f64 * self.fade_per_frame
        }
    }

    /// Share of the start-edge offset still applied: from 1 (before the first frame) to 0.
    fn correction(&self) -> f64 {
        1.0 - f64::from(self.correction.at(self.elapsed))
    }

    /// The loop's sample for channel `c`, cross-fading from the old loop after a widening.
    fn substitute(&self, snapshot: &[f32], c: usize) -> f64 {
        let current = self.loop_sample(snapshot, self.cursor, c);
        match self.fading {
            Some(old) => {
                let w = f64::from(self.overlap.at(self.fade_step));
                (1.0 - w) * self.loop_sample(snapshot, old, c) + w * current
            }
            None => current,
        }
    }

    /// Sample of channel `c` at `cursor` in the loop over the newest `cursor.periods` periods of
    /// the snapshot, with the seam cross-faded into the audio that preceded the loop start.
    fn loop_sample(&self, snapshot: &[f32], cursor: Cursor, c: usize) -> f64 {
        let len = cursor.periods * self.period;
        let frame = self.end - len + cursor.pos;
        let x = f64::from(snapshot[frame * self.channels + c]);
        let seam = len - self.overlap.len();
        if cursor.pos < seam {
            return x;
        }
        let lead_in = f64::from(snapshot[(frame - len) * self.channels + c]);
        let w = f64::from(self.overlap.at(cursor.pos - seam));
        (1.0 - w) * x + w * lead_in
    }

    /// Moves to the next frame, widening the loop when due.
    fn advance(&mut self) {
        self.elapsed = self.elapsed.saturating_add(1);
        if self.period == 0 {
            return;
        }
        self.cursor.step(self.period);
        if let Some(old) = &mut self.fading {
            old.step(self.period);
            self.fade_step += 1;
            if self.fade_step >= self.overlap.len() {
                self.fading = None;
            }
        }
        let periods = self.cursor.periods;
        if periods < self.max_periods && self.elapsed == self.widen_at[periods - 1] {
            self.widen();
        }
    }

    /// Adds the next older period to the loop, continuing in the same phase from that older
    /// period, and fades over from the current loop.
    fn widen(&mut self) {
        self.fading = Some(self.cursor);
        self.fade_step = 0;
        self.cursor = Cursor {
            periods: self.cursor.periods + 1,
            pos: self.cursor.pos % self.period,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_period_leaves_room_for_the_seam() {
        for available in 0..3000 {
            let period = longest_period(available);
            if period > 0 {
                assert!(period + overlap_for(period) <= available, "{available}");
            }
            let longer = period + 1;
            assert!(longer + overlap_for(longer) > available, "{available}");
        }
    }
}

// SPDX-License-Identifier: MPL-2.0
//! Packet loss concealment for interleaved `f32` PCM.
//!
//! Pure DSP: no GStreamer types, no clock, and no allocation after [`Concealer::new`]. The caller
//! (the jitter buffer) says, for every stretch of output, whether it is real audio
//! ([`Concealer::real`]) or missing audio to be made up ([`Concealer::conceal`]).
//!
//! # How a loss is concealed
//! Waveform substitution after ITU-T G.711 Appendix I, without its 3.75 ms delay:
//! * The concealer keeps the last [`HISTORY_MS`] of output (real and concealed).
//! * On the first `conceal()` of a stretch it copies that history and estimates the pitch period
//!   once, by normalized cross-correlation on a mono mix decimated to about 8 kHz, refined at full
//!   rate (`pitch.rs`). All channels use the same period, which keeps the stereo image.
//! * It then repeats the last period, with a raised-cosine overlap-add of a quarter period at the
//!   loop seam; after 10 ms the repeated segment widens to 2 periods and after 20 ms to 3 (less
//!   buzz on long losses). Level: full for 10 ms, then a linear slope reaching 0 at 60 ms (G.711's
//!   20 % per 10 ms); from there on only zeros are produced (`substitution.rs`).
//!
//! # Edges
//! * Start: the loop's own previous sample (the end of its last period) generally differs from
//!   the last output sample. Their difference is added to the synthesis and decays to 0 along a
//!   raised cosine over 2.5 ms, so the first concealed sample continues the output with the
//!   loop's own slope.
//! * End: when real audio follows concealment (or [`Concealer::discontinuity`]), the concealment
//!   keeps running for the merge length and is cross-faded (raised cosine) into the real samples
//!   in place. The merge lasts one pitch period, clamped to 5..10 ms: a full cycle spreads any
//!   phase error of the continuation over the whole waveform and 5 ms keeps the fade's own slope
//!   small against the signal's; a continuation that is silent (faded out, or nothing usable in
//!   the history) gives a 10 ms fade-in instead. The merge may span several `real()` calls.
//!   After it, the loss state is gone: the next loss starts at full level with a new estimate.

mod history;
mod pitch;
mod substitution;
#[cfg(test)]
mod tests;

use history::History;
use pitch::PitchSearch;
use substitution::Stretch;

/// Lowest supported sample rate; lower rates are treated as this one.
const MIN_RATE: u32 = 8_000;
/// Highest supported sample rate; higher rates are treated as this one.
const MAX_RATE: u32 = 96_000;
/// Output kept for pitch estimation and substitution: 3 of the longest periods plus their
/// quarter-period seam, and the correlation window plus the longest lag.
const HISTORY_MS: f32 = 70.0;
/// Shortest merge of concealment back into real audio.
const MERGE_MIN_MS: f32 = 5.0;
/// Longest merge, also the length of the fade-in after a concealment that went silent.
const MERGE_MAX_MS: f32 = 10.0;

// The longest loop (and its seam) and the pitch search must fit, with 1 ms for rounding.
const _: () = assert!(
    HISTORY_MS
        >= substitution::MAX_PERIODS as f32 * pitch::MAX_PERIOD_MS
            + pitch::MAX_PERIOD_MS / substitution::OVERLAP_DIVISOR as f32
            + 1.0
        && HISTORY_MS >= pitch::WINDOW_MS + pitch::MAX_PERIOD_MS + 1.0
);

/// What the last output was, as far as the next call is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Real audio, or nothing since the start.
    Idle,
    /// Concealment: `stretch` is running.
    Concealing,
    /// Real audio is being cross-faded in from the running `stretch`, `done` frames so far.
    Merging { done: usize },
}

/// Conceals lost audio and merges real audio back in without clicks. See the module docs.
#[derive(Debug)]
pub struct Concealer {
    channels: usize,
    merge_min: usize,
    merge_max: usize,
    history: History,
    /// The history as it was when the current stretch started (the substitution's source).
    snapshot: Vec<f32>,
    pitch: PitchSearch,
    stretch: Stretch,
    /// One frame of the concealment's continuation during a merge.
    continuation: Vec<f32>,
    /// The merge's cross-fade.
    merge_rise: Rise,
    state: State,
    discontinuity: bool,
}

impl Concealer {
    /// `rate` in Hz (8000..=96000), `channels` 1..=8. Samples are interleaved f32 in [-1, 1].
    ///
    /// A rate outside the range is clamped into it and `channels` is at least 1, so nothing
    /// panics; more channels work but cost memory in proportion.
    pub fn new(rate: u32, channels: usize) -> Self {
        let rate = rate.clamp(MIN_RATE, MAX_RATE);
        let channels = channels.max(1);
        let history = History::new(ms_to_frames(HISTORY_MS, rate), channels);
        Self {
            channels,
            merge_min: ms_to_frames(MERGE_MIN_MS, rate).max(1),
            merge_max: ms_to_frames(MERGE_MAX_MS, rate).max(1),
            snapshot: vec![0.0; history.len()],
            history,
            pitch: PitchSearch::new(rate),
            stretch: Stretch::new(rate, channels),
            continuation: vec![0.0; channels],
            merge_rise: Rise::with_capacity(ms_to_frames(MERGE_MAX_MS, rate)),
            state: State::Idle,
            discontinuity: false,
        }
    }

    /// Forget all history (after a flush / new stream). The next `real()` is a plain stream start
    /// (no fade).
    pub fn reset(&mut self) {
        self.history.clear();
        self.state = State::Idle;
        self.discontinuity = false;
    }

    /// `samples` (interleaved, whole frames) are the next real audio to be output, contiguous in
    /// time with whatever was output before (real or concealed). Records them as history.
    ///
    /// If the previous output was concealment (or `discontinuity()` was called), the start of
    /// `samples` is cross-faded in place from the concealment's own continuation to the real
    /// audio. The cross-fade may continue into the following calls. A trailing partial frame is
    /// left alone.
    pub fn real(&mut self, samples: &mut [f32]) {
        let whole = samples.len() - samples.len() % self.channels;
        let samples = &mut samples[..whole];
        if samples.is_empty() {
            return;
        }
        if self.history.available() == 0 {
            // Nothing was output before: a stream start, whatever was asked.
            self.state = State::Idle;
            self.discontinuity = false;
        } else if self.discontinuity {
            self.start_stretch();
            self.start_merge();
        } else if self.state == State::Concealing {
            self.start_merge();
        }
        if let State::Merging { .. } = self.state {
            self.merge(samples);
        }
        self.history.push(samples);
    }

    /// Fill `out` (interleaved, whole frames, any length) with concealment that continues the
    /// output. Each call continues where the last one ended. With no history at all (nothing real
    /// output yet), produce silence. A trailing partial frame is zeroed.
    pub fn conceal(&mut self, out: &mut [f32]) {
        let whole = out.len() - out.len() % self.channels;
        out[whole..].fill(0.0);
        let out = &mut out[..whole];
        if out.is_empty() {
            return;
        }
        if self.history.available() == 0 {
            out.fill(0.0);
            self.state = State::Concealing;
            return;
        }
        if self.state != State::Concealing {
            // A new loss, or one during a merge: start over from the newest output.
            self.start_stretch();
            self.state = State::Concealing;
        }
        for frame in out.chunks_exact_mut(self.channels) {
            self.stretch.next_frame(&self.snapshot, frame);
        }
        self.history.push(out);
    }

    /// The next `real()` does not continue the previous real audio (the caller skipped data):
    /// merge it like the end of a concealed stretch (cross-fade from a continuation of the
    /// history).
    pub fn discontinuity(&mut self) {
        self.discontinuity = true;
    }

    /// True when the current concealed stretch has faded out completely (only zeros are being
    /// produced).
    pub fn is_silent(&self) -> bool {
        self.state == State::Concealing
            && (self.history.available() == 0 || self.stretch.is_silent())
    }

    /// Starts a concealed stretch from the current history: snapshot, pitch, start-edge offset.
    fn start_stretch(&mut self) {
        self.history.copy_to(&mut self.snapshot);
        let available = self.history.available();
        let longest = substitution::longest_period(available);
        let period = self.pitch.estimate(&self.snapshot, self.channels, longest);
        self.stretch.start(&self.snapshot, available, period);
        self.discontinuity = false;
    }

    fn start_merge(&mut self) {
        self.merge_rise.set_len(self.merge_len());
        self.state = State::Merging { done: 0 };
    }

    /// One pitch period clamped to the merge range, or the longest merge (a fade-in) when the
    /// continuation is silent.
    fn merge_len(&self) -> usize {
        match self.stretch.period() {
            Some(period) if !self.stretch.is_silent() => {
                period.clamp(self.merge_min, self.merge_max)
            }
            _ => self.merge_max,
        }
    }

    /// Cross-fades the start of `samples` from the concealment's continuation, as far as the
    /// merge still goes.
    fn merge(&mut self, samples: &mut [f32]) {
        let State::Merging { mut done } = self.state else {
            return;
        };
        let len = self.merge_rise.len();
        for frame in samples.chunks_exact_mut(self.channels) {
            if done >= len {
                break;
            }
            self.stretch
                .next_frame(&self.snapshot, &mut self.continuation);
            let w = f64::from(self.merge_rise.at(done));
            for (s, &c) in frame.iter_mut().zip(&self.continuation) {
                *s = saturate((1.0 - w) * f64::from(c) + w * f64::from(*s));
            }
            done += 1;
        }
        self.state = if done >= len {
            State::Idle
        } else {
            State::Merging { done }
        };
    }
}

/// Frames in `ms` milliseconds at `rate`, rounded.
fn ms_to_frames(ms: f32, rate: u32) -> usize {
    (ms * rate as f32 / 1000.0).round() as usize
}

/// Step `i` (0-based) of a `len`-step raised-cosine rise: strictly between 0 and 1, reaching 1
/// on the step after the last one, and symmetric: `rising(i, n) + rising(n - 1 - i, n) == 1`.
fn rising(i: usize, len: usize) -> f32 {
    let x = (i + 1) as f32 / (len + 1) as f32;
    0.5 - 0.5 * (std::f32::consts::PI * x).cos()
}

/// A tabulated [`rising`] of some length, so that no cosine is evaluated per sample. The table
/// is refilled only when the length changes and never allocates up to the capacity it was
/// created with.
#[derive(Debug)]
struct Rise {
    weights: Vec<f32>,
}

impl Rise {
    fn with_capacity(max_len: usize) -> Self {
        Self {
            weights: Vec::with_capacity(max_len),
        }
    }

    fn set_len(&mut self, len: usize) {
        if len != self.weights.len() {
            self.weights.clear();
            self.weights.extend((0..len).map(|i| rising(i, len)));
        }
    }

    fn len(&self) -> usize {
        self.weights.len()
    }

    /// Weight of step `i`; 1 from the end on.
    fn at(&self, i: usize) -> f32 {
        self.weights.get(i).copied().unwrap_or(1.0)
    }
}

/// `v` as an `f32`, saturated to the largest finite values (input may be any finite value, and
/// sums of such values may leave the `f32` range).
fn saturate(v: f64) -> f32 {
    v.clamp(-f64::from(f32::MAX), f64::from(f32::MAX)) as f32
}

// SPDX-License-Identifier: MPL-2.0
//! Packet loss concealment for interleaved `f32` PCM.
//!
//! Pure DSP: no GStreamer types, no clock, and no allocation after [`Concealer::new`] (or
//! [`Concealer::set_method`]). The caller (the jitter buffer) says, for every stretch of output,
//! whether it is real audio ([`Concealer::real`]) or missing audio to be made up
//! ([`Concealer::conceal`]). All time constants are in milliseconds, so every rate from 8 to
//! 96 kHz behaves the same; all channels share one pitch period and one fade, which keeps the
//! stereo image.
//!
//! # Methods ([`PlcMethod`])
//! * `Expand` (the default, `expand.rs`): pitch repetition mixed with LPC-shaped noise by
//!   voicing, full level for 10 ms (less when the level was falling), then a mute slope that
//!   steepens with the loss, handing over to comfort noise shaped like the background; a short
//!   merge. When the caller knows what follows the loss ([`Concealer::set_future`]), the end of
//!   the loss is concealed from both sides instead: the forward stretch blended into an
//!   `expand` of the time-reversed future, which ends in the real audio (`twosided.rs`). See
//!   `docs/concealment.md`.
//! * `AppendixI`: the reference after ITU-T G.711 Appendix I, described below. Forward only,
//!   whatever the caller knows of the future (it is the reference compared against).
//! * `SampleConstant`: the same algorithm with every constant counted in samples at 8 kHz, as
//!   spandsp's PLC does (at 48 kHz: pitch 0.4-3.3 ms, silent after 10 ms). A reference only.
//! * `Repeat`: the last 20 ms of output over and over, at full level, with hard edges.
//! * `Silence`: zeros, with hard edges.
//!
//! # How `AppendixI` conceals a loss
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
//! # Edges (`AppendixI`, `SampleConstant`, `Expand` and `Neural`)
//! * Start: the loop's own previous sample (the end of its last period) generally differs from
//!   the last output sample. Their difference is added to the synthesis and decays to 0 along a
//!   raised cosine over 2.5 ms, so the first concealed sample continues the output with the
//!   loop's own slope. `Expand` and `Neural` instead start from the history's own LPC
//!   prediction (the zero-input response of a predictor with 3 ms of memory), cross-faded
//!   into their synthesis over 2.5 ms, which continues bright waveforms too; they use the offset only without a model (under 20 ms of
//!   history).
//! * End: when real audio follows concealment (or [`Concealer::discontinuity`]), the concealment
//!   keeps running for the merge length and is cross-faded (raised cosine) into the real samples
//!   in place. The merge lasts one pitch period, clamped to 5..10 ms: a full cycle spreads any
//!   phase error of the continuation over the whole waveform and 5 ms keeps the fade's own slope
//!   small against the signal's; a continuation that is silent (faded out, or nothing usable in
//!   the history) gives a 10 ms fade-in instead. The merge may span several `real()` calls.
//!   After it, the loss state is gone: the next loss starts at full level with a new estimate.
//! * `Expand` merges over one period, clamped to 2.5..5 ms (5 ms fade-in after silence):
//!   measured on speech, the shorter merge scores higher. (A phase-aligned merge, warping the
//!   continuation onto the best-correlating shift of the real audio, was tried and measured: no
//!   gain in PESQ, and the warp steepened the waveform. It is not used.)

mod background;
mod expand;
mod history;
mod lpc;
mod neural;
mod pitch;
mod substitution;
#[cfg(test)]
mod tests;
mod twosided;

use background::Background;
use expand::Expand;
use history::History;
use neural::Neural;
use pitch::PitchSearch;
use substitution::Stretch;
use twosided::TwoSided;

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
/// `Expand`'s merge: shorter (measured: a 2.5-5 ms merge scores higher than 5-10 ms on speech).
const EXPAND_MERGE_MIN_MS: f32 = 2.5;
const EXPAND_MERGE_MAX_MS: f32 = 5.0;
/// `Neural`: full level for this long (the model attenuates by itself too)...
const NEURAL_FULL_MS: f32 = 100.0;
/// ...then a linear fade to silence at this loss time.
const NEURAL_SILENT_MS: f32 = 200.0;
/// What `Repeat` repeats.
const REPEAT_MS: f32 = 20.0;
/// The rate at which `SampleConstant` counts its constants.
const SAMPLE_CONSTANT_RATE: u32 = 8_000;

// The longest loop (and its seam) and the pitch search must fit, with 1 ms for rounding.
const _: () = assert!(
    HISTORY_MS
        >= substitution::MAX_PERIODS as f32 * pitch::MAX_PERIOD_MS
            + pitch::MAX_PERIOD_MS / substitution::OVERLAP_DIVISOR as f32
            + 1.0
        && HISTORY_MS >= pitch::WINDOW_MS + pitch::MAX_PERIOD_MS + 1.0
        && HISTORY_MS >= REPEAT_MS
        && HISTORY_MS >= expand::LPC_WINDOW_MS
);

/// How a loss is concealed. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlcMethod {
    /// Zeros, hard edges.
    Silence,
    /// The last 20 ms repeated at full level, hard edges.
    Repeat,
    /// G.711 Appendix I's algorithm with its constants counted in samples at 8 kHz (like
    /// spandsp): the reference for what sample constants do at higher rates.
    SampleConstant,
    /// The reference after ITU-T G.711 Appendix I.
    AppendixI,
    /// Pitch repetition mixed with shaped noise, a growing mute slope, comfort noise and a
    /// phase-aligned merge.
    #[default]
    Expand,
    /// libopus's deep PLC (a neural network) on 16 kHz mono streams; `Expand` otherwise.
    Neural,
}

impl PlcMethod {
    /// Every method, in the order of the `plc` property.
    pub const ALL: [PlcMethod; 6] = [
        PlcMethod::Silence,
        PlcMethod::Repeat,
        PlcMethod::SampleConstant,
        PlcMethod::AppendixI,
        PlcMethod::Expand,
        PlcMethod::Neural,
    ];

    /// The short name used by the `plc` property and the benchmark.
    pub fn name(self) -> &'static str {
        match self {
            PlcMethod::Silence => "silence",
            PlcMethod::Repeat => "repeat",
            PlcMethod::SampleConstant => "sample-constant",
            PlcMethod::AppendixI => "appendix-i",
            PlcMethod::Expand => "expand",
            PlcMethod::Neural => "neural",
        }
    }

    /// The method called `name` (see [`PlcMethod::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Methods with a pitch loop, soft edges and a merge.
    fn substitutes(self) -> bool {
        matches!(
            self,
            PlcMethod::SampleConstant
                | PlcMethod::AppendixI
                | PlcMethod::Expand
                | PlcMethod::Neural
        )
    }
}

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
    /// The method asked for; `running` is the one running (`Neural` falls back to `Expand`).
    method: PlcMethod,
    running: PlcMethod,
    /// `Neural`: the model, and its stretch's start-edge offset, level and elapsed frames.
    neural: Option<Box<Neural>>,
    neural_offset: f64,
    neural_peak: f64,
    /// Peak of the newest `neural_recent` frames (2.5 ms), the start's limit (rising to
    /// `neural_peak` over the same time).
    neural_recent_peak: f64,
    neural_recent: usize,
    neural_elapsed: usize,
    neural_full: usize,
    neural_silent: usize,
    correction: Rise,
    rate: u32,
    channels: usize,
    merge_min: usize,
    merge_max: usize,
    history: History,
    /// The history as it was when the current stretch started (the substitution's source).
    snapshot: Vec<f32>,
    pitch: PitchSearch,
    stretch: Stretch,
    expand: Expand,
    background: Background,
    /// The concealment's continuation over the merge, rendered when it starts.
    merge_buf: Vec<f32>,
    /// The merge's cross-fade.
    merge_rise: Rise,
    /// `Repeat`: the repeated segment length and position.
    repeat_len: usize,
    repeat_pos: usize,
    state: State,
    discontinuity: bool,
    /// `Expand`: the two-sided concealment of a loss whose future is known.
    two: Option<Box<TwoSided>>,
    /// A new forward stretch is due at the next `conceal()` (a plan was dropped).
    restart: bool,
}

impl Concealer {
    /// The default method ([`PlcMethod::Expand`]) at `rate` Hz (8000..=96000) and `channels`
    /// (1..=8). Samples are interleaved f32 in [-1, 1].
    ///
    /// A rate outside the range is clamped into it and `channels` is at least 1, so nothing
    /// panics; more channels work but cost memory in proportion.
    pub fn new(rate: u32, channels: usize) -> Self {
        Self::with_method(rate, channels, PlcMethod::default())
    }

    /// A concealer using `method`.
    pub fn with_method(rate: u32, channels: usize, method: PlcMethod) -> Self {
        let rate = rate.clamp(MIN_RATE, MAX_RATE);
        let channels = channels.max(1);
        let neural_runs = rate == neural::RATE && channels == 1;
        let running = match method {
            PlcMethod::Neural if !neural_runs => PlcMethod::Expand,
            m => m,
        };
        let correction_len = ms_to_frames(substitution::START_CORRECTION_MS, rate).max(1);
        let mut correction = Rise::with_capacity(correction_len);
        correction.set_len(correction_len);
        // SampleConstant: every constant counted at 8 kHz, whatever the real rate.
        let engine = if method == PlcMethod::SampleConstant {
            SAMPLE_CONSTANT_RATE
        } else {
            rate
        };
        let history = History::new(ms_to_frames(HISTORY_MS, engine), channels);
        let (merge_min_ms, merge_max_ms) =
            if matches!(method, PlcMethod::Expand | PlcMethod::Neural) {
                (EXPAND_MERGE_MIN_MS, EXPAND_MERGE_MAX_MS)
            } else {
                (MERGE_MIN_MS, MERGE_MAX_MS)
            };
        let merge_max = ms_to_frames(merge_max_ms, engine).max(1);
        let expand = Expand::new(rate, channels);
        Self {
            method,
            running,
            neural: (running == PlcMethod::Neural).then(|| Box::new(Neural::new())),
            neural_offset: 0.0,
            neural_peak: 0.0,
            neural_recent_peak: 0.0,
            neural_recent: correction_len,
            neural_elapsed: 0,
            neural_full: ms_to_frames(NEURAL_FULL_MS, rate),
            neural_silent: ms_to_frames(NEURAL_SILENT_MS, rate),
            correction,
            rate,
            channels,
            merge_min: ms_to_frames(merge_min_ms, engine).max(1),
            merge_max,
            snapshot: vec![0.0; history.len()],
            history,
            pitch: PitchSearch::new(engine),
            stretch: Stretch::new(engine, channels),
            background: Background::new(rate, channels),
            expand,
            merge_buf: vec![0.0; merge_max * channels],
            merge_rise: Rise::with_capacity(merge_max),
            repeat_len: 0,
            repeat_pos: 0,
            state: State::Idle,
            discontinuity: false,
            two: (running == PlcMethod::Expand).then(|| Box::new(TwoSided::new(rate, channels))),
            restart: false,
        }
    }

    /// The method asked for (see [`PlcMethod::Neural`] for when it runs as `Expand`).
    pub fn method(&self) -> PlcMethod {
        self.method
    }

    /// Switches to `method`. A change starts over (as after [`Concealer::reset`]) and
    /// allocates; the same method again does nothing.
    pub fn set_method(&mut self, method: PlcMethod) {
        if method != self.method {
            *self = Self::with_method(self.rate, self.channels, method);
        }
    }

    /// Forget all history (after a flush / new stream). The next `real()` is a plain stream start
    /// (no fade).
    pub fn reset(&mut self) {
        self.history.clear();
        self.background.reset();
        if let Some(n) = self.neural.as_mut() {
            n.reset();
        }
        self.state = State::Idle;
        self.discontinuity = false;
        if let Some(two) = self.two.as_mut() {
            two.clear();
        }
        self.restart = false;
    }

    /// Tells the concealer what follows the current (or next) loss: after `frames_until_future`
    /// more concealed frames, the real audio continues with `future` (interleaved, whole frames;
    /// its first 70 ms are used, 5 ms at least). Call it before the `conceal()` calls it
    /// concerns, whenever the caller holds the audio after the hole; calling it again with the
    /// same end is harmless. `expand` then conceals the end of the loss from both sides (see
    /// `twosided.rs`); every other method ignores it (`appendix-i` stays the forward-only
    /// reference). The next `real()` forgets it.
    ///
    /// If a plan was made for another end (the caller's gap moved), the concealment starts
    /// over from the newest output with the new future.
    pub fn set_future(&mut self, frames_until_future: usize, future: &[f32]) {
        let whole = future.len() - future.len() % self.channels;
        if let Some(two) = self.two.as_mut()
            && two.set_future(frames_until_future, &future[..whole])
        {
            self.restart = true;
        }
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
        if self.history.available() == 0 || !self.running.substitutes() {
            // Nothing was output before (a stream start, whatever was asked), or a method with
            // hard edges.
            self.state = State::Idle;
            self.discontinuity = false;
        } else if self.discontinuity {
            if let Some(two) = self.two.as_mut() {
                two.clear();
            }
            self.start_stretch(true);
            self.start_merge();
        } else if self.state == State::Concealing {
            self.start_merge();
        }
        if let Some(two) = self.two.as_mut() {
            two.clear();
        }
        self.restart = false;
        if let State::Merging { .. } = self.state {
            self.merge(samples);
        }
        self.history.push(samples);
        if self.running == PlcMethod::Expand {
            self.background.push(samples);
        }
        if let Some(n) = self.neural.as_mut() {
            n.push_real(samples.iter().copied());
        }
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
        if self.history.available() == 0 || self.running == PlcMethod::Silence {
            out.fill(0.0);
            self.state = State::Concealing;
            if self.history.available() > 0 {
                self.history.push(out);
            }
            return;
        }
        let ch = self.channels;
        let mut rest = out;
        while !rest.is_empty() {
            if self.state != State::Concealing || self.restart {
                // A new loss, or one during a merge: start over from the newest output.
                self.start_stretch(false);
                self.state = State::Concealing;
                self.restart = false;
            }
            let mut frames = rest.len() / ch;
            if let Some(two) = self.two.as_mut() {
                if two.active() && two.left() == 0 {
                    // Concealing beyond the announced end: forward again from here.
                    two.clear();
                    self.restart = true;
                    continue;
                }
                two.plan_if_due(&mut self.expand, &self.snapshot);
                if two.active() {
                    frames = frames.min(two.left());
                } else if let Some(n) = two.forward_frames() {
                    frames = frames.min(n);
                }
                if frames == 0 {
                    frames = rest.len() / ch;
                }
                if !two.active() {
                    two.advance(frames);
                }
            }
            let (now, later) = rest.split_at_mut(frames * ch);
            for frame in now.chunks_exact_mut(ch) {
                self.synthesize(frame);
            }
            self.history.push(now);
            rest = later;
        }
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
            && (self.history.available() == 0
                || match self.running {
                    PlcMethod::Silence => true,
                    PlcMethod::Repeat => false,
                    PlcMethod::SampleConstant | PlcMethod::AppendixI => self.stretch.is_silent(),
                    PlcMethod::Expand => {
                        self.expand.is_silent() && !self.two.as_ref().is_some_and(|t| t.active())
                    }
                    PlcMethod::Neural => self.neural_elapsed >= self.neural_silent,
                })
    }

    /// Starts a concealed stretch from the current history: snapshot, pitch, start-edge offset.
    /// `splice`: only a continuation to cross-fade a discontinuity from (no loss): `Expand`
    /// then continues with the pitch loop alone.
    fn start_stretch(&mut self, splice: bool) {
        self.history.copy_to(&mut self.snapshot);
        let available = self.history.available();
        self.discontinuity = false;
        match self.running {
            PlcMethod::Silence => {}
            PlcMethod::Repeat => {
                self.repeat_len = ms_to_frames(REPEAT_MS, self.rate).min(available).max(1);
                self.repeat_pos = 0;
            }
            PlcMethod::SampleConstant | PlcMethod::AppendixI => {
                let longest = substitution::longest_period(available);
                let period = self.pitch.estimate(&self.snapshot, self.channels, longest);
                self.stretch.start(&self.snapshot, available, period);
            }
            PlcMethod::Neural => {
                let frames = self.snapshot.len();
                let n = self.neural.as_mut().expect("neural model");
                n.start();
                n.start_ring(&self.snapshot[frames - available.min(frames)..]);
                let first = f64::from(n.peek());
                self.neural_offset = if n.ringing() {
                    0.0
                } else {
                    f64::from(self.snapshot[frames - 1]) - first
                };
                let peak_of = |k: usize| {
                    self.snapshot[frames - k.min(available).min(frames)..]
                        .iter()
                        .fold(0.0f64, |m, &x| m.max(f64::from(x).abs()))
                };
                self.neural_peak = peak_of(frames);
                self.neural_recent_peak = peak_of(self.neural_recent);
                self.neural_elapsed = 0;
            }
            PlcMethod::Expand => {
                let longest = substitution::longest_period(available);
                let period = self.pitch.estimate(&self.snapshot, self.channels, longest);
                let score = if splice { 1.0 } else { self.pitch.score() };
                self.expand
                    .start(&self.snapshot, available, period, score, &self.background);
            }
        }
    }

    /// The next frame of the running stretch.
    fn synthesize(&mut self, frame: &mut [f32]) {
        match self.running {
            PlcMethod::Silence => frame.fill(0.0),
            PlcMethod::Repeat => {
                let end = self.snapshot.len() / self.channels;
                let i = (end - self.repeat_len + self.repeat_pos) * self.channels;
                frame.copy_from_slice(&self.snapshot[i..i + self.channels]);
                self.repeat_pos = (self.repeat_pos + 1) % self.repeat_len;
            }
            PlcMethod::SampleConstant | PlcMethod::AppendixI => {
                self.stretch.next_frame(&self.snapshot, frame)
            }
            PlcMethod::Expand => match self.two.as_mut() {
                Some(two) if two.active() => two.next_frame(frame),
                _ => self.expand.next_frame(&self.snapshot, frame),
            },
            PlcMethod::Neural => {
                let n = self.neural.as_mut().expect("neural model");
                let t = self.neural_elapsed;
                let gain = if t < self.neural_full {
                    1.0
                } else if t >= self.neural_silent {
                    0.0
                } else {
                    (self.neural_silent - t) as f64 / (self.neural_silent - self.neural_full) as f64
                };
                let rise = f64::from(self.correction.at(t));
                let mut x = f64::from(n.next_sample()) * gain;
                if n.ringing() && t < self.correction.len() {
                    // The start: from the history's own prediction into the model's output.
                    x = (1.0 - rise) * n.ring_next() + rise * x;
                }
                let correction = 1.0 - rise;
                // As in `Expand`: no jump above the newest peak at the start.
                let peak = if t < self.neural_recent {
                    let recent = 1.2 * self.neural_recent_peak;
                    let w = t as f64 / self.neural_recent as f64;
                    (recent + (self.neural_peak - recent) * w).min(self.neural_peak)
                } else {
                    self.neural_peak
                };
                frame[0] = saturate((x + self.neural_offset * correction).clamp(-peak, peak));
                self.neural_elapsed = t.saturating_add(1);
            }
        }
    }

    /// Renders the continuation into `merge_buf`.
    fn start_merge(&mut self) {
        if let Some(n) = self.neural.as_mut() {
            n.mark_real_start();
        }
        let ch = self.channels;
        let len = self.merge_len();
        self.merge_rise.set_len(len);
        // Taken out for the loop (an empty Vec does not allocate) so `synthesize` can borrow.
        let mut buf = std::mem::take(&mut self.merge_buf);
        for frame in buf[..len * ch].chunks_exact_mut(ch) {
            self.synthesize(frame);
        }
        self.merge_buf = buf;
        self.state = State::Merging { done: 0 };
    }

    fn period(&self) -> Option<usize> {
        match self.running {
            PlcMethod::Expand => self.expand.period(),
            PlcMethod::SampleConstant | PlcMethod::AppendixI => self.stretch.period(),
            _ => None,
        }
    }

    fn continuation_silent(&self) -> bool {
        match self.running {
            PlcMethod::Expand => {
                self.expand.level() == 0.0 && !self.two.as_ref().is_some_and(|t| t.active())
            }
            PlcMethod::Neural => self.neural_elapsed >= self.neural_silent,
            _ => self.stretch.is_silent(),
        }
    }

    /// One period clamped to the merge range, or the longest merge (a fade-in) when the
    /// continuation is silent.
    fn merge_len(&self) -> usize {
        match self.period() {
            Some(period) if !self.continuation_silent() => {
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
        let ch = self.channels;
        let len = self.merge_rise.len();
        for frame in samples.chunks_exact_mut(ch) {
            if done >= len {
                break;
            }
            let w = f64::from(self.merge_rise.at(done));
            let continuation = &self.merge_buf[done * ch..(done + 1) * ch];
            for (s, &c) in frame.iter_mut().zip(continuation) {
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

/// The largest magnitude of channel `c` in `x` (interleaved, `ch` channels; 0 if empty or
/// NaN only): the same value as a sequential fold, in independent lanes that vectorize.
fn peak(x: &[f32], ch: usize, c: usize) -> f64 {
    const LANES: usize = 8;
    let mut lanes = [0.0f32; LANES];
    let mut chunks = x.chunks_exact(LANES * ch);
    for chunk in &mut chunks {
        for (i, m) in lanes.iter_mut().enumerate() {
            *m = m.max(chunk[i * ch + c].abs());
        }
    }
    let rest = chunks
        .remainder()
        .iter()
        .skip(c)
        .step_by(ch)
        .fold(0.0f32, |m, &v| m.max(v.abs()));
    f64::from(lanes.iter().fold(rest, |m, &v| m.max(v)))
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

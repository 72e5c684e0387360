// SPDX-License-Identifier: MPL-2.0
//! Two-sided concealment for `expand`: when the caller knows what follows the loss (a jitter
//! buffer usually holds the packet after the hole), the end of the loss is concealed from both
//! sides.
//!
//! * **Forward** `F`: the running `expand` stretch, continuing the history. From the region's
//!   start on its mute slope is held (the level trend goes on): the backward side, not
//!   silence, takes over.
//! * **Backward** `B`: a second `expand` run on the time-reversed future (its first
//!   [`FUTURE_MAX_MS`]): pitch, voicing, loop, LPC noise, the start from the model's own
//!   prediction and the envelope limiter all work backwards from the first future sample, so
//!   `B` ends where the real audio begins as smoothly as `F` leaves the history, in phase with
//!   it. Its mute slope is held (full level at the join); its level trend is kept: a future
//!   that starts with an onset fades out backwards.
//! * **Region**: the end of the loss over which the two sides are blended: all of it up to
//!   [`REGION_MAX_MS`] (as far as the caller knows the end that early); in a loss longer than
//!   [`LONG_HOLE_MS`] only the last [`LONG_REGION_MS`]: there the forward side fades out with
//!   its usual slope into comfort noise first, and the continuation fades in before the real
//!   audio. A future shorter than [`FUTURE_GOOD_MS`] gives a poor backward side (no LPC
//!   model, short pitch range): the plan then waits, in case more arrives, until
//!   [`SHORT_REGION_MS`] before the end.
//! * **Blend**: `(1 - w) F + w B`, `w` a raised cosine over the region, the same for every
//!   channel (the stereo image). Each side is anchored in phase at its own join, so no
//!   alignment is done in between (measured: warping the two into phase, or an equal-power
//!   blend for unrelated sides, scores lower; see `docs/concealment.md`).
//!
//! The region's two sides are rendered when the plan is made (the first `conceal()` frame of
//! the region). Constants are in ms; nothing allocates after construction.

use super::background::Background;
use super::expand::Expand;
use super::pitch::PitchSearch;
use super::{HISTORY_MS, ms_to_frames, substitution};

/// Longest region before the future over which the two sides are blended (all of a loss up to
/// this long, when its end is known from its start)...
pub(super) const REGION_MAX_MS: f32 = 100.0;
/// ...but in a loss longer than this (the forward side has faded out long before)...
const LONG_HOLE_MS: f32 = 250.0;
/// ...the continuation fades in over this much only (a longer backward extrapolation scores
/// lower, as a longer forward one does).
const LONG_REGION_MS: f32 = 40.0;
/// Future audio used: its first this many ms (the backward side's history).
pub(super) const FUTURE_MAX_MS: f32 = HISTORY_MS;
/// Less future than this is not used (the loss is concealed forward only).
const FUTURE_MIN_MS: f32 = 5.0;
/// A future at least this long makes a backward side worth a long region (the LPC window)...
const FUTURE_GOOD_MS: f32 = 20.0;
/// ...a shorter one is blended in over this much at most, as late as possible.
const SHORT_REGION_MS: f32 = 10.0;

#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    active: bool,
    /// Region length and position in it.
    len: usize,
    pos: usize,
    /// Cross-fade recurrence: `cos(pi (pos + 1) / (len + 1))`, the previous one, `2 cos(step)`.
    cos: f64,
    cos_prev: f64,
    cos_k: f64,
}

impl Plan {
    /// The backward side's weight at the current position: a raised cosine over the region,
    /// strictly between 0 and 1.
    fn weight(&self) -> f64 {
        0.5 - 0.5 * self.cos
    }

    fn step(&mut self) {
        let next = self.cos_k * self.cos - self.cos_prev;
        self.cos_prev = self.cos;
        self.cos = next;
        self.pos += 1;
    }
}

#[derive(Debug)]
pub(super) struct TwoSided {
    channels: usize,
    region_max: usize,
    short_region: usize,
    future_min: usize,
    future_good: usize,
    /// The future (interleaved, at most `FUTURE_MAX_MS`) and its frames.
    future: Vec<f32>,
    future_frames: usize,
    /// Concealed frames still to come before the future starts (None: unknown).
    until: Option<usize>,
    /// Frames concealed in this loss so far (forward only): with `until`, the loss's length.
    elapsed: usize,
    long_hole: usize,
    long_region: usize,
    /// The future reversed, as the backward side's history (zeros before it).
    reversed: Vec<f32>,
    pitch: PitchSearch,
    backward: Expand,
    /// A background that never saw audio: the backward side has no comfort noise.
    no_background: Background,
    /// The two sides over the region (interleaved); `back[k]` is `B(len - 1 - k)`.
    fore: Vec<f32>,
    back: Vec<f32>,
    plan: Plan,
}

impl TwoSided {
    pub(super) fn new(rate: u32, channels: usize) -> Self {
        let region_max = ms_to_frames(REGION_MAX_MS, rate).max(1);
        let future_max = ms_to_frames(FUTURE_MAX_MS, rate).max(1);
        let history = ms_to_frames(HISTORY_MS, rate).max(1);
        Self {
            channels,
            region_max,
            short_region: ms_to_frames(SHORT_REGION_MS, rate).max(1),
            future_min: ms_to_frames(FUTURE_MIN_MS, rate).max(1),
            future_good: ms_to_frames(FUTURE_GOOD_MS, rate).max(1),
            future: Vec::with_capacity(future_max * channels),
            future_frames: 0,
            until: None,
            elapsed: 0,
            long_hole: ms_to_frames(LONG_HOLE_MS, rate),
            long_region: ms_to_frames(LONG_REGION_MS, rate).max(1),
            reversed: vec![0.0; history * channels],
            pitch: PitchSearch::new(rate),
            backward: Expand::new(rate, channels),
            no_background: Background::new(rate, channels),
            fore: vec![0.0; region_max * channels],
            back: vec![0.0; region_max * channels],
            plan: Plan::default(),
        }
    }

    /// Forgets the future and any plan.
    pub(super) fn clear(&mut self) {
        self.future.clear();
        self.future_frames = 0;
        self.until = None;
        self.elapsed = 0;
        self.plan = Plan::default();
    }

    /// The caller's news: the future (`future`, whole frames) starts after `until` more
    /// concealed frames. Returns true when a running plan had another end: the caller must
    /// restart the concealment (the plan is dropped and this future taken instead). The same
    /// end again changes nothing.
    pub(super) fn set_future(&mut self, until: usize, future: &[f32]) -> bool {
        if self.plan.active {
            if self.left() == until {
                return false;
            }
            self.plan = Plan::default();
            self.store(until, future);
            return true;
        }
        self.store(until, future);
        false
    }

    fn store(&mut self, until: usize, future: &[f32]) {
        let ch = self.channels;
        let frames = (future.len() / ch).min(self.future.capacity() / ch);
        self.future.clear();
        self.future.extend_from_slice(&future[..frames * ch]);
        self.future_frames = frames;
        self.until = Some(until);
    }

    /// True while a plan runs (its frames come from [`TwoSided::next_frame`]).
    pub(super) fn active(&self) -> bool {
        self.plan.active
    }

    /// Frames left in the running plan's region.
    pub(super) fn left(&self) -> usize {
        self.plan.len.saturating_sub(self.plan.pos)
    }

    /// How many frames may be concealed forward only before a plan is due (0: now); `None`
    /// when none is coming (no usable future, or one is running).
    pub(super) fn forward_frames(&self) -> Option<usize> {
        if self.plan.active || self.future_frames < self.future_min {
            return None;
        }
        let hole = self.elapsed + self.until.unwrap_or(0);
        let region = if self.future_frames < self.future_good {
            self.short_region
        } else if hole > self.long_hole {
            self.long_region
        } else {
            self.region_max
        };
        self.until
            .filter(|&u| u > 0)
            .map(|u| u.saturating_sub(region))
    }

    /// `frames` were concealed forward only.
    pub(super) fn advance(&mut self, frames: usize) {
        self.elapsed = self.elapsed.saturating_add(frames);
        if let Some(u) = self.until.as_mut() {
            *u = u.saturating_sub(frames);
        }
    }

    /// Makes the plan for the rest of the loss, if it is due: renders the forward side from
    /// `forward` (the running stretch on `snapshot`) and the backward side from the future.
    pub(super) fn plan_if_due(&mut self, forward: &mut Expand, snapshot: &[f32]) {
        if self.forward_frames() != Some(0) {
            return;
        }
        let Some(len) = self.until else {
            return;
        };
        let ch = self.channels;

        forward.hold_slope();
        for frame in self.fore[..len * ch].chunks_exact_mut(ch) {
            forward.next_frame(snapshot, frame);
        }

        // The backward side: an expand of the reversed future.
        let history = self.reversed.len() / ch;
        let avail = self.future_frames.min(history);
        self.reversed.fill(0.0);
        for k in 0..avail {
            let (dst, src) = ((history - 1 - k) * ch, k * ch);
            self.reversed[dst..dst + ch].copy_from_slice(&self.future[src..src + ch]);
        }
        let longest = substitution::longest_period(avail);
        let period = self.pitch.estimate(&self.reversed, ch, longest);
        let score = self.pitch.score();
        self.backward
            .start(&self.reversed, avail, period, score, &self.no_background);
        self.backward.hold_slope();
        for frame in self.back[..len * ch].chunks_exact_mut(ch) {
            self.backward.next_frame(&self.reversed, frame);
        }

        // w(i) = 0.5 - 0.5 cos(pi (i + 1) / (len + 1)), by the Chebyshev recurrence.
        let step = std::f64::consts::PI / (len + 1) as f64;
        self.plan = Plan {
            active: true,
            len,
            pos: 0,
            cos: step.cos(),
            cos_prev: 1.0,
            cos_k: 2.0 * step.cos(),
        };
    }

    /// The next frame of the plan; after the region, the future itself (a merge's
    /// continuation), then zeros.
    pub(super) fn next_frame(&mut self, frame: &mut [f32]) {
        let ch = self.channels;
        let p = self.plan;
        if p.pos >= p.len {
            let k = p.pos - p.len;
            if k < self.future_frames {
                frame.copy_from_slice(&self.future[k * ch..(k + 1) * ch]);
            } else {
                frame.fill(0.0);
            }
            self.plan.pos = p.pos.saturating_add(1);
            return;
        }
        let w = p.weight();
        let fore = &self.fore[p.pos * ch..(p.pos + 1) * ch];
        let b = (p.len - 1 - p.pos) * ch;
        let back = &self.back[b..b + ch];
        for ((out, &f), &x) in frame.iter_mut().zip(fore).zip(back) {
            *out = ((1.0 - w) * f64::from(f) + w * f64::from(x)) as f32;
        }
        self.plan.step();
    }
}

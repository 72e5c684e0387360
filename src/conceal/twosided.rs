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
//! * **Blend**: `(1 - w) F + w B`, the same `w` for every channel (the stereo image). Each
//!   side is trusted by its distance from its own real audio: with `dF` frames since the
//!   history and `dB` frames to the future, `w = dF^k / (dF^k + dB^k)`, `k` =
//!   [`BLEND_POWER`]. When the forward side ran alone before the region (the end became known
//!   late), `w` starts above 0 and is reached along a raised cosine over [`JOIN_RAMP_MS`] (at
//!   most half the region). In a long loss (the forward side faded out) `w` is a raised
//!   cosine over the region instead: the continuation fades in. Each side is anchored in phase
//!   at its own join, so no alignment is done in between (measured: warping the two into
//!   phase, or an equal-power blend for unrelated sides, scores lower; see
//!   `docs/concealment.md`).
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
/// The blend weight's power of the distances (1: linear in each side's distance from its
/// real audio; measured best at 0.75, see `docs/concealment.md`)...
const BLEND_POWER: f64 = 0.75;
/// ...and the ramp onto it when the forward side ran alone before the region.
const JOIN_RAMP_MS: f32 = 10.0;
/// The weight is computed exactly every this many frames and interpolated in between.
const WEIGHT_STEP: usize = 16;

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
    /// Weighted by distance (else the raised cosine): the forward side's frames before the
    /// region, the ramp onto the weight (frames, 0: none), and the exact weights at the last
    /// and the next multiple of [`WEIGHT_STEP`].
    by_distance: bool,
    head: f64,
    ramp: usize,
    w_from: f64,
    w_to: f64,
}

impl Plan {
    /// The backward side's weight at the current position: a raised cosine over the region,
    /// strictly between 0 and 1.
    fn weight(&mut self) -> f64 {
        if !self.by_distance {
            return 0.5 - 0.5 * self.cos;
        }
        let k = self.pos % WEIGHT_STEP;
        if k == 0 {
            self.w_from = self.exact(self.pos);
            self.w_to = self.exact(self.pos + WEIGHT_STEP);
        }
        let x = k as f64 / WEIGHT_STEP as f64;
        self.w_from + x * (self.w_to - self.w_from)
    }

    /// `dF^k / (dF^k + dB^k)` at `pos` (clamped to the region), on the ramp when there is one.
    fn exact(&self, pos: usize) -> f64 {
        let pos = pos.min(self.len);
        let f = (self.head + (pos + 1) as f64).powf(BLEND_POWER);
        let b = ((self.len - pos) as f64).powf(BLEND_POWER);
        let w = f / (f + b);
        if pos < self.ramp {
            w * (0.5
                - 0.5 * (std::f64::consts::PI * (pos + 1) as f64 / (self.ramp + 1) as f64).cos())
        } else {
            w
        }
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
    join_ramp: usize,
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
            join_ramp: ms_to_frames(JOIN_RAMP_MS, rate),
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

        // The raised cosine (long losses): w(i) = 0.5 - 0.5 cos(pi (i + 1) / (len + 1)), by the
        // Chebyshev recurrence.
        let step = std::f64::consts::PI / (len + 1) as f64;
        let by_distance = self.elapsed + len <= self.long_hole;
        self.plan = Plan {
            active: true,
            len,
            pos: 0,
            cos: step.cos(),
            cos_prev: 1.0,
            cos_k: 2.0 * step.cos(),
            by_distance,
            head: self.elapsed as f64,
            ramp: if self.elapsed > 0 {
                self.join_ramp.min(len / 2)
            } else {
                0
            },
            w_from: 0.0,
            w_to: 0.0,
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
        let w = self.plan.weight();
        let fore = &self.fore[p.pos * ch..(p.pos + 1) * ch];
        let b = (p.len - 1 - p.pos) * ch;
        let back = &self.back[b..b + ch];
        for ((out, &f), &x) in frame.iter_mut().zip(fore).zip(back) {
            *out = ((1.0 - w) * f64::from(f) + w * f64::from(x)) as f32;
        }
        self.plan.step();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(head: usize, len: usize, ramp: usize) -> Plan {
        Plan {
            active: true,
            len,
            by_distance: true,
            head: head as f64,
            ramp,
            ..Plan::default()
        }
    }

    fn weights(mut p: Plan) -> Vec<f64> {
        (0..p.len)
            .map(|_| {
                let w = p.weight();
                p.pos += 1;
                w
            })
            .collect()
    }

    #[test]
    fn the_blend_trusts_each_side_by_its_distance_from_real_audio() {
        // The whole loss known from its start (48 kHz, 40 ms): symmetric, from 0 to 1.
        let w = weights(plan(0, 1920, 0));
        assert!(w[0] < 0.02, "{}", w[0]);
        assert!((w[959] - 0.5).abs() < 0.01, "{}", w[959]);
        assert!(w[1919] > 0.98, "{}", w[1919]);
        // The forward side ran alone for 20 ms first: past the ramp the weight is the
        // distances' share, so the backward side is trusted more than half already at the
        // region's middle.
        let (head, len, ramp) = (960, 1920, 480);
        let w = weights(plan(head, len, ramp));
        let share = |pos: usize| {
            let f = ((head + pos + 1) as f64).powf(BLEND_POWER);
            let b = ((len - pos) as f64).powf(BLEND_POWER);
            f / (f + b)
        };
        assert!(
            w[0] < 0.01,
            "the ramp starts from the forward side: {}",
            w[0]
        );
        assert!(
            (w[600] - share(600)).abs() < 1e-3,
            "{} vs {}",
            w[600],
            share(600)
        );
        assert!(w[959] > 0.6, "{}", w[959]);
        for p in [
            plan(0, 1920, 0),
            plan(head, len, ramp),
            plan(4800, 480, 240),
        ] {
            let w = weights(p);
            // Rising, and in steps far below any audible jump.
            for pair in w.windows(2) {
                assert!(pair[1] >= pair[0] - 1e-12, "{pair:?}");
                assert!(pair[1] - pair[0] < 0.01, "{pair:?}");
            }
        }
    }
}

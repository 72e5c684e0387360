// SPDX-License-Identifier: MPL-2.0
//! Two-sided concealment for `expand`: when the caller knows what follows the loss (a jitter
//! buffer usually holds the packet after the hole), the end of the loss is concealed from both
//! sides.
//!
//! * **Forward** `F`: the running `expand` stretch, continuing the history.
//! * **Backward** `B`: a second `expand` run on the time-reversed future (its first
//!   [`FUTURE_MAX_MS`]): pitch, voicing, loop, LPC noise, the start from the model's own
//!   prediction and the envelope limiter all work backwards from the first future sample, so
//!   `B` ends where the real audio begins as smoothly as `F` leaves the history. Its mute slope
//!   is held (full level at the join); its level trend is kept: a future that starts with an
//!   onset fades out backwards.
//! * **Region**: the last `min(hole, REGION_MAX_MS)` of the hole (all of a short one; in a long
//!   gap the forward side fades out with its usual slope into comfort noise first, and the
//!   backward side fades in over the region before the real audio). `F` (slope held at the
//!   region's start) and `B` are rendered over the region at once.
//! * **Alignment**: the lag `d` (at most half the longer period and [`WARP_MAX`] of the region)
//!   that best correlates `F(t)` with `B(t + d)` over the middle of the region (weighted by
//!   `w (1 - w)`), coarse on a ~8 kHz mix, refined at full rate. The region is then played at
//!   the rate `1 - d / R` from both ends: `F(t - d t / R)` keeps `F` anchored at the start and
//!   `B(t + d (R - t) / R)` keeps `B` anchored at the end, and in between the two are in phase
//!   (4-point cubic interpolation). A small, gradual pitch change instead of a comb filter.
//! * **Blend**: `(a F + b B) / sqrt(a^2 + b^2 + 2 rho a b)` with `b = w(t)` a raised cosine over
//!   the region, `a = 1 - w`, and `rho` the (non-negative) correlation at the chosen lag: a
//!   linear cross-fade for sides in phase, equal power for unrelated ones (no dip in level).
//!   Every channel uses the same lag and weights (the stereo image), and stays within the
//!   larger peak of its two sides.
//!
//! Constants are in ms; nothing allocates after construction.

use super::background::Background;
use super::expand::Expand;
use super::pitch::{self, PitchSearch};
use super::{HISTORY_MS, ms_to_frames, saturate, substitution};

/// Longest region before the future over which the two sides are blended.
pub(super) const REGION_MAX_MS: f32 = 60.0;
/// Future audio used: its first this many ms (the backward side's history).
pub(super) const FUTURE_MAX_MS: f32 = HISTORY_MS;
/// Less future than this is not used (the loss is concealed forward only).
const FUTURE_MIN_MS: f32 = 5.0;
/// The alignment lag is at most this share of the region (the rate change it asks for)...
const WARP_MAX: f64 = 0.1;
/// ...and at most half the longer pitch period.
const ALIGN_MAX_MS: f32 = pitch::MAX_PERIOD_MS / 2.0;
/// Rate of the coarse alignment search.
const COARSE_RATE_HZ: u32 = 8_000;
/// A lag is taken only when it correlates this much better than none.
const ALIGN_GAIN: f32 = 0.05;

#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    active: bool,
    /// Region length and position in it.
    len: usize,
    pos: usize,
    /// Alignment lag in frames (`F(t) ~ B(t + shift)`).
    shift: f64,
    /// Correlation of the two sides at that lag, clamped to 0..1.
    rho: f64,
    /// Cross-fade recurrence: `cos(pi (pos + 1) / (len + 1))`, the previous one, `2 cos(step)`.
    cos: f64,
    cos_prev: f64,
    cos_k: f64,
}

#[derive(Debug)]
pub(super) struct TwoSided {
    channels: usize,
    region_max: usize,
    future_min: usize,
    /// Frames rendered beyond the region on each side for the alignment (lag + interpolation).
    margin: usize,
    align_max: usize,
    /// The future (interleaved, at most `FUTURE_MAX_MS`) and its frames.
    future: Vec<f32>,
    future_frames: usize,
    /// Concealed frames still to come before the future starts (None: unknown).
    until: Option<usize>,
    /// Hold the forward side's slope at the region's start.
    hold_forward: bool,
    /// The future reversed, as the backward side's history (zeros before it).
    reversed: Vec<f32>,
    pitch: PitchSearch,
    backward: Expand,
    /// A background that never saw audio: the backward side has no comfort noise.
    no_background: Background,
    /// The two sides over the region and the margin (interleaved); `back[k]` is `B(len-1-k)`.
    fore: Vec<f32>,
    back: Vec<f32>,
    /// Mono mixes for the alignment: `F(t)` for `t` in `0..len + margin`, `B(t)` for `t` in
    /// `-margin..len + margin` (stored from index 0), and the region's weights `w (1 - w)`.
    mono_f: Vec<f32>,
    mono_b: Vec<f32>,
    weight: Vec<f32>,
    /// The same, decimated for the coarse search.
    coarse_f: Vec<f32>,
    coarse_b: Vec<f32>,
    coarse_w: Vec<f32>,
    factor: usize,
    /// Per channel: the larger peak of the two sides.
    peaks: Vec<f64>,
    plan: Plan,
}

impl TwoSided {
    pub(super) fn new(rate: u32, channels: usize) -> Self {
        let region_max = ms_to_frames(REGION_MAX_MS, rate).max(1);
        let future_max = ms_to_frames(FUTURE_MAX_MS, rate).max(1);
        let history = ms_to_frames(HISTORY_MS, rate).max(1);
        let align_max = ms_to_frames(ALIGN_MAX_MS, rate);
        let margin = align_max + 3;
        let factor = ((rate + COARSE_RATE_HZ / 2) / COARSE_RATE_HZ).max(1) as usize;
        let span = region_max + 2 * margin;
        Self {
            channels,
            region_max,
            future_min: ms_to_frames(FUTURE_MIN_MS, rate).max(1),
            margin,
            align_max,
            future: Vec::with_capacity(future_max * channels),
            future_frames: 0,
            until: None,
            hold_forward: true,
            reversed: vec![0.0; history * channels],
            pitch: PitchSearch::new(rate),
            backward: Expand::new(rate, channels),
            no_background: Background::new(rate, channels),
            fore: vec![0.0; (region_max + margin) * channels],
            back: vec![0.0; (region_max + margin) * channels],
            mono_f: vec![0.0; span],
            mono_b: vec![0.0; span],
            weight: vec![0.0; region_max],
            coarse_f: vec![0.0; span / factor + 1],
            coarse_b: vec![0.0; span / factor + 1],
            coarse_w: vec![0.0; region_max / factor + 1],
            factor,
            peaks: vec![0.0; channels],
            plan: Plan::default(),
        }
    }

    /// Forgets the future and any plan.
    pub(super) fn clear(&mut self) {
        self.future.clear();
        self.future_frames = 0;
        self.until = None;
        self.plan = Plan::default();
    }

    /// The caller's news: the future (`future`, whole frames) starts after `until` more
    /// concealed frames. Returns true when a running plan had another end: the caller must
    /// restart the concealment (the plan is dropped and this future taken instead).
    pub(super) fn set_future(&mut self, until: usize, future: &[f32]) -> bool {
        if self.plan.active {
            if self.plan.len - self.plan.pos.min(self.plan.len) == until {
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

    /// Forward-only frames that may still be concealed before a plan must be made (`None`:
    /// no plan is coming).
    pub(super) fn forward_frames(&self) -> Option<usize> {
        if self.plan.active || self.future_frames < self.future_min {
            return None;
        }
        self.until
            .filter(|&u| u > 0)
            .map(|u| u.saturating_sub(self.region_max))
    }

    /// True when the plan is due now.
    pub(super) fn ready(&self) -> bool {
        self.forward_frames() == Some(0)
    }

    /// `frames` were concealed forward only.
    pub(super) fn advance(&mut self, frames: usize) {
        if let Some(u) = self.until.as_mut() {
            *u = u.saturating_sub(frames);
        }
    }

    /// Makes the plan for the rest of the loss: renders the forward side from `forward`
    /// (the running stretch on `snapshot`, with `forward_period`) and the backward side from
    /// the future, and aligns them.
    pub(super) fn plan(&mut self, forward: &mut Expand, snapshot: &[f32]) {
        let Some(len) = self.until.filter(|&u| u > 0) else {
            return;
        };
        let len = len.min(self.region_max);
        let (ch, m) = (self.channels, self.margin);

        // Forward side.
        if self.hold_forward {
            forward.hold_slope();
        }
        for frame in self.fore[..(len + m) * ch].chunks_exact_mut(ch) {
            forward.next_frame(snapshot, frame);
        }

        // Backward side: an expand of the reversed future.
        let history = self.reversed.len() / ch;
        let avail = self.future_frames.min(history);
        self.reversed.fill(0.0);
        for k in 0..avail {
            let (dst, src) = ((history - 1 - k) * ch, k * ch);
            self.reversed[dst..dst + ch].copy_from_slice(&self.future[src..src + ch]);
        }
        let longest = substitution::longest_period(avail);
        let period_b = self.pitch.estimate(&self.reversed, ch, longest);
        let score = self.pitch.score();
        self.backward
            .start(&self.reversed, avail, period_b, score, &self.no_background);
        self.backward.hold_slope();
        for frame in self.back[..(len + m) * ch].chunks_exact_mut(ch) {
            self.backward.next_frame(&self.reversed, frame);
        }

        for c in 0..ch {
            let peak = |buf: &[f32]| {
                buf[..len * ch]
                    .iter()
                    .skip(c)
                    .step_by(ch)
                    .fold(0.0f64, |p, &x| p.max(f64::from(x).abs()))
            };
            self.peaks[c] = peak(&self.fore).max(peak(&self.back));
        }

        // Cross-fade recurrence: w(i) = 0.5 - 0.5 cos(pi (i + 1) / (len + 1)).
        let step = std::f64::consts::PI / (len + 1) as f64;
        self.plan = Plan {
            active: true,
            len,
            pos: 0,
            shift: 0.0,
            rho: 0.0,
            cos: step.cos(),
            cos_prev: 1.0,
            cos_k: 2.0 * step.cos(),
        };

        let longest_period = forward.period().max(period_b);
        let (shift, rho) = self.align(len, longest_period);
        self.plan.shift = shift as f64;
        self.plan.rho = f64::from(rho).clamp(0.0, 1.0);
    }

    /// Backward side's sample `t` (region time; from `len` on the future itself) of channel `c`.
    fn b_at(&self, t: isize, c: usize) -> f32 {
        let ch = self.channels;
        let len = self.plan.len as isize;
        if t < len {
            let k = (len - 1 - t) as usize;
            self.back.get(k * ch + c).copied().unwrap_or(0.0)
        } else {
            let k = (t - len) as usize;
            if k < self.future_frames {
                self.future[k * ch + c]
            } else {
                0.0
            }
        }
    }

    /// The best lag and its correlation.
    fn align(&mut self, len: usize, period: Option<usize>) -> (isize, f32) {
        let (ch, m) = (self.channels, self.margin as isize);
        let share = 1.0 / ch as f32;
        // Weights and mono mixes.
        {
            let mut w = self.plan;
            for x in &mut self.weight[..len] {
                let v = w.weight();
                *x = (v * (1.0 - v)) as f32;
                w.step();
            }
        }
        for (t, x) in self.mono_f[..len + self.margin].iter_mut().enumerate() {
            *x = self.fore[t * ch..(t + 1) * ch].iter().sum::<f32>() * share;
        }
        let span = len + 2 * self.margin;
        for i in 0..span {
            let t = i as isize - m;
            self.mono_b[i] = (0..ch).map(|c| self.b_at(t, c)).sum::<f32>() * share;
        }
        let d_max = match period {
            Some(p) => (p / 2)
                .min(self.align_max)
                .min((WARP_MAX * len as f64) as usize),
            None => 0,
        };
        let at_zero = correlate(
            &self.mono_f[..len],
            &self.mono_b[self.margin..self.margin + len],
            &self.weight[..len],
        );
        if d_max == 0 {
            return (0, at_zero);
        }
        // Coarse search on block averages, then the full rate around the best coarse lag.
        let q = self.factor;
        let (cl, cm) = (len / q, self.margin / q);
        let mut best = (0isize, at_zero);
        if cl >= 4 && d_max >= 2 * q {
            decimate(&self.mono_f[..len], &mut self.coarse_f, q);
            decimate(&self.mono_b[..span], &mut self.coarse_b, q);
            decimate(&self.weight[..len], &mut self.coarse_w, q);
            let cd = (d_max / q) as isize;
            let mut coarse_best = (0isize, f32::NEG_INFINITY);
            for d in -cd..=cd {
                let from = (cm as isize + d) as usize;
                let r = correlate(
                    &self.coarse_f[..cl],
                    &self.coarse_b[from..from + cl],
                    &self.coarse_w[..cl],
                );
                if r > coarse_best.1 {
                    coarse_best = (d, r);
                }
            }
            let center = coarse_best.0 * q as isize;
            let (lo, hi) = (
                (center - q as isize).max(-(d_max as isize)),
                (center + q as isize).min(d_max as isize),
            );
            best = self.refine(len, lo, hi, best);
        } else {
            best = self.refine(len, -(d_max as isize), d_max as isize, best);
        }
        if best.1 < at_zero + ALIGN_GAIN {
            (0, at_zero)
        } else {
            best
        }
    }

    fn refine(&self, len: usize, lo: isize, hi: isize, mut best: (isize, f32)) -> (isize, f32) {
        let m = self.margin as isize;
        let mut found = (0isize, f32::NEG_INFINITY);
        for d in lo..=hi {
            let from = (m + d) as usize;
            let r = correlate(
                &self.mono_f[..len],
                &self.mono_b[from..from + len],
                &self.weight[..len],
            );
            if r > found.1 {
                found = (d, r);
            }
        }
        if found.1 > best.1 {
            best = found;
        }
        best
    }

    /// The next frame of the plan; after the region, the future itself (a merge's
    /// continuation), then zeros.
    pub(super) fn next_frame(&mut self, frame: &mut [f32]) {
        let p = self.plan;
        let t = p.pos;
        if t >= p.len {
            for (c, out) in frame.iter_mut().enumerate() {
                *out = self.b_at(t as isize, c);
            }
            self.plan.pos = t.saturating_add(1);
            return;
        }
        let b = p.weight();
        let a = 1.0 - b;
        let norm = (a * a + b * b + 2.0 * p.rho * a * b).sqrt().max(1e-3);
        let (len, tf) = (p.len as f64, t as f64);
        let at_f = tf - p.shift * tf / len;
        let at_b = tf + p.shift * (len - tf) / len;
        for (c, out) in frame.iter_mut().enumerate() {
            let f = self.interpolate(at_f, |i| {
                let i = i.clamp(0, (p.len + self.margin - 1) as isize) as usize;
                self.fore[i * self.channels + c]
            });
            let bb = self.interpolate(at_b, |i| self.b_at(i, c));
            let x = (a * f + b * bb) / norm;
            let peak = self.peaks[c];
            *out = saturate(x.clamp(-peak, peak));
        }
        self.plan.step();
        self.plan.pos = t + 1;
    }

    /// 4-point cubic (Catmull-Rom) interpolation of `x` at `at`.
    fn interpolate(&self, at: f64, x: impl Fn(isize) -> f32) -> f64 {
        let i = at.floor();
        let frac = at - i;
        let i = i as isize;
        if frac < 1e-9 {
            return f64::from(x(i));
        }
        let (p0, p1, p2, p3) = (
            f64::from(x(i - 1)),
            f64::from(x(i)),
            f64::from(x(i + 1)),
            f64::from(x(i + 2)),
        );
        p1 + 0.5
            * frac
            * (p2 - p0
                + frac * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3 + frac * (3.0 * (p1 - p2) + p3 - p0)))
    }
}

impl Plan {
    /// The backward side's weight at the current position: a raised cosine over the region.
    fn weight(&self) -> f64 {
        0.5 - 0.5 * self.cos
    }

    fn step(&mut self) {
        let next = self.cos_k * self.cos - self.cos_prev;
        self.cos_prev = self.cos;
        self.cos = next;
    }
}

/// Weighted normalized correlation of `a` and `b` (equal lengths), 0 if either is silent.
fn correlate(a: &[f32], b: &[f32], w: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for ((&x, &y), &w) in a.iter().zip(b).zip(w) {
        let wx = w * x;
        ab += wx * y;
        aa += wx * x;
        bb += w * y * y;
    }
    let e = aa * bb;
    if e > f32::MIN_POSITIVE {
        ab / e.sqrt()
    } else {
        0.0
    }
}

/// Block averages of `x` by `q` into `out`.
fn decimate(x: &[f32], out: &mut [f32], q: usize) {
    let share = 1.0 / q as f32;
    for (o, block) in out.iter_mut().zip(x.chunks_exact(q)) {
        *o = block.iter().sum::<f32>() * share;
    }
}

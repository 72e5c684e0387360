// SPDX-License-Identifier: MPL-2.0
//! Placing raw datagrams, which carry no sequence number or timestamp, on the sender's timeline.
//!
//! # The rule
//!
//! Positions are output frame indices: the frame at position `p` is played at
//! `origin + delay + p / rate`, where `origin` is the arrival time of the first datagram.
//! A datagram that arrives at `t` *as if* it were at position `p` has the residual
//! `r(p) = t - anchor - p / rate`: its network delay relative to the first datagram (`anchor`
//! starts as `origin` and moves only on a resync).
//!
//! 1. **Contiguous unless the arrival time says otherwise.** A sender of raw PCM sends an
//!    unbroken stream, so a datagram is assumed to follow the previous one (position `c`).
//! 2. **Arriving too late for `c` means a gap.** The residuals of the datagrams placed in the
//!    last 2 s span the network's jitter (from their minimum to their 95th percentile, so that
//!    a few misplaced datagrams do not widen it). If a datagram arrives later than that span
//!    allows at `c` (`r(c) > p95 + tolerance`; tolerance = a quarter of its duration, at least
//!    1 ms), the
//!    datagrams before it are taken as lost: it is placed at `c + k·n` with the smallest `k`
//!    (in units of its own size `n`) that brings it back within the span.
//! 3. **Arriving too early for `c` takes a gap back.** If a datagram arrives earlier than the
//!    span allows at `c` (`r(c) < min - tolerance`) and the last inferred gap is still ahead of
//!    the play head, the datagrams after that gap were not after lost ones but late ones
//!    (a stall, then a burst): they move back by up to the gap's size. The caller does this
//!    with [`Timeline::earliness`] and [`Timeline::rewind`]. Without such a gap the datagram is
//!    simply early and waits longer.
//! 4. **Late data is dropped.** A datagram whose slot has already been played is dropped and
//!    counted as late; its slot still counts, so the next one follows it. A datagram partly
//!    behind the play head keeps its tail.
//! 5. **Resync.** After 3 late datagrams in a row (the network delay grew beyond the latency,
//!    or the sender restarted behind us), the stream is re-anchored: the datagram waits the full
//!    delay after its arrival, as the very first one did, and the residual history restarts.
//!
//! Rules 2 and 3 together make a wrong guess about a gap correct itself as soon as the next
//! datagram arrives, as long as it arrives before the gap is played. What remains ambiguous:
//! jitter larger than a datagram's duration can hide a single loss until a later datagram
//! shows it (the caller then moves the gap back to where the arrival times show the hole).
//! Duplicated datagrams cannot be told apart from new audio and add their duration to the
//! queue, bounded by the overflow policy. Reordered datagrams are played in arrival order.

use std::collections::VecDeque;

use super::time::{NS_PER_MS, NS_PER_SEC, frames_to_ns, ns_to_frames};

/// How far back residuals are remembered.
const WINDOW_NS: i64 = 2 * NS_PER_SEC;
/// At most this many residuals are kept (bounds memory and work at high packet rates).
const WINDOW_MAX: usize = 256;
/// Minimum tolerance outside the residual span before a gap is inferred or taken back.
const MIN_TOLERANCE_NS: i64 = NS_PER_MS;
/// The upper end of the residual span is this percentile of the window, not its maximum.
const SPAN_QUANTILE_PERCENT: usize = 95;
/// Consecutive late datagrams that trigger a resync.
const LATE_RUN_RESYNC: u32 = 3;

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Play it from `pos`. `missing` frames before it (after the previous datagram) were inferred
    /// lost; `trim` leading frames are already behind the play head and must be discarded.
    Place { pos: i64, missing: i64, trim: i64 },
    /// Its slot has been played: drop it.
    Late,
    /// The stream was re-anchored; play it from `pos`. Everything queued before is stale.
    Resync { pos: i64 },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    arrival: i64,
    pos: i64,
}

/// The placement state of one stream.
#[derive(Debug)]
pub struct Timeline {
    rate: u32,
    /// Arrival time of the first datagram: position `p` plays at `origin + delay + p / rate`.
    origin: Option<i64>,
    /// Reference of the residuals; equals `origin` until a resync moves it.
    anchor: Option<i64>,
    next_pos: i64,
    window: VecDeque<Entry>,
    late_run: u32,
    next_id: u64,
    scratch: Vec<i64>,
    /// Media frames the playout has consumed beyond the output frames (drift compensation
    /// resampling): position `p` plays at `origin + delay + (p - media_offset) / rate`.
    media_offset: i64,
    /// How much longer (ns, negative: shorter) than nominal a frame of the sender's clock
    /// lasts, as the drift loop estimates it: residuals are projected to the newest position
    /// at the sender's own rate, so that a sender whose clock is off does not widen the span
    /// by its drift across the window (2.5 % is 50 ms in 2 s, which would hide every loss).
    frame_excess_ns: f64,
    /// The residual span of the last window that held any datagram: after an outage longer
    /// than the window, the first datagram is placed by its arrival against it (as after a
    /// loss), not taken to follow the audio before the outage (whose slots have played).
    last_span: Option<(i64, i64)>,
}

impl Timeline {
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            origin: None,
            anchor: None,
            next_pos: 0,
            window: VecDeque::with_capacity(WINDOW_MAX),
            late_run: 0,
            next_id: 0,
            scratch: Vec::with_capacity(WINDOW_MAX),
            media_offset: 0,
            frame_excess_ns: 0.0,
            last_span: None,
        }
    }

    pub fn reset(&mut self) {
        *self = Self::new(self.rate);
    }

    /// Arrival time of the first datagram, the origin of the output timeline.
    pub fn origin(&self) -> Option<i64> {
        self.origin
    }

    /// End of the last placed datagram.
    pub fn next_pos(&self) -> i64 {
        self.next_pos
    }

    /// Id that the next placement will carry (see [`Timeline::shift_ids`]).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Tells the sender's clock against the nominal rate (ppm, positive: fast), as far as it
    /// is known; 0 keeps the nominal rate.
    pub fn set_sender_skew_ppm(&mut self, ppm: f64) {
        let nominal = 1e9 / f64::from(self.rate);
        self.frame_excess_ns = nominal / (1.0 + ppm.clamp(-50_000.0, 50_000.0) * 1e-6) - nominal;
    }

    /// Residual against `anchor`, projected to the newest position at the sender's rate.
    fn projected(&self, anchor: i64, arrival: i64, pos: i64) -> i64 {
        let correction = ((self.next_pos - pos) as f64 * self.frame_excess_ns) as i64;
        arrival - anchor - frames_to_ns(pos, self.rate) + correction
    }

    /// Tells how many media frames the playout has consumed beyond the output frames (drift
    /// compensation): a resync then anchors where the output timeline really is.
    pub fn set_media_offset(&mut self, frames: i64) {
        self.media_offset = frames;
    }

    /// The earliest time, among the datagrams of the last 2 s before `now`, that position 0
    /// would have arrived on their path: `min(arrival - pos / rate)` (each projected to the
    /// newest position at the sender's rate, see [`Timeline::set_sender_skew_ppm`]). The
    /// fastest of them waits
    /// `origin + delay + (pos - media_offset) / rate - arrival`, i.e.
    /// `origin + delay - media_offset / rate - earliest_start`.
    pub fn earliest_start(&mut self, now: i64) -> Option<i64> {
        let anchor = self.anchor?;
        self.span(now).map(|(lo, _)| anchor + lo)
    }

    /// Residual of a datagram arriving at `arrival` if it were at `pos`.
    pub fn residual(&self, arrival: i64, pos: i64) -> i64 {
        match self.anchor {
            Some(anchor) => self.projected(anchor, arrival, pos),
            None => -frames_to_ns(pos, self.rate),
        }
    }

    fn tolerance(&self, frames: i64) -> i64 {
        (frames_to_ns(frames, self.rate) / 4).max(MIN_TOLERANCE_NS)
    }

    /// How many frames (a multiple of `frames`) earlier than the end of the previous datagram
    /// a datagram of `frames` frames arriving at `arrival` must start to fall within the
    /// residual span; 0 if it fits at the contiguous position (or later). Placements with ids
    /// from `exclude_from` on do not count towards the span's lower end.
    pub fn earliness(&mut self, arrival: i64, frames: i64, exclude_from: Option<u64>) -> i64 {
        let Some(anchor) = self.anchor else { return 0 };
        let _ = self.span(arrival);
        let limit = exclude_from.unwrap_or(u64::MAX);
        let Some(lo) = self
            .window
            .iter()
            .filter(|e| e.id < limit)
            .map(|e| self.projected(anchor, e.arrival, e.pos))
            .min()
        else {
            return 0;
        };
        let dur = frames_to_ns(frames, self.rate).max(1);
        let rc = arrival - anchor - frames_to_ns(self.next_pos, self.rate);
        let short = lo - self.tolerance(frames) - rc;
        if short > 0 {
            (short + dur - 1) / dur * frames
        } else {
            0
        }
    }

    /// Starts the output timeline at `origin` before any datagram arrived; the first datagram
    /// is then placed to wait the full delay after its arrival.
    pub fn start_at(&mut self, origin: i64) {
        self.origin.get_or_insert(origin);
    }

    /// Places a datagram of `frames` frames that arrived at `arrival` (ns), with the play head at
    /// `play_head`.
    pub fn place(&mut self, arrival: i64, frames: i64, play_head: i64) -> Placement {
        let Some(anchor) = self.anchor else {
            // The first datagram: the origin of the output timeline, or, if the output started
            // before it, placed to wait the full delay from its arrival.
            self.origin.get_or_insert(arrival);
            let pos = self.anchor_full_delay(arrival, play_head);
            return self.accept(arrival, pos, frames, 0, play_head);
        };

        let c = self.next_pos;
        let dur = frames_to_ns(frames, self.rate).max(1);
        let rc = arrival - anchor - frames_to_ns(c, self.rate);
        let mut k = 0;
        if let Some((_, hi)) = self.span(arrival).or(self.last_span) {
            let excess = rc - hi - self.tolerance(frames);
            if excess > 0 {
                k = (excess + dur - 1) / dur;
            }
        }
        let pos = c + k * frames;

        if pos + frames <= play_head {
            self.late_run += 1;
            if self.late_run >= LATE_RUN_RESYNC {
                return self.resync(arrival, frames, play_head);
            }
            // The slot counts: the next datagram follows this one.
            self.next_pos = pos + frames;
            return Placement::Late;
        }
        self.accept(arrival, pos, frames, k * frames, play_head)
    }

    fn accept(
        &mut self,
        arrival: i64,
        pos: i64,
        frames: i64,
        missing: i64,
        play_head: i64,
    ) -> Placement {
        self.late_run = 0;
        self.next_pos = pos + frames;
        self.remember(arrival, pos);
        Placement::Place {
            pos,
            missing,
            trim: (play_head - pos).clamp(0, frames),
        }
    }

    fn resync(&mut self, arrival: i64, frames: i64, play_head: i64) -> Placement {
        // Give it the position it would have had as the first datagram, keeping the output
        // timeline and its PTS continuous; residuals restart from zero.
        let pos = self.anchor_full_delay(arrival, play_head);
        self.window.clear();
        self.last_span = None;
        self.late_run = 0;
        self.next_pos = pos + frames;
        self.remember(arrival, pos);
        Placement::Resync { pos }
    }

    /// The position at which a datagram arriving at `arrival` waits the full delay, as the first
    /// one did (never behind the play head); the residuals are re-anchored on it.
    fn anchor_full_delay(&mut self, arrival: i64, play_head: i64) -> i64 {
        let origin = self.origin.unwrap_or(arrival);
        let pos = (ns_to_frames(arrival - origin, self.rate) + self.media_offset).max(play_head);
        self.anchor = Some(arrival - frames_to_ns(pos, self.rate));
        pos
    }

    /// Re-indexes every position by `delta` frames (the caller skipped `-delta` frames of queued
    /// audio to bound the queue). The anchor moves too, so residuals stay what they were.
    pub fn shift(&mut self, delta: i64) {
        self.next_pos += delta;
        for e in &mut self.window {
            e.pos += delta;
        }
        if let Some(a) = self.anchor.as_mut() {
            *a -= frames_to_ns(delta, self.rate);
        }
    }

    /// Moves the end of the stream back by `frames` (the caller took back part of a gap).
    pub fn rewind(&mut self, frames: i64) {
        self.next_pos -= frames;
    }

    /// Whether a datagram of `frames` frames that arrived at `arrival`, placed at `pos`, would
    /// also fit one datagram later, i.e. after a lost one: its adjacency to the previous one is a
    /// guess.
    pub fn could_follow_a_gap(&mut self, arrival: i64, pos: i64, frames: i64) -> bool {
        let Some((lo, _)) = self.span(arrival) else {
            return false;
        };
        let dur = frames_to_ns(frames, self.rate);
        self.residual(arrival, pos) - dur >= lo - self.tolerance(frames)
    }

    /// The smallest residual of the recent datagrams: how much later (ns) than scheduled even
    /// the fastest of them arrive. Negative: they wait longer than the latency (excess delay);
    /// positive: shorter (the margin for jitter shrank).
    pub fn min_residual(&mut self, now: i64) -> Option<i64> {
        self.span(now).map(|(lo, _)| lo)
    }

    /// Plays the stream `frames` earlier (later, if negative) from the last placement on: the
    /// end of the stream moves, and the remembered residuals are re-based as if the whole history
    /// had been placed that much earlier, so the delay changes by as much.
    pub fn advance(&mut self, frames: i64) {
        self.next_pos -= frames;
        for e in &mut self.window {
            e.pos -= frames;
        }
        let d = frames_to_ns(frames, self.rate);
        self.last_span = self.last_span.map(|(lo, hi)| (lo + d, hi + d));
    }

    /// Moves the remembered positions of the placements with ids in `ids` by `delta` frames
    /// (the caller moved a gap between already queued datagrams).
    pub fn shift_ids(&mut self, ids: std::ops::Range<u64>, delta: i64) {
        for e in self.window.iter_mut().filter(|e| ids.contains(&e.id)) {
            e.pos += delta;
        }
    }

    /// Forgets the residual of placement `id` (its datagram turned out late and was dropped; its
    /// delay says nothing about the jitter of the datagrams that are played).
    pub fn forget(&mut self, id: u64) {
        self.window.retain(|e| e.id != id);
    }

    fn remember(&mut self, arrival: i64, pos: i64) {
        let id = self.next_id;
        self.next_id += 1;
        while self.window.len() >= WINDOW_MAX {
            self.window.pop_front();
        }
        self.window.push_back(Entry { id, arrival, pos });
    }

    /// The distribution of recent residuals, to weigh where a gap most likely is.
    pub fn residual_model(&mut self, now: i64) -> ResidualModel {
        let _ = self.span(now);
        let mut sorted = self.scratch.clone();
        sorted.sort_unstable();
        ResidualModel { sorted }
    }

    /// Smallest residual and the span's upper end among datagrams that arrived within the window
    /// before `now`. The upper end is a high quantile, not the maximum, so that a few misplaced
    /// datagrams do not widen it (which would hide the next loss).
    fn span(&mut self, now: i64) -> Option<(i64, i64)> {
        while self
            .window
            .front()
            .is_some_and(|e| now - e.arrival > WINDOW_NS)
        {
            self.window.pop_front();
        }
        let anchor = self.anchor?;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend(
            self.window
                .iter()
                .map(|e| self.projected(anchor, e.arrival, e.pos)),
        );
        self.scratch = scratch;
        if self.scratch.is_empty() {
            return None;
        }
        let lo = *self.scratch.iter().min().expect("not empty");
        let k = ((self.scratch.len() - 1) * SPAN_QUANTILE_PERCENT).div_ceil(100);
        let (_, hi, _) = self.scratch.select_nth_unstable(k);
        self.last_span = Some((lo, *hi));
        Some((lo, *hi))
    }
}

/// A kernel density estimate of recent residuals.
#[derive(Debug, Clone)]
pub struct ResidualModel {
    sorted: Vec<i64>,
}

impl ResidualModel {
    /// Half-width of the kernel.
    const BANDWIDTH_NS: i64 = 2 * NS_PER_MS;

    /// Log of the (smoothed) density of residual `r`: how usual a datagram delay it is. Never
    /// minus infinity: an unseen delay is unlikely, not impossible.
    pub fn log_density(&self, r: i64) -> f64 {
        let lo = self.sorted.partition_point(|&x| x < r - Self::BANDWIDTH_NS);
        let hi = self
            .sorted
            .partition_point(|&x| x <= r + Self::BANDWIDTH_NS);
        let n = self.sorted.len() as f64;
        ((hi - lo) as f64 + 0.01).ln() - (n + 1.0).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = NS_PER_MS;

    fn placed(p: Placement) -> (i64, i64) {
        match p {
            Placement::Place { pos, missing, .. } => (pos, missing),
            other => panic!("expected Place, got {other:?}"),
        }
    }

    #[test]
    fn steady_stream_is_contiguous() {
        let mut t = Timeline::new(8000);
        for i in 0..1000 {
            assert_eq!(t.earliness(i * 10 * MS, 80, None), 0);
            let (pos, missing) = placed(t.place(i * 10 * MS, 80, 0));
            assert_eq!((pos, missing), (i * 80, 0));
        }
    }

    #[test]
    fn single_and_double_losses_are_found() {
        let mut t = Timeline::new(8000);
        for i in 0..10 {
            placed(t.place(i * 10 * MS, 80, 0));
        }
        // Datagram 10 lost.
        assert_eq!(placed(t.place(110 * MS, 80, 0)), (880, 80));
        // 12 and 13 lost.
        assert_eq!(placed(t.place(140 * MS, 80, 0)), (1120, 160));
    }

    #[test]
    fn jitter_within_the_learned_span_is_not_loss() {
        let mut t = Timeline::new(8000);
        let jit = [0, 20, 5, 12, 0, 18, 3, 20, 7, 0];
        let mut last_gap = None;
        for (i, j) in jit.iter().enumerate() {
            let arrival = i as i64 * 10 * MS + j * MS;
            // The first delayed datagram looks like a loss until the next one shows otherwise;
            // the caller then moves the datagrams after the gap back (as `Playout` does).
            let back = t.earliness(arrival, 80, last_gap);
            if back > 0 {
                t.shift_ids(last_gap.unwrap()..u64::MAX, -back);
                t.rewind(back);
            }
            let id = t.next_id();
            if placed(t.place(arrival, 80, 0)).1 > 0 {
                last_gap = Some(id);
            }
        }
        assert_eq!(t.next_pos(), 800, "every guessed gap was taken back");
        // A datagram 19 ms late is jitter, not loss.
        assert_eq!(placed(t.place(100 * MS + 19 * MS, 80, 0)), (800, 0));
        // A loss followed by a datagram delayed by more than the span's slack is found.
        assert_eq!(placed(t.place(135 * MS, 80, 0)), (960, 80));
    }

    #[test]
    fn early_arrival_after_a_stall_reports_earliness() {
        let mut t = Timeline::new(8000);
        for i in 0..20 {
            placed(t.place(i * 10 * MS, 80, 0));
        }
        // A 100 ms stall: datagram 20 arrives at 300 ms, looks like 10 lost ones.
        assert_eq!(placed(t.place(300 * MS, 80, 0)), (2400, 800));
        // Datagram 21 arrives at once: 10 ms too early for the position after 20.
        assert_eq!(t.earliness(300 * MS, 80, Some(20)), 80);
    }

    #[test]
    fn late_datagram_is_dropped_but_keeps_its_slot() {
        let mut t = Timeline::new(8000);
        placed(t.place(0, 80, 0));
        placed(t.place(10 * MS, 80, 0));
        // Play head already at 240: the datagram for [160, 240) is late.
        assert_eq!(t.place(20 * MS, 80, 240), Placement::Late);
        assert_eq!(t.next_pos(), 240);
        // The next one straddles the play head: its tail is kept.
        assert_eq!(
            t.place(30 * MS, 80, 280),
            Placement::Place {
                pos: 240,
                missing: 0,
                trim: 40
            }
        );
    }

    #[test]
    fn three_late_in_a_row_resync() {
        let mut t = Timeline::new(8000);
        placed(t.place(0, 80, 0));
        // The play head ran far ahead (the stream stalled for longer than the latency).
        let head = 4000;
        assert_eq!(t.place(10 * MS, 80, head), Placement::Late);
        assert_eq!(t.place(20 * MS, 80, head), Placement::Late);
        assert_eq!(
            t.place(30 * MS, 80, head),
            Placement::Resync { pos: head },
            "never behind the play head"
        );
        // And the stream continues contiguously from there.
        assert_eq!(placed(t.place(40 * MS, 80, head)), (head + 80, 0));
    }

    #[test]
    fn first_datagram_after_an_early_start_waits_the_full_delay() {
        let mut t = Timeline::new(8000);
        t.start_at(0);
        // Output ran from 0; the first datagram arrives at 1 s and plays from frame 8000, whose
        // deadline is the same delay after its arrival as position 0's after the origin.
        assert_eq!(placed(t.place(1000 * MS, 80, 7600)), (8000, 0));
        assert_eq!(placed(t.place(1010 * MS, 80, 7680)), (8080, 0));
    }

    #[test]
    fn shift_keeps_residuals() {
        let mut t = Timeline::new(8000);
        for i in 0..5 {
            placed(t.place(i * 10 * MS, 80, 0));
        }
        t.shift(-200);
        assert_eq!(t.next_pos(), 200);
        assert_eq!(placed(t.place(50 * MS, 80, 0)), (200, 0));
    }
}

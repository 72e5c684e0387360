// SPDX-License-Identifier: MPL-2.0
//! Clock drift compensation of one playout's output, shared by the raw and the RTP playout: the
//! drift loop (`crate::drift`) decides a ratio per 10 ms chunk and the resampler sits between
//! the media and the chunks. No GStreamer types.
//!
//! The playout owns a [`Compensator`] and drives it step by step (the playout produces the
//! media, the compensator never calls back):
//! 1. every accepted packet: [`Compensator::on_packet`] with its arrival and media position;
//! 2. every chunk: [`Compensator::tick`] (or [`Compensator::tick_measured`], for a playout
//!    that measures the delay itself), then, if [`Compensator::wants_resampler`],
//!    [`Compensator::engage`] (feeding and [`Compensator::discard`]ing what it asks for);
//!    while engaged, [`Compensator::set_ratio`], feed [`Compensator::input_needed`] frames and
//!    [`Compensator::pull`] the chunk; while bypassed, produce the chunk directly and [`Compensator::remember`] it.
//!
//! Media positions are the playout's own (frames on the packets' timeline); when the playout
//! moves its timeline later to raise the delay at once (adaptive mode, [`Compensator::insert_due`]),
//! it reports it with [`Compensator::shifted`] and the loop keeps measuring in the coordinates
//! the packets had before.

use std::collections::VecDeque;
use std::fmt;

use super::time::frames_to_ns;
use crate::drift::{
    ControllerConfig, DelayConfig, DriftLoop, DriftResampler, Interpolation, QuietSplicer,
    TargetMode, TickDecision, playout_delay_ns,
};

/// Clock drift compensation of the output (see `crate::drift` and `docs/drift.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriftMode {
    /// Media is consumed at exactly the nominal rate: a sender clock that runs fast or slow
    /// makes the queue grow or run dry until a resync (the behaviour before drift
    /// compensation, for comparison). The skew is still estimated for the stats.
    Off,
    /// The playout delay is held at the latency: the media is resampled with a ratio a
    /// control loop derives from the arrival times.
    #[default]
    Fixed,
    /// The target delay follows the arrival jitter (a high quantile, see
    /// [`crate::drift::DelayEstimator`]) within the range set by
    /// [`Compensator::set_range`]: it is raised at once by concealing, and lowered (and the
    /// drift compensated) by resampling.
    Adaptive,
}

/// What the drift loop measured and decided at the last chunk, and what it stretched so far.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DriftStats {
    /// Sender's clock against the output clock, ppm (positive: the sender is fast).
    pub skew_ppm: Option<f64>,
    /// Resampling ratio (output / input) of the last chunk; 1 while bypassed.
    pub ratio: f64,
    /// How long after its fastest-path arrival the first frame of the last chunk plays (ns):
    /// what the loop holds at the target.
    pub measured_delay_ns: f64,
    pub target_delay_ns: f64,
    /// The resampler is in the path (it takes over from the bypass once the loop corrects).
    pub resampling: bool,
    /// Output frames beyond the media consumed (resampling slower, and concealment inserted to
    /// raise the delay in adaptive mode), since the stream started.
    pub inserted_frames: u64,
    /// Media frames consumed beyond the output produced (resampling faster, and cut out of
    /// quiet stretches in adaptive mode).
    pub removed_frames: u64,
    /// Of `removed_frames`, those cut out of quiet stretches (adaptive mode lowering the delay,
    /// see [`crate::drift::QuietSplicer`]).
    pub compressed_frames: u64,
}

/// Bypass until the loop wants a ratio this far from 1...
const ENGAGE_RATIO: f64 = 20e-6;
/// ...or the delay is this far off the target (ns).
const ENGAGE_DELAY_NS: f64 = 1e6;
/// Adaptive mode: when the target is this far above the measured delay (ns), a chunk's worth
/// of concealment is inserted to raise the delay at once (the controller does the rest).
const INSERT_ABOVE_NS: f64 = 15e6;
/// Adaptive mode lowering the delay by cuts in quiet stretches: every frame judged for a cut
/// (the cut and the cross-fade after it, produced ahead of what the chunk needs) must still be
/// this far (ns) above the target, and so must the delay after the cut (the controller works
/// off the rest)...
const CUT_DOWN_TO_NS: f64 = 2e6;
/// ...a cut removes at least this (ms; smaller ones are left to the controller)...
const CUT_MIN_MS: f64 = 1.0;
/// ...and at most this per chunk (ms): a pause plays at most twice as fast.
const CUT_MAX_MS: f64 = 10.0;

/// The drift loop and the resampler of one stream.
pub(crate) struct Compensator {
    mode: DriftMode,
    rate: u32,
    channels: usize,
    interpolation: Interpolation,
    /// Input frames the resampler reads ahead of its read position.
    pub(crate) lookahead: usize,
    /// The most frames one pull may ask for.
    max_chunk: usize,
    /// What the loop measures is the delay of the newest frame a chunk needs, `offset_ns`
    /// after the chunk's first frame in media time. In fixed mode the loop's clock runs
    /// `offset_ns` ahead, so that its delay is the one of the chunk's first frame, the
    /// latency's meaning. In adaptive mode it does not: the target is a quantile of the
    /// relative arrival delays, which the newest frame needed must cover (the listener hears
    /// each frame `offset_ns` later than that).
    offset_ns: i64,
    /// How much later than the fastest path the anchoring packet arrived (≥ 0, at most the
    /// latency), as far as the packets that arrived until the first chunk after it can tell;
    /// fixed then: the delay the stream started with is `latency + excess`, and that is what
    /// is held (a stream without skew plays exactly as it would without drift compensation).
    excess_ns: Option<f64>,
    latency_ns: i64,
    /// Adaptive mode's bounds of the target (ns).
    min_ns: u64,
    max_ns: u64,
    lp: DriftLoop,
    /// `Some` once engaged: then every output frame comes through it.
    rs: Option<DriftResampler>,
    /// Media position of the resampler's input frame 0.
    base: i64,
    /// The last frames produced while bypassed (interleaved): the filter's history when the
    /// resampler takes over.
    history: VecDeque<f32>,
    history_frames: usize,
    last: Option<TickDecision>,
    /// Which input frame the resampler's output frame 0 is, at ratio 1 (measured once).
    lag: Option<i64>,
    /// Frames the playout moved its timeline later since the loop restarted: the loop measures
    /// in the coordinates the packets had before.
    shift: i64,
    /// Media read position at the start of the last chunk and its frames, to count what was
    /// stretched.
    last_read: Option<(f64, i64)>,
    inserted: f64,
    removed: f64,
    /// Received audio is playing (see [`Compensator::set_playing`]).
    playing: bool,
    /// Fixed mode engages the resampler only for a delay error, not for a ratio the early skew
    /// estimate suggests (see [`Compensator::engage_on_delay_only`]).
    delay_only: bool,
    /// The skew estimate steers the controller only beyond this (ppm; see
    /// [`Compensator::trust_skew_above`]).
    min_hint_ppm: f64,
    /// Adaptive mode's cuts in quiet stretches.
    splicer: QuietSplicer,
    /// Cuts pushed into the resampler that its read position has not passed yet: at input
    /// frame `.0`, `.1` media frames were left out (`base` moves on once passed).
    cuts: VecDeque<(f64, i64)>,
    compressed: u64,
    /// Scratch for a cut.
    cut_buf: Vec<f32>,
    /// The newest media frame the last chunk needed (playout coordinates).
    last_need: f64,
}

impl fmt::Debug for Compensator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compensator")
            .field("mode", &self.mode)
            .field("resampling", &self.rs.is_some())
            .field("base", &self.base)
            .field("shift", &self.shift)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Compensator {
    pub(crate) fn new(rate: u32, channels: usize, latency_ns: i64) -> Self {
        // 128 taps (flat to 20 kHz at 48 kHz); below 32 kHz 64, so the look-ahead stays small
        // (4 ms at 8 kHz).
        let len = if rate >= 32_000 { 128 } else { 64 };
        let lookahead = len / 2;
        let chunk_frames = (i64::from(rate) + 99) / 100;
        let history_frames = 2 * lookahead;
        let offset_ns = frames_to_ns(chunk_frames + lookahead as i64, rate);
        let defaults = DelayConfig::default();
        let mut me = Self {
            mode: DriftMode::default(),
            rate,
            channels,
            interpolation: Interpolation::Sinc { len },
            lookahead,
            max_chunk: (chunk_frames as usize + 1).max(history_frames),
            offset_ns,
            excess_ns: None,
            latency_ns,
            min_ns: defaults.min_ns,
            max_ns: defaults.max_ns,
            lp: DriftLoop::new(
                rate,
                TargetMode::Fixed { latency_ns: 0 },
                ControllerConfig::default(),
            ),
            rs: None,
            base: 0,
            history: VecDeque::new(),
            history_frames,
            last: None,
            lag: None,
            shift: 0,
            last_read: None,
            inserted: 0.0,
            removed: 0.0,
            playing: true,
            delay_only: false,
            min_hint_ppm: 0.0,
            splicer: QuietSplicer::new(rate, channels),
            cuts: VecDeque::new(),
            compressed: 0,
            cut_buf: Vec::new(),
            last_need: 0.0,
        };
        me.restart(latency_ns);
        me
    }

    pub(crate) fn mode(&self) -> DriftMode {
        self.mode
    }

    /// Sets the mode; a change between fixed and adaptive restarts the loop (an engaged
    /// resampler stays in the path until [`Compensator::reset`]).
    pub(crate) fn set_mode(&mut self, mode: DriftMode) {
        let adaptive = |m| m == DriftMode::Adaptive;
        let restart = adaptive(mode) != adaptive(self.mode);
        self.mode = mode;
        if restart {
            self.restart(self.latency_ns);
        }
    }

    /// Adaptive mode's target range (ns); applies from the next restart of the loop (a new
    /// stream or a resync), so a running stream's estimate is not thrown away.
    pub(crate) fn set_range(&mut self, min_ns: u64, max_ns: u64) {
        self.min_ns = min_ns.min(max_ns);
        self.max_ns = max_ns.max(min_ns);
    }

    /// The most delay the stream may be held at (ns): `latency`, or in adaptive mode the top of
    /// the range if that is larger. The playout sizes its queue from it.
    pub(crate) fn delay_bound_ns(&self, latency_ns: i64) -> i64 {
        if self.mode == DriftMode::Adaptive {
            latency_ns.max(self.max_ns.min(i64::MAX as u64 / 4) as i64)
        } else {
            latency_ns
        }
    }

    fn target_ns(&self) -> u64 {
        (self.latency_ns as f64 + self.excess_ns.unwrap_or(0.0)).max(0.0) as u64
    }

    /// A new media timeline (first packet, resync): the line and the controller start over;
    /// the resampler (if engaged) runs on, the output stays continuous.
    pub(crate) fn restart(&mut self, latency_ns: i64) {
        self.latency_ns = latency_ns;
        self.excess_ns = None;
        self.shift = 0;
        let target = if self.mode == DriftMode::Adaptive {
            TargetMode::Adaptive(DelayConfig {
                min_ns: self.min_ns,
                max_ns: self.max_ns,
                ..DelayConfig::default()
            })
        } else {
            TargetMode::Fixed {
                latency_ns: self.target_ns(),
            }
        };
        self.lp = DriftLoop::new(self.rate, target, ControllerConfig::default());
        self.lp.set_min_hint_ppm(self.min_hint_ppm);
    }

    /// Lets the skew estimate steer (the controller's pull-in, [`Compensator::trusted_skew_ppm`])
    /// only when it says the sender is at least `ppm` off, with a standard error of at most a
    /// tenth of that (see [`DriftLoop::set_min_hint_ppm`]); below that the controller learns
    /// the skew from the delay error alone.
    pub(crate) fn trust_skew_above(&mut self, ppm: f64) {
        self.min_hint_ppm = ppm;
        self.lp.set_min_hint_ppm(ppm);
    }

    /// Forgets the stream.
    pub(crate) fn reset(&mut self, latency_ns: i64) {
        self.restart(latency_ns);
        self.rs = None;
        self.base = 0;
        self.history.clear();
        self.last = None;
        self.last_read = None;
        self.inserted = 0.0;
        self.removed = 0.0;
        self.splicer = QuietSplicer::new(self.rate, self.channels);
        self.cuts.clear();
        self.compressed = 0;
    }

    pub(crate) fn set_latency(&mut self, latency_ns: i64) {
        self.latency_ns = latency_ns;
        self.excess_ns = self.excess_ns.map(|e| e.min(latency_ns as f64));
        self.lp.set_fixed_latency(self.target_ns());
    }

    /// A packet was accepted: it arrived at `arrival_ns` and its first frame is at media
    /// position `pos`.
    pub(crate) fn on_packet(&mut self, arrival_ns: i64, pos: i64) {
        self.lp
            .on_packet(arrival_ns.max(0) as u64, (pos - self.shift).max(0) as u64);
    }

    /// The playout moved every media position from here on `frames` later (it inserted that
    /// much concealment).
    pub(crate) fn shifted(&mut self, frames: i64) {
        self.shift += frames;
        self.inserted += frames as f64;
    }

    /// Media position of the next output frame (fractional while resampling); `media_head` is
    /// the next frame the playout will produce.
    pub(crate) fn read_pos(&self, media_head: i64) -> f64 {
        match &self.rs {
            Some(rs) => {
                let at = rs.read_pos();
                let cut: i64 = self
                    .cuts
                    .iter()
                    .take_while(|c| c.0 <= at)
                    .map(|c| c.1)
                    .sum();
                (self.base + cut) as f64 + at
            }
            None => media_head as f64,
        }
    }

    pub(crate) fn ratio(&self) -> f64 {
        self.rs.as_ref().map_or(1.0, DriftResampler::ratio)
    }

    /// Whether received audio is playing yet. Fixed mode measures the delay the stream starts
    /// with (`latency` plus the anchoring packet's lateness) only once it is: before that (the
    /// output started on silence, `silence-until-data`), the first packet alone defines the
    /// fastest path and its own lateness cannot show. A playout that does not call this is taken
    /// as playing.
    pub(crate) fn set_playing(&mut self, playing: bool) {
        self.playing = playing;
    }

    /// One chunk of `frames` at `now_ns` (the chunk's deadline less upstream latency, in the
    /// arrivals' time base) reading from media position `read_pos`: the loop's decision.
    pub(crate) fn tick(&mut self, now_ns: i64, read_pos: f64, frames: i64) -> TickDecision {
        self.count_stretch(read_pos, frames);
        self.last_need = read_pos + frames as f64 / self.ratio() + self.lookahead as f64;
        let need = self.last_need - self.shift as f64;
        let offset = if self.mode == DriftMode::Adaptive {
            0
        } else {
            self.offset_ns
        };
        let now = (now_ns + offset).max(0) as u64;
        if self.mode != DriftMode::Adaptive
            && self.playing
            && self.excess_ns.is_none()
            && let Some(delay) = playout_delay_ns(self.lp.skew(), now, need)
        {
            let excess = (delay - self.latency_ns as f64).clamp(0.0, self.latency_ns as f64);
            self.excess_ns = Some(excess);
            self.lp.set_fixed_latency(self.target_ns());
        }
        let d = self.lp.on_tick(now, need);
        self.last = Some(d);
        d
    }

    /// [`Compensator::tick`] for a playout that measures the delay itself (raw datagrams:
    /// their placement on the timeline defines it): `first_frame_delay_ns` is how long after
    /// the fastest path's arrival the chunk's first frame plays (`None` when nothing recent to
    /// tell). It is held where the stream started, as [`Compensator::tick`] does in fixed
    /// mode: the latency plus the lateness the first datagram turns out to have once received
    /// audio plays (at most the latency). The playout aims its own delay control at the same
    /// value ([`Compensator::excess_ns`]), so the two never pull apart. (No adaptive mode: its
    /// target is a quantile of lateness against timestamps, which such a playout lacks; it
    /// plays adaptive as fixed.)
    pub(crate) fn tick_measured(
        &mut self,
        now_ns: i64,
        read_pos: f64,
        frames: i64,
        first_frame_delay_ns: Option<f64>,
    ) -> TickDecision {
        self.count_stretch(read_pos, frames);
        debug_assert_ne!(self.mode, DriftMode::Adaptive, "plays adaptive as fixed");
        if self.playing
            && self.excess_ns.is_none()
            && let Some(delay) = first_frame_delay_ns
        {
            let latency = self.latency_ns as f64;
            self.excess_ns = Some((delay - latency).clamp(0.0, latency));
            self.lp.set_fixed_latency(self.target_ns());
        }
        let d = self
            .lp
            .on_tick_measured(now_ns.max(0) as u64, first_frame_delay_ns);
        self.last = Some(d);
        d
    }

    /// What the last chunk stretched: output frames against media frames consumed.
    fn count_stretch(&mut self, read_pos: f64, frames: i64) {
        if let Some((prev, out)) = self.last_read {
            let consumed = read_pos - prev;
            let out = out as f64;
            if consumed < out {
                self.inserted += out - consumed;
            } else {
                self.removed += consumed - out;
            }
        }
        self.last_read = Some((read_pos, frames));
    }

    /// The playout renumbered every media position from here on by `frames` (it skipped
    /// queued audio to bound the delay): the loop keeps measuring in the coordinates the
    /// packets had before. Nothing is counted as stretched.
    pub(crate) fn renumbered(&mut self, frames: i64) {
        self.shift += frames;
    }

    /// How far (ns) above the latency fixed mode holds the delay of a chunk's first frame:
    /// the first packet's lateness, once measured (see [`Compensator::tick_measured`]). A
    /// playout that places packets itself aims its own delay control at it.
    pub(crate) fn excess_ns(&self) -> f64 {
        self.excess_ns.unwrap_or(0.0)
    }

    /// Fixed mode: take the resampler into the path only once the delay is off the target,
    /// whatever ratio the loop asks for before that. For a playout that measures the delay
    /// itself ([`Compensator::tick_measured`]): the skew the first seconds of a jittery stream
    /// suggest (tens of ppm on a real loopback) is no reason to resample a stream whose delay
    /// holds; a real skew moves the delay by 1 ms soon enough (1 s at 1000 ppm).
    pub(crate) fn engage_on_delay_only(&mut self) {
        self.delay_only = true;
    }

    /// Whether to put the resampler in the path now (`playing`: received audio has started).
    pub(crate) fn wants_resampler(&self, d: &TickDecision, playing: bool) -> bool {
        if self.rs.is_some() || !playing {
            return false;
        }
        match self.mode {
            DriftMode::Off => false,
            DriftMode::Adaptive => true,
            DriftMode::Fixed => {
                (!self.delay_only && (d.ratio - 1.0).abs() > ENGAGE_RATIO)
                    || (d.measured_delay_ns - d.target_delay_ns).abs() > ENGAGE_DELAY_NS
            }
        }
    }

    /// Adaptive mode: frames of concealment to insert now to raise the delay at once (0
    /// otherwise). The playout inserts them where it can and reports with
    /// [`Compensator::shifted`].
    pub(crate) fn insert_due(&self, d: &TickDecision) -> i64 {
        if self.mode == DriftMode::Adaptive
            && d.target_delay_ns - d.measured_delay_ns > INSERT_ABOVE_NS
        {
            (i64::from(self.rate) + 99) / 100
        } else {
            0
        }
    }

    /// Adaptive mode, while resampling: how many media frames to cut out of the next stretch
    /// (from `media_head`, the next frame the playout produces) if it is quiet (0: none due).
    /// The playout then produces [`Compensator::cut_input_frames`] frames and hands them to
    /// [`Compensator::offer_cut`] before feeding the chunk as usual.
    ///
    /// The stretch judged lies ahead of what the chunk needs, so it is played earlier than
    /// the measured delay says: a cut is due only while its last frame still plays at least
    /// `CUT_DOWN_TO_NS` above the target (its packets had as long to arrive as the target
    /// allows), and what it removes leaves the delay that far above the target, plus what the
    /// controller, if it is consuming faster, will still remove while it slews back. Media
    /// judged and left whole stays queued in the resampler and counts against the next cut,
    /// so the playout never runs ahead of the arrivals.
    pub(crate) fn cut_due(&self, d: &TickDecision, media_head: i64) -> usize {
        if self.mode != DriftMode::Adaptive || self.rs.is_none() {
            return 0;
        }
        let rate = f64::from(self.rate);
        let ahead =
            (media_head as f64 - self.last_need).max(0.0) + self.splicer.xfade_frames() as f64;
        // The controller may be consuming faster to work the same excess off; once the cuts
        // have removed it, it slews back at most at its acquisition slew, and consumes this much
        // more on the way (ns): the cuts leave it.
        let faster = (1.0 / d.ratio - 1.0).max(0.0);
        let slew = self.lp.controller().config().acquire_slew;
        let coast_ns = faster * faster / (2.0 * slew) * 1e9;
        let room = (d.measured_delay_ns - d.target_delay_ns - CUT_DOWN_TO_NS - coast_ns) * rate
            / 1e9
            - ahead;
        if room < CUT_MIN_MS * rate / 1000.0 {
            return 0;
        }
        room.min(CUT_MAX_MS * rate / 1000.0) as usize
    }

    /// Media frames a cut of `remove` frames is judged on.
    pub(crate) fn cut_input_frames(&self, remove: usize) -> usize {
        self.splicer.input_frames(remove)
    }

    /// Pushes `media` (the next [`Compensator::cut_input_frames`] frames) into the resampler,
    /// with `remove` frames cut out if it is quiet; whether it was.
    pub(crate) fn offer_cut(&mut self, media: &[f32], remove: usize) -> bool {
        let Some(rs) = self.rs.as_mut() else {
            return false;
        };
        let mut buf = std::mem::take(&mut self.cut_buf);
        buf.clear();
        let at = rs.pushed_frames() as f64;
        let cut = self.splicer.offer(media, remove, &mut buf);
        rs.push(&buf);
        self.cut_buf = buf;
        if cut {
            // The output fades from before the cut to after it across the cross-fade: its
            // middle is where the media jumps.
            let mid = at + self.splicer.xfade_frames() as f64 / 2.0 - self.lag.unwrap_or(0) as f64;
            self.cuts.push_back((mid, remove as i64));
            self.compressed += remove as u64;
        }
        cut
    }

    /// Folds the cuts the resampler's read position passed into `base`.
    fn pass_cuts(&mut self) {
        let Some(rs) = self.rs.as_ref() else {
            return;
        };
        let at = rs.read_pos();
        while let Some(&(mid, k)) = self.cuts.front()
            && mid <= at
        {
            self.base += k;
            self.cuts.pop_front();
        }
    }

    /// Puts the resampler in the path, starting with the last frames bypassed as history, so
    /// the switch is seamless: returns how many frames the playout must feed (from
    /// `media_head`) and then [`Compensator::discard`].
    pub(crate) fn engage(&mut self, media_head: i64) -> usize {
        let ch = self.channels;
        let mut rs = DriftResampler::new(ch, self.max_chunk, self.interpolation);
        debug_assert_eq!(rs.lookahead_frames(), self.lookahead);
        let interpolation = self.interpolation;
        let lag = *self.lag.get_or_insert_with(|| resampler_lag(interpolation));
        let hist: Vec<f32> = self.history.drain(..).collect();
        let h = (hist.len() / ch) as i64;
        rs.push(&hist);
        // Output frame k is input frame k + lag: discarding h - lag frames leaves the next
        // output at the bypass's next frame.
        self.base = media_head - h + lag;
        self.rs = Some(rs);
        self.cuts.clear();
        (h - lag).max(0) as usize
    }

    /// Pulls and throws away `frames` (after [`Compensator::engage`]).
    pub(crate) fn discard(&mut self, frames: usize) {
        if let Some(rs) = self.rs.as_mut()
            && frames > 0
        {
            let mut discard = vec![0.0f32; frames * self.channels];
            // Cannot fail when fed as asked.
            let _ = rs.pull(&mut discard);
        }
    }

    /// Media frames still to feed before `frames` output frames can be pulled (0: enough).
    pub(crate) fn input_needed(&mut self, frames: usize) -> usize {
        match self.rs.as_mut() {
            Some(rs) => rs
                .input_frames_needed(frames)
                .saturating_sub(rs.queued_frames()),
            None => 0,
        }
    }

    pub(crate) fn push(&mut self, media: &[f32]) {
        if let Some(rs) = self.rs.as_mut() {
            rs.push(media);
            if self.mode == DriftMode::Adaptive {
                self.splicer.observe(media);
            }
        }
    }

    pub(crate) fn resampling(&self) -> bool {
        self.rs.is_some()
    }

    /// Sets the ratio of the next chunk (before feeding it: the input it needs depends on it).
    pub(crate) fn set_ratio(&mut self, ratio: f64) {
        if let Some(rs) = self.rs.as_mut() {
            rs.set_ratio(ratio);
        }
    }

    /// One chunk of `frames` through the resampler into `out` (after
    /// [`Compensator::set_ratio`], fed as [`Compensator::input_needed`] asked); whether it is
    /// audible.
    pub(crate) fn pull(&mut self, frames: usize, out: &mut Vec<f32>) -> bool {
        out.resize(frames * self.channels, 0.0);
        let Some(rs) = self.rs.as_mut() else {
            out.fill(0.0);
            return false;
        };
        if rs.pull(out).is_err() {
            // Cannot happen when fed: silence rather than a short chunk.
            out.fill(0.0);
        }
        self.pass_cuts();
        out.iter().any(|&x| x != 0.0)
    }

    /// Keeps the last frames produced while bypassed, as the filter's history.
    pub(crate) fn remember(&mut self, produced: &[f32]) {
        if self.mode == DriftMode::Adaptive {
            self.splicer.observe(produced);
        }
        self.history.extend(produced.iter().copied());
        let cap = self.history_frames * self.channels;
        if self.history.len() > cap {
            let extra = self.history.len() - cap;
            self.history.drain(..extra);
        }
    }

    /// The skew the stats report: the line's estimate; where that is not trusted (see
    /// [`Compensator::trust_skew_above`]) and the resampler is in the path, the rate difference
    /// the loop has learned (its integral), which is the sender's once the delay holds.
    fn reported_skew_ppm(&self) -> Option<f64> {
        let line = self.lp.skew().skew_ppm();
        if self.min_hint_ppm > 0.0 && self.lp.trusted_skew_ppm().is_none() && self.rs.is_some() {
            return Some(self.lp.controller().integral_ppm());
        }
        line
    }

    /// The skew estimate where it may steer (always, unless
    /// [`Compensator::trust_skew_above`] says otherwise).
    pub(crate) fn trusted_skew_ppm(&self) -> Option<f64> {
        self.lp.trusted_skew_ppm()
    }

    /// The loop's estimate and decision at the last chunk; `latency_ns` stands in before it.
    pub(crate) fn stats(&self, latency_ns: i64) -> DriftStats {
        let (measured, target) = match self.last {
            Some(t) => (t.measured_delay_ns, t.target_delay_ns),
            None => (latency_ns as f64, latency_ns as f64),
        };
        DriftStats {
            skew_ppm: self.reported_skew_ppm(),
            ratio: self
                .last
                .map_or(1.0, |t| if self.rs.is_some() { t.ratio } else { 1.0 }),
            measured_delay_ns: measured,
            target_delay_ns: target,
            resampling: self.rs.is_some(),
            inserted_frames: self.inserted.round() as u64,
            removed_frames: self.removed.round() as u64,
            compressed_frames: self.compressed,
        }
    }
}

/// Which input frame the resampler's output frame 0 is at ratio 1 (its priming leaves it a
/// frame or so off), measured on a ramp: within the filter's reach of the edges a windowed
/// sinc reproduces a straight line.
fn resampler_lag(interpolation: Interpolation) -> i64 {
    let mut rs = DriftResampler::new(1, 256, interpolation);
    let ramp: Vec<f32> = (0..1024).map(|n| n as f32).collect();
    rs.push(&ramp);
    let mut out = vec![0.0f32; 256];
    if rs.pull(&mut out).is_err() {
        return 0;
    }
    (f64::from(out[200]) - 200.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampler_lag_is_a_whole_frame_or_two() {
        // The take-over relies on it: a fractional lag would be a seam.
        for len in [64, 128] {
            let mut rs = DriftResampler::new(1, 256, Interpolation::Sinc { len });
            let ramp: Vec<f32> = (0..1024).map(|n| n as f32).collect();
            rs.push(&ramp);
            let mut out = vec![0.0f32; 256];
            rs.pull(&mut out).unwrap();
            let lag = f64::from(out[200]) - 200.0;
            assert!((lag - lag.round()).abs() < 0.01, "sinc {len}: {lag}");
            assert!(lag.abs() <= 2.0, "sinc {len}: {lag}");
            assert_eq!(
                resampler_lag(Interpolation::Sinc { len }),
                lag.round() as i64
            );
        }
    }
}

// SPDX-License-Identifier: MPL-2.0
//! The clocked playout of one raw audio stream: datagrams in (with their arrival time), exactly
//! 10 ms chunks out (when the caller's clock reaches [`Playout::next_deadline`]).
//!
//! No GStreamer types and no clock: the caller passes arrival times in and asks when the next
//! chunk is due; the chunk's timestamp comes from a frame counter, so it never drifts.
//!
//! Timing: the first datagram's arrival time is the origin. Output frame `f` has the timestamp
//! `origin + f / rate` and is due at `origin + upstream latency + latency + f / rate`.
//! Datagrams are placed on the timeline by [`Timeline`](super::timeline::Timeline); what is
//! missing when its chunk is due is concealed by [`Concealer`].
//!
//! Memory: see [`Playout::max_queue_ns`] and the 2 s backlog bound, and the [`Limits`] on
//! datagrams and bytes held (the oldest go first; the hole they leave is skipped while the
//! delay is above the latency). Every pushed datagram is in one bucket of the [`Ledger`].

use std::collections::VecDeque;

use super::compensate::{Compensator, DriftMode, DriftStats};
use super::ledger::{Bucket, Ledger, Limits};
use super::splice::SpliceDetector;
use super::time::{NS_PER_MS, NS_PER_SEC, chunk_start, frames_to_ns, ns_to_frames};
use super::timeline::{Placement, Timeline};
use crate::conceal::{Concealer, PlcMethod};

/// Extra room, beyond `latency`, before the queue counts as overflowing (at least this much, or
/// `latency` again if that is larger).
const MIN_OVERFLOW_ROOM_NS: i64 = 100 * NS_PER_MS;
/// Audio held beyond the delay bound while the output is behind its clock (a blocked
/// downstream), before the oldest is dropped.
const MAX_BACKLOG_NS: i64 = 2 * NS_PER_SEC;
/// Samples are held as `f32`.
const SAMPLE_BYTES: usize = std::mem::size_of::<f32>();
/// Below this skew (ppm) the estimate from the arrivals against the placed positions is used
/// for the stats only, not to steer the drift loop nor to judge arrivals: a loss hidden by
/// jitter moves every later position by a datagram, which tilts that line by hundreds of ppm
/// (measured: -2296 ppm for a -1000 ppm sender on a loaded loopback), while the drift across
/// the placement's 2 s window (2 ms at 1000 ppm) stays within its tolerance and the loop
/// learns such a skew from the delay error within seconds.
const TRUST_SKEW_PPM: f64 = 3000.0;

/// What became of a pushed datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued at `pos`, after `missing` frames inferred lost.
    Queued { pos: i64, missing: i64 },
    /// Its slot was already played: dropped.
    Late,
    /// The stream was re-anchored and the datagram queued at `pos`.
    Resynced { pos: i64 },
    /// Nothing to queue (no whole frame).
    Empty,
    /// The datagram alone is larger than [`Limits::max_bytes`]: dropped.
    Overflow,
}

/// One 10 ms output chunk, written into the caller's buffer by [`Playout::pop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Timestamp of the first frame (running time, ns).
    pub pts: u64,
    /// Duration (ns), so that `pts + duration` is the next chunk's `pts`.
    pub duration: u64,
    /// Index of the first frame since the stream started.
    pub offset: u64,
    pub frames: usize,
    /// Frames that came from received audio.
    pub real_frames: usize,
    /// First chunk of a stream (after start, flush or reset).
    pub discont: bool,
    /// Nothing received and only silence produced.
    pub silent: bool,
}

impl Chunk {
    /// Chunk number `index` of a stream at `rate` whose frame 0 plays at `origin` (running time,
    /// ns), of which `real` frames came from received audio and, if `audible`, the rest was not
    /// all silence.
    pub(crate) fn at(origin: i64, index: i64, rate: u32, real: i64, audible: bool) -> Self {
        let head = chunk_start(index, rate);
        let frames = chunk_start(index + 1, rate) - head;
        let pts = origin + frames_to_ns(head, rate);
        let next_pts = origin + frames_to_ns(head + frames, rate);
        Self {
            pts: pts.max(0) as u64,
            duration: (next_pts - pts).max(0) as u64,
            offset: head.max(0) as u64,
            frames: frames as usize,
            real_frames: real as usize,
            discont: index == 0,
            silent: real == 0 && !audible,
        }
    }
}

/// Counters of one stream; they only grow until [`Playout::reset`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams accepted (whole frames).
    pub received: u64,
    /// Chunks produced.
    pub pushed: u64,
    /// Datagrams inferred lost (gaps in units of the size of the datagram after them).
    pub lost: u64,
    /// Datagrams dropped because their slot had already been played.
    pub late: u64,
    /// Datagrams dropped whole, or frames skipped, because too much audio was queued.
    pub overflow_dropped: u64,
    pub overflow_skipped_frames: u64,
    /// Times the stream was re-anchored after late data.
    pub resyncs: u64,
    /// Gaps moved back between queued datagrams when a later arrival showed where they were.
    pub gaps_moved: u64,
    /// Gaps taken back because the datagrams after them turned out late rather than lost.
    pub gaps_taken_back: u64,
    /// Frames of gaps not concealed but cut out, to bring an excess delay back to the latency.
    pub delay_trimmed_frames: u64,
    /// Frames of concealment added to gaps, to bring a shrunken delay back to the latency.
    pub delay_added_frames: u64,
    /// Boundaries between datagrams where the waveform jumped (a loss hidden by jitter) and the
    /// next datagram was cross-faded in.
    pub splices_smoothed: u64,
    /// Output frames synthesized by concealment (not silence).
    pub concealed_frames: u64,
    /// Output frames of silence: before the first datagram plays, and once concealment faded
    /// out.
    pub silent_frames: u64,
    /// Output frames that came from received audio.
    pub played_frames: u64,
    /// How long the most recent datagram waits from arrival to playout (ns), if any.
    pub last_wait_ns: Option<i64>,
}

#[derive(Debug)]
struct Packet {
    /// Placement id (see `Timeline::shift_ids`).
    id: u64,
    pos: i64,
    /// Arrival time (ns).
    arrival: i64,
    /// Placed right after the previous datagram (no gap before it): a candidate for a gap that
    /// a later arrival reveals.
    contiguous: bool,
    /// Contiguous, but its arrival would also fit after a lost datagram: check the waveform when
    /// it starts playing.
    uncertain: bool,
    frames: i64,
    data: Vec<f32>,
    /// Part of its audio has been output.
    started: bool,
}

impl Packet {
    fn end(&self) -> i64 {
        self.pos + self.frames
    }

    /// Drops the frames before `pos`.
    fn trim_to(&mut self, pos: i64, channels: usize) {
        let cut = (pos - self.pos).clamp(0, self.frames);
        self.data.drain(..cut as usize * channels);
        self.pos += cut;
        self.frames -= cut;
    }
}

/// The most recent inferred gap, still revisable: the datagrams placed after it (the run) can
/// move back into it while none of them has been played.
#[derive(Debug, Clone, Copy)]
struct OpenGap {
    /// End of the audio before the gap.
    before: i64,
    /// Current position of the run's first datagram (even if it was dropped since).
    start: i64,
    /// Placement id of the run's first datagram; the run is every later placement.
    first_id: u64,
    /// Size of the run's first datagram, the unit of the `lost` count.
    unit: i64,
    /// Frames of the gap still counted as lost.
    counted: i64,
    /// Part of the run has been played: the gap is final.
    played: bool,
}

/// Playout state of one stream.
#[derive(Debug)]
pub struct Playout {
    rate: u32,
    channels: usize,
    latency_ns: i64,
    upstream_ns: i64,
    timeline: Timeline,
    queue: VecDeque<Packet>,
    /// Index of the next 10 ms chunk to produce.
    chunk: i64,
    concealer: Concealer,
    stats: Stats,
    open_gap: Option<OpenGap>,
    splice: SpliceDetector,
    /// The last output came from received audio (not concealment).
    last_real: bool,
    limits: Limits,
    /// Where every pushed datagram is (`queued` is filled in by [`Playout::ledger`]).
    ledger: Ledger,
    /// Bytes of samples in `queue`.
    bytes: usize,
    /// Media position (on the datagrams' timeline) of the next frame to play or conceal: the
    /// play head that lateness is judged against. Without drift compensation it is the output
    /// frame counter; with it, it runs ahead of the resampler's read position by what the
    /// resampler has queued.
    media_head: i64,
    /// Received audio has been played since the stream (re)started.
    playing: bool,
    drift: Compensator,
    /// Scratch for what is fed to the resampler.
    feed: Vec<f32>,
    /// Scratch for the queued audio after a hole (two-sided concealment).
    future: Vec<f32>,
}

impl Playout {
    /// `rate` in Hz, `channels` >= 1, `latency_ns` the jitter buffer's own delay.
    pub fn new(rate: u32, channels: usize, latency_ns: u64) -> Self {
        assert!(rate > 0 && channels > 0);
        Self {
            rate,
            channels,
            latency_ns: clamp_ns(latency_ns),
            upstream_ns: 0,
            timeline: Timeline::new(rate),
            queue: VecDeque::new(),
            chunk: 0,
            concealer: Concealer::new(rate, channels),
            stats: Stats::default(),
            open_gap: None,
            splice: SpliceDetector::new(rate, channels),
            last_real: false,
            limits: Limits::default(),
            ledger: Ledger::default(),
            bytes: 0,
            media_head: 0,
            playing: false,
            drift: {
                let mut c = Compensator::new(rate, channels, clamp_ns(latency_ns));
                c.engage_on_delay_only();
                c.trust_skew_above(TRUST_SKEW_PPM);
                c
            },
            feed: Vec::new(),
            future: Vec::new(),
        }
    }

    /// Sets the drift compensation; applies from the next chunk (an engaged resampler stays
    /// in the path until [`Playout::reset`]).
    ///
    /// `Adaptive` holds the latency as `Fixed` does: the adaptive target is a quantile of how
    /// late packets come against their timestamps, and raw datagrams have none. Their
    /// positions are the placement's inference, which answers a jitter jump by taking the late
    /// datagrams for losses and playing them later, so the delays measured against those
    /// positions stay small and the target would not follow (measured: 19 ms a second after
    /// a jump to 60 ms of jitter, while the placement alone had raised the delay to 50 ms).
    pub fn set_drift_mode(&mut self, mode: DriftMode) {
        self.drift.set_mode(match mode {
            DriftMode::Adaptive => DriftMode::Fixed,
            m => m,
        });
    }

    /// Adaptive mode's range of the target delay (ns); applies to the next stream (or resync).
    pub fn set_latency_range(&mut self, min_ns: u64, max_ns: u64) {
        self.drift.set_range(min_ns, max_ns);
    }

    /// The drift loop's estimate and decision at the last chunk.
    pub fn drift_stats(&self) -> DriftStats {
        self.drift.stats(self.latency_ns)
    }

    /// Media position of the next output frame (fractional while resampling).
    fn media_read_pos(&self) -> f64 {
        self.drift.read_pos(self.media_head)
    }

    /// Media position minus output frame counter: how far the drift compensation has moved
    /// the media timeline against the output (0 without it).
    fn media_offset(&self) -> i64 {
        self.media_read_pos().floor() as i64 - self.out_head()
    }

    /// How long (ns) a datagram at `pos` that arrived at `arrival` waits until it plays.
    fn wait_ns(&self, origin: i64, pos: i64, arrival: i64) -> i64 {
        origin + self.latency_ns + frames_to_ns(pos - self.media_offset(), self.rate) - arrival
    }

    /// How long (ns) the fastest of the recent datagrams waits from its arrival until its
    /// first frame plays: the delay both the drift loop and the gap adjustment hold.
    fn fastest_wait_ns(&mut self, now: i64) -> Option<i64> {
        let origin = self.timeline.origin()?;
        let earliest = self.timeline.earliest_start(now)?;
        Some(origin + self.latency_ns - frames_to_ns(self.media_offset(), self.rate) - earliest)
    }

    /// Where every datagram pushed so far is (see [`Ledger`]); kept across [`Playout::reset`].
    pub fn ledger(&self) -> Ledger {
        Ledger {
            queued: self.queue.len() as u64,
            ..self.ledger
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Sets the memory caps; shrinking drops the oldest queued datagrams at once.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits.sane();
        self.enforce_limits();
    }

    /// Datagrams queued.
    pub fn queued_packets(&self) -> usize {
        self.queue.len()
    }

    /// Bytes of samples queued (32-bit floats).
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    /// Takes the front datagram out of the queue, counting it as played if part of it was, else
    /// in `bucket`.
    fn remove_front(&mut self, bucket: Bucket) -> Option<Packet> {
        let p = self.queue.pop_front()?;
        self.bytes -= p.data.len() * SAMPLE_BYTES;
        self.ledger
            .count(if p.started { Bucket::Played } else { bucket });
        Some(p)
    }

    /// Empties the queue, counting its datagrams in `bucket` (or played).
    fn clear_queue(&mut self, bucket: Bucket) {
        while self.remove_front(bucket).is_some() {}
    }

    /// The memory caps ([`Limits`]): while they are exceeded, the oldest datagrams go. The hole
    /// they leave ahead of the play head is then skipped, as far as the newest datagram waits
    /// longer than the latency: a live stream keeps its newest audio and the delay comes down
    /// (after a burst, say), instead of the hole being concealed with the delay left high.
    fn enforce_limits(&mut self) {
        let mut evicted = false;
        while self.limits.exceeded(self.queue.len(), self.bytes) {
            let Some(p) = self.remove_front(Bucket::Overflow) else {
                break;
            };
            if let Some(g) = self.open_gap.as_mut()
                && p.id >= g.first_id
            {
                g.played = true; // part of the run is gone: its gap is final
            }
            self.stats.overflow_dropped += 1;
            evicted = true;
        }
        if evicted {
            self.skip_hole();
        }
    }

    /// Skips the hole between the play head and the first queued datagram, by at most what the
    /// newest datagram waits beyond the latency.
    fn skip_hole(&mut self) {
        let head = self.play_head();
        let (Some(front), Some(back), Some(origin)) = (
            self.queue.front(),
            self.queue.back(),
            self.timeline.origin(),
        ) else {
            return;
        };
        let hole = front.pos - head;
        let wait = self.wait_ns(origin, back.pos, back.arrival);
        let skip = hole.min(ns_to_frames(wait - self.latency_ns, self.rate));
        if skip <= 0 {
            return;
        }
        self.timeline.shift(-skip);
        self.drift.renumbered(-skip);
        for p in &mut self.queue {
            p.pos -= skip;
        }
        self.open_gap = None;
        self.stats.overflow_skipped_frames += skip as u64;
        self.concealer.discontinuity();
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Forgets the stream: the next datagram starts a new one. What was queued is counted as
    /// `flushed` in the ledger.
    pub fn reset(&mut self) {
        self.timeline.reset();
        self.clear_queue(Bucket::Flushed);
        self.chunk = 0;
        self.concealer.reset();
        self.stats = Stats::default();
        self.open_gap = None;
        self.splice.reset();
        self.last_real = false;
        self.media_head = 0;
        self.playing = false;
        self.drift.reset(self.latency_ns);
    }

    /// Chooses how missing audio is concealed. A change forgets the concealer's history (the
    /// next loss conceals from what is output after it).
    pub fn set_plc_method(&mut self, method: PlcMethod) {
        self.concealer.set_method(method);
    }

    /// Changes the jitter buffer's own delay; takes effect from the next chunk.
    pub fn set_latency(&mut self, latency_ns: u64) {
        self.latency_ns = clamp_ns(latency_ns);
        self.drift.set_latency(self.latency_ns);
    }

    /// Latency reported upstream of the jitter buffer; added to every deadline.
    pub fn set_upstream_latency(&mut self, upstream_ns: u64) {
        self.upstream_ns = clamp_ns(upstream_ns);
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Starts the output at running time `now_ns` without waiting for a datagram: silence is
    /// produced until the first one, which then waits the full delay after its arrival.
    pub fn start(&mut self, now_ns: u64) {
        self.timeline.start_at(clamp_ns(now_ns));
    }

    /// True once the output started (at the first datagram, or by [`Playout::start`]).
    pub fn started(&self) -> bool {
        self.timeline.origin().is_some()
    }

    /// Nothing is queued ahead of the play head.
    pub fn is_drained(&self) -> bool {
        self.queue.is_empty()
    }

    /// Audio queued ahead of the play head, including gaps between datagrams (frames).
    pub fn queued_frames(&self) -> i64 {
        self.queue
            .back()
            .map_or(0, |p| (p.end() - self.play_head()).max(0))
    }

    /// Most audio held ahead of the play head before the oldest is skipped (ns):
    /// `latency + max(latency, 100 ms)`.
    pub fn max_queue_ns(&self) -> u64 {
        max_queue_ns(self.latency_ns as u64)
    }

    /// Running time (ns) at which the next chunk is due, once the stream started.
    pub fn next_deadline(&self) -> Option<u64> {
        let origin = self.timeline.origin()?;
        let t =
            origin + self.upstream_ns + self.latency_ns + frames_to_ns(self.out_head(), self.rate);
        Some(t.max(0) as u64)
    }

    /// The next media frame to play or conceal (see `media_head`).
    fn play_head(&self) -> i64 {
        self.media_head
    }

    /// The first output frame of the next chunk.
    fn out_head(&self) -> i64 {
        chunk_start(self.chunk, self.rate)
    }

    /// Queues a datagram of interleaved samples that arrived at running time `arrival_ns`.
    pub fn push(&mut self, arrival_ns: u64, samples: &[f32]) -> PushOutcome {
        self.ledger.received += 1;
        let frames = (samples.len() / self.channels) as i64;
        if frames == 0 {
            self.ledger.invalid += 1;
            return PushOutcome::Empty;
        }
        let samples = &samples[..frames as usize * self.channels];
        let arrival = clamp_ns(arrival_ns);
        self.stats.received += 1;
        if samples.len() * SAMPLE_BYTES > self.limits.max_bytes {
            // Taking it would evict everything else and still not fit.
            self.stats.overflow_dropped += 1;
            self.ledger.overflow += 1;
            return PushOutcome::Overflow;
        }

        let head = self.play_head();
        // Judge earliness against the datagrams before the open gap: the ones after it may sit
        // a gap too late, which would make the next one look on time.
        let open_run = self.open_gap.filter(|g| !g.played).map(|g| g.first_id);
        let early = self.timeline.earliness(arrival, frames, open_run);
        if early > 0 {
            self.take_back_gap(early, head);
        }
        let id = self.timeline.next_id();
        self.timeline.set_media_offset(self.media_offset());
        if self.drift.mode() != DriftMode::Off {
            // Judge arrivals at the sender's own rate when it is far off (without compensation:
            // as before it).
            let skew = self.drift.trusted_skew_ppm().unwrap_or(0.0);
            self.timeline.set_sender_skew_ppm(skew);
        }
        let (pos, missing, trim, outcome) = match self.timeline.place(arrival, frames, head) {
            Placement::Late => {
                self.stats.late += 1;
                self.ledger.late += 1;
                return PushOutcome::Late;
            }
            Placement::Resync { pos } => {
                self.stats.resyncs += 1;
                self.clear_queue(Bucket::Resync);
                self.concealer.discontinuity();
                // A new timeline: the drift loop's arrival line starts over.
                self.drift.restart(self.latency_ns);
                (pos, 0, 0, PushOutcome::Resynced { pos })
            }
            Placement::Place { pos, missing, trim } => {
                self.stats.lost += (missing / frames) as u64;
                (pos, missing, trim, PushOutcome::Queued { pos, missing })
            }
        };
        let resynced = matches!(outcome, PushOutcome::Resynced { .. });
        let contiguous = missing == 0 && trim == 0 && !resynced;
        self.bytes += (frames - trim) as usize * self.channels * SAMPLE_BYTES;
        self.queue.push_back(Packet {
            id,
            pos: pos + trim,
            arrival,
            contiguous,
            uncertain: contiguous && self.timeline.could_follow_a_gap(arrival, pos, frames),
            frames: frames - trim,
            data: samples[trim as usize * self.channels..].to_vec(),
            started: false,
        });
        if resynced {
            self.open_gap = None;
        } else if missing > 0 && trim == 0 {
            self.open_gap = Some(OpenGap {
                before: pos - missing,
                start: pos,
                first_id: id,
                unit: frames,
                counted: missing,
                played: false,
            });
            self.move_gap_back(missing, head);
            self.adjust_gap(arrival, frames);
        }
        if let Some(p) = self.queue.back() {
            let origin = self.timeline.origin().unwrap_or(arrival);
            self.stats.last_wait_ns = Some(self.wait_ns(origin, p.pos, arrival));
        }
        self.drift.on_packet(arrival, pos);
        self.bound_queue(arrival, frames);
        outcome
    }

    /// Delay control: a gap is going to be concealed anyway, so it is where the delay can
    /// change without touching received audio. If even the fastest recent datagrams wait longer
    /// than the latency (the first datagram was slow, or a guessed gap was played), the gap gets
    /// shorter by that excess; if they wait less (a hidden loss put the stream a datagram early,
    /// or the network's delay grew), it gets longer by the shortfall. Either way the delay comes
    /// back to `latency`.
    fn adjust_gap(&mut self, arrival: i64, frames: i64) {
        if self.open_gap.is_none() {
            return;
        }
        // How much later (ns) than its slot the fastest recent datagram arrives, against the
        // delay held: negative, it waits too long.
        let lo = if self.drift.mode() == DriftMode::Off {
            self.timeline.min_residual(arrival)
        } else {
            // The same delay the drift loop measures, so the two never pull apart.
            let held = self.latency_ns as f64 + self.drift.excess_ns();
            self.fastest_wait_ns(arrival)
                .map(|w| held.round() as i64 - w)
        };
        let Some(lo) = lo else {
            return;
        };
        let Some(gap) = self.open_gap.as_mut() else {
            return;
        };
        let dur = frames_to_ns(frames, self.rate).max(1);
        let margin = (dur / 4).max(NS_PER_MS);
        let change = if lo < -margin {
            -((-lo - margin) / dur * frames).min(gap.start - gap.before)
        } else if lo > margin {
            (lo - margin) / dur * frames
        } else {
            0
        };
        if change == 0 {
            return;
        }
        gap.start += change;
        let first_id = gap.first_id;
        for p in self.queue.iter_mut().filter(|p| p.id >= first_id) {
            p.pos += change;
        }
        self.timeline.advance(-change);
        if change < 0 {
            self.stats.delay_trimmed_frames += change.unsigned_abs();
        } else {
            self.stats.delay_added_frames += change as u64;
        }
    }

    /// The datagram being queued arrived `early` frames too early to follow the end of the
    /// queue. If the last inferred gap is still open (nothing after it played yet), the
    /// datagrams after it were not preceded by lost ones but were late (a stall, then a burst):
    /// move them back by up to the gap's size. What then lies behind the play head is dropped as
    /// late.
    fn take_back_gap(&mut self, early: i64, head: i64) {
        let Some(gap) = self.open_gap.as_mut().filter(|g| !g.played) else {
            return;
        };
        // The datagrams were not after lost ones: uncount them, even if delay control already
        // cut that part of the gap.
        let uncount = early.min(gap.counted);
        gap.counted -= uncount;
        let unit = gap.unit.max(1);
        self.stats.lost = self
            .stats
            .lost
            .saturating_sub(((uncount + unit / 2) / unit) as u64);
        let back = early.min(gap.start - gap.before);
        if back <= 0 {
            return;
        }
        gap.start -= back;
        let first_id = gap.first_id;
        for p in self.queue.iter_mut().filter(|p| p.id >= first_id) {
            p.pos -= back;
        }
        self.timeline.shift_ids(first_id..u64::MAX, -back);
        self.timeline.rewind(back);
        self.stats.gaps_taken_back += 1;
        self.stats.late += self.drop_before(head, Bucket::Late);
    }

    /// A gap of `missing` frames was inferred just before the datagram just queued. If an
    /// earlier boundary between queued, not yet played datagrams shows a larger arrival excess,
    /// the loss more likely happened there: move the gap (and the open gap) back to it. Returns
    /// whether it moved.
    fn move_gap_back(&mut self, missing: i64, head: i64) -> bool {
        let Some(new) = self.queue.back() else {
            return false;
        };
        // Candidates: the boundaries before queued, unplayed datagrams that were placed right
        // after their predecessor, going back from the end of the run.
        let last = self.queue.len() - 1;
        let mut first = last;
        let mut end = new.pos - missing;
        for (i, p) in self.queue.iter().enumerate().rev().skip(1) {
            if p.end() != end || p.pos < head || !p.contiguous {
                break;
            }
            first = i;
            end = p.pos;
        }
        if first == last {
            return false;
        }
        // Moving the gap before datagram `t` delays `t..last` by the gap: their residuals drop by
        // its duration. Pick the boundary under which the run's delays are most usual.
        let model = self.timeline.residual_model(new.arrival);
        let shift_ns = frames_to_ns(missing, self.rate);
        let ll: Vec<(f64, f64)> = self
            .queue
            .range(first..last)
            .map(|p| {
                let r = self.timeline.residual(p.arrival, p.pos);
                (model.log_density(r), model.log_density(r - shift_ns))
            })
            .collect();
        let mut best = (f64::NEG_INFINITY, last);
        for t in first..=last {
            let score: f64 = ll
                .iter()
                .enumerate()
                .map(|(j, (stay, moved))| if first + j < t { *stay } else { *moved })
                .sum();
            // On a tie keep the later boundary: fewer datagrams move.
            if score >= best.0 {
                best = (score, t);
            }
        }
        let t = best.1;
        if t == last {
            return false;
        }
        self.queue[last].contiguous = true;
        let p = &mut self.queue[t];
        p.contiguous = false;
        self.open_gap = Some(OpenGap {
            before: p.pos,
            start: p.pos + missing,
            first_id: p.id,
            unit: p.frames,
            counted: missing,
            played: false,
        });
        let new_id = self.queue[last].id;
        self.timeline.shift_ids(self.queue[t].id..new_id, missing);
        for p in self.queue.range_mut(t..last) {
            p.pos += missing;
        }
        self.stats.gaps_moved += 1;
        true
    }

    /// Bounds the delay and the memory.
    ///
    /// * Delay: if the newest datagram would wait longer than `latency + max(latency, 100 ms)`
    ///   before it plays (the sender runs fast, or a burst came in), the oldest audio is skipped so
    ///   that it waits `latency` again. This is judged on the datagram's own wait, not on how far
    ///   the play head is behind, so a downstream element that blocks the output for a while does
    ///   not make received audio count as excess.
    /// * Memory: whatever happens downstream, at most [`MAX_BACKLOG_NS`] beyond that is held; the
    ///   oldest datagrams go first.
    fn bound_queue(&mut self, arrival: i64, last_frames: i64) {
        let head = self.play_head();
        let Some(end) = self.queue.back().map(Packet::end) else {
            return;
        };
        let origin = self.timeline.origin().unwrap_or(arrival);
        let wait_end = self.wait_ns(origin, end, arrival);
        let dur = frames_to_ns(last_frames, self.rate);
        let chunk_ns = 10 * NS_PER_MS;
        if wait_end > self.max_queue_ns() as i64 + dur + chunk_ns {
            let skip = ns_to_frames(wait_end - self.latency_ns - dur, self.rate);
            self.timeline.shift(-skip);
            self.drift.renumbered(-skip);
            for p in &mut self.queue {
                p.pos -= skip;
            }
            // Skipping is final: nothing may move back into what was skipped.
            self.open_gap = None;
            self.stats.overflow_dropped += self.drop_before(head, Bucket::Overflow);
            self.stats.overflow_skipped_frames += skip as u64;
            self.concealer.discontinuity();
        }
        let cap = ns_to_frames(self.max_queue_ns() as i64 + MAX_BACKLOG_NS, self.rate);
        while self.queue.len() > 1
            && self.queue.back().map_or(0, Packet::end) - self.queue.front().map_or(0, |p| p.pos)
                > cap
        {
            let id = self.remove_front(Bucket::Overflow).map(|p| p.id);
            if let (Some(id), Some(g)) = (id, self.open_gap.as_mut())
                && id >= g.first_id
            {
                g.played = true; // part of the run is gone: its gap is final
            }
            self.stats.overflow_dropped += 1;
        }
        self.enforce_limits();
    }

    /// Drops queued audio before `head`; returns how many whole datagrams went (counted in
    /// `bucket`). When late, their delays are forgotten too: late data says nothing about the
    /// datagrams that play.
    fn drop_before(&mut self, head: i64, bucket: Bucket) -> u64 {
        let mut dropped = 0;
        while let Some(front) = self.queue.front_mut() {
            if front.end() <= head {
                let id = front.id;
                self.remove_front(bucket);
                if bucket == Bucket::Late {
                    self.timeline.forget(id);
                }
                dropped += 1;
            } else {
                if front.pos < head {
                    let before = front.data.len();
                    front.trim_to(head, self.channels);
                    self.bytes -= (before - front.data.len()) * SAMPLE_BYTES;
                }
                break;
            }
        }
        dropped
    }

    /// Produces the next 10 ms chunk into `out` (resized to the chunk), concealing what is
    /// missing. Call it when the clock reaches [`Playout::next_deadline`].
    ///
    /// The drift loop compares the delay the fastest recent datagrams get with the one held
    /// (see [`DriftMode`]); until it corrects, the media is copied through unchanged
    /// (bit-exact), afterwards it is resampled at the ratio it decides, so a chunk consumes
    /// about `frames / ratio` media frames.
    pub fn pop(&mut self, out: &mut Vec<f32>) -> Chunk {
        let out_head = self.out_head();
        let frames = chunk_start(self.chunk + 1, self.rate) - out_head;
        out.clear();

        let origin = self.timeline.origin().unwrap_or(0);
        // Same time base as the arrivals: the deadline less the upstream latency.
        let now = origin + self.latency_ns + frames_to_ns(out_head, self.rate);
        let measured = self.fastest_wait_ns(now).map(|w| w as f64);
        self.drift.set_playing(self.playing);
        let d = self
            .drift
            .tick_measured(now, self.media_read_pos(), frames, measured);
        if self.drift.wants_resampler(&d, self.playing) {
            let discard = self.drift.engage(self.media_head);
            self.feed_resampler(discard);
            self.drift.discard(discard);
        }
        let (real, audible) = if self.drift.resampling() {
            self.drift.set_ratio(d.ratio);
            let (real, audible) = self.feed_resampler(frames as usize);
            let audible = self.drift.pull(frames as usize, out) || audible;
            // `real` counts media frames fed; the chunk reports output frames (ratio = out /
            // in), at most the chunk's own.
            let real_out = ((real as f64 * d.ratio).round() as i64).clamp(0, frames);
            (real_out, audible)
        } else {
            let r = self.produce(frames, out);
            self.drift.remember(out);
            r
        };

        let chunk = Chunk::at(origin, self.chunk, self.rate, real, audible);
        self.chunk += 1;
        self.stats.pushed += 1;
        self.stats.played_frames += real as u64;
        chunk
    }

    /// Produces (or conceals) media into the resampler until it can produce `frames`.
    /// Returns the real frames fed and whether anything audible was.
    fn feed_resampler(&mut self, frames: usize) -> (i64, bool) {
        let (mut real, mut audible) = (0, false);
        let mut feed = std::mem::take(&mut self.feed);
        loop {
            let need = self.drift.input_needed(frames);
            if need == 0 {
                break;
            }
            feed.clear();
            let (r, a) = self.produce(need as i64, &mut feed);
            real += r;
            audible |= a;
            self.drift.push(&feed);
        }
        self.feed = feed;
        (real, audible)
    }

    /// Tells the concealer that the queued audio from media position `from` on (the datagram
    /// there and the ones contiguous with it, up to 70 ms) follows the hole `frames_until`
    /// frames from now. Should the placement move the hole before it is filled (a later
    /// arrival shows where a loss was), the next call tells the new end and the concealer
    /// plans again.
    fn tell_future(&mut self, from: i64, frames_until: usize) {
        let want = (i64::from(self.rate) * 70 / 1000) as usize * self.channels;
        let mut future = std::mem::take(&mut self.future);
        future.clear();
        let mut end = from;
        for p in self.queue.iter().skip_while(|p| p.pos < from) {
            if future.len() >= want || p.pos != end {
                break;
            }
            future.extend_from_slice(&p.data);
            end = p.end();
        }
        future.truncate(want);
        if !future.is_empty() {
            self.concealer.set_future(frames_until, &future);
        }
        self.future = future;
    }

    /// Appends the next `frames` media frames (from the media head) to `out`: queued audio,
    /// concealment where it is missing. Returns the real frames and whether the rest was
    /// audible.
    fn produce(&mut self, frames: i64, out: &mut Vec<f32>) -> (i64, bool) {
        let ch = self.channels;
        let head = self.media_head;
        let start = out.len();
        out.resize(start + frames as usize * ch, 0.0);
        let out = &mut out[start..];

        let mut i = 0;
        let mut real = 0;
        let mut audible = false;
        while i < frames {
            let pos = head + i;
            match self.queue.front() {
                Some(p) if p.end() <= pos => {
                    // Fully behind the play head (cannot normally happen): discard.
                    self.remove_front(Bucket::Late);
                }
                Some(p) if p.pos <= pos => {
                    if let Some(g) = self.open_gap.as_mut().filter(|g| p.id >= g.first_id) {
                        g.played = true;
                    }
                    let off = pos - p.pos;
                    let take = (p.frames - off).min(frames - i);
                    let src = &p.data[off as usize * ch..(off + take) as usize * ch];
                    if off == 0 && p.uncertain && self.last_real && self.splice.is_jump(src) {
                        // Probably a loss that jitter hid: merge as after a concealed one.
                        self.concealer.discontinuity();
                        self.stats.splices_smoothed += 1;
                    }
                    let dst = &mut out[i as usize * ch..(i + take) as usize * ch];
                    dst.copy_from_slice(src);
                    self.concealer.real(dst);
                    self.splice.record(dst);
                    self.last_real = true;
                    self.playing = true;
                    let done = off + take == p.frames;
                    if let Some(p) = self.queue.front_mut() {
                        p.started = true;
                    }
                    if done {
                        self.remove_front(Bucket::Played);
                    }
                    i += take;
                    real += take;
                }
                next => {
                    let next_pos = next.map(|p| p.pos);
                    let until = next_pos.map_or(frames, |n| (n - head).min(frames));
                    if let Some(n) = next_pos
                        && self.playing
                    {
                        // The audio after the hole is queued: the concealer blends into it
                        // (two-sided concealment) instead of only extrapolating.
                        self.tell_future(n, (n - pos) as usize);
                    }
                    let dst = &mut out[i as usize * ch..until as usize * ch];
                    self.concealer.conceal(dst);
                    if dst.iter().all(|&x| x == 0.0) {
                        self.stats.silent_frames += (until - i) as u64;
                    } else {
                        audible = true;
                        self.stats.concealed_frames += (until - i) as u64;
                    }
                    self.splice.record(dst);
                    self.last_real = false;
                    i = until;
                }
            }
        }

        self.media_head += frames;
        (real, audible)
    }
}

/// [`Playout::max_queue_ns`] for a latency of `latency_ns`.
pub fn max_queue_ns(latency_ns: u64) -> u64 {
    latency_ns.saturating_add(latency_ns.max(MIN_OVERFLOW_ROOM_NS as u64))
}

fn clamp_ns(ns: u64) -> i64 {
    ns.min(i64::MAX as u64 / 4) as i64
}

#[cfg(test)]
mod drift_tests;
#[cfg(test)]
mod limits_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[track_caller]
    fn assert_same(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
            panic!("first difference at sample {i}: {} vs {}", got[i], want[i]);
        }
    }

    fn tone(start: usize, frames: usize) -> Vec<f32> {
        (start..start + frames)
            .map(|n| 0.5 * (n as f32 * 2.0 * std::f32::consts::PI * 440.0 / 8000.0).sin())
            .collect()
    }

    /// Runs a stream of 10 ms datagrams of a tone at 8 kHz through the playout, popping at each
    /// deadline; `arrivals[i]` is the arrival of datagram `i` (or None when lost). Drift
    /// compensation is off: these tests compare the output with the tone sample by sample.
    fn run(latency: u64, arrivals: &[Option<u64>]) -> (Vec<f32>, Vec<Chunk>, Playout) {
        let mut p = Playout::new(8000, 1, latency);
        p.set_drift_mode(DriftMode::Off);
        let mut events: Vec<(u64, usize)> = arrivals
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.map(|a| (a, i)))
            .collect();
        events.sort();
        let mut out = Vec::new();
        let mut chunks = Vec::new();
        let mut buf = Vec::new();
        let mut ev = events.into_iter().peekable();
        let end = arrivals.len() as u64 * 10 * MS + 200 * MS;
        loop {
            let deadline = p.next_deadline();
            match (ev.peek(), deadline) {
                (Some(&(a, i)), d) if d.is_none_or(|d| a <= d) => {
                    p.push(a, &tone(i * 80, 80));
                    ev.next();
                }
                (_, Some(d)) if d < end => {
                    chunks.push(p.pop(&mut buf));
                    out.extend_from_slice(&buf);
                }
                _ => break,
            }
        }
        (out, chunks, p)
    }

    #[test]
    fn steady_input_is_played_exactly_and_contiguously() {
        let arrivals: Vec<_> = (0..100).map(|i| Some(i * 10 * MS)).collect();
        let (out, chunks, p) = run(40 * MS, &arrivals);
        assert_same(&out[..8000], &tone(0, 8000)[..]);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.frames, 80);
            assert_eq!(c.pts, i as u64 * 10 * MS);
            assert_eq!(c.duration, 10 * MS);
            assert_eq!(c.offset, i as u64 * 80);
        }
        assert!(chunks[0].discont && !chunks[1].discont);
        assert_eq!(p.stats().lost, 0);
        assert_eq!(p.stats().late, 0);
        assert_eq!(p.stats().last_wait_ns, Some(40 * MS as i64));
    }

    /// SNR (dB) of `got` against `want`.
    fn snr_db(got: &[f32], want: &[f32]) -> f64 {
        let (mut sig, mut err) = (0.0f64, 0.0f64);
        for (g, w) in got.iter().zip(want) {
            sig += f64::from(*w).powi(2);
            err += f64::from(g - w).powi(2);
        }
        10.0 * (sig / err.max(1e-12)).log10()
    }

    #[test]
    fn the_end_of_a_hole_meets_the_queued_audio_after_it() {
        // A glide from 300 to 900 Hz, so that the audio after a loss is not the repetition of
        // the audio before it. At latency 40 the datagram after a lost one is queued when the
        // hole is concealed: `expand` blends into it, where a forward-only method (Appendix I)
        // can only extrapolate. Scored over the last 5 ms of each of 5 holes.
        let glide = |n: usize| {
            let t = n as f64 / 8000.0;
            (0.5 * (std::f64::consts::TAU * (300.0 * t + 100.0 * t * t)).sin()) as f32
        };
        let lost = [20usize, 60, 100, 140, 180];
        let run_with = |method: PlcMethod| {
            let mut p = Playout::new(8000, 1, 40 * MS);
            p.set_drift_mode(DriftMode::Off);
            p.set_plc_method(method);
            let mut out = Vec::new();
            let mut buf = Vec::new();
            for i in 0..200usize {
                let at = i as u64 * 10 * MS;
                while p.next_deadline().is_some_and(|d| d < at) {
                    p.pop(&mut buf);
                    out.extend_from_slice(&buf);
                }
                if !lost.contains(&i) {
                    let d: Vec<f32> = (i * 80..i * 80 + 80).map(glide).collect();
                    p.push(at, &d);
                }
            }
            out
        };
        let score = |out: &[f32]| {
            let (got, want): (Vec<f32>, Vec<f32>) = lost
                .iter()
                .flat_map(|&i| (i * 80 + 40..i * 80 + 80).map(|n| (out[n], glide(n))))
                .unzip();
            snr_db(&got, &want)
        };
        let two_sided = score(&run_with(PlcMethod::Expand));
        let forward = score(&run_with(PlcMethod::AppendixI));
        eprintln!("last 5 ms of the holes: expand {two_sided:.1} dB, appendix-i {forward:.1} dB");
        assert!(two_sided > 10.0, "{two_sided}");
        // Measured: 14.8 dB against 9.1 dB (15.4 dB with the raised-cosine blend that the
        // distance-weighted one replaced: that scores lower on speech, see docs/concealment.md).
        assert!(two_sided > forward + 5.0, "{two_sided} vs {forward}");
    }

    #[test]
    fn after_an_outage_longer_than_the_window_the_stream_resumes_in_its_slot() {
        // 1 s of audio, nothing for 3 s (longer than the placement's 2 s window of arrivals),
        // then 1 s more, on time. The first datagram after the outage is placed by its arrival
        // as after a loss: no datagram is late, nothing resyncs, and the audio plays in its
        // own slot again after the merge. (Taken to follow the audio before the outage, whose
        // slots had long played, the first two were dropped as late and the third resynced.)
        let arrivals: Vec<_> = (0..500)
            .map(|i| (!(100..400).contains(&i)).then_some(i * 10 * MS))
            .collect();
        let (out, _, p) = run(40 * MS, &arrivals);
        let s = p.stats();
        assert_eq!((s.late, s.resyncs, s.lost), (0, 0, 300), "{s:?}");
        assert_same(&out[..8000], &tone(0, 8000)[..]);
        assert_same(&out[402 * 80..500 * 80], &tone(402 * 80, 98 * 80)[..]);
    }

    #[test]
    fn lost_datagram_is_concealed_in_its_slot() {
        let arrivals: Vec<_> = (0..50).map(|i| (i != 20).then_some(i * 10 * MS)).collect();
        let (out, _, p) = run(40 * MS, &arrivals);
        assert_eq!(p.stats().lost, 1);
        // Everything around the gap is exact: the gap did not shift the timeline.
        assert_same(&out[..1600], &tone(0, 1600)[..]);
        // The merge after the gap cross-fades a few ms; after that, exact again.
        assert_same(&out[1800..4000], &tone(1800, 2200)[..]);
        assert_eq!(p.stats().played_frames, 49 * 80);
        let s = p.stats();
        assert_eq!(
            s.concealed_frames + s.silent_frames,
            s.pushed * 80 - s.played_frames
        );
        // The lost slot and the tail after the input ended (until it faded out, within 100 ms)
        // are synthesized.
        assert!(
            s.concealed_frames >= 80 && s.concealed_frames <= 80 + 800,
            "{s:?}"
        );
    }

    #[test]
    fn jittered_input_is_absorbed() {
        // Deterministic pseudo-random jitter up to 20 ms, order preserved.
        let mut last = 0;
        let arrivals: Vec<_> = (0..300u64)
            .map(|i| {
                let j = (i * 7919 % 21) * MS;
                last = (i * 10 * MS + j).max(last);
                Some(last)
            })
            .collect();
        let (out, _, p) = run(40 * MS, &arrivals);
        assert_eq!(p.stats().late, 0);
        assert_eq!(p.stats().lost, 0, "{:?}", p.stats());
        assert_same(&out[..300 * 80], &tone(0, 300 * 80)[..]);
    }

    #[test]
    fn stalled_datagrams_are_late_and_the_timeline_holds() {
        // A 100 ms stall: datagrams 20..=29 all arrive at 300 ms, in order (a FIFO queue
        // released at once). Slots 20..=25 were due before that: their data is late.
        let arrivals: Vec<_> = (0..60u64)
            .map(|i| {
                Some(if (20..30).contains(&i) {
                    300 * MS
                } else {
                    i * 10 * MS
                })
            })
            .collect();
        let (out, _, p) = run(40 * MS, &arrivals);
        assert_eq!(p.stats().late, 6, "{:?}", p.stats());
        assert_eq!(p.stats().lost, 0, "{:?}", p.stats());
        assert_eq!(p.stats().resyncs, 0);
        assert_same(&out[..1600], &tone(0, 1600)[..]);
        // Slots 26.. play their own data (after the merge's cross-fade).
        assert_same(&out[27 * 80..60 * 80], &tone(27 * 80, 33 * 80)[..]);
    }

    #[test]
    fn slow_sender_is_resynced_when_its_data_turns_late() {
        // A sender clock 0.5 % slow: each datagram arrives 50 us later than the last one
        // would suggest, so the wait before playout shrinks by 5 ms per second until data is
        // late; three late datagrams in a row re-anchor the stream on the full latency.
        let arrivals: Vec<_> = (0..1000u64)
            .map(|i| Some(i * 10 * MS + i * 50_000))
            .collect();
        let (_, chunks, p) = run(20 * MS, &arrivals);
        let s = p.stats();
        assert!(s.resyncs >= 1, "{s:?}");
        assert!(s.late <= 3 * s.resyncs, "{s:?}");
        assert!(
            chunks
                .windows(2)
                .all(|w| w[0].pts + w[0].duration == w[1].pts)
        );
    }

    #[test]
    fn fast_sender_is_bounded_by_the_overflow_policy() {
        // A sender that sends 10 ms every 5 ms: the queue would grow for ever.
        let mut p = Playout::new(8000, 1, 40 * MS);
        let mut buf = Vec::new();
        for i in 0..2000u64 {
            let a = i * 5 * MS;
            while p.next_deadline().is_some_and(|d| d <= a) {
                p.pop(&mut buf);
            }
            p.push(a, &tone(i as usize * 80, 80));
            // latency + 100 ms of room + the datagram + one chunk.
            assert!(p.queued_frames() <= 1120 + 80 + 80, "{}", p.queued_frames());
        }
        assert!(p.stats().overflow_skipped_frames > 0);
        assert!(p.stats().overflow_dropped > 0);
    }

    #[test]
    fn output_blocked_downstream_keeps_the_received_audio() {
        // The output is stuck for 800 ms (a sink starting up), while datagrams keep arriving on
        // time. When it catches up, it plays them all, in their slots: nothing is skipped, late
        // or concealed, and the queue never held more than what arrived meanwhile.
        let mut p = Playout::new(8000, 1, 40 * MS);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for i in 0..300u64 {
            let a = i * 10 * MS;
            let stalled = (200 * MS..1000 * MS).contains(&a);
            while !stalled && p.next_deadline().is_some_and(|d| d <= a) {
                p.pop(&mut buf);
                out.extend_from_slice(&buf);
            }
            p.push(a, &tone(i as usize * 80, 80));
        }
        let s = p.stats();
        assert_eq!((s.late, s.lost, s.overflow_dropped), (0, 0, 0), "{s:?}");
        assert_eq!(s.overflow_skipped_frames, 0, "{s:?}");
        assert_same(&out[..290 * 80], &tone(0, 290 * 80)[..]);
    }

    #[test]
    fn output_blocked_for_long_bounds_the_memory() {
        let mut p = Playout::new(8000, 1, 40 * MS);
        let mut buf = Vec::new();
        p.push(0, &tone(0, 80));
        p.pop(&mut buf);
        // Nothing is popped for 10 s.
        for i in 1..1000u64 {
            p.push(i * 10 * MS, &tone(i as usize * 80, 80));
            let max = ns_to_frames(p.max_queue_ns() as i64 + MAX_BACKLOG_NS, 8000);
            let held: i64 = p.queue.iter().map(|q| q.frames).sum();
            assert!(held <= max, "{held}");
        }
        assert!(p.stats().overflow_dropped > 0);
    }

    #[test]
    fn burst_after_outage_is_dropped_as_late() {
        // A 1 s stall: datagrams 100..200 all arrive at 2 s with the ones due then. What was
        // due during the stall is late; the stream continues in its own slots.
        let arrivals: Vec<_> = (0..300u64)
            .map(|i| {
                Some(if (100..200).contains(&i) {
                    2000 * MS
                } else {
                    i * 10 * MS
                })
            })
            .collect();
        let (out, _, p) = run(40 * MS, &arrivals);
        let s = p.stats();
        assert_eq!(s.late, 96, "{s:?}");
        assert_eq!(s.lost, 0, "{s:?}");
        assert_eq!(s.overflow_skipped_frames, 0, "{s:?}");
        assert_same(&out[197 * 80..300 * 80], &tone(197 * 80, 103 * 80)[..]);
    }

    #[test]
    fn output_started_before_data_places_the_first_datagram_a_latency_later() {
        let mut p = Playout::new(8000, 1, 40 * MS);
        p.start(1000 * MS);
        assert_eq!(p.next_deadline(), Some(1040 * MS));
        let mut buf = Vec::new();
        // Every chunk due by 1.5 s: silence.
        for i in 0..=46 {
            let c = p.pop(&mut buf);
            assert!(c.silent);
            assert_eq!(c.pts, 1000 * MS + i * 10 * MS);
        }
        // Arrives at 1.5 s: plays at 1.54 s, i.e. output frame 4000.
        assert_eq!(
            p.push(1500 * MS, &tone(0, 80)),
            PushOutcome::Queued {
                pos: 4000,
                missing: 0
            }
        );
        for _ in 47..50 {
            assert_eq!(p.pop(&mut buf).real_frames, 0);
        }
        assert_eq!(p.next_deadline(), Some(1540 * MS));
        let c = p.pop(&mut buf);
        assert_eq!((c.real_frames, c.pts), (80, 1500 * MS));
        assert_same(&buf, &tone(0, 80));
    }

    #[test]
    fn output_continues_without_input() {
        let mut p = Playout::new(48000, 2, 40 * MS);
        p.push(0, &vec![0.1; 960]);
        let mut buf = Vec::new();
        let mut gaps = 0;
        for i in 0..1000 {
            let c = p.pop(&mut buf);
            assert_eq!(c.frames, 480);
            assert_eq!(c.pts, i * 10 * MS);
            gaps += c.silent as usize;
        }
        assert!(gaps > 990);
    }
}

#[cfg(test)]
mod simulation {
    //! The placement rule against a simulated network, measured.
    use super::*;
    use crate::impair::{Impairment, Schedule};

    const MS: u64 = 1_000_000;

    /// Each datagram carries its index in every sample, so the output says which datagram
    /// each output slot played.
    pub(super) struct Outcome {
        pub slots: u64,
        /// Slots that played received audio (whole).
        pub real: u64,
        /// Transitions between two real slots (with only concealment between them) where the
        /// second played exactly the datagram that should follow: the timeline held.
        pub right: u64,
        pub wrong: u64,
        /// Concealed slots whose datagram had been delivered (it came too late, or the timeline
        /// was off).
        pub needless: u64,
        pub true_lost: u64,
        pub stats: Stats,
        pub min_wait_ms: f64,
        pub max_wait_ms: f64,
    }

    pub(super) fn simulate(imp: Impairment, latency_ms: u64, seconds: u64) -> Outcome {
        simulate_in(DriftMode::Off, imp, latency_ms, seconds)
    }

    /// The placement rule on its own: the output is compared datagram by datagram, so drift
    /// compensation (resampling) is off unless `mode` says otherwise.
    pub(super) fn simulate_in(
        mode: DriftMode,
        imp: Impairment,
        latency_ms: u64,
        seconds: u64,
    ) -> Outcome {
        let mut p = Playout::new(8000, 1, latency_ms * MS);
        p.set_drift_mode(mode);
        let mut sched = Schedule::new(imp, 10 * MS);
        let mut buf = Vec::new();
        let n = seconds * 100;
        let mut o = Outcome {
            slots: 0,
            real: 0,
            right: 0,
            wrong: 0,
            needless: 0,
            true_lost: 0,
            stats: Stats::default(),
            min_wait_ms: f64::MAX,
            max_wait_ms: f64::MIN,
        };
        let mut delivered = vec![false; n as usize + 1000];
        // The last real slot's datagram index, and the slots since.
        let mut last_real: Option<(u64, u64)> = None;
        let mut pending = sched.next();
        while let Some(d) = pending {
            if d.index >= n {
                break;
            }
            while p.next_deadline().is_some_and(|dl| dl < d.arrive_ns) {
                let c = p.pop(&mut buf);
                o.slots += 1;
                if c.real_frames == c.frames {
                    // Each datagram carries (index % 1000 + 1) / 1000 in every sample; the
                    // slot's last sample is past any cross-fade.
                    let idx = (buf[c.frames - 1] * 1000.0).round() as u64 - 1;
                    o.real += 1;
                    if let Some((prev, since)) = last_real {
                        if (prev + since + 1) % 1000 == idx {
                            o.right += 1;
                        } else {
                            o.wrong += 1;
                        }
                    }
                    last_real = Some((idx, 0));
                } else if let Some((prev, since)) = last_real.as_mut() {
                    *since += 1;
                    let _ = prev;
                }
            }
            delivered[d.index as usize] = true;
            let v = (d.index % 1000 + 1) as f32 / 1000.0;
            p.push(d.arrive_ns, &[v; 80]);
            if let Some(w) = p.stats().last_wait_ns
                && o.slots > 100
            {
                o.min_wait_ms = o.min_wait_ms.min(w as f64 / 1e6);
                o.max_wait_ms = o.max_wait_ms.max(w as f64 / 1e6);
            }
            pending = sched.next();
        }
        o.true_lost = delivered[..n as usize].iter().filter(|&&x| !x).count() as u64;
        o.needless = o.slots - o.real - o.true_lost.min(o.slots - o.real);
        o.stats = p.stats().clone();
        o
    }

    pub(super) fn report(name: &str, o: &Outcome) {
        eprintln!(
            "{name}: {} slots, {} real; timeline held at {:.2} % of transitions ({} wrong); \
             concealed {} for {} lost | inferred lost {} late {} moved {} taken back {} \
             trimmed {} ms resyncs {} overflow {} ms | wait {:.1}..{:.1} ms",
            o.slots,
            o.real,
            100.0 * o.right as f64 / (o.right + o.wrong).max(1) as f64,
            o.wrong,
            o.slots - o.real,
            o.true_lost,
            o.stats.lost,
            o.stats.late,
            o.stats.gaps_moved,
            o.stats.gaps_taken_back,
            o.stats.delay_trimmed_frames / 8,
            o.stats.resyncs,
            o.stats.overflow_skipped_frames / 8,
            o.min_wait_ms,
            o.max_wait_ms
        );
    }

    fn held(o: &Outcome) -> f64 {
        o.right as f64 / (o.right + o.wrong).max(1) as f64
    }

    #[test]
    fn jitter_below_the_datagram_duration_places_every_loss_exactly() {
        for jitter_ms in [0, 5] {
            let imp = Impairment {
                loss: 0.1,
                jitter_ns: jitter_ms * MS,
                skew_ppm: 0.0,
                seed: 5,
            };
            let o = simulate(imp, 40, 600);
            report(&format!("10 % loss, {jitter_ms} ms jitter, latency 40"), &o);
            assert_eq!(o.wrong, 0);
            assert_eq!(o.stats.lost, o.true_lost);
            assert_eq!(o.slots - o.real, o.true_lost);
            assert_eq!((o.stats.late, o.stats.resyncs), (0, 0));
        }
    }

    #[test]
    fn jitter_without_loss_is_absorbed_completely() {
        let imp = Impairment {
            loss: 0.0,
            jitter_ns: 20 * MS,
            skew_ppm: 0.0,
            seed: 5,
        };
        let o = simulate(imp, 40, 600);
        report("no loss, 20 ms jitter, latency 40", &o);
        assert_eq!(o.wrong, 0);
        assert_eq!(o.real, o.slots);
    }

    #[test]
    fn jitter_above_the_datagram_duration_keeps_the_timeline_and_the_delay() {
        // Jitter of two datagram durations makes some single losses look like delays until it
        // is too late to move them (see the timeline docs); what must hold: no late data, no
        // resync, the loss count, a bounded delay, and most transitions right.
        for (jitter_ms, latency_ms) in [(20, 40), (40, 60)] {
            let imp = Impairment {
                loss: 0.1,
                jitter_ns: jitter_ms * MS,
                skew_ppm: 0.0,
                seed: 5,
            };
            let o = simulate(imp, latency_ms, 600);
            report(
                &format!("10 % loss, {jitter_ms} ms jitter, latency {latency_ms}"),
                &o,
            );
            assert!(held(&o) > 0.85, "{}", held(&o));
            assert!(o.stats.late * 1000 <= o.slots, "late {}", o.stats.late);
            assert_eq!(o.stats.resyncs, 0);
            assert!(o.stats.lost.abs_diff(o.true_lost) * 100 <= o.true_lost);
            let l = latency_ms as f64;
            assert!(
                o.min_wait_ms >= l - jitter_ms as f64 - 10.0,
                "{}",
                o.min_wait_ms
            );
            assert!(o.max_wait_ms <= l + 20.0, "{}", o.max_wait_ms);
        }
    }

    /// Counts output samples that step further than a clean 440 Hz tone ever does.
    fn clicks(mode: DriftMode, imp: Impairment, latency_ms: u64, seconds: u64) -> (u64, Stats) {
        let tone = |from: u64, n: usize| -> Vec<f32> {
            (0..n as u64)
                // Exact phase (the sample index times 440/8000 cycles, modulo one cycle).
                .map(|k| {
                    let cycle = ((from + k) * 440 % 8000) as f64 / 8000.0;
                    (0.5 * (cycle * 2.0 * std::f64::consts::PI).sin()) as f32
                })
                .collect()
        };
        let max_step = 0.5 * 2.0 * std::f32::consts::PI * 440.0 / 8000.0;
        let mut p = Playout::new(8000, 1, latency_ms * MS);
        p.set_drift_mode(mode);
        let mut sched = Schedule::new(imp, 10 * MS);
        let mut buf = Vec::new();
        let mut prev = 0.0f32;
        let mut clicks = 0;
        let mut pending = sched.next();
        while let Some(d) = pending {
            if d.index >= seconds * 100 {
                break;
            }
            while p.next_deadline().is_some_and(|dl| dl < d.arrive_ns) {
                p.pop(&mut buf);
                for &x in &buf {
                    if (x - prev).abs() > 1.5 * max_step {
                        clicks += 1;
                    }
                    prev = x;
                }
            }
            p.push(d.arrive_ns, &tone(d.index * 80, 80));
            pending = sched.next();
        }
        (clicks, p.stats().clone())
    }

    #[test]
    fn losses_hidden_by_jitter_are_cross_faded_not_clicked() {
        // Without the splice check, 20 ms jitter on 10 ms datagrams left 2247 samples stepping
        // further than the tone ever does (each a click where a hidden loss joined two
        // datagrams); 40 ms, 3451. Concealment itself never clicks (0 with no jitter).
        let cases = [
            (0.1, 0, 40, 0),
            (0.0, 20, 40, 0),
            (0.1, 20, 40, 400),
            (0.1, 40, 60, 400),
        ];
        for (loss, jitter_ms, latency_ms, max_clicks) in cases {
            let imp = Impairment {
                loss,
                jitter_ns: jitter_ms * MS,
                skew_ppm: 0.0,
                seed: 5,
            };
            let (clicks, s) = clicks(DriftMode::Off, imp, latency_ms, 600);
            eprintln!(
                "{loss} loss, {jitter_ms} ms jitter, latency {latency_ms}: {clicks} click samples, \
                 {} splices cross-faded",
                s.splices_smoothed
            );
            assert!(clicks <= max_clicks, "{clicks}");
            if loss == 0.0 {
                assert_eq!(s.splices_smoothed, 0, "no false splice on a clean stream");
            }
        }
    }
}

// SPDX-License-Identifier: MPL-2.0
//! The clocked playout of one RTP audio stream: packets in (with their arrival time), exactly
//! 10 ms chunks out. No GStreamer types and no clock, like [`Playout`](super::Playout).
//!
//! # Placement
//! Unlike raw PCM, an RTP packet says where it belongs: its timestamp. The first packet (and the
//! first after a resync) is placed so that it waits the full `latency` after its arrival; every
//! other packet goes at `anchor + (timestamp - anchor timestamp)`. Packets are stored by
//! extended sequence number (RFC 3550 Appendix A.1 unwrapping, so 65535 -> 0 and 2^32
//! timestamp wraps are seamless) and played in that order: reordering within the latency is
//! undone, a duplicate (a sequence number already queued or received in the last 1024) is
//! dropped and counted, and a packet whose slot has already been played is dropped as `late`.
//!
//! # Sender restarts
//! A packet that does not fit the stream starts a *run* of misfits: a new SSRC, a sequence
//! number more than [`MAX_MISORDER`] behind or [`MAX_DROPOUT`] ahead of the highest one, a
//! timestamp placing it further ahead than the queue may hold, or a late slot. Misfits are
//! held, not played. A run of consecutive packets (same SSRC, sequence numbers +1, timestamps
//! advancing by at most a second) ends in a resync:
//! * at its 2nd packet if it is a new SSRC, a sequence jump or too early (a restart forward or
//!   backward): 1 packet of delay, at most 120 ms of audio; except that a forward sequence
//!   jump whose timestamps still fit the timeline (a long loss) joins the stream without a
//!   resync, while a lone packet far ahead (a corrupted sequence number) is dropped;
//! * at its 3rd or later packet if it is only late and its packets arrive at the pace of their
//!   timestamps (at least 3/4 of it): the sender's timeline moved back, or its clock is slow.
//!   A burst of old packets after an outage arrives much faster than its timestamps advance, so
//!   it is dropped as late instead and never drags the delay up.
//!
//! A late packet with the marker bit set (the first of a talkspurt, after silence) resyncs at
//! once: moving the timeline inside the silence before it is inaudible.
//!
//! A resync keeps the output timeline (PTS stay contiguous), re-anchors on the run's last packet
//! with the full latency and queues the run. Random sequence numbers or SSRCs never form a run,
//! so a hostile stream cannot make the buffer reset on every packet, and nothing it sends is
//! stored.
//!
//! # Concealment, FEC and DTX
//! When a chunk is due and the next packet in sequence is not there:
//! * if the next packet queued directly follows the last one played (no sequence number
//!   missing) but its timestamp jumped, the sender paused (Opus DTX, or a PCM sender that
//!   stops during silence): the gap is filled with comfort noise (Opus) or the concealment's
//!   fade to silence (PCM) and counted as `dtx`, not as loss; it never stalls the output;
//! * otherwise audio is missing. For Opus, if the packet after the missing one is queued and
//!   carries in-band FEC, the missing audio is decoded from it; else if it carries DRED, from
//!   that; else the codec's PLC (the neural deep PLC at complexity 5 and up) fills in. For PCM
//!   payloads the PCM [`Concealer`] does. A long outage is one concealment stretch.
//!
//! # Memory and accounting
//! The queue spans at most the delay bound plus 2 s of backlog, a misfit run holds at most 64
//! packets, and queued and held packets together stay within the [`Limits`] (held misfits go
//! first, then the oldest queued). Every pushed packet is in one bucket of the [`Ledger`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::compensate::Compensator;
pub use super::compensate::{DriftMode, DriftStats};
use super::ledger::{Bucket, Ledger, Limits};
use super::playout::{Chunk, Stats, max_queue_ns};
use super::rtp::Header;
use super::time::{NS_PER_MS, NS_PER_SEC, chunk_start, frames_to_ns, ns_to_frames};
use crate::codec::{PayloadDecoder, PayloadError};
use crate::conceal::Concealer;

/// A sequence number this far behind the highest one is a jump, not reordering.
pub const MAX_MISORDER: i64 = 100;
/// A sequence number this far ahead of the highest one is a jump, not a loss burst.
pub const MAX_DROPOUT: i64 = 3000;
/// Packets of a late run arriving at least this fraction of their timestamps' pace are a moved
/// timeline rather than a catch-up burst.
const PACE_NUM: i64 = 3;
const PACE_DEN: i64 = 4;
/// Late misfits needed before pace can prove a moved timeline.
const LATE_RUN: usize = 3;
/// Sequence numbers remembered to tell a duplicate from a late packet.
const SEEN: usize = 1024;
/// Default cap on queued and held packets, whatever their size (see [`Limits`]).
pub const MAX_PACKETS: usize = super::ledger::DEFAULT_MAX_PACKETS;
/// Most misfits held, all candidate runs together, oldest dropped first (a long late run that
/// never proves pace; strays): a restarted sender still resyncs with up to this many stray
/// packets arriving between two of its own.
const MAX_RUN: usize = 64;
/// Audio held beyond the delay bound while the output is behind its clock.
const MAX_BACKLOG_NS: i64 = 2 * NS_PER_SEC;

/// What became of a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpPushOutcome {
    /// Queued at output frame `pos`.
    Queued { pos: i64 },
    /// Same sequence number as a queued or recently received packet.
    Duplicate,
    /// Its slot was already played.
    Late,
    /// Does not fit the stream (yet): held as a possible restart.
    Misfit,
    /// The stream was re-anchored (new SSRC, jump, moved timeline); the packet queued at `pos`.
    Resynced { pos: i64 },
    /// The payload is not valid for the codec.
    Invalid(PayloadError),
    /// The payload alone is larger than [`Limits::max_bytes`]: dropped.
    Overflow,
}

/// RTP-specific counters, beside the common [`Stats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RtpStats {
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number and were still played in order.
    pub reordered: u64,
    /// Lost packets rebuilt from the next packet's in-band FEC.
    pub fec_recovered: u64,
    /// Lost packets rebuilt from DRED.
    pub dred_recovered: u64,
    /// Frames produced by the codec's own PLC (Opus).
    pub codec_plc_frames: u64,
    /// Frames of sender pauses (DTX): comfort noise or fade-out, not loss.
    pub dtx_frames: u64,
    /// Packets that did not fit the stream and were not played (a run that did not end in a
    /// resync, hostile or stray packets).
    pub misfits: u64,
    /// Packets refused by the codec, by reason.
    pub invalid_payload: u64,
    /// Times the SSRC changed.
    pub ssrc_changes: u64,
    /// RFC 3550 interarrival jitter, in timestamp units.
    pub jitter: f64,
    pub ssrc: Option<u32>,
    pub payload_type: Option<u8>,
}

#[derive(Debug)]
struct Stored {
    pos: i64,
    frames: i64,
    payload: Vec<u8>,
}

/// A packet that did not fit the stream, held in case it starts a new one.
#[derive(Debug)]
struct Misfit {
    header: Header,
    arrival: i64,
    frames: i64,
    payload: Vec<u8>,
    /// Late only (sequence and SSRC fit): needs the pace test.
    late_only: bool,
    /// Which candidate run it belongs to (the held packets may interleave several: a restarted
    /// sender, a second sender, strays).
    chain: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Real,
    Concealed,
    Dtx,
}

/// Playout state of one RTP stream.
#[derive(Debug)]
pub struct RtpPlayout {
    rate: u32,
    channels: usize,
    latency_ns: i64,
    upstream_ns: i64,
    decoder: PayloadDecoder,
    concealer: Concealer,
    /// Running time (ns) of output frame 0.
    origin: Option<i64>,
    /// Extended timestamp of output frame `anchor_pos`.
    anchor_ts: i64,
    anchor_pos: i64,
    /// Extended timestamp of the last accepted packet (reference for unwrapping).
    last_ts: i64,
    ssrc: Option<u32>,
    highest_seq: i64,
    store: BTreeMap<i64, Stored>,
    /// Extended sequence number of the last packet played.
    played_seq: Option<i64>,
    seen: BTreeSet<i64>,
    run: Vec<Misfit>,
    /// Decoded audio ahead of the play head, starting at `pending_pos`.
    pending: VecDeque<f32>,
    pending_pos: i64,
    pending_kind: Kind,
    /// Index of the next 10 ms chunk.
    chunk: i64,
    /// Largest offset (frames) between a packet's timestamp and the end of the audio before it
    /// that is taken as imprecise stamping rather than a gap or an overlap: 2.5 ms for Opus
    /// (its frame step), 1 ms for PCM.
    snap: i64,
    /// End (output frame) of the last packet played, and its duration.
    played_end: i64,
    last_frames: i64,
    /// Frames concealed and silent since the last packet played (reclassified as DTX when the
    /// next packet shows nothing was missing).
    stretch_concealed: u64,
    stretch_silent: u64,
    /// The stretch since the last packet played is loss whatever the sequence numbers say (a
    /// resync made the next packet follow on).
    stretch_is_loss: bool,
    /// Transit time of the last packet, in timestamp units (for the jitter estimate).
    last_transit: Option<i64>,
    stats: Stats,
    rtp: RtpStats,
    scratch: Vec<f32>,
    limits: Limits,
    /// Where every pushed packet is (`queued` and `held` are filled in by [`RtpPlayout::ledger`]).
    ledger: Ledger,
    /// Payload bytes in `store` and in `run`.
    store_bytes: usize,
    run_bytes: usize,
    /// Id of the newest candidate run.
    next_chain: u64,
    /// Media position (on the packets' timeline) of the next frame to decode or conceal: the
    /// play head that lateness is judged against. Without drift compensation it is the output
    /// frame counter; with it, it runs ahead of the resampler's read position by what the
    /// resampler has queued.
    media_head: i64,
    /// Media position just after the last received frame produced: while resampling, it may
    /// still be in the resampler, not yet played.
    real_end: i64,
    drift: Compensator,
    /// Scratch for what is fed to the resampler.
    feed: Vec<f32>,
    /// Frames of the gap opened by [`RtpPlayout::shift_timeline`] not yet filled.
    insert_left: u64,
    /// Scratch for the decoded audio after a hole (two-sided concealment).
    future: Vec<f32>,
}

impl RtpPlayout {
    pub fn new(decoder: PayloadDecoder, latency_ns: u64) -> Self {
        let rate = decoder.rate();
        let channels = decoder.channels();
        let snap = (decoder.conceal_step() as i64).max(i64::from(rate / 1000));
        Self {
            rate,
            channels,
            latency_ns: clamp_ns(latency_ns),
            upstream_ns: 0,
            concealer: Concealer::new(rate, channels),
            decoder,
            origin: None,
            anchor_ts: 0,
            anchor_pos: 0,
            last_ts: 0,
            ssrc: None,
            highest_seq: 0,
            store: BTreeMap::new(),
            played_seq: None,
            seen: BTreeSet::new(),
            run: Vec::new(),
            pending: VecDeque::new(),
            pending_pos: 0,
            pending_kind: Kind::Real,
            chunk: 0,
            snap,
            played_end: 0,
            last_frames: 0,
            stretch_concealed: 0,
            stretch_silent: 0,
            stretch_is_loss: false,
            last_transit: None,
            stats: Stats::default(),
            rtp: RtpStats::default(),
            scratch: Vec::new(),
            limits: Limits::default(),
            ledger: Ledger::default(),
            store_bytes: 0,
            run_bytes: 0,
            next_chain: 0,
            media_head: 0,
            real_end: 0,
            drift: Compensator::new(rate, channels, clamp_ns(latency_ns)),
            feed: Vec::new(),
            insert_left: 0,
            future: Vec::new(),
        }
    }

    /// Sets the drift compensation; applies from the next chunk (an engaged resampler stays
    /// in the path until [`RtpPlayout::reset`]).
    pub fn set_drift_mode(&mut self, mode: DriftMode) {
        self.drift.set_mode(mode);
    }

    pub fn drift_mode(&self) -> DriftMode {
        self.drift.mode()
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
    pub fn media_read_pos(&self) -> f64 {
        self.drift.read_pos(self.media_head)
    }

    /// Media position minus output frame counter: how far the drift compensation has moved
    /// the media timeline against the output (0 without it).
    fn media_offset(&self) -> i64 {
        self.media_read_pos().floor() as i64 - chunk_start(self.chunk, self.rate)
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn rtp_stats(&self) -> &RtpStats {
        &self.rtp
    }

    /// Where every packet pushed so far is (see [`Ledger`]); kept across [`RtpPlayout::reset`].
    pub fn ledger(&self) -> Ledger {
        Ledger {
            queued: self.store.len() as u64,
            held: self.run.len() as u64,
            ..self.ledger
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Sets the memory caps; shrinking drops what exceeds them at once (held misfits first,
    /// then the oldest queued packets).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits.sane();
        self.enforce_limits();
    }

    /// Packets held: queued and held misfits.
    pub fn queued_packets(&self) -> usize {
        self.store.len() + self.run.len()
    }

    /// Payload bytes held: queued and held misfits.
    pub fn queued_bytes(&self) -> usize {
        self.store_bytes + self.run_bytes
    }

    /// Forgets the stream: the next packet starts a new one. What was queued or held is counted
    /// as `flushed` in the ledger.
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.concealer.reset();
        self.origin = None;
        self.ssrc = None;
        self.clear_store(Bucket::Flushed);
        self.played_seq = None;
        self.seen.clear();
        self.drop_run(Some(Bucket::Flushed));
        self.pending.clear();
        self.pending_pos = 0;
        self.pending_kind = Kind::Real;
        self.anchor_ts = 0;
        self.anchor_pos = 0;
        self.last_ts = 0;
        self.highest_seq = 0;
        self.played_end = 0;
        self.last_frames = 0;
        self.chunk = 0;
        self.stretch_concealed = 0;
        self.stretch_silent = 0;
        self.stretch_is_loss = false;
        self.last_transit = None;
        self.stats = Stats::default();
        self.rtp = RtpStats::default();
        self.media_head = 0;
        self.real_end = 0;
        self.drift.reset(self.latency_ns);
        self.insert_left = 0;
    }

    pub fn set_latency(&mut self, latency_ns: u64) {
        self.latency_ns = clamp_ns(latency_ns);
        self.drift.set_latency(self.latency_ns);
    }

    pub fn set_upstream_latency(&mut self, upstream_ns: u64) {
        self.upstream_ns = clamp_ns(upstream_ns);
    }

    /// Chooses how the PCM concealer fills missing L16/G.711 audio (Opus conceals by itself).
    /// A change forgets the concealer's history.
    pub fn set_plc_method(&mut self, method: crate::conceal::PlcMethod) {
        self.concealer.set_method(method);
    }

    /// Starts the output at running time `now_ns` before any packet: silence until the first.
    pub fn start(&mut self, now_ns: u64) {
        self.origin.get_or_insert(clamp_ns(now_ns));
    }

    pub fn started(&self) -> bool {
        self.origin.is_some()
    }

    /// Nothing received is queued, decoded or in the resampler ahead of the play head
    /// (concealment made ahead, because codec PLC comes in 2.5 ms steps, does not count).
    pub fn is_drained(&self) -> bool {
        self.store.is_empty()
            && (self.pending.is_empty() || self.pending_kind != Kind::Real)
            && self.media_read_pos() >= self.real_end as f64
    }

    /// Received audio queued ahead of the play head, gaps included (frames).
    pub fn queued_frames(&self) -> i64 {
        let pending_end = if self.pending_kind == Kind::Real {
            self.pending_pos + (self.pending.len() / self.channels) as i64
        } else {
            0
        };
        let end = self
            .store
            .values()
            .map(|p| p.pos + p.frames)
            .max()
            .unwrap_or(0)
            .max(pending_end);
        (end - self.media_read_pos().floor() as i64).max(0)
    }

    /// Most audio held ahead of the play head (ns), from the delay bound (`latency`, or the
    /// top of the adaptive range).
    pub fn max_queue_ns(&self) -> u64 {
        max_queue_ns(self.drift.delay_bound_ns(self.latency_ns) as u64)
    }

    pub fn next_deadline(&self) -> Option<u64> {
        let origin = self.origin?;
        let t = origin
            + self.upstream_ns
            + self.latency_ns
            + frames_to_ns(chunk_start(self.chunk, self.rate), self.rate);
        Some(t.max(0) as u64)
    }

    /// The media position up to which audio has been produced (see `media_head`).
    fn play_head(&self) -> i64 {
        self.media_head
    }

    /// Media position at which a packet arriving at `arrival` waits exactly the latency.
    fn arrival_pos(&self, arrival: i64) -> i64 {
        ns_to_frames(arrival - self.origin.unwrap_or(arrival), self.rate) + self.media_offset()
    }

    /// Queues an RTP packet (header already validated, payload non-empty) that arrived at
    /// running time `arrival_ns`.
    pub fn push(&mut self, arrival_ns: u64, header: Header, payload: &[u8]) -> RtpPushOutcome {
        self.ledger.received += 1;
        let frames = match self.decoder.frames(payload) {
            Ok(f) => f as i64,
            Err(e) => {
                self.rtp.invalid_payload += 1;
                self.ledger.invalid += 1;
                return RtpPushOutcome::Invalid(e);
            }
        };
        let arrival = clamp_ns(arrival_ns);
        self.stats.received += 1;
        if payload.len() > self.limits.max_bytes {
            // Taking it would evict everything else and still not fit.
            self.stats.overflow_dropped += 1;
            self.ledger.overflow += 1;
            return RtpPushOutcome::Overflow;
        }
        self.origin.get_or_insert(arrival);

        let Some(ssrc) = self.ssrc else {
            // The very first packet starts the stream.
            return self.resync(vec![Misfit {
                header,
                arrival,
                frames,
                payload: payload.to_vec(),
                late_only: false,
                chain: 0,
            }]);
        };

        let seq = unwrap(self.highest_seq, 16, u64::from(header.seq));
        let delta = seq - self.highest_seq;
        let ts = unwrap(self.last_ts, 32, u64::from(header.ts));
        let pos = self.anchor_pos + (ts - self.anchor_ts);
        let head = self.play_head();
        let ahead = pos - self.arrival_pos(arrival);
        let max_ahead = ns_to_frames(self.max_queue_ns() as i64 - self.latency_ns, self.rate);
        // A forward sequence jump beyond MAX_DROPOUT is held as a misfit even if its timestamp
        // fits the timeline: the next packet tells a long loss (it follows: `join_after_jump`)
        // from a stray with a corrupted sequence number (the stream goes on as before).
        let fits_seq = header.ssrc == ssrc
            && (-MAX_MISORDER..=MAX_DROPOUT).contains(&delta)
            && self.seq_agrees_with_ts(delta, ts);

        if fits_seq && (self.store.contains_key(&seq) || self.seen.contains(&seq)) {
            self.rtp.duplicates += 1;
            self.ledger.duplicate += 1;
            return RtpPushOutcome::Duplicate;
        }
        let late =
            fits_seq && (pos + self.snap < head || self.played_seq.is_some_and(|p| seq <= p));
        // (Late by less than a queue's worth: a timestamp from anywhere is not a talkspurt.)
        if late
            && header.marker
            && self.played_seq.is_none_or(|p| seq > p)
            && head - pos <= ns_to_frames(self.max_queue_ns() as i64, self.rate)
        {
            // The marker bit starts a talkspurt after silence: the silence absorbs moving the
            // timeline, so a late talkspurt start (newer than anything played: not an old
            // straggler) resyncs at once instead of losing its first syllable.
            return self.resync(vec![Misfit {
                header,
                arrival,
                frames,
                payload: payload.to_vec(),
                late_only: true,
                chain: 0,
            }]);
        }
        if !fits_seq || late || ahead > max_ahead {
            if late {
                self.stats.late += 1;
                // Its arrival still tells the delay loop how late packets come (adaptive mode
                // raises the target from it).
                self.drift.on_packet(arrival, pos);
            }
            return self.misfit(Misfit {
                header,
                arrival,
                frames,
                payload: payload.to_vec(),
                late_only: late,
                chain: 0,
            });
        }
        self.drop_run(None);
        self.accept(arrival, seq, ts, pos, frames, payload.to_vec());
        RtpPushOutcome::Queued { pos }
    }

    fn accept(&mut self, arrival: i64, seq: i64, ts: i64, pos: i64, frames: i64, payload: Vec<u8>) {
        if seq < self.highest_seq {
            self.rtp.reordered += 1;
        } else {
            self.highest_seq = seq;
            self.last_ts = ts;
        }
        // RFC 3550 §6.4.1 interarrival jitter, in timestamp units.
        let transit = ns_to_frames(arrival, self.rate) - ts;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs() as f64;
            self.rtp.jitter += (d - self.rtp.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        self.seen.insert(seq);
        while self.seen.len() > SEEN {
            self.seen.pop_first();
        }
        let origin = self.origin.unwrap_or(arrival);
        self.stats.last_wait_ns = Some(
            origin + self.latency_ns + frames_to_ns(pos - self.media_offset(), self.rate) - arrival,
        );
        self.drift.on_packet(arrival, pos);
        self.store_bytes += payload.len();
        if let Some(old) = self.store.insert(
            seq,
            Stored {
                pos,
                frames,
                payload,
            },
        ) {
            // Cannot happen (duplicates are refused before): count the one replaced.
            self.store_bytes -= old.payload.len();
            self.ledger.duplicate += 1;
        }
        self.bound_store();
        self.enforce_limits();
    }

    /// Takes the first (oldest) queued packet out of the store.
    fn pop_stored(&mut self) -> Option<(i64, Stored)> {
        let (seq, p) = self.store.pop_first()?;
        self.store_bytes -= p.payload.len();
        Some((seq, p))
    }

    /// Empties the store, counting its packets in `bucket`; returns how many there were.
    fn clear_store(&mut self, bucket: Bucket) -> u64 {
        let n = self.store.len() as u64;
        for _ in 0..n {
            self.ledger.count(bucket);
        }
        self.store.clear();
        self.store_bytes = 0;
        n
    }

    /// Sequence numbers count packets and timestamps count samples, so they move together: a
    /// packet `delta` sequence numbers ahead of the newest is at least `delta - 1` packets'
    /// worth later in time (taking a packet as at least the shorter of the last one played and
    /// 2.5 ms), and an older one is not later. A packet that claims many lost packets but
    /// little time, or an old sequence number with a new timestamp, is not of this stream: a
    /// stray, or a forgery that reuses its SSRC.
    fn seq_agrees_with_ts(&self, delta: i64, ts: i64) -> bool {
        let dts = ts - self.last_ts;
        if delta < 0 {
            return dts <= 0;
        }
        if delta <= 1 {
            return true;
        }
        let shortest = i64::from(self.rate) / 400;
        let min_packet = match self.last_frames {
            0 => shortest,
            f => f.min(shortest),
        }
        .max(1);
        dts >= (delta - 1) * min_packet
    }

    fn push_run(&mut self, m: Misfit) {
        self.run_bytes += m.payload.len();
        self.run.push(m);
    }

    /// Drops the oldest held misfit, for `bucket` (its own reason, misfit or late, if None).
    fn drop_first_held(&mut self, bucket: Option<Bucket>) {
        if !self.run.is_empty() {
            self.drop_held(0, bucket);
        }
    }

    /// Drops held misfit `i`, for `bucket` (its own reason if None).
    fn drop_held(&mut self, i: usize, bucket: Option<Bucket>) {
        let m = self.run.remove(i);
        self.run_bytes -= m.payload.len();
        self.ledger.count(bucket.unwrap_or(if m.late_only {
            Bucket::Late
        } else {
            Bucket::Misfit
        }));
    }

    /// Drops every held misfit, for `bucket` (each one's own reason if None).
    fn drop_run(&mut self, bucket: Option<Bucket>) {
        for m in self.run.drain(..) {
            self.ledger.count(bucket.unwrap_or(if m.late_only {
                Bucket::Late
            } else {
                Bucket::Misfit
            }));
        }
        self.run_bytes = 0;
    }

    /// The memory caps ([`Limits`]): while they are exceeded, held misfits go first (they are
    /// not on the timeline), then the oldest queued packets.
    fn enforce_limits(&mut self) {
        while self
            .limits
            .exceeded(self.queued_packets(), self.queued_bytes())
        {
            if !self.run.is_empty() {
                self.drop_first_held(Some(Bucket::Overflow));
            } else if self.pop_stored().is_some() {
                self.stats.overflow_dropped += 1;
                self.ledger.overflow += 1;
            } else {
                break;
            }
        }
    }

    /// Time bound: the queue spans at most the queue bound plus [`MAX_BACKLOG_NS`] (a blocked
    /// downstream); the oldest go first. The packet and byte caps are [`Self::enforce_limits`].
    fn bound_store(&mut self) {
        let span_cap = ns_to_frames(self.max_queue_ns() as i64 + MAX_BACKLOG_NS, self.rate);
        while self.store.len() > 1 {
            let first = self.store.first_key_value().map_or(0, |(_, p)| p.pos);
            let last = self
                .store
                .last_key_value()
                .map_or(0, |(_, p)| p.pos + p.frames);
            if last - first <= span_cap {
                break;
            }
            self.pop_stored();
            self.stats.overflow_dropped += 1;
            self.ledger.overflow += 1;
        }
    }

    /// Holds a packet that does not fit; resyncs if the run of misfits proves a new timeline.
    fn misfit(&mut self, mut m: Misfit) -> RtpPushOutcome {
        // Join the candidate run whose newest packet this one follows; else start a new one.
        // Runs are told apart, so that packets from elsewhere interleaved with a restarted
        // sender (a second sender, strays, forgeries with random sequence numbers) do not keep
        // breaking its run and stop it from ever resyncing.
        let joined = self.run.iter().rev().find(|p| {
            let dts = m.header.ts.wrapping_sub(p.header.ts) as i32 as i64;
            p.header.ssrc == m.header.ssrc
                && m.header.seq == p.header.seq.wrapping_add(1)
                && (1..=i64::from(self.rate)).contains(&dts)
        });
        m.chain = match joined {
            Some(p) => p.chain,
            None => {
                self.next_chain += 1;
                self.next_chain
            }
        };
        let chain = m.chain;
        let late = m.late_only;
        self.push_run(m);
        self.rtp.misfits += 1;
        let members: Vec<usize> = (0..self.run.len())
            .filter(|&i| self.run[i].chain == chain)
            .collect();
        let n = members.len();
        let proven = if members.iter().all(|&i| self.run[i].late_only) {
            n >= LATE_RUN && {
                let (a, b) = (&self.run[members[0]], &self.run[members[n - 1]]);
                let dts = i64::from(b.header.ts.wrapping_sub(a.header.ts));
                let dt = frames_to_ns(dts, self.rate);
                (b.arrival - a.arrival) * PACE_DEN >= dt * PACE_NUM && self.moved_by(b)
            }
        } else {
            n >= 2
        };
        if proven {
            let (run, others): (Vec<Misfit>, Vec<Misfit>) = std::mem::take(&mut self.run)
                .into_iter()
                .partition(|p| p.chain == chain);
            // The other candidates lose: the stream goes on from this one.
            self.run = others;
            self.drop_run(None);
            // Their late counts were provisional: they belong to the new timeline.
            self.stats.late -= run.iter().filter(|m| m.late_only).count() as u64;
            self.rtp.misfits -= n as u64;
            return match self.join_after_jump(run) {
                Ok(pos) => RtpPushOutcome::Queued { pos },
                Err(run) => self.resync(run),
            };
        }
        // Bound what a run holds (a long late run that never proves pace).
        if self.run.len() > MAX_RUN {
            self.drop_first_held(None);
        }
        let held = !self.run.is_empty();
        self.enforce_limits();
        if held && self.run.is_empty() {
            // The caps left no room for it.
            return RtpPushOutcome::Overflow;
        }
        if late {
            RtpPushOutcome::Late
        } else {
            RtpPushOutcome::Misfit
        }
    }

    /// A run that jumped forward in sequence numbers beyond [`MAX_DROPOUT`] but whose
    /// timestamps still place it on the timeline (a long loss, or a sender that renumbered its
    /// packets) joins the stream where they place it, keeping what is queued: no resync. Only a
    /// run proves it: one such packet alone may be a stray (a corrupted sequence number) that
    /// must not move the sequence on. Returns where the last packet was queued, or the run back
    /// if it does not fit (a restart).
    fn join_after_jump(&mut self, run: Vec<Misfit>) -> Result<i64, Vec<Misfit>> {
        let Some(ssrc) = self.ssrc else {
            return Err(run);
        };
        let head = self.play_head();
        let max_ahead = ns_to_frames(self.max_queue_ns() as i64 - self.latency_ns, self.rate);
        let (mut highest, mut last_ts) = (self.highest_seq, self.last_ts);
        let mut placed = Vec::with_capacity(run.len());
        for m in &run {
            let seq = unwrap(highest, 16, u64::from(m.header.seq));
            let ts = unwrap(last_ts, 32, u64::from(m.header.ts));
            let pos = self.anchor_pos + (ts - self.anchor_ts);
            let fits = m.header.ssrc == ssrc
                && seq > highest
                && pos + m.frames > head
                && pos - self.arrival_pos(m.arrival) <= max_ahead;
            if !fits {
                return Err(run);
            }
            (highest, last_ts) = (seq, ts);
            placed.push((seq, ts, pos));
        }
        match placed.first() {
            Some(&(seq, _, _)) if seq - self.highest_seq > MAX_DROPOUT => {}
            _ => return Err(run),
        }
        let last = placed.last().map_or(head, |p| p.2);
        for (m, (seq, ts, pos)) in run.into_iter().zip(placed) {
            self.accept(m.arrival, seq, ts, pos, m.frames, m.payload);
        }
        Ok(last)
    }

    /// Starts a new timeline with `run` (consecutive packets, at least one): the last one waits
    /// the full latency; the earlier ones go before it if their slots are still ahead.
    fn resync(&mut self, run: Vec<Misfit>) -> RtpPushOutcome {
        let Some(last) = run.last() else {
            return RtpPushOutcome::Misfit;
        };
        let existed = self.ssrc.is_some();
        let new_ssrc = self.ssrc != Some(last.header.ssrc);
        if existed {
            self.stats.resyncs += 1;
            if new_ssrc {
                self.rtp.ssrc_changes += 1;
            }
            self.stats.overflow_dropped += self.store.len() as u64;
            self.concealer.discontinuity();
        }
        if new_ssrc {
            self.decoder.reset();
        }
        self.clear_store(Bucket::Resync);
        self.seen.clear();
        self.played_seq = None;
        self.last_transit = None;
        // A new media timeline: its arrival line starts over.
        self.drift.restart(self.latency_ns);
        self.insert_left = 0;
        self.ssrc = Some(last.header.ssrc);
        self.rtp.ssrc = self.ssrc;
        self.rtp.payload_type = Some(last.header.pt);

        // Unwrapping restarts from the run's first packet.
        let first = &run[0];
        self.highest_seq = i64::from(first.header.seq);
        self.last_ts = i64::from(first.header.ts);
        let head = self.play_head();
        let pending_end = self.pending_pos + (self.pending.len() / self.channels) as i64;
        let pos = self.arrival_pos(last.arrival).max(head).max(pending_end);
        self.anchor_pos = pos;
        self.anchor_ts = unwrap(self.last_ts, 32, u64::from(last.header.ts));
        for m in run {
            let seq = unwrap(self.highest_seq, 16, u64::from(m.header.seq));
            let ts = unwrap(self.last_ts, 32, u64::from(m.header.ts));
            let p = self.anchor_pos + (ts - self.anchor_ts);
            if p >= head && p >= pending_end {
                self.accept(m.arrival, seq, ts, p, m.frames, m.payload);
            } else {
                // Behind the new timeline's play head: its slot is gone.
                self.stats.late += 1;
                self.ledger.late += 1;
            }
        }
        if !existed {
            return RtpPushOutcome::Queued { pos };
        }
        // Play on from the new timeline's first packet; what comes before it is concealed.
        self.played_seq = self.store.first_key_value().map(|(s, _)| s - 1);
        // That makes the next packet look like it follows the last one played: what was filled
        // before it stays loss (the timeline broke), not a sender pause.
        self.stretch_is_loss = true;
        RtpPushOutcome::Resynced { pos }
    }

    /// Produces the next 10 ms chunk into `out`. Call it when the clock reaches
    /// [`RtpPlayout::next_deadline`].
    ///
    /// The drift loop measures the playout delay and decides the ratio; until it corrects
    /// (see [`DriftMode`]) the media is copied through unchanged (bit-exact), afterwards it is
    /// resampled at that ratio, so a chunk consumes about `frames / ratio` media frames.
    pub fn pop(&mut self, out: &mut Vec<f32>) -> Chunk {
        let out_head = chunk_start(self.chunk, self.rate);
        let frames = chunk_start(self.chunk + 1, self.rate) - out_head;
        out.clear();

        // Same time base as the arrivals: the deadline less the upstream latency.
        let now = self.origin.unwrap_or(0) + self.latency_ns + frames_to_ns(out_head, self.rate);
        self.drift.set_playing(self.played_seq.is_some());
        let d = self.drift.tick(now, self.media_read_pos(), frames);
        let insert = self.drift.insert_due(&d);
        if insert > 0 && self.played_seq.is_some() {
            self.shift_timeline(insert);
        }
        if self.drift.wants_resampler(&d, self.played_seq.is_some()) {
            let discard = self.drift.engage(self.media_head);
            self.feed_resampler(discard);
            self.drift.discard(discard);
        }
        let (real, audible) = if self.drift.resampling() {
            self.drift.set_ratio(d.ratio);
            // Adaptive mode well above its target: the next stretch is cut short if quiet.
            let cut = if self.played_seq.is_some() {
                self.drift.cut_due(&d, self.media_head)
            } else {
                0
            };
            let (mut real, mut audible) = (0, false);
            if cut > 0 {
                let mut feed = std::mem::take(&mut self.feed);
                feed.clear();
                (real, audible) = self.produce(self.drift.cut_input_frames(cut) as i64, &mut feed);
                self.drift.offer_cut(&feed, cut);
                self.feed = feed;
            }
            let (r, a) = self.feed_resampler(frames as usize);
            let real = real + r;
            let audible = self.drift.pull(frames as usize, out) || audible || a;
            // `real` counts media frames fed; the chunk reports output frames (ratio = out /
            // in), at most the chunk's own.
            let real_out = ((real as f64 * d.ratio).round() as i64).clamp(0, frames);
            (real_out, audible)
        } else {
            let r = self.produce(frames, out);
            self.drift.remember(out);
            r
        };

        let chunk = Chunk::at(
            self.origin.unwrap_or(0),
            self.chunk,
            self.rate,
            real,
            audible,
        );
        self.chunk += 1;
        self.stats.pushed += 1;
        self.stats.played_frames += real as u64;
        chunk
    }

    /// Whether a late misfit proves (with pace) that the timeline moved. In adaptive mode only
    /// when it is later than raising the delay would absorb (more than max(100 ms, the
    /// target)): a run of packets late by less is the jitter growing, which the target follows
    /// (their relative delays raise it and the delay is raised at once), not a move.
    fn moved_by(&self, m: &Misfit) -> bool {
        if self.drift.mode() != DriftMode::Adaptive {
            return true;
        }
        let ts = unwrap(self.last_ts, 32, u64::from(m.header.ts));
        let pos = self.anchor_pos + (ts - self.anchor_ts);
        let target = self.drift.stats(self.latency_ns).target_delay_ns as i64;
        let absorbed = ns_to_frames(target.max(100 * NS_PER_MS), self.rate);
        self.play_head() - pos > absorbed
    }

    /// Moves the timeline `frames` later from the next packet on (adaptive mode raising the
    /// delay at once): the gap this opens before it is concealed like a loss and merged into
    /// it, and counted as inserted, not as concealment.
    fn shift_timeline(&mut self, frames: i64) {
        // Never past the delay bound: queued audio must still play within `max_queue_ns` (the
        // packets were accepted within it; moving them later could push the newest beyond).
        let room = ns_to_frames(self.max_queue_ns() as i64, self.rate) - self.queued_frames();
        let frames = frames.min(room);
        if frames <= 0 {
            return;
        }
        self.anchor_pos += frames;
        for p in self.store.values_mut() {
            p.pos += frames;
        }
        self.insert_left += frames as u64;
        self.drift.shifted(frames);
    }

    /// Decodes (or conceals) media into the resampler until it can produce `frames`.
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

    /// Appends the next `frames` media frames (from `media_head`) to `out`: decoded packets,
    /// concealment where they are missing. Returns the real frames and whether the rest was
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
            if !self.pending.is_empty() {
                let pend = (self.pending.len() / ch) as i64;
                if self.pending_pos + pend <= pos {
                    self.pending.clear();
                } else if self.pending_pos <= pos {
                    let skip = (pos - self.pending_pos) as usize * ch;
                    self.pending.drain(..skip);
                    self.pending_pos = pos;
                    let take = ((self.pending.len() / ch) as i64).min(frames - i);
                    let dst = &mut out[i as usize * ch..(i + take) as usize * ch];
                    for (d, s) in dst.iter_mut().zip(self.pending.drain(..take as usize * ch)) {
                        *d = s;
                    }
                    self.pending_pos += take;
                    match self.pending_kind {
                        Kind::Real => {
                            if !self.decoder.has_plc() {
                                self.concealer.real(dst);
                            }
                            real += take;
                            self.real_end = pos + take;
                        }
                        Kind::Concealed | Kind::Dtx => {
                            let silent = dst.iter().all(|&x| x == 0.0);
                            audible |= !silent;
                            self.count_filled(take, silent);
                        }
                    }
                    i += take;
                    continue;
                }
            }
            self.fill(pos, frames - i, &mut out[i as usize * ch..]);
            if self.pending.is_empty() {
                // Nothing could be produced (cannot happen with a valid decoder): silence.
                self.stats.silent_frames += (frames - i) as u64;
                break;
            }
        }
        self.media_head += frames;
        (real, audible)
    }

    fn count_filled(&mut self, frames: i64, silent: bool) {
        // The first frames filled after a shift are the inserted ones (counted by the drift
        // stats), not a pause or a loss.
        let inserted = (frames as u64).min(self.insert_left);
        self.insert_left -= inserted;
        let frames = frames as u64 - inserted;
        if self.pending_kind == Kind::Dtx {
            self.rtp.dtx_frames += frames;
        } else if silent {
            self.stats.silent_frames += frames;
            self.stretch_silent += frames;
        } else {
            self.stats.concealed_frames += frames;
            self.stretch_concealed += frames;
        }
    }

    /// Puts the audio for `pos` onwards (at least one frame, at most `want` frames unless the
    /// codec decodes more) into `pending`. `rest` is the caller's output from `pos` on, used as
    /// scratch room by the PCM concealer.
    fn fill(&mut self, pos: i64, want: i64, rest: &mut [f32]) {
        let ch = self.channels;
        // Packets whose audio is entirely behind the play head can no longer play.
        while let Some((&seq, p)) = self.store.first_key_value() {
            if p.pos + p.frames <= pos || self.played_seq.is_some_and(|s| seq <= s) {
                self.pop_stored();
                self.stats.late += 1;
                self.ledger.late += 1;
            } else {
                break;
            }
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let next = self.store.first_key_value().map(|(&s, p)| (s, p.pos));
        match next {
            Some((seq, ppos)) if ppos <= pos + self.snap => {
                let Some((_, p)) = self.pop_stored() else {
                    return;
                };
                match self.played_seq {
                    Some(last) if seq > last + 1 => {
                        // A sequence jump counts no more packets than fit in the time gap.
                        let by_time = (ppos - self.played_end).max(0) / p.frames.max(1);
                        self.stats.lost += (seq - last - 1).min(by_time.max(1)) as u64;
                    }
                    Some(last) if seq == last + 1 && !self.stretch_is_loss => {
                        // Nothing was missing: what was filled since the last packet was a
                        // sender pause (DTX), not a loss.
                        self.stats.concealed_frames -= self.stretch_concealed;
                        self.stats.silent_frames -= self.stretch_silent;
                        self.rtp.dtx_frames += self.stretch_concealed + self.stretch_silent;
                    }
                    _ => {}
                }
                self.stretch_concealed = 0;
                self.stretch_silent = 0;
                self.stretch_is_loss = false;
                self.played_seq = Some(seq);
                self.played_end = ppos + p.frames;
                self.last_frames = p.frames;
                let n = self.decoder.decode(&p.payload, &mut scratch) as i64;
                // A packet within `snap` of where the audio so far ends continues it: its
                // timestamp is a few samples off (payloaders stamp capture times), and playing
                // it seamlessly beats cutting or padding the decoder's continuous output.
                let at = if (ppos - pos).abs() <= self.snap {
                    pos
                } else {
                    ppos
                };
                if n == 0 {
                    // libopus refused a packet that parsed: conceal its duration instead.
                    self.ledger.invalid += 1;
                    self.decoder.conceal(p.frames as usize, &mut scratch);
                    self.set_pending(at, Kind::Concealed, &scratch);
                } else {
                    self.ledger.played += 1;
                    self.set_pending(at, Kind::Real, &scratch);
                }
            }
            _ => {
                let gap_end = next.map_or(i64::MAX, |(_, p)| p);
                let gap = (gap_end - pos).min(want).max(1);
                let dtx = match (next, self.played_seq) {
                    (Some((seq, _)), Some(last)) => seq == last + 1 && !self.stretch_is_loss,
                    _ => false,
                };
                if self.played_seq.is_none() {
                    // Before the first packet: silence.
                    scratch.resize(gap as usize * ch, 0.0);
                    self.set_pending(pos, Kind::Concealed, &scratch);
                } else if self.decoder.has_plc() {
                    // The codec conceals a packet's worth at a time, as if that packet had been
                    // lost, not in 10 ms slices: its PLC attenuates per call, so slicing would
                    // fade faster than the loss. What is not needed yet stays pending.
                    let gap = (gap_end - pos).min(self.last_frames.max(1)).max(1);
                    self.codec_fill(pos, gap, gap_end, next.map(|n| n.0), dtx, &mut scratch);
                } else {
                    if !dtx && let Some((_, ppos)) = next {
                        // The audio after the hole is queued: the concealer blends into it
                        // (two-sided concealment) instead of only extrapolating.
                        self.tell_future(ppos, (ppos - pos).max(0) as usize);
                    }
                    let n = (gap as usize).min(rest.len() / ch);
                    let dst = &mut rest[..n * ch];
                    self.concealer.conceal(dst);
                    scratch.extend_from_slice(dst);
                    let kind = if dtx { Kind::Dtx } else { Kind::Concealed };
                    self.set_pending(pos, kind, &scratch);
                }
            }
        }
        self.scratch = scratch;
    }

    /// Opus: fills the gap starting at `pos` from FEC or DRED when they cover it, else PLC.
    fn codec_fill(
        &mut self,
        pos: i64,
        gap: i64,
        gap_end: i64,
        next_seq: Option<i64>,
        dtx: bool,
        scratch: &mut Vec<f32>,
    ) {
        let whole_gap = gap_end - pos;
        let mut gap = gap;
        if let (Some(seq), Some(last)) = (next_seq, self.played_seq)
            && !dtx
            && whole_gap > 0
        {
            let next = &self.store[&seq].payload;
            let next_frames = self.store[&seq].frames;
            let step = self.decoder.conceal_step() as i64;
            if seq >= last + 2 && self.decoder.has_fec(next) {
                // The next packet carries LBRR for the one just before it: once the gap is down
                // to that packet's slot (timestamps taken from capture times may be a few
                // samples off), decode it from the FEC; until then conceal up to that slot.
                if (whole_gap - next_frames).abs() < step {
                    let next = next.clone();
                    let n = self
                        .decoder
                        .decode_fec(&next, next_frames as usize, scratch);
                    if n > 0 {
                        self.rtp.fec_recovered += 1;
                        self.set_pending(pos, Kind::Real, scratch);
                        // The missing packets are accounted for here, and what was concealed
                        // before this was loss, not a pause.
                        self.stats.lost += (seq - last - 1) as u64;
                        self.played_seq = Some(seq - 1);
                        self.stretch_concealed = 0;
                        self.stretch_silent = 0;
                        return;
                    }
                } else if whole_gap > next_frames {
                    gap = gap.min(whole_gap - next_frames);
                }
            }
            // Deep redundancy: rebuild the gap from its start while the DRED reaches it.
            let next = next.clone();
            let (reach, end) = self.decoder.dred_frames(&next);
            let step = gap.min(whole_gap - end as i64);
            if reach as i64 >= whole_gap && step > 0 {
                let n = self
                    .decoder
                    .decode_dred(whole_gap as usize, step as usize, scratch);
                if n > 0 {
                    if n as i64 >= whole_gap - end as i64 {
                        self.rtp.dred_recovered += (seq - last - 1) as u64;
                    }
                    self.set_pending(pos, Kind::Real, scratch);
                    return;
                }
            }
        }
        let n = self.decoder.conceal(gap as usize, scratch);
        self.rtp.codec_plc_frames += n as u64;
        let kind = if dtx { Kind::Dtx } else { Kind::Concealed };
        // PLC rounds up to 2.5 ms: never let it run into the next packet's slot.
        let keep = (n as i64).min(whole_gap.max(1)) as usize * self.channels;
        scratch.truncate(keep);
        self.set_pending(pos, kind, scratch);
    }

    /// Decodes up to 70 ms of the queued audio from media position `from` on (the first
    /// stored packet and the ones contiguous with it; PCM payloads decode without state) and
    /// tells the PCM concealer it follows the hole `frames_until` frames from now.
    fn tell_future(&mut self, from: i64, frames_until: usize) {
        let want = (i64::from(self.rate) * 70 / 1000) as usize * self.channels;
        let mut future = std::mem::take(&mut self.future);
        future.clear();
        let mut end = from;
        for p in self.store.values() {
            if future.len() >= want || p.pos != end {
                break;
            }
            let before = future.len();
            self.decoder.decode(&p.payload, &mut future);
            if future.len() == before {
                break;
            }
            end = p.pos + p.frames;
        }
        future.truncate(want);
        if !future.is_empty() {
            self.concealer.set_future(frames_until, &future);
        }
        self.future = future;
    }

    fn set_pending(&mut self, pos: i64, kind: Kind, samples: &[f32]) {
        self.pending.clear();
        self.pending.extend(samples.iter().copied());
        self.pending_pos = pos;
        self.pending_kind = kind;
    }
}

/// RFC 3550 Appendix A.1-style unwrapping of a `bits`-wide counter `value` to the extended value
/// closest to `reference`.
fn unwrap(reference: i64, bits: u32, value: u64) -> i64 {
    let modulus = 1i64 << bits;
    let half = modulus / 2;
    let diff = (value as i64 - reference).rem_euclid(modulus);
    let diff = if diff >= half { diff - modulus } else { diff };
    reference + diff
}

fn clamp_ns(ns: u64) -> i64 {
    ns.min(i64::MAX as u64 / 4) as i64
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod limits_tests;

#[cfg(test)]
mod drift_tests;

#[cfg(test)]
mod adaptive_tests;

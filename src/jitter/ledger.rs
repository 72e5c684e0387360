// SPDX-License-Identifier: MPL-2.0
//! Packet accounting and memory caps, shared by both playouts.
//!
//! # Ledger
//! Every packet (RTP) or datagram (raw) handed to a playout's `push` is, at every moment, in
//! exactly one bucket of the [`Ledger`]: still queued, held (an RTP misfit that may yet start a
//! new timeline), played, or dropped for one named reason. [`Ledger::unaccounted`] is
//! `received` minus all the buckets and is always 0; the unit tests drive random traffic and
//! check it after every push and every pop. The ledger survives `reset()` (what was queued or
//! held then goes to `flushed`), so it counts for the life of the playout; the older
//! [`Stats`](super::Stats) counters keep their own meaning and are cleared by `reset()`.
//!
//! # Limits
//! [`Limits`] caps what a playout holds (queued and held packets together), on top of its
//! time-span bounds (see `max_queue_ns`). The overflow policy, the same for both playouts:
//! * a single packet whose payload is larger than `max_bytes` is dropped on arrival
//!   (`overflow`), without touching what is queued;
//! * otherwise the packet is taken, and while the caps are exceeded, held RTP misfits go first
//!   (they are not on the output timeline and are the cheapest target for a hostile sender),
//!   then the oldest queued packets: a live stream keeps its newest audio, and the delay stays
//!   bounded by the time-span bounds. What was dropped is concealed when its slot comes.
//!
//! Shrinking the limits (`set_limits`) applies at once, by the same policy.

/// Where the packets handed to a playout's `push` are. Plain counters; `queued` and `held` are
/// the current contents, everything else only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Packets handed to `push`, whatever became of them.
    pub received: u64,
    /// Waiting in the queue for their slot.
    pub queued: u64,
    /// Held as misfits (RTP only): a possible sender restart, not on the timeline yet.
    pub held: u64,
    /// Their audio reached the output (at least in part). An Opus packet whose in-band FEC
    /// rebuilt the one before it counts once, when it plays itself.
    pub played: u64,
    /// Dropped: the same sequence number was queued or recently received (RTP).
    pub duplicate: u64,
    /// Dropped: their slot had already been played (on arrival, when it came due, or behind
    /// the play head of a new timeline).
    pub late: u64,
    /// Dropped by the memory caps ([`Limits`]) or the time-span bounds of the queue.
    pub overflow: u64,
    /// Dropped: held misfits whose run did not end in a resync (strays, hostile packets).
    /// A late-only misfit dropped that way counts as `late` instead.
    pub misfit: u64,
    /// Refused: a payload the codec does not take (at push, or at decode), or a raw datagram
    /// with no whole frame.
    pub invalid: u64,
    /// Dropped: queued on the old timeline when a resync re-anchored the stream.
    pub resync: u64,
    /// Dropped: queued or held when the stream was reset (flush, stop, caps change).
    pub flushed: u64,
}

impl Ledger {
    /// Packets dropped, all reasons together.
    pub fn dropped(&self) -> u64 {
        self.duplicate
            + self.late
            + self.overflow
            + self.misfit
            + self.invalid
            + self.resync
            + self.flushed
    }

    /// Packets in some bucket: queued, held, played or dropped.
    pub fn accounted(&self) -> u64 {
        self.queued + self.held + self.played + self.dropped()
    }

    /// `received` minus every bucket: 0 unless a packet went missing (positive) or was counted
    /// twice (negative).
    pub fn unaccounted(&self) -> i64 {
        self.received as i64 - self.accounted() as i64
    }

    /// Adds `other`'s counters (to total the ledgers of successive streams).
    pub fn add(&mut self, other: &Ledger) {
        self.received += other.received;
        self.queued += other.queued;
        self.held += other.held;
        self.played += other.played;
        self.duplicate += other.duplicate;
        self.late += other.late;
        self.overflow += other.overflow;
        self.misfit += other.misfit;
        self.invalid += other.invalid;
        self.resync += other.resync;
        self.flushed += other.flushed;
    }

    /// Counts one packet leaving the queue or the held run for `bucket`.
    pub(crate) fn count(&mut self, bucket: Bucket) {
        match bucket {
            Bucket::Played => self.played += 1,
            Bucket::Late => self.late += 1,
            Bucket::Overflow => self.overflow += 1,
            Bucket::Misfit => self.misfit += 1,
            Bucket::Resync => self.resync += 1,
            Bucket::Flushed => self.flushed += 1,
        }
    }
}

/// Where a packet went when it left the queue or the held run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    Played,
    Late,
    Overflow,
    Misfit,
    Resync,
    Flushed,
}

/// Default [`Limits::max_packets`]: 4096 packets, 41 s of 10 ms packets, 10 s of 2.5 ms ones.
pub const DEFAULT_MAX_PACKETS: usize = 4096;
/// Default [`Limits::max_bytes`]: 8 MiB. At the default latency (40 ms) the time-span bound
/// (about 2.1 s) binds first for every supported format: raw 96 kHz 8-channel audio, held as
/// 32-bit floats, is 6.6 MB for 2.1 s. Raise it for long latencies at high rates.
pub const DEFAULT_MAX_BYTES: usize = 8 << 20;

/// Hard caps on what a playout holds: queued and held packets together, counted in packets and
/// in bytes. Bytes are those kept per packet: the RTP payload as received, or a raw datagram's
/// samples as 32-bit floats (4 bytes per sample); per-packet bookkeeping (about 100 bytes) is
/// bounded by `max_packets`. Values below 1 are taken as 1: a cap is never unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_packets: usize,
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_packets: DEFAULT_MAX_PACKETS,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl Limits {
    pub fn new(max_packets: usize, max_bytes: usize) -> Self {
        Self {
            max_packets: max_packets.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Limits with both caps at least 1.
    pub(crate) fn sane(self) -> Self {
        Self::new(self.max_packets, self.max_bytes)
    }

    /// `packets` and `bytes` exceed a cap.
    pub(crate) fn exceeded(&self, packets: usize, bytes: usize) -> bool {
        packets > self.max_packets || bytes > self.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unaccounted_is_received_minus_every_bucket() {
        let mut l = Ledger {
            received: 12,
            ..Ledger::default()
        };
        assert_eq!(l.unaccounted(), 12);
        for b in [
            Bucket::Played,
            Bucket::Late,
            Bucket::Overflow,
            Bucket::Misfit,
            Bucket::Resync,
            Bucket::Flushed,
        ] {
            l.count(b);
        }
        l.duplicate += 1;
        l.invalid += 1;
        l.queued = 3;
        l.held = 1;
        assert_eq!(l.dropped(), 7);
        assert_eq!(l.unaccounted(), 0);
        l.count(Bucket::Late);
        assert_eq!(l.unaccounted(), -1);
        let mut total = Ledger::default();
        total.add(&l);
        total.add(&l);
        assert_eq!(total.received, 24);
        assert_eq!(total.unaccounted(), -2);
    }

    #[test]
    fn limits_are_never_zero() {
        assert_eq!(Limits::new(0, 0), Limits::new(1, 1));
        assert!(Limits::new(2, 10).exceeded(3, 0));
        assert!(Limits::new(2, 10).exceeded(0, 11));
        assert!(!Limits::new(2, 10).exceeded(2, 10));
    }
}

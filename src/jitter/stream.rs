// SPDX-License-Identifier: MPL-2.0
//! One input stream of the jitter buffer, raw PCM or RTP: the element drives both through the
//! same calls.

use super::compensate::{DriftMode, DriftStats};
use super::ledger::{Ledger, Limits};
use super::playout::{Chunk, Playout, Stats};
use super::rtp_playout::{RtpPlayout, RtpStats};

#[derive(Debug)]
pub enum Stream {
    Raw(Box<Playout>),
    Rtp(Box<RtpPlayout>),
}

macro_rules! both {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            Stream::Raw($p) => $e,
            Stream::Rtp($p) => $e,
        }
    };
}

impl Stream {
    pub fn rate(&self) -> u32 {
        both!(self, p => p.rate())
    }

    pub fn channels(&self) -> usize {
        both!(self, p => p.channels())
    }

    pub fn stats(&self) -> &Stats {
        both!(self, p => p.stats())
    }

    /// RTP counters (None for raw input).
    pub fn rtp_stats(&self) -> Option<&RtpStats> {
        match self {
            Stream::Raw(_) => None,
            Stream::Rtp(p) => Some(p.rtp_stats()),
        }
    }

    /// Drift loop state.
    pub fn drift_stats(&self) -> Option<DriftStats> {
        Some(both!(self, p => p.drift_stats()))
    }

    /// Sets the drift compensation.
    pub fn set_drift_mode(&mut self, mode: DriftMode) {
        both!(self, p => p.set_drift_mode(mode))
    }

    /// Adaptive mode's range of the target delay (ns), from the next stream or resync.
    pub fn set_latency_range(&mut self, min_ns: u64, max_ns: u64) {
        both!(self, p => p.set_latency_range(min_ns, max_ns))
    }

    pub fn reset(&mut self) {
        both!(self, p => p.reset())
    }

    /// Where every packet pushed so far is; kept across [`Stream::reset`].
    pub fn ledger(&self) -> Ledger {
        both!(self, p => p.ledger())
    }

    pub fn limits(&self) -> Limits {
        both!(self, p => p.limits())
    }

    /// Sets the memory caps; shrinking applies at once.
    pub fn set_limits(&mut self, limits: Limits) {
        both!(self, p => p.set_limits(limits))
    }

    /// Packets held (queued, and RTP misfits held).
    pub fn queued_packets(&self) -> usize {
        both!(self, p => p.queued_packets())
    }

    /// Bytes held for those packets (RTP payloads; raw samples as 32-bit floats).
    pub fn queued_bytes(&self) -> usize {
        both!(self, p => p.queued_bytes())
    }

    pub fn set_latency(&mut self, latency_ns: u64) {
        both!(self, p => p.set_latency(latency_ns))
    }

    pub fn set_upstream_latency(&mut self, upstream_ns: u64) {
        both!(self, p => p.set_upstream_latency(upstream_ns))
    }

    /// How the PCM concealer fills what is missing (Opus conceals by itself).
    pub fn set_plc_method(&mut self, method: crate::conceal::PlcMethod) {
        both!(self, p => p.set_plc_method(method))
    }

    pub fn start(&mut self, now_ns: u64) {
        both!(self, p => p.start(now_ns))
    }

    pub fn started(&self) -> bool {
        both!(self, p => p.started())
    }

    pub fn is_drained(&self) -> bool {
        both!(self, p => p.is_drained())
    }

    pub fn queued_frames(&self) -> i64 {
        both!(self, p => p.queued_frames())
    }

    pub fn next_deadline(&self) -> Option<u64> {
        both!(self, p => p.next_deadline())
    }

    pub fn pop(&mut self, out: &mut Vec<f32>) -> Chunk {
        both!(self, p => p.pop(out))
    }
}

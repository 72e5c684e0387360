// SPDX-License-Identifier: MPL-2.0
//! Pure decisions about received datagrams: which ones carry audio, which receive errors the
//! source survives, and the counters behind the `stats` property. No sockets, no GStreamer.

use std::io;

/// Why a datagram was dropped instead of pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Zero bytes (BAD-INPUT A1).
    Empty,
    /// Longer than `mtu` (A4, A5): never passed on truncated.
    Oversized,
    /// Not a whole number of frames for the configured caps (A3).
    NotWholeFrames,
}

impl Malformed {
    #[cfg(test)]
    pub const ALL: [Malformed; 3] = [
        Malformed::Empty,
        Malformed::Oversized,
        Malformed::NotWholeFrames,
    ];

    /// Index into per-class tables (rate limiters).
    pub const fn index(self) -> usize {
        match self {
            Malformed::Empty => 0,
            Malformed::Oversized => 1,
            Malformed::NotWholeFrames => 2,
        }
    }

    pub const fn describe(self) -> &'static str {
        match self {
            Malformed::Empty => "empty datagram",
            Malformed::Oversized => "datagram larger than mtu",
            Malformed::NotWholeFrames => "datagram not a whole number of audio frames",
        }
    }
}

/// What to do with a datagram of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Push it: it holds `frames` whole audio frames.
    Audio { frames: u64 },
    /// Drop and count it.
    Drop(Malformed),
}

/// Classifies a datagram of `len` bytes (its true length, as reported with `MSG_TRUNC`) for a
/// source accepting at most `mtu` bytes of `bytes_per_frame`-byte frames.
pub fn classify(len: usize, mtu: usize, bytes_per_frame: usize) -> Verdict {
    if len == 0 {
        return Verdict::Drop(Malformed::Empty);
    }
    if len > mtu {
        return Verdict::Drop(Malformed::Oversized);
    }
    match (
        len.checked_rem(bytes_per_frame),
        len.checked_div(bytes_per_frame),
    ) {
        (Some(0), Some(frames)) => Verdict::Audio {
            frames: frames as u64,
        },
        // A remainder, or no frame size at all (never the case with valid caps).
        _ => Verdict::Drop(Malformed::NotWholeFrames),
    }
}

/// How the receive loop treats a socket error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Nothing to read yet: wait for readiness.
    WouldBlock,
    /// Survivable (interrupted, ICMP-reported errors, transient memory shortage): count, retry.
    Transient,
    /// Anything else: one element error and stop.
    Fatal,
}

/// `ENOBUFS` (no buffer space: a transient shortage), which `std::io::ErrorKind` does not name.
fn is_enobufs(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ENOBUFS)
}

pub fn classify_error(err: &io::Error) -> ErrorClass {
    use io::ErrorKind::*;
    match err.kind() {
        WouldBlock => ErrorClass::WouldBlock,
        // EINTR; ICMP port/host/network unreachable reported on the socket (e.g. ECONNREFUSED);
        // ENOMEM and ENOBUFS under memory pressure.
        Interrupted | ConnectionRefused | ConnectionReset | HostUnreachable
        | NetworkUnreachable | OutOfMemory => ErrorClass::Transient,
        _ if is_enobufs(err) => ErrorClass::Transient,
        _ => ErrorClass::Fatal,
    }
}

/// Counters behind the `stats` property.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams pushed as buffers.
    pub packets: u64,
    /// Bytes pushed.
    pub bytes: u64,
    pub dropped_empty: u64,
    pub dropped_oversized: u64,
    pub dropped_not_whole_frames: u64,
    /// Transient socket errors survived.
    pub receive_errors: u64,
    /// Timeout messages posted.
    pub timeouts: u64,
}

impl Stats {
    pub fn record_audio(&mut self, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
    }

    pub fn record_drop(&mut self, why: Malformed) {
        match why {
            Malformed::Empty => self.dropped_empty += 1,
            Malformed::Oversized => self.dropped_oversized += 1,
            Malformed::NotWholeFrames => self.dropped_not_whole_frames += 1,
        }
    }

    /// All datagrams dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_empty + self.dropped_oversized + self.dropped_not_whole_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_frames_up_to_mtu_are_audio() {
        // S16LE mono, 10 ms at 8 kHz.
        assert_eq!(classify(160, 32768, 2), Verdict::Audio { frames: 80 });
        // F32LE stereo: 8 bytes per frame.
        assert_eq!(classify(3840, 32768, 8), Verdict::Audio { frames: 480 });
        // Exactly mtu is accepted, one frame is accepted.
        assert_eq!(classify(400, 400, 2), Verdict::Audio { frames: 200 });
        assert_eq!(classify(4, 400, 4), Verdict::Audio { frames: 1 });
    }

    #[test]
    fn empty_datagram_is_dropped() {
        assert_eq!(classify(0, 32768, 2), Verdict::Drop(Malformed::Empty));
    }

    #[test]
    fn one_byte_over_mtu_is_oversized() {
        assert_eq!(classify(401, 400, 1), Verdict::Drop(Malformed::Oversized));
        // Oversized wins over not-whole-frames: the length is untrustworthy anyway.
        assert_eq!(classify(1001, 400, 2), Verdict::Drop(Malformed::Oversized));
        assert_eq!(
            classify(65_507, 32_768, 2),
            Verdict::Drop(Malformed::Oversized)
        );
    }

    #[test]
    fn partial_frames_are_dropped() {
        // 1 and 3 bytes of S16 mono; 5 bytes of S16 stereo; 6 bytes of F32 stereo.
        for (len, bpf) in [(1, 2), (3, 2), (5, 4), (6, 8), (161, 2)] {
            assert_eq!(
                classify(len, 32768, bpf),
                Verdict::Drop(Malformed::NotWholeFrames),
                "{len} bytes, bpf {bpf}"
            );
        }
    }

    #[test]
    fn zero_frame_size_never_divides_by_zero() {
        assert_eq!(
            classify(8, 100, 0),
            Verdict::Drop(Malformed::NotWholeFrames)
        );
    }

    #[test]
    fn receive_errors_are_classified() {
        use io::ErrorKind as K;
        assert_eq!(
            classify_error(&io::Error::from(K::WouldBlock)),
            ErrorClass::WouldBlock
        );
        for kind in [
            K::Interrupted,
            K::ConnectionRefused,
            K::HostUnreachable,
            K::NetworkUnreachable,
            K::OutOfMemory,
        ] {
            assert_eq!(
                classify_error(&io::Error::from(kind)),
                ErrorClass::Transient,
                "{kind:?}"
            );
        }
        assert_eq!(
            classify_error(&io::Error::from_raw_os_error(libc::ENOBUFS)),
            ErrorClass::Transient,
            "ENOBUFS"
        );
        for kind in [K::InvalidInput, K::PermissionDenied, K::Other] {
            assert_eq!(
                classify_error(&io::Error::from(kind)),
                ErrorClass::Fatal,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn dropped_is_the_sum_of_the_classes() {
        let mut s = Stats::default();
        s.record_audio(160);
        s.record_audio(320);
        for m in Malformed::ALL {
            s.record_drop(m);
        }
        s.record_drop(Malformed::NotWholeFrames);
        assert_eq!(s.packets, 2);
        assert_eq!(s.bytes, 480);
        assert_eq!(
            (
                s.dropped_empty,
                s.dropped_oversized,
                s.dropped_not_whole_frames
            ),
            (1, 1, 2)
        );
        assert_eq!(s.dropped(), 4);
    }
}

// SPDX-License-Identifier: MPL-2.0
//! The logic of the cargo-fuzz targets in `fuzz/`, kept in the library so that the targets are
//! one-liners and `tests/fuzz_corpus.rs` replays the saved corpus through the very same code.
//! Not part of the plugin's API.
//!
//! Every target takes arbitrary bytes and panics (with the violated invariant) on a bug:
//! * parser targets: [`raw_datagram`], [`rtp_header`], [`pcm_payload`], [`opus_packet`];
//! * stateful targets: [`rtp_playout`] and [`raw_playout`] read the bytes as a script of
//!   operations (packets in order, lost, duplicated, reordered, jumps, restarts, garbage; time
//!   moved by fuzzed amounts; chunks popped at fuzzed periods and in bursts; resets and latency
//!   changes) over the jitter buffer core, and check every output chunk and the queue bound
//!   after every operation.
//!
//! [`seeds`] builds small meaningful inputs for each target (valid packets of every codec, real
//! Opus packets, realistic scripts); `examples/fuzz_seeds.rs` writes them to `fuzz/corpus/`.
//! See `docs/fuzzing.md`.

use std::sync::OnceLock;

use crate::codec::{Encoding, MAX_PACKET_MS, PayloadDecoder, PayloadError, g711, opus};
use crate::conceal::PlcMethod;
use crate::jitter::compensate::DriftMode;
use crate::jitter::playout::max_queue_ns;
use crate::jitter::rtp::{self, Header, Malformed};
use crate::jitter::{Chunk, Limits, Playout, RtpPlayout, Stream};
use crate::pcm::SampleFormat;
use crate::rawudpaudiosrc::datagram::{self, Verdict};

/// Names of the targets, as in `fuzz/fuzz_targets/` and `fuzz/corpus/`.
pub const TARGETS: [&str; 6] = [
    "raw_datagram",
    "rtp_header",
    "pcm_payload",
    "opus_packet",
    "rtp_playout",
    "raw_playout",
];

/// Runs target `name` on `data` (the replay test and the seed generator use this).
pub fn run(name: &str, data: &[u8]) {
    match name {
        "raw_datagram" => raw_datagram(data),
        "rtp_header" => rtp_header(data),
        "pcm_payload" => pcm_payload(data),
        "opus_packet" => opus_packet(data),
        "rtp_playout" => rtp_playout(data),
        "raw_playout" => raw_playout(data),
        _ => panic!("no fuzz target {name}"),
    }
}

/// Reads fuzz input as numbers; past the end everything reads as zero.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    /// One of `items`.
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.u8()) % items.len()]
    }
}

const FORMATS: [SampleFormat; 3] = [
    SampleFormat::S16LE,
    SampleFormat::S16BE,
    SampleFormat::F32LE,
];

// ---------------------------------------------------------------------------------------------
// Parser targets

/// `rawudpaudiosrc`'s datagram classification and the raw path's PCM conversion, for every
/// sample format and 1 to 8 channels. Input: a 2-byte mtu, then the datagram.
pub fn raw_datagram(data: &[u8]) {
    let mut input = Bytes(data);
    let mtu = usize::from(input.u16());
    let payload = input.take(usize::MAX);
    let len = payload.len();
    let mut out = Vec::new();
    let mut back = Vec::new();
    for format in FORMATS {
        let sb = format.sample_bytes();
        for channels in 1..=8 {
            let bpf = sb * channels;
            let verdict = datagram::classify(len, mtu, bpf);
            // Independent statement of the rules: empty, then oversized, then whole frames.
            let want = if len == 0 {
                Verdict::Drop(datagram::Malformed::Empty)
            } else if len > mtu {
                Verdict::Drop(datagram::Malformed::Oversized)
            } else if !len.is_multiple_of(bpf) {
                Verdict::Drop(datagram::Malformed::NotWholeFrames)
            } else {
                Verdict::Audio {
                    frames: (len / bpf) as u64,
                }
            };
            assert_eq!(verdict, want, "len {len} mtu {mtu} bpf {bpf}");
            if let Verdict::Audio { frames } = verdict {
                assert!(frames > 0 && frames as usize * bpf == len && len <= mtu);
            }
        }
        // The conversion (the same for every channel count: it is per sample).
        out.clear();
        format.decode(payload, &mut out);
        assert_eq!(
            out.len(),
            len / sb,
            "{format:?}: one sample per whole sample"
        );
        for (i, (&x, b)) in out.iter().zip(payload.chunks_exact(sb)).enumerate() {
            assert!(x.is_finite(), "{format:?} sample {i} not finite");
            match format {
                SampleFormat::S16LE | SampleFormat::S16BE => {
                    assert!((-1.0..1.0).contains(&x), "{format:?} sample {i}: {x}");
                }
                SampleFormat::F32LE => {
                    let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    let want = if v.is_finite() { v } else { 0.0 };
                    assert_eq!(x.to_bits(), want.to_bits(), "F32 sample {i} changed");
                }
            }
        }
        // Whole samples convert back bit for bit (S16 is exact; finite F32 is copied).
        back.clear();
        back.resize(out.len() * sb, 0);
        format.encode(&out, &mut back);
        for (i, (a, b)) in back
            .chunks_exact(sb)
            .zip(payload.chunks_exact(sb))
            .enumerate()
        {
            if format == SampleFormat::F32LE
                && !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()
            {
                assert_eq!(a, &[0; 4], "non-finite F32 sample {i} becomes 0");
            } else {
                assert_eq!(a, b, "{format:?} sample {i} does not round-trip");
            }
        }
    }
}

/// What [`rtp::parse`] must decide, derived from RFC 3550 §5.1 directly: the result, or the
/// payload's range in the packet and the header fields.
fn rtp_reference(d: &[u8]) -> Result<(usize, usize, Header), Malformed> {
    if d.len() < 12 {
        return Err(Malformed::TooShort);
    }
    if d[0] >> 6 != 2 {
        return Err(Malformed::BadVersion);
    }
    let csrc_end = 12 + 4 * usize::from(d[0] & 0x0f);
    if d.len() < csrc_end {
        return Err(Malformed::CsrcOverrun);
    }
    let mut header_end = csrc_end;
    if d[0] & 0x10 != 0 {
        if d.len() < csrc_end + 4 {
            return Err(Malformed::ExtensionOverrun);
        }
        let words = usize::from(u16::from_be_bytes([d[csrc_end + 2], d[csrc_end + 3]]));
        header_end = csrc_end + 4 + 4 * words;
        if d.len() < header_end {
            return Err(Malformed::ExtensionOverrun);
        }
    }
    let mut end = d.len();
    if d[0] & 0x20 != 0 {
        // The last byte counts the padding, itself included; it lies after the header.
        let pad = usize::from(d[d.len() - 1]);
        if d.len() == header_end || pad == 0 || pad > d.len() - header_end {
            return Err(Malformed::BadPadding);
        }
        end -= pad;
    }
    if (200..=204).contains(&d[1]) {
        return Err(Malformed::Rtcp);
    }
    if end == header_end {
        return Err(Malformed::EmptyPayload);
    }
    Ok((
        header_end,
        end,
        Header {
            seq: u16::from_be_bytes([d[2], d[3]]),
            ts: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
            ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
            pt: d[1] & 0x7f,
            marker: d[1] & 0x80 != 0,
        },
    ))
}

/// [`rtp::parse`] against an independent reading of RFC 3550: same verdict and reason; on
/// success the same header fields, and a payload that is the exact subslice between the header
/// (CSRCs and extension included) and the padding.
pub fn rtp_header(data: &[u8]) {
    let got = rtp::parse(data);
    let want = rtp_reference(data);
    match (got, want) {
        (Ok((h, payload)), Ok((start, end, wh))) => {
            assert_eq!(h, wh, "header fields");
            assert!(!payload.is_empty());
            let offset = payload.as_ptr() as usize - data.as_ptr() as usize;
            assert_eq!(
                (offset, offset + payload.len()),
                (start, end),
                "payload range"
            );
            assert!(end <= data.len());
        }
        (Err(e), Err(w)) => assert_eq!(e, w, "reason"),
        (got, want) => panic!(
            "parse says {:?}, RFC 3550 says {:?}",
            got.map(|(h, p)| (h, p.len())),
            want
        ),
    }
}

const PCM_RATES: [u32; 6] = [8000, 11025, 16000, 22050, 44100, 48000];

/// L16, PCMU and PCMA payloads for 1 and 2 channels at several rates: the frame count follows
/// the payload's length, decoding appends exactly `frames * channels` samples in [-1, 1], and L16
/// decodes exactly.
pub fn pcm_payload(data: &[u8]) {
    let mut out = Vec::new();
    for encoding in [Encoding::L16, Encoding::Pcmu, Encoding::Pcma] {
        for channels in 1..=2 {
            for rate in PCM_RATES {
                let mut d = PayloadDecoder::new(encoding, rate, channels, 0)
                    .expect("PCM decoders always exist");
                let bpf = if encoding == Encoding::L16 {
                    2 * channels
                } else {
                    channels
                };
                let want = if data.is_empty() {
                    Err(PayloadError::Empty)
                } else if !data.len().is_multiple_of(bpf) {
                    Err(PayloadError::NotWholeFrames)
                } else if (data.len() / bpf) as u64 * 1000
                    > u64::from(rate) * u64::from(MAX_PACKET_MS)
                {
                    Err(PayloadError::TooLong)
                } else {
                    Ok(data.len() / bpf)
                };
                let got = d.frames(data);
                assert_eq!(got, want, "{encoding:?} {channels} ch {rate} Hz");
                let Ok(frames) = got else { continue };
                out.clear();
                out.push(7.0); // decode appends
                assert_eq!(d.decode(data, &mut out), frames);
                assert_eq!(out.len(), 1 + frames * channels);
                for (i, &x) in out[1..].iter().enumerate() {
                    assert!(
                        x.is_finite() && (-1.0..=1.0).contains(&x),
                        "{encoding:?} sample {i}: {x}"
                    );
                    let v = match encoding {
                        Encoding::L16 => i16::from_be_bytes([data[2 * i], data[2 * i + 1]]),
                        Encoding::Pcmu => g711::ulaw_to_linear(data[i]),
                        _ => g711::alaw_to_linear(data[i]),
                    };
                    assert_eq!(x, f32::from(v) / 32768.0, "{encoding:?} sample {i}");
                }
            }
        }
    }
    // G.711 is symmetric: flipping the sign bit negates the value.
    for &b in data.iter().take(16) {
        assert_eq!(g711::ulaw_to_linear(b), -g711::ulaw_to_linear(b ^ 0x80));
        assert_eq!(g711::alaw_to_linear(b), -g711::alaw_to_linear(b ^ 0x80));
    }
}

/// Largest magnitude out of the Opus decoder, whatever the packet (libopus's float decoder does
/// not clip by itself; the wrapper does).
const OPUS_BOUND: f32 = 1.0;

#[track_caller]
fn check_samples(s: &[f32], bound: f64, what: &str) {
    for (i, &x) in s.iter().enumerate() {
        assert!(
            x.is_finite() && f64::from(x).abs() <= bound,
            "{what}: sample {i} is {x} (bound {bound})"
        );
    }
}

/// The Opus decoder on fuzzed packets. Input: a config byte (channels, complexity), then
/// operations: decode a packet, recover from a packet's FEC or DRED, conceal, reset. Never
/// panics inside libopus or the wrapper; a packet whose framing is valid has 2.5 ms-multiple
/// length of at most 120 ms and decodes to exactly that many finite samples per channel.
pub fn opus_packet(data: &[u8]) {
    let mut input = Bytes(data);
    let cfg = input.u8();
    let channels = 1 + usize::from(cfg & 1);
    let complexity = [0, 5, 10, 3][usize::from(cfg >> 1) & 3];
    let mut d = PayloadDecoder::new(Encoding::Opus, opus::RATE, channels, complexity)
        .expect("an Opus decoder");
    let mut out = Vec::new();
    let mut ops = 0;
    while !input.is_empty() && ops < 64 {
        ops += 1;
        let op = input.u8();
        let len = usize::from(input.u16() & 0x1fff);
        let packet = input.take(len);
        out.clear();
        match op % 6 {
            0 | 1 => {
                let frames = d.frames(packet);
                let has_fec = d.has_fec(packet);
                if let Ok(f) = frames {
                    assert!(
                        f > 0 && f <= opus::MAX_PACKET_FRAMES && f.is_multiple_of(opus::MIN_FRAME),
                        "{f} frames"
                    );
                    assert_eq!(
                        Ok(f),
                        opus::packet_frames(packet).map_err(|_| PayloadError::InvalidOpus)
                    );
                    let n = d.decode(packet, &mut out);
                    assert_eq!(n, f, "a packet with valid framing decodes whole");
                    assert_eq!(out.len(), n * channels);
                    check_samples(&out, f64::from(OPUS_BOUND), "decode");
                } else {
                    assert!(!has_fec || !packet.is_empty());
                }
            }
            2 => {
                let frames = usize::from(input.u16());
                let want =
                    (frames / opus::MIN_FRAME * opus::MIN_FRAME).min(opus::MAX_PACKET_FRAMES);
                let valid = d.frames(packet).is_ok();
                let n = d.decode_fec(packet, frames, &mut out);
                assert!(
                    n == want || (n == 0 && !valid) || want == 0 && n == 0,
                    "fec {n} of {want}"
                );
                assert_eq!(out.len(), n * channels);
                check_samples(&out, f64::from(OPUS_BOUND), "decode_fec");
            }
            3 => {
                let (reach, end) = d.dred_frames(packet);
                assert!(end <= reach && reach <= 48_000, "dred ({reach}, {end})");
                let offset = usize::from(input.u16());
                let frames = usize::from(input.u16());
                let n = d.decode_dred(offset, frames, &mut out);
                let want =
                    (frames / opus::MIN_FRAME * opus::MIN_FRAME).min(opus::MAX_PACKET_FRAMES);
                assert!(n <= want, "dred {n} of {want}");
                assert_eq!(out.len(), n * channels);
                check_samples(&out, f64::from(OPUS_BOUND), "decode_dred");
            }
            4 => {
                let frames = usize::from(input.u16() % 8192);
                let n = d.conceal(frames, &mut out);
                let want = (frames.div_ceil(opus::MIN_FRAME) * opus::MIN_FRAME)
                    .min(opus::MAX_PACKET_FRAMES);
                assert!(n == want || want == 0 && n == 0, "plc {n} of {want}");
                assert_eq!(out.len(), n * channels);
                check_samples(&out, f64::from(OPUS_BOUND), "conceal");
            }
            _ => d.reset(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stateful targets

/// Operations of the playout scripts (the op byte modulo [`OPS`]).
mod op {
    /// The sender's next packet, valid, in order.
    pub const PUSH: u8 = 0;
    /// The next packet is lost.
    pub const LOSE: u8 = 1;
    /// The last packet again.
    pub const DUP: u8 = 2;
    /// Hold the next packet back (reordering); `RELEASE` sends the oldest held one.
    pub const HOLD: u8 = 3;
    pub const RELEASE: u8 = 4;
    /// Sequence number jump (u16); raw: that many packets (mod 64) lost.
    pub const SEQ_JUMP: u8 = 5;
    /// Timestamp jump (u32); raw: the sender's sample counter jumps (a waveform discontinuity).
    pub const TS_JUMP: u8 = 6;
    /// A new SSRC (u32); raw: the sender restarts (sample counter from 0).
    pub const SSRC: u8 = 7;
    /// The next packet with a garbage payload (u8 length, bytes).
    pub const GARBAGE: u8 = 8;
    /// A packet with every header field fuzzed (seq u16, ts u32, ssrc u32, marker u8) and a
    /// payload that is valid (even selector) or garbage (u8 length, bytes); raw: a datagram of
    /// fuzzed bytes.
    pub const FUZZED: u8 = 9;
    /// Time moves by u8 * 100 us.
    pub const ADVANCE: u8 = 10;
    /// Time moves by u16 ms (up to 65 s), or by an hour if it reads 0xffff.
    pub const ADVANCE_LONG: u8 = 11;
    /// Pop every chunk due (at most [`super::MAX_POPS_PER_OP`]), as the element's clocked task.
    pub const RUN: u8 = 12;
    /// Time moves by a period of 9, 10, 11, 10 or 0 ms (u8 selector), then `RUN`.
    pub const TICK: u8 = 13;
    /// Pop u8 % 32 chunks whatever the clock (a consumer catching up, an EOS drain).
    pub const BURST: u8 = 14;
    pub const RESET: u8 = 15;
    /// Latency u8 * 2 ms.
    pub const LATENCY: u8 = 16;
    /// The next packet has the marker bit.
    pub const MARKER: u8 = 17;
    /// Concealment method (u8).
    pub const PLC: u8 = 18;
    /// Start the output now, before data.
    pub const START: u8 = 19;
    /// Upstream latency u8 ms.
    pub const UPSTREAM: u8 = 20;
    /// Packet duration of the base stream (u8 selector).
    pub const SIZE: u8 = 21;
    /// Memory caps: packets u16 (0xffff: the default), bytes u32 (0xffffffff: the default),
    /// both modulo a range small enough to bite.
    pub const LIMITS: u8 = 22;
    /// Clock drift mode (u8 % 3: off, fixed, adaptive) and adaptive mode's top of range (u8 *
    /// 4 ms, from the next stream or resync; bottom 10 ms).
    pub const MODE: u8 = 23;
    pub const OPS: u8 = 24;
}

/// Pops per operation, and per input, at most, so that an hour-long time jump stays fast to fuzz
/// (the output then stays behind its clock, like a blocked downstream).
const MAX_POPS_PER_OP: usize = 100;
const MAX_POPS: u64 = 500;
/// Operations per input at most.
const MAX_OPS: usize = 4000;
const NS_PER_MS: u64 = 1_000_000;
const NS_PER_SEC: u64 = 1_000_000_000;
/// What a playout may hold beyond its delay bound while its output is behind.
const BACKLOG_NS: u64 = 2 * NS_PER_SEC;

fn ns_to_frames(ns: u64, rate: u32) -> u64 {
    (u128::from(ns) * u128::from(rate) / u128::from(NS_PER_SEC)) as u64
}

/// First frame of chunk `k`, computed independently of the jitter module.
fn chunk_frame(k: u64, rate: u32) -> u64 {
    (u128::from(k) * u128::from(rate) / 100) as u64
}

/// Drives a [`Stream`] and checks it.
struct Driver {
    stream: Stream,
    rate: u32,
    channels: usize,
    now: u64,
    latency: u64,
    upstream: u64,
    /// Largest latency and upstream latency since the last reset (audio queued under a larger
    /// latency may stay queued after it shrinks).
    max_latency: u64,
    /// Adaptive mode's delay bound (0 in the other modes).
    adaptive_max: u64,
    max_upstream: u64,
    /// Longest packet accepted (frames).
    max_packet: u64,
    /// Largest input magnitude since the reset (`base_peak` at least).
    peak: f64,
    base_peak: f64,
    /// Chunks popped since the reset, and where the next one starts.
    chunks: u64,
    next_pts: Option<u64>,
    out: Vec<f32>,
    /// Packets handed to the playout's `push` (the ledger's `received`, which survives resets).
    pushed: u64,
    /// Totals over the run, resets included (for the seed checks).
    total_chunks: u64,
    frames: u64,
    real_frames: u64,
}

impl Driver {
    fn new(stream: Stream, latency: u64) -> Self {
        Self {
            rate: stream.rate(),
            channels: stream.channels(),
            stream,
            now: 0,
            latency,
            upstream: 0,
            max_latency: latency,
            adaptive_max: 0,
            max_upstream: 0,
            max_packet: 0,
            peak: 1.0,
            base_peak: 1.0,
            chunks: 0,
            next_pts: None,
            out: Vec::new(),
            pushed: 0,
            total_chunks: 0,
            frames: 0,
            real_frames: 0,
        }
    }

    fn reset(&mut self) {
        self.stream.reset();
        self.chunks = 0;
        self.next_pts = None;
        self.max_latency = self.latency.max(self.adaptive_max);
        self.max_upstream = self.upstream;
        self.max_packet = 0;
        self.peak = self.base_peak;
    }

    fn set_latency(&mut self, ns: u64) {
        self.stream.set_latency(ns);
        self.latency = ns;
        self.max_latency = self.max_latency.max(ns);
    }

    fn set_upstream(&mut self, ns: u64) {
        self.stream.set_upstream_latency(ns);
        self.upstream = ns;
        self.max_upstream = self.max_upstream.max(ns);
    }

    fn pop(&mut self) {
        if !self.stream.started() || self.total_chunks >= MAX_POPS {
            return; // the element pops only once the output started
        }
        let c = self.stream.pop(&mut self.out);
        self.check_chunk(c);
    }

    /// Pops every chunk due by now, as the clocked task does.
    fn run(&mut self) {
        for _ in 0..MAX_POPS_PER_OP {
            match self.stream.next_deadline() {
                Some(d) if d <= self.now => self.pop(),
                _ => break,
            }
        }
    }

    fn check_chunk(&mut self, c: Chunk) {
        let k = self.chunks;
        let (rate, ch) = (self.rate, self.channels);
        let start = chunk_frame(k, rate);
        let frames = chunk_frame(k + 1, rate) - start;
        assert_eq!(c.frames as u64, frames, "chunk {k} at {rate} Hz");
        assert!(
            frames == u64::from(rate / 100) || frames == u64::from(rate / 100) + 1,
            "10 ms is {} frames",
            rate / 100
        );
        assert_eq!(c.offset, start, "chunk {k}: offsets contiguous");
        assert_eq!(self.out.len(), c.frames * ch, "chunk {k}: samples");
        assert!(c.real_frames <= c.frames);
        assert_eq!(c.discont, k == 0, "chunk {k}: discont only on the first");
        if let Some(pts) = self.next_pts {
            assert_eq!(c.pts, pts, "chunk {k}: PTS contiguous");
        }
        let dur = |f: u64| (u128::from(f) * u128::from(NS_PER_SEC) / u128::from(rate)) as u64;
        // The origin (PTS of frame 0) is a whole number of ns: durations follow from the offsets.
        let origin = c.pts - dur(start);
        assert_eq!(
            c.pts + c.duration,
            origin + dur(start + frames),
            "chunk {k}: duration"
        );
        self.next_pts = Some(c.pts + c.duration);
        let deadline = self.stream.next_deadline().expect("started");
        assert_eq!(
            deadline,
            c.pts + c.duration + self.upstream.min(u64::MAX / 4) + self.latency.min(u64::MAX / 4),
            "chunk {k}: the next chunk is due at its PTS plus the latencies"
        );
        check_samples(&self.out, 2.0 * self.peak, "chunk");
        if c.silent {
            assert!(c.real_frames == 0 && self.out.iter().all(|&x| x == 0.0));
        }
        self.chunks += 1;
        self.total_chunks += 1;
        self.frames += frames;
        self.real_frames += c.real_frames as u64;
    }

    /// The queue stays within the delay bound plus the backlog (plus what the output owes its
    /// clock, and one packet and one chunk of rounding); and the newest audio queued plays no
    /// later after now than the delay bound allows (plus how far the output runs ahead of its
    /// clock).
    fn check_queue(&self) {
        // Every packet pushed is in exactly one bucket of the ledger, and the memory caps hold.
        let ledger = self.stream.ledger();
        assert_eq!(ledger.unaccounted(), 0, "{ledger:?}");
        assert_eq!(ledger.received, self.pushed, "{ledger:?}");
        let (packets, bytes) = (self.stream.queued_packets(), self.stream.queued_bytes());
        assert_eq!(
            (ledger.queued + ledger.held) as usize,
            packets,
            "{ledger:?}"
        );
        let limits = self.stream.limits();
        assert!(
            packets <= limits.max_packets && bytes <= limits.max_bytes,
            "{packets} packets, {bytes} bytes held, limits {limits:?}"
        );
        let queued = self.stream.queued_frames();
        assert!(queued >= 0);
        let queued = queued as u64;
        let Some(deadline) = self.stream.next_deadline() else {
            assert_eq!(queued, 0, "queued before the output started");
            return;
        };
        let behind = self.now.saturating_sub(deadline);
        let max_queue = max_queue_ns(self.max_latency);
        let bound_ns = max_queue + BACKLOG_NS + self.max_upstream + behind;
        let slack = self.max_packet + u64::from(self.rate / 100) + 1;
        let bound = ns_to_frames(bound_ns, self.rate) + slack;
        assert!(
            queued <= bound,
            "{queued} frames queued, bound {bound} (latency <= {} ms, {} ms behind)",
            self.max_latency / NS_PER_MS,
            behind / NS_PER_MS
        );
        if queued == 0 {
            return;
        }
        // When the last queued frame plays, relative to now (the clock runs `upstream` ahead of
        // the next chunk's own time).
        let dur = |f: u64| (u128::from(f) * u128::from(NS_PER_SEC) / u128::from(self.rate)) as i128;
        let next = i128::from(deadline) - i128::from(self.upstream.min(u64::MAX / 4));
        let end_plays = next - i128::from(self.now) + dur(queued);
        let ahead =
            (next - i128::from(self.latency.min(u64::MAX / 4)) - i128::from(self.now)).max(0);
        let limit = i128::from(max_queue) + ahead + dur(slack) + i128::from(NS_PER_MS);
        assert!(
            end_plays <= limit,
            "the newest queued audio plays {} ms from now, limit {} ms (latency <= {} ms, output \
             {} ms ahead of its clock)",
            end_plays / 1_000_000,
            limit / 1_000_000,
            self.max_latency / NS_PER_MS,
            ahead / 1_000_000
        );
    }

    /// The operations common to both playouts; returns false for the others.
    fn common(&mut self, op: u8, input: &mut Bytes) -> bool {
        match op {
            op::ADVANCE => self.now += u64::from(input.u8()) * 100_000,
            op::ADVANCE_LONG => {
                let ms = input.u16();
                self.now += if ms == u16::MAX {
                    3600 * NS_PER_SEC
                } else {
                    u64::from(ms) * NS_PER_MS
                };
            }
            op::RUN => self.run(),
            op::TICK => {
                self.now += [9, 10, 11, 10, 0][usize::from(input.u8()) % 5] * NS_PER_MS;
                self.run();
            }
            op::BURST => {
                for _ in 0..input.u8() % 32 {
                    self.pop();
                }
            }
            op::RESET => self.reset(),
            op::LATENCY => self.set_latency(u64::from(input.u8()) * 2 * NS_PER_MS),
            op::PLC => {
                let m = input.pick(&PlcMethod::ALL);
                self.stream.set_plc_method(m);
            }
            op::START => self.stream.start(self.now),
            op::MODE => {
                let mode = [DriftMode::Off, DriftMode::Fixed, DriftMode::Adaptive]
                    [usize::from(input.u8() % 3)];
                let max = u64::from(input.u8()) * 4 * NS_PER_MS;
                self.stream.set_drift_mode(mode);
                self.stream.set_latency_range(10 * NS_PER_MS, max);
                // In adaptive mode the queue is sized for the range (the default one, 500 ms,
                // until the next restart of the loop).
                self.adaptive_max = if mode == DriftMode::Adaptive {
                    max.max(500 * NS_PER_MS)
                } else {
                    0
                };
                self.max_latency = self.max_latency.max(self.adaptive_max);
            }
            op::UPSTREAM => self.set_upstream(u64::from(input.u8()) * NS_PER_MS),
            op::LIMITS => {
                let (p, b) = (input.u16(), input.u32());
                let d = Limits::default();
                self.stream.set_limits(Limits::new(
                    if p == u16::MAX {
                        d.max_packets
                    } else {
                        usize::from(p % 512)
                    },
                    if b == u32::MAX {
                        d.max_bytes
                    } else {
                        b as usize % (1 << 20)
                    },
                ));
            }
            _ => return false,
        }
        true
    }
}

/// Summary of a script run (the seed checks use it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub chunks: u64,
    /// Frames popped, and those of them from received audio.
    pub frames: u64,
    pub real_frames: u64,
}

/// The reference signal of the simulated senders: a two-tone mix at about half scale.
fn tone(n: u64, rate: u32, channel: usize) -> f32 {
    let t = n as f64 / f64::from(rate);
    let f = 2.0 * std::f64::consts::PI * t;
    (0.3 * (f * 330.0 * (1 + channel) as f64).sin() + 0.2 * (f * 97.0).sin()) as f32
}

/// The RTP senders' PCM signal: [`tone`] in talkspurts (300 ms, then 200 ms 54 dB lower), so
/// adaptive mode's cuts in quiet stretches run too.
fn talk(n: u64, rate: u32, channel: usize) -> f32 {
    let in_pause = n % (u64::from(rate) / 2) >= u64::from(rate) * 3 / 10;
    let gain = if in_pause { 0.002 } else { 1.0 };
    gain * tone(n, rate, channel)
}

fn s16(x: f32) -> i16 {
    (x * 32767.0).round() as i16
}

/// G.711 byte closest to a linear value (the library only decodes G.711).
fn g711_encode(v: i16, alaw: bool) -> u8 {
    static TABLES: OnceLock<[Vec<(i16, u8)>; 2]> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        let mut u: Vec<(i16, u8)> = (0..=255u8).map(|b| (g711::ulaw_to_linear(b), b)).collect();
        let mut a: Vec<(i16, u8)> = (0..=255u8).map(|b| (g711::alaw_to_linear(b), b)).collect();
        u.sort_unstable();
        a.sort_unstable();
        [u, a]
    });
    let t = &tables[usize::from(alaw)];
    let i = t.partition_point(|&(x, _)| x < v).min(t.len() - 1);
    let j = i.saturating_sub(1);
    if (t[i].0 as i32 - v as i32).abs() < (t[j].0 as i32 - v as i32).abs() {
        t[i].1
    } else {
        t[j].1
    }
}

/// Real Opus packets from libopus's encoder: 20 ms mono with in-band FEC, 10 ms stereo with
/// FEC, 20 ms mono with DRED (deep redundancy). Built once per process.
pub fn opus_packets() -> &'static [Vec<Vec<u8>>; 3] {
    static PACKETS: OnceLock<[Vec<Vec<u8>>; 3]> = OnceLock::new();
    PACKETS.get_or_init(|| {
        [
            encode_opus(1, 20, 24, false),
            encode_opus(2, 10, 24, false),
            encode_opus(1, 20, 24, true),
        ]
    })
}

/// `count` packets of `frame_ms` ms of the reference tone. With `dred` the encoder adds deep
/// redundancy (a request the `opus` crate does not wrap: this is the FFI boundary), else in-band
/// FEC.
fn encode_opus(channels: usize, frame_ms: usize, count: usize, dred: bool) -> Vec<Vec<u8>> {
    use opusic_sys as ffi;
    let mut err = 0;
    // SAFETY: constructor; checked below.
    let enc = unsafe {
        ffi::opus_encoder_create(48000, channels as i32, ffi::OPUS_APPLICATION_VOIP, &mut err)
    };
    assert!(!enc.is_null() && err == 0, "opus encoder: {err}");
    // SAFETY: a valid encoder and documented int requests.
    unsafe {
        ffi::opus_encoder_ctl(enc, ffi::OPUS_SET_BITRATE_REQUEST, 32000i32);
        ffi::opus_encoder_ctl(enc, ffi::OPUS_SET_PACKET_LOSS_PERC_REQUEST, 20i32);
        if dred {
            ffi::opus_encoder_ctl(enc, ffi::OPUS_SET_DRED_DURATION_REQUEST, 50i32);
        } else {
            ffi::opus_encoder_ctl(enc, ffi::OPUS_SET_INBAND_FEC_REQUEST, 1i32);
        }
    }
    let frames = 48 * frame_ms;
    let mut packets = Vec::with_capacity(count);
    for k in 0..count {
        let pcm: Vec<f32> = (0..frames * channels)
            .map(|i| tone((k * frames + i / channels) as u64, 48000, i % channels))
            .collect();
        let mut buf = vec![0u8; 1500];
        // SAFETY: `frames` frames of `channels` floats in, a 1500-byte buffer out, as declared.
        let n = unsafe {
            ffi::opus_encode_float(
                enc,
                pcm.as_ptr(),
                frames as i32,
                buf.as_mut_ptr(),
                buf.len() as i32,
            )
        };
        assert!(n > 0, "opus encode: {n}");
        buf.truncate(n as usize);
        packets.push(buf);
    }
    // SAFETY: created above, destroyed once.
    unsafe { ffi::opus_encoder_destroy(enc) };
    packets
}

/// Packet durations (ms) of the simulated PCM senders.
const PACKET_MS: [u32; 6] = [10, 20, 5, 30, 40, 60];
const LATENCIES_MS: [u64; 4] = [40, 20, 100, 0];

/// RTP sender state.
struct RtpSender {
    encoding: Encoding,
    rate: u32,
    channels: usize,
    seq: u16,
    ts: u32,
    ssrc: u32,
    marker: bool,
    /// Frames per packet (PCM) and the sample index of the signal.
    frames: u32,
    sample: u64,
    /// Opus: which packet table, and the next packet in it.
    table: usize,
    index: usize,
}

impl RtpSender {
    /// The next packet in order (header and valid payload); advances the sender.
    fn next(&mut self) -> (Header, Vec<u8>) {
        let header = Header {
            seq: self.seq,
            ts: self.ts,
            ssrc: self.ssrc,
            pt: 96,
            marker: std::mem::take(&mut self.marker),
        };
        let payload = self.payload();
        self.seq = self.seq.wrapping_add(1);
        (header, payload)
    }

    fn payload(&mut self) -> Vec<u8> {
        let ch = self.channels;
        let n = self.frames as u64;
        let payload = match self.encoding {
            Encoding::Opus => {
                let t = &opus_packets()[self.table];
                let p = t[self.index % t.len()].clone();
                self.index += 1;
                let f = opus::packet_frames(&p).expect("encoder output is valid") as u32;
                self.ts = self.ts.wrapping_add(f);
                self.sample += u64::from(f);
                return p;
            }
            Encoding::L16 => (0..n * ch as u64)
                .flat_map(|i| {
                    s16(talk(
                        self.sample + i / ch as u64,
                        self.rate,
                        i as usize % ch,
                    ))
                    .to_be_bytes()
                })
                .collect(),
            e => (0..n * ch as u64)
                .map(|i| {
                    let v = s16(talk(
                        self.sample + i / ch as u64,
                        self.rate,
                        i as usize % ch,
                    ));
                    g711_encode(v, e == Encoding::Pcma)
                })
                .collect(),
        };
        self.ts = self.ts.wrapping_add(self.frames);
        self.sample += n;
        payload
    }
}

/// The RTP jitter buffer core ([`Stream::Rtp`]) driven by a script. Config bytes: encoding,
/// channels, rate, latency, Opus packet table and complexity; then operations (see [`op`]).
pub fn rtp_playout(data: &[u8]) {
    rtp_playout_summary(data);
}

pub fn rtp_playout_summary(data: &[u8]) -> Summary {
    let mut input = Bytes(data);
    let cfg = input.u8();
    let encoding = [
        Encoding::L16,
        Encoding::Pcmu,
        Encoding::Pcma,
        Encoding::Opus,
    ][usize::from(cfg & 3)];
    let channels = 1 + usize::from((cfg >> 2) & 1);
    let rate = if encoding == Encoding::Opus {
        opus::RATE
    } else {
        PCM_RATES[usize::from(cfg >> 3) % PCM_RATES.len()]
    };
    let cfg2 = input.u8();
    let latency = LATENCIES_MS[usize::from(cfg2 & 3)] * NS_PER_MS;
    let table = usize::from((cfg2 >> 2) & 3) % 3;
    // The deep PLC (complexity 5+) is slow: only some inputs get it.
    let complexity = if cfg2 >> 4 == 15 { 10 } else { 0 };
    let decoder = PayloadDecoder::new(encoding, rate, channels, complexity).expect("decoder");
    let checker = PayloadDecoder::new(encoding, rate, channels, 0).expect("decoder");
    let playout = RtpPlayout::new(decoder, latency);
    let mut dr = Driver::new(Stream::Rtp(Box::new(playout)), latency);
    // PCM payloads decode within [-1, 1]; libopus within OPUS_BOUND (the opus_packet target).
    if encoding == Encoding::Opus {
        dr.base_peak = f64::from(OPUS_BOUND);
        dr.peak = dr.base_peak;
    }
    let mut tx = RtpSender {
        encoding,
        rate,
        channels,
        seq: input.u16(),
        ts: input.u32(),
        ssrc: 0x5eed_0001,
        marker: false,
        frames: rate * PACKET_MS[0] / 1000,
        sample: 0,
        table,
        index: 0,
    };
    let mut last: Option<(Header, Vec<u8>)> = None;
    let mut held: Vec<(Header, Vec<u8>)> = Vec::new();
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        let op = input.u8() % op::OPS;
        let mut send = None;
        match op {
            op::PUSH => send = Some(tx.next()),
            op::LOSE => drop(tx.next()),
            op::DUP => send = last.clone(),
            op::HOLD => {
                if held.len() < 64 {
                    held.push(tx.next());
                }
            }
            op::RELEASE => {
                if !held.is_empty() {
                    send = Some(held.remove(0));
                }
            }
            op::SEQ_JUMP => tx.seq = tx.seq.wrapping_add(input.u16()),
            op::TS_JUMP => tx.ts = tx.ts.wrapping_add(input.u32()),
            op::SSRC => tx.ssrc = input.u32(),
            op::GARBAGE => {
                let (h, _) = tx.next();
                let n = usize::from(input.u8());
                send = Some((h, input.take(n).to_vec()));
            }
            op::FUZZED => {
                let header = Header {
                    seq: input.u16(),
                    ts: input.u32(),
                    ssrc: input.u32(),
                    pt: 96,
                    marker: input.u8() & 1 == 1,
                };
                let sel = input.u8();
                let payload = if sel & 1 == 0 {
                    tx.payload()
                } else {
                    input.take(usize::from(sel)).to_vec()
                };
                send = Some((header, payload));
            }
            op::MARKER => tx.marker = true,
            op::SIZE => {
                if encoding != Encoding::Opus {
                    tx.frames = rate * input.pick(&PACKET_MS) / 1000;
                }
            }
            _ => {
                dr.common(op, &mut input);
            }
        }
        if let Some((h, payload)) = send {
            if let Ok(f) = checker.frames(&payload) {
                dr.max_packet = dr.max_packet.max(f as u64);
            }
            let Stream::Rtp(p) = &mut dr.stream else {
                unreachable!()
            };
            p.push(dr.now, h, &payload);
            dr.pushed += 1;
            last = Some((h, payload));
        }
        dr.check_queue();
    }
    Summary {
        chunks: dr.total_chunks,
        frames: dr.frames,
        real_frames: dr.real_frames,
    }
}

/// The raw jitter buffer core ([`Stream::Raw`]) driven by a script of datagrams converted as the
/// raw input path does (whole frames of S16LE, S16BE or F32LE). Config bytes: format, channels,
/// rate, latency; then operations (see [`op`]).
pub fn raw_playout(data: &[u8]) {
    raw_playout_summary(data);
}

pub fn raw_playout_summary(data: &[u8]) -> Summary {
    let mut input = Bytes(data);
    let cfg = input.u8();
    let format = FORMATS[usize::from(cfg & 3) % 3];
    let channels = [1, 2, 1, 6][usize::from(cfg >> 2) & 3];
    let rate = PCM_RATES[usize::from(cfg >> 4) % PCM_RATES.len()];
    let latency = LATENCIES_MS[usize::from(input.u8() & 3)] * NS_PER_MS;
    let playout = Playout::new(rate, channels, latency);
    let mut dr = Driver::new(Stream::Raw(Box::new(playout)), latency);
    let bpf = format.sample_bytes() * channels;
    let mut frames = rate * PACKET_MS[0] / 1000;
    let mut sample = 0u64;
    let mut phase = 0usize;
    // The sender's next datagram (bytes on the wire).
    let next = |sample: &mut u64, frames: u32, phase: usize| -> Vec<u8> {
        let mut bytes = vec![0u8; frames as usize * bpf];
        let s: Vec<f32> = (0..frames as usize * channels)
            .map(|i| {
                tone(
                    *sample + (i / channels) as u64,
                    rate,
                    (i + phase) % channels,
                )
            })
            .collect();
        format.encode(&s, &mut bytes);
        *sample += u64::from(frames);
        bytes
    };
    let mut last: Option<Vec<u8>> = None;
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut samples = Vec::new();
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        let op = input.u8() % op::OPS;
        let mut send = None;
        match op {
            op::PUSH | op::MARKER => send = Some(next(&mut sample, frames, phase)),
            op::LOSE => sample += u64::from(frames),
            op::DUP => send = last.clone(),
            op::HOLD => {
                if held.len() < 64 {
                    held.push(next(&mut sample, frames, phase));
                }
            }
            op::RELEASE => {
                if !held.is_empty() {
                    send = Some(held.remove(0));
                }
            }
            op::SEQ_JUMP => sample += u64::from(frames) * u64::from(input.u8() % 64),
            op::TS_JUMP => sample = sample.wrapping_add(u64::from(input.u32())),
            op::SSRC => {
                sample = 0;
                phase += 1;
            }
            op::GARBAGE | op::FUZZED => {
                let n = if op == op::GARBAGE {
                    frames as usize * bpf
                } else {
                    usize::from(input.u16() & 0x3fff)
                };
                send = Some(input.take(n).to_vec());
            }
            op::SIZE => frames = (rate * input.pick(&PACKET_MS) / 1000).max(1),
            _ => {
                dr.common(op, &mut input);
            }
        }
        if let Some(bytes) = send {
            // The raw input path: whole frames only, then the format conversion.
            if !bytes.is_empty() && bytes.len().is_multiple_of(bpf) {
                samples.clear();
                format.decode(&bytes, &mut samples);
                assert_eq!(samples.len(), bytes.len() / bpf * channels);
                dr.max_packet = dr.max_packet.max((bytes.len() / bpf) as u64);
                for &x in &samples {
                    dr.peak = dr.peak.max(f64::from(x.abs()));
                }
                let Stream::Raw(p) = &mut dr.stream else {
                    unreachable!()
                };
                p.push(dr.now, &samples);
                dr.pushed += 1;
            }
            last = Some(bytes);
        }
        dr.check_queue();
    }
    Summary {
        chunks: dr.total_chunks,
        frames: dr.frames,
        real_frames: dr.real_frames,
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// Small meaningful inputs for every target: `(target, name, bytes)`.
pub mod seeds {
    use super::*;

    /// A script: config bytes, then operations.
    struct Script(Vec<u8>);

    impl Script {
        fn new(cfg: &[u8]) -> Self {
            Self(cfg.to_vec())
        }
        fn op(&mut self, op: u8, args: &[u8]) -> &mut Self {
            self.0.push(op);
            self.0.extend_from_slice(args);
            self
        }
        /// `n` packets of `ms` ms in real time: push, then tick that long.
        fn steady(&mut self, n: usize, ms: u64) -> &mut Self {
            for _ in 0..n {
                self.op(op::PUSH, &[]);
                for _ in 0..ms / 10 {
                    self.op(op::TICK, &[1]);
                }
            }
            self
        }
    }

    fn rtp_header_bytes(h: Header, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, h.pt | if h.marker { 0x80 } else { 0 }];
        v.extend_from_slice(&h.seq.to_be_bytes());
        v.extend_from_slice(&h.ts.to_be_bytes());
        v.extend_from_slice(&h.ssrc.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
        let mut s: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
        let opus = opus_packets();

        // raw_datagram: mtu then datagram.
        let mut d = 1400u16.to_le_bytes().to_vec();
        d.extend((0..160u16).flat_map(|i| s16(tone(u64::from(i), 8000, 0)).to_le_bytes()));
        s.push(("raw_datagram", "s16_10ms_8k".into(), d.clone()));
        let mut odd = d.clone();
        odd.push(1);
        s.push(("raw_datagram", "partial_frame".into(), odd));
        let mut big = 100u16.to_le_bytes().to_vec();
        big.extend_from_slice(&d[2..]);
        s.push(("raw_datagram", "oversized".into(), big));
        let mut f = 4096u16.to_le_bytes().to_vec();
        for v in [0.5f32, -0.25, f32::NAN, f32::INFINITY, 1e30, -1.0] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        s.push(("raw_datagram", "f32_specials".into(), f));

        // rtp_header: a packet per codec, with CSRCs, extension, padding; broken ones.
        let h = Header {
            seq: 1,
            ts: 160,
            ssrc: 0x1234_5678,
            pt: 0,
            marker: true,
        };
        s.push((
            "rtp_header",
            "pcmu".into(),
            rtp_header_bytes(h, &[0xff; 160]),
        ));
        s.push((
            "rtp_header",
            "opus".into(),
            rtp_header_bytes(Header { pt: 111, ..h }, &opus[0][3]),
        ));
        let mut ext = rtp_header_bytes(Header { pt: 96, ..h }, &[]);
        ext[0] = 0xb2; // padding, extension, 2 CSRCs
        ext.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
        ext.extend_from_slice(&[1, 2, 3, 4, 0, 0, 3]);
        s.push(("rtp_header", "csrc_ext_padding".into(), ext));
        s.push((
            "rtp_header",
            "rtcp_sr".into(),
            vec![0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3],
        ));

        // pcm_payload: payload bytes.
        s.push((
            "pcm_payload",
            "l16_stereo".into(),
            (0..320u16)
                .flat_map(|i| s16(tone(u64::from(i), 16000, 0)).to_be_bytes())
                .collect(),
        ));
        s.push((
            "pcm_payload",
            "g711_all_codes".into(),
            (0..=255u8).collect(),
        ));
        s.push(("pcm_payload", "odd".into(), vec![1, 2, 3]));

        // opus_packet: config, then (op, u16 length, packet [, args]).
        for (t, name) in [(0usize, "fec_mono"), (1, "fec_stereo"), (2, "dred")] {
            let mut v = vec![if t == 1 { 1 } else { 0 }];
            for (k, p) in opus[t].iter().take(6).enumerate() {
                let op = match k {
                    3 => 4u8, // conceal
                    4 => 2,   // FEC from the next packet
                    5 => 3,   // DRED from it
                    _ => 0,
                };
                v.push(op);
                v.extend_from_slice(&(p.len() as u16).to_le_bytes());
                v.extend_from_slice(p);
                match op {
                    2 => v.extend_from_slice(&960u16.to_le_bytes()),
                    3 => {
                        v.extend_from_slice(&1920u16.to_le_bytes());
                        v.extend_from_slice(&960u16.to_le_bytes());
                    }
                    4 => v.extend_from_slice(&960u16.to_le_bytes()),
                    _ => {}
                }
            }
            s.push(("opus_packet", name.into(), v));
        }

        // rtp_playout: config (encoding | channels << 2 | rate << 3), (latency | table << 2),
        // seq u16, ts u32; then the script.
        let rtp_cfg = |enc: u8, ch: u8, rate: u8, table: u8| {
            vec![
                enc | (ch << 2) | (rate << 3),
                table << 2,
                0xf0,
                0xff,
                1,
                2,
                3,
                4,
            ]
        };
        for (enc, name) in [(0u8, "l16"), (1, "pcmu"), (2, "pcma")] {
            let mut sc = Script::new(&rtp_cfg(enc, 0, 0, 0));
            sc.steady(20, 10);
            sc.op(op::LOSE, &[]).steady(10, 10);
            sc.op(op::HOLD, &[]).op(op::PUSH, &[]).op(op::RELEASE, &[]);
            sc.steady(5, 10).op(op::DUP, &[]).steady(5, 10);
            s.push(("rtp_playout", format!("{name}_loss_reorder"), sc.0));
        }
        let mut sc = Script::new(&rtp_cfg(0, 1, 3, 0)); // L16 stereo 22.05 kHz
        sc.op(op::SIZE, &[1]).steady(30, 20);
        sc.op(op::SSRC, &[9, 9, 9, 9]).steady(10, 20);
        sc.op(op::SEQ_JUMP, &[0, 0x80]).steady(10, 20);
        sc.op(op::ADVANCE_LONG, &[0xe8, 0x03]).steady(10, 20);
        s.push(("rtp_playout", "l16_22k_restarts".into(), sc.0));
        for (table, name) in [(0u8, "opus_fec"), (1, "opus_stereo"), (2, "opus_dred")] {
            let mut sc = Script::new(&rtp_cfg(3, u8::from(table == 1), 0, table));
            let ms = if table == 1 { 10 } else { 20 };
            sc.steady(10, ms).op(op::LOSE, &[]).steady(5, ms);
            sc.op(op::LOSE, &[]).op(op::LOSE, &[]).steady(5, ms);
            sc.op(op::TS_JUMP, &[0, 0x20, 0, 0]).steady(5, ms);
            sc.op(op::GARBAGE, &[4, 1, 2, 3, 4]).steady(3, ms);
            s.push(("rtp_playout", name.into(), sc.0));
        }
        let mut sc = Script::new(&rtp_cfg(0, 0, 0, 0));
        sc.op(op::START, &[]).op(op::TICK, &[1]).steady(10, 10);
        sc.op(op::ADVANCE, &[200]).op(op::BURST, &[20]);
        sc.op(op::LIMITS, &[64, 0, 0, 64, 0, 0]).steady(5, 10);
        sc.op(op::LATENCY, &[100]).steady(10, 10).op(op::RESET, &[]);
        sc.op(op::FUZZED, &[1, 0, 0, 1, 0, 0, 7, 7, 7, 7, 1, 0]);
        sc.steady(40, 10);
        s.push(("rtp_playout", "start_burst_latency_reset".into(), sc.0));
        // Adaptive mode from latency 120 ms on a steady stream: the target falls to the bottom
        // of the range and the pauses of the talkspurts are cut short.
        let mut sc = Script::new(&rtp_cfg(0, 0, 0, 0));
        sc.op(op::MODE, &[2, 75]).op(op::LATENCY, &[60]);
        sc.steady(400, 10);
        s.push(("rtp_playout", "adaptive_cuts_pauses".into(), sc.0));

        // raw_playout: config (format | channels << 2 | rate << 4), latency; then the script.
        for (cfg, name) in [
            (0u8, "s16le_mono_8k"),
            (0x35, "s16be_stereo_22k"),
            (0x5e, "f32_6ch_48k"),
        ] {
            let mut sc = Script::new(&[cfg, 0]);
            sc.steady(20, 10).op(op::LOSE, &[]).steady(10, 10);
            sc.op(op::HOLD, &[]).op(op::PUSH, &[]).op(op::RELEASE, &[]);
            sc.op(op::ADVANCE, &[150]).steady(10, 10);
            sc.op(op::SIZE, &[1])
                .steady(10, 20)
                .op(op::DUP, &[])
                .steady(5, 20);
            s.push(("raw_playout", name.into(), sc.0));
        }
        let mut sc = Script::new(&[0x20, 1]);
        sc.steady(10, 10)
            .op(op::ADVANCE_LONG, &[0xf4, 0x01])
            .op(op::RUN, &[]);
        sc.steady(10, 10).op(op::SSRC, &[]).steady(10, 10);
        for _ in 0..20 {
            sc.op(op::PUSH, &[]);
        }
        sc.op(op::LIMITS, &[16, 0, 0, 0, 1, 0]).steady(40, 10);
        sc.op(op::PLC, &[1]).op(op::LOSE, &[]).steady(20, 10);
        s.push(("raw_playout", "outage_restart_flood".into(), sc.0));
        s
    }
}

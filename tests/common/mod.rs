// SPDX-License-Identifier: MPL-2.0
//! Helpers shared by the `gst_check::Harness` element tests.
#![allow(dead_code)]

use std::sync::Once;

use gst::prelude::*;
use gst_check::Harness;

pub const MS: u64 = 1_000_000;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstnetaudio::plugin_register_static().expect("register plugin");
    });
}

/// A deterministic pseudo-random sequence (no dependency, same on every machine).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn s16(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

pub fn buffer(pts: u64, data: Vec<u8>) -> gst::Buffer {
    let mut b = gst::Buffer::from_mut_slice(data);
    b.get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_nseconds(pts));
    b
}

/// A harness whose output starts with the first datagram (most tests count from it).
pub fn harness(caps: &str, latency_ms: u32) -> Harness {
    harness_with(caps, latency_ms, false)
}

pub fn harness_with(caps: &str, latency_ms: u32, silence_until_data: bool) -> Harness {
    init();
    let mut h = Harness::new("plcjitterbuffer");
    h.element().unwrap().set_property("latency", latency_ms);
    h.element()
        .unwrap()
        .set_property("silence-until-data", silence_until_data);
    h.set_src_caps_str(caps);
    h.play();
    h
}

pub fn stats(h: &Harness) -> gst::Structure {
    h.element().unwrap().property::<gst::Structure>("stats")
}

pub fn stat(h: &Harness, name: &str) -> u64 {
    stats(h).get::<u64>(name).unwrap()
}

/// Asserts that output buffer `j` of a stream at `rate` starting at `origin` is exactly the 10 ms
/// chunk the frame counter says.
#[track_caller]
pub fn assert_chunk(buf: &gst::BufferRef, j: u64, rate: u64, origin: u64, bpf: usize) {
    let first = j * rate / 100;
    let next = (j + 1) * rate / 100;
    let frames = next - first;
    assert_eq!(buf.size(), frames as usize * bpf, "size of buffer {j}");
    assert_eq!(buf.offset(), first, "offset of buffer {j}");
    assert_eq!(buf.offset_end(), next, "offset_end of buffer {j}");
    let pts = origin + first * 1_000_000_000 / rate;
    let end = origin + next * 1_000_000_000 / rate;
    assert_eq!(
        buf.pts(),
        Some(gst::ClockTime::from_nseconds(pts)),
        "pts {j}"
    );
    assert_eq!(
        buf.duration(),
        Some(gst::ClockTime::from_nseconds(end - pts)),
        "duration {j}"
    );
}

/// Drives the element: before each output deadline, pushes every input that has arrived by
/// then; cranks the test clock to the deadline; pulls the buffer and hands it to `check`.
pub fn drive(
    h: &mut Harness,
    latency: u64,
    n_out: u64,
    mut inputs: impl Iterator<Item = (u64, Vec<u8>)>,
    mut check: impl FnMut(u64, &gst::Buffer),
) {
    let mut pending = inputs.next();
    let origin = pending.as_ref().expect("at least one input").0;
    for j in 0..n_out {
        let deadline = origin + latency + j * 10 * MS;
        while let Some((arrival, _)) = pending.as_ref() {
            if *arrival > deadline {
                break;
            }
            let (arrival, data) = pending.take().unwrap();
            h.push(buffer(arrival, data)).expect("push");
            pending = inputs.next();
        }
        h.crank_single_clock_wait().expect("crank");
        let out = h.pull().expect("output buffer");
        check(j, &out);
    }
}

/// A bus of the test's own set on an element (a Harness has none), so its messages can be read.
/// The element holds the bus and each message on it holds the element: on drop, the bus is
/// flushed and taken off the element, or that cycle would keep both alive for ever.
pub struct OwnBus {
    element: gst::Element,
    bus: gst::Bus,
}

impl OwnBus {
    pub fn on(element: &gst::Element) -> Self {
        let bus = gst::Bus::new();
        element.set_bus(Some(&bus));
        Self {
            element: element.clone(),
            bus,
        }
    }
}

impl std::ops::Deref for OwnBus {
    type Target = gst::Bus;
    fn deref(&self) -> &gst::Bus {
        &self.bus
    }
}

impl Drop for OwnBus {
    fn drop(&mut self) {
        self.bus.set_flushing(true);
        self.element.set_bus(None);
    }
}

/// An RTP packet (version 2, no padding, extension or CSRC).
pub fn rtp_packet(seq: u16, ts: u32, ssrc: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    rtp_types::RtpPacketBuilder::<&[u8], &[u8]>::new()
        .payload_type(pt)
        .sequence_number(seq)
        .timestamp(ts)
        .ssrc(ssrc)
        .payload(payload)
        .write_vec()
        .expect("a valid RTP packet")
}

/// What the jitter buffer's `stats` ledger sums (see the `stats` property blurb).
pub const LEDGER_BUCKETS: [&str; 10] = [
    "packets-queued",
    "packets-held",
    "packets-played",
    "dropped-duplicate",
    "dropped-late",
    "dropped-overflow",
    "dropped-misfit",
    "dropped-invalid",
    "dropped-resync",
    "dropped-flushed",
];

/// The jitter buffer's accounting reconciles: `unaccounted` is 0, every buffer was refused,
/// malformed, not whole frames or handed on, every packet handed on is in exactly one bucket,
/// `queued-packets` is what the ledger holds, and what is held now is within the most held.
#[track_caller]
pub fn assert_ledger(stats: &gst::StructureRef) {
    let get = |f: &str| {
        stats
            .get::<u64>(f)
            .unwrap_or_else(|e| panic!("stats field {f}: {e} in {stats}"))
    };
    let sum = |fields: &[&str]| fields.iter().map(|f| get(f)).sum::<u64>();
    assert_eq!(
        stats.get::<i64>("unaccounted").unwrap(),
        0,
        "unaccounted: {stats}"
    );
    assert_eq!(
        get("buffers-received"),
        sum(&[
            "buffers-refused",
            "buffers-malformed",
            "buffers-not-whole-frames",
            "packets-received",
        ]),
        "every buffer refused, malformed, not whole frames or handed on: {stats}"
    );
    assert_eq!(
        get("packets-received"),
        sum(&LEDGER_BUCKETS),
        "every packet queued, held, played or dropped for one reason: {stats}"
    );
    assert_eq!(
        get("queued-packets"),
        get("packets-queued") + get("packets-held"),
        "queued-packets is what the ledger holds: {stats}"
    );
    assert!(
        get("queued-packets") <= get("max-queued-packets")
            && get("queued-bytes") <= get("max-queued-bytes"),
        "held now within the most held: {stats}"
    );
}

/// The test signal: a 440 Hz tone at half scale, S16LE mono.
pub fn tone_s16(rate: u32, start: u64, frames: usize) -> Vec<u8> {
    (0..frames as u64)
        .flat_map(|i| {
            let n = (start + i) as f64;
            let v = 0.5 * (n * 2.0 * std::f64::consts::PI * 440.0 / rate as f64).sin();
            ((v * 32767.0).round() as i16).to_le_bytes()
        })
        .collect()
}

/// A flush as an upstream seek sends it: FLUSH_START, FLUSH_STOP, then a new TIME segment.
pub fn flush(h: &mut Harness) {
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    assert!(
        h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()))
    );
}

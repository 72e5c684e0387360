// SPDX-License-Identifier: MPL-2.0
//! Element tests of `plcjitterbuffer`'s memory caps (`max-packets`, `max-bytes`) and of its
//! accounting (every buffer in one `stats` bucket), driven by `gst_check::Harness` and its test
//! clock: floods that would grow any unbounded queue, every output buffer checked for its exact
//! 10 ms size, offset and PTS.

mod common;

use common::*;
use gst::prelude::*;
use gst_check::Harness;

const SSRC: u32 = 0x0bad_cafe;
const L16_CAPS: &str = "application/x-rtp,media=audio,encoding-name=L16,clock-rate=8000,encoding-params=(string)1,payload=96";
/// 8 kHz mono S16: 2 bytes a frame.
const BPF: usize = 2;

/// `frames` frames of L16 audio (any non-silent values).
fn l16(frames: usize) -> Vec<u8> {
    (0..frames)
        .flat_map(|n| ((n % 500 + 1) as i16).to_be_bytes())
        .collect()
}

fn capped(caps: &str, latency_ms: u32, max_packets: u32, max_bytes: u32) -> Harness {
    init();
    let mut h = Harness::new("plcjitterbuffer");
    let e = h.element().unwrap();
    e.set_property("latency", latency_ms);
    e.set_property("silence-until-data", false);
    e.set_property("max-packets", max_packets);
    e.set_property("max-bytes", max_bytes);
    h.set_src_caps_str(caps);
    h.play();
    h
}

fn get(s: &gst::Structure, name: &str) -> u64 {
    s.get::<u64>(name)
        .unwrap_or_else(|e| panic!("stats field {name}: {e}"))
}

/// The accounting identities of the `stats` structure, and the caps.
#[track_caller]
fn check_stats(h: &Harness, max_packets: u64, max_bytes: u64) -> gst::Structure {
    let s = stats(h);
    let g = |n| get(&s, n);
    assert_ledger(&s);
    assert!(g("queued-packets") <= max_packets, "{s}");
    assert!(g("queued-bytes") <= max_bytes, "{s}");
    s
}

/// Runs `n_out` output buffers: before each deadline, pushes what `inputs(j)` gives for step
/// `j` (arrival offsets in ns from the step's start, and bytes), checking the stats after
/// every push; then cranks the clock and checks the buffer is exactly the next 10 ms chunk.
fn run(
    h: &mut Harness,
    latency: u64,
    n_out: u64,
    caps: (u64, u64),
    mut inputs: impl FnMut(u64) -> Vec<(u64, Vec<u8>)>,
) {
    let origin = 0;
    for j in 0..n_out {
        let step = origin + j * 10 * MS;
        for (dt, data) in inputs(j) {
            h.push(buffer(step + dt, data)).expect("push");
            check_stats(h, caps.0, caps.1);
        }
        // Chunk k is due at latency + 10 k ms: after the inputs of step latency / 10 ms + k.
        if let Some(k) = j.checked_sub(latency / (10 * MS)) {
            h.crank_single_clock_wait().expect("crank");
            let out = h.pull().expect("output buffer");
            assert_chunk(&out, k, 8000, origin, BPF);
        }
    }
}

#[test]
fn caps_bound_an_in_order_rtp_flood() {
    // 50 packets of 10 ms every 10 ms (5 times real time), latency 500 ms: without caps the
    // queue would hold 50 packets within the latency and keep resyncing beyond it. The caps
    // leave 16 packets or 3000 bytes (18 packets of 160 bytes).
    let (latency, max_packets, max_bytes) = (500, 16u32, 3000u32);
    let mut h = capped(L16_CAPS, latency, max_packets, max_bytes);
    let mut seq = 0u16;
    run(
        &mut h,
        latency as u64 * MS,
        200,
        (max_packets.into(), max_bytes.into()),
        |_| {
            (0..50)
                .map(|i| {
                    let p = rtp_packet(seq, u32::from(seq) * 80, SSRC, 96, &l16(80));
                    seq = seq.wrapping_add(1);
                    (i * 100_000, p)
                })
                .collect()
        },
    );
    let s = check_stats(&h, max_packets.into(), max_bytes.into());
    assert_eq!(get(&s, "buffers-received"), 200 * 50);
    assert!(get(&s, "dropped-overflow") > 0, "{s}");
    assert_eq!(get(&s, "max-queued-packets"), u64::from(max_packets), "{s}");
    assert!(get(&s, "max-queued-bytes") <= u64::from(max_bytes), "{s}");
    assert!(get(&s, "packets-played") > 0, "{s}");
}

#[test]
fn caps_bound_a_random_sequence_flood() {
    // A legitimate 10 ms stream, and 30 packets of random sequence number, timestamp, SSRC and
    // size (up to 1000 bytes) every 10 ms; small caps.
    let (latency, max_packets, max_bytes) = (40, 8u32, 2000u32);
    let mut h = capped(L16_CAPS, latency, max_packets, max_bytes);
    let mut rng = Lcg(7);
    let mut next = || (rng.next_f64() * 4_294_967_296.0) as u64;
    run(
        &mut h,
        latency as u64 * MS,
        300,
        (max_packets.into(), max_bytes.into()),
        |j| {
            let mut v = vec![(0, rtp_packet(j as u16, j as u32 * 80, SSRC, 96, &l16(80)))];
            for i in 0..30 {
                let (a, b) = (next(), next());
                let ssrc = if a & 1 == 0 { SSRC } else { b as u32 };
                let frames = 1 + (b >> 40) as usize % 500;
                v.push((
                    (i + 1) * 200_000,
                    rtp_packet(a as u16, (a >> 16) as u32, ssrc, 96, &l16(frames)),
                ));
            }
            v
        },
    );
    let s = check_stats(&h, max_packets.into(), max_bytes.into());
    assert_eq!(get(&s, "buffers-received"), 300 * 31);
    // Random packets never form a run: no resync, and they are all dropped. Those with the
    // stream's SSRC and a sequence number within its window do not disturb it either: their
    // timestamps do not move with their sequence numbers. The stream plays on (all but the
    // last latency's worth).
    assert_eq!(get(&s, "resyncs"), 0, "{s}");
    assert!(get(&s, "packets-played") >= 295, "{s}");
    // (Held as possible restarts first, then dropped as misfits, or by the caps.)
    let dropped = get(&s, "dropped-misfit")
        + get(&s, "dropped-late")
        + get(&s, "dropped-overflow")
        + get(&s, "dropped-duplicate");
    assert!(dropped + get(&s, "packets-held") >= 300 * 30, "{s}");
    assert!(
        get(&s, "max-queued-packets") <= u64::from(max_packets),
        "{s}"
    );
    assert!(get(&s, "max-queued-bytes") <= u64::from(max_bytes), "{s}");
}

#[test]
fn lowering_max_packets_while_playing_shrinks_the_queue_at_once() {
    let latency = 300;
    let mut h = capped(L16_CAPS, latency, 4096, 1 << 20);
    let e = h.element().unwrap();
    let mut seq = 0u16;
    let mut packet = || {
        let p = rtp_packet(seq, u32::from(seq) * 80, SSRC, 96, &l16(80));
        seq += 1;
        p
    };
    // 300 ms of 10 ms packets queued ahead of the first output.
    for j in 0..30 {
        h.push(buffer(j * 10 * MS, packet())).unwrap();
    }
    let s = check_stats(&h, 4096, 1 << 20);
    assert_eq!(get(&s, "queued-packets"), 30, "{s}");
    e.set_property("max-packets", 5u32);
    assert_eq!(e.property::<u32>("max-packets"), 5);
    let s = check_stats(&h, 5, 1 << 20);
    assert_eq!(get(&s, "queued-packets"), 5, "{s}");
    assert_eq!(get(&s, "dropped-overflow"), 25, "{s}");
    // The byte cap too: 2 packets of 160 bytes.
    e.set_property("max-bytes", 320u32);
    let s = check_stats(&h, 5, 320);
    assert_eq!(
        (get(&s, "queued-packets"), get(&s, "queued-bytes")),
        (2, 320)
    );
    // The output goes on at its cadence: what was dropped is concealed in its slots, and the
    // stream goes on within the caps.
    for j in 0..60u64 {
        h.push(buffer((30 + j) * 10 * MS, packet())).unwrap();
        check_stats(&h, 5, 320);
        h.crank_single_clock_wait().expect("crank");
        let out = h.pull().expect("output buffer");
        assert_chunk(&out, j, 8000, 0, BPF);
    }
    // Caps below the latency's worth of packets (30 here) starve the output: every packet is
    // evicted by newer ones before its slot comes.
    let s = check_stats(&h, 5, 320);
    assert_eq!(get(&s, "packets-played"), 0, "{s}");
    // Raised again, they let the stream play.
    e.set_property("max-packets", 4096u32);
    e.set_property("max-bytes", 1u32 << 20);
    for j in 60..120u64 {
        h.push(buffer((30 + j) * 10 * MS, packet())).unwrap();
        check_stats(&h, 4096, 1 << 20);
        h.crank_single_clock_wait().expect("crank");
        let out = h.pull().expect("output buffer");
        assert_chunk(&out, j, 8000, 0, BPF);
    }
    let s = check_stats(&h, 4096, 1 << 20);
    assert!(get(&s, "packets-played") >= 25, "{s}");
    // Zero is not a setting: the smallest value is 1.
    let pspec = e.find_property("max-packets").unwrap();
    let pspec = pspec.downcast_ref::<gst::glib::ParamSpecUInt>().unwrap();
    assert_eq!((pspec.minimum(), pspec.default_value()), (1, 4096));
    let pspec = e.find_property("max-bytes").unwrap();
    let pspec = pspec.downcast_ref::<gst::glib::ParamSpecUInt>().unwrap();
    assert_eq!((pspec.minimum(), pspec.default_value()), (1, 8 << 20));
}

#[test]
fn every_buffer_is_accounted_for_before_and_inside_the_queue() {
    let mut h = capped(L16_CAPS, 100, 4096, 1 << 20);
    let good = |k: u16| rtp_packet(k, u32::from(k) * 80, SSRC, 96, &l16(80));
    for k in 0..5u16 {
        h.push(buffer(u64::from(k) * 10 * MS, good(k))).unwrap();
    }
    // Malformed: too short, wrong payload type; a duplicate; a payload the codec refuses.
    h.push(buffer(50 * MS, vec![0x80, 0, 0])).unwrap();
    h.push(buffer(50 * MS, rtp_packet(5, 400, SSRC, 0, &l16(80))))
        .unwrap();
    h.push(buffer(50 * MS, good(4))).unwrap();
    h.push(buffer(50 * MS, rtp_packet(5, 400, SSRC, 96, &[1, 2, 3])))
        .unwrap();
    let s = check_stats(&h, 4096, 1 << 20);
    assert_eq!(
        (
            get(&s, "buffers-received"),
            get(&s, "buffers-malformed"),
            get(&s, "dropped-duplicate"),
            get(&s, "dropped-invalid"),
            get(&s, "packets-queued"),
        ),
        (9, 2, 1, 1, 5),
        "{s}"
    );
    // A flush drops what is queued (the pad itself refuses buffers while flushing, and after
    // EOS: they never reach the element, so they are not counted).
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push(buffer(60 * MS, good(6))).is_err());
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let s = check_stats(&h, 4096, 1 << 20);
    assert_eq!(
        (
            get(&s, "buffers-received"),
            get(&s, "dropped-flushed"),
            get(&s, "packets-queued"),
            get(&s, "max-queued-packets"),
        ),
        (9, 5, 0, 0),
        "{s}"
    );
    // The accounting runs on across the flush.
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    h.push(buffer(70 * MS, good(7))).unwrap();
    let s = check_stats(&h, 4096, 1 << 20);
    assert_eq!(
        (get(&s, "buffers-received"), get(&s, "packets-queued")),
        (10, 1),
        "{s}"
    );

    // Data before caps is refused by the element (with an error message) and counted.
    init();
    let mut h = Harness::new("plcjitterbuffer");
    h.play();
    h.push_event(gst::event::StreamStart::new("no-caps"));
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    assert_eq!(
        h.push(buffer(0, good(0))),
        Err(gst::FlowError::NotNegotiated)
    );
    let s = check_stats(&h, 4096, 1 << 20);
    assert_eq!(
        (get(&s, "buffers-received"), get(&s, "buffers-refused")),
        (1, 1),
        "{s}"
    );

    // Raw input: buffers that are not whole frames never reach the queue.
    let mut h = capped(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
        4096,
        1 << 20,
    );
    h.push(buffer(0, vec![0; 160])).unwrap();
    h.push(buffer(10 * MS, vec![0; 3])).unwrap();
    h.push(buffer(20 * MS, vec![1; 160])).unwrap();
    let s = check_stats(&h, 4096, 1 << 20);
    assert_eq!(
        (
            get(&s, "buffers-not-whole-frames"),
            get(&s, "packets-received"),
            get(&s, "queued-bytes"),
        ),
        (1, 2, 2 * 80 * 4),
        "{s}"
    );
}

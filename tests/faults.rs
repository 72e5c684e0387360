// SPDX-License-Identifier: MPL-2.0
//! The fault scenarios of `../shared/BAD-INPUT.md` ("Fault scenarios"), one named test each:
//! pause/resume and state changes under traffic, flushing, EOS in every position, caps changes
//! mid-stream, sender restarts, outages from 20 ms to an hour of simulated time, a burst after
//! an outage, downstream returning errors, and many instances in one process.
//!
//! Clocked behaviour runs on `gst_check::Harness` and its test clock; the scenarios that are
//! about threads and sockets (state changes with packets in flight, 32 pipelines) use real
//! pipelines and real UDP sockets on 127.0.0.1.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gst_check::Harness;

const SSRC: u32 = 0x5eed_f00d;
const L16_CAPS: &str = "application/x-rtp,media=audio,encoding-name=L16,clock-rate=8000,encoding-params=(string)1,payload=96";
const RAW_8K: &str = "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved";

/// The scenarios on real pipelines measure real time: one at a time.
fn real_time() -> MutexGuard<'static, ()> {
    static REAL_TIME: Mutex<()> = Mutex::new(());
    init();
    REAL_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reference sample `n` (distinct, never 0).
fn sample(n: i64) -> i16 {
    ((n * 2).rem_euclid(30_000) + 1) as i16
}

/// Big-endian L16 payload of reference samples `first..first + frames`.
fn l16(first: i64, frames: i64) -> Vec<u8> {
    (first..first + frames)
        .flat_map(|n| sample(n).to_be_bytes())
        .collect()
}

/// Little-endian S16 of reference samples (what the element outputs for L16).
fn reference(first: i64, frames: i64) -> Vec<i16> {
    (first..first + frames).map(sample).collect()
}

/// Asserts `out == want`, reporting the first difference instead of both vectors.
#[track_caller]
fn assert_same(out: &[i16], want: &[i16], what: &str) {
    assert_eq!(out.len(), want.len(), "{what}: length");
    if let Some(i) = (0..out.len()).find(|&i| out[i] != want[i]) {
        let end = (i + 6).min(out.len());
        panic!(
            "{what}: first difference at {i}: {:?} instead of {:?}",
            &out[i..end],
            &want[i..end]
        );
    }
}

/// Where reference sample `n` first appears in `out` (the reference repeats every 15,000
/// samples: search near where it is expected).
fn find(out: &[i16], n: i64) -> Option<usize> {
    find_from(out, n, 0)
}

fn find_from(out: &[i16], n: i64, from: usize) -> Option<usize> {
    let want = reference(n, 8);
    (from..out.len().saturating_sub(8)).find(|&i| out[i..i + 8] == want[..])
}

/// Packet `k` of a 20 ms L16 stream at 8 kHz (seq `k + seq0`, ts `160 k + ts0`).
fn l16_packet(k: i64, seq0: u16, ts0: u32, ssrc: u32) -> Vec<u8> {
    rtp_packet(
        seq0.wrapping_add(k as u16),
        ts0.wrapping_add((k * 160) as u32),
        ssrc,
        96,
        &l16(k * 160, 160),
    )
}

/// A harness whose element posts on a bus the test can read.
fn harness_with_bus(caps: &str, latency_ms: u32) -> (Harness, OwnBus) {
    let h = harness(caps, latency_ms);
    let bus = OwnBus::on(&h.element().unwrap());
    (h, bus)
}

fn pop_errors(bus: &gst::Bus) -> Vec<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Error]))
        .map(|m| match m.view() {
            gst::MessageView::Error(e) => format!("{} ({:?})", e.error(), e.debug()),
            _ => unreachable!(),
        })
        .collect()
}

/// PLAYING -> PAUSED -> PLAYING with a sender that goes on: a live source does not run while
/// paused, so what was sent meanwhile waits in the socket and arrives in one burst at resume,
/// stamped with the running time of the resume (running time stands still while paused, so the
/// PTS go on from where they stopped). The element bounds the backlog by its queue, never
/// outputs faster than one buffer per clock tick, and is back at its latency within a second.
#[test]
fn pause_under_traffic_resumes_one_buffer_per_tick() {
    let (mut h, bus) = harness_with_bus(RAW_8K, 40);
    let inputs = (0..20u64).map(|i| (i * 10 * MS, tone_s16(8000, i * 80, 80)));
    drive(&mut h, 40 * MS, 10, inputs, |j, buf| {
        assert_chunk(buf, j, 8000, 0, 2)
    });
    let element = h.element().unwrap();
    element.set_state(gst::State::Paused).unwrap();
    assert!(h.try_pull().is_none(), "nothing is pushed while paused");
    element.set_state(gst::State::Playing).unwrap();
    // Three seconds of backlog, all stamped at the resume (the clock stood at 130 ms).
    let resume = 130 * MS;
    for i in 20..320u64 {
        h.push(buffer(resume, tone_s16(8000, i * 80, 80))).unwrap();
    }
    let queued = stats(&h).get::<f64>("queued-ms").unwrap();
    assert!(queued <= 1_000.0, "{queued} ms queued after the backlog");
    let mut out = Vec::new();
    for j in 10..400u64 {
        // The sender goes on live after the backlog: one datagram per tick, arriving now.
        let now = 40 * MS + j * 10 * MS;
        let i = 320 + j - 10;
        h.push(buffer(now, tone_s16(8000, i * 80, 80))).unwrap();
        h.crank_single_clock_wait().unwrap();
        let buf = h.pull().unwrap();
        assert_chunk(&buf, j, 8000, 0, 2);
        assert_eq!(h.buffers_in_queue(), 0, "a burst after resuming at {j}");
        out.push(buf);
    }
    // A second after the resume, the delay is back at the latency.
    let delay = stats(&h).get::<f64>("current-delay-ms").unwrap();
    assert!((30.0..=60.0).contains(&delay), "delay {delay} ms");
    assert_eq!(pop_errors(&bus), Vec::<String>::new());
}

/// A flush clears everything: after FLUSH_STOP the next packet starts a new stream (no late,
/// misfit or resync counts; no concealment for the sequence numbers before the flush), and the
/// cadence restarts from it.
#[test]
fn flush_restarts_an_rtp_stream_as_new() {
    let mut h = harness(L16_CAPS, 40);
    let inputs = (0..30i64).map(|k| (k as u64 * 20 * MS, l16_packet(k, 100, 1000, SSRC)));
    drive(&mut h, 40 * MS, 40, inputs, |j, buf| {
        assert_chunk(buf, j, 8000, 0, 2)
    });
    flush(&mut h);
    while h.try_pull().is_some() {}
    assert_eq!(stat(&h, "received"), 0, "stats restart with the stream");

    // The same sender goes on 5 s later, far ahead in sequence and time (a seek upstream).
    let origin = 5000 * MS;
    h.set_time(gst::ClockTime::from_nseconds(origin)).unwrap();
    let inputs = (0..50i64).map(|k| {
        (
            origin + k as u64 * 20 * MS,
            rtp_packet(
                130u16.wrapping_add(k as u16),
                1000 + 40_000 + (k * 160) as u32,
                SSRC,
                96,
                &l16(1_000 + k * 160, 160),
            ),
        )
    });
    let mut out = Vec::new();
    drive(&mut h, 40 * MS, 80, inputs, |j, buf| {
        assert_chunk(buf, j, 8000, origin, 2);
        assert_eq!(buf.flags().contains(gst::BufferFlags::DISCONT), j == 0);
        out.extend(s16(&buf.map_readable().unwrap()));
    });
    assert_same(
        &out[..800],
        &reference(1_000, 800)[..],
        "plays from its first packet",
    );
    for name in ["late", "misfits", "resyncs", "lost"] {
        assert_eq!(stat(&h, name), 0, "{name} after a flush");
    }
    assert_eq!(stat(&h, "concealed-ms"), 0);
}

/// EOS while packets are queued with a gap among them: they drain in order at once (no clock
/// needed), the gap concealed, then EOS; nothing after EOS.
#[test]
fn eos_with_pending_packets_and_a_gap_drains_in_order() {
    let mut h = harness(L16_CAPS, 200);
    for k in (0..10i64).filter(|&k| k != 4) {
        h.push(buffer(k as u64 * 20 * MS, l16_packet(k, 0, 0, SSRC)))
            .unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    while h.pull_event().unwrap().type_() != gst::EventType::Eos {}
    let mut out = Vec::new();
    let mut j = 0;
    while let Some(buf) = h.try_pull() {
        assert_chunk(&buf, j, 8000, 0, 2);
        out.extend(s16(&buf.map_readable().unwrap()));
        j += 1;
    }
    assert_eq!(j, 20, "200 ms queued, 20 buffers");
    assert_same(&out[..640], &reference(0, 640)[..], "output");
    assert_ne!(
        &out[640..800],
        &reference(640, 160)[..],
        "the gap is concealed"
    );
    // After the merge cross-fade (at most 5 ms), the packets after the gap play exactly.
    assert_same(&out[840..], &reference(840, 760)[..], "after the gap");
    assert_eq!(stat(&h, "lost"), 1);
    assert_eq!(
        h.push(buffer(300 * MS, l16_packet(10, 0, 0, SSRC))),
        Err(gst::FlowError::Eos),
        "data after EOS is refused"
    );
    assert!(h.try_pull().is_none());
}

/// EOS in the middle of an outage: the element does not conceal on for ever waiting for data;
/// it ends at once with EOS.
#[test]
fn eos_during_an_outage_ends_at_once() {
    let mut h = harness(L16_CAPS, 40);
    let inputs = (0..10i64).map(|k| (k as u64 * 20 * MS, l16_packet(k, 0, 0, SSRC)));
    drive(&mut h, 40 * MS, 60, inputs, |j, buf| {
        assert_chunk(buf, j, 8000, 0, 2)
    });
    // 400 ms into an outage.
    assert!(stat(&h, "concealed-ms") > 0);
    assert!(h.push_event(gst::event::Eos::new()));
    while h.pull_event().unwrap().type_() != gst::EventType::Eos {}
    assert!(
        h.buffers_in_queue() <= 1,
        "{} buffers after EOS in an outage",
        h.buffers_in_queue()
    );
}

/// Caps change mid-stream (48 kHz mono -> 44.1 kHz stereo): the new caps event goes out before
/// the first buffer of the new format, no buffer mixes formats, and the new buffers are 10 ms
/// of the new format (441 frames).
#[test]
fn caps_change_mid_stream_switches_cleanly() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved",
        40,
    );
    let inputs = (0..20u64).map(|i| (i * 10 * MS, vec![1u8; 480 * 2]));
    drive(&mut h, 40 * MS, 10, inputs, |j, buf| {
        assert_chunk(buf, j, 48000, 0, 2)
    });
    while h.try_pull_event().is_some() {}

    h.set_src_caps_str("audio/x-raw,format=S16LE,rate=44100,channels=2,layout=interleaved");
    let origin = 200 * MS;
    h.set_time(gst::ClockTime::from_nseconds(origin)).unwrap();
    for i in 0..60u64 {
        h.push(buffer(origin + i * 10 * MS, vec![2u8; 441 * 4]))
            .unwrap();
    }
    let mut saw_caps = false;
    let mut new_buffers = 0;
    for _ in 0..40 {
        h.crank_single_clock_wait().unwrap();
        let buf = h.pull().unwrap();
        for e in std::iter::from_fn(|| h.try_pull_event()) {
            if let gst::EventView::Caps(c) = e.view() {
                let s = c.caps().structure(0).unwrap();
                assert_eq!(s.get::<i32>("rate").unwrap(), 44100);
                assert_eq!(s.get::<i32>("channels").unwrap(), 2);
                saw_caps = true;
            }
        }
        let map = buf.map_readable().unwrap();
        let old = map.iter().all(|&b| b == 1) && map.len() == 480 * 2;
        let new = map.iter().all(|&b| b == 2 || b == 0) && map.len() == 441 * 4;
        assert!(old || new, "a buffer of {} bytes mixes formats", map.len());
        if new {
            assert!(saw_caps, "a 44.1 kHz buffer before its caps");
            assert_eq!(buf.offset_end() - buf.offset(), 441);
            new_buffers += 1;
        }
    }
    assert!(new_buffers >= 30, "{new_buffers} buffers of the new format");
}

/// Sender restarts, forward and backward, with and without an SSRC change: the new timeline
/// plays within 5 packets / 100 ms of its arrival, in order.
#[test]
fn sender_restarts_resync_within_five_packets() {
    // (seq jump, ts jump in samples, new SSRC)
    let cases: [(i32, i64, Option<u32>); 6] = [
        (20_000, 80_000, None),
        (-8_618, -240_000, None),
        (0, -8_000, None),
        (30_000, 5_000_000, Some(0x1234)),
        (-8_618, -240_000, Some(0x4321)),
        // The sender restarts from zero with a new SSRC (a re-launched process).
        (-50, -50 * 160, Some(0x9999)),
    ];
    for (dseq, dts, new_ssrc) in cases {
        let mut h = harness(L16_CAPS, 40);
        let inputs = (0..150i64).map(|k| {
            let (seq, ts, ssrc) = if k < 50 {
                (k as u16, (k * 160) as u32, SSRC)
            } else {
                (
                    (k as i32 + dseq) as u16,
                    (k * 160 + dts).rem_euclid(1 << 32) as u32,
                    new_ssrc.unwrap_or(SSRC),
                )
            };
            (
                k as u64 * 20 * MS,
                rtp_packet(seq, ts, ssrc, 96, &l16(k * 160, 160)),
            )
        });
        let mut out = Vec::new();
        drive(&mut h, 40 * MS, 320, inputs, |j, buf| {
            assert_chunk(buf, j, 8000, 0, 2);
            out.extend(s16(&buf.map_readable().unwrap()));
        });
        let case = format!("seq {dseq:+}, ts {dts:+}, ssrc {new_ssrc:?}");
        assert_eq!(stat(&h, "resyncs"), 1, "{case}");
        let at = find(&out, 55 * 160).unwrap_or_else(|| panic!("{case}: new timeline silent"));
        assert!(
            at <= 55 * 160 + 800,
            "{case}: packet 55 plays {} ms late",
            (at - 55 * 160) / 8
        );
        assert_same(&out[at..at + 8000], &reference(55 * 160, 8000)[..], &case);
    }
}

/// Outages from 20 ms to an hour of simulated time: the 10 ms output never stops; concealment
/// fades to silence; the stream resumes a latency after the sender comes back; concealment work
/// stops once faded (silence frames, not concealment, make up the rest).
#[test]
fn outages_from_20_ms_to_an_hour_keep_the_cadence_and_resume() {
    for outage_ms in [20u64, 200, 2_000, 60_000, 3_600_000] {
        let mut h = harness(L16_CAPS, 40);
        let gap_packets = (outage_ms / 20) as i64;
        // 1 s of audio, the outage, 1 s of audio; the sender's clock runs through the outage.
        let inputs = (0..100 + gap_packets)
            .filter(|&k| !(50..50 + gap_packets).contains(&k))
            .map(|k| (k as u64 * 20 * MS, l16_packet(k, 7, 70, SSRC)));
        let total = (2_000 + outage_ms) / 10;
        let mut tail = Vec::new();
        // The first packet after the outage plays a latency after it was sent (output chunk
        // `j` is due at `j` x 10 ms + latency and holds what was sent at `j` x 10 ms).
        let resume_chunk = (1_000 + outage_ms) / 10;
        drive(&mut h, 40 * MS, total, inputs, |j, buf| {
            assert_chunk(buf, j, 8000, 0, 2);
            if j >= resume_chunk {
                tail.extend(s16(&buf.map_readable().unwrap()));
            }
        });
        let first = (50 + gap_packets) * 160;
        // After the merge cross-fade (at most 5 ms), exactly the packets.
        assert_same(
            &tail[40..800],
            &reference(first + 40, 760)[..],
            &format!("{outage_ms} ms outage: resumes on time"),
        );
        let concealed = stat(&h, "concealed-ms");
        let silent = stat(&h, "silence-ms");
        assert!(
            concealed <= outage_ms.min(1_000),
            "{outage_ms} ms outage: {concealed} ms concealed"
        );
        assert!(
            (concealed + silent).abs_diff(outage_ms) <= 20,
            "{outage_ms} ms outage: {concealed} ms concealed + {silent} ms silence: {}",
            stats(&h)
        );
        assert_eq!(
            stat(&h, "dtx-ms"),
            0,
            "{outage_ms} ms outage is loss, not DTX"
        );
        // An hour wraps the sequence numbers (180,000 packets): that one resyncs, on time.
        let resyncs = if outage_ms > 1_310_000 { 1 } else { 0 };
        assert_eq!(stat(&h, "resyncs"), resyncs, "{outage_ms} ms outage");
    }
}

/// A burst after an outage: the sender (or a network queue) held 5 s and delivers it at once.
/// What does not fit the queue is dropped oldest first, the output never runs faster than its
/// clock (one buffer per tick), and the delay is back at the latency within a second.
#[test]
fn burst_after_outage_is_bounded_and_the_delay_recovers() {
    let mut h = harness(L16_CAPS, 60);
    let burst_at = 6_000 * MS;
    // Packets 0..50 on time, 50..300 held until 6 s, then on time again.
    let inputs = (0..600i64).map(|k| {
        let sent = k as u64 * 20 * MS;
        (
            sent.max(if (50..300).contains(&k) { burst_at } else { 0 }),
            k,
        )
    });
    let mut inputs: Vec<(u64, Vec<u8>)> = inputs
        .map(|(t, k)| (t, l16_packet(k, 0, 0, SSRC)))
        .collect();
    inputs.sort_by_key(|(t, _)| *t);
    let mut max_queued = 0.0f64;
    let mut out = Vec::new();
    run(&mut h, 60 * MS, 1_150, inputs, |h, j, buf| {
        assert_chunk(buf, j, 8000, 0, 2);
        assert_eq!(
            h.buffers_in_queue(),
            0,
            "more than one buffer per tick at {j}"
        );
        out.extend(s16(&buf.map_readable().unwrap()));
        max_queued = max_queued.max(stats(h).get::<f64>("queued-ms").unwrap());
    });
    // After the burst (6 s), within a second, samples play a latency after they were sent.
    let probe = 400i64; // sent at 8 s
    // Output chunk `j` plays at `j` x 10 ms + latency: a sample at its own send time in the
    // output plays exactly a latency after it was sent.
    let at = find_from(&out, probe * 160, 7_000 * 8).expect("the stream plays after the burst");
    let offset_ms = at as f64 / 8.0 - probe as f64 * 20.0;
    assert!(
        offset_ms.abs() <= 5.0,
        "two seconds after the burst, the delay is the latency {offset_ms:+} ms"
    );
    assert!(max_queued <= 3_000.0, "{max_queued} ms queued");
}

/// Downstream refuses data (NOT_LINKED, FLUSHING, EOS): the task stops without deadlock, the
/// element stops accepting input with the same flow return (so upstream stops too) instead of
/// queuing for ever, and NOT_LINKED is reported as one error message.
#[test]
fn downstream_flow_errors_stop_the_task_and_propagate_upstream() {
    for (flow, error_expected) in [
        (gst::FlowError::NotLinked, true),
        (gst::FlowError::Flushing, false),
        (gst::FlowError::Eos, false),
    ] {
        let (mut h, bus) = harness_with_bus(L16_CAPS, 40);
        let refuse = Arc::new(AtomicBool::new(false));
        let sinkpad = h.sinkpad().unwrap().clone();
        {
            let refuse = refuse.clone();
            sinkpad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if refuse.load(Ordering::SeqCst) {
                    info.flow_res = Err(flow);
                    gst::PadProbeReturn::Handled
                } else {
                    gst::PadProbeReturn::Ok
                }
            });
        }
        let inputs = (0..10i64).map(|k| (k as u64 * 20 * MS, l16_packet(k, 0, 0, SSRC)));
        drive(&mut h, 40 * MS, 5, inputs, |j, buf| {
            assert_chunk(buf, j, 8000, 0, 2)
        });
        refuse.store(true, Ordering::SeqCst);
        h.crank_single_clock_wait().unwrap();
        // The task has stopped: the next input gets the downstream flow return.
        let deadline = Instant::now() + Duration::from_secs(10);
        let res = loop {
            let res = h.push(buffer(200 * MS, l16_packet(10, 0, 0, SSRC)));
            if res.is_err() || Instant::now() > deadline {
                break res;
            }
            std::thread::yield_now();
        };
        assert_eq!(res, Err(flow), "upstream sees {flow:?}");
        let queued_before = stat(&h, "received");
        for k in 11..200 {
            let _ = h.push(buffer(k as u64 * 20 * MS, l16_packet(k, 0, 0, SSRC)));
        }
        assert_eq!(
            stat(&h, "received"),
            queued_before,
            "{flow:?}: nothing queued"
        );
        let errors = pop_errors(&bus);
        assert_eq!(
            errors.len(),
            usize::from(error_expected),
            "{flow:?}: {errors:?}"
        );
        // It shuts down cleanly.
        h.element()
            .unwrap()
            .set_state(gst::State::Null)
            .expect("to NULL");
    }
}

/// 32 instances in one process, each on its own thread with its own test clock, fed the same
/// lossy, jittery input: identical output everywhere.
#[test]
fn thirty_two_instances_give_identical_output() {
    init();
    let mut rng = Lcg(7);
    let mut inputs: Vec<(u64, Vec<u8>)> = Vec::new();
    for k in 0..500i64 {
        if rng.next_f64() < 0.1 {
            continue;
        }
        let jitter = (rng.next_f64() * 15.0) as u64 * MS;
        let p = l16_packet(k, 65_000, 0xffff_0000, SSRC);
        inputs.push((k as u64 * 20 * MS + jitter, p));
    }
    inputs.sort_by_key(|(t, _)| *t);
    let inputs = Arc::new(inputs);
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let inputs = inputs.clone();
            std::thread::spawn(move || {
                let mut h = harness(L16_CAPS, 40);
                let origin = inputs[0].0;
                let mut out = Vec::new();
                drive(&mut h, 40 * MS, 1000, inputs.iter().cloned(), |j, buf| {
                    assert_chunk(buf, j, 8000, origin, 2);
                    out.extend_from_slice(&buf.map_readable().unwrap());
                });
                out
            })
        })
        .collect();
    let outs: Vec<Vec<u8>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(outs[0].len(), 1000 * 160);
    for (i, o) in outs.iter().enumerate() {
        assert!(o == &outs[0], "instance {i} differs");
    }
}

/// [`drive`] with the harness handed to the check as well (to read stats on every tick).
fn run(
    h: &mut Harness,
    latency: u64,
    n_out: u64,
    inputs: Vec<(u64, Vec<u8>)>,
    mut check: impl FnMut(&Harness, u64, &gst::Buffer),
) {
    let origin = inputs[0].0;
    let mut inputs = inputs.into_iter().peekable();
    for j in 0..n_out {
        let deadline = origin + latency + j * 10 * MS;
        while let Some((arrival, data)) = inputs.next_if(|(t, _)| *t <= deadline) {
            h.push(buffer(arrival, data)).expect("push");
        }
        h.crank_single_clock_wait().expect("crank");
        let out = h.pull().expect("output buffer");
        check(h, j, &out);
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn launch(desc: &str) -> gst::Pipeline {
    gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

/// A sender of 10 ms 8 kHz mono datagrams to `port` every `period` until `stop`.
fn spawn_sender(port: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let p = port.load(Ordering::Relaxed) as u16;
            // Errors (ICMP from a moment the port was closed) are expected while states change.
            let _ = sock.send_to(&tone_s16(8000, sent * 80, 80), ("127.0.0.1", p));
            sent += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        sent
    })
}

/// 1000 random state changes of `rawudpaudiosrc ! plcjitterbuffer ! fakesink` with datagrams in
/// flight and another thread setting properties: no deadlock, no error, and the port can be
/// bound again the moment the pipeline is in NULL.
#[test]
fn thousand_state_changes_with_packets_in_flight() {
    let _rt = real_time();
    let port = free_port();
    let pipeline = launch(&format!(
        "rawudpaudiosrc name=src address=127.0.0.1 port={port} \
           caps=audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved \
         ! plcjitterbuffer name=jb latency=20 ! fakesink sync=true"
    ));
    let jb = pipeline.by_name("jb").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = spawn_sender(Arc::new(AtomicU64::new(port.into())), stop.clone());
    let setter = {
        let stop = stop.clone();
        let jb = jb.clone();
        std::thread::spawn(move || {
            let mut rng = Lcg(3);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                jb.set_property("latency", 10 + (rng.next_f64() * 200.0) as u32);
                jb.set_property("stats-interval", (rng.next_f64() * 100.0) as u32);
                let _ = jb.property::<gst::Structure>("stats");
                n += 1;
                std::thread::yield_now();
            }
            n
        })
    };
    let bus = pipeline.bus().unwrap();
    let states = [
        gst::State::Playing,
        gst::State::Paused,
        gst::State::Ready,
        gst::State::Null,
    ];
    let mut rng = Lcg(11);
    for i in 0..1000 {
        let s = states[(rng.next_f64() * states.len() as f64) as usize];
        pipeline
            .set_state(s)
            .unwrap_or_else(|e| panic!("change {i} to {s:?}: {e}"));
        let (res, _, _) = pipeline.state(gst::ClockTime::from_seconds(10));
        res.unwrap_or_else(|e| panic!("change {i} to {s:?} did not complete: {e}"));
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            panic!("error at change {i} to {s:?}: {msg:?}");
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    // The port is free again at once.
    UdpSocket::bind(("127.0.0.1", port)).expect("port free again after NULL");
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    let sets = setter.join().unwrap();
    assert!(sent > 0 && sets > 0);
}

/// 32 real pipelines `rawudpaudiosrc ! plcjitterbuffer ! appsink` in one process, each fed by
/// its own sender over loopback: every one keeps exact cadence and plays what it receives.
#[test]
fn thirty_two_pipelines_in_one_process() {
    let _rt = real_time();
    let stop = Arc::new(AtomicBool::new(false));
    let mut pipelines = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..32 {
        let p = launch(
            "rawudpaudiosrc name=src address=127.0.0.1 port=0 \
               caps=audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved \
             ! plcjitterbuffer name=jb latency=60 \
             ! appsink name=sink sync=false max-buffers=1000 drop=false emit-signals=false",
        );
        p.set_state(gst::State::Ready).unwrap();
        let port = p.by_name("src").unwrap().property::<i32>("port");
        p.set_state(gst::State::Playing).unwrap();
        senders.push(spawn_sender(
            Arc::new(AtomicU64::new(port as u64)),
            stop.clone(),
        ));
        pipelines.push(p);
    }
    let sinks: Vec<gst_app::AppSink> = pipelines
        .iter()
        .map(|p| p.by_name("sink").unwrap().downcast().unwrap())
        .collect();
    let mut counts = vec![0u64; 32];
    let mut last_end: Vec<Option<u64>> = vec![None; 32];
    let deadline = Instant::now() + Duration::from_secs(30);
    while counts.iter().any(|&c| c < 150) && Instant::now() < deadline {
        for (i, sink) in sinks.iter().enumerate() {
            while let Some(s) = sink.try_pull_sample(gst::ClockTime::ZERO) {
                let b = s.buffer().unwrap();
                assert_eq!(b.size(), 160, "pipeline {i}: buffer size");
                if let Some(end) = last_end[i] {
                    assert_eq!(b.offset(), end, "pipeline {i}: offsets contiguous");
                }
                last_end[i] = Some(b.offset_end());
                counts[i] += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    for (i, p) in pipelines.iter().enumerate() {
        let jb = p.by_name("jb").unwrap();
        let st = jb.property::<gst::Structure>("stats");
        assert!(counts[i] >= 150, "pipeline {i}: {} buffers", counts[i]);
        assert!(st.get::<u64>("received").unwrap() > 0, "pipeline {i}: {st}");
        if let Some(msg) = p.bus().unwrap().pop_filtered(&[gst::MessageType::Error]) {
            panic!("pipeline {i}: {msg:?}");
        }
        p.set_state(gst::State::Null).unwrap();
    }
}

/// ICMP port unreachable arriving at the source's port does not stop it. A socket sharing the
/// port (`reuse=true`) sends to a closed port, so real ICMP errors come back to address:port,
/// while a sender streams to it. (Linux reports ICMP errors only on connected sockets or with
/// IP_RECVERR; the source is neither, and had it seen ECONNREFUSED, it counts it as a transient
/// `receive-errors` and goes on: see `datagram::classify_error`.)
#[test]
fn icmp_port_unreachable_does_not_stop_the_source() {
    let _rt = real_time();
    let holder = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    holder.set_reuse_address(true).unwrap();
    holder
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = holder.local_addr().unwrap().as_socket().unwrap().port();
    let holder: UdpSocket = holder.into();
    let closed = free_port();

    let pipeline = launch(&format!(
        "rawudpaudiosrc name=src address=127.0.0.1 port={port} reuse=true \
           caps=audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved \
         ! plcjitterbuffer latency=40 ! appsink name=sink sync=false"
    ));
    pipeline.set_state(gst::State::Playing).unwrap();
    let src = pipeline.by_name("src").unwrap();
    let sink: gst_app::AppSink = pipeline.by_name("sink").unwrap().downcast().unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Connected, the holder is told of the ICMP errors (ECONNREFUSED on its next send): the
    // proof they reached 127.0.0.1:port.
    holder.connect(("127.0.0.1", closed)).unwrap();
    let mut refused = 0;
    for i in 0..100u64 {
        sender
            .send_to(&tone_s16(8000, i * 80, 80), ("127.0.0.1", port))
            .unwrap();
        match holder.send(b"x") {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
            r => {
                r.unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(refused > 10, "{refused} ICMP port unreachable seen");
    let deadline = Instant::now() + Duration::from_secs(10);
    let received = loop {
        let s = src.property::<gst::Structure>("stats");
        let n = s.get::<u64>("packets").unwrap();
        if n >= 95 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(received >= 95, "{received} of 100 datagrams received");
    assert!(
        sink.try_pull_sample(gst::ClockTime::from_seconds(5))
            .is_some()
    );
    if let Some(m) = pipeline
        .bus()
        .unwrap()
        .pop_filtered(&[gst::MessageType::Error])
    {
        panic!("{m:?}");
    }
    assert_eq!(pipeline.current_state(), gst::State::Playing);
    pipeline.set_state(gst::State::Null).unwrap();
}

/// Four threads at once for 10 s on one `appsrc ! plcjitterbuffer ! fakesink` pipeline: one
/// pushes audio, one changes state at random, one sets properties and reads stats, one flushes
/// the jitter buffer's input. No deadlock (a watchdog aborts after 2 minutes), no error, and the
/// pipeline still plays afterwards.
#[test]
fn stress_threads_push_state_property_flush_for_10_s() {
    let _rt = real_time();
    let pipeline = launch(
        "appsrc name=src is-live=true do-timestamp=true format=time \
           caps=audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved \
         ! plcjitterbuffer name=jb latency=30 ! fakesink name=sink sync=true",
    );
    let src: gst_app::AppSrc = pipeline.by_name("src").unwrap().downcast().unwrap();
    let jb = pipeline.by_name("jb").unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if start.elapsed() > Duration::from_secs(120) {
                    eprintln!("stress test deadlocked");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    pipeline.set_state(gst::State::Playing).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let spawn = |i: usize, f: Box<dyn Fn(&mut Lcg) + Send>| {
        let (stop, count) = (stop.clone(), counts[i].clone());
        std::thread::spawn(move || {
            let mut rng = Lcg(100 + i as u64);
            while !stop.load(Ordering::Relaxed) {
                f(&mut rng);
                count.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let threads = vec![
        spawn(
            0,
            Box::new(move |_| {
                // Errors while flushing or not PLAYING are expected.
                let _ = src.push_buffer(gst::Buffer::from_mut_slice(tone_s16(8000, 0, 80)));
                std::thread::sleep(Duration::from_millis(2));
            }),
        ),
        {
            let p = pipeline.clone();
            spawn(
                1,
                Box::new(move |rng| {
                    let s = [gst::State::Playing, gst::State::Paused, gst::State::Ready]
                        [(rng.next_f64() * 3.0) as usize];
                    let _ = p.set_state(s);
                    let _ = p.state(gst::ClockTime::from_seconds(10));
                    std::thread::sleep(Duration::from_millis(20));
                }),
            )
        },
        {
            let jb = jb.clone();
            spawn(
                2,
                Box::new(move |rng| {
                    jb.set_property("latency", 10 + (rng.next_f64() * 100.0) as u32);
                    jb.set_property("max-packets", 1 + (rng.next_f64() * 50.0) as u32);
                    jb.set_property("stats-interval", (rng.next_f64() * 50.0) as u32);
                    let _ = jb.property::<gst::Structure>("stats");
                    std::thread::sleep(Duration::from_millis(1));
                }),
            )
        },
        {
            let pad = jb.static_pad("sink").unwrap();
            spawn(
                3,
                Box::new(move |_| {
                    // As an upstream seek would: FLUSH_START, then, holding the stream lock so
                    // no buffer slips in between, FLUSH_STOP and a new segment.
                    pad.send_event(gst::event::FlushStart::new());
                    {
                        let _stream = pad.stream_lock();
                        pad.send_event(gst::event::FlushStop::new(true));
                        // Upstream sends its segment within its stream: only once its
                        // stream-start is there (a state change to READY clears the pad's
                        // sticky events, under this lock, and upstream sends them anew).
                        if pad.sticky_event::<gst::event::StreamStart>(0).is_some() {
                            pad.send_event(gst::event::Segment::new(&gst::FormattedSegment::<
                                gst::ClockTime,
                            >::new(
                            )));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(30));
                }),
            )
        },
    ];
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let bus = pipeline.bus().unwrap();
    if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("{m:?}");
    }
    for (i, c) in counts.iter().enumerate() {
        assert!(c.load(Ordering::Relaxed) > 10, "thread {i} barely ran");
    }
    // It still reaches PLAYING.
    pipeline.set_state(gst::State::Playing).unwrap();
    let (res, _, _) = pipeline.state(gst::ClockTime::from_seconds(10));
    res.unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
}

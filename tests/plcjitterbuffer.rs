// SPDX-License-Identifier: MPL-2.0
//! Element tests of `plcjitterbuffer` with `gst_check::Harness` and its test clock: the clock
//! only moves when a test cranks it, so hours of simulated time run in seconds and every
//! assertion is exact.

mod common;

use common::*;
use gst::prelude::*;
use gst_check::Harness;

#[test]
fn steady_input_keeps_exact_cadence_for_an_hour() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    let hour = 360_000;
    let inputs = (0..hour + 10).map(|i| (i * 10 * MS, tone_s16(8000, i * 80, 80)));
    let mut mismatched = 0;
    drive(&mut h, 40 * MS, hour, inputs, |j, buf| {
        assert_chunk(buf, j, 8000, 0, 2);
        if buf.map_readable().unwrap().as_slice() != tone_s16(8000, j * 80, 80).as_slice() {
            mismatched += 1;
        }
        assert_eq!(buf.flags().contains(gst::BufferFlags::DISCONT), j == 0);
    });
    assert_eq!(mismatched, 0, "steady input must come out bit-exact");
    assert_eq!(stat(&h, "pushed"), hour);
    assert_eq!(stat(&h, "lost"), 0);
    assert_eq!(stat(&h, "late"), 0);
    assert_eq!(stat(&h, "concealed-ms"), 0);
}

#[test]
fn ten_percent_loss_keeps_exact_cadence_for_an_hour() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    let hour = 360_000;
    let mut rng = Lcg(7);
    let lost: Vec<bool> = (0..hour + 10)
        .map(|i| i > 0 && rng.next_f64() < 0.1)
        .collect();
    let n_lost = lost[..hour as usize].iter().filter(|&&l| l).count() as u64;
    let inputs = (0..hour + 10)
        .filter(|&i| !lost[i as usize])
        .map(|i| (i * 10 * MS, tone_s16(8000, i * 80, 80)));
    let mut exact = 0;
    drive(&mut h, 40 * MS, hour, inputs, |j, buf| {
        assert_chunk(buf, j, 8000, 0, 2);
        if buf.map_readable().unwrap().as_slice() == tone_s16(8000, j * 80, 80).as_slice() {
            exact += 1;
        }
    });
    assert_eq!(stat(&h, "pushed"), hour);
    // Without jitter every loss is found in its own slot, none is late.
    let counted = stat(&h, "lost");
    assert!(
        counted == n_lost || counted == n_lost + 1,
        "{counted} vs {n_lost}"
    );
    assert_eq!(stat(&h, "late"), 0);
    assert_eq!(stat(&h, "concealed-ms"), n_lost * 10);
    // Received slots come out bit-exact, except the ones whose start is cross-faded after a gap.
    assert!(exact >= hour - 2 * n_lost, "{exact} exact of {hour}");
}

#[test]
fn no_input_at_all_keeps_exact_cadence_for_an_hour() {
    // Silence from PLAYING, with no datagram ever: the sink gets 10 ms every 10 ms.
    let mut h = harness_with(
        "audio/x-raw,format=S16LE,rate=16000,channels=2,layout=interleaved",
        40,
        true,
    );
    let hour = 360_000;
    for j in 0..hour {
        h.crank_single_clock_wait().expect("crank");
        let buf = h.pull().expect("output buffer");
        assert_chunk(&buf, j, 16000, 0, 4);
        // Real zeros, not GAP buffers: audio sinks drop the contents of GAP buffers instead of
        // writing them, which would leave the device stopped.
        assert!(!buf.flags().contains(gst::BufferFlags::GAP));
        assert!(buf.map_readable().unwrap().iter().all(|&b| b == 0));
    }
    assert_eq!(stat(&h, "pushed"), hour);
    assert_eq!(stat(&h, "received"), 0);
}

#[test]
fn input_that_stops_keeps_exact_cadence_for_an_hour() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=16000,channels=2,layout=interleaved",
        40,
    );
    let hour = 360_000;
    // One datagram starts the stream; then nothing for an hour: concealment, then silence.
    let first = (5 * MS, vec![0x10u8; 160 * 4]);
    let mut silent = 0;
    drive(&mut h, 40 * MS, hour, std::iter::once(first), |j, buf| {
        assert_chunk(buf, j, 16000, 5 * MS, 4);
        if buf.map_readable().unwrap().iter().all(|&b| b == 0) {
            silent += 1;
        }
    });
    assert!(
        silent >= hour - 10,
        "concealment fades to silence: {silent}"
    );
    assert_eq!(stat(&h, "pushed"), hour);
}

#[test]
fn first_datagram_after_silence_plays_a_latency_after_its_arrival() {
    let mut h = harness_with(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
        true,
    );
    // 1 s of silence (deadlines 40 ms .. 1.03 s), then datagrams from 1 s on.
    for j in 0..100 {
        h.crank_single_clock_wait().unwrap();
        assert_chunk(&h.pull().unwrap(), j, 8000, 0, 2);
    }
    let mut next = 0u64;
    for j in 100..110 {
        // Datagram i arrives at 1 s + 10 ms * i, before the chunk due then is produced.
        while 1000 * MS + next * 10 * MS <= 40 * MS + j * 10 * MS {
            h.push(buffer(
                1000 * MS + next * 10 * MS,
                tone_s16(8000, next * 80, 80),
            ))
            .unwrap();
            next += 1;
        }
        h.crank_single_clock_wait().unwrap();
        let buf = h.pull().unwrap();
        assert_chunk(&buf, j, 8000, 0, 2);
        // Due at 40 ms + 10 ms * j: chunk 100 (due 1.04 s) plays the datagram of 1.0 s.
        assert_eq!(
            h.testclock().unwrap().time(),
            gst::ClockTime::from_nseconds(40 * MS + j * 10 * MS)
        );
        assert_eq!(
            buf.map_readable().unwrap().as_slice(),
            tone_s16(8000, (j - 100) * 80, 80).as_slice()
        );
    }
}

#[test]
fn rates_not_divisible_by_100_alternate_chunk_sizes() {
    let mut h = harness(
        "audio/x-raw,format=F32LE,rate=22050,channels=1,layout=interleaved",
        20,
    );
    // 20 ms datagrams of 441 frames.
    let inputs = (0..1000u64).map(|i| (i * 20 * MS, vec![0u8; 441 * 4]));
    drive(&mut h, 20 * MS, 1900, inputs, |j, buf| {
        assert_chunk(buf, j, 22050, 0, 4);
    });
}

#[test]
fn datagram_size_does_not_change_output_size() {
    for (frames_in, period) in [(120usize, 2_500_000u64), (2880, 60 * MS), (480, 10 * MS)] {
        let mut h = harness(
            "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved",
            80,
        );
        let n = 3000 * MS / period;
        let inputs = (0..n).map(|i| (i * period, tone_s16(48000, i * frames_in as u64, frames_in)));
        drive(&mut h, 80 * MS, 250, inputs, |j, buf| {
            assert_chunk(buf, j, 48000, 0, 2);
            assert_eq!(
                buf.map_readable().unwrap().as_slice(),
                tone_s16(48000, j * 480, 480).as_slice(),
                "{frames_in}-frame datagrams"
            );
        });
        assert_eq!(stat(&h, "lost"), 0);
    }
}

#[test]
fn late_data_is_dropped_and_counted() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    // The network stalls for 100 ms: datagrams 20..=29 are held and arrive together at 300 ms
    // (in order, as a queue releases them). Slots 20..=25 were due before that (slot 25 at
    // 290 ms): their data is late and dropped; 26..=29 still play in their own slots.
    let inputs = (0..100u64).map(|i| {
        let arrival = if (20..30).contains(&i) {
            300 * MS
        } else {
            i * 10 * MS
        };
        (arrival, tone_s16(8000, i * 80, 80))
    });
    let mut concealed = Vec::new();
    drive(&mut h, 40 * MS, 90, inputs, |j, buf| {
        assert_chunk(buf, j, 8000, 0, 2);
        let exact = buf.map_readable().unwrap().as_slice() == tone_s16(8000, j * 80, 80).as_slice();
        if (20..26).contains(&j) {
            concealed.push(exact);
        }
        if j > 26 {
            assert!(
                exact,
                "slot {j}: the timeline is not shifted by the late data"
            );
        }
    });
    assert_eq!(stat(&h, "late"), 6);
    assert_eq!(stat(&h, "lost"), 0);
    assert_eq!(stat(&h, "resyncs"), 0);
    assert!(concealed.iter().all(|e| !e), "slots 20..26 were concealed");
}

#[test]
fn concealment_has_no_clicks_at_either_edge() {
    let rate = 16000u64;
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved",
        40,
    );
    // Lose one datagram, then three in a row, then ten (faded to silence and back).
    let lost = |i: u64| i == 30 || (60..63).contains(&i) || (100..110).contains(&i);
    let inputs = (0..200u64)
        .filter(|&i| !lost(i))
        .map(|i| (i * 10 * MS, tone_s16(16000, i * 160, 160)));
    let mut out = Vec::new();
    drive(&mut h, 40 * MS, 190, inputs, |_, buf| {
        out.extend(s16(&buf.map_readable().unwrap()));
    });
    let clean = s16(&tone_s16(16000, 0, out.len()));
    let max_step = |x: &[i16]| {
        x.windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap()
    };
    let clean_step = max_step(&clean);
    for edge in [30u64, 31, 60, 63, 100, 110] {
        let at = (edge * rate / 100) as usize;
        let step = max_step(&out[at - 20..at + 20]);
        assert!(
            f64::from(step) <= 1.5 * f64::from(clean_step),
            "edge at datagram {edge}: step {step} vs clean {clean_step}"
        );
    }
    assert_eq!(stat(&h, "lost"), 14);
}

#[test]
fn eos_plays_out_what_is_buffered_then_eos() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    for i in 0..5u64 {
        h.push(buffer(i * 10 * MS, tone_s16(8000, i * 80, 80)))
            .unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    // No clock crank needed: the queue drains at once.
    for j in 0..5u64 {
        let buf = h.pull().expect("drained buffer");
        assert_chunk(&buf, j, 8000, 0, 2);
        assert_eq!(
            buf.map_readable().unwrap().as_slice(),
            tone_s16(8000, j * 80, 80).as_slice()
        );
    }
    loop {
        let ev = h.pull_event().expect("EOS event");
        if ev.type_() == gst::EventType::Eos {
            break;
        }
    }
    assert!(h.try_pull().is_none());
    // Data after EOS is refused.
    assert_eq!(
        h.push(buffer(100 * MS, tone_s16(8000, 0, 80))),
        Err(gst::FlowError::Eos)
    );
}

#[test]
fn eos_before_any_data_is_forwarded() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    assert!(h.push_event(gst::event::Eos::new()));
    loop {
        let ev = h.pull_event().expect("EOS event");
        if ev.type_() == gst::EventType::Eos {
            break;
        }
    }
    assert!(h.try_pull().is_none());
}

#[test]
fn flush_clears_the_stream() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    let inputs = (0..10u64).map(|i| (i * 10 * MS, tone_s16(8000, i * 80, 80)));
    drive(&mut h, 40 * MS, 3, inputs, |j, buf| {
        assert_chunk(buf, j, 8000, 0, 2)
    });
    flush(&mut h);
    assert_eq!(stat(&h, "received"), 0, "stats restart with the stream");
    while h.try_pull().is_some() {}

    // A new stream starting at 1 s: the first output buffer is its first datagram.
    let origin = 1000 * MS;
    h.set_time(gst::ClockTime::from_nseconds(origin)).unwrap();
    let inputs = (0..20u64).map(|i| (origin + i * 10 * MS, tone_s16(8000, 5000 + i * 80, 80)));
    drive(&mut h, 40 * MS, 10, inputs, |j, buf| {
        assert_chunk(buf, j, 8000, origin, 2);
        assert_eq!(buf.flags().contains(gst::BufferFlags::DISCONT), j == 0);
        assert_eq!(
            buf.map_readable().unwrap().as_slice(),
            tone_s16(8000, 5000 + j * 80, 80).as_slice()
        );
    });
}

#[test]
fn latency_query_adds_own_latency_to_upstream() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    h.set_upstream_latency(gst::ClockTime::from_mseconds(15));
    assert_eq!(h.query_latency(), Some(gst::ClockTime::from_mseconds(55)));
    h.element().unwrap().set_property("latency", 100u32);
    assert_eq!(h.query_latency(), Some(gst::ClockTime::from_mseconds(115)));
}

#[test]
fn upstream_latency_delays_the_deadlines() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    h.set_upstream_latency(gst::ClockTime::from_mseconds(15));
    assert_eq!(h.query_latency(), Some(gst::ClockTime::from_mseconds(55)));
    h.push(buffer(0, tone_s16(8000, 0, 80))).unwrap();
    h.crank_single_clock_wait().unwrap();
    assert_eq!(
        h.testclock().unwrap().time(),
        gst::ClockTime::from_mseconds(55),
        "first buffer is due at arrival + upstream + own latency"
    );
    let buf = h.pull().unwrap();
    assert_eq!(buf.pts(), Some(gst::ClockTime::ZERO));
}

#[test]
fn changing_latency_posts_a_latency_message() {
    init();
    let h = Harness::new("plcjitterbuffer");
    let element = h.element().unwrap();
    let bus = OwnBus::on(&element);
    element.set_property("latency", 120u32);
    let msg = bus
        .pop_filtered(&[gst::MessageType::Latency])
        .expect("latency message");
    assert_eq!(msg.src(), Some(element.upcast_ref::<gst::Object>()));
    // Setting the same value again posts nothing.
    element.set_property("latency", 120u32);
    assert!(bus.pop_filtered(&[gst::MessageType::Latency]).is_none());
}

#[test]
fn stats_are_posted_every_interval() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    let element = h.element().unwrap();
    let bus = OwnBus::on(&element);
    element.set_property("stats-interval", 100u32);
    let inputs = (0..120u64).map(|i| (i * 10 * MS, tone_s16(8000, i * 80, 80)));
    drive(&mut h, 40 * MS, 101, inputs, |_, _| {});
    let mut n = 0;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Element]) {
        let s = msg.structure().unwrap();
        assert_eq!(s.name(), "application/x-plcjitterbuffer-stats");
        assert!(s.get::<u64>("pushed").unwrap() > 0);
        n += 1;
    }
    assert_eq!(n, 10, "one message per 100 ms over 1 s of output");
}

#[test]
fn malformed_buffers_are_dropped_and_counted() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=2,layout=interleaved",
        40,
    );
    h.push(buffer(0, tone_s16(8000, 0, 160))).unwrap();
    // Not whole 4-byte frames, and empty.
    h.push(buffer(10 * MS, vec![1, 2, 3, 4, 5])).unwrap();
    h.push(buffer(10 * MS, vec![])).unwrap();
    h.push(buffer(10 * MS, vec![1, 2])).unwrap();
    assert_eq!(stat(&h, "invalid"), 3);
    assert_eq!(stat(&h, "received"), 1);
}

#[test]
fn buffers_without_pts_use_the_clock() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    h.set_time(gst::ClockTime::from_mseconds(500)).unwrap();
    h.push(gst::Buffer::from_mut_slice(tone_s16(8000, 0, 80)))
        .unwrap();
    h.crank_single_clock_wait().unwrap();
    let buf = h.pull().unwrap();
    assert_eq!(buf.pts(), Some(gst::ClockTime::from_mseconds(500)));
    assert_eq!(
        h.testclock().unwrap().time(),
        gst::ClockTime::from_mseconds(540)
    );
}

#[test]
fn pause_and_resume_continue_the_cadence() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    let inputs = (0..20u64).map(|i| (i * 10 * MS, tone_s16(8000, i * 80, 80)));
    drive(&mut h, 40 * MS, 10, inputs, |j, buf| {
        assert_chunk(buf, j, 8000, 0, 2)
    });
    let element = h.element().unwrap();
    element.set_state(gst::State::Paused).unwrap();
    assert!(h.try_pull().is_none(), "nothing is pushed while paused");
    element.set_state(gst::State::Playing).unwrap();
    // Output continues where it stopped: same timeline, contiguous PTS.
    for j in 10..30 {
        h.crank_single_clock_wait().unwrap();
        assert_chunk(&h.pull().unwrap(), j, 8000, 0, 2);
    }
}

#[test]
fn state_changes_with_data_flowing_never_deadlock() {
    init();
    let pipeline = gst::parse::launch(
        "appsrc name=src is-live=true do-timestamp=true format=time \
           caps=audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved \
         ! plcjitterbuffer latency=20 ! fakesink sync=true",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Errors (flushing, not PLAYING) are expected while states change.
                let _ = src.push_buffer(gst::Buffer::from_mut_slice(tone_s16(8000, i * 80, 80)));
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let bus = pipeline.bus().unwrap();
    let states = [
        gst::State::Playing,
        gst::State::Paused,
        gst::State::Playing,
        gst::State::Ready,
        gst::State::Playing,
        gst::State::Null,
    ];
    let mut rng = Lcg(11);
    for _ in 0..1000 {
        let s = states[(rng.next_f64() * states.len() as f64) as usize];
        pipeline.set_state(s).expect("state change");
        let _ = pipeline.state(gst::ClockTime::from_seconds(10));
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            panic!("error during state changes: {msg:?}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
}

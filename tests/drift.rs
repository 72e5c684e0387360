// SPDX-License-Identifier: MPL-2.0
//! Clock drift through the element (`mode=fixed`, the default): a simulated RTP L16 sender
//! whose clock runs fast or slow by 100 ppm to 2.5 %, with 5 % loss and 30 ms of uniform
//! jitter, driven with `gst_check::Harness` and its test clock. Every output buffer is checked
//! for its exact size, offset and PTS; the stats say the delay the drift loop holds.
//!
//! The 24-hour runs are at the level of the RTP playout (`src/jitter/rtp_playout/
//! drift_tests.rs`, where the true delay is measured against the sender's clock); here each
//! skew runs for an hour through the whole element.

mod common;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use common::*;
use gst::glib;
use gst::prelude::*;
use gst_check::Harness;

const SSRC: u32 = 0x0d71_f700;
const L16_CAPS: &str = "application/x-rtp,media=audio,encoding-name=L16,clock-rate=8000,encoding-params=(string)1,payload=96";

/// An L16 stream's rate and channels; packets are 20 ms.
#[derive(Debug, Clone, Copy)]
struct Format {
    rate: u64,
    channels: usize,
}

const MONO_8K: Format = Format {
    rate: 8000,
    channels: 1,
};

impl Format {
    fn packet(self) -> i64 {
        self.rate as i64 / 50
    }

    fn caps(self) -> String {
        format!(
            "application/x-rtp,media=audio,encoding-name=L16,clock-rate={},encoding-params=(string){},payload=96",
            self.rate, self.channels
        )
    }
}
/// Fastest path through the network.
const BASE: u64 = 5 * MS;

/// A 440 Hz tone (channel c: (c + 1) × 440 Hz), 20 ms per packet.
fn payload(fmt: Format, first: i64) -> Vec<u8> {
    talk_payload(fmt, first, None)
}

/// [`payload`] in talkspurts: the tone for `.0` s, then `.1` s of it 52 dB lower, over and
/// over.
fn talk_payload(fmt: Format, first: i64, talkspurts: Option<(f64, f64)>) -> Vec<u8> {
    (first..first + fmt.packet())
        .flat_map(|n| {
            let t = n as f64 / fmt.rate as f64;
            let amp = match talkspurts {
                Some((on, off)) if t.rem_euclid(on + off) >= on => 20.0,
                _ => 8000.0,
            };
            (0..fmt.channels).flat_map(move |c| {
                let f = 440.0 * (c + 1) as f64;
                let x = (std::f64::consts::TAU * f * t).sin();
                ((x * amp) as i16).to_be_bytes()
            })
        })
        .collect()
}

/// The sender and the network: packets in arrival order, generated as they are needed.
struct Sender {
    fmt: Format,
    rng: Lcg,
    /// Nanoseconds between packets on the receiver's clock.
    period: f64,
    loss: f64,
    jitter: f64,
    next: i64,
    heap: BinaryHeap<Reverse<(u64, i64)>>,
    lost: u64,
    talkspurts: Option<(f64, f64)>,
}

impl Sender {
    fn new(fmt: Format, skew_ppm: f64, loss: f64, jitter_ms: f64, seed: u64) -> Self {
        Self {
            fmt,
            rng: Lcg(seed),
            period: 20e6 / (1.0 + skew_ppm * 1e-6),
            loss,
            jitter: jitter_ms * 1e6,
            next: 0,
            heap: BinaryHeap::new(),
            lost: 0,
            talkspurts: None,
        }
    }
}

impl Iterator for Sender {
    type Item = (u64, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        // Keep 200 ms of sending ahead of the earliest arrival, so the order is final.
        loop {
            let horizon = self.heap.peek().map_or(0, |r| r.0.0) + 200 * MS;
            if self.next as f64 * self.period > horizon as f64 && !self.heap.is_empty() {
                break;
            }
            let k = self.next;
            self.next += 1;
            let sent = k as f64 * self.period;
            // The first packet comes on the fastest path (it starts the stream).
            if k > 0 && self.rng.next_f64() < self.loss {
                self.lost += 1;
                continue;
            }
            let jitter = if k == 0 {
                0.0
            } else {
                self.rng.next_f64() * self.jitter
            };
            self.heap
                .push(Reverse(((sent + BASE as f64 + jitter) as u64, k)));
        }
        let Reverse((arrival, k)) = self.heap.pop()?;
        let p = rtp_packet(
            k as u16,
            (k * self.fmt.packet()) as u32,
            SSRC,
            96,
            &talk_payload(self.fmt, k * self.fmt.packet(), self.talkspurts),
        );
        Some((arrival, p))
    }
}

#[derive(Debug, Default)]
struct Report {
    /// From when the measured delay stayed within ±5 ms of the target (s).
    settled_s: f64,
    max_err_after_20s_ms: f64,
    max_queued_packets: u64,
    max_queued_ms: f64,
    target_ms: f64,
    drift_ppm: f64,
    /// (s, measured − target in ms) at 0.5, 1, 2, 3, 5, 10, 20, 30, 60 s and at the end.
    samples: Vec<(f64, f64)>,
}

fn f(h: &Harness, name: &str) -> f64 {
    stats(h)
        .get::<f64>(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Runs `seconds` of a sender off by `skew_ppm` through the element at `latency_ms`, in steps
/// of 100 ms so the stats can be read along the way; checks every buffer's size, offset and
/// PTS, that nothing resyncs or comes late, that concealment is only for lost packets, and
/// the ledger.
fn run_checked(skew_ppm: f64, seconds: u64, latency_ms: u32, seed: u64) -> Report {
    run_format(MONO_8K, skew_ppm, seconds, latency_ms, seed)
}

fn run_format(fmt: Format, skew_ppm: f64, seconds: u64, latency_ms: u32, seed: u64) -> Report {
    let mut h = harness(&fmt.caps(), latency_ms);
    let latency = u64::from(latency_ms) * MS;
    let mut sender = Sender::new(fmt, skew_ppm, 0.05, 30.0, seed);
    let mut pending = sender.next();
    let origin = pending.as_ref().unwrap().0;
    let mut rep = Report::default();
    let mut settled_at: Option<f64> = None;
    let mut marks = [0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0]
        .into_iter()
        .peekable();
    let n_out = seconds * 100;
    for j in 0..n_out {
        let deadline = origin + latency + j * 10 * MS;
        while let Some((arrival, _)) = pending.as_ref() {
            if *arrival > deadline {
                break;
            }
            let (arrival, data) = pending.take().unwrap();
            h.push(buffer(arrival, data)).expect("push");
            pending = sender.next();
        }
        h.crank_single_clock_wait().expect("crank");
        let out = h.pull().expect("output buffer");
        assert_chunk(&out, j, fmt.rate, origin, 2 * fmt.channels);
        if j % 10 != 9 {
            continue;
        }
        let t = (j + 1) as f64 / 100.0;
        let s = stats(&h);
        let measured = s.get::<f64>("measured-delay-ms").unwrap();
        let target = s.get::<f64>("target-delay-ms").unwrap();
        let err = measured - target;
        rep.target_ms = target;
        if let Some(&m) = marks.peek()
            && t >= m
        {
            rep.samples.push((m, err));
            marks.next();
        }
        if err.abs() > 5.0 {
            settled_at = None;
        } else if settled_at.is_none() {
            settled_at = Some(t);
        }
        if t >= 20.0 {
            rep.max_err_after_20s_ms = rep.max_err_after_20s_ms.max(err.abs());
        }
        rep.max_queued_packets = rep
            .max_queued_packets
            .max(s.get::<u64>("queued-packets").unwrap());
        rep.max_queued_ms = rep.max_queued_ms.max(s.get::<f64>("queued-ms").unwrap());
        assert_eq!(s.get::<u64>("resyncs").unwrap(), 0, "resync at {t} s: {s}");
        assert_eq!(s.get::<u64>("late").unwrap(), 0, "late at {t} s: {s}");
        assert_eq!(s.get::<i64>("unaccounted").unwrap(), 0, "{s}");
    }
    let s = stats(&h);
    rep.samples.push((
        seconds as f64,
        f(&h, "measured-delay-ms") - f(&h, "target-delay-ms"),
    ));
    rep.drift_ppm = f(&h, "drift-ppm");
    rep.settled_s = settled_at.unwrap_or(f64::INFINITY);
    // Concealment only for what was lost: the sender's losses (the last few may still be in
    // flight), 20 ms each.
    let lost = s.get::<u64>("lost").unwrap();
    assert!(
        lost <= sender.lost && lost + 10 >= sender.lost,
        "lost {lost} of {}: {s}",
        sender.lost
    );
    assert!(s.get::<u64>("concealed-ms").unwrap() <= lost * 20, "{s}");
    eprintln!("{skew_ppm:+} ppm, {seconds} s at {latency_ms} ms: {rep:?}");
    rep
}

#[track_caller]
fn check(skew_ppm: f64, latency_ms: u32, r: &Report) {
    let latency = f64::from(latency_ms);
    // The delay held: the latency plus the first packet's lateness (it came on the fastest
    // path here, so within the line's accuracy).
    assert!(
        (latency - 1.0..=latency + 5.0).contains(&r.target_ms),
        "{r:?}"
    );
    assert!(r.settled_s <= 20.0, "{r:?}");
    assert!(r.max_err_after_20s_ms <= 5.0, "{r:?}");
    assert!((r.drift_ppm - skew_ppm).abs() <= 50.0, "{r:?}");
    // Bounded: the target, the 30 ms jitter, a packet, and a pull-in excursion.
    let pull_in = if skew_ppm.abs() > 5000.0 { 40.0 } else { 5.0 };
    assert!(
        r.max_queued_ms <= r.target_ms + 30.0 + 20.0 + pull_in,
        "{r:?}"
    );
    assert!(r.max_queued_packets <= 10, "{r:?}");
}

const HOUR: u64 = 3600;

#[test]
fn plus_100_ppm_for_an_hour() {
    check(100.0, 60, &run_checked(100.0, HOUR, 60, 1));
}

#[test]
fn minus_100_ppm_for_an_hour() {
    check(-100.0, 60, &run_checked(-100.0, HOUR, 60, 2));
}

#[test]
fn plus_1000_ppm_for_an_hour() {
    check(1000.0, 60, &run_checked(1000.0, HOUR, 60, 3));
}

#[test]
fn minus_1000_ppm_for_an_hour() {
    check(-1000.0, 60, &run_checked(-1000.0, HOUR, 60, 4));
}

#[test]
fn plus_minus_two_and_a_half_percent_for_10_minutes() {
    // The pull-in swings the delay by up to ~40 ms in the first 10 s: latency 100 ms leaves
    // room for that on top of the jitter, so nothing runs dry.
    for (ppm, seed) in [(25_000.0, 5), (-25_000.0, 6)] {
        check(ppm, 100, &run_checked(ppm, 600, 100, seed));
    }
}

#[test]
fn stereo_48_khz_at_minus_1000_ppm() {
    // The 128-tap resampler, interleaved channels.
    let fmt = Format {
        rate: 48_000,
        channels: 2,
    };
    let t = std::time::Instant::now();
    let r = run_format(fmt, -1000.0, 120, 60, 9);
    eprintln!("48 kHz stereo, 120 s: {:?} of wall time", t.elapsed());
    check(-1000.0, 60, &r);
}

#[test]
fn eos_plays_out_what_the_resampler_holds() {
    // +1000 ppm, 470 packets of tone, then EOS: the drain goes on until the last received
    // frame has come out of the resampler. With silence as concealment, the output's last loud
    // sample is the end of the tone: 75,200 media frames at the ratio, ~75,125 output frames
    // (the pull-in moved the delay by a few ms at most).
    let mut h = harness(L16_CAPS, 60);
    h.element().unwrap().set_property_from_str("plc", "silence");
    let inputs = Sender::new(MONO_8K, 1000.0, 0.0, 0.0, 10).take(470);
    let mut out: Vec<i16> = Vec::new();
    drive(&mut h, 60 * MS, 936, inputs, |_, buf| {
        out.extend(s16(&buf.map_readable().unwrap()));
    });
    let s = stats(&h);
    assert_ne!(s.get::<f64>("drift-ratio").unwrap(), 1.0, "resampling: {s}");
    assert!(h.push_event(gst::event::Eos::new()));
    while h.pull_event().unwrap().type_() != gst::EventType::Eos {}
    let mut drained = 0;
    while let Some(buf) = h.try_pull() {
        out.extend(s16(&buf.map_readable().unwrap()));
        drained += 1;
    }
    assert!(drained >= 1, "{drained}");
    let last_loud = out.iter().rposition(|x| x.abs() > 200).unwrap();
    let expected = 470.0 * 160.0 / 1.001;
    assert!(
        (last_loud as f64 - expected).abs() < 80.0,
        "tone ends at {last_loud}, expected ~{expected}; {} frames out, {drained} drained",
        out.len()
    );
    assert!(
        out.len() > last_loud + 8,
        "the drain stopped inside the tone"
    );
    assert_eq!(stats(&h).get::<u64>("packets-played").unwrap(), 470);
}

#[test]
fn mode_off_drifts_until_a_resync_and_fixed_does_not() {
    // +1000 ppm with mode=off: the sender's packets come earlier and earlier against the
    // nominal playout, the queue grows by 1 ms/s until it exceeds its bound and resyncs.
    let mut h = harness(L16_CAPS, 60);
    h.element().unwrap().set_state(gst::State::Null).unwrap();
    h.element().unwrap().set_property_from_str("mode", "off");
    h.set_src_caps_str(L16_CAPS);
    h.play();
    let inputs = Sender::new(MONO_8K, 1000.0, 0.0, 0.0, 7);
    drive(&mut h, 60 * MS, 300 * 100, inputs, |_, _| {});
    let s = stats(&h);
    assert!(s.get::<u64>("resyncs").unwrap() >= 1, "{s}");
    assert!(
        (s.get::<f64>("drift-ppm").unwrap() - 1000.0).abs() < 20.0,
        "{s}"
    );
    assert_eq!(s.get::<f64>("drift-ratio").unwrap(), 1.0, "{s}");
}

#[test]
fn mode_property_defaults_to_fixed() {
    init();
    let e = gst::ElementFactory::make("plcjitterbuffer")
        .build()
        .unwrap();
    let v = e.property_value("mode");
    let (_, ev) = glib::EnumValue::from_value(&v).unwrap();
    assert_eq!(ev.nick(), "fixed");
    e.set_property_from_str("mode", "off");
    let v = e.property_value("mode");
    let (_, ev) = glib::EnumValue::from_value(&v).unwrap();
    assert_eq!(ev.nick(), "off");
}

/// Stats every second (by whole seconds) of 70 s of mode=adaptive, min-latency 10 ms,
/// max-latency 300 ms, starting at latency 40 ms; a sender 300 ppm fast with 1 % loss and 5 ms
/// of jitter, 60 ms from 20 s, 5 ms again from 40 s; a tone, or the tone in talkspurts.
fn adaptive_jitter_step(talkspurts: Option<(f64, f64)>) -> impl Fn(f64, &str) -> f64 + use<> {
    init();
    let mut h = Harness::new("plcjitterbuffer");
    let e = h.element().unwrap();
    e.set_property("latency", 40u32);
    e.set_property_from_str("mode", "adaptive");
    e.set_property("min-latency", 10u32);
    e.set_property("max-latency", 300u32);
    // The output starts with the first packet: with silence-until-data the src task may start
    // it on silence before the first push, a race with the PTS the test expects.
    e.set_property("silence-until-data", false);
    h.set_src_caps_str(L16_CAPS);
    h.play();
    let latency = 40 * MS;
    let mut sender = Sender::new(MONO_8K, 300.0, 0.01, 5.0, 21);
    sender.talkspurts = talkspurts;
    let mut pending = sender.next();
    let origin = pending.as_ref().unwrap().0;
    let mut at = std::collections::BTreeMap::new();
    for j in 0..70 * 100u64 {
        let t = (j + 1) as f64 / 100.0;
        sender.jitter = if (20.0..40.0).contains(&(t + 0.2)) {
            60e6
        } else {
            5e6
        };
        let deadline = origin + latency + j * 10 * MS;
        while let Some((arrival, _)) = pending.as_ref() {
            if *arrival > deadline {
                break;
            }
            let (arrival, data) = pending.take().unwrap();
            h.push(buffer(arrival, data)).expect("push");
            pending = sender.next();
        }
        h.crank_single_clock_wait().expect("crank");
        let out = h.pull().expect("output buffer");
        assert_chunk(&out, j, 8000, origin, 2);
        if j % 10 == 9 {
            let s = stats(&h);
            at.insert((j + 1) / 10, s);
        }
    }
    let s = stats(&h);
    assert_eq!(s.get::<u64>("resyncs").unwrap(), 0, "{s}");
    assert_eq!(s.get::<i64>("unaccounted").unwrap(), 0, "{s}");
    let get = move |t: f64, name: &str| -> f64 {
        let s = &at[&((t * 10.0).round() as u64)];
        s.get::<f64>(name)
            .unwrap_or_else(|_| s.get::<u64>(name).unwrap() as f64)
    };
    for t in [
        19.5, 20.5, 21.0, 22.0, 30.0, 39.0, 45.0, 46.0, 50.0, 60.0, 70.0,
    ] {
        eprintln!(
            "{}{t:5.1} s: target {:5.1} ms, measured {:5.1} ms, late {}, inserted {} ms, \
             removed {} ms (cut from pauses {} ms)",
            if talkspurts.is_some() {
                "talkspurts "
            } else {
                "tone "
            },
            get(t, "target-delay-ms"),
            get(t, "measured-delay-ms"),
            get(t, "late"),
            get(t, "stretch-inserted-ms"),
            get(t, "stretch-removed-ms"),
            get(t, "stretch-compressed-ms")
        );
    }
    get
}

#[test]
fn adaptive_mode_follows_the_jitter_through_the_element() {
    let get = adaptive_jitter_step(None);
    // Before: a small target, the delay on it (it started at 40 ms and came down).
    assert!(get(19.5, "target-delay-ms") < 15.0);
    assert!((get(19.5, "measured-delay-ms") - get(19.5, "target-delay-ms")).abs() < 5.0);
    assert!(get(19.5, "stretch-removed-ms") > 20.0);
    // Up at once: the target within a second, the delay by inserted concealment right after.
    assert!(get(21.0, "target-delay-ms") > 50.0);
    assert!(get(22.0, "measured-delay-ms") > get(22.0, "target-delay-ms") - 16.0);
    assert!(get(22.0, "stretch-inserted-ms") >= 30.0);
    assert!((get(39.0, "measured-delay-ms") - get(39.0, "target-delay-ms")).abs() < 5.0);
    // Down within seconds: the target after its 4 s peak hold, the delay at up to 1 % faster
    // (a tone has no quiet stretch to cut).
    assert!(get(50.0, "target-delay-ms") < 15.0);
    assert!(get(60.0, "measured-delay-ms") < 20.0);
    assert_eq!(get(70.0, "stretch-compressed-ms"), 0.0);
    // Late packets only while the jitter jumped (a fraction of the 50 sent per second).
    assert!(get(70.0, "late") < 60.0, "{}", get(70.0, "late"));
}

#[test]
fn adaptive_mode_cuts_pauses_short_through_the_element() {
    // The same in talkspurts (1 s of the tone, 0.6 s 52 dB lower): the delay falls by cuts in
    // the pauses, seconds sooner than resampling alone brings the tone down.
    let talk = adaptive_jitter_step(Some((1.0, 0.6)));
    assert!(talk(46.0, "target-delay-ms") < 15.0);
    assert!(
        talk(46.0, "measured-delay-ms") < talk(46.0, "target-delay-ms") + 8.0,
        "{}",
        talk(46.0, "measured-delay-ms")
    );
    assert!(talk(70.0, "stretch-compressed-ms") >= 30.0);
    assert!(talk(70.0, "late") < 60.0, "{}", talk(70.0, "late"));
}

#[test]
fn latency_range_properties() {
    init();
    let e = gst::ElementFactory::make("plcjitterbuffer")
        .build()
        .unwrap();
    assert_eq!(e.property::<u32>("min-latency"), 10);
    assert_eq!(e.property::<u32>("max-latency"), 500);
    e.set_property_from_str("mode", "adaptive");
    e.set_property("min-latency", 20u32);
    e.set_property("max-latency", 200u32);
    assert_eq!(e.property::<u32>("min-latency"), 20);
    assert_eq!(e.property::<u32>("max-latency"), 200);
    let v = e.property_value("mode");
    let (_, ev) = glib::EnumValue::from_value(&v).unwrap();
    assert_eq!(ev.nick(), "adaptive");
}

#[test]
fn a_late_first_packet_is_held_as_it_started_also_after_silence() {
    // The first packet comes 11 ms behind the fastest path, the rest on it; the output started
    // on silence before it (silence-until-data). The delay held is the one the stream starts
    // with, latency + 11 ms: the loop must not measure it at the first packet alone (which
    // would take 60 ms as the target and pull the delay down by 11 ms in the first seconds).
    let mut h = harness_with(L16_CAPS, 60, true);
    h.set_time(gst::ClockTime::ZERO).unwrap();
    let fmt = MONO_8K;
    let packet = |k: u64| {
        let arrival = 1_005 * MS + k * 20 * MS + if k == 0 { 11 * MS } else { 0 };
        let p = rtp_packet(
            k as u16,
            (k as i64 * fmt.packet()) as u32,
            SSRC,
            96,
            &payload(fmt, k as i64 * fmt.packet()),
        );
        (arrival, p)
    };
    let mut k = 0u64;
    let mut targets = vec![];
    // The output runs from time 0 on silence; packets from 1 s on, 5 s of them.
    for j in 0..600u64 {
        let deadline = 60 * MS + j * 10 * MS;
        while k < 250 && packet(k).0 <= deadline {
            let (arrival, data) = packet(k);
            h.push(buffer(arrival, data)).expect("push");
            k += 1;
        }
        h.crank_single_clock_wait().expect("crank");
        h.pull().expect("output buffer");
        if j >= 120 && j % 10 == 0 {
            let s = stats(&h);
            targets.push((
                j,
                s.get::<f64>("target-delay-ms").unwrap(),
                s.get::<f64>("measured-delay-ms").unwrap(),
            ));
        }
    }
    for &(j, target, measured) in &targets {
        assert!(
            (target - 71.0).abs() <= 1.5,
            "chunk {j}: target {target} ms"
        );
        assert!(
            (measured - target).abs() <= 1.0,
            "chunk {j}: measured {measured} ms, target {target} ms"
        );
    }
}

const RAW_CAPS: &str = "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved";

/// Raw datagrams (10 ms of S16LE 8 kHz mono, no header) from a sender off by `skew_ppm`, with
/// `loss` and order-keeping uniform jitter, through the element in `mode` for `seconds`;
/// checks every buffer's size, offset and PTS and returns the stats at the end and the
/// largest |measured − target| after 20 s (ms).
fn run_raw(mode: &str, skew_ppm: f64, loss: f64, seconds: u64) -> (gst::Structure, f64) {
    use gstnetaudio::impair::{Impairment, Schedule};
    let mut h = harness(RAW_CAPS, 40);
    h.element().unwrap().set_property_from_str("mode", mode);
    let imp = Impairment {
        loss,
        jitter_ns: 5 * MS,
        skew_ppm,
        seed: 3,
    };
    let mut sched = Schedule::new(imp, 10 * MS).peekable();
    let origin = sched.peek().unwrap().arrive_ns;
    let mut max_err = 0.0f64;
    for j in 0..seconds * 100 {
        let deadline = origin + 40 * MS + j * 10 * MS;
        while let Some(d) = sched.next_if(|d| d.arrive_ns <= deadline) {
            h.push(buffer(d.arrive_ns, tone_s16(8000, d.index * 80, 80)))
                .expect("push");
        }
        h.crank_single_clock_wait().expect("crank");
        let out = h.pull().expect("output buffer");
        assert_chunk(&out, j, 8000, origin, 2);
        if j > 2000 && j % 10 == 0 {
            let err = f(&h, "measured-delay-ms") - f(&h, "target-delay-ms");
            max_err = max_err.max(err.abs());
        }
    }
    let s = stats(&h);
    assert_eq!(s.get::<i64>("unaccounted").unwrap(), 0, "{s}");
    (s, max_err)
}

#[test]
fn raw_input_at_plus_and_minus_1000_ppm_for_10_minutes() {
    // Raw datagrams carry no timestamp: the delay the loop holds is the wait of the fastest
    // recent datagram on the placed timeline, the same one the placement's own gap adjustment
    // aims at. 5 % loss, 5 ms jitter, latency 40.
    init();
    for skew in [1000.0, -1000.0] {
        let (s, max_err) = run_raw("fixed", skew, 0.05, 600);
        eprintln!("raw {skew:+} ppm: max |measured - target| after 20 s {max_err:.2} ms; {s}");
        assert!(max_err < 5.0, "{max_err} {s}");
        assert!(
            (s.get::<f64>("drift-ppm").unwrap() - skew).abs() < 50.0,
            "{s}"
        );
        assert_eq!(s.get::<u64>("resyncs").unwrap(), 0, "{s}");
        assert_eq!(s.get::<u64>("late").unwrap(), 0, "{s}");
        assert_eq!(s.get::<u64>("overflow-dropped").unwrap(), 0, "{s}");
        let target = s.get::<f64>("target-delay-ms").unwrap();
        assert!((40.0..=46.0).contains(&target), "{s}");
    }
}

#[test]
fn raw_input_without_compensation_drifts() {
    // The control: the same +1000 ppm sender with mode=off fills the queue by 1 ms a second
    // until the overflow policy cuts it, and -1000 ppm runs dry until its data is late.
    init();
    let (fast, _) = run_raw("off", 1000.0, 0.0, 300);
    assert!(fast.get::<u64>("overflow-dropped").unwrap() > 0, "{fast}");
    let (slow, _) = run_raw("off", -1000.0, 0.0, 300);
    assert!(slow.get::<u64>("resyncs").unwrap() > 0, "{slow}");
    let (fixed, _) = run_raw("fixed", 1000.0, 0.0, 300);
    assert_eq!(fixed.get::<u64>("overflow-dropped").unwrap(), 0, "{fixed}");
    assert_eq!(fixed.get::<u64>("resyncs").unwrap(), 0, "{fixed}");
}

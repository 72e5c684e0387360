// SPDX-License-Identifier: MPL-2.0
//! The bad-input catalogue (`BAD-INPUT.md`, classes A1-F5): one named test per class, each
//! feeding the real element. Datagram-level classes go through `rawudpaudiosrc` on real loopback
//! sockets into `plcjitterbuffer` (or, where arrival timing matters, straight into
//! `plcjitterbuffer` with raw audio); RTP classes drive `plcjitterbuffer` in a
//! `gst_check::Harness` with its test clock, so hours of simulated time run in seconds.
//!
//! Every test checks the common invariants: no panic, no ERROR message (except F1/F2/E11 caps,
//! whose refusal must name the problem), every output buffer exactly 10 ms with contiguous
//! PTS/offsets, the stream playing again after the bad input, the counter for the class moved by
//! exactly the number of bad packets, warnings rate-limited, and the stats reconciling
//! ([`assert_reconciles`]).
//!
//! Warnings about bad input are `GST_WARNING` debug messages (neither element posts WARNING
//! messages on the bus for them): a log function collects them per element, and the tests
//! assert at most one per second of arrival time, and none on the bus.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use common::{Lcg, MS, OwnBus, assert_chunk, assert_ledger, rtp_packet, s16};
use gst::glib;
use gst::prelude::*;
use gst_check::Harness;

// ---------------------------------------------------------------------------------------------
// Observation: warnings in the debug log, errors and warnings on the bus.

/// Warnings (`GST_LEVEL_WARNING`) logged by the two elements: (object name, message).
static WARNINGS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn init() {
    static INIT: Once = Once::new();
    common::init();
    INIT.call_once(|| {
        for cat in ["plcjitterbuffer", "rawudpaudiosrc"] {
            gst::log::set_threshold_for_name(cat, gst::DebugLevel::Warning);
        }
        if std::env::var_os("GST_DEBUG").is_none() {
            // Keep the test output readable: the warnings are asserted on, not printed.
            gst::log::remove_default_log_function();
        }
        gst::log::add_log_function(|cat, level, _file, _func, _line, obj, msg| {
            if level != gst::DebugLevel::Warning
                || !matches!(cat.name(), "plcjitterbuffer" | "rawudpaudiosrc")
            {
                return;
            }
            let (Some(obj), Some(text)) = (obj, msg.get()) else {
                return;
            };
            WARNINGS
                .lock()
                .unwrap()
                .push((obj.to_string(), text.to_string()));
        });
    });
}

/// A name no other element in this process has (tests run in parallel).
fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::SeqCst))
}

/// The warnings element `name` logged so far.
fn warnings(name: &str) -> Vec<String> {
    WARNINGS
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, m)| m.clone())
        .collect()
}

/// No ERROR on `bus`, and at most one WARNING message per second of the `span` the bad input
/// arrived over.
#[track_caller]
fn assert_bus_clean(bus: &gst::Bus, span: Duration) {
    if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("unexpected error: {msg:?}");
    }
    let mut n = 0u64;
    while bus.pop_filtered(&[gst::MessageType::Warning]).is_some() {
        n += 1;
    }
    assert!(
        n <= 1 + span.as_secs(),
        "{n} WARNING messages over {span:?}"
    );
}

/// The element logged at least one warning (it did see the bad input) and at most one per class
/// per second of `span`.
#[track_caller]
fn assert_warned_rate_limited(name: &str, span: Duration) -> Vec<String> {
    assert!(
        !warnings(name).is_empty(),
        "{name}: the bad input was not reported"
    );
    assert_rate_limited(name, span)
}

/// At most one warning per class (the text before the first parenthesis) per second of `span`.
#[track_caller]
fn assert_rate_limited(name: &str, span: Duration) -> Vec<String> {
    let w = warnings(name);
    let mut classes: Vec<&str> = w.iter().map(|m| m.split(" (").next().unwrap()).collect();
    classes.sort();
    for c in classes.chunk_by(|a, b| a == b) {
        assert!(
            c.len() as u64 <= 1 + span.as_secs(),
            "{name}: {} warnings '{}' over {span:?}: {w:?}",
            c.len(),
            c[0]
        );
    }
    w
}

/// The stats structure of either element reconciles: every buffer that reached the element is
/// accounted for exactly once (`unaccounted` is 0 and both identities of the ledger hold), every
/// counter that is a sum of others is that sum, what is held now is within the most held, and
/// the output time is split exactly between played, concealed, silent and DTX audio.
#[track_caller]
fn assert_reconciles(stats: &gst::StructureRef) {
    let get = |f: &str| {
        stats
            .get::<u64>(f)
            .unwrap_or_else(|e| panic!("stats field {f}: {e} in {stats}"))
    };
    let sum = |fields: &[&str]| fields.iter().map(|f| get(f)).sum::<u64>();
    match stats.name().as_str() {
        "application/x-rawudpaudiosrc-stats" => {
            assert_eq!(
                get("dropped"),
                sum(&[
                    "dropped-empty",
                    "dropped-oversized",
                    "dropped-not-whole-frames"
                ]),
                "dropped is the sum of its reasons: {stats}"
            );
            assert!(
                get("bytes") >= get("packets"),
                "every packet has bytes: {stats}"
            );
        }
        "application/x-plcjitterbuffer-stats" => {
            // The ledger; what is held now within the most ever held (itself within the
            // caps, see `assert_within_caps`).
            assert_ledger(stats);
            let rtp = stats.has_field("malformed");
            if rtp {
                let malformed: u64 = stats
                    .fields()
                    .filter(|f| f.starts_with("malformed-"))
                    .map(|f| get(f))
                    .sum();
                assert_eq!(get("malformed"), malformed, "malformed sum: {stats}");
            }
            // Each 10 ms of output is received audio, concealment, silence or (RTP) a sender
            // pause; the millisecond counts are floored, so each may lose less than 1 ms.
            let parts = ["played-ms", "concealed-ms", "silence-ms", "dtx-ms"];
            let parts = &parts[..if rtp { 4 } else { 3 }];
            let (total, pushed) = (sum(parts), get("pushed"));
            assert!(
                total <= pushed * 10 && total + parts.len() as u64 >= pushed * 10,
                "{parts:?} sum to {total} ms for {pushed} buffers: {stats}"
            );
            assert!(stats.get::<f64>("queued-ms").unwrap() >= 0.0, "{stats}");
            // Nothing is played that was not received.
            if get("packets-played") == 0 && get("packets-queued") == 0 {
                assert_eq!(get("played-ms"), 0, "{stats}");
            }
        }
        other => panic!("unknown stats structure {other}"),
    }
}

/// The most `element` (a plcjitterbuffer) ever held stayed within its `max-packets` and
/// `max-bytes`.
#[track_caller]
fn assert_within_caps(element: &gst::Element) {
    let stats = element.property::<gst::Structure>("stats");
    let max_packets = u64::from(element.property::<u32>("max-packets"));
    let max_bytes = u64::from(element.property::<u32>("max-bytes"));
    let held = stats.get::<u64>("max-queued-packets").unwrap();
    let bytes = stats.get::<u64>("max-queued-bytes").unwrap();
    assert!(
        held <= max_packets && bytes <= max_bytes,
        "held {held} packets / {bytes} bytes, caps {max_packets} / {max_bytes}: {stats}"
    );
}

// ---------------------------------------------------------------------------------------------
// plcjitterbuffer in a Harness.

/// `plcjitterbuffer` in a harness with its own bus; output starts with the first input.
struct Jb {
    h: Harness,
    bus: OwnBus,
    name: String,
}

impl Jb {
    fn element(&self) -> gst::Element {
        self.h.element().unwrap()
    }

    fn stats(&self) -> gst::Structure {
        self.element().property::<gst::Structure>("stats")
    }

    #[track_caller]
    fn stat(&self, field: &str) -> u64 {
        self.stats()
            .get::<u64>(field)
            .unwrap_or_else(|e| panic!("stat {field}: {e}"))
    }

    fn queued_ms(&self) -> f64 {
        self.stats().get::<f64>("queued-ms").unwrap()
    }

    /// The common end-of-test checks: clean bus, reconciled stats.
    #[track_caller]
    fn finish(&self, span: Duration) {
        assert_bus_clean(&self.bus, span);
        assert_rate_limited(&self.name, span);
        assert_reconciles(&self.stats());
        assert_within_caps(&self.element());
    }
}

fn jb(caps: &str, latency_ms: u32) -> Jb {
    jb_with(caps, latency_ms, |_| {})
}

fn jb_with(caps: &str, latency_ms: u32, setup: impl FnOnce(&gst::Element)) -> Jb {
    init();
    let name = unique("jb");
    let element = gst::ElementFactory::make("plcjitterbuffer")
        .name(name.as_str())
        .property("latency", latency_ms)
        .property("silence-until-data", false)
        .build()
        .unwrap();
    setup(&element);
    let bus = OwnBus::on(&element);
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str(caps);
    h.play();
    Jb { h, bus, name }
}

fn stamped(pts: Option<u64>, data: Vec<u8>) -> gst::Buffer {
    let mut b = gst::Buffer::from_mut_slice(data);
    b.get_mut()
        .unwrap()
        .set_pts(pts.map(gst::ClockTime::from_nseconds));
    b
}

/// One input: arrival running time, bytes, and whether the buffer carries the arrival as PTS
/// (without, the element reads the clock: the driver sets the test clock to the arrival first).
#[derive(Clone)]
struct In {
    at: u64,
    data: Vec<u8>,
    pts: bool,
}

fn inputs(v: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Vec<In> {
    let mut v: Vec<In> = v
        .into_iter()
        .map(|(at, data)| In {
            at,
            data,
            pts: true,
        })
        .collect();
    v.sort_by_key(|i| i.at);
    v
}

/// Drives the element until `n_out` buffers came out: before each clock wait of the output task
/// it pushes every input that has arrived by then and calls `hook` with the clock time; after
/// the wait it collects every buffer the task pushed (several when deadlines moved into the
/// past), numbering them from 0.
fn drive(
    jb: &mut Jb,
    inputs: Vec<In>,
    n_out: u64,
    mut hook: impl FnMut(&mut Jb, u64),
    mut check: impl FnMut(u64, &gst::Buffer),
) {
    let clock = jb.h.testclock().unwrap();
    let push = |jb: &mut Jb, i: In| {
        if !i.pts && clock.time().nseconds() < i.at {
            jb.h.set_time(gst::ClockTime::from_nseconds(i.at)).unwrap();
        }
        jb.h.push(stamped(i.pts.then_some(i.at), i.data))
            .expect("push");
    };
    let mut inputs = inputs.into_iter().peekable();
    let first = inputs.next().expect("at least one input");
    push(jb, first);
    let mut j = 0;
    while j < n_out {
        let due = clock.wait_for_next_pending_id().time().nseconds();
        while inputs.peek().is_some_and(|i| i.at <= due) {
            let i = inputs.next().unwrap();
            push(jb, i);
        }
        hook(jb, due);
        jb.h.crank_single_clock_wait().expect("crank");
        // The task waits again once it has pushed everything due.
        clock.wait_for_next_pending_id();
        while let Some(buf) = jb.h.try_pull() {
            check(j, &buf);
            j += 1;
        }
    }
}

/// Runs `inputs` for `n_out` buffers of a `rate` Hz stream of `bpf`-byte frames whose output
/// starts at the first input, checking that every buffer is the exact 10 ms chunk that follows
/// the one before; returns the output bytes.
fn run(jb: &mut Jb, inputs: Vec<In>, n_out: u64, rate: u64, bpf: usize) -> Vec<u8> {
    let origin = inputs[0].at;
    let mut out = Vec::new();
    drive(
        jb,
        inputs,
        n_out,
        |_, _| {},
        |j, buf| {
            assert_chunk(buf, j, rate, origin, bpf);
            out.extend_from_slice(&buf.map_readable().unwrap());
        },
    );
    out
}

/// `got == want`, reporting only the first difference (the slices are long).
#[track_caller]
fn assert_same<T: PartialEq + std::fmt::Debug>(
    got: &[T],
    want: &[T],
    what: impl std::fmt::Display,
) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        let end = (i + 8).min(got.len()).min(want.len());
        panic!(
            "{what}: first difference at {i} of {}: {:?} vs {:?}",
            want.len(),
            &got[i..end],
            &want[i..end]
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: length");
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

// ---------------------------------------------------------------------------------------------
// RTP packets.

const SSRC: u32 = 0x0bad_cafe;

/// A 12-byte header with first byte `b0` (version, P, X, CC) and second byte `b1` (M, PT).
fn header(b0: u8, b1: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut v = vec![b0, b1];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Reference L16 sample `n` (distinct, never 0).
fn sample(n: i64) -> i16 {
    (n * 2).rem_euclid(30_000) as i16 + 1
}

fn l16_payload(first: i64, frames: i64) -> Vec<u8> {
    (first..first + frames)
        .flat_map(|n| sample(n).to_be_bytes())
        .collect()
}

fn reference(first: i64, frames: i64) -> Vec<i16> {
    (first..first + frames).map(sample).collect()
}

/// Where reference sample `n` first appears in `out`.
fn find(out: &[i16], n: i64) -> Option<usize> {
    let want = reference(n, 8);
    (0..out.len().saturating_sub(8)).find(|&i| out[i..i + 8] == want[..])
}

const L16_CAPS: &str = "application/x-rtp,media=audio,encoding-name=L16,clock-rate=8000,\
                        encoding-params=(string)1,payload=96";

/// Packet `k` of an L16 8 kHz mono stream of 20 ms packets: seq `seq0 + k`, ts `ts0 + 160 k`,
/// the reference audio from frame `160 k`.
fn l16(k: i64, seq0: u16, ts0: u32) -> Vec<u8> {
    rtp_packet(
        seq0.wrapping_add(k as u16),
        ts0.wrapping_add(k as u32 * 160),
        SSRC,
        96,
        &l16_payload(k * 160, 160),
    )
}

/// `count` L16 packets, packet `k` arriving at `20 k` ms.
fn l16_stream(count: i64) -> Vec<(u64, Vec<u8>)> {
    (0..count)
        .map(|k| (k as u64 * 20 * MS, l16(k, 1000, 77)))
        .collect()
}

fn run_l16(jb: &mut Jb, inputs: Vec<In>, n_out: u64) -> Vec<i16> {
    s16(&run(jb, inputs, n_out, 8000, 2))
}

/// Arrival times for `n` bad packets spread over 0.4 s to 0.9 s: within one second, so the
/// warnings they cause are rate-limited to exactly one.
fn burst_times(n: usize) -> impl Iterator<Item = u64> {
    (0..n as u64).map(move |i| 400 * MS + i * 500 * MS / n as u64)
}

/// The good L16 stream (100 packets, 2 s) with each of `bad` arriving in the burst window;
/// runs 2 s of output and asserts that the bad packets changed nothing: the output is the
/// reference audio bit for bit and all 100 good packets were received.
fn l16_unaffected_by(bad: Vec<Vec<u8>>) -> Jb {
    let mut jb = jb(L16_CAPS, 40);
    let mut v = l16_stream(100);
    v.extend(burst_times(bad.len()).zip(bad));
    let out = run_l16(&mut jb, inputs(v), 200);
    assert_same(&out[..16_000], &reference(0, 16_000)[..], "output");
    assert_eq!(jb.stat("received"), 100);
    assert_eq!((jb.stat("lost"), jb.stat("late")), (0, 0));
    assert_eq!(jb.stat("resyncs"), 0);
    jb.finish(Duration::from_secs(2));
    jb
}

/// Asserts that `n` packets were refused as `malformed-<reason>`, and nothing else counted as
/// malformed; with exactly one rate-limited warning for the burst.
#[track_caller]
fn assert_malformed(jb: &Jb, reason: &str, n: u64) {
    let s = jb.stats();
    assert_eq!(s.get::<u64>(&format!("malformed-{reason}")).unwrap(), n);
    assert_eq!(s.get::<u64>("malformed").unwrap(), n, "{s}");
    assert_eq!(s.get::<u64>("invalid").unwrap(), 0, "{s}");
    let w = warnings(&jb.name);
    assert_eq!(w.len(), 1, "one warning for a burst within 1 s: {w:?}");
    assert!(w[0].contains(reason), "{w:?}");
}

/// `n` copies of `packet` with sequence numbers and timestamps of the good stream's slots (so
/// a copy that slipped through would be heard).
fn copies(n: usize, packet: impl Fn(u16, u32) -> Vec<u8>) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| packet(1000 + (i % 100) as u16, 77 + (i % 100) as u32 * 160))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Opus.

const OPUS_CAPS: &str = "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,\
                         encoding-params=(string)2,sprop-stereo=(string)0,payload=96";

/// A voiced test signal at 48 kHz: sample `n` of channel `c`.
fn voice(n: usize, c: usize) -> f32 {
    let t = n as f32 / 48000.0;
    let f0 = 150.0 + 30.0 * (std::f32::consts::TAU * 0.5 * t).sin() + 20.0 * c as f32;
    (1..8)
        .map(|h| 0.1 / h as f32 * (std::f32::consts::TAU * f0 * h as f32 * t).sin())
        .sum()
}

/// `count` Opus packets of `frame` samples from `enc` (with `channels` channels), starting at
/// sample `start`.
fn encode(
    enc: &mut opus::Encoder,
    channels: usize,
    frame: usize,
    start: usize,
    count: usize,
) -> Vec<Vec<u8>> {
    (0..count)
        .map(|k| {
            let pcm: Vec<f32> = (0..frame)
                .flat_map(|i| (0..channels).map(move |c| voice(start + k * frame + i, c)))
                .collect();
            enc.encode_vec_float(&pcm, 4000).unwrap()
        })
        .collect()
}

fn voip_encoder() -> opus::Encoder {
    let mut enc = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    enc.set_bitrate(opus::Bitrate::Bits(32000)).unwrap();
    enc
}

/// `count` 20 ms Opus packets, packet `k` with seq `k`, ts `960 k`, arriving at `20 k` ms.
fn opus_stream(count: usize) -> Vec<(u64, Vec<u8>)> {
    encode(&mut voip_encoder(), 1, 960, 0, count)
        .into_iter()
        .enumerate()
        .map(|(k, p)| {
            (
                k as u64 * 20 * MS,
                rtp_packet(k as u16, (k * 960) as u32, SSRC, 96, &p),
            )
        })
        .collect()
}

/// Runs the same Opus input with and without `bad` (the bad packets replace the packet in slot
/// 60, which the reference simply loses, and 100 more arrive in the burst window): the output
/// must be identical, the slot concealed in both. Returns the harness that got the bad input.
fn opus_bad_is_a_loss(bad: impl Fn(u16, u32) -> Vec<u8>) -> Jb {
    let good: Vec<(u64, Vec<u8>)> = opus_stream(100)
        .into_iter()
        .enumerate()
        .filter(|(k, _)| *k != 60)
        .map(|(_, p)| p)
        .collect();
    let mut reference = jb(OPUS_CAPS, 40);
    let want = run(&mut reference, inputs(good.clone()), 200, 48000, 4);
    assert_eq!(reference.stat("lost"), 1);

    let mut with_bad = good;
    with_bad.push((60 * 20 * MS, bad(60, 60 * 960)));
    for (i, t) in burst_times(100).enumerate() {
        with_bad.push((t, bad(i as u16, i as u32 * 960)));
    }
    let mut jb = jb(OPUS_CAPS, 40);
    let got = run(&mut jb, inputs(with_bad), 200, 48000, 4);
    assert!(
        got == want,
        "a refused packet must have exactly the effect of a loss"
    );
    assert_eq!(jb.stat("received"), 99);
    assert_eq!(jb.stat("lost"), 1);
    assert!(rms(&f32s(&got)[48_000..96_000]) > 0.05, "the stream plays");
    let w = warnings(&jb.name);
    assert_eq!(w.len(), 1, "one warning for bad packets within 1 s: {w:?}");
    jb.finish(Duration::from_secs(2));
    jb
}

/// An RTP Opus packet whose payload is `payload`.
fn opus_rtp(payload: Vec<u8>) -> impl Fn(u16, u32) -> Vec<u8> {
    move |seq, ts| rtp_packet(seq, ts, SSRC, 96, &payload)
}

// ---------------------------------------------------------------------------------------------
// rawudpaudiosrc ! plcjitterbuffer ! appsink, on loopback.

/// Generous bound for waits that normally end within milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);

const S16_MONO_8K: &str = "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved";

struct RawPipe {
    pipeline: gst::Pipeline,
    src: gst::Element,
    jb: gst::Element,
    sink: gst_app::AppSink,
    bus: gst::Bus,
    port: u16,
    src_name: String,
    jb_name: String,
    /// Output bytes so far and the number of buffers, whose cadence is checked.
    out: Vec<u8>,
    buffers: u64,
    origin: Option<u64>,
    rate: u64,
    bpf: usize,
}

impl RawPipe {
    fn new(caps: &str, src_props: &str, latency_ms: u32) -> Self {
        init();
        let src_name = unique("src");
        let jb_name = unique("jb");
        let pipeline = gst::parse::launch(&format!(
            "rawudpaudiosrc name={src_name} address=127.0.0.1 port=0 caps=\"{caps}\" {src_props} \
             ! plcjitterbuffer name={jb_name} latency={latency_ms} silence-until-data=false \
             ! appsink name=sink sync=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = pipeline.by_name(&src_name).unwrap();
        let jb = pipeline.by_name(&jb_name).unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let bus = pipeline.bus().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let port = src.property::<i32>("port") as u16;
        assert_ne!(port, 0);
        let info = gst_audio::AudioInfo::from_caps(&caps.parse::<gst::Caps>().unwrap()).unwrap();
        Self {
            pipeline,
            src,
            jb,
            sink,
            bus,
            port,
            src_name,
            jb_name,
            out: Vec::new(),
            buffers: 0,
            origin: None,
            rate: u64::from(info.rate()),
            bpf: info.bpf() as usize,
        }
    }

    fn to(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Pulls one output buffer, checking it follows the previous one exactly.
    fn pull(&mut self) {
        let sample = self
            .sink
            .try_pull_sample(gst::ClockTime::from_seconds(PATIENCE.as_secs()))
            .expect("the output never stops");
        let buf = sample.buffer().unwrap();
        let origin = *self.origin.get_or_insert(buf.pts().unwrap().nseconds());
        assert_chunk(buf, self.buffers, self.rate, origin, self.bpf);
        self.buffers += 1;
        self.out.extend_from_slice(&buf.map_readable().unwrap());
    }

    /// Pulls until `want` (output bytes) has been played, within `PATIENCE`.
    #[track_caller]
    fn pull_until_played(&mut self, want: &[u8]) {
        let start = Instant::now();
        let mut searched = 0;
        loop {
            self.pull();
            let n = want.len();
            if self.out.len() >= n {
                let found = (searched..=self.out.len() - n).any(|i| self.out[i..i + n] == *want);
                if found {
                    return;
                }
                searched = self.out.len() + 1 - n;
            }
            assert!(start.elapsed() < PATIENCE, "the good datagram never played");
        }
    }

    fn src_stat(&self, field: &str) -> u64 {
        self.src
            .property::<gst::Structure>("stats")
            .get::<u64>(field)
            .unwrap()
    }

    fn jb_stat(&self, field: &str) -> u64 {
        self.jb
            .property::<gst::Structure>("stats")
            .get::<u64>(field)
            .unwrap()
    }

    /// Clean bus, both elements' stats reconciled, every datagram the source pushed received by
    /// the jitter buffer; then stops.
    #[track_caller]
    fn finish(self, span: Duration) {
        let src_stats = self.src.property::<gst::Structure>("stats");
        let jb_stats = self.jb.property::<gst::Structure>("stats");
        assert_reconciles(&src_stats);
        assert_reconciles(&jb_stats);
        assert_within_caps(&self.jb);
        assert_eq!(
            src_stats.get::<u64>("packets").unwrap(),
            jb_stats.get::<u64>("received").unwrap() + jb_stats.get::<u64>("invalid").unwrap(),
            "{src_stats} / {jb_stats}"
        );
        assert_eq!(src_stats.get::<u64>("receive-errors").unwrap(), 0);
        // The source filtered everything malformed: the jitter buffer had nothing to warn about.
        assert!(warnings(&self.jb_name).is_empty());
        assert_bus_clean(&self.bus, span);
        self.pipeline.set_state(gst::State::Null).unwrap();
    }
}

/// Raw S16LE mono audio: reference samples `start..start + frames` (no two windows alike, so
/// a position in the output says which datagram it came from).
fn pcm(start: u64, frames: usize) -> Vec<u8> {
    (start as i64..(start + frames as u64) as i64)
        .flat_map(|n| sample(n).to_le_bytes())
        .collect()
}

fn sender() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
}

/// Sends a good 10 ms datagram (reference frames 0..80), then `bad`, then the next good
/// datagram (80..160), and waits until that one has played; returns how long the bad input
/// took.
fn raw_around(p: &mut RawPipe, tx: &UdpSocket, bad: &[Vec<u8>]) -> Duration {
    let start = Instant::now();
    tx.send_to(&pcm(0, 80), p.to()).unwrap();
    for b in bad {
        assert_eq!(tx.send_to(b, p.to()).unwrap(), b.len());
    }
    tx.send_to(&pcm(80, 80), p.to()).unwrap();
    p.pull_until_played(&pcm(120, 40));
    start.elapsed()
}

// =============================================================================================
// A. Datagram level.

// A1: zero-length datagrams are dropped and counted as dropped-empty (never a 0-byte buffer),
// one rate-limited warning for 100 of them, and the next datagram plays.
#[test]
fn a1_zero_length_datagram() {
    let mut p = RawPipe::new(S16_MONO_8K, "", 100);
    let tx = sender();
    let span = raw_around(&mut p, &tx, &vec![Vec::new(); 100]);
    assert_eq!(p.src_stat("dropped-empty"), 100);
    assert_eq!(p.src_stat("packets"), 2);
    assert_eq!(p.jb_stat("received"), 2);
    let w = assert_warned_rate_limited(&p.src_name, span);
    assert!(w[0].contains("empty"), "{w:?}");
    p.finish(span);
}

// A2: runts shorter than one frame (1-7 bytes of F32LE stereo, 8 bytes per frame; the source
// has no header to skip, so one frame is the smallest unit) are dropped as
// dropped-not-whole-frames, never fatal; the next datagram plays.
#[test]
fn a2_runt_shorter_than_a_frame() {
    let caps = "audio/x-raw,format=F32LE,rate=8000,channels=2,layout=interleaved";
    let mut p = RawPipe::new(caps, "", 100);
    let tx = sender();
    let frame = |v: f32| -> Vec<u8> {
        (0..80)
            .flat_map(|_| [v.to_le_bytes(), v.to_le_bytes()])
            .flatten()
            .collect()
    };
    let start = Instant::now();
    tx.send_to(&frame(0.25), p.to()).unwrap();
    let mut n = 0;
    for _ in 0..15 {
        for len in 1..8 {
            tx.send_to(&vec![0x3f; len], p.to()).unwrap();
            n += 1;
        }
    }
    tx.send_to(&frame(0.5), p.to()).unwrap();
    p.pull_until_played(&frame(0.5)[320..]);
    let span = start.elapsed();
    assert_eq!(p.src_stat("dropped-not-whole-frames"), n);
    assert_eq!(p.src_stat("packets"), 2);
    assert_eq!(p.jb_stat("received"), 2);
    assert_warned_rate_limited(&p.src_name, span);
    p.finish(span);
}

// A3: datagrams that are not whole frames (5 and 6 bytes of S16LE stereo, 161 bytes) are
// dropped by the source as dropped-not-whole-frames; the same bytes pushed straight into the
// jitter buffer (e.g. from udpsrc) are counted as invalid there, 100 of them within 1 s of
// arrival time give exactly one warning, and the stream plays on bit-exact.
#[test]
fn a3_length_not_a_multiple_of_frame_size() {
    let caps = "audio/x-raw,format=S16LE,rate=8000,channels=2,layout=interleaved";
    let mut p = RawPipe::new(caps, "", 100);
    let tx = sender();
    let stereo = |start: u64| -> Vec<u8> {
        pcm(start, 80)
            .chunks_exact(2)
            .flat_map(|s| [s[0], s[1], s[0], s[1]])
            .collect()
    };
    let start = Instant::now();
    tx.send_to(&stereo(0), p.to()).unwrap();
    for len in [5usize, 6, 161, 1, 3, 7] {
        tx.send_to(&vec![7u8; len], p.to()).unwrap();
    }
    tx.send_to(&stereo(80), p.to()).unwrap();
    p.pull_until_played(&stereo(80)[160..]);
    let span = start.elapsed();
    assert_eq!(p.src_stat("dropped-not-whole-frames"), 6);
    assert_eq!(p.src_stat("packets"), 2);
    assert_warned_rate_limited(&p.src_name, span);
    p.finish(span);

    // The raw path of the jitter buffer itself.
    let mut jb = jb(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    let mut v: Vec<(u64, Vec<u8>)> = (0..100u64)
        .map(|i| (i * 10 * MS, pcm(i * 80, 80)))
        .collect();
    v.extend(burst_times(100).map(|t| (t, vec![1u8; 161])));
    let out = run(&mut jb, inputs(v), 100, 8000, 2);
    assert_eq!(out, pcm(0, 8000), "the bad buffers changed nothing");
    assert_eq!(jb.stat("invalid"), 100);
    assert_eq!(jb.stat("received"), 100);
    let w = warnings(&jb.name);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("161 bytes"), "{w:?}");
    jb.finish(Duration::from_secs(1));
}

// A4: oversized datagrams (the IPv4 maximum 65,507 bytes above the default 32 KiB mtu, and one
// byte over a 1500-byte mtu) are dropped whole as dropped-oversized, never split or truncated.
#[test]
fn a4_oversized_datagram() {
    for (props, big) in [("", 65_507usize), ("mtu=1500", 1501)] {
        let mut p = RawPipe::new(S16_MONO_8K, props, 100);
        let tx = sender();
        let span = raw_around(&mut p, &tx, &[vec![0x11; big], vec![0x22; big]]);
        assert_eq!(p.src_stat("dropped-oversized"), 2, "{props}");
        assert_eq!(p.src_stat("packets"), 2);
        assert_eq!(p.src_stat("bytes"), 320);
        assert_warned_rate_limited(&p.src_name, span);
        p.finish(span);
    }
}

// A5: a 9000-byte datagram into a source whose mtu (receive buffer) is 1500 bytes is never
// passed on truncated: no buffer other than the good ones leaves the source.
#[test]
fn a5_truncated_read_is_never_passed_on() {
    let mut p = RawPipe::new(S16_MONO_8K, "mtu=1500", 100);
    let sizes = std::sync::Arc::new(Mutex::new(Vec::new()));
    let seen = sizes.clone();
    p.src
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                seen.lock().unwrap().push(b.size());
            }
            gst::PadProbeReturn::Ok
        });
    let tx = sender();
    let span = raw_around(&mut p, &tx, &[vec![0x33; 9000], vec![0x44; 1502]]);
    assert_eq!(*sizes.lock().unwrap(), vec![160, 160]);
    assert_eq!(p.src_stat("dropped-oversized"), 2);
    assert_warned_rate_limited(&p.src_name, span);
    p.finish(span);
}

// A6: a second sender on the same port. The source has no source filter (raw PCM carries no
// identity): datagrams from every sender are received and counted, and the jitter buffer plays
// them as one stream. Documented behaviour; a filter is left to the network (bind address).
#[test]
fn a6_second_sender_on_the_same_port() {
    let mut p = RawPipe::new(S16_MONO_8K, "", 100);
    let (a, b) = (sender(), sender());
    let start = Instant::now();
    a.send_to(&pcm(0, 80), p.to()).unwrap();
    b.send_to(&pcm(80, 80), p.to()).unwrap();
    a.send_to(&pcm(160, 80), p.to()).unwrap();
    p.pull_until_played(&pcm(180, 40));
    let span = start.elapsed();
    // Sender b's audio is in the middle of the output.
    let from_b = pcm(100, 40);
    assert!(p.out.windows(80).any(|w| w == from_b.as_slice()));
    assert_eq!(p.src_stat("packets"), 3);
    assert_eq!(p.jb_stat("received"), 3);
    assert!(warnings(&p.src_name).is_empty());
    p.finish(span);
}

// A7: duplicate raw datagrams cannot be detected (no sequence number): every 10 ms datagram
// sent twice. The effect is bounded by the overflow policy: the queue never exceeds its bound
// (latency + max(latency, 100 ms), plus the newest datagram and 10 ms of slack, plus one output
// chunk of play-head granularity); each copy is either dropped by the overflow policy or still
// delays the stream by its 10 ms (kept until a gap lets it be trimmed); the cadence holds, and
// once the duplicates stop the stream plays bit-exact again.
#[test]
fn a7_duplicate_datagrams() {
    let mut jb = jb(S16_MONO_8K, 40);
    // Checked bit-exact below: with drift compensation (the default) the delay the copies add
    // is also taken out by resampling, and the stream plays resampled from then on.
    jb.element().set_property_from_str("mode", "off");
    let mut v: Vec<(u64, Vec<u8>)> = (0..300u64)
        .map(|i| (i * 10 * MS, pcm(i * 80, 80)))
        .collect();
    // Datagrams 50..150 arrive twice (the copy 1 ms later).
    v.extend((50..150u64).map(|i| (i * 10 * MS + MS, pcm(i * 80, 80))));
    let mut max_queued = 0.0f64;
    let mut out = Vec::new();
    drive(
        &mut jb,
        inputs(v),
        300,
        |jb, _| max_queued = max_queued.max(jb.queued_ms()),
        |j, buf| {
            assert_chunk(buf, j, 8000, 0, 2);
            out.extend_from_slice(&buf.map_readable().unwrap());
        },
    );
    assert!(max_queued <= 140.0 + 10.0 + 20.0, "queued {max_queued} ms");
    assert_eq!(jb.stat("received"), 400);
    // Each of the 100 copies was either dropped by the overflow policy, or taken out by the
    // drift compensation (resampling faster to bring the delay back to the latency), or still
    // delays the stream by its 10 ms (within the bound).
    let excess_ms = jb.stats().get::<f64>("current-delay-ms").unwrap() - 40.0;
    assert!(
        (0.0..=110.0).contains(&excess_ms),
        "excess delay {excess_ms} ms"
    );
    let removed_ms = jb.stat("stretch-removed-ms") as f64;
    assert_eq!(
        ((jb.stat("overflow-dropped") as f64 * 10.0 + excess_ms + removed_ms) / 10.0).round()
            as u64,
        100,
        "{}",
        jb.stats()
    );
    assert_eq!((jb.stat("lost"), jb.stat("late")), (0, 0));
    // The last 0.8 s is the sender's audio bit-exact again, at most the queue bound (140 ms)
    // later than where it would have played without the duplicates.
    let out = s16(&out);
    let probe = s16(&pcm(250 * 80, 80));
    // (Searched near its place: the reference samples repeat every 15000.)
    let at = (250 * 80 - 2000..250 * 80 + 2000)
        .find(|&i| out[i..i + 80] == probe[..])
        .expect("the stream plays again");
    let shift = at as i64 - 250 * 80;
    assert!((0..=140 * 8).contains(&shift), "shifted by {shift} frames");
    let from = at - 50 * 80;
    let n = out.len() - from;
    assert_same(&out[from..], &s16(&pcm(200 * 80, n))[..], "the last 0.8 s");
    jb.finish(Duration::from_secs(3));
}

// A8: arrival-time anomalies on the raw path: 50 datagrams with the same arrival time, a
// datagram stamped 0 long after the start, arrival times going backwards. The cadence holds, no
// error, and the steady stream that follows plays bit-exact.
#[test]
fn a8_arrival_time_anomalies() {
    let mut jb = jb(S16_MONO_8K, 40);
    // The placement alone, checked bit-exact: with drift compensation (the default) the
    // anomalies put the resampler in the path for good and the tail plays resampled.
    jb.element().set_property_from_str("mode", "off");
    let mut v: Vec<(u64, Vec<u8>)> = Vec::new();
    // 1 s steady from 1 s on.
    let steady = |i: u64| (1000 * MS + i * 10 * MS, pcm(i * 80, 80));
    v.extend((0..100).map(steady));
    // 50 datagrams all stamped 2.0 s.
    v.extend((100..150).map(|i| (2000 * MS, pcm(i * 80, 80))));
    let mut ins = inputs(v);
    // Arrival 0, and arrivals going backwards, pushed at 2.5 s (the driver pushes in order of
    // `at`, so these carry their odd PTS in `data` order after the 2.5 s mark).
    let odd: Vec<u64> = vec![0, 2400 * MS, 2300 * MS, 2200 * MS, 1500 * MS];
    // Then steady again from 3 s on.
    let tail: Vec<In> = (200..500u64)
        .map(|i| In {
            at: 1000 * MS + i * 10 * MS,
            data: pcm(i * 80, 80),
            pts: true,
        })
        .collect();
    let mut pushed_odd = false;
    let mut out = Vec::new();
    let mut tail_iter = tail.into_iter().peekable();
    ins.sort_by_key(|i| i.at);
    drive(
        &mut jb,
        ins,
        500,
        |jb, due| {
            if !pushed_odd && due >= 2500 * MS {
                pushed_odd = true;
                for (n, &pts) in odd.iter().enumerate() {
                    jb.h.push(stamped(Some(pts), pcm((150 + n as u64) * 80, 80)))
                        .unwrap();
                }
            }
            while tail_iter.peek().is_some_and(|i| i.at <= due) {
                let i = tail_iter.next().unwrap();
                jb.h.push(stamped(Some(i.at), i.data)).unwrap();
            }
        },
        |j, buf| {
            assert_chunk(buf, j, 8000, 1000 * MS, 2);
            out.extend_from_slice(&buf.map_readable().unwrap());
        },
    );
    assert_eq!(jb.stat("received") + jb.stat("invalid"), 100 + 50 + 5 + 300);
    assert!(jb.queued_ms() <= 150.0);
    // The last second plays bit-exact on the timeline of its arrival.
    let at = (400 * 80 * 2) as usize;
    assert_same(
        &out[at..at + 100 * 160],
        &pcm(400 * 80, 100 * 80)[..],
        "output",
    );
    // Most of the bunched and out-of-order audio cannot play: it is dropped (overflow, late or
    // replaced by a resync), counted; the steady tail plays.
    let dropped = jb.stat("dropped-overflow") + jb.stat("dropped-late") + jb.stat("dropped-resync");
    assert!(dropped >= 45, "{}", jb.stats());
    assert!(jb.stat("packets-played") >= 300, "{}", jb.stats());
    jb.finish(Duration::from_secs(5));
}

// A9: random bytes of random lengths at a high rate (about 2000 datagrams/s for 1 s). Odd
// lengths are dropped as not whole frames; even ones are plausible PCM and are accepted (noise,
// undetectable): the queue stays within its bound (140 ms at latency 40, plus a 25 ms datagram
// and 20 ms of chunk granularity), the 10 ms cadence holds throughout, and a
// good sender afterwards is played.
#[test]
fn a9_random_garbage_at_a_high_rate() {
    let mut p = RawPipe::new(S16_MONO_8K, "", 40);
    // The good datagram is looked for bit-exact in the output: garbage that is whole frames
    // floods the queue 20 times faster than real time, which drift compensation (the default)
    // would answer by resampling.
    p.jb.set_property_from_str("mode", "off");
    let tx = sender();
    let mut rng = Lcg(99);
    let start = Instant::now();
    tx.send_to(&pcm(0, 80), p.to()).unwrap();
    let mut sent = 1u64;
    let mut max_queued = 0.0f64;
    for _ in 0..100 {
        for _ in 0..20 {
            let len = (rng.next_f64() * 400.0) as usize;
            let data: Vec<u8> = (0..len).map(|_| (rng.next_f64() * 256.0) as u8).collect();
            tx.send_to(&data, p.to()).unwrap();
            sent += 1;
        }
        // 20 datagrams per 10 ms output buffer, never more than the socket buffer holds (a
        // loaded machine may starve the source: then wait for it, on the output).
        p.pull();
        while p.src_stat("packets") + p.src_stat("dropped") < sent {
            p.pull();
            assert!(start.elapsed() < PATIENCE, "the source stopped reading");
        }
        let q =
            p.jb.property::<gst::Structure>("stats")
                .get::<f64>("queued-ms")
                .unwrap();
        max_queued = max_queued.max(q);
    }
    // Every datagram is classified (none lost in the kernel at this pace).
    while p.src_stat("packets") + p.src_stat("dropped") < sent {
        p.pull();
        assert!(
            start.elapsed() < PATIENCE,
            "datagrams unaccounted for: sent {sent}, {}",
            p.src.property::<gst::Structure>("stats")
        );
    }
    assert!(max_queued <= 140.0 + 25.0 + 20.0, "queued {max_queued} ms");
    assert!(p.src_stat("dropped-not-whole-frames") > 500);
    // A good sender now: ten 10 ms datagrams, one per output buffer.
    for i in 0..10 {
        tx.send_to(&pcm(1000 + i * 80, 80), p.to()).unwrap();
        p.pull();
    }
    p.pull_until_played(&pcm(1000 + 9 * 80 + 40, 40));
    let span = start.elapsed();
    assert_warned_rate_limited(&p.src_name, span);
    p.finish(span);
}

// =============================================================================================
// B. RTP header: each malformed class, 100 packets within 1 s, is dropped with its reason
// (exactly one warning), and the stream around it plays bit-exact.

// B1: shorter than 12 bytes: malformed-too-short.
#[test]
fn b1_shorter_than_the_fixed_header() {
    let bad: Vec<Vec<u8>> = (0..100)
        .map(|i| hex("80 60 00 01 00 00")[..i % 7].to_vec())
        .collect();
    let jb = l16_unaffected_by(bad);
    assert_malformed(&jb, "too-short", 100);
}

// Rate limiting is per class: two kinds of bad packet interleaved within one second each get
// their warning (a burst of one kind does not hide the other), and only one each.
#[test]
fn warnings_are_rate_limited_per_class() {
    let bad: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                hex("80 60 00 01 00 00")
            } else {
                hex("00 01 00 08 21 12 a4 42 00 00 00 00 00 00 00 00 00 00 00 00")
            }
        })
        .collect();
    let jb = l16_unaffected_by(bad);
    let w = warnings(&jb.name);
    assert_eq!(w.len(), 2, "one warning per class: {w:?}");
    assert!(w.iter().any(|m| m.contains("too-short")), "{w:?}");
    assert!(w.iter().any(|m| m.contains("bad-version")), "{w:?}");
}

// B2: version other than 2 (0, 1, 3; STUN on the same port): malformed-bad-version.
#[test]
fn b2_version_not_2() {
    let stun = hex("00 01 00 08 21 12 a4 42 00 00 00 00 00 00 00 00 00 00 00 00");
    let bad: Vec<Vec<u8>> = (0..100)
        .map(|i| match i % 3 {
            0 => stun.clone(),
            1 => [header(0x40, 0x60, 5, 800, SSRC), l16_payload(0, 160)].concat(),
            _ => [header(0xc0, 0x60, 5, 800, SSRC), l16_payload(0, 160)].concat(),
        })
        .collect();
    let jb = l16_unaffected_by(bad);
    assert_malformed(&jb, "bad-version", 100);
}

// B3: CSRC count past the end (CC=15 in a 12-byte packet, CC=3 with 8 bytes of list).
#[test]
fn b3_csrc_count_past_the_end() {
    let bad = copies(100, |seq, ts| {
        if seq % 2 == 0 {
            header(0x8f, 0x60, seq, ts, SSRC)
        } else {
            [header(0x83, 0x60, seq, ts, SSRC), vec![0; 8]].concat()
        }
    });
    let jb = l16_unaffected_by(bad);
    assert_malformed(&jb, "csrc-overrun", 100);
}

// B4: X bit set but no room for the 4-byte extension header (12 + 2 bytes).
#[test]
fn b4_extension_bit_without_extension_header() {
    let bad = copies(100, |seq, ts| {
        [header(0x90, 0x60, seq, ts, SSRC), hex("be de")].concat()
    });
    let jb = l16_unaffected_by(bad);
    assert_malformed(&jb, "extension-overrun", 100);
}

// B5: extension length past the end: 0x4001 words (and 0xffff, which would wrap a 16-bit byte
// count) in a 28-byte packet.
#[test]
fn b5_extension_length_past_end() {
    let bad = copies(100, |seq, ts| {
        let len = if seq % 2 == 0 { "40 01" } else { "ff ff" };
        [
            header(0x90, 0x60, seq, ts, SSRC),
            hex(&format!("be de {len}")),
            vec![0; 12],
        ]
        .concat()
    });
    let jb = l16_unaffected_by(bad);
    assert_malformed(&jb, "extension-overrun", 100);
}

/// The good L16 stream with every packet rebuilt by `rewrite(seq, ts, payload)`: it must play
/// bit-exact, nothing refused.
fn l16_rewritten_plays(rewrite: impl Fn(u16, u32, &[u8]) -> Vec<u8>) -> Jb {
    let mut jb = jb(L16_CAPS, 40);
    let v = (0..100i64).map(|k| {
        let seq = 1000 + k as u16;
        let ts = 77 + k as u32 * 160;
        (
            k as u64 * 20 * MS,
            rewrite(seq, ts, &l16_payload(k * 160, 160)),
        )
    });
    let out = run_l16(&mut jb, inputs(v), 200);
    assert_same(&out[..16_000], &reference(0, 16_000)[..], "output");
    assert_eq!(jb.stat("received"), 100);
    assert_eq!(jb.stat("malformed"), 0);
    assert_eq!(jb.stat("invalid"), 0);
    assert!(warnings(&jb.name).is_empty());
    jb.finish(Duration::from_secs(2));
    jb
}

// B6: an extension of length 0 is valid: every packet carries `BE DE 00 00` and all play.
#[test]
fn b6_extension_length_zero_is_valid() {
    l16_rewritten_plays(|seq, ts, payload| {
        [
            header(0x90, 0x60, seq, ts, SSRC),
            hex("be de 00 00"),
            payload.to_vec(),
        ]
        .concat()
    });
}

// B7: a one-byte-header extension made only of padding bytes is valid: all packets play.
#[test]
fn b7_one_byte_extension_of_padding_only() {
    l16_rewritten_plays(|seq, ts, payload| {
        [
            header(0x90, 0x60, seq, ts, SSRC),
            hex("be de 00 02 00 00 00 00 00 00 00 00"),
            payload.to_vec(),
        ]
        .concat()
    });
}

// B8: P bit with a padding count of 0: malformed-bad-padding.
#[test]
fn b8_padding_count_zero() {
    let bad = copies(100, |seq, ts| {
        [
            header(0xa0, 0x60, seq, ts, SSRC),
            l16_payload(0, 160),
            vec![0],
        ]
        .concat()
    });
    let jb = l16_unaffected_by(bad);
    assert_malformed(&jb, "bad-padding", 100);
}

// B9: padding count larger than the payload (0xff in a 20-byte packet, reaching into the
// header): malformed-bad-padding.
#[test]
fn b9_padding_count_past_the_payload() {
    let bad = copies(100, |seq, ts| {
        [
            header(0xa0, 0x60, seq, ts, SSRC),
            vec![1, 2, 3, 4, 5, 6, 7, 0xff],
        ]
        .concat()
    });
    let jb = l16_unaffected_by(bad);
    assert_malformed(&jb, "bad-padding", 100);
}

// B10: P bit and no byte after the header (12 bytes): malformed-bad-padding.
#[test]
fn b10_padding_bit_and_nothing_after_the_header() {
    let bad = copies(100, |seq, ts| header(0xa0, 0x60, seq, ts, SSRC));
    let jb = l16_unaffected_by(bad);
    assert_malformed(&jb, "bad-padding", 100);
}

// B11: a valid header with no payload (12 bytes; or padding that is the whole payload):
// malformed-empty-payload.
#[test]
fn b11_empty_payload() {
    let bad = copies(100, |seq, ts| {
        if seq % 2 == 0 {
            header(0x80, 0x60, seq, ts, SSRC)
        } else {
            [header(0xa0, 0x60, seq, ts, SSRC), vec![0, 0, 0, 4]].concat()
        }
    });
    let jb = l16_unaffected_by(bad);
    assert_malformed(&jb, "empty-payload", 100);
}

// B12: payload types other than the negotiated 96 (static 1, dynamic 77, 127):
// malformed-payload-type.
#[test]
fn b12_unknown_payload_type() {
    let bad = copies(100, |seq, ts| {
        let pt = [1u8, 77, 127][seq as usize % 3];
        rtp_packet(seq, ts, SSRC, pt, &l16_payload(0, 160))
    });
    let jb = l16_unaffected_by(bad);
    assert_malformed(&jb, "payload-type", 100);
}

// B13: RTCP on the RTP port (SR, RR, SDES, BYE, APP: packet types 200-204, which read as
// marker + payload type 72-76): malformed-rtcp.
#[test]
fn b13_rtcp_on_the_rtp_port() {
    let bad: Vec<Vec<u8>> = (0..100u8)
        .map(|i| {
            let mut p = hex("80 c8 00 06 0b ad ca fe 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
            p[1] = 200 + i % 5;
            p
        })
        .collect();
    let jb = l16_unaffected_by(bad);
    assert_malformed(&jb, "rtcp", 100);
}

// B14: random 58-byte blobs (like GStreamer's corrupt_rtp_packet: version 2, X bit, an
// extension length far past the end; then 999 uniformly random ones). Each is refused with some
// reason or, if it happens to parse, held as a misfit (foreign SSRC): never played.
#[test]
fn b14_random_58_byte_blobs() {
    let mut rng = Lcg(58);
    let mut bad = vec![
        [
            header(0x90, 0x7a, 0xbf28, 0x3a8a_0af4, 0x696b_76c0),
            hex("21 e0 e0 60"),
            vec![0x5a; 42],
        ]
        .concat(),
    ];
    bad.extend((0..999).map(|_| {
        (0..58)
            .map(|_| (rng.next_f64() * 256.0) as u8)
            .collect::<Vec<u8>>()
    }));
    let mut jb = jb(L16_CAPS, 40);
    let mut v = l16_stream(100);
    v.extend(
        bad.into_iter()
            .enumerate()
            .map(|(i, b)| (400 * MS + i as u64 * 500_000, b)),
    );
    let out = run_l16(&mut jb, inputs(v), 200);
    assert_same(&out[..16_000], &reference(0, 16_000)[..], "output");
    let accepted = jb.stat("received") - 100;
    assert_eq!(jb.stat("malformed") + jb.stat("invalid") + accepted, 1000);
    assert_eq!(jb.stat("misfits"), accepted, "{}", jb.stats());
    assert!(jb.stat("malformed-extension-overrun") >= 1);
    assert_eq!(jb.stat("resyncs"), 0);
    // Within half a second: one warning per class of malformation, no more.
    let w = assert_warned_rate_limited(&jb.name, Duration::ZERO);
    assert!(w.len() <= 10, "{w:?}");
    jb.finish(Duration::from_secs(2));
}

// =============================================================================================
// C. Sequence numbers.

// C1: duplicates, while still queued (the same packet 1 ms later) and after being played (the
// packet from 200 ms before): dropped and counted in duplicates; the output is bit-exact.
#[test]
fn c1_duplicate_sequence_numbers() {
    let mut jb = jb(L16_CAPS, 40);
    let good = l16_stream(100);
    let mut v = good.clone();
    for (k, (t, p)) in good.iter().enumerate() {
        v.push((t + MS, p.clone()));
        if k >= 10 {
            v.push((t + 2 * MS, good[k - 10].1.clone()));
        }
    }
    let out = run_l16(&mut jb, inputs(v), 200);
    assert_same(&out[..16_000], &reference(0, 16_000)[..], "output");
    assert_eq!(jb.stat("duplicates"), 190);
    assert_eq!(
        (jb.stat("lost"), jb.stat("late"), jb.stat("misfits")),
        (0, 0, 0)
    );
    jb.finish(Duration::from_secs(2));
}

// C2: small reordering within the latency (0,2,1,3 and 0,3,2,1 in groups of four): played in
// sequence order, counted in reordered, bit-exact.
#[test]
fn c2_small_reorder() {
    for (order, per_group) in [([0usize, 2, 1, 3], 1u64), ([0, 3, 2, 1], 2)] {
        let mut jb = jb(L16_CAPS, 60);
        let good = l16_stream(100);
        // Packet 4g + order[i] arrives in the i-th 20 ms slot of group g.
        let v: Vec<(u64, Vec<u8>)> = (0..25)
            .flat_map(|g| {
                let good = &good;
                order
                    .iter()
                    .enumerate()
                    .map(move |(i, &o)| ((4 * g + i) as u64 * 20 * MS, good[4 * g + o].1.clone()))
            })
            .collect();
        let mut ins = inputs(v);
        // The first packet must be packet 0 (it starts the stream): it is.
        ins.sort_by_key(|i| i.at);
        let out = run_l16(&mut jb, ins, 200);
        assert_same(
            &out[..16_000],
            &reference(0, 16_000)[..],
            format!("{order:?}"),
        );
        assert_eq!(jb.stat("reordered"), 25 * per_group, "{order:?}");
        assert_eq!((jb.stat("lost"), jb.stat("late")), (0, 0));
        jb.finish(Duration::from_secs(2));
    }
}

// C3: a packet arriving after its slot was played (declared lost): counted once in lost (when
// the next packet played) and once in late, dropped; the timeline is not moved.
#[test]
fn c3_late_after_declared_lost() {
    let mut jb = jb(L16_CAPS, 40);
    let mut v = l16_stream(100);
    // Packet 6 arrives 300 ms late.
    v[6].0 += 300 * MS;
    let out = run_l16(&mut jb, inputs(v), 200);
    assert_same(&out[..6 * 160], &reference(0, 6 * 160)[..], "output");
    assert_same(
        &out[9 * 160..16_000],
        &reference(9 * 160, 16_000 - 9 * 160)[..],
        "output",
    );
    assert_eq!((jb.stat("lost"), jb.stat("late")), (1, 1));
    assert_eq!(jb.stat("resyncs"), 0);
    jb.finish(Duration::from_secs(2));
}

// C4: the sequence number wraps 65535 -> 0, without loss and with 65535 and 0 lost: no
// resync, the losses counted, the rest bit-exact in place.
#[test]
fn c4_sequence_number_wrap() {
    for lose in [false, true] {
        let mut jb = jb(L16_CAPS, 40);
        let v = (0..100i64)
            .filter(|&k| !(lose && matches!(k, 10 | 11)))
            .map(|k| (k as u64 * 20 * MS, l16(k, 0xfff5, 0)));
        let out = run_l16(&mut jb, inputs(v), 200);
        if lose {
            assert_same(&out[..1600], &reference(0, 1600)[..], "output");
            assert_same(
                &out[13 * 160..16_000],
                &reference(13 * 160, 16_000 - 13 * 160)[..],
                "output",
            );
        } else {
            assert_same(&out[..16_000], &reference(0, 16_000)[..], "output");
        }
        assert_eq!(jb.stat("lost"), if lose { 2 } else { 0 });
        assert_eq!((jb.stat("resyncs"), jb.stat("misfits")), (0, 0));
        jb.finish(Duration::from_secs(2));
    }
}

// C5: a forward jump of +20,000 in sequence numbers while timestamps and arrival stay steady:
// the first packet after the jump is held until the next one follows it (a lone one would be a
// stray, C8), then both join the stream where their timestamps place them: playback continues
// bit-exact, no resync, nothing dropped, at most one packet counted lost.
#[test]
fn c5_large_forward_jump_steady_arrival() {
    let mut jb = jb(L16_CAPS, 40);
    let v = (0..100i64).map(|k| {
        let seq = if k < 50 {
            k as u16
        } else {
            (k + 20_000) as u16
        };
        let p = rtp_packet(seq, k as u32 * 160, SSRC, 96, &l16_payload(k * 160, 160));
        (k as u64 * 20 * MS, p)
    });
    let out = run_l16(&mut jb, inputs(v), 200);
    assert_same(&out[..16_000], &reference(0, 16_000)[..], "output");
    assert_eq!(jb.stat("resyncs"), 0);
    assert!(jb.stat("lost") <= 1, "{}", jb.stats());
    assert_eq!((jb.stat("misfits"), jb.stat("packets-played")), (0, 100));
    jb.finish(Duration::from_secs(2));
}

/// After a restart at packet 50, packet 55's audio plays within 100 ms of its place, and
/// everything after it in order.
#[track_caller]
fn assert_resumed_quickly(jb: &Jb, out: &[i16]) {
    assert_eq!(jb.stat("resyncs"), 1, "{}", jb.stats());
    let at = find(out, 55 * 160).expect("the new timeline plays");
    assert!(
        at <= 55 * 160 + 800,
        "packet 55 plays {} ms late",
        (at - 55 * 160) / 8
    );
    assert_same(
        &out[at..at + 4000],
        &reference(55 * 160, 4000)[..],
        "output",
    );
}

// C6: a large backward jump (sender restart behind: 21294 -> 12676, timestamps continuing)
// resyncs within two packets instead of muting (LiveKit's 172 s).
#[test]
fn c6_large_backward_jump_resyncs() {
    let mut jb = jb(L16_CAPS, 40);
    let v = (0..150i64).map(|k| {
        let seq = if k < 50 { 21_244 + k } else { 12_676 + k - 50 };
        let p = rtp_packet(
            seq as u16,
            k as u32 * 160,
            SSRC,
            96,
            &l16_payload(k * 160, 160),
        );
        (k as u64 * 20 * MS, p)
    });
    let out = run_l16(&mut jb, inputs(v), 300);
    assert_resumed_quickly(&jb, &out);
    jb.finish(Duration::from_secs(3));
}

// C7: a hostile sender interleaves three packets with uniformly random sequence numbers and
// timestamps (same SSRC) after every real packet. The buffer must not reset on every packet
// (none: a random sequence number never forms a run), memory stays bounded (nothing of it is
// queued), and the real stream plays bit-exact.
#[test]
fn c7_random_sequence_numbers() {
    let mut jb = jb(L16_CAPS, 40);
    let mut rng = Lcg(7);
    let mut v = l16_stream(500);
    for k in 10..490u64 {
        for i in 0..3 {
            let seq = (rng.next_f64() * 65536.0) as u16;
            let ts = (rng.next_f64() * 4_294_967_296.0) as u32;
            let p = rtp_packet(seq, ts, SSRC, 96, &l16_payload(0, 160));
            v.push((k * 20 * MS + 1 + i, p));
        }
    }
    let mut max_queued = 0.0f64;
    let mut out = Vec::new();
    drive(
        &mut jb,
        inputs(v),
        1000,
        |jb, _| max_queued = max_queued.max(jb.queued_ms()),
        |j, buf| {
            assert_chunk(buf, j, 8000, 0, 2);
            out.extend(s16(&buf.map_readable().unwrap()));
        },
    );
    let s = jb.stats();
    assert_eq!(jb.stat("resyncs"), 0, "{s}");
    assert!(max_queued <= 140.0 + 20.0, "queued {max_queued} ms");
    assert_eq!(jb.stat("received"), 500 + 480 * 3, "{s}");
    // Each hostile packet was held as a misfit (and dropped) or is a duplicate of a real one.
    assert_eq!(jb.stat("misfits") + jb.stat("duplicates"), 480 * 3, "{s}");
    // Nothing of it is stored beyond one held packet.
    assert!(jb.stat("max-queued-packets") <= 5, "{s}");
    // None of it was played: the real stream is bit-exact.
    assert_same(&out[..80_000], &reference(0, 80_000)[..], "output");
    jb.finish(Duration::from_secs(10));
}

// C8: one packet with a sequence number 30,000 ahead, then the stream goes on normally: the
// stray is held as a misfit and dropped; nothing else changes.
#[test]
fn c8_far_future_then_back_to_normal() {
    let mut jb = jb(L16_CAPS, 40);
    let mut v = l16_stream(100);
    v.push((500 * MS + 1, l16(25, 1000 + 30_000, 77)));
    let out = run_l16(&mut jb, inputs(v), 200);
    assert_same(&out[..16_000], &reference(0, 16_000)[..], "output");
    assert_eq!(jb.stat("misfits"), 1);
    assert_eq!(
        (jb.stat("resyncs"), jb.stat("lost"), jb.stat("late")),
        (0, 0, 0)
    );
    jb.finish(Duration::from_secs(2));
}

// =============================================================================================
// D. Timestamps and timing.

// D1: the RTP timestamp wraps 2^32 mid-stream: seamless, bit-exact, no resync.
#[test]
fn d1_timestamp_wrap() {
    let mut jb = jb(L16_CAPS, 40);
    let v = (0..100i64).map(|k| (k as u64 * 20 * MS, l16(k, 5, u32::MAX - 3000)));
    let out = run_l16(&mut jb, inputs(v), 200);
    assert_same(&out[..16_000], &reference(0, 16_000)[..], "output");
    assert_eq!(
        (jb.stat("resyncs"), jb.stat("misfits"), jb.stat("lost")),
        (0, 0, 0)
    );
    jb.finish(Duration::from_secs(2));
}

/// Packets 0..50 in order, then from 50 on timestamps shifted by `dts` (sequence numbers and
/// arrival steady): the output, cadence checked.
fn ts_jump(jb: &mut Jb, dts: i64) -> Vec<i16> {
    let v = (0..150i64).map(|k| {
        let ts = k * 160 + if k >= 50 { dts } else { 0 };
        let p = rtp_packet(
            k as u16,
            ts.rem_euclid(1 << 32) as u32,
            SSRC,
            96,
            &l16_payload(k * 160, 160),
        );
        (k as u64 * 20 * MS, p)
    });
    run_l16(jb, inputs(v), 300)
}

// D2: a forward timestamp jump of 10 s of clock rate (sequence steady): resync within two
// packets, the audio after it in order.
#[test]
fn d2_forward_timestamp_jump() {
    let mut jb = jb(L16_CAPS, 40);
    let out = ts_jump(&mut jb, 10 * 8000);
    assert_resumed_quickly(&jb, &out);
    jb.finish(Duration::from_secs(3));
}

// D3: a backward timestamp jump of 1 s: the late run arrives at the pace of its timestamps, so
// it is a moved timeline: resync, audio resumes within 100 ms.
#[test]
fn d3_backward_timestamp_jump() {
    let mut jb = jb(L16_CAPS, 40);
    let out = ts_jump(&mut jb, -8000);
    assert_resumed_quickly(&jb, &out);
    jb.finish(Duration::from_secs(3));
}

// D4: timestamps stop advancing (packets 51..100 all carry packet 50's timestamp): those
// packets have no place of their own and are dropped (late or misfit), the gap
// concealed and counted lost; when timestamps advance again the stream plays in place.
#[test]
fn d4_timestamp_not_advancing() {
    let mut jb = jb(L16_CAPS, 40);
    let v = (0..150i64).map(|k| {
        let ts = if (50..100).contains(&k) {
            50 * 160
        } else {
            k * 160
        };
        let p = rtp_packet(k as u16, ts as u32, SSRC, 96, &l16_payload(k * 160, 160));
        (k as u64 * 20 * MS, p)
    });
    let out = run_l16(&mut jb, inputs(v), 300);
    assert_same(&out[..51 * 160], &reference(0, 51 * 160)[..], "output");
    assert_same(
        &out[102 * 160..24_000],
        &reference(102 * 160, 24_000 - 102 * 160)[..],
        "output",
    );
    // Dropped: late (their slot was played), or misfits once their sequence numbers have run
    // ahead of a timestamp that stands still.
    assert_eq!(
        jb.stat("dropped-late") + jb.stat("dropped-misfit"),
        49,
        "{}",
        jb.stats()
    );
    assert_eq!(jb.stat("lost"), 49, "{}", jb.stats());
    assert_eq!(jb.stat("resyncs"), 0);
    jb.finish(Duration::from_secs(3));
}

// D5: the timestamp step differs from the payload duration. Overlap (160-sample payloads, step
// 80, sent every 10 ms): each packet adds only what lies beyond the previous one, the output is
// the sender's timeline bit-exact. Gap (step 320, sent every 40 ms): the 20 ms between packets
// is a sender pause (sequence numbers consecutive), concealed and counted as DTX, not loss.
#[test]
fn d5_timestamp_step_not_payload_duration() {
    // Overlap.
    let mut jb_o = jb(L16_CAPS, 40);
    let v = (0..200i64).map(|k| {
        let p = rtp_packet(k as u16, k as u32 * 80, SSRC, 96, &l16_payload(k * 80, 160));
        (k as u64 * 10 * MS, p)
    });
    let out = run_l16(&mut jb_o, inputs(v), 190);
    assert_same(&out[..15_200], &reference(0, 15_200)[..], "output");
    assert_eq!((jb_o.stat("lost"), jb_o.stat("late")), (0, 0));
    jb_o.finish(Duration::from_secs(2));

    // Gap.
    let mut jb_g = jb(L16_CAPS, 40);
    let v = (0..50i64).map(|k| {
        let p = rtp_packet(
            k as u16,
            k as u32 * 320,
            SSRC,
            96,
            &l16_payload(k * 320, 160),
        );
        (k as u64 * 40 * MS, p)
    });
    let out = run_l16(&mut jb_g, inputs(v), 190);
    for k in 0..47 {
        let at = k * 320 + 40;
        assert_same(
            &out[at..at + 120],
            &reference(at as i64, 120)[..],
            format!("packet {k}"),
        );
    }
    assert_eq!((jb_g.stat("lost"), jb_g.stat("late")), (0, 0));
    assert!(jb_g.stat("dtx-ms") >= 46 * 20, "{}", jb_g.stats());
    jb_g.finish(Duration::from_secs(2));
}

// D6: packet durations that do not divide 10 ms or exceed it (2.5, 7, 30, 120 ms and 1 s):
// every output buffer is still exactly 10 ms and the audio bit-exact.
#[test]
fn d6_packet_durations_not_dividing_10_ms() {
    for frames in [20i64, 56, 240, 960, 8000] {
        let latency = 40;
        let mut jb = jb(L16_CAPS, latency);
        let dur = frames as u64 * 1_000_000_000 / 8000;
        let count = (3_000_000_000 / dur) as i64 + 1;
        let v = (0..count).map(|k| {
            let p = rtp_packet(
                k as u16,
                (k * frames) as u32,
                SSRC,
                96,
                &l16_payload(k * frames, frames),
            );
            (k as u64 * dur, p)
        });
        let out = run_l16(&mut jb, inputs(v), 250);
        assert_same(
            &out[..20_000],
            &reference(0, 20_000)[..],
            format!("{frames}-frame packets"),
        );
        assert_eq!((jb.stat("lost"), jb.stat("late")), (0, 0), "{frames}");
        jb.finish(Duration::from_secs(3));
    }
}

// D7: buffers without PTS (GST_CLOCK_TIME_NONE) are stamped with the clock's running time at
// arrival: the output is the same as with PTS.
#[test]
fn d7_missing_pts() {
    let mut jb = jb(L16_CAPS, 40);
    let v: Vec<In> = l16_stream(100)
        .into_iter()
        .enumerate()
        .map(|(k, (at, data))| In {
            at,
            data,
            pts: k % 3 == 0,
        })
        .collect();
    let out = run_l16(&mut jb, v, 200);
    assert_same(&out[..16_000], &reference(0, 16_000)[..], "output");
    assert_eq!(
        (jb.stat("lost"), jb.stat("late"), jb.stat("resyncs")),
        (0, 0, 0)
    );
    jb.finish(Duration::from_secs(2));
}

// =============================================================================================
// E. Payload and codec.

// E1: L16 payloads of an odd byte count (321 bytes under mono, 322 under stereo) are refused
// as invalid, exactly one warning for 100; stereo data under mono caps is indistinguishable
// from mono of twice the length (an even byte count is valid): it plays as such, the
// timestamps keep the stream in place, and the real audio after it is bit-exact.
#[test]
fn e1_l16_odd_length_or_channel_mismatch() {
    let jb_odd = l16_unaffected_by(copies(100, |seq, ts| {
        rtp_packet(seq, ts, SSRC, 96, &[7; 321])
    }));
    assert_eq!(jb_odd.stat("invalid"), 100);
    let w = warnings(&jb_odd.name);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("not whole frames"), "{w:?}");

    let stereo = "application/x-rtp,media=audio,encoding-name=L16,clock-rate=8000,\
                  encoding-params=(string)2,payload=96";
    let mut jb_s = jb(stereo, 40);
    let mut v: Vec<(u64, Vec<u8>)> = (0..100i64)
        .map(|k| {
            let payload: Vec<u8> = l16_payload(k * 160, 160)
                .chunks_exact(2)
                .flat_map(|s| [s[0], s[1], s[0], s[1]])
                .collect();
            (
                k as u64 * 20 * MS,
                rtp_packet(1000 + k as u16, k as u32 * 160, SSRC, 96, &payload),
            )
        })
        .collect();
    v.extend(
        copies(10, |seq, ts| rtp_packet(seq, ts, SSRC, 96, &[7; 322]))
            .into_iter()
            .zip(burst_times(10))
            .map(|(p, t)| (t, p)),
    );
    let out = s16(&run(&mut jb_s, inputs(v), 200, 8000, 4));
    let left: Vec<i16> = out.chunks_exact(2).map(|c| c[0]).collect();
    assert_same(&left[..16_000], &reference(0, 16_000)[..], "output");
    assert_eq!(jb_s.stat("invalid"), 10);
    jb_s.finish(Duration::from_secs(2));

    // Stereo data (640 bytes per 20 ms) under mono caps, packets 20..40 only.
    let mut jb_m = jb(L16_CAPS, 40);
    let v = (0..100i64).map(|k| {
        let payload = if (20..40).contains(&k) {
            l16_payload(k * 160, 160)
                .chunks_exact(2)
                .flat_map(|s| [s[0], s[1], s[0], s[1]])
                .collect()
        } else {
            l16_payload(k * 160, 160)
        };
        (
            k as u64 * 20 * MS,
            rtp_packet(1000 + k as u16, 77 + k as u32 * 160, SSRC, 96, &payload),
        )
    });
    let out = run_l16(&mut jb_m, inputs(v), 200);
    assert_same(&out[..20 * 160], &reference(0, 20 * 160)[..], "output");
    assert_same(
        &out[42 * 160..16_000],
        &reference(42 * 160, 16_000 - 42 * 160)[..],
        "output",
    );
    assert_eq!((jb_m.stat("invalid"), jb_m.stat("resyncs")), (0, 0));
    jb_m.finish(Duration::from_secs(2));
}

// E2: PCMU/PCMA packets of 1 s (8000 bytes) play bit-exact with 10 ms output; packets longer
// than 1 s (8001 and 65,000 bytes) are refused as invalid.
#[test]
fn e2_g711_enormous_packet() {
    use gstnetaudio::codec::g711::{alaw_to_linear, ulaw_to_linear};
    for (name, pt, expand) in [
        ("PCMU", 0u8, ulaw_to_linear as fn(u8) -> i16),
        ("PCMA", 8, alaw_to_linear),
    ] {
        let mut jb = jb(
            &format!("application/x-rtp,encoding-name={name},clock-rate=8000"),
            40,
        );
        let codes: Vec<u8> = (0..32_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut v: Vec<(u64, Vec<u8>)> = codes
            .chunks(8000)
            .enumerate()
            .map(|(k, c)| {
                (
                    k as u64 * 1000 * MS,
                    rtp_packet(k as u16, k as u32 * 8000, SSRC, pt, c),
                )
            })
            .collect();
        v.push((1500 * MS, rtp_packet(2, 16_000, SSRC, pt, &[0x55; 8001])));
        v.push((
            1600 * MS,
            rtp_packet(2, 16_000, SSRC, pt, &vec![0x55; 65_000]),
        ));
        let out = s16(&run(&mut jb, inputs(v), 350, 8000, 2));
        let want: Vec<i16> = codes.iter().map(|&c| expand(c)).collect();
        assert_same(&out[..28_000], &want[..28_000], name);
        assert_eq!(jb.stat("invalid"), 2, "{name}");
        assert_eq!(jb.stat("received"), 4, "{name}");
        assert_eq!(warnings(&jb.name).len(), 1);
        jb.finish(Duration::from_secs(4));
    }
}

// E3: Opus code 1 (two equal frames) with an odd remainder: invalid, treated exactly like a
// lost packet.
#[test]
fn e3_opus_code1_odd_length() {
    let jb = opus_bad_is_a_loss(opus_rtp(vec![0x09, 1, 2, 3]));
    assert_eq!(jb.stat("invalid"), 101);
}

// E4: Opus code 2 whose first frame length runs past the end (one-byte and two-byte length
// forms): invalid, exactly a loss.
#[test]
fn e4_opus_code2_first_size_past_the_end() {
    let jb = opus_bad_is_a_loss(|seq, ts| {
        let payload: &[u8] = if seq % 2 == 0 {
            &[0x0a, 0xfb, 1, 2]
        } else {
            &[0x0a, 0xfc, 0xff, 1, 2, 3]
        };
        rtp_packet(seq, ts, SSRC, 96, payload)
    });
    assert_eq!(jb.stat("invalid"), 101);
}

// E5: Opus code 3 with a frame count of 0, or 7 frames of 20 ms (140 ms > 120 ms): invalid,
// exactly a loss.
#[test]
fn e5_opus_code3_count_zero_or_too_long() {
    let jb = opus_bad_is_a_loss(|seq, ts| {
        let payload: Vec<u8> = if seq % 2 == 0 {
            vec![0x0b, 0x00, 1, 2]
        } else {
            [vec![0x0b, 0x07], vec![0; 7]].concat()
        };
        rtp_packet(seq, ts, SSRC, 96, &payload)
    });
    assert_eq!(jb.stat("invalid"), 101);
}

// E6: Opus code 3 whose padding-length chain (0xff 0xff 0xff ...) runs past the end: invalid,
// exactly a loss.
#[test]
fn e6_opus_code3_padding_overrun() {
    let jb = opus_bad_is_a_loss(opus_rtp(vec![0x0b, 0x41, 0xff, 0xff, 0xff, 0x10]));
    assert_eq!(jb.stat("invalid"), 101);
}

// E7: Opus CBR code 3 with 3 frames in 10 bytes (not divisible): invalid, exactly a loss.
#[test]
fn e7_opus_cbr_code3_size_not_divisible() {
    let jb = opus_bad_is_a_loss(opus_rtp([vec![0x0b, 0x03], vec![0x42; 10]].concat()));
    assert_eq!(jb.stat("invalid"), 101);
}

/// The frame length in RFC 6716's 1- or 2-byte form.
fn opus_len(n: usize) -> Vec<u8> {
    if n < 252 {
        vec![n as u8]
    } else {
        let b0 = 252 + (n - 252) % 4;
        vec![b0 as u8, ((n - b0) / 4) as u8]
    }
}

// E8: valid multi-frame Opus packets with frame lengths >= 252 (two-byte length form): code 2
// and VBR code 3 (V=1) from a VBR encoder, code 1 and CBR code 3 (V=0) from a CBR one. They are
// decoded exactly like the same frames sent one per packet: bit-identical output.
#[test]
fn e8_opus_two_byte_lengths_and_vbr_flag() {
    for vbr in [true, false] {
        let mut enc =
            opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Audio).unwrap();
        enc.set_bitrate(opus::Bitrate::Bits(256_000)).unwrap();
        enc.set_vbr(vbr).unwrap();
        let frames = encode(&mut enc, 1, 480, 0, 200);
        assert!(
            frames.iter().all(|f| f[0] == frames[0][0] && f[0] & 3 == 0),
            "one config, code 0"
        );
        assert!(
            frames.iter().any(|f| f.len() > 252),
            "two-byte lengths exercised"
        );
        // Reference: one 10 ms frame per packet.
        let one: Vec<(u64, Vec<u8>)> = frames
            .iter()
            .enumerate()
            .map(|(k, f)| {
                (
                    k as u64 * 10 * MS,
                    rtp_packet(k as u16, (k * 480) as u32, SSRC, 96, f),
                )
            })
            .collect();
        let mut reference = jb(OPUS_CAPS, 40);
        let want = run(&mut reference, inputs(one), 190, 48000, 4);
        // Two frames per packet.
        let two: Vec<(u64, Vec<u8>)> = frames
            .chunks_exact(2)
            .enumerate()
            .map(|(k, f)| {
                let toc = f[0][0];
                let (a, b) = (&f[0][1..], &f[1][1..]);
                let payload = match (vbr, k % 2) {
                    (true, 0) => {
                        [vec![toc | 2], opus_len(a.len()), a.to_vec(), b.to_vec()].concat()
                    }
                    (true, _) => [
                        vec![toc | 3, 0x80 | 2],
                        opus_len(a.len()),
                        a.to_vec(),
                        b.to_vec(),
                    ]
                    .concat(),
                    (false, 0) => {
                        assert_eq!(a.len(), b.len(), "CBR");
                        [vec![toc | 1], a.to_vec(), b.to_vec()].concat()
                    }
                    (false, _) => [vec![toc | 3, 2], a.to_vec(), b.to_vec()].concat(),
                };
                (
                    k as u64 * 20 * MS,
                    rtp_packet(k as u16, (k * 960) as u32, SSRC, 96, &payload),
                )
            })
            .collect();
        let mut jb = jb(OPUS_CAPS, 40);
        let got = run(&mut jb, inputs(two), 190, 48000, 4);
        assert!(
            got == want,
            "vbr {vbr}: multi-frame packets decode like single frames"
        );
        assert_eq!(
            (jb.stat("invalid"), jb.stat("lost"), jb.stat("plc-ms")),
            (0, 0, 0)
        );
        assert!(rms(&f32s(&got)[9600..]) > 0.05);
        jb.finish(Duration::from_secs(2));
    }
}

// E9: an Opus packet with an empty payload (12-byte RTP, PT Opus; or padding only) has not even
// a TOC byte: refused as malformed-empty-payload, concealed exactly like a loss.
#[test]
fn e9_opus_empty_payload() {
    let jb = opus_bad_is_a_loss(|seq, ts| {
        if seq % 2 == 0 {
            header(0x80, 96, seq, ts, SSRC)
        } else {
            [header(0xa0, 96, seq, ts, SSRC), vec![0, 2]].concat()
        }
    });
    assert_eq!(jb.stat("malformed-empty-payload"), 101);
    assert_eq!(warnings(&jb.name).len(), 1);
}

// E10: mono and stereo Opus packets alternating (the s bit flips every packet), and bandwidth
// switching between narrowband and fullband: the decoder follows, the output channel count
// stays the one the caps fixed (1 for sprop-stereo=0, 2 for sprop-stereo=1), nothing refused.
#[test]
fn e10_opus_stereo_mono_and_bandwidth_toggling() {
    let mut mono = voip_encoder();
    let mut stereo =
        opus::Encoder::new(48000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
    stereo.set_bitrate(opus::Bitrate::Bits(64000)).unwrap();
    let mut nb = voip_encoder();
    nb.set_bandwidth(opus::Bandwidth::Narrowband).unwrap();
    let mut packets = Vec::new();
    for k in 0..150usize {
        let p = match k % 3 {
            0 => encode(&mut mono, 1, 960, k * 960, 1),
            1 => encode(&mut stereo, 2, 960, k * 960, 1),
            _ => encode(&mut nb, 1, 960, k * 960, 1),
        };
        packets.push(p.into_iter().next().unwrap());
    }
    assert!(packets.iter().any(|p| p[0] & 4 != 0) && packets.iter().any(|p| p[0] & 4 == 0));
    for (sprop, channels) in [("0", 1usize), ("1", 2)] {
        let caps = OPUS_CAPS.replace(
            "sprop-stereo=(string)0",
            &format!("sprop-stereo=(string){sprop}"),
        );
        let mut jb = jb(&caps, 40);
        let v = packets.iter().enumerate().map(|(k, p)| {
            (
                k as u64 * 20 * MS,
                rtp_packet(k as u16, (k * 960) as u32, SSRC, 96, p),
            )
        });
        let out = f32s(&run(&mut jb, inputs(v), 290, 48000, 4 * channels));
        let caps = jb.h.sinkpad().unwrap().current_caps().unwrap();
        assert_eq!(
            caps.structure(0).unwrap().get::<i32>("channels").unwrap(),
            channels as i32
        );
        assert_eq!(
            (jb.stat("invalid"), jb.stat("lost"), jb.stat("malformed")),
            (0, 0, 0)
        );
        assert!(
            rms(&out[48_000 * channels..]) > 0.03,
            "sprop-stereo={sprop}"
        );
        jb.finish(Duration::from_secs(3));
    }
}

// E11: Opus with a channel mapping beyond what a 1-2 channel decoder supports. Caps announcing
// 255 channels (a multistream mapping) are refused with an error naming the channel count.
// A packet laid out as a 2-stream multistream packet (a self-delimited first stream, then a
// second) arriving on a 1-channel stream is just an odd packet: it is decoded (or concealed if
// libopus refuses it) in its slot, nothing else changes.
#[test]
fn e11_opus_channel_mapping_beyond_supported() {
    for caps in [
        "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,channels=255",
        "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,encoding-params=(string)255",
    ] {
        let text = caps_error(caps);
        assert!(text.contains("255"), "{caps}: {text}");
    }

    let good = opus_stream(100);
    let a = encode(&mut voip_encoder(), 1, 960, 0, 2);
    let multistream = [
        vec![a[0][0]],
        opus_len(a[0].len() - 1),
        a[0][1..].to_vec(),
        a[1].clone(),
    ]
    .concat();
    let mut jb = jb(OPUS_CAPS, 40);
    let mut v: Vec<(u64, Vec<u8>)> = good
        .iter()
        .enumerate()
        .map(|(k, p)| {
            if k == 60 {
                (p.0, rtp_packet(60, 60 * 960, SSRC, 96, &multistream))
            } else {
                p.clone()
            }
        })
        .collect();
    v.extend(burst_times(100).map(|t| (t, rtp_packet(5, 5 * 960, SSRC, 96, &multistream))));
    let out = f32s(&run(&mut jb, inputs(v), 200, 48000, 4));
    assert_eq!(jb.stat("received") + jb.stat("invalid"), 200);
    assert_eq!(jb.stat("lost"), 0);
    assert!(rms(&out[62 * 960..96_000]) > 0.05, "the stream plays on");
    jb.finish(Duration::from_secs(2));
}

// =============================================================================================
// F. Configuration and caps.

/// Pushes `caps` into a fresh element and returns the text of the ERROR it must post; no
/// panic.
fn caps_error(caps: &str) -> String {
    init();
    let element = gst::ElementFactory::make("plcjitterbuffer")
        .build()
        .unwrap();
    let bus = OwnBus::on(&element);
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.play();
    let pad = h.srcpad().unwrap();
    pad.push_event(gst::event::StreamStart::new("s"));
    pad.push_event(gst::event::Caps::new(&caps.parse::<gst::Caps>().unwrap()));
    pad.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .unwrap_or_else(|| panic!("{caps}: no error message"));
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    // Data after refused caps is refused too, without a panic.
    assert!(h.push(gst::Buffer::from_mut_slice(vec![0u8; 320])).is_err());
    e.error().message().to_string()
}

// F1: caps without clock-rate, with clock-rate 0, or with 0 channels are refused with an
// ERROR whose message names the problem.
#[test]
fn f1_caps_without_clock_rate_or_with_zeros() {
    for (caps, needle) in [
        ("application/x-rtp,encoding-name=L16", "no clock-rate"),
        (
            "application/x-rtp,encoding-name=L16,clock-rate=0",
            "clock-rate 0",
        ),
        (
            "application/x-rtp,encoding-name=PCMU,clock-rate=0",
            "clock-rate 0",
        ),
        (
            "application/x-rtp,encoding-name=L16,clock-rate=8000,encoding-params=(string)0",
            "0 channels",
        ),
        (
            "application/x-rtp,encoding-name=L16,clock-rate=8000,channels=0",
            "0 channels",
        ),
        ("application/x-rtp,encoding-name=OPUS", "no clock-rate"),
    ] {
        let text = caps_error(caps);
        assert!(text.contains(needle), "{caps}: {text}");
    }
}

// F2: absurd channel counts (1000) are refused clearly, for L16 (encoding-params or channels)
// and Opus, without a panic.
#[test]
fn f2_absurd_channel_count() {
    for caps in [
        "application/x-rtp,encoding-name=L16,clock-rate=8000,encoding-params=(string)1000",
        "application/x-rtp,encoding-name=PCMA,clock-rate=8000,channels=1000",
        "application/x-rtp,encoding-name=OPUS,clock-rate=48000,channels=1000",
    ] {
        let text = caps_error(caps);
        assert!(text.contains("1000 channels"), "{caps}: {text}");
    }
}

// F3: latency 0 and latency at its maximum (10 s, the property's upper bound: larger values
// such as G_MAXUINT cannot be set): the cadence holds and the audio is bit-exact.
#[test]
fn f3_latency_zero_and_maximum() {
    init();
    let pspec = gst::ElementFactory::make("plcjitterbuffer")
        .build()
        .unwrap()
        .find_property("latency")
        .unwrap();
    let max = pspec.downcast::<glib::ParamSpecUInt>().unwrap().maximum();
    assert_eq!(max, 10_000);
    for latency in [0, max] {
        let mut jb = jb(L16_CAPS, latency);
        let n = 1000 + u64::from(latency) / 10;
        let out = run_l16(&mut jb, inputs(l16_stream(n as i64 / 2 + 10)), 600);
        assert_same(
            &out[..48_000],
            &reference(0, 48_000)[..],
            format!("latency {latency}"),
        );
        assert_eq!((jb.stat("lost"), jb.stat("late")), (0, 0));
        assert!(jb.stat("overflow-dropped") == 0, "{}", jb.stats());
        jb.finish(Duration::from_secs(20));
    }
}

// F4: latency changed from 200 to 20 ms while PLAYING (and back up): a latency message is
// posted, the PTS/offsets stay contiguous (the output catches up on the queued audio, then
// runs 20 ms behind arrival), nothing is lost, the audio bit-exact.
#[test]
fn f4_latency_changed_while_playing() {
    let mut jb = jb(L16_CAPS, 200);
    let mut out = Vec::new();
    let mut changed = (false, false);
    drive(
        &mut jb,
        inputs(l16_stream(250)),
        450,
        |jb, due| {
            if !changed.0 && due >= 1000 * MS {
                changed.0 = true;
                jb.element().set_property("latency", 20u32);
            }
            if !changed.1 && due >= 3000 * MS {
                changed.1 = true;
                jb.element().set_property("latency", 100u32);
            }
        },
        |j, buf| {
            assert_chunk(buf, j, 8000, 0, 2);
            out.extend(s16(&buf.map_readable().unwrap()));
        },
    );
    assert!(changed.0 && changed.1);
    assert_same(&out[..36_000], &reference(0, 36_000)[..], "output");
    assert_eq!(
        (jb.stat("lost"), jb.stat("late"), jb.stat("resyncs")),
        (0, 0, 0)
    );
    let mut latency_messages = 0;
    while jb.bus.pop_filtered(&[gst::MessageType::Latency]).is_some() {
        latency_messages += 1;
    }
    assert_eq!(latency_messages, 2);
    jb.finish(Duration::from_secs(5));
}

// F5: an SSRC flood: 10,000 packets from 10,000 distinct SSRCs interleaved with the real
// stream. No reset on any of them (no resync, no SSRC change), each held as a misfit and
// dropped, the queue small, and the real stream plays bit-exact.
#[test]
fn f5_ssrc_flood() {
    let mut jb = jb(L16_CAPS, 40);
    let mut v = l16_stream(150);
    v.extend((0..10_000u32).map(|i| {
        let k = 5 + i as i64 * 140 / 10_000;
        let p = rtp_packet(
            1000 + k as u16,
            77 + k as u32 * 160,
            0x1000_0000 + i,
            96,
            &l16_payload(0, 160),
        );
        (k as u64 * 20 * MS + 1 + u64::from(i % 70), p)
    }));
    let mut max_queued = 0.0f64;
    let mut out = Vec::new();
    drive(
        &mut jb,
        inputs(v),
        300,
        |jb, _| max_queued = max_queued.max(jb.queued_ms()),
        |j, buf| {
            assert_chunk(buf, j, 8000, 0, 2);
            out.extend(s16(&buf.map_readable().unwrap()));
        },
    );
    assert_same(&out[..24_000], &reference(0, 24_000)[..], "output");
    assert_eq!((jb.stat("resyncs"), jb.stat("ssrc-changes")), (0, 0));
    assert_eq!(jb.stat("misfits"), 10_000);
    assert_eq!(jb.stats().get::<u32>("ssrc").unwrap(), SSRC);
    assert!(max_queued <= 80.0, "queued {max_queued} ms");
    // Memory: never more than the real stream's few packets and the strays held since its last
    // packet (at most 64: candidate restarts, dropped when the stream's next packet comes).
    assert!(jb.stat("max-queued-packets") <= 5 + 64, "{}", jb.stats());
    assert_eq!(jb.stat("dropped-misfit"), 10_000);
    jb.finish(Duration::from_secs(3));
}

// SPDX-License-Identifier: MPL-2.0
//! Leak check with GStreamer's `leaks` tracer: every GstObject and GstMiniObject (elements, pads,
//! buffers, events, messages, caps, clocks, ...) the elements create while they run is freed
//! again.
//!
//! The tracer must be active from `gst::init()`, so this test (no libtest harness) re-runs itself
//! with `GST_TRACERS=leaks` when it was started without. It warms up once (class data, pad
//! templates, caches and the plugin are created once per process and live for ever), takes the
//! tracer's list of live objects, runs every scenario several times, and compares: any object
//! type with more live instances afterwards is a leak, and the test fails naming it.

mod common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;

const TRACERS: &str = "leaks(stack-traces-flags=none)";

/// The one test in this binary, by the name test runners (cargo test filters, nextest) see.
const NAME: &str = "no_object_is_leaked";

fn main() -> ExitCode {
    // Behave like a libtest binary towards test runners: `--list`, and name filters.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("{NAME}: test");
        }
        return ExitCode::SUCCESS;
    }
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skip" => skips.extend(it.next()),
            // libtest options that take their value as the next argument.
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => {
                it.next();
            }
            _ if a.starts_with('-') => {}
            _ => filters.push(a.as_str()),
        }
    }
    let selected = (filters.is_empty() || filters.iter().any(|f| NAME.contains(f)))
        && !skips.iter().any(|s| NAME.contains(s.as_str()));
    if !selected {
        println!("running 0 tests");
        return ExitCode::SUCCESS;
    }
    if std::env::var("GST_TRACERS").map_or(true, |v| !v.contains("leaks")) {
        // Start again with the tracer on (the environment is read by gst::init()).
        let status = Command::new(std::env::current_exe().expect("own path"))
            .env("GST_TRACERS", TRACERS)
            .status()
            .expect("re-run with GST_TRACERS=leaks");
        return if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    init();
    let tracer = gst::active_tracers()
        .into_iter()
        .find(|t| t.type_().name() == "GstLeaksTracer")
        .expect("the leaks tracer is active");

    let scenarios: [(&str, fn()); 6] = [
        (
            "raw audio with loss, flush and EOS",
            raw_with_loss_flush_eos,
        ),
        ("RTP L16 with loss, reordering and a restart", rtp_l16),
        ("RTP Opus with FEC", rtp_opus),
        ("stats messages posted on a bus", stats_messages),
        (
            "rawudpaudiosrc pipelines cycled through NULL",
            udp_pipeline_cycles,
        ),
        (
            "random state changes with packets in flight and a property thread",
            random_state_changes,
        ),
    ];
    // Warm-up: what lives for the whole process is created now.
    for (_, run) in &scenarios {
        run();
    }
    // From here on the tracer records what is created and not freed again.
    tracer.emit_by_name::<()>("activity-start-tracking", &[]);
    let only = std::env::var("LEAKS_ONLY").ok();
    for (name, run) in &scenarios {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        for _ in 0..3 {
            run();
        }
        println!("ran: {name}");
    }
    // Streaming threads drop their last references just after NULL: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (created, removed) = loop {
        let (created, removed) = still_alive(&tracer);
        if created.is_empty() || Instant::now() > deadline {
            break (created, removed);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    tracer.emit_by_name::<()>("activity-stop-tracking", &[]);
    if created.is_empty() {
        println!(
            "leaks tracer: 0 objects created by the scenarios are still alive \
             ({removed} objects from before were freed)"
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("created by the scenarios and still alive (leaked): {created:?}");
        ExitCode::FAILURE
    }
}

/// Objects created since tracking started and still alive, by type name; and how many objects
/// from before tracking were freed meanwhile. The checkpoint holds type names and addresses
/// only (no references), and starts a new window, so the windows' created objects add up.
fn still_alive(tracer: &gst::Tracer) -> (BTreeMap<String, i64>, usize) {
    thread_local! {
        static ALIVE: std::cell::RefCell<BTreeMap<String, i64>> = Default::default();
    }
    let cp = tracer.emit_by_name::<gst::Structure>("activity-get-checkpoint", &[]);
    let names = |field: &str| -> Vec<String> {
        cp.get::<gst::List>(field)
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.get::<gst::Structure>().ok())
                    .filter_map(|s| s.get::<String>("type-name").ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let created = names("objects-created-list");
    let removed = names("objects-removed-list");
    ALIVE.with(|alive| {
        let mut alive = alive.borrow_mut();
        for n in &created {
            *alive.entry(n.clone()).or_insert(0) += 1;
        }
        // Objects of an earlier window freed in this one come back as removed: settle them.
        let mut from_before = 0;
        for n in &removed {
            match alive.get_mut(n) {
                Some(c) if *c > 0 => *c -= 1,
                _ => from_before += 1,
            }
        }
        alive.retain(|_, c| *c > 0);
        (alive.clone(), from_before)
    })
}

fn rtp(seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    rtp_packet(seq, ts, 0x1ea6, 96, payload)
}

fn raw_with_loss_flush_eos() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    let inputs = (0..100u64)
        .filter(|i| i % 7 != 3)
        .map(|i| (i * 10 * MS, tone_s16(8000, i * 80, 80)));
    drive(&mut h, 40 * MS, 80, inputs, |j, buf| {
        assert_chunk(buf, j, 8000, 0, 2)
    });
    flush(&mut h);
    for i in 0..5u64 {
        h.push(buffer(2_000 * MS + i * 10 * MS, tone_s16(8000, i * 80, 80)))
            .unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    while h.pull_event().unwrap().type_() != gst::EventType::Eos {}
    while h.try_pull().is_some() {}
}

fn rtp_l16() {
    let mut h = harness(
        "application/x-rtp,media=audio,encoding-name=L16,clock-rate=8000,encoding-params=(string)1,payload=96",
        40,
    );
    let mut inputs: Vec<(u64, Vec<u8>)> = (0..150u64)
        .filter(|k| k % 9 != 4)
        .map(|k| {
            let payload: Vec<u8> = tone_s16(8000, k * 160, 160)
                .chunks(2)
                .flat_map(|b| [b[1], b[0]])
                .collect();
            // A restart (new sequence and timestamp base) at packet 100.
            let (seq, ts) = if k < 100 {
                (k as u16, k as u32 * 160)
            } else {
                (k as u16 + 30_000, k as u32 * 160 + 9_000_000)
            };
            let jitter = if k % 5 == 2 { 25 * MS } else { 0 };
            (k * 20 * MS + jitter, rtp(seq, ts, &payload))
        })
        .collect();
    inputs.sort_by_key(|(t, _)| *t);
    drive(&mut h, 40 * MS, 300, inputs.into_iter(), |j, buf| {
        assert_chunk(buf, j, 8000, 0, 2)
    });
}

fn rtp_opus() {
    let mut h = harness(
        "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=96,sprop-stereo=(string)0",
        60,
    );
    let mut enc = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip)
        .expect("opus encoder");
    enc.set_inband_fec(true).unwrap();
    enc.set_packet_loss_perc(10).unwrap();
    let inputs: Vec<(u64, Vec<u8>)> = (0..100u64)
        .map(|k| {
            let pcm: Vec<f32> = (0..960)
                .map(|i| ((k * 960 + i) as f32 * 0.03).sin() * 0.3)
                .collect();
            let packet = enc.encode_vec_float(&pcm, 1500).unwrap();
            (k, rtp(k as u16, k as u32 * 960, &packet))
        })
        .filter(|(k, _)| k % 8 != 5)
        .map(|(k, p)| (k * 20 * MS, p))
        .collect();
    drive(&mut h, 60 * MS, 150, inputs.into_iter(), |j, buf| {
        assert_chunk(buf, j, 48000, 0, 4)
    });
}

fn stats_messages() {
    let mut h = harness(
        "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
        40,
    );
    let bus = gst::Bus::new();
    let element = h.element().unwrap();
    element.set_bus(Some(&bus));
    element.set_property("stats-interval", 100u32);
    let inputs = (0..100u64).map(|i| (i * 10 * MS, tone_s16(8000, i * 80, 80)));
    drive(&mut h, 40 * MS, 100, inputs, |_, _| {});
    let mut n = 0;
    while bus.pop_filtered(&[gst::MessageType::Element]).is_some() {
        n += 1;
    }
    assert!(n >= 9, "{n} stats messages");
    element.set_bus(None);
}

fn udp_pipeline_cycles() {
    let pipeline = gst::parse::launch(
        "rawudpaudiosrc name=src address=127.0.0.1 port=0 \
           caps=audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved \
         ! plcjitterbuffer latency=20 stats-interval=50 ! fakesink sync=true",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let src = pipeline.by_name("src").unwrap();
    for _ in 0..5 {
        pipeline.set_state(gst::State::Playing).unwrap();
        let port = src.property::<i32>("port") as u16;
        for i in 0..30u64 {
            sock.send_to(&tone_s16(8000, i * 80, 80), ("127.0.0.1", port))
                .unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        pipeline.set_state(gst::State::Null).unwrap();
    }
    let bus = pipeline.bus().unwrap();
    if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("{m:?}");
    }
    bus.set_flushing(true);
}

fn random_state_changes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let pipeline = gst::parse::launch(
        "rawudpaudiosrc name=src address=127.0.0.1 port=0 \
           caps=audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved \
         ! plcjitterbuffer name=jb latency=20 ! fakesink sync=true",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Ready).unwrap();
    let src = pipeline.by_name("src").unwrap();
    // Keep the port across NULL: the next READY binds it again at once.
    let port = src.property::<i32>("port");
    src.set_property("port", port);
    let jb = pipeline.by_name("jb").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let threads = [
        {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = sock.send_to(&tone_s16(8000, i * 80, 80), ("127.0.0.1", port as u16));
                    i += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        },
        {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rng = Lcg(5);
                while !stop.load(Ordering::Relaxed) {
                    jb.set_property("latency", 10 + (rng.next_f64() * 100.0) as u32);
                    jb.set_property("max-packets", 1 + (rng.next_f64() * 100.0) as u32);
                    let _ = jb.property::<gst::Structure>("stats");
                    std::thread::yield_now();
                }
            })
        },
    ];
    let states = [
        gst::State::Playing,
        gst::State::Paused,
        gst::State::Ready,
        gst::State::Null,
    ];
    let mut rng = Lcg(9);
    for _ in 0..100 {
        let s = states[(rng.next_f64() * 4.0) as usize];
        pipeline.set_state(s).unwrap();
        let (res, _, _) = pipeline.state(gst::ClockTime::from_seconds(10));
        res.unwrap();
    }
    pipeline.set_state(gst::State::Null).unwrap();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let bus = pipeline.bus().unwrap();
    if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("{m:?}");
    }
    bus.set_flushing(true);
}

// SPDX-License-Identifier: MPL-2.0
//! The loopback demo: a sender of raw PCM over UDP with loss, jitter and clock skew, received by
//! `rawudpaudiosrc ! plcjitterbuffer ! audioconvert ! audioresample ! autoaudiosink`, with live
//! stats once a second. With `--rtp` the sender sends RTP (L16) to stock `udpsrc` instead.
//!
//! ```text
//! cargo run --release --example demo -- [--seconds 20] [--loss 0.1] [--jitter-ms 20]
//!                                       [--skew-ppm 100] [--latency-ms 40] [--tone]
//!                                       [--rtp] [--mode fixed|adaptive|off]
//!                                       [--jitter-after SECONDS:MS]
//! ```
//! Speech comes from espeak-ng when it is installed (a tone otherwise, or with `--tone`).
//! `--jitter-after 12:5` changes the network's jitter to 0-5 ms from the sender's 12th second
//! on: with `--rtp --mode adaptive` the target delay follows it down, and the `cut` column shows
//! what was cut from the pauses to get there.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstnetaudio::impair::{Impairment, Schedule};

const RATE: u32 = 8000;
const FRAMES: usize = 80; // 10 ms datagrams of S16LE mono, 160 bytes: the classic case.

struct Args {
    seconds: u64,
    loss: f64,
    jitter_ms: u64,
    skew_ppm: f64,
    latency_ms: u32,
    tone: bool,
    rtp: bool,
    mode: String,
    /// From this sender time (s) on, the jitter is this (ms).
    jitter_after: Option<(f64, u64)>,
}

fn parse_args() -> Args {
    let mut a = Args {
        seconds: 20,
        loss: 0.10,
        jitter_ms: 20,
        skew_ppm: 100.0,
        latency_ms: 40,
        tone: false,
        rtp: false,
        mode: "fixed".into(),
        jitter_after: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--seconds" => a.seconds = val().parse().expect("--seconds"),
            "--loss" => a.loss = val().parse().expect("--loss"),
            "--jitter-ms" => a.jitter_ms = val().parse().expect("--jitter-ms"),
            "--skew-ppm" => a.skew_ppm = val().parse().expect("--skew-ppm"),
            "--latency-ms" => a.latency_ms = val().parse().expect("--latency-ms"),
            "--tone" => a.tone = true,
            "--rtp" => a.rtp = true,
            "--mode" => a.mode = val(),
            "--jitter-after" => {
                let v = val();
                let (t, ms) = v.split_once(':').expect("--jitter-after SECONDS:MS");
                a.jitter_after = Some((
                    t.parse().expect("--jitter-after seconds"),
                    ms.parse().expect("--jitter-after ms"),
                ));
            }
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Speech from espeak-ng, decoded and resampled to 8 kHz mono by GStreamer; None if unavailable.
fn speech() -> Option<Vec<i16>> {
    let wav = std::env::temp_dir().join(format!("netaudio-demo-{}.wav", std::process::id()));
    let text = "This is a demonstration of the packet loss concealment jitter buffer. \
                One packet in ten is lost, and every packet is delayed by up to twenty \
                milliseconds, while the sender's clock runs a little fast. \
                The sound card still gets exactly ten milliseconds, every ten milliseconds.";
    let ok = std::process::Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! \
         audio/x-raw,format=S16LE,rate={RATE},channels=1 ! appsink name=sink sync=false",
        wav.display()
    ))
    .ok()?
    .downcast::<gst::Pipeline>()
    .ok()?;
    let sink = pipeline
        .by_name("sink")?
        .downcast::<gst_app::AppSink>()
        .ok()?;
    pipeline.set_state(gst::State::Playing).ok()?;
    let mut pcm = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let map = sample.buffer()?.map_readable().ok()?;
        pcm.extend(
            map.chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
    }
    let _ = pipeline.set_state(gst::State::Null);
    let _ = std::fs::remove_file(&wav);
    (!pcm.is_empty()).then_some(pcm)
}

/// A two-tone melody, in case there is no speech synthesizer.
fn tone(seconds: u64) -> Vec<i16> {
    (0..seconds as usize * RATE as usize)
        .map(|n| {
            let f = if (n / 4000) % 2 == 0 { 440.0 } else { 660.0 };
            (0.4 * 32767.0 * (n as f64 * 2.0 * std::f64::consts::PI * f / RATE as f64).sin()) as i16
        })
        .collect()
}

fn main() {
    let args = parse_args();
    gst::init().expect("GStreamer");
    gstnetaudio::plugin_register_static().expect("register the plugin");

    let source = if args.tone { None } else { speech() };
    let what = if source.is_some() {
        "speech (espeak-ng)"
    } else {
        "a tone"
    };
    let pcm = source.unwrap_or_else(|| tone(args.seconds));

    let src = if args.rtp {
        format!(
            "udpsrc name=src address=127.0.0.1 port=0 \
               caps=\"application/x-rtp,media=audio,encoding-name=L16,clock-rate={RATE},\
               encoding-params=(string)1,payload=96\""
        )
    } else {
        format!(
            "rawudpaudiosrc name=src address=127.0.0.1 port=0 \
               caps=audio/x-raw,format=S16LE,rate={RATE},channels=1,layout=interleaved"
        )
    };
    let pipeline = gst::parse::launch(&format!(
        "{src} ! plcjitterbuffer name=jb latency={} mode={} stats-interval=1000 ! \
         identity name=check silent=true ! audioconvert ! audioresample ! autoaudiosink name=out",
        args.latency_ms, args.mode
    ))
    .expect("receiver pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    pipeline
        .set_state(gst::State::Ready)
        .expect("bind the socket");
    let src = pipeline.by_name("src").unwrap();
    let port: i32 = src.property("port");

    // Count output buffers and check the cadence: every buffer 10 ms, PTS contiguous.
    let cadence = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    {
        let cadence = cadence.clone();
        let expected = std::sync::Mutex::new(None::<gst::ClockTime>);
        pipeline
            .by_name("check")
            .unwrap()
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buf) = info.buffer() {
                    let mut expected = expected.lock().unwrap();
                    let ok = buf.size() == FRAMES * 2
                        && buf.duration() == Some(gst::ClockTime::from_mseconds(10))
                        && expected.is_none_or(|e| buf.pts() == Some(e));
                    *expected = buf.pts().zip(buf.duration()).map(|(p, d)| p + d);
                    cadence.0.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        cadence.1.fetch_add(1, Ordering::Relaxed);
                    }
                }
                gst::PadProbeReturn::Ok
            });
    }

    pipeline.set_state(gst::State::Playing).expect("play");
    let sink_name = pipeline
        .by_name("out")
        .and_then(|b| b.downcast::<gst::Bin>().ok())
        .and_then(|b| b.iterate_elements().into_iter().flatten().next())
        .and_then(|e| e.factory())
        .map(|f| f.name().to_string())
        .unwrap_or_else(|| "?".into());

    let format = if args.rtp { "RTP L16" } else { "raw S16LE" };
    let step = args
        .jitter_after
        .map_or(String::new(), |(t, ms)| format!(", 0-{ms} ms from {t} s"));
    let adaptive = args.mode == "adaptive";
    println!(
        "netaudio demo: sending {what} as {format} {RATE} Hz mono, 10 ms datagrams, to \
         127.0.0.1:{port}\n  network: {:.0} % loss, 0-{} ms jitter{step}; sender clock {:+} ppm; \
         jitter buffer latency {} ms, mode {}; playing through {sink_name}",
        args.loss * 100.0,
        args.jitter_ms,
        args.skew_ppm,
        args.latency_ms,
        args.mode
    );

    // plcjitterbuffer pushes silence from PLAYING on, so the audio device starts now; give it
    // a moment (a fresh PulseAudio stream takes about a second to start) before the sender.
    std::thread::sleep(Duration::from_millis(1500));

    // The sender: its own thread, its own (skewed) clock.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let stop = stop.clone();
        let sent = sent.clone();
        let imp = Impairment {
            loss: args.loss,
            jitter_ns: args.jitter_ms * 1_000_000,
            skew_ppm: args.skew_ppm,
            seed: 42,
        };
        let seconds = args.seconds;
        let (rtp, jitter_after, jitter_ns) = (args.rtp, args.jitter_after, imp.jitter_ns);
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("sender socket");
            let start = Instant::now();
            let mut schedule = Schedule::new(imp, 10_000_000);
            let total = seconds * 100;
            let mut last_arrival = 0;
            while !stop.load(Ordering::Relaxed) {
                let Some(mut d) = schedule.next() else { break };
                if d.index >= total {
                    break;
                }
                if let Some((t, ms)) = jitter_after
                    && d.sent_ns as f64 >= t * 1e9
                {
                    // The same draw, scaled to the new jitter; the order kept.
                    let delay = (d.arrive_ns - d.sent_ns) as f64 * (ms * 1_000_000) as f64
                        / jitter_ns.max(1) as f64;
                    d.arrive_ns = (d.sent_ns + delay as u64).max(last_arrival);
                }
                last_arrival = d.arrive_ns;
                let at = start + Duration::from_nanos(d.arrive_ns);
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let from = (d.index as usize * FRAMES) % pcm.len().max(1);
                let sample = |i: usize| pcm[(from + i) % pcm.len()];
                let bytes: Vec<u8> = if rtp {
                    // RTP version 2, payload type 96, then L16 (big-endian).
                    let mut b = vec![0x80, 96];
                    b.extend_from_slice(&(d.index as u16).to_be_bytes());
                    b.extend_from_slice(&((d.index as usize * FRAMES) as u32).to_be_bytes());
                    b.extend_from_slice(&0x6e65_7461u32.to_be_bytes());
                    b.extend((0..FRAMES).flat_map(|i| sample(i).to_be_bytes()));
                    b
                } else {
                    (0..FRAMES).flat_map(|i| sample(i).to_le_bytes()).collect()
                };
                let _ = sock.send_to(&bytes, ("127.0.0.1", port as u16));
                sent.fetch_add(1, Ordering::Relaxed);
            }
            schedule.lost()
        })
    };

    print!(
        "{:>4} {:>6} {:>6} {:>6} {:>6} {:>5} {:>9} {:>9} {:>8} {:>9} {:>11} {:>8}",
        "t/s",
        "sent",
        "recvd",
        "pushed",
        "lost",
        "late",
        "conceal",
        "delay",
        "queued",
        "skew",
        "stretch",
        "cadence"
    );
    // Adaptive mode: the target delay and what was cut from quiet stretches.
    if adaptive {
        print!(" {:>8} {:>7}", "target", "cut");
    }
    println!();
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + Duration::from_secs(args.seconds + 1);
    let mut t = 0;
    while Instant::now() < deadline {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else { continue };
                if s.name() != "application/x-plcjitterbuffer-stats" {
                    continue;
                }
                t += 1;
                let g = |k: &str| s.get::<u64>(k).unwrap_or(0);
                let f = |k: &str| s.get::<f64>(k).unwrap_or(0.0);
                let bad = cadence.1.load(Ordering::Relaxed);
                // Drift: the sender clock's estimated skew and the output time the resampler
                // added (+) or took (-) from the media so far (absent until compensated).
                let skew = s
                    .get::<f64>("drift-ppm")
                    .map_or("-".to_string(), |p| format!("{p:+.0} ppm"));
                let stretch = if s.has_field("stretch-inserted-ms") {
                    let net = g("stretch-inserted-ms") as i64 - g("stretch-removed-ms") as i64;
                    format!("{net:+} ms")
                } else {
                    "-".to_string()
                };
                print!(
                    "{:>4} {:>6} {:>6} {:>6} {:>6} {:>5} {:>6} ms {:>6.1} ms {:>5.1} ms {:>9} {:>11} {:>8}",
                    t,
                    sent.load(Ordering::Relaxed),
                    g("received"),
                    g("pushed"),
                    g("lost"),
                    g("late"),
                    g("concealed-ms"),
                    f("current-delay-ms"),
                    f("queued-ms"),
                    skew,
                    stretch,
                    if bad == 0 { "exact" } else { "BROKEN" }
                );
                if adaptive {
                    print!(
                        " {:>5.1} ms {:>4} ms",
                        f("target-delay-ms"),
                        g("stretch-compressed-ms")
                    );
                }
                println!();
            }
            gst::MessageView::Error(e) => {
                eprintln!(
                    "error from {:?}: {} ({:?})",
                    e.src().map(|s| s.path_string()),
                    e.error(),
                    e.debug()
                );
                break;
            }
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    let net_lost = sender.join().unwrap_or(0);
    let jb = pipeline.by_name("jb").unwrap();
    let stats = jb.property::<gst::Structure>("stats");
    // What the receiving socket got: rawudpaudiosrc counts it; for udpsrc, the jitter buffer's
    // count of what arrived.
    let received = if args.rtp {
        stats.get::<u64>("received").unwrap_or(0)
    } else {
        src.property::<gst::Structure>("stats")
            .get::<u64>("packets")
            .unwrap_or(0)
    };
    let _ = pipeline.set_state(gst::State::Null);

    let (n, bad) = (
        cadence.0.load(Ordering::Relaxed),
        cadence.1.load(Ordering::Relaxed),
    );
    println!(
        "\nsummary: of {} datagrams the simulated network lost {} and delivered {}; the receiver \
         got {}; the jitter buffer inferred {} lost, {} late, concealed {} ms.\ncadence: {n} \
         output buffers, {bad} not exactly 10 ms with contiguous PTS.",
        sent.load(Ordering::Relaxed) + net_lost,
        net_lost,
        sent.load(Ordering::Relaxed),
        received,
        stats.get::<u64>("lost").unwrap_or(0),
        stats.get::<u64>("late").unwrap_or(0),
        stats.get::<u64>("concealed-ms").unwrap_or(0),
    );
    if bad > 0 {
        std::process::exit(1);
    }
}

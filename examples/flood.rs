// SPDX-License-Identifier: MPL-2.0
//! Flood benchmark: a sender process floods `rawudpaudiosrc ! plcjitterbuffer ! appsink` on
//! 127.0.0.1 with datagrams at a fixed packet rate (50,000/s by default) for a set time, while
//! this process samples once a second its resident memory (VmRSS), its CPU time, and the
//! elements' stats, and checks every output buffer (exactly 10 ms, contiguous offsets).
//!
//! cargo run --release --example flood -- [--seconds 60] [--pps 50000] [--frames 240]
//!                                        [--latency 40]
//!
//! The sender runs as a separate process (this binary with `--send`), so the CPU figure is the
//! receiving pipeline's alone. Prints a line per second and a summary; exits non-zero if the
//! cadence broke, the queue passed its caps or memory kept growing.

use std::net::UdpSocket;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

struct Args {
    seconds: u64,
    pps: u64,
    frames: usize,
    latency: u32,
}

fn parse() -> Result<(Args, Option<u16>), String> {
    let mut a = Args {
        seconds: 60,
        pps: 50_000,
        frames: 240,
        latency: 40,
    };
    let mut send = None;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--seconds" => a.seconds = num(v()?)?,
            "--pps" => a.pps = num(v()?)?,
            "--frames" => a.frames = num(v()?)? as usize,
            "--latency" => a.latency = num(v()?)? as u32,
            "--send" => send = Some(num(v()?)? as u16),
            "--bench" => {} // passed by `cargo bench`-style runners
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    Ok((a, send))
}

/// The sender: `pps` datagrams of `frames` S16LE mono frames a second, paced in 1 ms batches.
fn send(port: u16, a: &Args) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let mut payload = vec![0u8; a.frames * 2];
    let start = Instant::now();
    let mut sent = 0u64;
    let total = a.pps * a.seconds;
    while sent < total {
        let due = (start.elapsed().as_micros() as u64 * a.pps / 1_000_000).min(total);
        while sent < due {
            // A sawtooth, so the audio is not silence.
            for (i, b) in payload.chunks_exact_mut(2).enumerate() {
                b.copy_from_slice(&((((sent as usize + i) % 200) as i16 - 100) * 50).to_le_bytes());
            }
            // ENOBUFS/ECONNREFUSED are part of flooding: count them as sent and go on.
            let _ = sock.send_to(&payload, ("127.0.0.1", port));
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    eprintln!(
        "sender: {sent} datagrams in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of this process, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of /proc/<pid>/stat: 12 and 13 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> ExitCode {
    let (a, send_port) = match parse() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(port) = send_port {
        send(port, &a);
        return ExitCode::SUCCESS;
    }
    gst::init().expect("gst init");
    gstnetaudio::plugin_register_static().expect("register plugin");

    let pipeline = gst::parse::launch(&format!(
        "rawudpaudiosrc name=src address=127.0.0.1 port=0 \
           caps=audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved \
         ! plcjitterbuffer name=jb latency={} \
         ! appsink name=sink sync=false max-buffers=200 drop=false",
        a.latency
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let src = pipeline.by_name("src").expect("src");
    let jb = pipeline.by_name("jb").expect("jb");
    let sink = pipeline
        .by_name("sink")
        .expect("sink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");

    // Every output buffer: 480 frames (960 bytes), offsets contiguous.
    let out = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let last_end = Arc::new(Mutex::new(None::<u64>));
    {
        let (out, bad, last_end) = (out.clone(), bad.clone(), last_end.clone());
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let b = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let mut last = last_end.lock().unwrap_or_else(|e| e.into_inner());
                    if b.size() != 960 || last.is_some_and(|e| e != b.offset()) {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    *last = Some(b.offset_end());
                    out.fetch_add(1, Ordering::Relaxed);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let port = src.property::<i32>("port") as u16;
    let bus = pipeline.bus().expect("bus");

    let mut sender = Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--send",
            &port.to_string(),
            "--seconds",
            &a.seconds.to_string(),
            "--pps",
            &a.pps.to_string(),
            "--frames",
            &a.frames.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("start the sender");

    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let (max_packets, max_bytes) = (
        jb.property::<u32>("max-packets"),
        jb.property::<u32>("max-bytes"),
    );
    println!(
        "flood: {} pps of {}-frame datagrams (48 kHz S16 mono, {:.0}x real time) for {} s; \
         latency {} ms; caps {max_packets} packets / {max_bytes} bytes",
        a.pps,
        a.frames,
        a.pps as f64 * a.frames as f64 / 48_000.0,
        a.seconds,
        a.latency
    );
    println!(" t(s)  rss(MiB)  cpu(%)  src-pkts/s  jb-received  queued-pkts  queued-ms  out-bufs");
    let mut rss = Vec::new();
    let (mut last_cpu, mut last_pkts) = (cpu0, 0u64);
    let mut max_queued = (0u64, 0.0f64);
    let mut failed = false;
    for t in 1..=a.seconds + 2 {
        std::thread::sleep(
            Duration::from_secs(1)
                .saturating_sub(start.elapsed().saturating_sub(Duration::from_secs(t - 1))),
        );
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            eprintln!("error: {m:?}");
            failed = true;
            break;
        }
        let s = jb.property::<gst::Structure>("stats");
        let ss = src.property::<gst::Structure>("stats");
        let pkts = ss.get::<u64>("packets").unwrap_or(0);
        let cpu = cpu_seconds();
        let r = vm_rss_kib();
        rss.push(r);
        let qp = s.get::<u64>("queued-packets").unwrap_or(0);
        let qms = s.get::<f64>("queued-ms").unwrap_or(0.0);
        max_queued = (max_queued.0.max(qp), max_queued.1.max(qms));
        println!(
            "{t:5} {:9.1} {:7.1} {:11} {:12} {:12} {:10.1} {:9}",
            r as f64 / 1024.0,
            (cpu - last_cpu) * 100.0,
            pkts - last_pkts,
            s.get::<u64>("packets-received").unwrap_or(0),
            qp,
            qms,
            out.load(Ordering::Relaxed)
        );
        (last_cpu, last_pkts) = (cpu, pkts);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sender.wait();
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let s = jb.property::<gst::Structure>("stats");
    let ss = src.property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).expect("NULL");

    let n_out = out.load(Ordering::Relaxed);
    let n_bad = bad.load(Ordering::Relaxed);
    let expected = (elapsed * 100.0) as u64;
    // Memory after the first 5 s (allocator warm-up) must not keep growing.
    let settled = &rss[rss.len().min(5)..];
    let (lo, hi) = (
        settled.iter().copied().min().unwrap_or(0),
        settled.iter().copied().max().unwrap_or(0),
    );
    println!("summary:");
    println!(
        "  received by rawudpaudiosrc: {} datagrams ({:.0}/s); dropped malformed: {}",
        ss.get::<u64>("packets").unwrap_or(0),
        ss.get::<u64>("packets").unwrap_or(0) as f64 / elapsed,
        ss.get::<u64>("dropped-empty").unwrap_or(0)
            + ss.get::<u64>("dropped-oversized").unwrap_or(0)
            + ss.get::<u64>("dropped-not-whole-frames").unwrap_or(0)
    );
    for f in [
        "packets-received",
        "packets-played",
        "dropped-overflow",
        "dropped-late",
        "packets-queued",
        "max-queued-packets",
        "max-queued-bytes",
        "unaccounted",
    ] {
        let v = s
            .get::<u64>(f)
            .map(|v| v.to_string())
            .or_else(|_| s.get::<i64>(f).map(|v| v.to_string()))
            .unwrap_or_default();
        println!("  plcjitterbuffer {f}: {v}");
    }
    println!(
        "  output: {n_out} buffers in {elapsed:.1} s (clock: {expected}), {n_bad} not exactly 10 ms \
         or not contiguous"
    );
    println!(
        "  RSS after warm-up: {:.1}..{:.1} MiB; max queued {} packets / {:.1} ms",
        lo as f64 / 1024.0,
        hi as f64 / 1024.0,
        max_queued.0,
        max_queued.1
    );
    println!(
        "  CPU of the receiving pipeline: {:.1} % of one core ({:.2} s over {elapsed:.1} s)",
        cpu / elapsed * 100.0,
        cpu
    );
    let unaccounted = s.get::<i64>("unaccounted").unwrap_or(-1);
    if n_bad > 0
        || unaccounted != 0
        || s.get::<u64>("max-queued-packets").unwrap_or(u64::MAX) > u64::from(max_packets)
        || s.get::<u64>("max-queued-bytes").unwrap_or(u64::MAX) > u64::from(max_bytes)
        || hi > lo + 16 * 1024
        || n_out + 50 < expected
    {
        failed = true;
    }
    if failed {
        println!("FAILED");
        ExitCode::FAILURE
    } else {
        println!("ok");
        ExitCode::SUCCESS
    }
}

// SPDX-License-Identifier: MPL-2.0
//! Opus over RTP on loopback through a lossy, jittery network: `plcjitterbuffer` against the
//! stock chain (`rtpjitterbuffer do-lost=true ! rtpopusdepay ! opusdec plc=true
//! use-inband-fec=true`) at the same latency, fed the very same packets.
//!
//! For each espeak-ng voice, one sender (`opusenc` with in-band FEC, `rtpopuspay`, `netsim` for
//! loss and delay) sends every packet to two receivers with `multiudpsink`: both see the same
//! losses, delays and reordering. Each receiver writes 16 kHz WAV; `scripts/rtp_quality.py`
//! scores them against the reference with PESQ (wide band) and STOI. This program also checks
//! that every `plcjitterbuffer` buffer was exactly 10 ms with contiguous PTS, and counts how
//! many isolated single losses FEC recovered (sequence numbers seen on the receiver's socket).
//!
//! ```text
//! scripts/rtp-compare.sh [--loss 0.1] [--jitter-ms 20] [--latency-ms 60] [--runs 2]
//!                         [--opus-complexity 10]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;

struct Args {
    loss: f64,
    jitter_ms: u32,
    latency_ms: u32,
    runs: usize,
    opus_complexity: i32,
    out: PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        loss: 0.10,
        jitter_ms: 20,
        latency_ms: 60,
        runs: 2,
        opus_complexity: 10,
        out: PathBuf::from("target/rtp-compare"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--loss" => a.loss = val().parse().expect("--loss"),
            "--jitter-ms" => a.jitter_ms = val().parse().expect("--jitter-ms"),
            "--latency-ms" => a.latency_ms = val().parse().expect("--latency-ms"),
            "--runs" => a.runs = val().parse().expect("--runs"),
            "--opus-complexity" => a.opus_complexity = val().parse().expect("--opus-complexity"),
            "--out" => a.out = PathBuf::from(val()),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

const TEXT: &str = "The quick brown fox jumps over the lazy dog. \
    Network audio must keep playing when packets are lost, late, or out of order. \
    Five hundred and twelve packets arrived, and seven of them were concealed. \
    Please call me back tomorrow morning at a quarter past nine.";

const VOICES: [&str; 4] = ["en-us+m3", "en-us+f3", "en+m1", "en+f4"];

fn speech(voice: &str, path: &Path) {
    // A second of silence on each side, so that both receivers are running before speech.
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", "160", "-w"])
        .arg(path)
        .arg(format!("[[_:_:]] {TEXT} [[_:_:]]"))
        .status()
        .expect("espeak-ng (scripts/setup-deps.sh installs it)")
        .success();
    assert!(ok, "espeak-ng failed");
}

fn launch(desc: &str) -> gst::Pipeline {
    gst::parse::launch(desc)
        .unwrap_or_else(|e| panic!("cannot build `{desc}`: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

fn bound_port(p: &gst::Pipeline, name: &str) -> i32 {
    p.set_state(gst::State::Ready).expect("READY");
    p.by_name(name).unwrap().property::<i32>("port")
}

fn wait_eos(p: &gst::Pipeline) {
    let bus = p.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS within 2 minutes");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!(
            "{:?}: {} ({:?})",
            e.src().map(|s| s.path_string()),
            e.error(),
            e.debug()
        );
    }
}

/// Cadence of `plcjitterbuffer`'s output: (buffers, buffers not exactly 10 ms or not contiguous).
#[derive(Default)]
struct Cadence {
    buffers: u64,
    bad: u64,
    next_pts: Option<gst::ClockTime>,
}

struct RunResult {
    stats: gst::Structure,
    cadence_buffers: u64,
    cadence_bad: u64,
    isolated_losses: u64,
    /// Isolated losses whose next packet carries FEC (LBRR) at all.
    covered_losses: u64,
}

/// The packets our receiver got, decoded in sequence order with no timing at all: FEC from the
/// next packet for the last missing one of a run when it carries LBRR, libopus PLC for the rest.
/// What a jitter buffer with unlimited latency would play: the yardstick for our playout.
fn ideal_decode(packets: &BTreeMap<u32, &[u8]>, complexity: i32, path: &Path) {
    use gstnetaudio::codec::{Encoding, PayloadDecoder};
    let mut dec = PayloadDecoder::new(Encoding::Opus, 48000, 1, complexity).expect("decoder");
    let mut out = Vec::new();
    let last = packets.keys().next_back().copied().unwrap_or(0);
    for s in 0..=last {
        match packets.get(&s) {
            Some(p) => {
                dec.decode(p, &mut out);
            }
            None => match packets.get(&(s + 1)) {
                Some(next) if dec.has_fec(next) => {
                    dec.decode_fec(next, 960, &mut out);
                }
                _ => {
                    dec.conceal(960, &mut out);
                }
            },
        }
    }
    let data: Vec<u8> = out
        .iter()
        .flat_map(|&x| ((x * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect();
    let mut wav = Vec::with_capacity(44 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&48000u32.to_le_bytes());
    wav.extend_from_slice(&96000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(path, wav).expect("ideal wav");
}

fn run(args: &Args, reference: &Path, ours: &Path, stock: &Path, ideal: &Path) -> RunResult {
    const CAPS: &str = "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,\
                        encoding-params=(string)2,sprop-stereo=(string)0,payload=96";
    const TO_WAV: &str = "audioconvert dithering=none ! audioresample ! \
                          audio/x-raw,format=S16LE,rate=16000,channels=1 ! wavenc ! filesink";
    let latency = args.latency_ms;
    let a = launch(&format!(
        "udpsrc name=src address=127.0.0.1 port=0 caps=\"{CAPS}\" ! \
         plcjitterbuffer name=jb latency={latency} opus-complexity={} ! {TO_WAV} location={}",
        args.opus_complexity,
        ours.display()
    ));
    let b = launch(&format!(
        "udpsrc name=src address=127.0.0.1 port=0 caps=\"{CAPS}\" ! \
         rtpjitterbuffer latency={latency} do-lost=true ! rtpopusdepay ! \
         opusdec plc=true use-inband-fec=true ! audiorate ! {TO_WAV} location={}",
        stock.display()
    ));
    let pa = bound_port(&a, "src");
    let pb = bound_port(&b, "src");

    // Sequence numbers arriving at our receiver, and our output's cadence.
    let seqs = Arc::new(Mutex::new(Vec::<(u16, Vec<u8>)>::new()));
    let s2 = seqs.clone();
    a.by_name("src")
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buf) = info.buffer()
                && let Ok(map) = buf.map_readable()
                && let Ok(p) = rtp_types::RtpPacket::parse(&map[..])
            {
                s2.lock()
                    .unwrap()
                    .push((p.sequence_number(), p.payload().to_vec()));
            }
            gst::PadProbeReturn::Ok
        });
    let cadence = Arc::new(Mutex::new(Cadence::default()));
    let c2 = cadence.clone();
    a.by_name("jb")
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buf) = info.buffer() {
                let mut c = c2.lock().unwrap();
                c.buffers += 1;
                let ok = buf.size() == 480 * 4
                    && buf.duration() == Some(gst::ClockTime::from_mseconds(10))
                    && c.next_pts.is_none_or(|p| buf.pts() == Some(p));
                c.bad += u64::from(!ok);
                c.next_pts = buf.pts().zip(buf.duration()).map(|(p, d)| p + d);
            }
            gst::PadProbeReturn::Ok
        });

    a.set_state(gst::State::Playing).unwrap();
    b.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let sender = launch(&format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! \
         audio/x-raw,rate=48000,channels=1 ! \
         opusenc audio-type=voice inband-fec=true packet-loss-percentage=10 bitrate=32000 \
           frame-size=20 ! rtpopuspay pt=96 ! identity sync=true ! \
         netsim drop-probability={} delay-probability=1.0 min-delay=0 max-delay={} ! \
         multiudpsink clients=127.0.0.1:{pa},127.0.0.1:{pb} sync=false",
        reference.display(),
        args.loss,
        args.jitter_ms
    ));
    sender.set_state(gst::State::Playing).unwrap();
    wait_eos(&sender);
    sender.set_state(gst::State::Null).unwrap();
    // Let both play out what they hold, then end them cleanly (wavenc writes its header).
    std::thread::sleep(Duration::from_millis(u64::from(latency) + 500));
    let stats = a.by_name("jb").unwrap().property::<gst::Structure>("stats");
    for p in [&a, &b] {
        p.send_event(gst::event::Eos::new());
    }
    for p in [&a, &b] {
        wait_eos(p);
        p.set_state(gst::State::Null).unwrap();
    }

    let received = seqs.lock().unwrap();
    // Unwrap the sequence numbers relative to the first packet (no run is long enough to go
    // half way round).
    let first = received.first().map_or(0, |s| s.0);
    let packets: BTreeMap<u32, &[u8]> = received
        .iter()
        .map(|(s, p)| (u32::from(s.wrapping_sub(first)), &p[..]))
        .collect();
    let with_fec = |s: u32| {
        packets
            .get(&s)
            .is_some_and(|p| gstnetaudio::codec::opus::has_fec(p))
    };
    let last = packets.keys().next_back().copied().unwrap_or(0);
    let isolated: Vec<u32> = (1..last)
        .filter(|s| {
            !packets.contains_key(s)
                && packets.contains_key(&(s - 1))
                && packets.contains_key(&(s + 1))
        })
        .collect();
    let covered = isolated.iter().filter(|s| with_fec(*s + 1)).count() as u64;
    ideal_decode(&packets, args.opus_complexity, ideal);
    let c = cadence.lock().unwrap();
    RunResult {
        stats,
        cadence_buffers: c.buffers,
        cadence_bad: c.bad,
        isolated_losses: isolated.len() as u64,
        covered_losses: covered,
    }
}

fn main() {
    let args = parse_args();
    gst::init().expect("GStreamer");
    gstnetaudio::plugin_register_static().expect("plugin");
    std::fs::create_dir_all(&args.out).expect("output folder");

    let mut pairs = Vec::new();
    let (mut buffers, mut bad, mut isolated, mut covered, mut fec, mut lost) = (0, 0, 0, 0, 0, 0);
    for r in 0..args.runs {
        for voice in VOICES {
            let tag = format!("{}-{r}", voice.replace('+', "_"));
            let reference = args.out.join(format!("{tag}-ref.wav"));
            let ours = args.out.join(format!("{tag}-plcjitterbuffer.wav"));
            let stock = args.out.join(format!("{tag}-stock.wav"));
            let ideal = args.out.join(format!("{tag}-ideal.wav"));
            speech(voice, &reference);
            let res = run(&args, &reference, &ours, &stock, &ideal);
            let st = &res.stats;
            let get = |k: &str| st.get::<u64>(k).unwrap_or(0);
            eprintln!(
                "{tag}: {} buffers ({} off-cadence), received {}, lost {}, late {}, \
                 fec-recovered {}; {} isolated single losses ({} followed by a packet \
                 carrying FEC), plc-ms {}",
                res.cadence_buffers,
                res.cadence_bad,
                get("received"),
                get("lost"),
                get("late"),
                get("fec-recovered"),
                res.isolated_losses,
                res.covered_losses,
                get("plc-ms"),
            );
            buffers += res.cadence_buffers;
            bad += res.cadence_bad;
            isolated += res.isolated_losses;
            covered += res.covered_losses;
            fec += get("fec-recovered");
            lost += get("lost");
            pairs.push((reference, ours, stock, ideal));
        }
    }
    println!(
        "cadence: {buffers} buffers, {bad} not exactly 10 ms or not contiguous\n\
         FEC: {isolated} isolated single losses, {covered} of them followed by a packet \
         carrying FEC; {fec} packets rebuilt from FEC in all (isolated losses and the last \
         packet of bursts); {lost} lost in all"
    );
    let list = args.out.join("pairs.txt");
    let text: String = pairs
        .iter()
        .map(|(r, o, s, i)| {
            format!(
                "{}\t{}\t{}\t{}\n",
                r.display(),
                o.display(),
                s.display(),
                i.display()
            )
        })
        .collect();
    std::fs::write(&list, text).expect("pairs.txt");
    println!("pairs: {}", list.display());
}

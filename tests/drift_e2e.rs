// SPDX-License-Identifier: MPL-2.0
//! Clock drift end to end: real RTP senders on 127.0.0.1 whose clocks run 1000 ppm fast and
//! 1000 ppm slow, each for 60 s, through a network model with 15 ms of jitter and 2 % loss
//! (`gstnetaudio::impair`), into `udpsrc ! plcjitterbuffer latency=60 ! appsink sync=true` on
//! the real system clock (`mode=fixed`, the default). A third stream, +1000 ppm with
//! `mode=off`, is the control: the same checks must fail on it, as a drifting queue does.
//!
//! Raw input the same way: senders of raw S16LE datagrams (20 ms, no header) at +1000 and
//! -1000 ppm with 5 ms of jitter into `rawudpaudiosrc ! plcjitterbuffer latency=60 ! appsink
//! sync=true`. Raw datagrams carry no sequence number: a loss is placed exactly only while the
//! jitter stays below a datagram's duration, and a sender thread on a loaded 2-core machine
//! adds up to 20 ms of its own (measured), hence 20 ms datagrams and 5 ms of network jitter.
//!
//! Adaptive mode the same way: an RTP sender 1000 ppm fast, in talkspurts (1 s of the tone, then
//! 0.6 s of it 52 dB lower), whose network jitter is 40 ms for the first 25 s and 5 ms after,
//! into `plcjitterbuffer mode=adaptive` (starting at latency 60, range 10..500 ms): the target
//! follows the jitter up and down, the delay follows the target, and the pauses are cut short.
//!
//! The six run at the same time (six pipelines, six ports, six sender threads), so the
//! test takes about 62 s. Each sender sends packet `k` at the instant its skewed clock and the
//! network model say, against absolute deadlines on `Instant` (CLOCK_MONOTONIC, the clock
//! GStreamer's system clock reads too), so a late wake-up delays one packet, not the rest of
//! the stream. The stats are sampled every 250 ms.
//!
//! Nothing here asserts how long anything takes: the waits have generous bounds that only
//! turn a hang into a failure.

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{MS, assert_ledger, rtp_packet};
use gst::prelude::*;
use gstnetaudio::impair::{Delivery, Impairment, Schedule};

/// How long each sender sends.
const SECONDS: u64 = 60;
/// From when (sender time, s) the delay must be held.
const CONVERGED_S: f64 = 20.0;
const LATENCY_MS: u32 = 60;
const JITTER_MS: u64 = 15;
const LOSS: f64 = 0.02;
/// L16 mono at 16 kHz, 20 ms packets.
const RATE: u64 = 16_000;
const PACKET_FRAMES: u64 = RATE / 50;
const CHUNK_FRAMES: usize = (RATE / 100) as usize;
const PT: u8 = 96;
const CAPS: &str = "application/x-rtp,media=audio,encoding-name=L16,clock-rate=16000,\
                    encoding-params=(string)1,payload=96";
const RAW_CAPS: &str = "audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved";
/// Raw datagrams: 20 ms each, jitter well below that (see above).
const RAW_FRAMES: u64 = RATE / 50;
const RAW_JITTER_MS: u64 = 5;
/// Not a multiple of the 20 ms packet interval, so the samples fall on every phase of the
/// queue's 20 ms sawtooth (a multiple would alias the skew into a slow trend of the mean).
const STATS_INTERVAL: Duration = Duration::from_millis(233);
/// Bound of every wait: its expiry means a hang.
const HANG_GUARD: gst::ClockTime = gst::ClockTime::from_seconds(30);

// What the fixed mode must hold (the checks below, with why each bound is what it is).
/// The target: within ±5 ms of the target after convergence.
const MAX_DELAY_ERROR_MS: f64 = 5.0;
/// The skew estimate at the end (the element tests measure within ±30 ppm).
const MAX_DRIFT_ERROR_PPM: f64 = 100.0;
/// 60 ms latency against 15 ms of jitter leaves 45 ms of margin: a packet only comes late when
/// the machine stalls the sender or the receiving thread for that long. A few such stalls in
/// 3000 packets are the machine's, not the element's (the sender's own lateness is reported).
const MAX_LATE: u64 = 5;
/// 60 ms + 15 ms of jitter is at most 5 packets of 20 ms (one being received, one playing); 10
/// leaves room for a receiving thread that stalls for 100 ms and then reads a burst. (Raw
/// datagrams are 20 ms too.)
const MAX_QUEUED_PACKETS: u64 = 10;
/// Mean queued audio in the last 10 s against seconds 20-30. Uncompensated, 1000 ppm moves it
/// by 30 ms; compensated it stays within a few ms (sampling phase against the 20 ms packets).
const MAX_QUEUE_GROWTH_MS: f64 = 10.0;

fn init() {
    gst::init().unwrap();
    gstnetaudio::plugin_register_static().expect("register plugin");
}

/// 440 Hz at a quarter of full scale, S16BE (L16), frames `first..first + PACKET_FRAMES`;
/// with `talk`, in talkspurts: 1 s of it, then 0.6 s 52 dB lower.
fn payload(first: u64, talk: bool) -> Vec<u8> {
    (first..first + PACKET_FRAMES)
        .flat_map(|n| {
            let t = n as f64 / RATE as f64;
            let amp = if talk && t % 1.6 >= 1.0 { 20.0 } else { 8000.0 };
            let x = (std::f64::consts::TAU * 440.0 * t).sin();
            ((x * amp) as i16).to_be_bytes()
        })
        .collect()
}

// The adaptive stream.
/// Until this sender time (s) the network jitter is `ADAPTIVE_JITTER_MS`, then a eighth of it.
const ADAPTIVE_STEP_S: f64 = 25.0;
const ADAPTIVE_JITTER_MS: u64 = 40;
/// From when (sender time, s) the delay must be back on the fallen target: the target falls
/// about 4 s after the jitter (its peak hold), the pauses then take the delay down within one
/// talkspurt cycle or two.
const ADAPTIVE_SETTLED_S: f64 = 38.0;

/// How well the sender kept its schedule: lateness of each send against its deadline.
#[derive(Debug, Default, Clone, Copy)]
struct SendReport {
    sent: u64,
    max_late_ms: f64,
    /// Sends more than 5 ms behind their deadline.
    late_over_5ms: u64,
}

/// Sends packet `d.index` of the stream at `start + d.arrive_ns` (the sender's skewed clock plus
/// the network delay, FIFO) to 127.0.0.1:`port`.
/// With `raw`, datagram `d.index` is 10 ms of S16LE with no header.
fn spawn_sender(
    port: u16,
    deliveries: Vec<Delivery>,
    start: Instant,
    ssrc: u32,
    raw: bool,
    talk: bool,
) -> JoinHandle<SendReport> {
    std::thread::spawn(move || {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("sender socket");
        let to = (Ipv4Addr::LOCALHOST, port);
        let mut rep = SendReport::default();
        for d in deliveries {
            let bytes = if raw {
                let mut le = payload(d.index * RAW_FRAMES, talk);
                for s in le.chunks_exact_mut(2) {
                    s.swap(0, 1);
                }
                le
            } else {
                rtp_packet(
                    d.index as u16,
                    (d.index * PACKET_FRAMES) as u32,
                    ssrc,
                    PT,
                    &payload(d.index * PACKET_FRAMES, talk),
                )
            };
            let at = start + Duration::from_nanos(d.arrive_ns);
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let late = Instant::now().saturating_duration_since(at);
            let late_ms = late.as_secs_f64() * 1e3;
            rep.max_late_ms = rep.max_late_ms.max(late_ms);
            rep.late_over_5ms += u64::from(late_ms > 5.0);
            assert_eq!(sock.send_to(&bytes, to).expect("send"), bytes.len());
            rep.sent += 1;
        }
        rep
    })
}

/// The output as the appsink saw it, checked buffer by buffer in its streaming thread.
#[derive(Debug, Default)]
struct Cadence {
    buffers: u64,
    /// Buffers not exactly 10 ms, or not following the previous one (PTS, offset, DISCONT).
    bad: u64,
    first_bad: Option<String>,
    next: Option<(gst::ClockTime, u64)>,
}

impl Cadence {
    fn check(&mut self, buf: &gst::BufferRef) {
        let i = self.buffers;
        self.buffers += 1;
        let ten_ms = gst::ClockTime::from_mseconds(10);
        let mut wrong = Vec::new();
        if buf.size() != CHUNK_FRAMES * 2 {
            wrong.push(format!("{} bytes", buf.size()));
        }
        if buf.duration() != Some(ten_ms) {
            wrong.push(format!("duration {:?}", buf.duration()));
        }
        if buf.offset_end() != buf.offset() + CHUNK_FRAMES as u64 {
            wrong.push(format!("offsets {}..{}", buf.offset(), buf.offset_end()));
        }
        if buf.flags().contains(gst::BufferFlags::DISCONT) != (i == 0) {
            wrong.push("DISCONT flag".into());
        }
        match (buf.pts(), self.next) {
            (None, _) => wrong.push("no PTS".into()),
            (Some(pts), Some((want_pts, want_offset))) => {
                if pts != want_pts {
                    wrong.push(format!("PTS {pts}, expected {want_pts}"));
                }
                if buf.offset() != want_offset {
                    wrong.push(format!("offset {}, expected {want_offset}", buf.offset()));
                }
            }
            (Some(_), None) => {}
        }
        self.next = buf
            .pts()
            .map(|p| (p + buf.duration().unwrap_or(ten_ms), buf.offset_end()));
        if !wrong.is_empty() {
            self.bad += 1;
            self.first_bad
                .get_or_insert_with(|| format!("buffer {i}: {}", wrong.join(", ")));
        }
    }
}

/// One sample of the stats.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since the senders started.
    t: f64,
    measured_ms: f64,
    target_ms: f64,
    drift_ppm: f64,
    queued_ms: f64,
    queued_packets: u64,
}

/// One receiver and its sender.
struct Stream {
    name: &'static str,
    skew_ppm: f64,
    /// Raw datagrams into rawudpaudiosrc (else RTP into udpsrc).
    raw: bool,
    /// The adaptive stream (talkspurts, a jitter step).
    adaptive: bool,
    pipeline: gst::Pipeline,
    cadence: Arc<Mutex<Cadence>>,
    deliveries: Vec<Delivery>,
    /// Packets the network model lost (the first is never lost).
    lost: u64,
    samples: Vec<Sample>,
    sender: Option<JoinHandle<SendReport>>,
    send: SendReport,
}

impl Stream {
    fn new(name: &'static str, skew_ppm: f64, mode: &str, seed: u64, raw: bool) -> Self {
        let adaptive = mode == "adaptive";
        let src = if raw {
            format!("rawudpaudiosrc name=src address=127.0.0.1 port=0 caps=\"{RAW_CAPS}\"")
        } else {
            format!("udpsrc name=src address=127.0.0.1 port=0 caps=\"{CAPS}\"")
        };
        let pipeline = gst::parse::launch(&format!(
            "{src} ! plcjitterbuffer name=jb latency={LATENCY_MS} mode={mode} ! \
             appsink name=sink sync=true"
        ))
        .expect("pipeline")
        .downcast::<gst::Pipeline>()
        .unwrap();
        // The real system clock (what the pipeline would pick anyway: nothing here provides one).
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let cadence = Arc::new(Mutex::new(Cadence::default()));
        let c = cadence.clone();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buf = sample.buffer().ok_or(gst::FlowError::Error)?;
                    c.lock().unwrap().check(buf);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let jitter_ms = if adaptive {
            ADAPTIVE_JITTER_MS
        } else if raw {
            RAW_JITTER_MS
        } else {
            JITTER_MS
        };
        let imp = Impairment {
            loss: LOSS,
            jitter_ns: jitter_ms * MS,
            skew_ppm,
            seed,
        };
        let mut schedule = Schedule::new(imp, 20 * MS);
        let mut deliveries: Vec<Delivery> = schedule
            .by_ref()
            .take_while(|d| d.sent_ns < SECONDS * 1_000_000_000)
            .collect();
        if adaptive {
            // From the step on, an eighth of each packet's delay, the order kept.
            let mut last = 0;
            for d in &mut deliveries {
                if d.sent_ns as f64 >= ADAPTIVE_STEP_S * 1e9 {
                    d.arrive_ns = (d.sent_ns + (d.arrive_ns - d.sent_ns) / 8).max(last);
                }
                last = d.arrive_ns;
            }
        }
        // take_while drew (and dropped) one more delivery, and any losses before it.
        let last = deliveries.last().unwrap().index;
        let lost = last + 1 - deliveries.len() as u64;
        Self {
            name,
            skew_ppm,
            raw,
            adaptive,
            pipeline,
            cadence,
            deliveries,
            lost,
            samples: Vec::new(),
            sender: None,
            send: SendReport::default(),
        }
    }

    /// READY (udpsrc binds and reports its port), then PLAYING: the jitter buffer starts its
    /// output with silence, so the state change completes without data.
    fn start(&mut self) -> u16 {
        self.pipeline.set_state(gst::State::Ready).expect("READY");
        let port: i32 = self.pipeline.by_name("src").unwrap().property("port");
        assert_ne!(port, 0, "udpsrc did not report its port");
        self.pipeline
            .set_state(gst::State::Playing)
            .expect("PLAYING");
        let (res, state, _) = self.pipeline.state(HANG_GUARD);
        res.expect("state change to PLAYING");
        assert_eq!(state, gst::State::Playing);
        u16::try_from(port).unwrap()
    }

    fn stats(&self) -> gst::Structure {
        self.pipeline.by_name("jb").unwrap().property("stats")
    }

    /// Seconds (sender time) until which the stream is in full flow: the last packet's arrival
    /// less a margin, after which the queue drains.
    fn end_s(&self) -> f64 {
        self.deliveries.last().unwrap().arrive_ns as f64 / 1e9 - 0.3
    }

    fn sample(&mut self, t: f64) {
        if t > self.end_s() {
            return;
        }
        let s = self.stats();
        // The drift fields exist once the first packet set up the RTP playout.
        let (Ok(measured_ms), Ok(target_ms), Ok(drift_ppm)) = (
            s.get::<f64>("measured-delay-ms"),
            s.get::<f64>("target-delay-ms"),
            s.get::<f64>("drift-ppm"),
        ) else {
            return;
        };
        self.samples.push(Sample {
            t,
            measured_ms,
            target_ms,
            drift_ppm,
            queued_ms: s.get::<f64>("queued-ms").unwrap(),
            queued_packets: s.get::<u64>("queued-packets").unwrap(),
        });
    }
}

/// What was measured on one stream after convergence.
struct Report {
    name: &'static str,
    skew_ppm: f64,
    samples_after: usize,
    /// How much later than the fastest path the first packet came (what the target holds on
    /// top of the latency).
    first_delay_ms: f64,
    target_ms: f64,
    /// Largest |measured − target| after `CONVERGED_S`, and the error at the last sample.
    max_error_ms: f64,
    end_error_ms: f64,
    drift_ppm: f64,
    mean_queued_ms_20_30: f64,
    mean_queued_ms_last_10: f64,
    mean_queued_packets_20_30: f64,
    mean_queued_packets_last_10: f64,
    max_queued_packets: u64,
    late: u64,
    resyncs: u64,
    lost: u64,
    lost_by_network: u64,
    received: u64,
    buffers: u64,
    bad_buffers: u64,
    first_bad: Option<String>,
    send: SendReport,
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (n, sum) = v.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    assert!(n > 0, "no samples to average");
    sum / n as f64
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (true skew {:+} ppm): {} samples after {CONVERGED_S} s; first packet {:.1} ms \
             behind the fastest path; target {:.1} ms; \
             max |measured - target| {:.2} ms, at the end {:+.2} ms; drift-ppm {:+.1}; \
             mean queued {:.1} ms / {:.2} packets in 20-30 s, {:.1} ms / {:.2} packets in the \
             last 10 s; most queued {} packets; late {}; resyncs {}; lost {} (network {}); \
             received {}; {} buffers, {} not 10 ms or not contiguous (first: {}); sender: {} \
             sent, at most {:.1} ms behind its deadline, {} more than 5 ms",
            self.name,
            self.skew_ppm,
            self.samples_after,
            self.first_delay_ms,
            self.target_ms,
            self.max_error_ms,
            self.end_error_ms,
            self.drift_ppm,
            self.mean_queued_ms_20_30,
            self.mean_queued_packets_20_30,
            self.mean_queued_ms_last_10,
            self.mean_queued_packets_last_10,
            self.max_queued_packets,
            self.late,
            self.resyncs,
            self.lost,
            self.lost_by_network,
            self.received,
            self.buffers,
            self.bad_buffers,
            self.first_bad.as_deref().unwrap_or("none"),
            self.send.sent,
            self.send.max_late_ms,
            self.send.late_over_5ms,
        )
    }
}

impl Report {
    fn of(st: &Stream, final_stats: &gst::StructureRef) -> Self {
        let after: Vec<&Sample> = st.samples.iter().filter(|s| s.t >= CONVERGED_S).collect();
        assert!(
            after.len() >= 100,
            "{}: only {} stats samples after {CONVERGED_S} s",
            st.name,
            after.len()
        );
        let last = *after.last().unwrap();
        let end = st.end_s();
        let in_range = |a: f64, b: f64| after.iter().filter(move |s| s.t >= a && s.t < b);
        let cadence = st.cadence.lock().unwrap();
        let get = |f: &str| final_stats.get::<u64>(f).unwrap();
        Report {
            name: st.name,
            skew_ppm: st.skew_ppm,
            samples_after: after.len(),
            first_delay_ms: (st.deliveries[0].arrive_ns - st.deliveries[0].sent_ns) as f64 / 1e6,
            target_ms: last.target_ms,
            max_error_ms: after
                .iter()
                .map(|s| (s.measured_ms - s.target_ms).abs())
                .fold(0.0, f64::max),
            end_error_ms: last.measured_ms - last.target_ms,
            drift_ppm: last.drift_ppm,
            mean_queued_ms_20_30: mean(in_range(20.0, 30.0).map(|s| s.queued_ms)),
            mean_queued_ms_last_10: mean(in_range(end - 10.0, end).map(|s| s.queued_ms)),
            mean_queued_packets_20_30: mean(in_range(20.0, 30.0).map(|s| s.queued_packets as f64)),
            mean_queued_packets_last_10: mean(
                in_range(end - 10.0, end).map(|s| s.queued_packets as f64),
            ),
            max_queued_packets: after.iter().map(|s| s.queued_packets).max().unwrap(),
            late: get("late"),
            resyncs: get("resyncs"),
            lost: get("lost"),
            lost_by_network: st.lost,
            received: get("received"),
            buffers: cadence.buffers,
            bad_buffers: cadence.bad,
            first_bad: cadence.first_bad.clone(),
            send: st.send,
        }
    }

    /// Which of the fixed mode's promises this stream broke (empty: none).
    fn broken(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.max_error_ms > MAX_DELAY_ERROR_MS {
            v.push("delay off target");
        }
        if (self.drift_ppm - self.skew_ppm).abs() > MAX_DRIFT_ERROR_PPM {
            v.push("skew estimate");
        }
        if self.mean_queued_ms_last_10 - self.mean_queued_ms_20_30 > MAX_QUEUE_GROWTH_MS
            || self.mean_queued_ms_20_30 - self.mean_queued_ms_last_10 > MAX_QUEUE_GROWTH_MS
        {
            v.push("queue drifts");
        }
        if self.max_queued_packets > MAX_QUEUED_PACKETS {
            v.push("queue unbounded");
        }
        if self.late > MAX_LATE {
            v.push("late packets");
        }
        if self.resyncs > 0 {
            v.push("resyncs");
        }
        if self.bad_buffers > 0 || self.buffers == 0 {
            v.push("cadence");
        }
        // Concealment only for what the network lost; the last few may still be in flight.
        if self.lost > self.lost_by_network || self.lost + 3 < self.lost_by_network {
            v.push("loss count");
        }
        v
    }
}

#[test]
fn senders_1000_ppm_fast_and_slow_keep_the_delay_on_loopback() {
    init();
    let mut streams = vec![
        Stream::new("+1000 ppm fixed", 1000.0, "fixed", 61, false),
        Stream::new("-1000 ppm fixed", -1000.0, "fixed", 62, false),
        Stream::new("+1000 ppm off (control)", 1000.0, "off", 61, false),
        Stream::new("raw +1000 ppm fixed", 1000.0, "fixed", 63, true),
        Stream::new("raw -1000 ppm fixed", -1000.0, "fixed", 64, true),
        Stream::new(
            "+1000 ppm adaptive, talkspurts",
            1000.0,
            "adaptive",
            65,
            false,
        ),
    ];
    let ports: Vec<u16> = streams.iter_mut().map(Stream::start).collect();
    let start = Instant::now();
    for (i, (st, port)) in streams.iter_mut().zip(ports).enumerate() {
        st.sender = Some(spawn_sender(
            port,
            st.deliveries.clone(),
            start,
            0x0d71_e2e0 + i as u32,
            st.raw,
            st.adaptive,
        ));
    }

    // Sample the stats on a fixed grid until every sender is done.
    let hang = Duration::from_secs(SECONDS + 60);
    let mut k = 1;
    while streams
        .iter()
        .any(|s| !s.sender.as_ref().unwrap().is_finished())
    {
        assert!(start.elapsed() < hang, "the senders did not finish");
        let at = start + STATS_INTERVAL * k;
        k += 1;
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = start.elapsed().as_secs_f64();
        for st in &mut streams {
            st.sample(t);
        }
    }
    for st in &mut streams {
        st.send = st.sender.take().unwrap().join().expect("sender thread");
    }

    let mut reports = Vec::new();
    let mut finals = Vec::new();
    for st in &streams {
        let s = st.stats();
        st.pipeline.set_state(gst::State::Null).unwrap();
        let bus = st.pipeline.bus().unwrap();
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Warning]) {
            panic!("{}: {msg:?}", st.name);
        }
        assert_ledger(&s);
        let r = Report::of(st, &s);
        eprintln!("{r}\n{}: final stats {s}\n", st.name);
        reports.push(r);
        finals.push(s);
    }
    // Delay error over time (sender seconds), for the record.
    const MARKS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 59.0];
    for st in &streams {
        let line: Vec<String> = st
            .samples
            .iter()
            .filter(|s| {
                MARKS
                    .iter()
                    .any(|&m| (s.t - m).abs() * 2.0 < STATS_INTERVAL.as_secs_f64())
            })
            .map(|s| format!("{:.0}s {:+.1}", s.t, s.measured_ms - s.target_ms))
            .collect();
        eprintln!("{}: measured - target (ms): {}", st.name, line.join(", "));
    }

    for r in reports[..2].iter().chain(&reports[3..5]) {
        let broken = r.broken();
        assert!(broken.is_empty(), "{}: {broken:?}\n{r}", r.name);
    }
    // The control: the same checks catch a queue that drifts (1 ms/s: ~30 ms between the
    // windows, ~+60 ms at the end), so they can fail.
    let off = &reports[2];
    let broken = off.broken();
    assert!(
        broken.contains(&"delay off target") && broken.contains(&"queue drifts"),
        "mode=off at +1000 ppm should drift: {broken:?}\n{off}"
    );
    assert!(
        off.end_error_ms > 30.0 && off.mean_queued_ms_last_10 - off.mean_queued_ms_20_30 > 20.0,
        "mode=off at +1000 ppm should grow by ~1 ms/s: {off}"
    );
    assert_eq!(off.bad_buffers, 0, "{off}");
    check_adaptive(&streams[5], &reports[5], &finals[5]);
}

/// Adaptive mode on loopback: up with the jitter, down again by cutting the pauses.
fn check_adaptive(st: &Stream, r: &Report, final_stats: &gst::StructureRef) {
    let samples = |a: f64, b: f64| st.samples.iter().filter(move |s| s.t >= a && s.t < b);
    let high = mean(samples(15.0, ADAPTIVE_STEP_S).map(|s| s.target_ms));
    let end = st.end_s();
    let low = mean(samples(end - 10.0, end).map(|s| s.target_ms));
    let worst = samples(ADAPTIVE_SETTLED_S, end)
        .map(|s| (s.measured_ms - s.target_ms).abs())
        .fold(0.0, f64::max);
    let compressed = final_stats.get::<u64>("stretch-compressed-ms").unwrap();
    let line: Vec<String> = samples(20.0, 45.0)
        .step_by(4)
        .map(|s| format!("{:.0}s {:.0}/{:.0}", s.t, s.target_ms, s.measured_ms))
        .collect();
    eprintln!(
        "{}: target {high:.1} ms in 15-25 s (40 ms jitter), {low:.1} ms in the last 10 s (5 ms); \
         max |measured - target| from {ADAPTIVE_SETTLED_S} s {worst:.2} ms; cut from pauses \
         {compressed} ms; target/measured: {}",
        st.name,
        line.join(", ")
    );
    // Up with the jitter (a quantile of 0..40 ms) and down with it (of 0..5 ms, at least the
    // 10 ms floor).
    assert!(
        high > 30.0,
        "{}: target {high} ms with 40 ms of jitter",
        st.name
    );
    assert!(
        low < 20.0,
        "{}: target {low} ms with 5 ms of jitter",
        st.name
    );
    assert!(
        worst <= MAX_DELAY_ERROR_MS,
        "{}: {worst} ms off target",
        st.name
    );
    assert!(compressed >= 10, "{}: {compressed} ms cut", st.name);
    // Late: the target is a quantile; packets beyond it and the ones the jump caught (at most
    // 1 % of the 3000).
    assert!(r.late <= 30, "{}: {} late\n{r}", st.name, r.late);
    assert_eq!(r.resyncs, 0, "{r}");
    assert!(r.bad_buffers == 0 && r.buffers > 0, "{r}");
    assert!(
        (r.drift_ppm - r.skew_ppm).abs() <= MAX_DRIFT_ERROR_PPM,
        "{r}"
    );
}

// SPDX-License-Identifier: MPL-2.0
//! # plcjitterbuffer
//!
//! Takes raw audio datagrams stamped with their arrival time (from `rawudpaudiosrc`, or `udpsrc`
//! with audio caps), or RTP packets (L16, PCMU, PCMA, Opus) straight from `udpsrc`, places them
//! on the sender's timeline, and pushes exactly 10 ms of audio every 10 ms of running time from
//! a src-pad task paced by the pipeline clock, concealing what did not arrive in time.
//!
//! ```text
//! gst-launch-1.0 rawudpaudiosrc port=5004 ! plcjitterbuffer latency=40 ! audioconvert ! autoaudiosink
//! gst-launch-1.0 udpsrc port=5004 caps="application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000" \
//!     ! plcjitterbuffer ! audioconvert ! autoaudiosink
//! ```
//!
//! RTP: packets are parsed (`jitter::rtp`), refused with a counted reason when malformed, and
//! queued by the RTP core (`jitter::rtp_playout`), which decodes them in sequence order as
//! their audio is due (`codec`).
//!
//! Timing: the first datagram's arrival (its PTS as running time) is the origin. Output frame `f`
//! gets PTS `origin + f / rate` (from a frame counter, so it never drifts) and is pushed when the
//! clock reaches `origin + upstream latency + latency + f / rate`. The latency query answers
//! upstream latency plus `latency`.

use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::Mode;
use crate::codec::{Encoding, PayloadDecoder};
use crate::jitter::ledger::{DEFAULT_MAX_BYTES, DEFAULT_MAX_PACKETS};
use crate::jitter::playout::max_queue_ns;
use crate::jitter::rtp::{self, Malformed};
use crate::jitter::time::NS_PER_MS;
use crate::jitter::{Ledger, Limits, Playout, PushOutcome, RtpPlayout, RtpPushOutcome, Stream};
use crate::pcm::SampleFormat;
use crate::ratelimit::RateLimiter;
use crate::sync::{lock, wait, wait_timeout};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "plcjitterbuffer",
        gst::DebugColorFlags::empty(),
        Some("Jitter buffer with packet loss concealment"),
    )
});

const DEFAULT_LATENCY_MS: u32 = 40;
const MAX_LATENCY_MS: u32 = 10_000;
const DEFAULT_STATS_INTERVAL_MS: u32 = 0;
const MAX_STATS_INTERVAL_MS: u32 = 3_600_000;
const DEFAULT_SILENCE_UNTIL_DATA: bool = true;
const DEFAULT_OPUS_COMPLEXITY: i32 = 10;
const DEFAULT_PLC: super::Plc = super::Plc::Expand;
const DEFAULT_MAX_PACKETS_U32: u32 = DEFAULT_MAX_PACKETS as u32;
const DEFAULT_MODE: Mode = Mode::Fixed;
const DEFAULT_MAX_BYTES_U32: u32 = DEFAULT_MAX_BYTES as u32;
const DEFAULT_MIN_LATENCY_MS: u32 = 10;
const DEFAULT_MAX_LATENCY_MS: u32 = 500;
const STATS_NAME: &str = "application/x-plcjitterbuffer-stats";

#[derive(Debug, Clone, Copy)]
struct Settings {
    latency_ms: u32,
    stats_interval_ms: u32,
    silence_until_data: bool,
    opus_complexity: i32,
    plc: super::Plc,
    mode: Mode,
    min_latency_ms: u32,
    max_latency_ms: u32,
    max_packets: u32,
    max_bytes: u32,
}

impl Settings {
    fn limits(&self) -> Limits {
        Limits::new(self.max_packets as usize, self.max_bytes as usize)
    }

    /// Adaptive mode's target range (ns); a minimum above the maximum is taken as both.
    fn latency_range(&self) -> (u64, u64) {
        let max = self.max_latency_ms.max(self.min_latency_ms);
        (ms_to_ns(self.min_latency_ms), ms_to_ns(max))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            latency_ms: DEFAULT_LATENCY_MS,
            stats_interval_ms: DEFAULT_STATS_INTERVAL_MS,
            silence_until_data: DEFAULT_SILENCE_UNTIL_DATA,
            opus_complexity: DEFAULT_OPUS_COMPLEXITY,
            plc: DEFAULT_PLC,
            mode: DEFAULT_MODE,
            min_latency_ms: DEFAULT_MIN_LATENCY_MS,
            max_latency_ms: DEFAULT_MAX_LATENCY_MS,
            max_packets: DEFAULT_MAX_PACKETS_U32,
            max_bytes: DEFAULT_MAX_BYTES_U32,
        }
    }
}

/// What comes in on the sink pad.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    /// Raw PCM datagrams of `bpf`-byte frames.
    Raw { sample: SampleFormat, bpf: usize },
    /// RTP packets; `pt` is the payload type the caps name (else the first packet's).
    Rtp { encoding: Encoding, pt: Option<u8> },
}

/// The negotiated input format and the output caps.
#[derive(Debug, Clone)]
struct Format {
    input: Input,
    /// Output caps and sample format.
    caps: gst::Caps,
    sample: SampleFormat,
    rate: u32,
    channels: usize,
}

/// Where every buffer that reached the sink pad went, since the element started (READY to
/// PAUSED; flushes and caps changes do not reset it): refused before the stream core, or handed
/// to it, whose [`Ledger`] says the rest. So `received = refused + malformed + not_whole_frames
/// + ledger.received`.
#[derive(Debug, Default, Clone, Copy)]
struct Accounting {
    received: u64,
    /// Refused with a flow error: after a downstream error or a stop, after EOS, before caps,
    /// or unmappable. (The pad itself refuses buffers while flushing and after EOS: those never
    /// reach the element.)
    refused: u64,
    /// RTP headers refused (any `Malformed` reason, the payload type included).
    malformed: u64,
    /// Raw buffers that are not whole frames.
    not_whole_frames: u64,
    /// Ledgers of the streams that ended (caps changes, stop) since the start.
    ended: Ledger,
}

/// Rate-limited warning classes beyond the malformed-header reasons (see `State::warnings`).
const WARN_INVALID: usize = Malformed::ALL.len();
const WARN_NOT_WHOLE_FRAMES: usize = Malformed::ALL.len() + 1;
const WARN_CLASSES: usize = Malformed::ALL.len() + 2;

#[derive(Debug)]
struct State {
    format: Option<Format>,
    playout: Option<Stream>,
    in_segment: gst::FormattedSegment<gst::ClockTime>,
    /// Serialized events waiting to go out before the next buffer, in order.
    pending_events: Vec<gst::Event>,
    /// A new output segment must be sent before the next buffer.
    need_segment: bool,
    upstream_latency: Option<gst::ClockTime>,
    playing: bool,
    eos: bool,
    srcresult: Result<gst::FlowSuccess, gst::FlowError>,
    clock_id: Option<gst::SingleShotClockId>,
    /// Input buffers dropped because they were not whole frames (raw input) or not valid
    /// payloads for the codec (RTP).
    invalid: u64,
    /// One warning a second per class of bad input, each class on its own (a burst of one
    /// kind does not hide another): indexed like `Malformed::ALL`, then [`WARN_INVALID`] and
    /// [`WARN_NOT_WHOLE_FRAMES`].
    warnings: [RateLimiter; WARN_CLASSES],
    /// RTP packets refused, by reason (indexed like `Malformed::ALL`).
    malformed: [u64; Malformed::ALL.len()],
    /// Payload type of the RTP stream when the caps do not name one (the first packet's).
    rtp_pt: Option<u8>,
    /// Arrival of the last buffer and its duration, to stamp buffers that come without PTS.
    last_arrival: Option<(gst::ClockTime, gst::ClockTime)>,
    next_stats_pts: Option<u64>,
    samples: Vec<f32>,
    acct: Accounting,
    /// Most packets and bytes held at once since the start or the last flush.
    max_queued_packets: usize,
    max_queued_bytes: usize,
}

impl Default for State {
    fn default() -> Self {
        Self {
            format: None,
            playout: None,
            in_segment: gst::FormattedSegment::new(),
            pending_events: Vec::new(),
            need_segment: true,
            upstream_latency: None,
            playing: false,
            eos: false,
            srcresult: Err(gst::FlowError::Flushing),
            clock_id: None,
            invalid: 0,
            warnings: std::array::from_fn(|_| RateLimiter::new(gst::ClockTime::SECOND.nseconds())),
            malformed: [0; Malformed::ALL.len()],
            rtp_pt: None,
            last_arrival: None,
            next_stats_pts: None,
            samples: Vec::new(),
            acct: Accounting::default(),
            max_queued_packets: 0,
            max_queued_bytes: 0,
        }
    }
}

pub struct PlcJitterBuffer {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<State>,
    cond: Condvar,
}

#[glib::object_subclass]
impl ObjectSubclass for PlcJitterBuffer {
    const NAME: &'static str = "GstPlcJitterBuffer";
    type Type = super::PlcJitterBuffer;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").expect("sink template");
        let sinkpad = gst::Pad::builder_from_template(&templ)
            .chain_function(|pad, parent, buffer| {
                Self::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(pad, buffer),
                )
            })
            .event_function(|pad, parent, event| {
                Self::catch_panic_pad_function(parent, || false, |imp| imp.sink_event(pad, event))
            })
            .activatemode_function(|_pad, parent, mode, active| {
                Self::catch_panic_pad_function(
                    parent,
                    || Err(gst::loggable_error!(CAT, "sink activation panicked")),
                    |imp| imp.sink_activatemode(mode, active),
                )
            })
            .query_function(|pad, parent, query| {
                Self::catch_panic_pad_function(parent, || false, |imp| imp.sink_query(pad, query))
            })
            .build();

        let templ = klass.pad_template("src").expect("src template");
        let srcpad = gst::Pad::builder_from_template(&templ)
            .event_function(|pad, parent, event| {
                Self::catch_panic_pad_function(parent, || false, |imp| imp.src_event(pad, event))
            })
            .query_function(|pad, parent, query| {
                Self::catch_panic_pad_function(parent, || false, |imp| imp.src_query(pad, query))
            })
            .activatemode_function(|pad, parent, mode, active| {
                Self::catch_panic_pad_function(
                    parent,
                    || Err(gst::loggable_error!(CAT, "src activation panicked")),
                    |imp| imp.src_activatemode(pad, mode, active),
                )
            })
            .build();

        Self {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        }
    }
}

impl ObjectImpl for PlcJitterBuffer {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("latency")
                    .nick("Latency")
                    .blurb(
                        "Time in milliseconds that each datagram may take to arrive, beyond \
                         the fastest ones, before its audio is played (or concealed): the \
                         fastest datagrams play this long after their arrival. Range 0-10000, \
                         default 40. Changeable while PLAYING (posts a latency message).",
                    )
                    .maximum(MAX_LATENCY_MS)
                    .default_value(DEFAULT_LATENCY_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("stats-interval")
                    .nick("Stats interval")
                    .blurb(
                        "Post the stats structure as an element message on the bus every this \
                         many milliseconds of output (0 = never). Range 0-3600000, default 0. \
                         Changeable while PLAYING.",
                    )
                    .maximum(MAX_STATS_INTERVAL_MS)
                    .default_value(DEFAULT_STATS_INTERVAL_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("silence-until-data")
                    .nick("Silence until data")
                    .blurb(
                        "Push silence from the moment the element is PLAYING (once the caps are \
                         known) instead of waiting for the first datagram, so the audio device \
                         is already running when the sender starts; the first datagram still \
                         plays `latency` after its arrival. When false, output starts with the \
                         first datagram. Default true. Changeable in NULL and READY states.",
                    )
                    .default_value(DEFAULT_SILENCE_UNTIL_DATA)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("opus-complexity")
                    .nick("Opus decoder complexity")
                    .blurb(
                        "Complexity of the Opus decoder, 0-10, default 10: 5 and up conceal \
                         losses with libopus' neural deep PLC, 6 and up also enhance decoded \
                         speech (OSCE LACE, 7 and up NoLACE). Lower it to save CPU. Takes \
                         effect at the next caps. Changeable in NULL and READY states.",
                    )
                    .minimum(0)
                    .maximum(10)
                    .default_value(DEFAULT_OPUS_COMPLEXITY)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("plc", DEFAULT_PLC)
                    .nick("Concealment")
                    .blurb(
                        "How missing audio is concealed: expand (default), neural (libopus deep \
                         PLC, 16 kHz mono; expand otherwise), or for comparison appendix-i \
                         (G.711 Appendix I), sample-constant (spandsp-style), repeat, silence. \
                         Changeable while PLAYING (a change forgets the concealment history).",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("mode", DEFAULT_MODE)
                    .nick("Delay and clock drift mode")
                    .blurb(
                        "How the playout delay is chosen and a sender clock that runs fast or \
                         slow against the pipeline clock is compensated: fixed (default) holds \
                         the delay at latency by resampling at a ratio a control loop derives \
                         from the arrival times (ramped, at most a few ppm per second once \
                         locked; bit-exact until a correction is needed); adaptive lets the \
                         delay follow the measured arrival jitter (a high quantile) within \
                         min-latency..max-latency, rising at once by concealing when jitter \
                         grows and falling within seconds when it shrinks, by cutting \
                         quiet stretches short (pauses play up to twice as fast) and \
                         resampling up to 1 % faster, the drift compensated the same way (latency then is only \
                         the delay the stream starts with and the latency reported \
                         downstream; raw input, which has no timestamps, plays adaptive as \
                         fixed); off consumes media at the nominal rate, so the queue drifts \
                         until a resync (for comparison). Changeable in READY and below.",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("min-latency")
                    .nick("Minimum adaptive latency")
                    .blurb(
                        "In adaptive mode, the lowest delay (ms) the target may fall to, beyond \
                         the fastest datagrams' arrival. Range 0-10000, default 10. Takes \
                         effect for the next stream (a resync, flush or caps change). \
                         Changeable while PLAYING.",
                    )
                    .maximum(MAX_LATENCY_MS)
                    .default_value(DEFAULT_MIN_LATENCY_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-latency")
                    .nick("Maximum adaptive latency")
                    .blurb(
                        "In adaptive mode, the highest delay (ms) the target may rise to, however \
                         large the jitter (what arrives later is concealed); below \
                         min-latency it is taken as min-latency. The queue is sized for it. \
                         Range 0-10000, default 500. Takes effect for the next stream (a \
                         resync, flush or caps change). Changeable while PLAYING.",
                    )
                    .maximum(MAX_LATENCY_MS)
                    .default_value(DEFAULT_MAX_LATENCY_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-packets")
                    .nick("Maximum packets held")
                    .blurb(
                        "Most packets (RTP packets or raw datagrams) held at once, queued and \
                         held as a possible sender restart together. Beyond it, held ones go \
                         first, then the oldest queued (a live stream keeps its newest audio; \
                         the hole is concealed, or skipped for raw input while the delay is \
                         above latency), counted in overflow-dropped. Keep it above latency's \
                         worth of packets, or packets are evicted before their slot comes. \
                         Range 1-4294967295 \
                         (there is no unbounded setting), default 4096. Changeable while \
                         PLAYING: a lower value applies at once.",
                    )
                    .minimum(1)
                    .default_value(DEFAULT_MAX_PACKETS_U32)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-bytes")
                    .nick("Maximum bytes held")
                    .blurb(
                        "Most bytes held for those packets: RTP payloads as received, raw \
                         audio as 32-bit float samples (4 bytes a sample). Same overflow \
                         policy as max-packets; a packet larger than this alone is dropped on \
                         arrival. Range 1-4294967295 (no unbounded setting), default 8388608 \
                         (8 MiB; raise it for latencies of seconds at high rates and channel \
                         counts). Changeable while PLAYING: a lower value applies at once.",
                    )
                    .minimum(1)
                    .default_value(DEFAULT_MAX_BYTES_U32)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "Counters since the stream started (application/x-plcjitterbuffer-stats): \
                         pushed (10 ms buffers output), received (datagrams accepted), lost \
                         (datagrams inferred missing), late (dropped, slot already played), \
                         concealed-ms (audio synthesized for what was missing), silence-ms \
                         (before data, and after concealment faded out), played-ms, \
                         current-delay-ms (arrival to playout of the newest datagram), \
                         queued-ms, overflow-dropped, resyncs, invalid (not whole frames, or \
                         payloads the codec refuses), gaps-moved (losses hidden by jitter, \
                         moved to where arrival times put them), splices-smoothed (datagram \
                         boundaries cross-faded because the waveform jumped), drift-ppm \
                         (estimated sender clock skew, positive: fast), drift-ratio \
                         (resampling ratio, 1 while bypassed), target-delay-ms and \
                         measured-delay-ms (the drift loop's: how long after the fastest-path \
                         arrival the audio now playing plays), stretch-inserted-ms and \
                         stretch-removed-ms (output time added to or taken from the media by \
                         resampling, by concealment inserted to raise the delay in adaptive \
                         mode, and by cuts in quiet stretches lowering it), \
                         stretch-compressed-ms (of stretch-removed-ms, what was cut out of \
                         quiet stretches). RTP input adds: duplicates, reordered, fec-recovered (lost \
                         packets rebuilt from the next one's Opus in-band FEC), dred-recovered, \
                         plc-ms (Opus PLC), dtx-ms (sender pauses, not loss), misfits (packets \
                         that fit neither the stream nor a restart), ssrc-changes, jitter-ms \
                         (RFC 3550), ssrc, payload-type, malformed (all refused headers) and \
                         one malformed-<reason> \
                         count per reason (too-short, bad-version, csrc-overrun, \
                         extension-overrun, bad-padding, rtcp, empty-payload, payload-type). \
                         Memory: queued-packets, queued-bytes (held now, see max-packets and \
                         max-bytes), max-queued-packets, max-queued-bytes (most at once since \
                         the start or the last flush). Accounting, since the element started \
                         (flushes and caps changes do not reset it): buffers-received (every \
                         buffer that reached the element) = buffers-refused (flow error before \
                         the queue: after a downstream error, before caps; buffers the pad \
                         itself refuses while flushing or after EOS never reach the element) + \
                         buffers-malformed \
                         (RTP headers refused) + buffers-not-whole-frames (raw) + \
                         packets-received (handed to the queue); and packets-received = \
                         packets-queued + packets-held (RTP misfits that may start a new \
                         stream) + packets-played + dropped-duplicate + dropped-late + \
                         dropped-overflow + dropped-misfit + dropped-invalid (payloads the \
                         codec refuses) + dropped-resync (queued on a timeline a resync \
                         replaced) + dropped-flushed (queued when flushed, stopped or caps \
                         changed); unaccounted is what both identities leave over and is \
                         always 0. Read-only.",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "latency" => {
                let latency_ms: u32 = value.get().expect("type checked upstream");
                let changed = {
                    let mut settings = lock(&self.settings);
                    let changed = settings.latency_ms != latency_ms;
                    settings.latency_ms = latency_ms;
                    changed
                };
                if let Some(p) = lock(&self.state).playout.as_mut() {
                    p.set_latency(ms_to_ns(latency_ms));
                }
                if changed {
                    gst::info!(CAT, imp = self, "latency set to {latency_ms} ms");
                    let _ = self
                        .obj()
                        .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
                }
            }
            "silence-until-data" => {
                lock(&self.settings).silence_until_data =
                    value.get().expect("type checked upstream");
            }
            "opus-complexity" => {
                lock(&self.settings).opus_complexity = value.get().expect("type checked upstream");
            }
            "mode" => {
                let mode: Mode = value.get().expect("type checked upstream");
                lock(&self.settings).mode = mode;
                if let Some(p) = lock(&self.state).playout.as_mut() {
                    p.set_drift_mode(mode.into());
                }
            }
            "min-latency" | "max-latency" => {
                let v: u32 = value.get().expect("type checked upstream");
                let range = {
                    let mut settings = lock(&self.settings);
                    if pspec.name() == "min-latency" {
                        settings.min_latency_ms = v;
                    } else {
                        settings.max_latency_ms = v;
                    }
                    settings.latency_range()
                };
                gst::info!(CAT, imp = self, "{} set to {v} ms", pspec.name());
                if let Some(p) = lock(&self.state).playout.as_mut() {
                    p.set_latency_range(range.0, range.1);
                }
            }
            "plc" => {
                let plc: super::Plc = value.get().expect("type checked upstream");
                lock(&self.settings).plc = plc;
                if let Some(p) = lock(&self.state).playout.as_mut() {
                    p.set_plc_method(plc.into());
                }
            }
            "max-packets" | "max-bytes" => {
                let v: u32 = value.get().expect("type checked upstream");
                let limits = {
                    let mut settings = lock(&self.settings);
                    if pspec.name() == "max-packets" {
                        settings.max_packets = v;
                    } else {
                        settings.max_bytes = v;
                    }
                    settings.limits()
                };
                gst::info!(CAT, imp = self, "{} set to {v}", pspec.name());
                if let Some(p) = lock(&self.state).playout.as_mut() {
                    p.set_limits(limits);
                }
            }
            "stats-interval" => {
                let v: u32 = value.get().expect("type checked upstream");
                lock(&self.settings).stats_interval_ms = v;
                lock(&self.state).next_stats_pts = None;
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "latency" => lock(&self.settings).latency_ms.to_value(),
            "stats-interval" => lock(&self.settings).stats_interval_ms.to_value(),
            "silence-until-data" => lock(&self.settings).silence_until_data.to_value(),
            "opus-complexity" => lock(&self.settings).opus_complexity.to_value(),
            "plc" => lock(&self.settings).plc.to_value(),
            "mode" => lock(&self.settings).mode.to_value(),
            "min-latency" => lock(&self.settings).min_latency_ms.to_value(),
            "max-latency" => lock(&self.settings).max_latency_ms.to_value(),
            "max-packets" => lock(&self.settings).max_packets.to_value(),
            "max-bytes" => lock(&self.settings).max_bytes.to_value(),
            "stats" => self.stats(&lock(&self.state)).to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).expect("add sink pad");
        obj.add_pad(&self.srcpad).expect("add src pad");
        obj.set_element_flags(gst::ElementFlags::REQUIRE_CLOCK);
    }
}

impl GstObjectImpl for PlcJitterBuffer {}

impl ElementImpl for PlcJitterBuffer {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Jitter buffer with packet loss concealment",
                "Filter/Network/Audio",
                "Dejitters network audio, conceals losses, and outputs exactly 10 ms every \
                 10 ms of running time",
                "gst-plugin-netaudio developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let mut sink = raw_caps();
            sink.merge(rtp_caps());
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink,
                )
                .expect("sink template"),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &raw_caps(),
                )
                .expect("src template"),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "changing state {transition:?}");
        if transition == gst::StateChange::PausedToPlaying {
            lock(&self.state).playing = true;
            self.cond.notify_all();
        }

        let success = self.parent_change_state(transition)?;

        if transition == gst::StateChange::PlayingToPaused {
            let mut state = lock(&self.state);
            state.playing = false;
            // The task re-computes its wait against the new base time when PLAYING again.
            if let Some(id) = state.clock_id.take() {
                id.unschedule();
            }
            self.cond.notify_all();
        }

        Ok(match transition {
            gst::StateChange::ReadyToPaused | gst::StateChange::PlayingToPaused => {
                gst::StateChangeSuccess::NoPreroll
            }
            _ => success,
        })
    }
}

impl PlcJitterBuffer {
    fn sink_activatemode(
        &self,
        mode: gst::PadMode,
        active: bool,
    ) -> Result<(), gst::LoggableError> {
        if mode != gst::PadMode::Push {
            return Err(gst::loggable_error!(CAT, "only push mode is supported"));
        }
        if !active {
            let mut state = lock(&self.state);
            self.set_flushing(&mut state);
        }
        Ok(())
    }

    fn src_activatemode(
        &self,
        pad: &gst::Pad,
        mode: gst::PadMode,
        active: bool,
    ) -> Result<(), gst::LoggableError> {
        if mode != gst::PadMode::Push {
            return Err(gst::loggable_error!(CAT, "only push mode is supported"));
        }
        if active {
            let mut state = lock(&self.state);
            // Accounting counts from here; a stream starts at the next caps.
            state.playout = None;
            state.acct = Accounting::default();
            self.reset_stream(&mut state);
            self.start_task(&mut state)
                .map_err(|e| gst::loggable_error!(CAT, "cannot start task: {e}"))?;
        } else {
            {
                let mut state = lock(&self.state);
                self.set_flushing(&mut state);
            }
            pad.stop_task()
                .map_err(|e| gst::loggable_error!(CAT, "cannot stop task: {e}"))?;
            let mut state = lock(&self.state);
            self.reset_stream(&mut state);
            // The stream ends (what was queued is flushed); its ledger stays in the stats.
            if let Some(p) = state.playout.take() {
                state.acct.ended.add(&p.ledger());
            }
            state.format = None;
            state.upstream_latency = None;
            state.pending_events.clear();
        }
        Ok(())
    }

    /// Wakes and stops everything that waits: the task's clock wait and condition variable.
    fn set_flushing(&self, state: &mut State) {
        state.srcresult = Err(gst::FlowError::Flushing);
        if let Some(id) = state.clock_id.take() {
            id.unschedule();
        }
        self.cond.notify_all();
    }

    /// Forgets the stream (after a flush, or when stopping): the next datagram starts anew.
    fn reset_stream(&self, state: &mut State) {
        if let Some(p) = state.playout.as_mut() {
            p.reset();
        }
        state.eos = false;
        state.need_segment = true;
        state.last_arrival = None;
        state.next_stats_pts = None;
        state.invalid = 0;
        state.malformed = [0; Malformed::ALL.len()];
        state.rtp_pt = None;
        state.max_queued_packets = 0;
        state.max_queued_bytes = 0;
    }

    fn start_task(&self, state: &mut State) -> Result<(), glib::BoolError> {
        state.srcresult = Ok(gst::FlowSuccess::Ok);
        let imp = self.ref_counted();
        let res = self.srcpad.start_task(move || imp.src_loop());
        if res.is_err() {
            state.srcresult = Err(gst::FlowError::Error);
        }
        res
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        gst::log!(CAT, obj = pad, "handling {event:?}");
        use gst::EventView;
        match event.view() {
            EventView::FlushStart(_) => {
                let ret = self.srcpad.push_event(event);
                {
                    let mut state = lock(&self.state);
                    self.set_flushing(&mut state);
                }
                // Stopped, not paused: FLUSH_STOP starts a new task, and starting a pad task
                // that still exists keeps the old one and leaks the new closure (GStreamer 1.22
                // frees the new user data only when it creates the task), and with it this
                // element.
                if let Err(e) = self.srcpad.stop_task() {
                    gst::error!(CAT, imp = self, "cannot stop task: {e}");
                }
                ret
            }
            EventView::FlushStop(_) => {
                let ret = self.srcpad.push_event(event);
                let mut state = lock(&self.state);
                self.reset_stream(&mut state);
                // Sticky events not yet pushed (stream-start, caps, tags: a flush came before
                // the first buffer after them) still hold after a flush, as they do on a pad;
                // dropping them would send the next buffers out without them. Segments are
                // made anew (`need_segment`).
                state.pending_events.retain(|e| {
                    e.is_sticky()
                        && !matches!(e.type_(), gst::EventType::Segment | gst::EventType::Eos)
                });
                if let Err(e) = self.start_task(&mut state) {
                    gst::error!(CAT, imp = self, "cannot restart task: {e}");
                    return false;
                }
                ret
            }
            EventView::Caps(c) => {
                let caps = c.caps_owned();
                match parse_format(&caps).and_then(|f| self.set_format(f)) {
                    Ok(()) => true,
                    Err(err) => {
                        gst::element_imp_error!(
                            self,
                            gst::CoreError::Negotiation,
                            ("Unsupported input caps {caps}: {err}")
                        );
                        false
                    }
                }
            }
            EventView::Segment(s) => {
                let mut state = lock(&self.state);
                match s.segment().downcast_ref::<gst::ClockTime>() {
                    Some(seg) => {
                        state.in_segment = seg.clone();
                        true
                    }
                    None => {
                        drop(state);
                        gst::element_imp_error!(
                            self,
                            gst::StreamError::Format,
                            (
                                "Input segment must be in TIME format, got {:?}",
                                s.segment().format()
                            )
                        );
                        false
                    }
                }
            }
            EventView::Eos(_) => {
                let mut state = lock(&self.state);
                if let Err(e) = state.srcresult {
                    // The task is not running; let the application know if it stopped badly.
                    if !matches!(e, gst::FlowError::Flushing | gst::FlowError::Eos) {
                        drop(state);
                        self.flow_error(e);
                    }
                    return false;
                }
                state.eos = true;
                // Wake the task from its clock wait: it drains without waiting.
                if let Some(id) = state.clock_id.take() {
                    id.unschedule();
                }
                self.cond.notify_all();
                true
            }
            EventView::Gap(_) => true,
            _ if event.is_serialized() && event.is_sticky()
                || event.type_() == gst::EventType::Tag =>
            {
                // Stream-start, tags and the like go out in order, before the next buffer.
                let mut state = lock(&self.state);
                if matches!(event.view(), EventView::StreamStart(_)) {
                    // A new stream: whatever was pending belonged to the old one (its caps
                    // would otherwise go out before this stream-start).
                    state.pending_events.clear();
                }
                state.pending_events.push(event);
                true
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    /// Applies new input caps: a new format starts a new stream.
    fn set_format(&self, format: Format) -> Result<(), String> {
        let settings = *lock(&self.settings);
        let mut state = lock(&self.state);
        let same = state.format.as_ref().is_some_and(|f| {
            f.input == format.input && f.rate == format.rate && f.channels == format.channels
        });
        gst::debug!(
            CAT,
            imp = self,
            "output caps {} (same format: {same})",
            format.caps
        );
        if !same {
            let latency = ms_to_ns(settings.latency_ms);
            let mut stream = match &format.input {
                Input::Raw { .. } => Stream::Raw(Box::new(Playout::new(
                    format.rate,
                    format.channels,
                    latency,
                ))),
                Input::Rtp { encoding, .. } => {
                    let decoder = PayloadDecoder::new(
                        *encoding,
                        format.rate,
                        format.channels,
                        settings.opus_complexity,
                    )?;
                    Stream::Rtp(Box::new(RtpPlayout::new(decoder, latency)))
                }
            };
            stream.set_plc_method(settings.plc.into());
            stream.set_drift_mode(settings.mode.into());
            let (min, max) = settings.latency_range();
            stream.set_latency_range(min, max);
            stream.set_limits(settings.limits());
            if let Some(u) = state.upstream_latency {
                stream.set_upstream_latency(u.nseconds());
            }
            if let Some(mut old) = state.playout.replace(stream) {
                // The old stream ends: what it queued is flushed, its ledger kept.
                old.reset();
                state.acct.ended.add(&old.ledger());
            }
        }
        state
            .pending_events
            .push(gst::event::Caps::new(&format.caps));
        state.format = Some(format);
        // The task may be waiting for caps to start the output.
        self.cond.notify_all();
        Ok(())
    }

    fn sink_chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        gst::trace!(CAT, imp = self, "received {buffer:?}");
        if lock(&self.state).upstream_latency.is_none() {
            self.query_upstream_latency();
        }

        let mut state = lock(&self.state);
        state.acct.received += 1;
        if let Err(e) = state.srcresult {
            state.acct.refused += 1;
            return Err(e);
        }
        if state.eos {
            state.acct.refused += 1;
            return Err(gst::FlowError::Eos);
        }
        let Some(format) = state.format.clone() else {
            state.acct.refused += 1;
            drop(state);
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("No caps before data"));
            return Err(gst::FlowError::NotNegotiated);
        };

        let arrival = self.arrival_time(&state, &buffer);
        let Ok(map) = buffer.map_readable() else {
            state.acct.refused += 1;
            drop(state);
            gst::element_imp_error!(self, gst::ResourceError::Read, ("Cannot map input buffer"));
            return Err(gst::FlowError::Error);
        };
        let state = &mut *state;
        let was_started = state.playout.as_ref().is_some_and(|p| p.started());
        match format.input {
            Input::Raw { sample, bpf } => self.chain_raw(state, &map, arrival, sample, bpf),
            Input::Rtp { pt, encoding } => {
                self.chain_rtp(state, &map, arrival, pt, encoding, format.rate)
            }
        }
        if let Some(p) = state.playout.as_ref() {
            state.max_queued_packets = state.max_queued_packets.max(p.queued_packets());
            state.max_queued_bytes = state.max_queued_bytes.max(p.queued_bytes());
        }
        if !was_started && state.playout.as_ref().is_some_and(|p| p.started()) {
            gst::debug!(CAT, imp = self, "first packet at {arrival}");
            self.cond.notify_all();
        }
        state.srcresult
    }

    fn chain_raw(
        &self,
        state: &mut State,
        data: &[u8],
        arrival: gst::ClockTime,
        sample: SampleFormat,
        bpf: usize,
    ) {
        if data.is_empty() || !data.len().is_multiple_of(bpf) {
            state.invalid += 1;
            state.acct.not_whole_frames += 1;
            if let Some(suppressed) =
                state.warnings[WARN_NOT_WHOLE_FRAMES].check(arrival.nseconds())
            {
                gst::warning!(
                    CAT,
                    imp = self,
                    "dropping a buffer of {} bytes: not a whole number of {bpf}-byte frames \
                     ({suppressed} more since the last warning)",
                    data.len(),
                );
            }
            return;
        }
        state.samples.clear();
        sample.decode(data, &mut state.samples);
        let Some(Stream::Raw(playout)) = state.playout.as_mut() else {
            state.acct.refused += 1;
            return;
        };
        let duration = gst::ClockTime::from_nseconds(
            (data.len() / bpf) as u64 * gst::ClockTime::SECOND.nseconds()
                / u64::from(playout.rate()),
        );
        state.last_arrival = Some((arrival, duration));
        match playout.push(arrival.nseconds(), &state.samples) {
            PushOutcome::Late => gst::debug!(CAT, imp = self, "late datagram at {arrival}"),
            PushOutcome::Overflow => gst::debug!(
                CAT,
                imp = self,
                "datagram at {arrival} dropped: larger than max-bytes"
            ),
            PushOutcome::Resynced { pos } => {
                gst::info!(
                    CAT,
                    imp = self,
                    "resynced at frame {pos} (arrival {arrival})"
                )
            }
            PushOutcome::Queued { pos, missing } if missing > 0 => gst::debug!(
                CAT,
                imp = self,
                "{missing} frames missing before frame {pos} (arrival {arrival})"
            ),
            _ => {}
        }
    }

    fn chain_rtp(
        &self,
        state: &mut State,
        data: &[u8],
        arrival: gst::ClockTime,
        pt: Option<u8>,
        encoding: Encoding,
        rate: u32,
    ) {
        let parsed = rtp::parse(data).and_then(|(h, payload)| {
            let expected = match pt {
                Some(pt) => h.pt == pt,
                // No payload type in the caps: the dynamic range, or the encoding's static one.
                None => {
                    (96..=127).contains(&h.pt)
                        || encoding.static_payload_type(rate, 1) == Some(h.pt)
                        || encoding.static_payload_type(rate, 2) == Some(h.pt)
                }
            };
            if expected {
                Ok((h, payload))
            } else {
                Err(Malformed::PayloadType)
            }
        });
        let (header, payload) = match parsed {
            Ok(p) => p,
            Err(m) => {
                let i = Malformed::ALL.iter().position(|&x| x == m).unwrap_or(0);
                state.malformed[i] += 1;
                state.acct.malformed += 1;
                if let Some(suppressed) = state.warnings[i].check(arrival.nseconds()) {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "dropping a malformed RTP packet of {} bytes: {} ({suppressed} more \
                         refused since the last warning)",
                        data.len(),
                        m.as_str()
                    );
                }
                return;
            }
        };
        let Some(Stream::Rtp(playout)) = state.playout.as_mut() else {
            state.acct.refused += 1;
            return;
        };
        match playout.push(arrival.nseconds(), header, payload) {
            RtpPushOutcome::Invalid(e) => {
                state.invalid += 1;
                if let Some(suppressed) = state.warnings[WARN_INVALID].check(arrival.nseconds()) {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "dropping RTP packet {}: {} ({suppressed} more refused since the last \
                         warning)",
                        header.seq,
                        e.as_str()
                    );
                }
            }
            RtpPushOutcome::Resynced { pos } => gst::info!(
                CAT,
                imp = self,
                "resynced on packet {} (ssrc {:08x}) at frame {pos}",
                header.seq,
                header.ssrc
            ),
            RtpPushOutcome::Late => {
                gst::debug!(CAT, imp = self, "late packet {} at {arrival}", header.seq)
            }
            RtpPushOutcome::Duplicate => {
                gst::debug!(CAT, imp = self, "duplicate packet {}", header.seq)
            }
            RtpPushOutcome::Misfit => gst::debug!(
                CAT,
                imp = self,
                "packet {} (ssrc {:08x}, ts {}) does not fit the stream",
                header.seq,
                header.ssrc,
                header.ts
            ),
            RtpPushOutcome::Overflow => gst::debug!(
                CAT,
                imp = self,
                "packet {} dropped: the memory caps leave no room for it",
                header.seq
            ),
            RtpPushOutcome::Queued { .. } => {}
        }
    }

    /// The running time at which `buffer` arrived: its PTS if it has one, else the clock's
    /// current running time, else right after the previous buffer.
    fn arrival_time(&self, state: &State, buffer: &gst::BufferRef) -> gst::ClockTime {
        if let Some(rt) = buffer
            .pts()
            .and_then(|pts| state.in_segment.to_running_time(pts))
        {
            return rt;
        }
        if let Some(now) = self.obj().current_running_time() {
            return now;
        }
        state
            .last_arrival
            .map_or(gst::ClockTime::ZERO, |(a, d)| a + d)
    }

    fn query_upstream_latency(&self) {
        let mut q = gst::query::Latency::new();
        let min = if self.sinkpad.peer_query(&mut q) {
            let (_live, min, _max) = q.result();
            min
        } else {
            gst::ClockTime::ZERO
        };
        self.set_upstream_latency(min);
    }

    fn set_upstream_latency(&self, min: gst::ClockTime) {
        let mut state = lock(&self.state);
        if state.upstream_latency != Some(min) {
            gst::debug!(CAT, imp = self, "upstream latency {min}");
        }
        state.upstream_latency = Some(min);
        if let Some(p) = state.playout.as_mut() {
            p.set_upstream_latency(min.nseconds());
        }
    }

    fn src_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        if let gst::EventView::Reconfigure(_) = event.view()
            && lock(&self.state).srcresult == Err(gst::FlowError::NotLinked)
        {
            // The task paused itself when the push found no peer: stop it (see FLUSH_START)
            // and start a new one now that there may be one.
            if let Err(e) = self.srcpad.stop_task() {
                gst::error!(CAT, imp = self, "cannot stop task: {e}");
            }
            let mut state = lock(&self.state);
            if state.srcresult == Err(gst::FlowError::NotLinked)
                && let Err(e) = self.start_task(&mut state)
            {
                gst::error!(CAT, imp = self, "cannot restart task: {e}");
            }
        }
        gst::Pad::event_default(pad, Some(&*self.obj()), event)
    }

    /// Caps: raw audio as downstream takes it (the output keeps the input's raw format), and
    /// RTP whatever downstream takes (it is decoded here).
    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Caps(q) = query.view_mut() {
            let raw = raw_caps();
            let mut caps = self.srcpad.peer_query_caps(Some(&raw)).intersect(&raw);
            caps.merge(rtp_caps());
            if let Some(filter) = q.filter() {
                caps = filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First);
            }
            q.set_result(&caps);
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Caps(q) = query.view_mut() {
            let current = lock(&self.state).format.as_ref().map(|f| f.caps.clone());
            let mut caps = current.unwrap_or_else(raw_caps);
            if let Some(filter) = q.filter() {
                caps = filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First);
            }
            q.set_result(&caps);
            return true;
        }
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let mut upstream = gst::query::Latency::new();
            let (upstream_min, upstream_max) = if self.sinkpad.peer_query(&mut upstream) {
                let (_live, min, max) = upstream.result();
                (min, max)
            } else {
                (gst::ClockTime::ZERO, None)
            };
            self.set_upstream_latency(upstream_min);
            let own = gst::ClockTime::from_mseconds(lock(&self.settings).latency_ms.into());
            gst::debug!(
                CAT,
                imp = self,
                "latency: upstream {upstream_min} + own {own}"
            );
            // Data can wait here up to the queue's bound before it is skipped.
            let capacity = gst::ClockTime::from_nseconds(max_queue_ns(own.nseconds()));
            q.set(true, upstream_min + own, upstream_max.map(|m| m + capacity));
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }

    fn src_loop(&self) {
        if let Err(err) = self.src_loop_inner() {
            let mut state = lock(&self.state);
            let err = match state.srcresult {
                Err(e) => e, // set by a flush or another thread first
                Ok(_) => {
                    state.srcresult = Err(err);
                    err
                }
            };
            let eos = state.eos;
            drop(state);
            gst::debug!(CAT, imp = self, "pausing task: {err:?}");
            let _ = self.srcpad.pause_task();
            if eos && err == gst::FlowError::Eos {
                return;
            }
            if !matches!(err, gst::FlowError::Flushing | gst::FlowError::Eos) {
                self.flow_error(err);
                self.srcpad.push_event(gst::event::Eos::new());
            }
        }
    }

    /// One turn of the output task: wait for the next deadline, then push one 10 ms buffer.
    fn src_loop_inner(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = lock(&self.state);
        state.srcresult?;

        let mut started = state.playout.as_ref().is_some_and(|p| p.started());
        if !started && state.playing && !state.eos && lock(&self.settings).silence_until_data {
            // Start the output now, with silence, so downstream is running before data comes.
            if let (Some(p), Some(now)) =
                (state.playout.as_mut(), self.obj().current_running_time())
            {
                gst::debug!(CAT, imp = self, "starting output at {now} before any data");
                p.start(now.nseconds());
                started = true;
            }
        }
        if state.eos {
            // Play out what is queued, without waiting for the clock, then EOS.
            gst::log!(
                CAT,
                imp = self,
                "draining: {} frames queued",
                state.playout.as_ref().map_or(0, |p| p.queued_frames())
            );
            let drained = state
                .playout
                .as_ref()
                .is_none_or(|p| !p.started() || p.is_drained());
            if drained {
                let events = self.take_events(&mut state, false);
                drop(state);
                for e in events {
                    self.srcpad.push_event(e);
                }
                gst::debug!(CAT, imp = self, "drained, pushing EOS");
                self.srcpad.push_event(gst::event::Eos::new());
                return Err(gst::FlowError::Eos);
            }
        } else {
            if !state.playing || !started {
                let _state = wait(&self.cond, state);
                return Ok(gst::FlowSuccess::Ok);
            }
            match self.wait_for_deadline(state)? {
                Some(s) if s.playing && !s.eos => state = s,
                // Interrupted, or EOS came meanwhile: start the turn again.
                _ => return Ok(gst::FlowSuccess::Ok),
            }
        }

        let (buffer, events, stats) = self.produce(&mut state)?;
        drop(state);

        for e in events {
            self.srcpad.push_event(e);
        }
        if let Some(s) = stats {
            let _ = self
                .obj()
                .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        }
        gst::trace!(CAT, imp = self, "pushing {buffer:?}");
        let res = self.srcpad.push(buffer);
        if let Err(e) = res {
            gst::debug!(CAT, imp = self, "push returned {e:?}");
        }
        res
    }

    /// Waits on the pipeline clock until the next chunk is due. Returns the lock if it is due,
    /// `None` if the wait was interrupted (pause, flush, EOS, no clock yet): the caller starts
    /// its turn again.
    fn wait_for_deadline<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
    ) -> Result<Option<MutexGuard<'a, State>>, gst::FlowError> {
        let deadline = state
            .playout
            .as_ref()
            .and_then(|p| p.next_deadline())
            .ok_or(gst::FlowError::Error)?;
        let obj = self.obj();
        let (Some(clock), Some(base)) = (obj.clock(), obj.base_time()) else {
            // No clock yet: wait for a state change to bring one.
            drop(wait_timeout(
                &self.cond,
                state,
                std::time::Duration::from_millis(10),
            ));
            return Ok(None);
        };
        let id = clock.new_single_shot_id(base + gst::ClockTime::from_nseconds(deadline));
        state.clock_id = Some(id.clone());
        drop(state);
        let (res, _jitter) = id.wait();
        let mut state = lock(&self.state);
        state.clock_id = None;
        state.srcresult?;
        match res {
            Ok(_) | Err(gst::ClockError::Early) => Ok(Some(state)),
            Err(gst::ClockError::Unscheduled) => Ok(None),
            Err(e) => {
                gst::error!(CAT, imp = self, "clock wait failed: {e:?}");
                Err(gst::FlowError::Error)
            }
        }
    }

    /// Pops the next chunk into a buffer; returns it with the events to push first and the stats
    /// message to post, if one is due.
    fn produce(
        &self,
        state: &mut State,
    ) -> Result<(gst::Buffer, Vec<gst::Event>, Option<gst::Structure>), gst::FlowError> {
        let format = state.format.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let mut samples = std::mem::take(&mut state.samples);
        let chunk = state
            .playout
            .as_mut()
            .ok_or(gst::FlowError::Error)?
            .pop(&mut samples);

        let mut buffer = gst::Buffer::with_size(samples.len() * format.sample.sample_bytes())
            .map_err(|_| gst::FlowError::Error)?;
        {
            let buf = buffer.get_mut().expect("new buffer is writable");
            {
                let mut map = buf.map_writable().map_err(|_| gst::FlowError::Error)?;
                format.sample.encode(&samples, &mut map);
            }
            buf.set_pts(gst::ClockTime::from_nseconds(chunk.pts));
            buf.set_duration(gst::ClockTime::from_nseconds(chunk.duration));
            buf.set_offset(chunk.offset);
            buf.set_offset_end(chunk.offset + chunk.frames as u64);
            let mut flags = gst::BufferFlags::empty();
            if chunk.discont {
                flags |= gst::BufferFlags::DISCONT | gst::BufferFlags::RESYNC;
            }
            buf.set_flags(flags);
        }
        state.samples = samples;

        let events = self.take_events(state, true);
        let stats = self.stats_due(state, chunk.pts);
        Ok((buffer, events, stats))
    }

    /// Pending serialized events, with a fresh TIME segment when one is due (output PTS are
    /// running times, so the segment is the identity).
    fn take_events(&self, state: &mut State, with_segment: bool) -> Vec<gst::Event> {
        let mut events = std::mem::take(&mut state.pending_events);
        if with_segment && state.need_segment {
            state.need_segment = false;
            let segment = gst::FormattedSegment::<gst::ClockTime>::new();
            // After stream-start and caps, before tags and buffers.
            let at = events
                .iter()
                .rposition(|e| {
                    matches!(
                        e.type_(),
                        gst::EventType::StreamStart | gst::EventType::Caps
                    )
                })
                .map_or(0, |i| i + 1);
            events.insert(at, gst::event::Segment::new(&segment));
        }
        events
    }

    fn stats_due(&self, state: &mut State, pts: u64) -> Option<gst::Structure> {
        let interval = lock(&self.settings).stats_interval_ms;
        if interval == 0 {
            return None;
        }
        let interval_ns = ms_to_ns(interval);
        match state.next_stats_pts {
            None => {
                state.next_stats_pts = Some(pts + interval_ns);
                None
            }
            Some(t) if pts >= t => {
                state.next_stats_pts = Some(t + interval_ns * ((pts - t) / interval_ns + 1));
                Some(self.stats(state))
            }
            Some(_) => None,
        }
    }

    fn stats(&self, state: &State) -> gst::Structure {
        let (rate, s, queued) = match state.playout.as_ref() {
            Some(p) => (p.rate(), p.stats().clone(), p.queued_frames()),
            None => (1, Default::default(), 0),
        };
        let (queued_packets, queued_bytes) = state
            .playout
            .as_ref()
            .map_or((0, 0), |p| (p.queued_packets(), p.queued_bytes()));
        let mut ledger = state.acct.ended;
        if let Some(p) = state.playout.as_ref() {
            ledger.add(&p.ledger());
        }
        let a = &state.acct;
        let unaccounted = a.received as i64
            - (a.refused + a.malformed + a.not_whole_frames) as i64
            - ledger.accounted() as i64;
        let frames_ms = |f: u64| f * 1000 / u64::from(rate);
        let mut b = gst::Structure::builder(STATS_NAME)
            .field("pushed", s.pushed)
            .field("received", s.received)
            .field("lost", s.lost)
            .field("late", s.late)
            .field("concealed-ms", frames_ms(s.concealed_frames))
            .field("silence-ms", frames_ms(s.silent_frames))
            .field("played-ms", frames_ms(s.played_frames))
            .field(
                "current-delay-ms",
                s.last_wait_ns.map_or(0.0, |w| w as f64 / NS_PER_MS as f64),
            )
            .field("queued-ms", queued as f64 * 1000.0 / f64::from(rate))
            .field("overflow-dropped", s.overflow_dropped)
            .field("resyncs", s.resyncs)
            .field("invalid", state.invalid)
            .field("gaps-moved", s.gaps_moved)
            .field("splices-smoothed", s.splices_smoothed)
            .field("queued-packets", queued_packets as u64)
            .field("queued-bytes", queued_bytes as u64)
            .field("max-queued-packets", state.max_queued_packets as u64)
            .field("max-queued-bytes", state.max_queued_bytes as u64)
            .field("buffers-received", a.received)
            .field("buffers-refused", a.refused)
            .field("buffers-malformed", a.malformed)
            .field("buffers-not-whole-frames", a.not_whole_frames)
            .field("packets-received", ledger.received)
            .field("packets-queued", ledger.queued)
            .field("packets-held", ledger.held)
            .field("packets-played", ledger.played)
            .field("dropped-duplicate", ledger.duplicate)
            .field("dropped-late", ledger.late)
            .field("dropped-overflow", ledger.overflow)
            .field("dropped-misfit", ledger.misfit)
            .field("dropped-invalid", ledger.invalid)
            .field("dropped-resync", ledger.resync)
            .field("dropped-flushed", ledger.flushed)
            .field("unaccounted", unaccounted);
        if let Some(r) = state.playout.as_ref().and_then(|p| p.rtp_stats()) {
            b = b
                .field("duplicates", r.duplicates)
                .field("reordered", r.reordered)
                .field("fec-recovered", r.fec_recovered)
                .field("dred-recovered", r.dred_recovered)
                .field("plc-ms", frames_ms(r.codec_plc_frames))
                .field("dtx-ms", frames_ms(r.dtx_frames))
                .field("misfits", r.misfits)
                .field("ssrc-changes", r.ssrc_changes)
                .field("jitter-ms", r.jitter * 1000.0 / f64::from(rate))
                .field("ssrc", r.ssrc.unwrap_or(0))
                .field("payload-type", r.payload_type.map_or(-1, i32::from));
        }
        if let Some(d) = state.playout.as_ref().and_then(|p| p.drift_stats()) {
            let ms = |ns: f64| ns / NS_PER_MS as f64;
            b = b
                .field("drift-ppm", d.skew_ppm.unwrap_or(0.0))
                .field("drift-ratio", d.ratio)
                .field("target-delay-ms", ms(d.target_delay_ns))
                .field("measured-delay-ms", ms(d.measured_delay_ns))
                .field("stretch-inserted-ms", frames_ms(d.inserted_frames))
                .field("stretch-removed-ms", frames_ms(d.removed_frames))
                .field("stretch-compressed-ms", frames_ms(d.compressed_frames));
        }
        if matches!(
            state.format.as_ref().map(|f| &f.input),
            Some(Input::Rtp { .. })
        ) {
            b = b.field("malformed", state.malformed.iter().sum::<u64>());
            for (m, n) in Malformed::ALL.iter().zip(state.malformed) {
                b = b.field(format!("malformed-{}", m.as_str()), n);
            }
        }
        b.build()
    }

    fn flow_error(&self, err: gst::FlowError) {
        gst::element_imp_error!(
            self,
            gst::StreamError::Failed,
            ("Internal data flow error."),
            ["streaming task paused, reason {err:?}"]
        );
    }
}

fn ms_to_ns(ms: u32) -> u64 {
    u64::from(ms) * NS_PER_MS as u64
}

/// Raw audio the element takes and outputs.
fn raw_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", gst::List::new(["S16LE", "S16BE", "F32LE"]))
        .field("rate", gst::IntRange::new(8000i32, 96000))
        .field("channels", gst::IntRange::new(1i32, 8))
        .field("layout", "interleaved")
        .build()
}

/// RTP the element takes. No `media` or `clock-rate` constraint here, so that caps written
/// without them still reach the element, which then refuses them with an error that names what
/// is wrong (`media` other than `audio`, a missing or unsupported `clock-rate`) instead of a
/// bare not-negotiated.
fn rtp_caps() -> gst::Caps {
    gst::Caps::builder("application/x-rtp")
        .field(
            "encoding-name",
            gst::List::new(["L16", "PCMU", "PCMA", "OPUS"]),
        )
        .build()
}

fn parse_format(caps: &gst::Caps) -> Result<Format, String> {
    let s = caps.structure(0).ok_or("empty caps")?;
    if s.name() == "application/x-rtp" {
        return parse_rtp_format(s);
    }
    let info = gst_audio::AudioInfo::from_caps(caps).map_err(|e| e.to_string())?;
    if info.layout() != gst_audio::AudioLayout::Interleaved {
        return Err("only interleaved layout is supported".into());
    }
    let sample = match info.format() {
        gst_audio::AudioFormat::S16le => SampleFormat::S16LE,
        gst_audio::AudioFormat::S16be => SampleFormat::S16BE,
        gst_audio::AudioFormat::F32le => SampleFormat::F32LE,
        other => return Err(format!("unsupported sample format {other:?}")),
    };
    let channels = info.channels() as usize;
    if !(8000..=96000).contains(&info.rate()) || !(1..=8).contains(&channels) {
        return Err("rate must be 8000-96000 Hz and channels 1-8".into());
    }
    Ok(Format {
        input: Input::Raw {
            sample,
            bpf: info.bpf() as usize,
        },
        caps: caps.clone(),
        sample,
        rate: info.rate(),
        channels,
    })
}

/// `application/x-rtp` caps: encoding, clock rate, channels and payload type.
fn parse_rtp_format(s: &gst::StructureRef) -> Result<Format, String> {
    if let Ok(media) = s.get::<&str>("media")
        && media != "audio"
    {
        return Err(format!("media is {media}, not audio"));
    }
    let name = s
        .get::<&str>("encoding-name")
        .map_err(|_| "no encoding-name")?;
    let encoding = Encoding::from_name(name)
        .ok_or_else(|| format!("encoding-name {name} is not L16, PCMU, PCMA or OPUS"))?;
    let rate = s
        .get::<i32>("clock-rate")
        .map_err(|_| "no clock-rate in the RTP caps (add e.g. clock-rate=48000)")?;
    if !(8000..=96000).contains(&rate) {
        return Err(format!("clock-rate {rate} is outside 8000-96000"));
    }
    let rate = rate as u32;
    let declared = s
        .get::<&str>("encoding-params")
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .or_else(|| s.get::<i32>("channels").ok());
    let channels = match encoding {
        Encoding::Opus => {
            if rate != 48000 {
                return Err(format!("Opus needs clock-rate 48000, not {rate}"));
            }
            // RTP Opus (RFC 7587) is mono or stereo; more channels need a multistream channel
            // mapping this decoder does not have: refuse rather than decode 2 of them.
            if let Some(c) = declared.filter(|c| !(1..=2).contains(c)) {
                return Err(format!(
                    "Opus with {c} channels: only 1 or 2 are supported (no multistream \
                     channel mapping)"
                ));
            }
            // RFC 7587: encoding-params is always 2; stereo is announced by (sprop-)stereo.
            let flag = |k: &str| s.get::<&str>(k).ok().map(|v| v.trim() == "1");
            match (flag("sprop-stereo"), flag("stereo")) {
                (Some(st), _) | (None, Some(st)) => 1 + usize::from(st),
                (None, None) => s
                    .get::<i32>("channels")
                    .map_or(2, |c| c.clamp(1, 2) as usize),
            }
        }
        _ => {
            let c = declared.unwrap_or(1);
            if !(1..=8).contains(&c) {
                return Err(format!("{c} channels: 1-8 are supported"));
            }
            c as usize
        }
    };
    let pt = match s.get::<i32>("payload") {
        Ok(pt) if (0..=127).contains(&pt) => Some(pt as u8),
        Ok(pt) => return Err(format!("payload type {pt} is outside 0-127")),
        Err(_) => None,
    };
    let sample = if encoding == Encoding::Opus {
        SampleFormat::F32LE
    } else {
        SampleFormat::S16LE
    };
    let out = gst::Caps::builder("audio/x-raw")
        .field("format", sample.caps_name())
        .field("rate", rate as i32)
        .field("channels", channels as i32)
        .field("layout", "interleaved")
        .build();
    Ok(Format {
        input: Input::Rtp { encoding, pt },
        caps: out,
        sample,
        rate,
        channels,
    })
}

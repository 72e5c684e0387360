// SPDX-License-Identifier: MPL-2.0
//! Receives raw PCM datagrams (no header) on a UDP socket and pushes each one as an
//! `audio/x-raw` buffer, stamped with its arrival running time on the pipeline clock.
//!
//! ```text
//! gst-launch-1.0 rawudpaudiosrc address=127.0.0.1 port=5004 \
//!     caps="audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved" \
//!     ! audioconvert ! autoaudiosink
//! gst-launch-1.0 audiotestsrc is-live=true samplesperbuffer=80 \
//!     ! audio/x-raw,format=S16LE,rate=8000,channels=1 ! udpsink host=127.0.0.1 port=5004
//! gst-launch-1.0 rawudpaudiosrc address=239.255.12.34 port=5004 multicast-iface=eth0 \
//!     ! audioconvert ! autoaudiosink
//! ```
//!
//! The socket is bound in NULL->READY (so `port=0` works and the bound port can be read back in
//! READY) and closed in READY->NULL. `create()` waits in `mio::Poll` on the socket and a
//! `mio::Waker`; `unlock()` wakes it so state changes never wait for traffic. Each datagram's
//! true length is peeked first (`MSG_PEEK | MSG_TRUNC` on Linux), so an empty, oversized or
//! not-whole-frames datagram is dropped and counted without being copied, and a valid one is
//! read straight into a buffer of exactly its size: two system calls per datagram, and no
//! `unsafe` (reading into uninitialised memory would need it).
//!
//! PTS is the running time at which the datagram was read, not sent: datagrams that queued up
//! in the socket (while PAUSED, or behind a slow downstream) come out with bunched timestamps.
//! Dejittering is the job of the element downstream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use socket2::SockRef;

use super::datagram::{self, ErrorClass, Malformed, Stats, Verdict};
use super::socket;
use crate::ratelimit::RateLimiter;
use crate::sync::lock;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rawudpaudiosrc",
        gst::DebugColorFlags::empty(),
        Some("Raw UDP audio source"),
    )
});

const DEFAULT_ADDRESS: &str = "0.0.0.0";
const DEFAULT_MULTICAST_IFACE: Option<&str> = None;
const DEFAULT_PORT: u16 = 5004;
const DEFAULT_BUFFER_SIZE: u32 = 0;
const DEFAULT_MTU: u32 = 32_768;
const MAX_MTU: u32 = 65_535;
const DEFAULT_REUSE: bool = false;
const DEFAULT_TIMEOUT_MS: u64 = 0;

/// Name of the element message posted when nothing valid arrived for `timeout`.
const TIMEOUT_MESSAGE: &str = "GstRawUdpAudioSrcTimeout";
const STATS_NAME: &str = "application/x-rawudpaudiosrc-stats";
/// At most one warning per class of bad input per this interval.
const WARNING_INTERVAL_NS: u64 = 1_000_000_000;

const SOCKET_TOKEN: mio::Token = mio::Token(0);
const WAKER_TOKEN: mio::Token = mio::Token(1);

#[derive(Debug, Clone)]
struct Settings {
    address: String,
    port: u16,
    /// `None`: the kernel picks the interface of a multicast join.
    multicast_iface: Option<String>,
    caps: gst::Caps,
    buffer_size: u32,
    mtu: u32,
    reuse: bool,
    timeout_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            address: DEFAULT_ADDRESS.into(),
            port: DEFAULT_PORT,
            multicast_iface: DEFAULT_MULTICAST_IFACE.map(String::from),
            caps: default_caps(),
            buffer_size: DEFAULT_BUFFER_SIZE,
            mtu: DEFAULT_MTU,
            reuse: DEFAULT_REUSE,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }
}

/// The bound socket and its poller: from NULL->READY to READY->NULL.
struct Receiver {
    socket: mio::net::UdpSocket,
    poll: mio::Poll,
    events: mio::Events,
    local_addr: SocketAddr,
}

/// Per-stream state: from `start()` to `stop()`.
struct Stream {
    mtu: usize,
    bytes_per_frame: usize,
    rate: u64,
    discont: bool,
    /// When the timeout period started: the last valid datagram or timeout message, or the first
    /// `create()` after start/unlock. `None` restarts it at the next `create()`.
    quiet_since: Option<Instant>,
    /// Time base for the rate limiters.
    epoch: Instant,
    drop_warnings: [RateLimiter; 3],
    error_warnings: RateLimiter,
}

impl Stream {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[derive(Default)]
struct State {
    receiver: Option<Receiver>,
    stream: Option<Stream>,
}

#[derive(Default)]
pub struct RawUdpAudioSrc {
    settings: Mutex<Settings>,
    /// Held by `create()` for its whole wait: only the streaming thread and state changes that
    /// happen while it is stopped take it. `unlock()` uses `waker` and `flushing` instead.
    state: Mutex<State>,
    waker: Mutex<Option<mio::Waker>>,
    flushing: AtomicBool,
    stats: Mutex<Stats>,
}

#[glib::object_subclass]
impl ObjectSubclass for RawUdpAudioSrc {
    const NAME: &'static str = "GstRawUdpAudioSrc";
    type Type = super::RawUdpAudioSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for RawUdpAudioSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("address")
                    .nick("Address")
                    .blurb(
                        "Local IPv4 or IPv6 address to bind, as a literal (no host names): \
                         0.0.0.0 = any IPv4 interface, :: = any IPv6 (and, by OS default, IPv4) \
                         interface. A multicast group (e.g. 239.255.12.34 or ff15::1234) binds \
                         the group address and joins the group on multicast-iface. Default \
                         \"0.0.0.0\". Changeable only in NULL state.",
                    )
                    .default_value(Some(DEFAULT_ADDRESS))
                    .build(),
                glib::ParamSpecInt::builder("port")
                    .nick("Port")
                    .blurb(
                        "UDP port to bind, 0-65535. 0 picks a free port: from READY on, the \
                         property holds the port actually bound (with notify::port), which later \
                         NULL->READY transitions bind again. Default 5004. Changeable only in NULL state.",
                    )
                    .minimum(0)
                    .maximum(i32::from(u16::MAX))
                    .default_value(i32::from(DEFAULT_PORT))
                    .build(),
                glib::ParamSpecString::builder("multicast-iface")
                    .nick("Multicast interface")
                    .blurb(
                        "Name of the network interface (e.g. lo, eth0) on which to join the \
                         multicast group when address is one; ignored for a unicast address. \
                         NULL (or empty) lets the kernel choose the interface the routing table \
                         picks for the group. An unknown name makes NULL->READY fail with an \
                         error naming it. Default NULL. Changeable only in NULL state.",
                    )
                    .default_value(DEFAULT_MULTICAST_IFACE)
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Caps>("caps")
                    .nick("Caps")
                    .blurb(
                        "Format of the datagrams: fixed audio/x-raw caps, format S16LE, S16BE or \
                         F32LE, rate 8000-96000 Hz, channels 1-8, layout interleaved; anything \
                         else makes READY->PAUSED fail with an error. Default \
                         \"audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved\". \
                         Changeable in NULL or READY state.",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("buffer-size")
                    .nick("Receive buffer size")
                    .blurb(
                        "Socket receive buffer (SO_RCVBUF) in bytes, 0-2147483647; 0 keeps the \
                         OS default. The kernel doubles the value and caps it at \
                         net.core.rmem_max. Default 0. Changeable only in NULL state.",
                    )
                    .minimum(0)
                    .maximum(i32::MAX)
                    .default_value(DEFAULT_BUFFER_SIZE as i32)
                    .build(),
                glib::ParamSpecUInt::builder("mtu")
                    .nick("MTU")
                    .blurb(
                        "Largest datagram accepted, in bytes, 1-65535. Larger datagrams are \
                         dropped whole and counted as dropped-oversized in stats, never passed \
                         on truncated. Default 32768. Changeable in NULL or READY state.",
                    )
                    .minimum(1)
                    .maximum(MAX_MTU)
                    .default_value(DEFAULT_MTU)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("reuse")
                    .nick("Reuse address")
                    .blurb(
                        "Set SO_REUSEADDR before binding, so other sockets may bind the same \
                         address and port (which of them receives unicast datagrams is then \
                         undefined). When false, binding a port already in use fails. \
                         Default false. Changeable only in NULL state.",
                    )
                    .default_value(DEFAULT_REUSE)
                    .build(),
                glib::ParamSpecUInt64::builder("timeout")
                    .nick("Timeout")
                    .blurb(
                        "Milliseconds without a valid datagram after which an element message \
                         GstRawUdpAudioSrcTimeout (field timeout: u64 nanoseconds) is posted, \
                         and again every such period while none arrives; 0-18446744073709551615, \
                         0 disables. Measured on the monotonic system clock. Default 0. \
                         Changeable in any state, effective at once.",
                    )
                    .default_value(DEFAULT_TIMEOUT_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "Counters since the last READY->PAUSED, as an \
                         application/x-rawudpaudiosrc-stats structure of u64 fields: packets \
                         and bytes pushed; dropped-empty, dropped-oversized, \
                         dropped-not-whole-frames and their sum dropped; receive-errors \
                         (transient socket errors survived); timeouts (timeout messages \
                         posted). Read-only.",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        if !self.may_change(name) {
            return;
        }
        let mut settings = lock(&self.settings);
        match name {
            "address" => {
                settings.address = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default();
            }
            "multicast-iface" => {
                settings.multicast_iface = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|name| !name.trim().is_empty());
            }
            "port" => {
                let port = value.get::<i32>().expect("type checked upstream");
                settings.port = u16::try_from(port).unwrap_or(DEFAULT_PORT);
            }
            "caps" => {
                settings.caps = value
                    .get::<Option<gst::Caps>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(default_caps);
            }
            "buffer-size" => {
                let size = value.get::<i32>().expect("type checked upstream");
                settings.buffer_size = u32::try_from(size).unwrap_or(0);
            }
            "mtu" => settings.mtu = value.get().expect("type checked upstream"),
            "reuse" => settings.reuse = value.get().expect("type checked upstream"),
            "timeout" => {
                settings.timeout_ms = value.get().expect("type checked upstream");
                drop(settings);
                // Let a waiting create() recompute its deadline with the new period.
                self.wake();
                return;
            }
            other => unreachable!("unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "Set {name} to {value:?}");
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "address" => settings.address.to_value(),
            "port" => i32::from(settings.port).to_value(),
            "multicast-iface" => settings.multicast_iface.to_value(),
            "caps" => settings.caps.to_value(),
            "buffer-size" => i32::try_from(settings.buffer_size)
                .unwrap_or(i32::MAX)
                .to_value(),
            "mtu" => settings.mtu.to_value(),
            "reuse" => settings.reuse.to_value(),
            "timeout" => settings.timeout_ms.to_value(),
            "stats" => {
                drop(settings);
                let stats = *lock(&self.stats);
                stats_structure(&stats).to_value()
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(true);
        obj.set_format(gst::Format::Time);
    }
}

impl GstObjectImpl for RawUdpAudioSrc {}

impl ElementImpl for RawUdpAudioSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Raw UDP audio source",
                "Source/Network",
                "Receives raw PCM datagrams (no header) on a UDP socket and outputs one \
                 audio/x-raw buffer per datagram, stamped with its arrival running time",
                "gst-plugin-netaudio contributors",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &template_caps(),
                )
                .expect("valid pad template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::NullToReady {
            self.open()?;
        }
        let ret = self.parent_change_state(transition);
        match transition {
            gst::StateChange::ReadyToNull => self.close(),
            gst::StateChange::NullToReady if ret.is_err() => self.close(),
            _ => {}
        }
        ret
    }
}

impl BaseSrcImpl for RawUdpAudioSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let (caps, mtu) = {
            let settings = lock(&self.settings);
            (settings.caps.clone(), settings.mtu)
        };
        let info = validate_caps(&caps)?;
        let mut state = lock(&self.state);
        if state.receiver.is_none() {
            return Err(gst::error_msg!(
                gst::CoreError::StateChange,
                ["Started without a bound socket"]
            ));
        }
        state.stream = Some(Stream {
            mtu: mtu as usize,
            bytes_per_frame: info.bpf() as usize,
            rate: u64::from(info.rate()),
            discont: true,
            quiet_since: None,
            epoch: Instant::now(),
            drop_warnings: [const { RateLimiter::new(WARNING_INTERVAL_NS) }; 3],
            error_warnings: RateLimiter::new(WARNING_INTERVAL_NS),
        });
        *lock(&self.stats) = Stats::default();
        self.flushing.store(false, Ordering::SeqCst);
        gst::debug!(CAT, imp = self, "Started with {caps}, mtu {mtu}");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        lock(&self.state).stream = None;
        gst::debug!(CAT, imp = self, "Stopped");
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let caps = lock(&self.settings).caps.clone();
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        gst::debug!(CAT, imp = self, "Unlocking");
        self.flushing.store(true, Ordering::SeqCst);
        self.wake();
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        gst::debug!(CAT, imp = self, "Unlock stop");
        self.flushing.store(false, Ordering::SeqCst);
        Ok(())
    }
}

impl PushSrcImpl for RawUdpAudioSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let mut state = lock(&self.state);
        let State {
            receiver: Some(rx),
            stream: Some(stream),
        } = &mut *state
        else {
            gst::debug!(CAT, imp = self, "Not started");
            return Err(gst::FlowError::Flushing);
        };
        self.receive(rx, stream).map(CreateSuccess::NewBuffer)
    }
}

impl RawUdpAudioSrc {
    /// Properties without a `mutable_*` flag may change in NULL only, `mutable_ready` ones in
    /// READY too: a change while the socket or stream is set up would be silently inconsistent.
    fn may_change(&self, name: &str) -> bool {
        let highest = match name {
            "caps" | "mtu" => gst::State::Ready,
            "timeout" => return true,
            _ => gst::State::Null,
        };
        let current = self.obj().current_state();
        if current > highest {
            gst::warning!(
                CAT,
                imp = self,
                "Ignoring a change of '{name}' in state {current:?}: it can only be changed in \
                 {highest:?} state or lower"
            );
            return false;
        }
        true
    }

    fn wake(&self) {
        if let Some(waker) = &*lock(&self.waker)
            && let Err(err) = waker.wake()
        {
            gst::warning!(CAT, imp = self, "Could not wake the receive loop: {err}");
        }
    }

    /// NULL->READY: parse the address, bind, set up the poller; report the bound port.
    fn open(&self) -> Result<(), gst::StateChangeError> {
        let settings = lock(&self.settings).clone();
        let Some(ip) = socket::parse_address(&settings.address) else {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Settings,
                (
                    "Invalid address '{}' (port {}): expected an IPv4 or IPv6 address such as \
                     0.0.0.0 or ::",
                    settings.address,
                    settings.port
                )
            );
            return Err(gst::StateChangeError);
        };
        let multicast_iface = match &settings.multicast_iface {
            Some(name) if ip.is_multicast() => {
                let name = name.trim();
                let iface = socket::Interface::by_name(name).map_err(|err| {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Settings,
                        (
                            "Unknown network interface '{}' (multicast-iface) for multicast \
                             group {}: {}",
                            name,
                            ip,
                            err
                        )
                    );
                    gst::StateChangeError
                })?;
                gst::debug!(
                    CAT,
                    imp = self,
                    "Joining {ip} on {} (index {})",
                    iface.name,
                    iface.index
                );
                Some(iface)
            }
            Some(name) => {
                gst::debug!(
                    CAT,
                    imp = self,
                    "Unicast address {ip}: multicast-iface '{name}' unused"
                );
                None
            }
            None => None,
        };
        let opts = socket::BindOptions {
            addr: SocketAddr::new(ip, settings.port),
            reuse: settings.reuse,
            buffer_size: settings.buffer_size as usize,
            multicast_iface,
        };
        let std_socket = socket::bind(&opts).map_err(|err| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::OpenRead,
                ("{}", err),
                ["reuse={} buffer-size={}", opts.reuse, opts.buffer_size]
            );
            gst::StateChangeError
        })?;
        let receiver = self.poller(std_socket, opts.addr).map_err(|err| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::OpenRead,
                ("Could not set up polling for {}: {}", opts.addr, err)
            );
            gst::StateChangeError
        })?;

        let bound_port = receiver.local_addr.port();
        gst::info!(
            CAT,
            imp = self,
            "Listening on {} (receive buffer {:?} bytes)",
            receiver.local_addr,
            SockRef::from(&receiver.socket).recv_buffer_size()
        );
        lock(&self.state).receiver = Some(receiver);
        self.flushing.store(false, Ordering::SeqCst);

        let port_changed = {
            let mut settings = lock(&self.settings);
            let changed = settings.port != bound_port;
            settings.port = bound_port;
            changed
        };
        if port_changed {
            self.obj().notify("port");
        }
        Ok(())
    }

    fn poller(
        &self,
        std_socket: std::net::UdpSocket,
        addr: SocketAddr,
    ) -> std::io::Result<Receiver> {
        let local_addr = std_socket.local_addr().unwrap_or(addr);
        let mut socket = mio::net::UdpSocket::from_std(std_socket);
        let poll = mio::Poll::new()?;
        poll.registry()
            .register(&mut socket, SOCKET_TOKEN, mio::Interest::READABLE)?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        *lock(&self.waker) = Some(waker);
        Ok(Receiver {
            socket,
            poll,
            events: mio::Events::with_capacity(4),
            local_addr,
        })
    }

    /// READY->NULL (or a failed NULL->READY): close the socket.
    fn close(&self) {
        let mut state = lock(&self.state);
        state.stream = None;
        if let Some(rx) = state.receiver.take() {
            gst::debug!(CAT, imp = self, "Closing {}", rx.local_addr);
        }
        *lock(&self.waker) = None;
    }

    /// Loops until a valid datagram is read (its buffer), the element is unlocked (`Flushing`)
    /// or a fatal socket error occurs (`Error`, after one element error).
    fn receive(
        &self,
        rx: &mut Receiver,
        stream: &mut Stream,
    ) -> Result<gst::Buffer, gst::FlowError> {
        loop {
            if self.flushing.load(Ordering::SeqCst) {
                gst::debug!(CAT, imp = self, "Flushing");
                stream.quiet_since = None;
                return Err(gst::FlowError::Flushing);
            }

            let deadline = self.timeout_deadline(stream);

            let len = match socket::next_datagram_len(SockRef::from(&rx.socket), stream.mtu) {
                Ok(len) => len,
                Err(err) => {
                    self.handle_receive_error(rx, stream, err, deadline)?;
                    continue;
                }
            };
            match datagram::classify(len, stream.mtu, stream.bytes_per_frame) {
                Verdict::Audio { frames } => match self.read_audio(rx, stream, len, frames) {
                    Ok(Some(buffer)) => return Ok(buffer),
                    Ok(None) => {}
                    Err(err) => self.handle_receive_error(rx, stream, err, deadline)?,
                },
                Verdict::Drop(why) => match rx.socket.recv_from(&mut []) {
                    Ok(_) => self.count_drop(stream, why, len),
                    Err(err) => self.handle_receive_error(rx, stream, err, deadline)?,
                },
            }
        }
    }

    /// When the next timeout message is due, posting it first if it is due now.
    fn timeout_deadline(&self, stream: &mut Stream) -> Option<Instant> {
        let timeout_ms = lock(&self.settings).timeout_ms;
        let now = Instant::now();
        let since = *stream.quiet_since.get_or_insert(now);
        if timeout_ms == 0 {
            return None;
        }
        let deadline = since.checked_add(Duration::from_millis(timeout_ms))?;
        if now < deadline {
            return Some(deadline);
        }
        let timeout_ns = timeout_ms.saturating_mul(1_000_000);
        gst::debug!(
            CAT,
            imp = self,
            "Nothing valid received for {timeout_ms} ms"
        );
        lock(&self.stats).timeouts += 1;
        let message = gst::message::Element::builder(
            gst::Structure::builder(TIMEOUT_MESSAGE)
                .field("timeout", timeout_ns)
                .build(),
        )
        .src(&*self.obj())
        .build();
        // Without a bus (no parent) there is nobody to tell.
        let _ = self.obj().post_message(message);
        stream.quiet_since = Some(now);
        now.checked_add(Duration::from_millis(timeout_ms))
    }

    /// Reads the datagram of `len` bytes at the head of the queue into a new buffer. `Ok(None)`
    /// if what was read was not that datagram (it cannot happen while this element owns the
    /// socket; counted as a receive error).
    fn read_audio(
        &self,
        rx: &mut Receiver,
        stream: &mut Stream,
        len: usize,
        frames: u64,
    ) -> std::io::Result<Option<gst::Buffer>> {
        let mut buffer = gst::Buffer::with_size(len).map_err(std::io::Error::other)?;
        let received = {
            let mut map = buffer
                .make_mut()
                .map_writable()
                .map_err(std::io::Error::other)?;
            rx.socket.recv_from(&mut map)?
        };
        let pts = self.arrival_running_time();
        let (read, from) = received;
        if read != len {
            self.count_receive_error(
                stream,
                &format!("read {read} bytes from {from} where {len} were announced"),
            );
            return Ok(None);
        }

        let duration = gst::ClockTime::SECOND.mul_div_floor(frames, stream.rate);
        {
            let buffer = buffer.make_mut();
            buffer.set_pts(pts);
            buffer.set_duration(duration);
            if stream.discont {
                buffer.set_flags(gst::BufferFlags::DISCONT);
                stream.discont = false;
            }
        }
        lock(&self.stats).record_audio(len);
        stream.quiet_since = Some(Instant::now());
        gst::trace!(
            CAT,
            imp = self,
            "{len} bytes ({frames} frames) from {from}, pts {}",
            pts.display()
        );
        Ok(Some(buffer))
    }

    /// The running time now on the element's clock, `None` without a clock.
    fn arrival_running_time(&self) -> Option<gst::ClockTime> {
        let obj = self.obj();
        let clock = obj.clock()?;
        let base_time = obj.base_time()?;
        Some(clock.time().saturating_sub(base_time))
    }

    /// Waits for readiness on `WouldBlock`, counts transient errors, and turns any other error
    /// into one element error and `FlowError::Error`.
    fn handle_receive_error(
        &self,
        rx: &mut Receiver,
        stream: &mut Stream,
        err: std::io::Error,
        deadline: Option<Instant>,
    ) -> Result<(), gst::FlowError> {
        match datagram::classify_error(&err) {
            ErrorClass::WouldBlock => self.wait_readable(rx, deadline),
            ErrorClass::Transient => {
                self.count_receive_error(stream, &err.to_string());
                Ok(())
            }
            ErrorClass::Fatal => {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::Read,
                    ("Could not receive on {}: {}", rx.local_addr, err)
                );
                Err(gst::FlowError::Error)
            }
        }
    }

    /// Blocks until the socket may be readable, `unlock()` or a property change wakes us, or
    /// `deadline` (the next timeout message) passes.
    fn wait_readable(
        &self,
        rx: &mut Receiver,
        deadline: Option<Instant>,
    ) -> Result<(), gst::FlowError> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match rx.poll.poll(&mut rx.events, timeout) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => Ok(()),
            Err(err) => {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::Read,
                    ("Could not wait for data on {}: {}", rx.local_addr, err)
                );
                Err(gst::FlowError::Error)
            }
        }
    }

    fn count_drop(&self, stream: &mut Stream, why: Malformed, len: usize) {
        lock(&self.stats).record_drop(why);
        let now = stream.now_ns();
        if let Some(suppressed) = stream.drop_warnings[why.index()].check(now) {
            gst::warning!(
                CAT,
                imp = self,
                "Dropped {} ({len} bytes; mtu {}, {} bytes per frame){}",
                why.describe(),
                stream.mtu,
                stream.bytes_per_frame,
                suppressed_note(suppressed)
            );
        }
    }

    fn count_receive_error(&self, stream: &mut Stream, what: &str) {
        lock(&self.stats).receive_errors += 1;
        let now = stream.now_ns();
        if let Some(suppressed) = stream.error_warnings.check(now) {
            gst::warning!(
                CAT,
                imp = self,
                "Transient receive error, continuing: {what}{}",
                suppressed_note(suppressed)
            );
        }
    }
}

/// Checks the `caps` property at start: fixed, parsable audio caps within the pad template.
fn validate_caps(caps: &gst::Caps) -> Result<gst_audio::AudioInfo, gst::ErrorMessage> {
    let invalid = |why: &str| {
        gst::error_msg!(
            gst::ResourceError::Settings,
            ("Invalid caps property {}: {}", caps, why)
        )
    };
    if !caps.is_fixed() {
        return Err(invalid(
            "caps must be fixed (one format, rate and channel count)",
        ));
    }
    if !caps.is_subset(&template_caps()) {
        return Err(invalid(
            "expected audio/x-raw with format S16LE, S16BE or F32LE, rate 8000-96000, \
             channels 1-8, layout=interleaved",
        ));
    }
    gst_audio::AudioInfo::from_caps(caps).map_err(|err| invalid(&err.to_string()))
}

/// Tail of a rate-limited warning: how many like it were not logged since the previous one.
fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} more since the last such warning, not logged)")
    }
}

fn stats_structure(stats: &Stats) -> gst::Structure {
    gst::Structure::builder(STATS_NAME)
        .field("packets", stats.packets)
        .field("bytes", stats.bytes)
        .field("dropped-empty", stats.dropped_empty)
        .field("dropped-oversized", stats.dropped_oversized)
        .field("dropped-not-whole-frames", stats.dropped_not_whole_frames)
        .field("dropped", stats.dropped())
        .field("receive-errors", stats.receive_errors)
        .field("timeouts", stats.timeouts)
        .build()
}

fn default_caps() -> gst::Caps {
    gst_audio::AudioCapsBuilder::new_interleaved()
        .format(gst_audio::AudioFormat::S16le)
        .rate(8000)
        .channels(1)
        .build()
}

fn template_caps() -> gst::Caps {
    gst_audio::AudioCapsBuilder::new_interleaved()
        .format_list([
            gst_audio::AudioFormat::S16le,
            gst_audio::AudioFormat::S16be,
            gst_audio::AudioFormat::F32le,
        ])
        .rate_range(8000..=96_000)
        .channels_range(1..=8)
        .build()
}

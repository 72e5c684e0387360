// SPDX-License-Identifier: MPL-2.0
//! Element tests for `rawudpaudiosrc` with real sockets on the loopback interface (port 0, so
//! tests never collide). Nothing sleeps: every wait is on a pull, a bus message or a channel.
//!
//! All traffic stays on `lo`: multicast groups are joined with `multicast-iface=lo` and sent out
//! of `lo`, so no IGMP/MLD report or datagram leaves the host. The IPv6 multicast test runs in a
//! private (unprivileged) network namespace whose only interface is its own `lo`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once, mpsc};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstnetaudio::plugin_register_static().unwrap();
    });
}

/// Generous bound for waits that normally end within milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);

const S16_MONO_8K: &str = "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved";

/// A harness around a PLAYING source bound to `address` on a free port, with its own bus so
/// errors can be checked. Returns the harness, the bound port and the bus.
fn playing_source(address: &str, props: &[(&str, glib::Value)]) -> (Harness, u16, gst::Bus) {
    init();
    let mut h = Harness::new("rawudpaudiosrc");
    let src = h.element().unwrap();
    src.set_property("address", address);
    src.set_property("port", 0i32);
    for (name, value) in props {
        src.set_property_from_value(name, value);
    }
    let bus = gst::Bus::new();
    src.set_bus(Some(&bus));
    h.play();
    let port = src.property::<i32>("port");
    assert_ne!(port, 0, "port not read back after binding");
    (h, u16::try_from(port).unwrap(), bus)
}

fn sender() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
}

fn send(sock: &UdpSocket, port: u16, payload: &[u8]) {
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    assert_eq!(sock.send_to(payload, to).unwrap(), payload.len());
}

/// Distinct, recognisable bytes for datagram `n`.
fn pattern(n: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(n))
        .collect()
}

#[track_caller]
fn assert_buffer(
    buffer: &gst::Buffer,
    pts: gst::ClockTime,
    duration: gst::ClockTime,
    payload: &[u8],
    discont: bool,
) {
    assert_eq!(buffer.pts(), Some(pts), "pts");
    assert_eq!(buffer.duration(), Some(duration), "duration");
    // GST_BUFFER_OFFSET_NONE
    assert_eq!(buffer.offset(), u64::MAX, "offset");
    assert_eq!(buffer.offset_end(), u64::MAX, "offset_end");
    assert_eq!(
        buffer.flags().contains(gst::BufferFlags::DISCONT),
        discont,
        "DISCONT flag"
    );
    let map = buffer.map_readable().unwrap();
    assert!(map.as_slice() == payload, "payload differs");
}

fn stats(element: &gst::Element) -> gst::Structure {
    let s = element.property::<gst::Structure>("stats");
    assert_eq!(s.name(), "application/x-rawudpaudiosrc-stats");
    s
}

#[track_caller]
fn assert_stat(stats: &gst::Structure, field: &str, expected: u64) {
    assert_eq!(
        stats.get::<u64>(field).unwrap(),
        expected,
        "stats field {field}"
    );
}

#[track_caller]
fn assert_no_error(bus: &gst::Bus) {
    if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("unexpected error: {msg:?}");
    }
}

/// Sets `element` (standalone, with its own bus) to `state`, expects failure and returns the
/// ERROR message it posted.
fn failed_state_change(element: &gst::Element, state: gst::State) -> glib::Error {
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    assert!(
        element.set_state(state).is_err(),
        "state change to {state:?} should fail"
    );
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an ERROR message on the bus");
    let err = match msg.view() {
        gst::MessageView::Error(err) => err.error(),
        _ => unreachable!(),
    };
    element.set_state(gst::State::Null).unwrap();
    err
}

#[test]
fn port_zero_picks_a_free_port_and_notifies() {
    init();
    let src = gst::ElementFactory::make("rawudpaudiosrc")
        .property("address", "127.0.0.1")
        .property("port", 0i32)
        .build()
        .unwrap();
    let notified = Arc::new(AtomicUsize::new(0));
    let n = notified.clone();
    src.connect_notify(Some("port"), move |_, _| {
        n.fetch_add(1, Ordering::SeqCst);
    });

    src.set_state(gst::State::Ready).unwrap();
    let port = src.property::<i32>("port");
    assert!(port > 0 && port <= 65535, "port {port}");
    assert_eq!(notified.load(Ordering::SeqCst), 1);
    // The port really is taken by the element.
    let err = UdpSocket::bind((Ipv4Addr::LOCALHOST, port as u16)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);

    src.set_state(gst::State::Null).unwrap();
    UdpSocket::bind((Ipv4Addr::LOCALHOST, port as u16)).expect("port released in NULL");
}

#[test]
fn datagrams_become_stamped_buffers() {
    init();
    struct Case {
        caps: &'static str,
        bytes: usize,
        duration: gst::ClockTime,
    }
    let cases = [
        // 10 ms of S16LE 8 kHz mono.
        Case {
            caps: S16_MONO_8K,
            bytes: 160,
            duration: gst::ClockTime::from_mseconds(10),
        },
        // 10 ms of F32LE 48 kHz stereo: 480 frames of 8 bytes.
        Case {
            caps: "audio/x-raw,format=F32LE,rate=48000,channels=2,layout=interleaved",
            bytes: 3840,
            duration: gst::ClockTime::from_mseconds(10),
        },
        // 7 frames of S16BE 44.1 kHz stereo: 158730.158... ns, floored.
        Case {
            caps: "audio/x-raw,format=S16BE,rate=44100,channels=2,layout=interleaved",
            bytes: 28,
            duration: gst::ClockTime::from_nseconds(158_730),
        },
    ];
    for case in cases {
        let caps = gst::Caps::from_str(case.caps).unwrap();
        let (mut h, port, bus) = playing_source("127.0.0.1", &[("caps", caps.to_value())]);
        let tx = sender();
        let times = [
            gst::ClockTime::from_seconds(1),
            gst::ClockTime::from_mseconds(1010),
            gst::ClockTime::from_nseconds(7_777_777_777),
        ];
        for (n, &time) in times.iter().enumerate() {
            h.set_time(time).unwrap();
            let payload = pattern(n as u8, case.bytes);
            send(&tx, port, &payload);
            let buffer = h.pull().unwrap();
            assert_buffer(&buffer, time, case.duration, &payload, n == 0);
        }
        let current = h.sinkpad().unwrap().current_caps().unwrap();
        assert_eq!(current, caps, "{}", case.caps);
        let s = stats(&h.element().unwrap());
        assert_stat(&s, "packets", 3);
        assert_stat(&s, "bytes", 3 * case.bytes as u64);
        assert_stat(&s, "dropped", 0);
        assert_no_error(&bus);
    }
}

#[test]
fn malformed_datagrams_are_dropped_and_counted() {
    let (mut h, port, bus) = playing_source("127.0.0.1", &[("mtu", 400u32.to_value())]);
    let tx = sender();
    let first = pattern(1, 160);
    let last = pattern(2, 320);
    h.set_time(gst::ClockTime::from_seconds(3)).unwrap();
    send(&tx, port, &first);
    send(&tx, port, &[]); // A1: empty
    send(&tx, port, &[0x55]); // A3: half an S16 sample
    send(&tx, port, &[1, 2, 3]); // A3: one and a half samples
    send(&tx, port, &pattern(3, 1000)); // A4: above mtu
    send(&tx, port, &pattern(4, 65_507)); // A4/A5: the IPv4 maximum
    send(&tx, port, &pattern(5, 401)); // one byte above mtu (and odd)
    send(&tx, port, &last);

    let buffer = h.pull().unwrap();
    assert_buffer(
        &buffer,
        gst::ClockTime::from_seconds(3),
        gst::ClockTime::from_mseconds(10),
        &first,
        true,
    );
    let buffer = h.pull().unwrap();
    assert_buffer(
        &buffer,
        gst::ClockTime::from_seconds(3),
        gst::ClockTime::from_mseconds(20),
        &last,
        false,
    );
    // Everything before `last` has been classified by the time `last` comes out.
    assert!(h.try_pull().is_none());
    let s = stats(&h.element().unwrap());
    assert_stat(&s, "packets", 2);
    assert_stat(&s, "bytes", 480);
    assert_stat(&s, "dropped-empty", 1);
    assert_stat(&s, "dropped-oversized", 3);
    assert_stat(&s, "dropped-not-whole-frames", 2);
    assert_stat(&s, "dropped", 6);
    assert_stat(&s, "receive-errors", 0);
    assert_stat(&s, "timeouts", 0);
    assert_no_error(&bus);
}

#[test]
fn partial_stereo_frames_are_dropped() {
    init();
    // A3: 5 bytes of S16LE stereo (4 bytes per frame), then a whole frame.
    let caps =
        gst::Caps::from_str("audio/x-raw,format=S16LE,rate=16000,channels=2,layout=interleaved")
            .unwrap();
    let (mut h, port, bus) = playing_source("127.0.0.1", &[("caps", caps.to_value())]);
    let tx = sender();
    h.set_time(gst::ClockTime::from_seconds(1)).unwrap();
    send(&tx, port, &[1, 2, 3, 4, 5]);
    send(&tx, port, &[1, 2, 3, 4, 5, 6]);
    send(&tx, port, &[9, 8, 7, 6]);
    let buffer = h.pull().unwrap();
    assert_buffer(
        &buffer,
        gst::ClockTime::from_seconds(1),
        gst::ClockTime::from_nseconds(62_500),
        &[9, 8, 7, 6],
        true,
    );
    let s = stats(&h.element().unwrap());
    assert_stat(&s, "dropped-not-whole-frames", 2);
    assert_stat(&s, "packets", 1);
    assert_no_error(&bus);
}

#[test]
fn port_in_use_is_an_element_error() {
    init();
    let taken = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let src = gst::ElementFactory::make("rawudpaudiosrc")
        .property("address", "127.0.0.1")
        .property("port", i32::from(port))
        .build()
        .unwrap();
    let err = failed_state_change(&src, gst::State::Ready);
    assert!(err.matches(gst::ResourceError::OpenRead), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("in use"), "{text}");
}

#[test]
fn bad_address_is_an_element_error() {
    init();
    let src = gst::ElementFactory::make("rawudpaudiosrc")
        .property("address", "not-an-address")
        .build()
        .unwrap();
    let err = failed_state_change(&src, gst::State::Ready);
    assert!(err.matches(gst::ResourceError::Settings), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("not-an-address"), "{text}");
    assert!(text.contains("IPv4 or IPv6"), "{text}");
}

#[test]
fn unusable_caps_fail_to_start() {
    init();
    for caps in [
        // Not fixed.
        "audio/x-raw,format=S16LE,rate=[8000,16000],channels=1,layout=interleaved",
        // Format outside the template.
        "audio/x-raw,format=S24LE,rate=8000,channels=1,layout=interleaved",
        // Rate outside the template.
        "audio/x-raw,format=S16LE,rate=4000,channels=1,layout=interleaved",
        // Not audio.
        "video/x-raw,format=I420,width=2,height=2,framerate=1/1",
    ] {
        let src = gst::ElementFactory::make("rawudpaudiosrc")
            .property("address", "127.0.0.1")
            .property("port", 0i32)
            .property("caps", gst::Caps::from_str(caps).unwrap())
            .build()
            .unwrap();
        let err = failed_state_change(&src, gst::State::Paused);
        assert!(err.matches(gst::ResourceError::Settings), "{caps}: {err:?}");
        assert!(err.to_string().contains("Invalid caps"), "{caps}: {err}");
    }
}

/// Waits for the next message of one of `types`, failing the test after `PATIENCE`.
fn next_message(bus: &gst::Bus, types: &[gst::MessageType]) -> gst::Message {
    bus.timed_pop_filtered(gst::ClockTime::from_seconds(PATIENCE.as_secs()), types)
        .unwrap_or_else(|| panic!("no {types:?} message within {PATIENCE:?}"))
}

/// Waits for the next timeout element message (failing on an ERROR) and checks its fields.
fn next_timeout_message(bus: &gst::Bus, timeout_ms: u64) {
    let msg = next_message(bus, &[gst::MessageType::Element, gst::MessageType::Error]);
    match msg.view() {
        gst::MessageView::Element(m) => {
            let s = m.structure().unwrap();
            assert_eq!(s.name(), "GstRawUdpAudioSrcTimeout");
            assert_eq!(s.get::<u64>("timeout").unwrap(), timeout_ms * 1_000_000);
        }
        _ => panic!("unexpected {msg:?}"),
    }
}

fn pipeline(description: &str) -> (gst::Pipeline, gst::Element, gst::Bus) {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline.by_name("src").unwrap();
    let bus = pipeline.bus().unwrap();
    (pipeline, src, bus)
}

#[test]
fn timeout_message_is_posted() {
    let (pipeline, src, bus) =
        pipeline("rawudpaudiosrc name=src address=127.0.0.1 port=0 timeout=50 ! fakesink");
    pipeline.set_state(gst::State::Playing).unwrap();
    next_timeout_message(&bus, 50);
    // And again while nothing arrives.
    next_timeout_message(&bus, 50);
    assert!(stats(&src).get::<u64>("timeouts").unwrap() >= 2);
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn stopping_while_blocked_is_prompt() {
    let (pipeline, src, bus) =
        pipeline("rawudpaudiosrc name=src address=127.0.0.1 port=0 timeout=20 ! fakesink");
    pipeline.set_state(gst::State::Playing).unwrap();
    // A timeout message proves the streaming thread is inside create(), waiting for traffic.
    next_timeout_message(&bus, 20);
    let port = src.property::<i32>("port") as u16;

    let (done_tx, done_rx) = mpsc::channel();
    let p = pipeline.clone();
    std::thread::spawn(move || {
        let _ = done_tx.send(p.set_state(gst::State::Null));
    });
    let result = done_rx
        .recv_timeout(PATIENCE)
        .expect("set_state(Null) did not return while the source waited for data");
    result.unwrap();

    // The port is free at once.
    drop(UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).expect("port still bound after NULL"));
    // And the element binds it again (the property now holds the bound port).
    pipeline.set_state(gst::State::Playing).unwrap();
    assert_eq!(src.property::<i32>("port") as u16, port);
    next_timeout_message(&bus, 20);
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn pause_and_resume_keeps_receiving() {
    let (pipeline, src, _bus) =
        pipeline("rawudpaudiosrc name=src address=127.0.0.1 port=0 ! appsink name=sink sync=false");
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let port = src.property::<i32>("port") as u16;
    let tx = sender();
    let timeout = gst::ClockTime::from_seconds(PATIENCE.as_secs());

    let first = pattern(1, 160);
    send(&tx, port, &first);
    let sample = sink.try_pull_sample(timeout).expect("first buffer");
    assert_eq!(
        sample.buffer().unwrap().map_readable().unwrap().as_slice(),
        first.as_slice()
    );

    // PAUSED unlocks create(); a datagram sent meanwhile waits in the socket.
    pipeline.set_state(gst::State::Paused).unwrap();
    let second = pattern(2, 320);
    send(&tx, port, &second);
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.try_pull_sample(timeout).expect("buffer after resume");
    let buffer = sample.buffer().unwrap();
    assert_eq!(buffer.map_readable().unwrap().as_slice(), second.as_slice());
    assert!(buffer.pts().is_some());
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn state_cycles_while_data_flows() {
    // READY/NULL and PAUSED/PLAYING while a sender keeps the socket busy: no deadlock, the port
    // is re-bindable each time.
    let (pipeline, src, bus) =
        pipeline("rawudpaudiosrc name=src address=127.0.0.1 port=0 ! fakesink sync=false");
    pipeline.set_state(gst::State::Ready).unwrap();
    let port = src.property::<i32>("port") as u16;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let tx = sender();
            let payload = pattern(0, 160);
            let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            while !stop.load(Ordering::Relaxed) {
                // The port is closed part of the time: errors are expected and irrelevant.
                let _ = tx.send_to(&payload, to);
                std::thread::yield_now();
            }
        })
    };
    for _ in 0..1000 {
        pipeline.set_state(gst::State::Playing).unwrap();
        pipeline.set_state(gst::State::Paused).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(src.property::<i32>("port") as u16, port);
    }
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    assert_no_error(&bus);
}

#[test]
fn ipv6_loopback() {
    init();
    let tx = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).expect("an IPv6 loopback (::1)");
    let (mut h, port, bus) = playing_source("::1", &[]);
    h.set_time(gst::ClockTime::from_seconds(2)).unwrap();
    let payload = pattern(6, 160);
    tx.send_to(&payload, SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
        .unwrap();
    let buffer = h.pull().unwrap();
    assert_buffer(
        &buffer,
        gst::ClockTime::from_seconds(2),
        gst::ClockTime::from_mseconds(10),
        &payload,
        true,
    );
    assert_no_error(&bus);
}

/// Index of the loopback interface in this process's network namespace, from the `::1` line of
/// `/proc/self/net/if_inet6` ("00000000000000000000000000000001 01 80 10 80       lo").
fn loopback_index() -> u32 {
    let table = std::fs::read_to_string("/proc/self/net/if_inet6").unwrap();
    let line = table
        .lines()
        .find(|line| line.starts_with("00000000000000000000000000000001 "))
        .unwrap_or_else(|| panic!("no ::1 in /proc/self/net/if_inet6:\n{table}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[5], "lo", "{line}");
    u32::from_str_radix(fields[1], 16).unwrap()
}

#[test]
fn multicast_group_is_joined_on_loopback() {
    let group = Ipv4Addr::new(239, 255, 12, 34);
    let (mut h, port, bus) =
        playing_source("239.255.12.34", &[("multicast-iface", "lo".to_value())]);
    let src = h.element().unwrap();
    assert_eq!(
        src.property::<Option<String>>("multicast-iface").as_deref(),
        Some("lo")
    );

    // Out of lo (IP_MULTICAST_IF 127.0.0.1) with TTL 0: the kernel loops the datagram back to
    // the members on this host and sends nothing anywhere else.
    let tx = sender();
    let tx_ref = socket2::SockRef::from(&tx);
    tx_ref.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    tx.set_multicast_ttl_v4(0).unwrap();
    tx.set_multicast_loop_v4(true).unwrap();
    h.set_time(gst::ClockTime::from_seconds(4)).unwrap();
    // Unicast to the same port on loopback must not reach a socket bound to the group.
    send(&tx, port, &pattern(7, 160));
    let payload = pattern(8, 160);
    tx.send_to(&payload, SocketAddr::from((group, port)))
        .unwrap();
    let buffer = h.pull().unwrap();
    assert_buffer(
        &buffer,
        gst::ClockTime::from_seconds(4),
        gst::ClockTime::from_mseconds(10),
        &payload,
        true,
    );
    assert_no_error(&bus);
}

/// Set, to the test's name, in the environment of a test re-run by [`run_in_private_netns`].
const PRIVATE_NETNS_ENV: &str = "RAWUDPAUDIOSRC_TEST_PRIVATE_NETNS";

/// Whether this process is the re-run of `test` inside its private network namespace.
fn in_private_netns(test: &str) -> bool {
    std::env::var_os(PRIVATE_NETNS_ENV).is_some_and(|name| name == test)
}

/// Runs `test` of this test binary again, alone, in a new user and network namespace (which an
/// unprivileged user may create), after the shell commands `setup` ran there as the namespace's
/// root. The namespace's only interface is its own `lo`: nothing sent there can reach another
/// host. Fails unless the test ran there and passed.
fn run_in_private_netns(test: &str, setup: &str) {
    let exe = std::env::current_exe().unwrap();
    // `ip` is in /usr/sbin, which a user's PATH may lack.
    let script = format!("PATH=\"$PATH:/usr/sbin:/sbin\"\n{setup}\nexec \"$0\" \"$@\"");
    let output = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--net", "--", "sh", "-euc"])
        .arg(&script)
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(PRIVATE_NETNS_ENV, test)
        .output()
        .expect("could not run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success()
            && stdout.contains(&format!("test {test} ... ok"))
            && stdout.contains(" 1 passed"),
        "{test} in a private network namespace: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
}

/// Network interfaces of this process's network namespace.
fn interfaces() -> Vec<String> {
    let table = std::fs::read_to_string("/proc/self/net/dev").unwrap();
    table
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// IPv6 multicast cannot loop back through `lo` in the host's namespace: the kernel gives `lo` no
/// `ff00::/8` route and turns a route added through it into a reject route, so sending to the
/// group fails with ENETUNREACH. A `local ff00::/8 dev lo` route works, but needs CAP_NET_ADMIN:
/// so this test re-runs itself in a private network namespace where it has it.
#[test]
fn ipv6_multicast_group_is_joined_on_loopback() {
    const NAME: &str = "ipv6_multicast_group_is_joined_on_loopback";
    if !in_private_netns(NAME) {
        run_in_private_netns(
            NAME,
            "ip link set lo up\nip -6 route add local ff00::/8 dev lo table local",
        );
    } else {
        assert_eq!(interfaces(), ["lo"], "not in a private network namespace");
        ipv6_multicast_on_loopback();
    }
}

fn ipv6_multicast_on_loopback() {
    let group: Ipv6Addr = "ff15::1234".parse().unwrap();
    let (mut h, port, bus) = playing_source("ff15::1234", &[("multicast-iface", "lo".to_value())]);
    let tx = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
    let tx_ref = socket2::SockRef::from(&tx);
    tx_ref.set_multicast_if_v6(loopback_index()).unwrap();
    tx.set_multicast_loop_v6(true).unwrap();
    h.set_time(gst::ClockTime::from_seconds(5)).unwrap();
    let payload = pattern(9, 320);
    tx.send_to(&payload, SocketAddr::from((group, port)))
        .unwrap();
    let buffer = h.pull().unwrap();
    assert_buffer(
        &buffer,
        gst::ClockTime::from_seconds(5),
        gst::ClockTime::from_mseconds(20),
        &payload,
        true,
    );
    assert_no_error(&bus);
}

#[test]
fn unknown_multicast_iface_is_an_element_error() {
    init();
    let src = gst::ElementFactory::make("rawudpaudiosrc")
        .property("address", "239.255.12.34")
        .property("port", 0i32)
        .property("multicast-iface", "nosuchif0")
        .build()
        .unwrap();
    let err = failed_state_change(&src, gst::State::Ready);
    assert!(err.matches(gst::ResourceError::Settings), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("'nosuchif0'"), "{text}");
    assert!(text.contains("multicast-iface"), "{text}");
}

#[test]
fn multicast_iface_defaults_to_kernel_choice_and_is_unused_for_unicast() {
    init();
    let src = gst::ElementFactory::make("rawudpaudiosrc").build().unwrap();
    assert_eq!(src.property::<Option<String>>("multicast-iface"), None);
    // A unicast address ignores it, even when it names no interface.
    src.set_property("address", "127.0.0.1");
    src.set_property("port", 0i32);
    src.set_property("multicast-iface", "nosuchif0");
    src.set_state(gst::State::Ready).unwrap();
    // NULL-only: a change in READY is refused.
    src.set_property("multicast-iface", "lo");
    assert_eq!(
        src.property::<Option<String>>("multicast-iface").as_deref(),
        Some("nosuchif0")
    );
    src.set_state(gst::State::Null).unwrap();
    // Empty means NULL.
    src.set_property("multicast-iface", "");
    assert_eq!(src.property::<Option<String>>("multicast-iface"), None);
}

#[test]
fn timeout_can_be_enabled_while_playing() {
    // After a first datagram the source waits with no deadline; setting the property must
    // wake it for the new period to take effect.
    let (pipeline, src, bus) =
        pipeline("rawudpaudiosrc name=src address=127.0.0.1 port=0 ! appsink name=sink sync=false");
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let port = src.property::<i32>("port") as u16;
    send(&sender(), port, &pattern(1, 160));
    sink.try_pull_sample(gst::ClockTime::from_seconds(PATIENCE.as_secs()))
        .expect("first buffer");
    src.set_property("timeout", 30u64);
    next_timeout_message(&bus, 30);
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn reuse_shares_a_port_held_with_so_reuseaddr() {
    init();
    // Another socket holds the port with SO_REUSEADDR; only with reuse=true may the element
    // bind it too.
    let holder = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    holder.set_reuse_address(true).unwrap();
    holder
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    let port = holder.local_addr().unwrap().as_socket().unwrap().port();

    let make = |reuse: bool| {
        gst::ElementFactory::make("rawudpaudiosrc")
            .property("address", "127.0.0.1")
            .property("port", i32::from(port))
            .property("reuse", reuse)
            .build()
            .unwrap()
    };
    let err = failed_state_change(&make(false), gst::State::Ready);
    assert!(err.to_string().contains("in use"), "{err}");

    let shared = make(true);
    shared.set_state(gst::State::Ready).unwrap();
    assert_eq!(shared.property::<i32>("port"), i32::from(port));
    shared.set_state(gst::State::Null).unwrap();
}

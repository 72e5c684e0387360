// SPDX-License-Identifier: MPL-2.0
//! Socket set-up for `rawudpaudiosrc` (options, bind, multicast join) and a peek at the length
//! of the next datagram. No GStreamer types: errors come back as values the element reports.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// What to bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindOptions {
    /// Local address and port; a multicast group binds the group and joins it.
    pub addr: SocketAddr,
    /// `SO_REUSEADDR`.
    pub reuse: bool,
    /// `SO_RCVBUF` in bytes; 0 leaves the OS default.
    pub buffer_size: usize,
}

/// A failed step of [`bind`], with the address it concerned. Displays as
/// `Could not bind 127.0.0.1:5004: Address already in use (os error 98)`.
#[derive(Debug)]
pub struct BindError {
    pub step: &'static str,
    pub addr: SocketAddr,
    pub err: io::Error,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Could not {} {}: {}", self.step, self.addr, self.err)
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.err)
    }
}

/// Parses the `address` property: an IPv4 or IPv6 literal (no host names: resolving could
/// block a state change).
pub fn parse_address(address: &str) -> Option<IpAddr> {
    address.trim().parse().ok()
}

/// Creates a non-blocking UDP socket bound to `opts.addr`. For a multicast group the socket binds
/// the group address (so only that group's traffic arrives) and joins it on the interface the
/// routing table picks. `IPV6_V6ONLY` keeps the OS default.
pub fn bind(opts: &BindOptions) -> Result<UdpSocket, BindError> {
    let addr = opts.addr;
    let fail = |step: &'static str| move |err| BindError { step, addr, err };

    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(fail("create a socket for"))?;
    socket
        .set_reuse_address(opts.reuse)
        .map_err(fail("set SO_REUSEADDR for"))?;
    if opts.buffer_size > 0 {
        socket
            .set_recv_buffer_size(opts.buffer_size)
            .map_err(fail("set SO_RCVBUF for"))?;
    }
    socket.bind(&addr.into()).map_err(fail("bind"))?;
    match addr.ip() {
        IpAddr::V4(group) if group.is_multicast() => socket
            .join_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)
            .map_err(fail("join multicast group"))?,
        IpAddr::V6(group) if group.is_multicast() => socket
            .join_multicast_v6(&group, 0)
            .map_err(fail("join multicast group"))?,
        _ => {}
    }
    socket
        .set_nonblocking(true)
        .map_err(fail("set non-blocking mode for"))?;
    Ok(socket.into())
}

/// Length of the datagram at the head of the queue, without consuming it.
///
/// On Linux `MSG_PEEK | MSG_TRUNC` returns the datagram's true length without copying any of
/// it. Elsewhere the length is capped at `mtu + 1`, which still tells an oversized datagram.
/// A zero-length datagram gives `Ok(0)`; an empty queue gives `WouldBlock` on a non-blocking
/// socket. Pending socket errors (ICMP-reported) come back here and are cleared.
pub fn next_datagram_len(socket: SockRef<'_>, mtu: usize) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        // Linux values, identical on every architecture (include/linux/socket.h).
        const MSG_PEEK: std::ffi::c_int = 0x02;
        const MSG_TRUNC: std::ffi::c_int = 0x20;
        let _ = mtu;
        socket.recv_with_flags(&mut [], MSG_PEEK | MSG_TRUNC)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let mut scratch = vec![std::mem::MaybeUninit::<u8>::uninit(); mtu.saturating_add(1)];
        socket.peek(&mut scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback(port: u16, reuse: bool) -> BindOptions {
        BindOptions {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            reuse,
            buffer_size: 0,
        }
    }

    fn wait_readable(sock: &UdpSocket) {
        // The loopback delivers inside send_to(); a blocking peek just confirms it.
        sock.set_nonblocking(false).unwrap();
        let mut b = [0u8; 1];
        sock.peek(&mut b).unwrap();
    }

    #[test]
    fn port_zero_binds_a_free_port() {
        let sock = bind(&loopback(0, false)).unwrap();
        assert_ne!(sock.local_addr().unwrap().port(), 0);
    }

    #[test]
    fn port_in_use_fails_without_reuse() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind(&loopback(port, false)).unwrap_err();
        assert_eq!(err.err.kind(), io::ErrorKind::AddrInUse);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("Could not bind 127.0.0.1:{port}: ")),
            "{text}"
        );
    }

    #[test]
    fn true_length_of_an_oversized_datagram_is_known() {
        let rx = bind(&loopback(0, false)).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&[7u8; 1000], rx.local_addr().unwrap()).unwrap();
        wait_readable(&rx);
        let len = next_datagram_len(SockRef::from(&rx), 400).unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(len, 1000);
        } else {
            assert_eq!(len, 401);
        }
        // Peeking did not consume it.
        let mut buf = [0u8; 2000];
        assert_eq!(rx.recv(&mut buf).unwrap(), 1000);
    }

    #[test]
    fn empty_datagram_has_length_zero_and_can_be_discarded() {
        let rx = bind(&loopback(0, false)).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        tx.send_to(&[], to).unwrap();
        tx.send_to(&[1, 2], to).unwrap();
        wait_readable(&rx);
        assert_eq!(next_datagram_len(SockRef::from(&rx), 400).unwrap(), 0);
        assert_eq!(rx.recv(&mut []).unwrap(), 0);
        assert_eq!(next_datagram_len(SockRef::from(&rx), 400).unwrap(), 2);
    }

    #[test]
    fn empty_queue_would_block() {
        let rx = bind(&loopback(0, false)).unwrap();
        let err = next_datagram_len(SockRef::from(&rx), 400).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn addresses_are_ip_literals_only() {
        assert_eq!(parse_address("0.0.0.0"), Some(IpAddr::from([0, 0, 0, 0])));
        assert_eq!(parse_address("::"), Some("::".parse().unwrap()));
        assert_eq!(
            parse_address(" 239.255.12.34 "),
            Some(IpAddr::from([239, 255, 12, 34]))
        );
        assert_eq!(parse_address("not-an-address"), None);
        assert_eq!(parse_address("localhost"), None);
        assert_eq!(parse_address(""), None);
    }
}

// SPDX-License-Identifier: MPL-2.0
//! Socket set-up for `rawudpaudiosrc` (options, bind, multicast join on a chosen interface) and a
//! peek at the length of the next datagram. No GStreamer types: errors come back as values the
//! element reports.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6, UdpSocket};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockRef, Socket, Type};

/// A network interface, as named in the `multicast-iface` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// Kernel interface index, valid in this process's network namespace.
    pub index: u32,
}

impl Interface {
    /// Looks `name` up (`if_nametoindex`). An unknown name gives the OS error (`ENODEV`).
    pub fn by_name(name: &str) -> io::Result<Self> {
        let index = interface_index(name)?;
        Ok(Self {
            name: name.to_owned(),
            index,
        })
    }
}

/// `if_nametoindex(3)`. It asks the kernel about this process's network namespace, unlike
/// `/sys/class/net/<name>/ifindex`, which describes the namespace sysfs was mounted in (after a
/// bare `unshare --net` that is the host's: it still lists `eth0`, which the namespace lacks).
fn interface_index(name: &str) -> io::Result<u32> {
    let c_name = CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name contains a NUL byte",
        )
    })?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call, which only
    // reads it; the function has no other preconditions.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// What to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindOptions {
    /// Local address and port; a multicast group binds the group and joins it.
    pub addr: SocketAddr,
    /// `SO_REUSEADDR`.
    pub reuse: bool,
    /// `SO_RCVBUF` in bytes; 0 leaves the OS default.
    pub buffer_size: usize,
    /// Interface on which to join a multicast group; `None` lets the kernel pick (through the
    /// routing table). Unused for a unicast address.
    pub multicast_iface: Option<Interface>,
}

/// A failed step of [`bind`]. Displays as
/// `Could not bind 127.0.0.1:5004: Address already in use (os error 98)` or
/// `Could not join multicast group 239.255.12.34:5004 on interface lo: ...`.
#[derive(Debug)]
pub struct BindError {
    pub step: &'static str,
    pub addr: SocketAddr,
    /// The interface of a multicast join.
    pub iface: Option<String>,
    pub err: io::Error,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Could not {} {}", self.step, self.addr)?;
        if let Some(iface) = &self.iface {
            write!(f, " on interface {iface}")?;
        }
        write!(f, ": {}", self.err)
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
/// the group address (so only that group's traffic arrives) and joins it on
/// `opts.multicast_iface`, or on the interface the routing table picks. An IPv6 group is bound
/// with the interface as scope, which link-local groups (`ff02::/16`) require. `IPV6_V6ONLY`
/// keeps the OS default.
pub fn bind(opts: &BindOptions) -> Result<UdpSocket, BindError> {
    let addr = opts.addr;
    let fail = |step: &'static str| {
        move |err| BindError {
            step,
            addr,
            iface: None,
            err,
        }
    };
    let iface_index = opts.multicast_iface.as_ref().map(|iface| iface.index);

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
    let bind_addr = match (addr, iface_index) {
        (SocketAddr::V6(v6), Some(index)) if v6.ip().is_multicast() => {
            SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, index))
        }
        _ => addr,
    };
    socket.bind(&bind_addr.into()).map_err(fail("bind"))?;
    let joined = match addr.ip() {
        IpAddr::V4(group) if group.is_multicast() => match iface_index {
            Some(index) => {
                socket.join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(index))
            }
            None => socket.join_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED),
        },
        IpAddr::V6(group) if group.is_multicast() => {
            socket.join_multicast_v6(&group, iface_index.unwrap_or(0))
        }
        _ => Ok(()),
    };
    joined.map_err(|err| BindError {
        step: "join multicast group",
        addr,
        iface: opts
            .multicast_iface
            .as_ref()
            .map(|iface| iface.name.clone()),
        err,
    })?;
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
        let _ = mtu;
        socket.recv_with_flags(&mut [], libc::MSG_PEEK | libc::MSG_TRUNC)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let mut scratch = vec![std::mem::MaybeUninit::<u8>::uninit(); mtu.saturating_add(1)];
        socket.peek(&mut scratch)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn loopback(port: u16, reuse: bool) -> BindOptions {
        BindOptions {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            reuse,
            buffer_size: 0,
            multicast_iface: None,
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
    fn unknown_interface_is_reported() {
        let err = Interface::by_name("nosuchif0").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
        let err = Interface::by_name("l\0o").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    }

    /// `(interface index, interface name, group)` for every IPv4 multicast membership in this
    /// process's network namespace.
    #[cfg(target_os = "linux")]
    fn igmp_memberships() -> Vec<(u32, String, Ipv4Addr)> {
        // "1\tlo        :     2      V3" starts a device; "\t\t\t\t220CFFEF     1 ..." is one of
        // its groups, the address's bytes printed as a native-endian u32.
        let text = std::fs::read_to_string("/proc/self/net/igmp").unwrap();
        let mut device = None;
        let mut memberships = Vec::new();
        for line in text.lines().skip(1) {
            let mut fields = line.split_whitespace();
            if line.starts_with('\t') {
                let hex = fields.next().unwrap();
                let group = Ipv4Addr::from(u32::from_str_radix(hex, 16).unwrap().to_ne_bytes());
                let (index, name): &(u32, String) = device.as_ref().unwrap();
                memberships.push((*index, name.clone(), group));
            } else {
                let index = fields.next().unwrap().parse().unwrap();
                device = Some((index, fields.next().unwrap().to_owned()));
            }
        }
        memberships
    }

    /// `(interface name, group)` for every IPv6 multicast membership in this process's network
    /// namespace.
    #[cfg(target_os = "linux")]
    fn mld_memberships() -> Vec<(String, Ipv6Addr)> {
        // "1    lo              ff150000000000000000000000001234     1 00000004 0"
        let text = std::fs::read_to_string("/proc/self/net/igmp6").unwrap();
        text.lines()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let group = u128::from_str_radix(fields[2], 16).unwrap();
                (fields[1].to_owned(), Ipv6Addr::from(group))
            })
            .collect()
    }

    fn on_loopback(group: IpAddr) -> BindOptions {
        BindOptions {
            addr: SocketAddr::new(group, 0),
            reuse: false,
            buffer_size: 0,
            multicast_iface: Some(Interface::by_name("lo").unwrap()),
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ipv4_group_is_joined_on_the_named_interface_only() {
        let group = Ipv4Addr::new(239, 255, 12, 35);
        let lo = Interface::by_name("lo").unwrap();
        let rx = bind(&on_loopback(group.into())).unwrap();
        let joined: Vec<_> = igmp_memberships()
            .into_iter()
            .filter(|(_, _, g)| *g == group)
            .collect();
        assert_eq!(joined, [(lo.index, "lo".to_owned(), group)]);

        // Sent out of lo (TTL 0: never beyond this host), looped back to the member.
        let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        tx.set_multicast_loop_v4(true).unwrap();
        tx.set_multicast_ttl_v4(0).unwrap();
        SockRef::from(&tx)
            .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
            .unwrap();
        let port = rx.local_addr().unwrap().port();
        tx.send_to(&[1, 2, 3, 4], (group, port)).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        wait_readable(&rx);
        let mut buf = [0u8; 16];
        assert_eq!(rx.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], &[1, 2, 3, 4]);

        drop(rx);
        assert!(!igmp_memberships().iter().any(|(_, _, g)| *g == group));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ipv6_link_local_group_is_scoped_to_the_named_interface() {
        // ff02::/16 cannot be bound without an interface; with one it binds and joins there.
        let group: Ipv6Addr = "ff02::1235".parse().unwrap();
        let rx = bind(&on_loopback(group.into())).unwrap();
        let lo = Interface::by_name("lo").unwrap();
        match rx.local_addr().unwrap() {
            SocketAddr::V6(local) => {
                assert_eq!(*local.ip(), group);
                assert_eq!(local.scope_id(), lo.index);
            }
            other => panic!("bound {other}"),
        }
        let joined: Vec<_> = mld_memberships()
            .into_iter()
            .filter(|(_, g)| *g == group)
            .collect();
        assert_eq!(joined, [("lo".to_owned(), group)]);
    }

    #[test]
    fn failed_join_names_the_interface() {
        let mut opts = on_loopback(Ipv4Addr::new(239, 255, 12, 36).into());
        // An index no interface has.
        opts.multicast_iface = Some(Interface {
            name: "gone0".into(),
            index: u32::MAX,
        });
        let err = bind(&opts).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("Could not join multicast group 239.255.12.36:0 on interface gone0: "),
            "{text}"
        );
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

// SPDX-License-Identifier: MPL-2.0
//! RTP header validation (RFC 3550 §5.1) on top of the `rtp-types` parser, with the reason a
//! packet is refused, for the stats.

use rtp_types::{RtpPacket, RtpParseError};

/// Why a datagram is not an RTP packet we can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Shorter than the 12-byte fixed header.
    TooShort,
    /// Version field other than 2 (also catches STUN and the like).
    BadVersion,
    /// The CSRC list runs past the end.
    CsrcOverrun,
    /// The header extension (or its 4-byte header) runs past the end.
    ExtensionOverrun,
    /// Padding count 0, or longer than what follows the header.
    BadPadding,
    /// RTCP on the RTP port (packet types 200-204).
    Rtcp,
    /// A valid header but no payload bytes.
    EmptyPayload,
    /// A payload type other than the negotiated one.
    PayloadType,
}

impl Malformed {
    pub const ALL: [Malformed; 8] = [
        Self::TooShort,
        Self::BadVersion,
        Self::CsrcOverrun,
        Self::ExtensionOverrun,
        Self::BadPadding,
        Self::Rtcp,
        Self::EmptyPayload,
        Self::PayloadType,
    ];

    /// Stable name, used as the stats field suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooShort => "too-short",
            Self::BadVersion => "bad-version",
            Self::CsrcOverrun => "csrc-overrun",
            Self::ExtensionOverrun => "extension-overrun",
            Self::BadPadding => "bad-padding",
            Self::Rtcp => "rtcp",
            Self::EmptyPayload => "empty-payload",
            Self::PayloadType => "payload-type",
        }
    }
}

/// The fields of a valid RTP packet that the jitter buffer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub pt: u8,
    pub marker: bool,
}

/// Parses and validates `data`; on success returns the header and the payload (padding
/// removed, non-empty).
pub fn parse(data: &[u8]) -> Result<(Header, &[u8]), Malformed> {
    let packet = match RtpPacket::parse(data) {
        Ok(p) => p,
        Err(RtpParseError::UnsupportedVersion(_)) => return Err(Malformed::BadVersion),
        Err(RtpParseError::PaddingInvalid(_)) => return Err(Malformed::BadPadding),
        Err(RtpParseError::Truncated { .. }) => return Err(truncation_reason(data)),
    };
    // RTCP packet types 200..=204 read as marker + payload type 72..=76.
    if (200..=204).contains(&data[1]) {
        return Err(Malformed::Rtcp);
    }
    let start = packet.payload_offset();
    let payload = &data[start..start + packet.payload_len()];
    if payload.is_empty() {
        return Err(Malformed::EmptyPayload);
    }
    Ok((
        Header {
            seq: packet.sequence_number(),
            ts: packet.timestamp(),
            ssrc: packet.ssrc(),
            pt: packet.payload_type(),
            marker: packet.marker_bit(),
        },
        payload,
    ))
}

/// Which part of the header ran past the end of `data` (rtp-types says only "truncated").
fn truncation_reason(data: &[u8]) -> Malformed {
    if data.len() < RtpPacket::MIN_RTP_PACKET_LEN {
        return Malformed::TooShort;
    }
    let csrc_end = 12 + 4 * usize::from(data[0] & 0x0f);
    if data.len() < csrc_end {
        return Malformed::CsrcOverrun;
    }
    if data[0] & 0x10 != 0 {
        if data.len() < csrc_end + 4 {
            return Malformed::ExtensionOverrun;
        }
        let words = usize::from(u16::from_be_bytes([data[csrc_end + 2], data[csrc_end + 3]]));
        if data.len() < csrc_end + 4 + 4 * words {
            return Malformed::ExtensionOverrun;
        }
    }
    Malformed::BadPadding
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const HDR: &str = "80 60 00 01 00 00 00 10 12 34 56 78";

    #[test]
    fn valid_packet_parses() {
        let data = hex(&format!("{HDR} aa bb"));
        let (h, payload) = parse(&data).unwrap();
        assert_eq!(
            (h.seq, h.ts, h.ssrc, h.pt, h.marker),
            (1, 16, 0x12345678, 0x60, false)
        );
        assert_eq!(payload, &[0xaa, 0xbb]);
    }

    #[test]
    fn each_malformation_has_its_reason() {
        let cases = [
            ("80 00 00 01 00 00", Malformed::TooShort),
            (
                "40 60 00 01 00 00 00 10 12 34 56 78 aa",
                Malformed::BadVersion,
            ),
            (
                "00 01 00 08 21 12 a4 42 00 00 00 00 00 00",
                Malformed::BadVersion,
            ),
            (
                "8f 60 00 01 00 00 00 10 12 34 56 78",
                Malformed::CsrcOverrun,
            ),
            (
                "90 60 00 01 00 00 00 10 12 34 56 78 be de",
                Malformed::ExtensionOverrun,
            ),
            (
                "90 60 00 01 00 00 00 10 12 34 56 78 be de 40 01 00 00 00 00 00 00 00 00 00 00 00 00",
                Malformed::ExtensionOverrun,
            ),
            (
                "a0 60 00 01 00 00 00 10 12 34 56 78 aa 00",
                Malformed::BadPadding,
            ),
            (
                "a0 60 00 01 00 00 00 10 12 34 56 78 aa bb cc dd ee ff 11 ff",
                Malformed::BadPadding,
            ),
            ("a0 60 00 01 00 00 00 10 12 34 56 78", Malformed::BadPadding),
            ("80 c8 00 06 00 00 00 10 12 34 56 78 aa", Malformed::Rtcp),
            (
                "80 60 00 01 00 00 00 10 12 34 56 78",
                Malformed::EmptyPayload,
            ),
            (
                "a0 60 00 01 00 00 00 10 12 34 56 78 aa 02",
                Malformed::EmptyPayload,
            ),
        ];
        for (h, want) in cases {
            assert_eq!(parse(&hex(h)).map(|_| ()), Err(want), "{h}");
        }
    }

    #[test]
    fn empty_extension_is_valid() {
        let data = hex("90 60 00 01 00 00 00 10 12 34 56 78 be de 00 00 aa");
        assert_eq!(parse(&data).unwrap().1, &[0xaa]);
        let data =
            hex("90 60 00 01 00 00 00 10 12 34 56 78 be de 00 02 00 00 00 00 00 00 00 00 aa");
        assert_eq!(
            parse(&data).unwrap().1,
            &[0xaa],
            "one-byte extension of padding only"
        );
    }
}

// SPDX-License-Identifier: MPL-2.0
//! ITU-T G.711 expansion: one byte per sample, mu-law (PCMU) or A-law (PCMA), to linear 16-bit.
//!
//! Written from the G.711 description: a sign bit, a 3-bit segment (exponent) and a 4-bit step
//! (mantissa); mu-law bytes are stored inverted, A-law bytes have their even bits toggled.

/// mu-law byte to a 14-bit-range value scaled to i16.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0f);
    // Bias 0x84 (132): ((mantissa << 3) + bias) << exponent, minus the bias.
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// A-law byte to a 13-bit-range value scaled to i16.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let b = byte ^ 0x55;
    let sign = b & 0x80;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    // A-law's sign bit set means positive.
    if sign != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_points() {
        assert_eq!(ulaw_to_linear(0xff), 0); // positive zero
        assert_eq!(ulaw_to_linear(0x7f), 0); // negative zero
        assert_eq!(ulaw_to_linear(0x80), 32124); // largest positive
        assert_eq!(ulaw_to_linear(0x00), -32124);
    }

    #[test]
    fn alaw_known_points() {
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256); // largest positive
        assert_eq!(alaw_to_linear(0x2a), -32256);
    }

    #[test]
    fn expansion_is_monotonic_within_each_sign() {
        for table in [ulaw_to_linear as fn(u8) -> i16, alaw_to_linear] {
            let mut pos: Vec<i16> = (0..=255u8).map(table).filter(|&v| v > 0).collect();
            let n = pos.len();
            pos.sort_unstable();
            pos.dedup();
            assert_eq!(pos.len(), n, "every positive code is a distinct level");
            let neg = (0..=255u8).map(table).filter(|&v| v < 0).count();
            assert!(n >= 127 && neg >= 127);
        }
    }
}

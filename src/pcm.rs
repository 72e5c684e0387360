// SPDX-License-Identifier: MPL-2.0
//! PCM sample formats the elements accept, and their lossless conversion to and from the `f32`
//! samples the pure modules work on.
//!
//! S16 maps to `f32` as `x / 32768`, which is exact, so S16 audio that is not concealed leaves
//! the jitter buffer bit for bit as it came in.

/// Interleaved sample formats handled by the elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    S16LE,
    S16BE,
    F32LE,
}

impl SampleFormat {
    /// The format's name in `audio/x-raw` caps.
    pub const fn caps_name(self) -> &'static str {
        match self {
            SampleFormat::S16LE => "S16LE",
            SampleFormat::S16BE => "S16BE",
            SampleFormat::F32LE => "F32LE",
        }
    }

    /// Bytes of one sample of one channel.
    pub const fn sample_bytes(self) -> usize {
        match self {
            SampleFormat::S16LE | SampleFormat::S16BE => 2,
            SampleFormat::F32LE => 4,
        }
    }

    /// Appends the samples in `bytes` to `out`. A trailing partial sample is ignored; callers
    /// check sizes before and count such input as malformed.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<f32>) {
        const S16_SCALE: f32 = 1.0 / 32768.0;
        match self {
            SampleFormat::S16LE => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) * S16_SCALE),
            ),
            SampleFormat::S16BE => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_be_bytes([b[0], b[1]])) * S16_SCALE),
            ),
            SampleFormat::F32LE => out.extend(bytes.chunks_exact(4).map(|b| {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                // NaN or infinities from the network must not reach the DSP or the sink.
                if v.is_finite() { v } else { 0.0 }
            })),
        }
    }

    /// Writes `samples` into `out`, which must hold exactly `samples.len() * sample_bytes()`
    /// bytes. Integer formats round and saturate.
    pub fn encode(self, samples: &[f32], out: &mut [u8]) {
        debug_assert_eq!(out.len(), samples.len() * self.sample_bytes());
        let to_s16 = |s: f32| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        match self {
            SampleFormat::S16LE => {
                for (o, &s) in out.chunks_exact_mut(2).zip(samples) {
                    o.copy_from_slice(&to_s16(s).to_le_bytes());
                }
            }
            SampleFormat::S16BE => {
                for (o, &s) in out.chunks_exact_mut(2).zip(samples) {
                    o.copy_from_slice(&to_s16(s).to_be_bytes());
                }
            }
            SampleFormat::F32LE => {
                for (o, &s) in out.chunks_exact_mut(4).zip(samples) {
                    o.copy_from_slice(&s.to_le_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s16_round_trip_is_bit_exact() {
        for fmt in [SampleFormat::S16LE, SampleFormat::S16BE] {
            let mut bytes = Vec::new();
            for v in [i16::MIN, -12345, -1, 0, 1, 12345, i16::MAX] {
                bytes.extend_from_slice(&match fmt {
                    SampleFormat::S16LE => v.to_le_bytes(),
                    _ => v.to_be_bytes(),
                });
            }
            let mut f = Vec::new();
            fmt.decode(&bytes, &mut f);
            let mut back = vec![0u8; bytes.len()];
            fmt.encode(&f, &mut back);
            assert_eq!(back, bytes, "{fmt:?}");
        }
    }

    #[test]
    fn s16_encode_saturates() {
        let mut out = [0u8; 4];
        SampleFormat::S16LE.encode(&[2.0, -2.0], &mut out);
        assert_eq!(i16::from_le_bytes([out[0], out[1]]), i16::MAX);
        assert_eq!(i16::from_le_bytes([out[2], out[3]]), i16::MIN);
    }

    #[test]
    fn f32_round_trip_and_non_finite_is_zeroed() {
        let mut bytes = Vec::new();
        for v in [0.25f32, -1.0, f32::NAN, f32::INFINITY] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let mut f = Vec::new();
        SampleFormat::F32LE.decode(&bytes, &mut f);
        assert_eq!(f, vec![0.25, -1.0, 0.0, 0.0]);
    }

    #[test]
    fn trailing_partial_sample_is_ignored() {
        let mut f = Vec::new();
        SampleFormat::S16LE.decode(&[0, 1, 2], &mut f);
        assert_eq!(f.len(), 1);
    }
}

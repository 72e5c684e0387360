// SPDX-License-Identifier: MPL-2.0
//! RTP payloads to PCM: L16 (RFC 3551, big-endian 16-bit), PCMU and PCMA (G.711) and Opus
//! (RFC 7587). No GStreamer types. Samples come out as interleaved `f32` in [-1, 1].
//!
//! PCM payloads are stateless and decoded as they are played; missing audio is then made up by
//! the PCM [`Concealer`](crate::conceal::Concealer). Opus keeps decoder state, so the jitter
//! buffer feeds it packets in order and asks it, not the PCM concealer, to fill what is missing:
//! from the next packet's in-band FEC or DRED when they cover the loss, else with its PLC.

pub mod g711;
pub mod opus;

/// The payload formats `plcjitterbuffer` depayloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    L16,
    Pcmu,
    Pcma,
    Opus,
}

impl Encoding {
    /// From the `encoding-name` of `application/x-rtp` caps (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "L16" => Some(Self::L16),
            "PCMU" => Some(Self::Pcmu),
            "PCMA" => Some(Self::Pcma),
            "OPUS" => Some(Self::Opus),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::L16 => "L16",
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::Opus => "OPUS",
        }
    }

    /// The static payload type RFC 3551 assigns, if any.
    pub fn static_payload_type(self, clock_rate: u32, channels: usize) -> Option<u8> {
        match (self, clock_rate, channels) {
            (Self::Pcmu, 8000, 1) => Some(0),
            (Self::Pcma, 8000, 1) => Some(8),
            (Self::L16, 44100, 2) => Some(10),
            (Self::L16, 44100, 1) => Some(11),
            _ => None,
        }
    }
}

/// Why a payload is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadError {
    /// No payload bytes.
    Empty,
    /// L16 bytes that are not whole frames of the negotiated channel count.
    NotWholeFrames,
    /// Longer than [`MAX_PACKET_MS`].
    TooLong,
    /// Not a valid Opus packet (RFC 6716 framing).
    InvalidOpus,
}

impl PayloadError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty payload",
            Self::NotWholeFrames => "payload is not whole frames",
            Self::TooLong => "payload longer than 1 s",
            Self::InvalidOpus => "invalid Opus packet",
        }
    }
}

/// The longest packet accepted (PCM payloads; Opus stops at 120 ms by itself).
pub const MAX_PACKET_MS: u32 = 1000;

/// Decodes one stream's payloads.
#[derive(Debug)]
pub struct PayloadDecoder {
    encoding: Encoding,
    rate: u32,
    channels: usize,
    opus: Option<opus::Decoder>,
}

impl PayloadDecoder {
    /// `rate` is the clock rate (Opus: always 48000), `channels` the output channel count.
    /// `opus_complexity` 0..=10 sets the Opus decoder's complexity (the neural PLC needs 5+).
    pub fn new(
        encoding: Encoding,
        rate: u32,
        channels: usize,
        opus_complexity: i32,
    ) -> Result<Self, String> {
        let opus = match encoding {
            Encoding::Opus => Some(opus::Decoder::new(channels, opus_complexity)?),
            _ => None,
        };
        if encoding == Encoding::Opus && rate != opus::RATE {
            return Err(format!("Opus runs at 48000 Hz, not {rate}"));
        }
        Ok(Self {
            encoding,
            rate,
            channels,
            opus,
        })
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames in `payload`, after validating it.
    pub fn frames(&self, payload: &[u8]) -> Result<usize, PayloadError> {
        if payload.is_empty() {
            return Err(PayloadError::Empty);
        }
        let frames = match self.encoding {
            Encoding::L16 => {
                let bpf = 2 * self.channels;
                if !payload.len().is_multiple_of(bpf) {
                    return Err(PayloadError::NotWholeFrames);
                }
                payload.len() / bpf
            }
            Encoding::Pcmu | Encoding::Pcma => {
                if !payload.len().is_multiple_of(self.channels) {
                    return Err(PayloadError::NotWholeFrames);
                }
                payload.len() / self.channels
            }
            Encoding::Opus => {
                opus::packet_frames(payload).map_err(|_| PayloadError::InvalidOpus)?
            }
        };
        if frames as u64 * 1000 > u64::from(self.rate) * u64::from(MAX_PACKET_MS) {
            return Err(PayloadError::TooLong);
        }
        Ok(frames)
    }

    /// Decodes a payload validated by [`PayloadDecoder::frames`], appending its samples to
    /// `out`; returns the frames appended.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> usize {
        const SCALE: f32 = 1.0 / 32768.0;
        let start = out.len();
        match self.encoding {
            Encoding::L16 => out.extend(
                payload
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_be_bytes([b[0], b[1]])) * SCALE),
            ),
            Encoding::Pcmu => out.extend(
                payload
                    .iter()
                    .map(|&b| f32::from(g711::ulaw_to_linear(b)) * SCALE),
            ),
            Encoding::Pcma => out.extend(
                payload
                    .iter()
                    .map(|&b| f32::from(g711::alaw_to_linear(b)) * SCALE),
            ),
            Encoding::Opus => {
                return self.opus.as_mut().map_or(0, |d| d.decode(payload, out));
            }
        }
        (out.len() - start) / self.channels
    }

    /// The codec conceals by itself (Opus), rather than through the PCM concealer.
    pub fn has_plc(&self) -> bool {
        self.opus.is_some()
    }

    /// Codec PLC: appends at least `frames` frames (Opus rounds up to 2.5 ms).
    pub fn conceal(&mut self, frames: usize, out: &mut Vec<f32>) -> usize {
        self.opus.as_mut().map_or(0, |d| d.conceal(frames, out))
    }

    /// `payload` carries redundancy for the packet before it (Opus in-band FEC).
    pub fn has_fec(&self, payload: &[u8]) -> bool {
        self.opus.is_some() && opus::has_fec(payload)
    }

    /// Recovers the `frames` frames before `next` from its in-band FEC; appends them.
    pub fn decode_fec(&mut self, next: &[u8], frames: usize, out: &mut Vec<f32>) -> usize {
        self.opus
            .as_mut()
            .map_or(0, |d| d.decode_fec(next, frames, out))
    }

    /// The stretch before `next` that its deep redundancy (Opus DRED) can rebuild: from `reach`
    /// frames before it to `end` frames before it (see [`opus::Decoder::dred_frames`]).
    pub fn dred_frames(&mut self, next: &[u8]) -> (usize, usize) {
        self.opus.as_mut().map_or((0, 0), |d| d.dred_frames(next))
    }

    /// Rebuilds `frames` frames ending `offset` frames before the packet last given to
    /// [`PayloadDecoder::dred_frames`].
    pub fn decode_dred(&mut self, offset: usize, frames: usize, out: &mut Vec<f32>) -> usize {
        self.opus
            .as_mut()
            .map_or(0, |d| d.decode_dred(offset, frames, out))
    }

    /// A new stream: forget the codec state.
    pub fn reset(&mut self) {
        if let Some(d) = self.opus.as_mut() {
            d.reset();
        }
    }

    /// Granularity of codec concealment in frames (1 for PCM).
    pub fn conceal_step(&self) -> usize {
        if self.opus.is_some() {
            opus::MIN_FRAME
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l16_decodes_big_endian_and_checks_frames() {
        let mut d = PayloadDecoder::new(Encoding::L16, 16000, 2, 0).unwrap();
        let payload = [0x40, 0x00, 0xc0, 0x00];
        assert_eq!(d.frames(&payload), Ok(1));
        let mut out = Vec::new();
        assert_eq!(d.decode(&payload, &mut out), 1);
        assert_eq!(out, vec![0.5, -0.5]);
        assert_eq!(d.frames(&payload[..3]), Err(PayloadError::NotWholeFrames));
        assert_eq!(d.frames(&[]), Err(PayloadError::Empty));
    }

    #[test]
    fn oversized_pcm_packet_is_refused() {
        let d = PayloadDecoder::new(Encoding::Pcmu, 8000, 1, 0).unwrap();
        assert_eq!(d.frames(&vec![0xff; 8000]), Ok(8000));
        assert_eq!(d.frames(&vec![0xff; 8001]), Err(PayloadError::TooLong));
    }

    fn opus_packets(channels: usize, frame_ms: usize, fec: bool, n: usize) -> Vec<Vec<u8>> {
        let ch = if channels == 2 {
            ::opus::Channels::Stereo
        } else {
            ::opus::Channels::Mono
        };
        let mut enc = ::opus::Encoder::new(48000, ch, ::opus::Application::Voip).unwrap();
        enc.set_inband_fec(fec).unwrap();
        enc.set_packet_loss_perc(if fec { 20 } else { 0 }).unwrap();
        enc.set_bitrate(::opus::Bitrate::Bits(32000)).unwrap();
        let frames = 48 * frame_ms;
        (0..n)
            .map(|k| {
                let pcm: Vec<f32> = (0..frames * channels)
                    .map(|i| {
                        let t = (k * frames + i / channels) as f32 / 48000.0;
                        0.3 * (2.0 * std::f32::consts::PI * 220.0 * t).sin()
                            * (1.0 + 0.5 * (2.0 * std::f32::consts::PI * 3.0 * t).sin())
                    })
                    .collect();
                enc.encode_vec_float(&pcm, 1500).unwrap()
            })
            .collect()
    }

    #[test]
    fn opus_decodes_conceals_and_recovers_from_fec() {
        let packets = opus_packets(1, 20, true, 30);
        let mut d = PayloadDecoder::new(Encoding::Opus, 48000, 1, 10).unwrap();
        let mut out = Vec::new();
        for p in &packets[..20] {
            assert_eq!(d.frames(p), Ok(960));
            assert_eq!(d.decode(p, &mut out), 960);
        }
        assert!(
            packets[25..].iter().any(|p| d.has_fec(p)),
            "the encoder adds LBRR"
        );
        let mut fec = Vec::new();
        assert_eq!(d.decode_fec(&packets[21], 960, &mut fec), 960);
        let energy = fec.iter().map(|x| x * x).sum::<f32>() / fec.len() as f32;
        assert!(
            energy > 0.005,
            "FEC audio carries the tone (energy {energy})"
        );
        let mut plc = Vec::new();
        assert_eq!(d.conceal(100, &mut plc), 120, "PLC rounds up to 2.5 ms");
    }

    #[test]
    fn invalid_opus_packets_are_refused() {
        let d = PayloadDecoder::new(Encoding::Opus, 48000, 2, 0).unwrap();
        // Code 1 (two equal frames) needs an even remainder.
        assert_eq!(d.frames(&[0x01, 1, 2, 3]), Err(PayloadError::InvalidOpus));
        // Code 2 whose first length runs past the end.
        assert_eq!(d.frames(&[0x02, 251, 1, 2]), Err(PayloadError::InvalidOpus));
        // Code 3 with a frame count of 0.
        assert_eq!(d.frames(&[0x03, 0x00]), Err(PayloadError::InvalidOpus));
        // Code 3: 7 frames of 20 ms is more than 120 ms.
        assert_eq!(
            d.frames(&[0x0b, 0x07, 0, 0, 0, 0, 0, 0, 0]),
            Err(PayloadError::InvalidOpus)
        );
        // A TOC byte alone is a valid (DTX) packet of one 20 ms frame.
        assert_eq!(d.frames(&[0x08]), Ok(960));
    }
}

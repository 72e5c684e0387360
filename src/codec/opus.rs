// SPDX-License-Identifier: MPL-2.0
//! Opus decoding on the libopus that `opusic-sys` builds (1.6, with the deep PLC, DRED and OSCE
//! compiled in). The `opus` crate's safe `Decoder` does not expose the decoder complexity (which
//! switches the neural PLC on) nor DRED, so this module calls those few functions itself; every
//! `unsafe` block here is such a call, with the buffer sizes checked before it.

use std::ffi::c_int;
use std::ptr::NonNull;

use opusic_sys as ffi;

/// Opus always runs at 48 kHz here.
pub const RATE: u32 = 48_000;
/// The smallest Opus frame (2.5 ms): PLC and FEC decode in multiples of it.
pub const MIN_FRAME: usize = 120;
/// The longest Opus packet (120 ms).
pub const MAX_PACKET_FRAMES: usize = 5760;
/// The longest redundancy DRED can carry that we look at (1 s).
const MAX_DRED_FRAMES: usize = 48_000;

/// Why an Opus packet is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpusError {
    /// RFC 6716 framing violated (empty, bad code 1/2/3 lengths, too long, ...).
    InvalidPacket,
}

/// Frames (per channel, at 48 kHz) in a packet, after checking its framing completely.
pub fn packet_frames(packet: &[u8]) -> Result<usize, OpusError> {
    if packet.is_empty() || packet.len() > i32::MAX as usize {
        return Err(OpusError::InvalidPacket);
    }
    // opus_packet_parse walks the whole framing (code 0-3, lengths, padding) without decoding.
    if opus::packet::parse(packet).is_err() {
        return Err(OpusError::InvalidPacket);
    }
    // SAFETY: `packet` is a valid slice of `len` bytes; libopus only reads it.
    let n = unsafe {
        ffi::opus_packet_get_nb_samples(packet.as_ptr(), packet.len() as i32, RATE as i32)
    };
    if n <= 0 || n as usize > MAX_PACKET_FRAMES {
        return Err(OpusError::InvalidPacket);
    }
    Ok(n as usize)
}

/// True if the packet carries in-band FEC (SILK LBRR) for the frame before it.
pub fn has_fec(packet: &[u8]) -> bool {
    if packet.is_empty() || packet.len() > i32::MAX as usize {
        return false;
    }
    // SAFETY: as above; the function only reads `len` bytes.
    unsafe { ffi::opus_packet_has_lbrr(packet.as_ptr(), packet.len() as i32) == 1 }
}

/// A libopus decoder at 48 kHz, float output.
#[derive(Debug)]
pub struct Decoder {
    dec: NonNull<ffi::OpusDecoder>,
    dred_dec: Option<NonNull<ffi::OpusDREDDecoder>>,
    dred: Option<NonNull<ffi::OpusDRED>>,
    /// Frames of audio the last successful DRED parse can rebuild (0: none). Decoding further
    /// back than that makes libopus read feature memory the parse never wrote.
    dred_reach: usize,
    channels: usize,
}

// SAFETY: the libopus states are plain heap memory owned by this value alone; libopus has no
// thread affinity.
unsafe impl Send for Decoder {}

impl Decoder {
    /// `channels` 1 or 2; `complexity` 0..=10 (5 and up switch the deep PLC on, 7 and up OSCE).
    pub fn new(channels: usize, complexity: i32) -> Result<Self, String> {
        if !(1..=2).contains(&channels) {
            return Err(format!(
                "Opus decoding supports 1 or 2 channels, not {channels}"
            ));
        }
        let mut err: c_int = 0;
        // SAFETY: plain constructor; the result is checked for null below.
        let dec = unsafe { ffi::opus_decoder_create(RATE as i32, channels as c_int, &mut err) };
        let dec = NonNull::new(dec)
            .filter(|_| err == ffi::OPUS_OK)
            .ok_or_else(|| format!("cannot create an Opus decoder (error {err})"))?;
        let mut d = Self {
            dec,
            dred_dec: None,
            dred: None,
            dred_reach: 0,
            channels,
        };
        d.set_complexity(complexity);
        // DRED needs its own decoder and a parsed-DRED buffer; without them we only lose DRED.
        // SAFETY: constructors; null results are handled.
        unsafe {
            let mut e: c_int = 0;
            d.dred_dec = NonNull::new(ffi::opus_dred_decoder_create(&mut e)).filter(|_| e == 0);
            d.dred = NonNull::new(ffi::opus_dred_alloc(&mut e)).filter(|_| e == 0);
        }
        Ok(d)
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn set_complexity(&mut self, complexity: i32) {
        // SAFETY: a valid decoder and a documented int request.
        unsafe {
            ffi::opus_decoder_ctl(
                self.dec.as_ptr(),
                ffi::OPUS_SET_COMPLEXITY_REQUEST,
                complexity.clamp(0, 10) as c_int,
            );
        }
    }

    /// Back to a fresh state (a new stream).
    pub fn reset(&mut self) {
        self.dred_reach = 0;
        // SAFETY: a valid decoder; OPUS_RESET_STATE takes no argument.
        unsafe {
            ffi::opus_decoder_ctl(self.dec.as_ptr(), ffi::OPUS_RESET_STATE);
        }
    }

    /// Decodes `packet` (already checked by [`packet_frames`]) and appends its frames to `out`.
    /// Returns the frames decoded (0 if libopus refused it).
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<f32>) -> usize {
        self.run(Some(packet), MAX_PACKET_FRAMES, false, out)
    }

    /// Conceals `frames` frames (rounded up to 2.5 ms) with the codec's PLC, which runs the
    /// neural PLC at complexity 5 and above; appends them to `out`.
    pub fn conceal(&mut self, frames: usize, out: &mut Vec<f32>) -> usize {
        let frames = frames.div_ceil(MIN_FRAME) * MIN_FRAME;
        self.run(None, frames.min(MAX_PACKET_FRAMES), false, out)
    }

    /// Recovers the `frames` frames just before `next` (rounded down to 2.5 ms) from its in-band
    /// FEC; libopus conceals any part the FEC does not cover. Appends to `out`.
    pub fn decode_fec(&mut self, next: &[u8], frames: usize, out: &mut Vec<f32>) -> usize {
        let frames = (frames / MIN_FRAME * MIN_FRAME).min(MAX_PACKET_FRAMES);
        if frames == 0 {
            return 0;
        }
        self.run(Some(next), frames, true, out)
    }

    /// The stretch before `next` that its DRED (deep redundancy) can rebuild, as offsets in
    /// frames before `next`'s start: `(reach, end)` means from `reach` frames before it up to
    /// `end` frames before it. `(0, 0)` if it carries none.
    pub fn dred_frames(&mut self, next: &[u8]) -> (usize, usize) {
        let (Some(dd), Some(dred)) = (self.dred_dec, self.dred) else {
            return (0, 0);
        };
        if next.is_empty() || next.len() > i32::MAX as usize {
            return (0, 0);
        }
        let mut end: c_int = 0;
        // SAFETY: `dred` came from `opus_dred_alloc`, which allocates `opus_dred_get_size()`
        // bytes of plain data; valid DRED states and a readable packet slice.
        let n = unsafe {
            // Start every parse from zeros: libopus' DRED decoding of a malformed (fuzzed)
            // payload can read fields the parse did not write (valgrind: a conditional jump on
            // memory from `opus_dred_alloc`); zeros make that deterministic, and nothing of an
            // earlier packet's DRED survives into this one.
            let size = usize::try_from(ffi::opus_dred_get_size()).unwrap_or(0);
            std::ptr::write_bytes(dred.as_ptr().cast::<u8>(), 0, size);
            ffi::opus_dred_parse(
                dd.as_ptr(),
                dred.as_ptr(),
                next.as_ptr(),
                next.len() as i32,
                MAX_DRED_FRAMES as i32,
                RATE as i32,
                &mut end,
                0,
            )
        };
        if n <= 0 {
            self.dred_reach = 0;
            (0, 0)
        } else {
            self.dred_reach = n as usize;
            (n as usize, end.clamp(0, n) as usize)
        }
    }

    /// Rebuilds `frames` frames ending `offset` frames before `next`'s start from the DRED parsed
    /// by the last [`Decoder::dred_frames`]; appends to `out`.
    pub fn decode_dred(&mut self, offset: usize, frames: usize, out: &mut Vec<f32>) -> usize {
        let Some(dred) = self.dred else { return 0 };
        let frames = (frames / MIN_FRAME * MIN_FRAME).min(MAX_PACKET_FRAMES);
        // Only after a parse that found DRED, and within what it holds (valgrind: without a
        // parse, or with a fuzzed offset beyond its reach, libopus branched on uninitialised
        // memory of the DRED buffer).
        if frames == 0 || self.dred_reach == 0 || offset > self.dred_reach {
            return 0;
        }
        let start = out.len();
        out.resize(start + frames * self.channels, 0.0);
        // SAFETY: `out` has room for `frames` frames of `channels` floats past `start`.
        let n = unsafe {
            ffi::opus_decoder_dred_decode_float(
                self.dec.as_ptr(),
                dred.as_ptr(),
                offset as i32,
                out[start..].as_mut_ptr(),
                frames as i32,
            )
        };
        let n = n.max(0) as usize;
        out.truncate(start + n * self.channels);
        clip(&mut out[start..]);
        n
    }

    fn run(
        &mut self,
        packet: Option<&[u8]>,
        frames: usize,
        fec: bool,
        out: &mut Vec<f32>,
    ) -> usize {
        let start = out.len();
        out.resize(start + frames * self.channels, 0.0);
        let (ptr, len) = match packet {
            Some(p) if !p.is_empty() && p.len() <= i32::MAX as usize => {
                (p.as_ptr(), p.len() as i32)
            }
            _ => (std::ptr::null(), 0),
        };
        // SAFETY: `ptr`/`len` describe a readable slice (or null for PLC); `out` has room for
        // `frames` frames past `start`, which is what libopus may write.
        let n = unsafe {
            ffi::opus_decode_float(
                self.dec.as_ptr(),
                ptr,
                len,
                out[start..].as_mut_ptr(),
                frames as c_int,
                c_int::from(fec),
            )
        };
        let n = n.max(0) as usize;
        out.truncate(start + n * self.channels);
        clip(&mut out[start..]);
        n
    }
}

/// libopus's float decoder does not clip: hostile packets decode to many times full scale (seen:
/// -16.6). Keep what leaves the decoder in [-1, 1], as its 16-bit API does.
fn clip(samples: &mut [f32]) {
    for x in samples {
        *x = if x.is_finite() {
            x.clamp(-1.0, 1.0)
        } else {
            0.0
        };
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: each pointer came from its libopus constructor and is freed exactly once.
        unsafe {
            ffi::opus_decoder_destroy(self.dec.as_ptr());
            if let Some(d) = self.dred_dec {
                ffi::opus_dred_decoder_destroy(d.as_ptr());
            }
            if let Some(d) = self.dred {
                ffi::opus_dred_free(d.as_ptr());
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Packets from a libopus encoder with DRED (deep redundancy) on and in-band FEC off: 20 ms
    /// frames of a voiced, vowel-like signal. Encoding with DRED needs its request, which the
    /// `opus` crate does not wrap: this is the FFI boundary.
    pub(crate) fn dred_packets(count: usize) -> Vec<Vec<u8>> {
        let mut err = 0;
        // SAFETY: constructor; checked below.
        let enc =
            unsafe { ffi::opus_encoder_create(48000, 1, ffi::OPUS_APPLICATION_VOIP, &mut err) };
        assert!(!enc.is_null() && err == 0);
        // SAFETY: a valid encoder and documented int requests.
        unsafe {
            ffi::opus_encoder_ctl(enc, ffi::OPUS_SET_BITRATE_REQUEST, 32000 as c_int);
            ffi::opus_encoder_ctl(enc, ffi::OPUS_SET_PACKET_LOSS_PERC_REQUEST, 20 as c_int);
            ffi::opus_encoder_ctl(enc, ffi::OPUS_SET_DRED_DURATION_REQUEST, 50 as c_int);
        }
        let mut out = Vec::new();
        for k in 0..count {
            let pcm: Vec<f32> = (0..960)
                .map(|i| {
                    let t = (k * 960 + i) as f32 / 48000.0;
                    let f0 = 130.0 + 25.0 * (2.0 * std::f32::consts::PI * 0.6 * t).sin();
                    (1..8)
                        .map(|h| {
                            0.1 / h as f32 * (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin()
                        })
                        .sum()
                })
                .collect();
            let mut buf = vec![0u8; 1500];
            // SAFETY: 960 input frames of mono and a 1500-byte output buffer, as declared.
            let n = unsafe {
                ffi::opus_encode_float(enc, pcm.as_ptr(), 960, buf.as_mut_ptr(), buf.len() as i32)
            };
            assert!(n > 0, "encode: {n}");
            buf.truncate(n as usize);
            out.push(buf);
        }
        // SAFETY: created above, freed once.
        unsafe { ffi::opus_encoder_destroy(enc) };
        out
    }

    #[test]
    fn dred_rebuilds_audio_before_a_packet() {
        let packets = dred_packets(100);
        let mut d = Decoder::new(1, 10).unwrap();
        let mut out = Vec::new();
        for p in &packets[..60] {
            d.decode(p, &mut out);
        }
        // Packets 60 and 61 are lost; 62 carries DRED reaching back over them.
        let (reach, end) = d.dred_frames(&packets[62]);
        assert!(reach >= 1920 + end, "DRED reach {reach}, end {end}");
        let mut rebuilt = Vec::new();
        assert_eq!(d.decode_dred(1920, 960, &mut rebuilt), 960);
        assert_eq!(d.decode_dred(960, 960, &mut rebuilt), 960);
        let energy = rebuilt.iter().map(|x| x * x).sum::<f32>() / rebuilt.len() as f32;
        assert!(
            energy > 0.002,
            "rebuilt audio carries the voice (energy {energy})"
        );
        assert!(!has_fec(&packets[62]), "no LBRR: this is DRED alone");
    }
}

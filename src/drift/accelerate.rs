// SPDX-License-Identifier: MPL-2.0
//! Time-compression in low-energy stretches: how adaptive mode lowers its delay quickly without
//! touching what the listener attends to.
//!
//! When the target delay falls (the jitter shrank), the media queued beyond it must be played
//! out faster. Resampling faster raises the pitch (1 % is 17 cents) whatever the signal is;
//! removing audio from a pause is inaudible. So, while the delay is well above its target, the
//! playout offers a stretch of media and [`QuietSplicer`] judges it: when every short block of
//! it is quiet (far below the loudness the stream had recently, or below an absolute floor),
//! `remove` frames are cut out of it with an equal-power cross-fade; otherwise it passes
//! unchanged and the resampler's catch-up does the work.
//!
//! The splice: input `[A | … | B | rest]` of `remove + xfade` frames, where `A` is its first
//! `xfade` frames and `B` the `xfade` frames starting at `remove`. The output is `xfade` frames
//! fading from `A` into `B`: it starts where the audio before it left off and ends where the
//! audio after it goes on, so both edges are continuous.
//!
//! Pure: plain samples in and out, no clock.

/// Length of the blocks whose loudness is judged, and of the loudness tracker's steps (ms).
const BLOCK_MS: u32 = 2;
/// A block is quiet below the recent loudness by this factor (-30 dB)...
const QUIET_REL: f32 = 0.031_6;
/// ...or below this level whatever came before (-55 dBFS RMS).
const QUIET_ABS: f32 = 0.001_78;
/// Time constant (s) of the recent loudness's release: a pause in speech stays quiet relative
/// to the speech before it for tens of seconds.
const RELEASE_S: f32 = 20.0;
/// Cross-fade length (ms).
pub const XFADE_MS: u32 = 5;

/// The recent loudness of the stream and the quiet-stretch splice.
#[derive(Debug, Clone)]
pub struct QuietSplicer {
    channels: usize,
    block: usize,
    xfade: usize,
    /// Release factor per block.
    release: f32,
    /// RMS of the loudest recent block, released exponentially.
    level: f32,
    /// Equal-power fade-in weights, `xfade` of them (the fade-out is the reverse).
    fade: Vec<f32>,
}

impl QuietSplicer {
    pub fn new(rate: u32, channels: usize) -> Self {
        let block = ((rate * BLOCK_MS / 1000) as usize).max(1);
        let xfade = ((rate * XFADE_MS / 1000) as usize).max(2);
        let fade = (0..xfade)
            .map(|i| {
                let x = (i as f32 + 0.5) / xfade as f32;
                (x * std::f32::consts::FRAC_PI_2).sin()
            })
            .collect();
        Self {
            channels: channels.max(1),
            block,
            xfade,
            release: (-(BLOCK_MS as f32) / 1000.0 / RELEASE_S).exp(),
            level: 0.0,
            fade,
        }
    }

    /// Frames a splice removing `remove` frames needs as input.
    pub fn input_frames(&self, remove: usize) -> usize {
        remove + self.xfade
    }

    /// Cross-fade length in frames.
    pub fn xfade_frames(&self) -> usize {
        self.xfade
    }

    /// The recent loudness (RMS of the loudest recent block, released).
    pub fn level(&self) -> f32 {
        self.level
    }

    /// Lets the tracker hear media that plays (interleaved).
    pub fn observe(&mut self, media: &[f32]) {
        for b in media.chunks(self.block * self.channels) {
            let rms = rms(b);
            self.level = (self.level * self.release).max(rms);
        }
    }

    /// Whether every block of `media` is quiet against the recent loudness.
    pub fn is_quiet(&self, media: &[f32]) -> bool {
        let limit = (self.level * QUIET_REL).max(QUIET_ABS);
        media
            .chunks(self.block * self.channels)
            .all(|b| rms(b) < limit)
    }

    /// Offers `media` (at least [`QuietSplicer::input_frames`]`(remove)` frames, interleaved):
    /// when it is quiet, `remove` frames are cut out of it with a cross-fade and the shortened
    /// audio is appended to `out`, returning true; otherwise `media` is appended unchanged.
    /// The tracker hears the audio either way.
    pub fn offer(&mut self, media: &[f32], remove: usize, out: &mut Vec<f32>) -> bool {
        let ch = self.channels;
        let frames = media.len() / ch;
        let quiet = remove > 0 && frames >= self.input_frames(remove) && self.is_quiet(media);
        self.observe(media);
        if !quiet {
            out.extend_from_slice(media);
            return false;
        }
        let x = self.xfade;
        for i in 0..x {
            let fin = self.fade[i];
            let fout = self.fade[x - 1 - i];
            for c in 0..ch {
                let a = media[i * ch + c];
                let b = media[(remove + i) * ch + c];
                out.push(a * fout + b * fin);
            }
        }
        out.extend_from_slice(&media[(remove + x) * ch..]);
        true
    }
}

fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| s * s).sum::<f32>() / x.len() as f32).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::TAU;

    const RATE: u32 = 48_000;

    fn tone(freq: f32, amp: f32, from: usize, frames: usize) -> Vec<f32> {
        (from..from + frames)
            .map(|n| amp * (TAU * freq * n as f32 / RATE as f32).sin())
            .collect()
    }

    /// Deterministic noise in [-amp, amp).
    fn noise(amp: f32, frames: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.max(1);
        (0..frames)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                amp * (s as f32 / u32::MAX as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    #[test]
    fn loud_audio_passes_unchanged() {
        let mut sp = QuietSplicer::new(RATE, 1);
        sp.observe(&tone(300.0, 0.3, 0, 4800));
        let media = tone(300.0, 0.3, 4800, 960);
        let mut out = Vec::new();
        assert!(!sp.offer(&media, 480, &mut out));
        assert_eq!(out, media);
    }

    #[test]
    fn a_pause_after_speech_is_shortened_by_exactly_remove() {
        let mut sp = QuietSplicer::new(RATE, 1);
        sp.observe(&tone(200.0, 0.3, 0, 48_000));
        // Background noise 40 dB below the tone's level.
        let pause = noise(0.003, 960, 7);
        let mut out = Vec::new();
        assert!(sp.offer(&pause, 480, &mut out));
        assert_eq!(out.len(), 960 - 480);
        // No peak beyond what two equal-power weights of the noise can sum to.
        let peak_in = pause.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let peak_out = out.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            peak_out <= peak_in * std::f32::consts::SQRT_2,
            "{peak_out} > {peak_in}"
        );
        // The energy stays that of the noise: equal power, not a 3 dB dip.
        let r = rms(&out) / rms(&pause);
        assert!((0.8..1.2).contains(&r), "{r}");
    }

    #[test]
    fn a_click_in_the_stretch_keeps_it_whole() {
        let mut sp = QuietSplicer::new(RATE, 1);
        sp.observe(&tone(200.0, 0.3, 0, 4800));
        let mut media = noise(0.002, 960, 3);
        // A 1 ms onset in the middle: the stretch is not quiet.
        for (i, x) in tone(1000.0, 0.2, 0, 48).into_iter().enumerate() {
            media[500 + i] += x;
        }
        let mut out = Vec::new();
        assert!(!sp.offer(&media, 480, &mut out));
        assert_eq!(out, media);
    }

    #[test]
    fn relative_quiet_is_forgotten_slowly_and_the_floor_always_counts() {
        let mut sp = QuietSplicer::new(RATE, 1);
        // No history: only the absolute floor (-55 dBFS) is quiet.
        assert!(sp.is_quiet(&noise(0.002, 480, 1)));
        assert!(!sp.is_quiet(&noise(0.01, 480, 1)));
        sp.observe(&tone(200.0, 0.5, 0, 4800));
        // -33 dB below the tone's RMS: quiet.
        assert!(sp.is_quiet(&noise(0.01, 480, 2)));
        // 10 s of that pause later the level fell by 4.3 dB: still quiet.
        for k in 0..1000 {
            sp.observe(&noise(0.01, 480, 10 + k));
        }
        assert!(sp.is_quiet(&noise(0.01, 480, 5)), "{}", sp.level());
    }

    #[test]
    fn both_edges_of_the_splice_are_continuous() {
        // A quiet low tone cut by a whole period, half a period (the segments faded into each
        // other are in anti-phase) and an odd length: the output must bend no more than twice
        // what the tone does, at the seams and inside; a hard cut at the wrong phase would
        // jump by up to twice the amplitude.
        let amp = 0.001;
        let w = TAU * 100.0 / RATE as f32;
        for remove in [480usize, 240, 333] {
            let mut sp = QuietSplicer::new(RATE, 2);
            let before = tone(100.0, amp, 0, 480);
            let media = tone(100.0, amp, 480, 1440);
            let after = tone(100.0, amp, 1920, 480);
            let stereo = |m: &[f32]| m.iter().flat_map(|&x| [x, -x]).collect::<Vec<_>>();
            let mut out = stereo(&before);
            assert!(sp.offer(&stereo(&media), remove, &mut out));
            out.extend(stereo(&after));
            assert_eq!(out.len(), 2 * (480 + 1440 - remove + 480));
            let left: Vec<f32> = out.iter().step_by(2).copied().collect();
            let right: Vec<f32> = out.iter().skip(1).step_by(2).copied().collect();
            let max_step = left
                .windows(2)
                .map(|p| (p[1] - p[0]).abs())
                .fold(0.0f32, f32::max);
            assert!(
                max_step < 2.0 * amp * w,
                "remove {remove}: {max_step} vs {}",
                amp * w
            );
            // The channels stay each other's mirror.
            assert!(left.iter().zip(&right).all(|(l, r)| (l + r).abs() < 1e-9));
        }
    }
}

// SPDX-License-Identifier: MPL-2.0
//! Detecting a waveform jump where two datagrams meet.
//!
//! Raw datagrams are placed next to each other by a guess (see the timeline rule). When jitter
//! hid a loss, two datagrams that were not adjacent at the sender end up adjacent in the output,
//! and the waveform jumps there: a click. At such uncertain boundaries the playout asks this
//! detector whether the next datagram continues the output; if not, it is merged in with a
//! cross-fade from the concealment's continuation, as after a loss.
//!
//! The test: predict the next sample of each channel by extending the last two output samples
//! linearly, and compare the prediction error with the same error over the last 2 ms of output
//! (the mean absolute second difference: how far the waveform bends per sample). A continuation
//! of the same waveform stays within a few times that; a splice of two unrelated points of a
//! waveform usually does not.

/// Output remembered for the prediction.
const TAIL_MS: u32 = 2;
/// A prediction error above this many times the recent mean prediction error is a jump...
const JUMP_RATIO: f32 = 6.0;
/// ...if it is also above this absolute level (-40 dBFS): near silence, nothing clicks.
const MIN_JUMP: f32 = 0.01;

/// Remembers the end of the output and judges whether new audio continues it.
#[derive(Debug, Clone)]
pub struct SpliceDetector {
    channels: usize,
    /// The last `cap` frames, interleaved, oldest first.
    tail: Vec<f32>,
    cap: usize,
}

impl SpliceDetector {
    pub fn new(rate: u32, channels: usize) -> Self {
        let cap = ((rate * TAIL_MS / 1000) as usize).max(3);
        Self {
            channels: channels.max(1),
            tail: Vec::with_capacity(cap * channels.max(1)),
            cap,
        }
    }

    pub fn reset(&mut self) {
        self.tail.clear();
    }

    /// Records output (interleaved, whole frames) in the order it is produced.
    pub fn record(&mut self, out: &[f32]) {
        let ch = self.channels;
        let frames = out.len() / ch;
        if frames >= self.cap {
            self.tail.clear();
            self.tail
                .extend_from_slice(&out[(frames - self.cap) * ch..frames * ch]);
            return;
        }
        let keep = (self.cap - frames).min(self.tail.len() / ch);
        let drop = self.tail.len() / ch - keep;
        self.tail.drain(..drop * ch);
        self.tail.extend_from_slice(&out[..frames * ch]);
    }

    /// Whether `next` (interleaved, at least one whole frame) would jump away from the output so
    /// far. False when too little output is known to judge.
    pub fn is_jump(&self, next: &[f32]) -> bool {
        let ch = self.channels;
        let frames = self.tail.len() / ch;
        if frames < 3 || next.len() < ch {
            return false;
        }
        (0..ch).any(|c| {
            let at = |f: usize| self.tail[f * ch + c];
            let mean_error = (2..frames)
                .map(|f| (at(f) - 2.0 * at(f - 1) + at(f - 2)).abs())
                .sum::<f32>()
                / (frames - 2) as f32;
            let predicted = 2.0 * at(frames - 1) - at(frames - 2);
            let error = (next[c] - predicted).abs();
            error > MIN_JUMP && error > JUMP_RATIO * mean_error
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(start: usize, n: usize, f: f32, rate: f32) -> Vec<f32> {
        (start..start + n)
            .map(|i| 0.5 * (i as f32 * 2.0 * std::f32::consts::PI * f / rate).sin())
            .collect()
    }

    #[test]
    fn continuation_is_not_a_jump() {
        for f in [100.0, 440.0, 1000.0, 3000.0] {
            let mut d = SpliceDetector::new(8000, 1);
            for k in 0..50 {
                let next = sine(k * 80, 80, f, 8000.0);
                if k > 0 {
                    assert!(!d.is_jump(&next), "{f} Hz at datagram {k}");
                }
                d.record(&next);
            }
        }
    }

    #[test]
    fn skipping_a_datagram_of_a_tone_is_a_jump() {
        // 440 Hz at 8 kHz: skipping 80 samples shifts the phase by 1.76 cycles.
        let mut d = SpliceDetector::new(8000, 1);
        d.record(&sine(0, 80, 440.0, 8000.0));
        assert!(d.is_jump(&sine(160, 80, 440.0, 8000.0)));
    }

    #[test]
    fn silence_never_jumps_and_short_history_is_not_judged() {
        let mut d = SpliceDetector::new(48000, 2);
        assert!(!d.is_jump(&[0.5, 0.5]));
        d.record(&[0.0; 200]);
        assert!(!d.is_jump(&[0.005, 0.0]));
        assert!(d.is_jump(&[0.3, 0.0]));
    }

    #[test]
    fn record_keeps_the_latest_frames_across_small_writes() {
        let mut d = SpliceDetector::new(8000, 1);
        let s = sine(0, 40, 440.0, 8000.0);
        for x in s.chunks(3) {
            d.record(x);
        }
        assert_eq!(d.tail, s[40 - d.cap..]);
        assert!(!d.is_jump(&sine(40, 1, 440.0, 8000.0)));
    }
}

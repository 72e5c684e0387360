// SPDX-License-Identifier: MPL-2.0
//! The background (noise floor) of the real audio, for comfort noise on long losses.
//!
//! The real audio is cut into 10 ms blocks. A floor follows the quietest block energy: it drops
//! at once to a quieter block and rises by [`FLOOR_RISE_DB`] per block otherwise (minimum
//! statistics, simplified). A block within [`QUIET_DB`] of the floor counts as background, if
//! the audio has dynamics (a recent peak [`DYNAMICS_DB`] above the floor) and the block is not
//! tonal: its mono autocorrelation and per-channel energies are kept as the comfort noise's
//! model.

use super::lpc::Lpc;

/// Block length.
const BLOCK_MS: f32 = 10.0;
/// Rise of the floor per block while louder audio plays (5 dB/s).
const FLOOR_RISE_DB: f64 = 0.05;
/// A block this close to the floor is background.
const QUIET_DB: f64 = 3.0;
/// A block whose linear prediction gains more than this is tonal (a held note, a hum), not
/// background noise, and is not taken as the comfort noise's model.
const NOISE_PREDICTION_GAIN_DB: f64 = 20.0;
/// A quiet block is background only while the loudest recent block is at least this much above
/// the floor: audio without such dynamics (a held tone, steady music) has no background to
/// hand over to.
const DYNAMICS_DB: f64 = 6.0;
/// Share of the model kept when a new background block comes in.
const SMOOTHING: f64 = 0.8;
/// Fall of the peak per block (5 dB/s).
const PEAK_FALL_DB: f64 = 0.05;
/// The floor rises from at least this energy (-100 dB), so digital silence does not pin it.
const FLOOR_MIN: f64 = 1e-10;

#[derive(Debug)]
pub(super) struct Background {
    channels: usize,
    /// Mono mix of the block being collected.
    block: Vec<f32>,
    filled: usize,
    energy: Vec<f64>,
    floor: f64,
    rise: f64,
    quiet: f64,
    peak: f64,
    fall: f64,
    dynamics: f64,
    /// The model of the last background block: autocorrelation per sample (mono) and mean
    /// energy per channel. Empty (zero) until one was seen.
    r: Vec<f64>,
    channel_energy: Vec<f64>,
    /// Checks a candidate block's noisiness.
    lpc: Lpc,
}

impl Background {
    pub(super) fn new(rate: u32, channels: usize) -> Self {
        let block = super::ms_to_frames(BLOCK_MS, rate).max(1);
        let lpc = Lpc::new(rate, block);
        let order = lpc.order();
        Self {
            channels,
            block: vec![0.0; block],
            filled: 0,
            energy: vec![0.0; channels],
            floor: f64::INFINITY,
            rise: 10f64.powf(FLOOR_RISE_DB / 10.0),
            quiet: 10f64.powf(QUIET_DB / 10.0),
            peak: 0.0,
            fall: 10f64.powf(-PEAK_FALL_DB / 10.0),
            dynamics: 10f64.powf(DYNAMICS_DB / 10.0),
            r: vec![0.0; order + 1],
            channel_energy: vec![0.0; channels],
            lpc,
        }
    }

    pub(super) fn reset(&mut self) {
        self.filled = 0;
        self.energy.fill(0.0);
        self.floor = f64::INFINITY;
        self.peak = 0.0;
        self.r.fill(0.0);
        self.channel_energy.fill(0.0);
    }

    /// Feeds real audio (interleaved, whole frames).
    pub(super) fn push(&mut self, samples: &[f32]) {
        let share = 1.0 / self.channels as f64;
        for frame in samples.chunks_exact(self.channels) {
            let mut mono = 0.0;
            for (e, &s) in self.energy.iter_mut().zip(frame) {
                let s = f64::from(s);
                *e += s * s;
                mono += s * share;
            }
            self.block[self.filled] = if mono.is_finite() { mono as f32 } else { 0.0 };
            self.filled += 1;
            if self.filled == self.block.len() {
                self.end_block();
            }
        }
    }

    fn end_block(&mut self) {
        let n = self.block.len() as f64;
        let energy = self
            .block
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            / n;
        self.floor = (self.floor * self.rise).max(FLOOR_MIN).min(energy);
        self.peak = (self.peak * self.fall).max(energy);
        if energy <= self.floor * self.quiet
            && self.peak >= self.floor * self.dynamics
            && energy.is_finite()
        {
            let silent = !self.lpc.fit(&self.block);
            if silent || self.lpc.prediction_gain_db() <= NOISE_PREDICTION_GAIN_DB {
                // The windowed autocorrelation's shape at the block's energy per sample,
                // averaged over the background blocks (a first-order smoother).
                let r = self.lpc.autocorrelation();
                let scale = if silent { 0.0 } else { energy / r[0] };
                let keep = if self.r[0] > 0.0 { SMOOTHING } else { 0.0 };
                for (dst, &src) in self.r.iter_mut().zip(r) {
                    *dst = keep * *dst + (1.0 - keep) * src * scale;
                }
                for (c, e) in self.channel_energy.iter_mut().zip(&self.energy) {
                    *c = keep * *c + (1.0 - keep) * e / n;
                }
            }
        }
        self.energy.fill(0.0);
        self.filled = 0;
    }

    /// Mono autocorrelation per sample of the background (zeros when none, or digital silence).
    pub(super) fn autocorrelation(&self) -> &[f64] {
        &self.r
    }

    /// Mean energy of channel `c` in the background.
    pub(super) fn channel_energy(&self, c: usize) -> f64 {
        self.channel_energy[c]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_follows_quiet_blocks_not_loud_ones() {
        let rate = 8000;
        let mut bg = Background::new(rate, 2);
        // 1 s: loud blocks (0.5 amplitude) alternating with quiet ones (0.01) every 100 ms.
        for i in 0..100 {
            let level = if (i / 10) % 2 == 0 { 0.5f32 } else { 0.01 };
            let mut noise = super::super::lpc::Noise::new(i + 1);
            let block: Vec<f32> = (0..80)
                .flat_map(|_| {
                    let v = level * noise.next() as f32;
                    [v, 0.5 * v]
                })
                .collect();
            bg.push(&block);
        }
        let e0 = bg.channel_energy(0);
        let e1 = bg.channel_energy(1);
        assert!((e0 / 1e-4 - 1.0).abs() < 0.3, "{e0}");
        assert!((e1 / e0 - 0.25).abs() < 1e-6, "{e1}");
        assert!(bg.autocorrelation()[0] > 0.0);
        bg.reset();
        assert_eq!(bg.channel_energy(0), 0.0);
    }

    #[test]
    fn a_steady_tone_is_not_background() {
        let rate = 16000;
        let mut bg = Background::new(rate, 1);
        let tone: Vec<f32> = (0..16000)
            .map(|n| (0.5 * (n as f64 * 0.1).sin()) as f32)
            .collect();
        bg.push(&tone);
        assert_eq!(bg.channel_energy(0), 0.0);
        assert!(bg.autocorrelation().iter().all(|&r| r == 0.0));
    }
}

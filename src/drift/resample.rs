// SPDX-License-Identifier: MPL-2.0
//! Fractional resampling with a ratio that changes while running, over rubato's `Async`
//! resampler with a fixed output size.
//!
//! The caller pushes interleaved f32 input as it comes, and pulls exactly `n` output frames
//! each period at the current ratio (output rate / input rate; below 1 consumes input faster).
//! A new ratio is reached by a linear ramp across the next pulled chunk, so the ratio never
//! steps inside the audio. The resampler's start-up delay (the zeros its filter history starts
//! with) is consumed and discarded on the first push that allows it, so the first output frame
//! lines up with the first input frame.
//!
//! The read position ([`DriftResampler::read_pos`]) is tracked in input frames, fractional, so
//! the caller can measure its playout delay exactly.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Adjustable, Async, FixedAsync, PolynomialDegree, Resampler, Resizable,
    SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

/// Which interpolator rubato uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// Septic polynomial through 8 points: no anti-aliasing filter, cheapest.
    Polynomial,
    /// Windowed sinc of `len` taps (multiple of 8) with linear interpolation between 256
    /// oversampled filter phases.
    Sinc { len: usize },
}

impl Default for Interpolation {
    /// Sinc with 128 taps: flat to 20 kHz (64 taps are -3.4 dB there, 32 taps -25 dB) for
    /// about 0.2 % of a core per 48 kHz stereo stream; see `docs/drift.md`.
    fn default() -> Self {
        Interpolation::Sinc { len: 128 }
    }
}

/// The largest ratio change relative to 1 the resampler is built for (±5 %; the controller
/// uses at most ±3 %).
const MAX_RELATIVE: f64 = 1.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResampleError {
    /// Not enough input queued for the requested output.
    NotEnoughInput { needed: usize, available: usize },
    /// The output slice is not a whole number of frames, or larger than the maximum chunk.
    BadOutputSize,
}

/// Interleaved f32 resampler with a ratio that may change at any time.
pub struct DriftResampler {
    rs: Async<f32>,
    channels: usize,
    max_chunk: usize,
    chunk: usize,
    fifo: Vec<f32>,
    head: usize,
    primed: bool,
    scratch: Vec<f32>,
    pushed: u64,
    read_pos: f64,
    ratio: f64,
    last_ratio: f64,
    lookahead: usize,
}

impl DriftResampler {
    /// `channels`: 1..=8; `max_chunk`: the largest number of frames one `pull` may ask for.
    pub fn new(channels: usize, max_chunk: usize, interpolation: Interpolation) -> Self {
        assert!((1..=8).contains(&channels), "1 to 8 channels");
        let rs = match interpolation {
            Interpolation::Polynomial => Async::new_poly(
                1.0,
                MAX_RELATIVE,
                PolynomialDegree::Septic,
                max_chunk,
                channels,
                FixedAsync::Output,
            ),
            Interpolation::Sinc { len } => {
                let mut params = SincInterpolationParameters::new(len, WindowFunction::Blackman2);
                params.oversampling_factor = 256;
                params.interpolation = SincInterpolationType::Linear;
                Async::new_sinc(
                    1.0,
                    MAX_RELATIVE,
                    &params,
                    max_chunk,
                    channels,
                    FixedAsync::Output,
                )
            }
        }
        .expect("valid resampler parameters");
        let mut me = Self {
            rs,
            channels,
            max_chunk,
            chunk: max_chunk,
            fifo: Vec::with_capacity(channels * max_chunk * 8),
            head: 0,
            primed: false,
            scratch: vec![0.0; channels * max_chunk],
            pushed: 0,
            read_pos: 0.0,
            ratio: 1.0,
            last_ratio: 1.0,
            lookahead: 0,
        };
        me.lookahead = me.rs.output_delay();
        me.set_chunk(me.rs.output_delay().max(1));
        me
    }

    fn set_chunk(&mut self, n: usize) {
        if n != self.chunk {
            self.rs.set_chunk_size(n).expect("chunk within maximum");
            self.chunk = n;
        }
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Queue interleaved input (a whole number of frames).
    pub fn push(&mut self, interleaved: &[f32]) {
        debug_assert_eq!(interleaved.len() % self.channels, 0);
        if self.head > 0 && self.head * 2 > self.fifo.len() / self.channels {
            self.fifo.drain(..self.head * self.channels);
            self.head = 0;
        }
        self.fifo.extend_from_slice(interleaved);
        self.pushed += (interleaved.len() / self.channels) as u64;
        if !self.primed {
            self.prime();
        }
    }

    fn available(&self) -> usize {
        self.fifo.len() / self.channels - self.head
    }

    /// Run the filter over its start-up delay and throw that output away.
    fn prime(&mut self) {
        let delay = self.rs.output_delay();
        if delay == 0 {
            self.primed = true;
            return;
        }
        self.set_chunk(delay);
        let need = self.rs.input_frames_next();
        if self.available() < need {
            return;
        }
        let ch = self.channels;
        let input = InterleavedSlice::new(&self.fifo[self.head * ch..], ch, self.available())
            .expect("fifo holds whole frames");
        let mut out = InterleavedSlice::new_mut(&mut self.scratch[..delay * ch], ch, delay)
            .expect("scratch sized for max chunk");
        let (nin, _) = self
            .rs
            .process_into_buffer(&input, &mut out, None)
            .expect("sizes checked");
        self.head += nin;
        self.primed = true;
    }

    /// Set the ratio (output rate / input rate). Reached by a linear ramp over the next pull.
    pub fn set_ratio(&mut self, ratio: f64) {
        let r = ratio.clamp(1.0 / MAX_RELATIVE, MAX_RELATIVE);
        if r != self.ratio {
            self.ratio = r;
            self.rs
                .set_resample_ratio(r, true)
                .expect("ratio within bounds");
        }
    }

    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Input frames that must be queued (in all) before `pull` of `frames` can succeed.
    pub fn input_frames_needed(&mut self, frames: usize) -> usize {
        if !self.primed {
            // Priming first; then at least one full chunk.
            self.set_chunk(self.rs.output_delay().max(1));
            let prime = self.rs.input_frames_next();
            return prime + (frames as f64 * MAX_RELATIVE) as usize + 16;
        }
        self.set_chunk(frames.clamp(1, self.max_chunk));
        self.rs.input_frames_next()
    }

    /// Input frames the filter reads ahead of the read position (half its length).
    pub fn lookahead_frames(&self) -> usize {
        self.lookahead
    }

    /// Input frames queued and not yet handed to the filter.
    pub fn queued_frames(&self) -> usize {
        self.available()
    }

    /// Position of the next output frame in input frames since the first pushed frame.
    pub fn read_pos(&self) -> f64 {
        self.read_pos
    }

    /// Input frames pushed in all.
    pub fn pushed_frames(&self) -> u64 {
        self.pushed
    }

    /// Write exactly `out.len() / channels` frames at the current ratio.
    pub fn pull(&mut self, out: &mut [f32]) -> Result<(), ResampleError> {
        let ch = self.channels;
        let frames = out.len() / ch;
        if !out.len().is_multiple_of(ch) || frames == 0 || frames > self.max_chunk {
            return Err(ResampleError::BadOutputSize);
        }
        let needed = self.input_frames_needed(frames);
        if !self.primed || self.available() < needed {
            return Err(ResampleError::NotEnoughInput {
                needed,
                available: self.available(),
            });
        }
        let input = InterleavedSlice::new(&self.fifo[self.head * ch..], ch, self.available())
            .expect("fifo holds whole frames");
        let mut output = InterleavedSlice::new_mut(out, ch, frames).expect("checked size");
        let (nin, nout) = self
            .rs
            .process_into_buffer(&input, &mut output, None)
            .expect("sizes checked");
        debug_assert_eq!(nout, frames);
        self.head += nin;
        // The ramp goes linearly in time-step (1 / ratio) across the chunk.
        self.read_pos += frames as f64 * 0.5 * (1.0 / self.last_ratio + 1.0 / self.ratio);
        self.last_ratio = self.ratio;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::drift::sim::thd_n_db;
    use std::f64::consts::TAU;

    const RATE: f64 = 48_000.0;

    /// Drives `frames_out` output frames of a sine through the resampler with the ratio given
    /// per 10 ms chunk, returning the output (channel 0).
    fn run(
        interp: Interpolation,
        freq: f64,
        chunks: usize,
        ratio_at: impl Fn(usize) -> f64,
    ) -> (Vec<f32>, DriftResampler) {
        let mut rs = DriftResampler::new(2, 480, interp);
        let mut fed = 0u64;
        let mut out = vec![];
        let mut buf = vec![0.0f32; 960];
        for k in 0..chunks {
            rs.set_ratio(ratio_at(k));
            while (rs.queued_frames() as u64) < rs.input_frames_needed(480) as u64 || fed == 0 {
                let pkt: Vec<f32> = (fed..fed + 480)
                    .flat_map(|i| {
                        let s = (TAU * freq * i as f64 / RATE).sin() as f32 * 0.5;
                        [s, -s]
                    })
                    .collect();
                rs.push(&pkt);
                fed += 480;
            }
            rs.pull(&mut buf).unwrap();
            out.extend(buf.chunks(2).map(|f| {
                assert_eq!(f[0], -f[1]);
                f[0]
            }));
        }
        (out, rs)
    }

    #[test]
    fn sine_at_ratio_1_001_keeps_thd_n_low() {
        for (interp, f, limit) in [
            (Interpolation::default(), 1000.0, -80.0),
            (Interpolation::default(), 10_000.0, -60.0),
            (Interpolation::Polynomial, 1000.0, -80.0),
        ] {
            let (out, _) = run(interp, f, 200, |_| 1.001);
            // Output frequency is the input frequency divided by the ratio.
            let thd = thd_n_db(&out[4800..], f / 1.001 / RATE);
            assert!(thd < limit, "{interp:?} {f} Hz: {thd:.1} dB");
        }
    }

    #[test]
    fn first_output_lines_up_with_first_input() {
        let (out, rs) = run(Interpolation::default(), 1000.0, 10, |_| 1.0);
        // Priming removed the filter delay: the output is the input sine from frame 0, give or
        // take one frame (rubato's delay is the filter half-length rounded).
        let err = |lag: f64| {
            out.iter()
                .enumerate()
                .skip(40)
                .take(2000)
                .map(|(n, y)| {
                    let want = (TAU * 1000.0 * (n as f64 - lag) / RATE).sin() * 0.5;
                    (*y as f64 - want).abs()
                })
                .fold(0.0, f64::max)
        };
        let best = (-20..=20)
            .map(|l| l as f64 * 0.1)
            .min_by(|a, b| err(*a).total_cmp(&err(*b)))
            .unwrap();
        assert!(best.abs() <= 1.0, "lag {best}");
        assert!(err(best) < 0.01, "{}", err(best));
        // And the leading frames are not the zeros of an unprimed filter.
        assert!(out[10..40].iter().any(|y| y.abs() > 0.2));
        assert!((rs.read_pos() - 4800.0).abs() < 1e-6);
    }

    #[test]
    fn ratio_ramps_cause_no_discontinuity() {
        // Swing the ratio by ±2 % back and forth in big steps per chunk: each step is ramped
        // across the chunk, so the output stays a smooth sine whose sample-to-sample change
        // never exceeds that of the fastest allowed pitch (plus filter ripple).
        let f = 2000.0;
        let (out, rs) = run(Interpolation::default(), f, 400, |k| match (k / 50) % 4 {
            0 => 1.0,
            1 => 1.02,
            2 => 1.0,
            _ => 0.98,
        });
        let max_step = TAU * f * 1.03 / RATE * 0.5;
        let mut worst: f64 = 0.0;
        for w in out[100..].windows(3) {
            let d2 = (w[2] as f64 - 2.0 * w[1] as f64 + w[0] as f64).abs();
            let d1 = (w[1] as f64 - w[0] as f64).abs();
            assert!(d1 <= max_step * 1.01, "{d1} > {max_step}");
            worst = worst.max(d2);
        }
        // Second difference of a sine: amplitude * w^2; a click would be orders larger.
        let w = TAU * f * 1.03 / RATE;
        assert!(worst <= 0.5 * w * w * 1.05, "{worst} vs {}", 0.5 * w * w);
        // The read position integrates the ratios: about 400 chunks of 480 frames.
        let expect: f64 = (0..400)
            .map(|k| match (k / 50) % 4 {
                0 | 2 => 480.0,
                1 => 480.0 / 1.02,
                _ => 480.0 / 0.98,
            })
            .sum();
        assert!((rs.read_pos() - expect).abs() < 40.0, "{}", rs.read_pos());
    }

    #[test]
    fn pull_without_input_is_refused() {
        let mut rs = DriftResampler::new(1, 480, Interpolation::default());
        let mut out = vec![0.0; 480];
        assert!(matches!(
            rs.pull(&mut out),
            Err(ResampleError::NotEnoughInput { .. })
        ));
        assert_eq!(rs.pull(&mut out[..0]), Err(ResampleError::BadOutputSize));
    }
}

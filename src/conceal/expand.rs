// SPDX-License-Identifier: MPL-2.0
//! The `expand` concealment: pitch repetition mixed with LPC-shaped noise, a mute slope that
//! steepens with the length of the loss, and a hand-over to comfort noise shaped like the
//! background.
//!
//! Per concealed frame and channel `c`:
//! ```text
//! out = g(t) * (wv(t) * voiced[c] + wn(t) * k[c] * noise) + sqrt(1 - g(t)^2) * kb[c] * comfort
//! ```
//! * `voiced` is the one-period loop of [`Stretch`] at full level (with its start-edge
//!   correction and seam).
//! * `noise` is white noise through the all-pole model of the newest [`LPC_WINDOW_MS`] of the
//!   history (mono mix), its filter primed with the newest output, scaled to the history's
//!   level (or to its newest [`TAIL_MS`] when those are 3 dB quieter: a sound that was
//!   ending); `k[c]` restores each channel's own level.
//! * The mix follows the voicing `v` measured by the pitch search (normalized correlation,
//!   mapped from [`UNVOICED`]..[`VOICED`] to 0..1): `wv = sqrt(v)`, `wn = sqrt(1 - v)` (equal
//!   energy for uncorrelated parts). Both parts continue the last sample (the loop through its
//!   start-edge correction, the noise through its primed filter), so during the first
//!   [`START_RAMP_MS`] the weights move from a sum of 1 to equal power. The stretch itself
//!   starts from the history's own prediction: the zero-input response of a longer model of
//!   the same window (3 ms of memory, [`lpc::prediction_order_for`]), per channel, cross-faded
//!   into the mix over [`START_RAMP_MS`].
//! * `g(t)` is 1 for [`FULL_LEVEL_MS`], then falls by `SLOPE_DB * u + SLOPE_GROWTH_DB * u^2` dB
//!   (`u` in 10 ms steps after the full-level time): the longer the loss, the steeper. It
//!   reaches 0 continuously at [`SILENT_DB`]. When the history's level was falling (its newest
//!   10 ms more than 2 dB below the 10 ms before), that decline goes on from the first sample.
//! * `comfort` is noise through the model of the last background block (see `background.rs`),
//!   at the background's level per channel, never louder than the recent history. With a
//!   digitally silent background it is silence.
//! * Every output is limited to the largest magnitude of its channel's history, and during the
//!   first [`START_LIMIT_MS`] to a limit rising from 1.2 times the peak of its newest
//!   [`RECENT_PEAK_MS`] (no burst at the start when older, louder audio is repeated).

use super::background::Background;
use super::lpc::{self, Lpc, Noise, Synth};
use super::substitution::Stretch;
use super::{Rise, ms_to_frames, peak, saturate};

/// Loss time at full level.
pub(super) const FULL_LEVEL_MS: f32 = 10.0;
/// Mute slope: the first 10 ms after the full-level time lose this much (dB)...
const SLOPE_DB: f64 = 1.0;
/// ...and every further 10 ms loses this much more than the one before (dB).
const SLOPE_GROWTH_DB: f64 = 0.5;
/// Attenuation at which the concealment stops (exact zeros, or comfort noise only). The
/// slope's level is lowered by this floor so it reaches 0 continuously.
const SILENT_DB: f64 = 30.0;
/// Time over which the mix moves from the pure loop to the voicing's mix.
pub(super) const START_RAMP_MS: f32 = 2.5;
/// The loop stays one period long: the noise mix, not a wider loop, keeps long losses from
/// buzzing, and a one-period seam matches best.
const WIDEST_LOOP: usize = 1;
/// Share of the history's falling level (newest 10 ms against the 10 ms before, in dB)
/// continued per 10 ms into the concealment: a word that was ending keeps ending...
const TREND_SHARE: f64 = 1.0;
/// ...beyond this much (level fluctuations of steady sounds are not a trend)...
const TREND_DEADBAND_DB: f64 = 2.0;
/// ...by at most this much per 10 ms.
const TREND_MAX_DB: f64 = 10.0;
/// The level is evaluated every this many frames and interpolated in between.
const LEVEL_STEP: usize = 32;
/// The output starts limited to `START_HEADROOM` times the peak of the newest
/// `RECENT_PEAK_MS`, a limit that rises to the history's peak over `START_LIMIT_MS`.
const RECENT_PEAK_MS: f32 = 2.5;
const START_HEADROOM: f64 = 1.2;
const START_LIMIT_MS: f32 = 5.0;
/// The noise takes the level of the newest this many ms of the history...
const TAIL_MS: f32 = 5.0;
/// ...when it is this much (energy ratio, -3 dB) below the window's: a sound that was ending.
const TAIL_DROP: f64 = 0.5;
/// History analysed for the noise model and the level.
pub(super) const LPC_WINDOW_MS: f32 = 20.0;
/// The envelope limiter: the output is rendered in blocks of this length, one block ahead...
const LIMIT_BLOCK_MS: f32 = 1.0;
/// ...and no block's RMS may exceed the largest RMS of a block-long window in the newest
/// this many ms of the history, per channel.
const ENVELOPE_MS: f32 = 10.0;
/// The lowest gain the join with the history may ask for.
const JOIN_MIN_GAIN: f64 = 0.5;
/// Correlation at or below which the history is taken as unvoiced (noise only)...
const UNVOICED: f32 = 0.2;
/// ...and at or above which as voiced (loop only).
const VOICED: f32 = 0.6;

#[derive(Debug)]
pub(super) struct Expand {
    slope_db: f64,
    growth_db: f64,
    /// Decline of the history's level (dB per 10 ms) continued into the concealment.
    trend_db: f64,
    trend_k: f64,
    unvoiced: f32,
    voiced_at: f32,
    channels: usize,
    full_level: usize,
    /// Frames per 10 ms, the slope's unit.
    slope_unit: f64,
    silent_at: usize,
    stretch: Stretch,
    lpc: Lpc,
    noise_synth: Synth,
    /// The longer predictor (3 ms of memory) of the same window whose zero-input response
    /// starts the stretch.
    prediction: Lpc,
    /// Per channel: the zero-input response that starts the stretch, and whether it is used.
    rings: Vec<Synth>,
    ringing: bool,
    comfort_synth: Synth,
    noise: Noise,
    start_ramp: Rise,
    window: usize,
    /// The newest part of the window whose level caps the noise's.
    tail: usize,
    /// Mono mix of the analysis window.
    mono: Vec<f32>,
    /// One channel of the newest window (multichannel only), for its own prediction model.
    channel_window: Vec<f32>,
    voiced_weight: f64,
    noise_weight: f64,
    /// Excitation level of the noise (mono) and of the comfort noise.
    noise_excitation: f64,
    comfort_excitation: f64,
    /// Per channel: noise and comfort noise gains, peak of the history.
    noise_gain: Vec<f64>,
    comfort_gain: Vec<f64>,
    peaks: Vec<f64>,
    /// Per channel: peak of the newest `recent` frames, and the time over which the output's
    /// limit rises from it to `peaks`.
    recent_peaks: Vec<f64>,
    recent: usize,
    limit_len: usize,
    /// Scratch for one frame of the loop, and for one frame of the output.
    voiced: Vec<f32>,
    voiced_out: Vec<f64>,
    elapsed: usize,
    /// `stepped_level`'s current block and the levels at its ends.
    level_block: Option<usize>,
    level_ends: (f64, f64),
    comfort: bool,
    /// Frames after which only zeros (or comfort noise) come out in this stretch.
    silent_from: usize,
    /// The mute slope stays at its level of this frame (see [`Expand::hold_slope`]).
    held: Option<usize>,
    /// The loop's start-edge correction length (a stretch with nothing else ends after it).
    correction_len: usize,
    /// Envelope limiter: block length, the history's envelope per channel, the two rendered
    /// blocks (interleaved: the one being read, then the next), each block's gain per channel
    /// (`[current, next]`), the gain at the current block's start per channel, the read
    /// position in the current block (`block` when a new one is due), frames output.
    block: usize,
    envelope_len: usize,
    caps: Vec<f64>,
    ahead: Vec<f64>,
    gains: Vec<[f64; 2]>,
    gain_from: Vec<f64>,
    read: usize,
    primed: bool,
    emitted: usize,
}

impl Expand {
    pub(super) fn new(rate: u32, channels: usize) -> Self {
        let window = ms_to_frames(LPC_WINDOW_MS, rate).max(1);
        let lpc = Lpc::new(rate, window);
        let order = lpc.order();
        let prediction = Lpc::with_order(rate, window, lpc::prediction_order_for(rate));
        let prediction_order = prediction.order();
        let ramp = ms_to_frames(START_RAMP_MS, rate).max(1);
        let mut start_ramp = Rise::with_capacity(ramp);
        start_ramp.set_len(ramp);
        let slope_unit = f64::from(rate) / 100.0;
        // Solve SLOPE_DB u + SLOPE_GROWTH_DB u^2 = SILENT_DB for u.
        let (b, c) = (SLOPE_DB, SLOPE_GROWTH_DB);
        let u = (-b + (b * b + 4.0 * c * SILENT_DB).sqrt()) / (2.0 * c);
        let full_level = ms_to_frames(FULL_LEVEL_MS, rate);
        Self {
            slope_db: b,
            growth_db: c,
            trend_db: 0.0,
            trend_k: TREND_SHARE,
            unvoiced: UNVOICED,
            voiced_at: VOICED,
            channels,
            full_level,
            slope_unit,
            silent_at: full_level + (u * slope_unit).ceil() as usize,
            stretch: Stretch::with_options(rate, channels, false, WIDEST_LOOP),
            lpc,
            noise_synth: Synth::new(order),
            prediction,
            rings: (0..channels)
                .map(|_| Synth::new(prediction_order))
                .collect(),
            ringing: false,
            comfort_synth: Synth::new(order),
            noise: Noise::new(0x2545_f491),
            start_ramp,
            window,
            tail: ms_to_frames(TAIL_MS, rate).max(1),
            mono: vec![0.0; window],
            channel_window: vec![0.0; if channels > 1 { window } else { 0 }],
            voiced_weight: 1.0,
            noise_weight: 0.0,
            noise_excitation: 0.0,
            comfort_excitation: 0.0,
            noise_gain: vec![0.0; channels],
            comfort_gain: vec![0.0; channels],
            peaks: vec![0.0; channels],
            recent_peaks: vec![0.0; channels],
            recent: ms_to_frames(RECENT_PEAK_MS, rate).max(1),
            limit_len: ms_to_frames(START_LIMIT_MS, rate).max(1),
            voiced: vec![0.0; channels],
            voiced_out: vec![0.0; channels],
            elapsed: 0,
            level_block: None,
            level_ends: (1.0, 1.0),
            comfort: false,
            silent_from: 0,
            held: None,
            correction_len: ms_to_frames(super::substitution::START_CORRECTION_MS, rate).max(1),
            block: ms_to_frames(LIMIT_BLOCK_MS, rate).max(1),
            envelope_len: ms_to_frames(ENVELOPE_MS, rate).max(1),
            caps: vec![0.0; channels],
            ahead: vec![0.0; 2 * ms_to_frames(LIMIT_BLOCK_MS, rate).max(1) * channels],
            gains: vec![[1.0; 2]; channels],
            gain_from: vec![1.0; channels],
            read: 0,
            primed: false,
            emitted: 0,
        }
    }

    /// Starts a stretch continuing `snapshot` (interleaved, oldest first, the newest `available`
    /// frames real output) with a loop of `period` frames, `score` the pitch correlation.
    pub(super) fn start(
        &mut self,
        snapshot: &[f32],
        available: usize,
        period: Option<usize>,
        score: f32,
        background: &Background,
    ) {
        let ch = self.channels;
        let frames = snapshot.len() / ch;

        self.elapsed = 0;
        self.level_block = None;
        self.held = None;
        self.emitted = 0;
        self.primed = false;
        self.read = self.block;
        let v = match period {
            Some(_) => f64::from(
                ((score - self.unvoiced) / (self.voiced_at - self.unvoiced)).clamp(0.0, 1.0),
            ),
            None => 0.0,
        };
        self.voiced_weight = v.sqrt();
        // The level trend: the newest 10 ms against the 10 ms before.
        let unit = self.slope_unit.round() as usize;
        self.trend_db = 0.0;
        if self.trend_k > 0.0 && available >= 2 * unit && snapshot.len() / self.channels >= 2 * unit
        {
            let frames = snapshot.len() / self.channels;
            let e = |from: usize| -> f64 {
                snapshot[from * self.channels..(from + unit) * self.channels]
                    .iter()
                    .map(|&x| f64::from(x) * f64::from(x))
                    .sum()
            };
            let (older, newer) = (e(frames - 2 * unit), e(frames - unit));
            if newer > 0.0 {
                let decline = 10.0 * (older / newer).log10() - TREND_DEADBAND_DB;
                self.trend_db = (self.trend_k * decline).clamp(0.0, TREND_MAX_DB);
            }
        }
        self.noise_weight = (1.0 - v).sqrt();

        let avail = available.min(frames);
        let peak_of = |n: usize, c: usize| peak(&snapshot[(frames - n) * ch..], ch, c);
        for c in 0..ch {
            self.peaks[c] = peak_of(avail, c);
            self.recent_peaks[c] = peak_of(self.recent.min(avail), c);
            // A history shorter than the envelope's window has no reliable envelope: the
            // start limit alone applies then.
            self.caps[c] = if avail >= self.envelope_len {
                envelope(snapshot, ch, c, self.envelope_len, self.block)
            } else {
                f64::INFINITY
            };
        }

        // Noise model of the newest window (mono), and each channel's level in it. A history
        // shorter than the window gives no reliable model: no noise then.
        let n = if avail >= self.window { self.window } else { 0 };
        let recent = &snapshot[(frames - n) * ch..];
        let share = 1.0 / ch as f32;
        let mono = &mut self.mono[..n];
        for (m, frame) in mono.iter_mut().zip(recent.chunks_exact(ch)) {
            *m = frame.iter().map(|&s| s * share).sum();
        }
        let energy = |it: &mut dyn Iterator<Item = f32>| -> f64 {
            it.map(|x| f64::from(x) * f64::from(x)).sum::<f64>() / n.max(1) as f64
        };
        let mono_energy = energy(&mut mono.iter().copied());
        // Mono: the start's longer predictor fits this same window, and the noise model is
        // solved from the first lags of its autocorrelation (the same numbers `fit` would
        // compute), so the window is correlated once, not twice.
        let shared = ch == 1 && n > self.prediction.order();
        let fitted = n > 0
            && mono_energy > 1e-20
            && if shared {
                self.prediction.fit(mono);
                let lags = self.lpc.order() + 1;
                self.lpc
                    .fit_autocorrelation(&self.prediction.autocorrelation()[..lags])
            } else {
                self.lpc.fit(mono)
            };
        if !fitted {
            // Nothing to mix in: the loop (or the fade of the last sample) alone.
            self.voiced_weight = 1.0;
            self.noise_weight = 0.0;
        }
        if fitted {
            let gain = self.lpc.power_gain();
            // The level of the newest few ms if lower (a sound that was ending).
            let tail = self.tail.min(n);
            let tail_energy = mono[n - tail..]
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                / tail.max(1) as f64;
            let level = if tail_energy < TAIL_DROP * mono_energy {
                tail_energy
            } else {
                mono_energy
            };
            self.noise_excitation = (level / gain).sqrt();
            self.noise_synth
                .load(&self.lpc, mono.iter().map(|&x| f64::from(x)));
        } else {
            self.noise_excitation = 0.0;
            self.noise_synth.load(&self.lpc, std::iter::empty());
        }
        let recent = &snapshot[(frames - avail.min(self.window)) * ch..];
        let m = recent.len() / ch;
        // Starting: the history's own prediction (per channel, the zero-input response of that
        // channel's own model, primed with its newest samples) continues every detail of the
        // waveform and is cross-faded into the mix; without a model, the loop's start-edge
        // correction joins it in. Each channel has its own model: a model of the mix would
        // also learn the comb of delays between channels (spaced microphones), which no
        // channel has.
        self.ringing = fitted;
        if fitted {
            for (c, ring) in self.rings.iter_mut().enumerate() {
                if ch == 1 {
                    if !shared {
                        self.prediction.fit(mono);
                    }
                } else {
                    let window = &mut self.channel_window[..n];
                    for (w, frame) in window.iter_mut().zip(recent.chunks_exact(ch)) {
                        *w = frame[c];
                    }
                    // A silent channel gets a flat model: its prediction is silence.
                    self.prediction.fit(window);
                }
                ring.load(
                    &self.prediction,
                    snapshot.iter().skip(c).step_by(ch).map(|&x| f64::from(x)),
                );
            }
        }
        // A loop louder than the newest few ms of the history (a sound that was ending, with
        // a loud older period) plays at the newest level.
        let scale = match period {
            Some(p) if p <= available => {
                let level = |n: usize| {
                    snapshot[(frames - n) * ch..]
                        .iter()
                        .map(|&x| f64::from(x) * f64::from(x))
                        .sum::<f64>()
                        / n as f64
                };
                let (tail, looped) = (level(self.tail.min(available)), level(p));
                if looped > 0.0 && tail < looped {
                    (tail / looped).sqrt()
                } else {
                    1.0
                }
            }
            _ => 1.0,
        };
        self.stretch.set_scale(scale, !fitted);
        self.stretch.start(snapshot, available, period);
        for c in 0..ch {
            let e = recent
                .iter()
                .skip(c)
                .step_by(ch)
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                / m.max(1) as f64;
            self.noise_gain[c] = if fitted {
                (e / mono_energy).sqrt().min(1e3)
            } else {
                0.0
            };
            // Comfort noise: the background's level, never above the recent level.
            self.comfort_gain[c] = background.channel_energy(c).min(e);
        }

        // Comfort noise model.
        let r = background.autocorrelation();
        self.comfort = r[0] > 1e-20 && self.lpc.fit_autocorrelation(r);
        if self.comfort {
            let gain = self.lpc.power_gain();
            self.comfort_excitation = (r[0] / gain).sqrt();
            self.comfort_synth.load(&self.lpc, std::iter::empty());
            for g in &mut self.comfort_gain {
                *g = (*g / r[0]).sqrt().min(1e3);
            }
            // Prime the filter so the comfort noise starts in its steady state.
            for _ in 0..4 * self.lpc.order() {
                let e = self.noise.next() * self.comfort_excitation;
                self.comfort_synth.next(e);
            }
        } else {
            self.comfort_gain.fill(0.0);
        }
        self.silent_from = if period.is_none() && !fitted {
            self.correction_len
        } else {
            self.silent_at
        };
    }

    pub(super) fn period(&self) -> Option<usize> {
        self.stretch.period()
    }

    /// Stops the mute slope where it is now (the level trend goes on): the two-sided
    /// concealment knows where the loss ends and fades this stretch out by itself.
    pub(super) fn hold_slope(&mut self) {
        if self.held.is_none() && self.elapsed < self.silent_from.min(self.silent_at) {
            self.held = Some(self.elapsed);
            if self.silent_from == self.silent_at {
                self.silent_from = usize::MAX;
            }
            self.level_block = None;
        }
    }

    /// Level of the concealment relative to the history (0 once faded).
    pub(super) fn level(&self) -> f64 {
        self.level_at(self.emitted)
    }

    fn level_at(&self, t: usize) -> f64 {
        let trend = 10f64.powf(-self.trend_db * t as f64 / self.slope_unit / 20.0);
        trend * self.slope_level(t)
    }

    /// The level at the current frame, evaluated every [`LEVEL_STEP`] frames and linearly
    /// interpolated in between (exact at those frames, and 0 from the silent one on).
    fn stepped_level(&mut self) -> f64 {
        let t = self.elapsed;
        if t >= self.silent_from {
            return 0.0;
        }
        let k = t / LEVEL_STEP;
        if self.level_block != Some(k) {
            self.level_block = Some(k);
            self.level_ends = (
                self.level_at(k * LEVEL_STEP),
                self.level_at((k + 1) * LEVEL_STEP),
            );
        }
        let w = (t % LEVEL_STEP) as f64 / LEVEL_STEP as f64;
        self.level_ends.0 + (self.level_ends.1 - self.level_ends.0) * w
    }

    fn slope_level(&self, t: usize) -> f64 {
        let t = self.held.map_or(t, |h| t.min(h));
        if t >= self.silent_from {
            0.0
        } else if t < self.full_level {
            1.0
        } else if t >= self.silent_at.min(self.silent_from) {
            0.0
        } else {
            let u = (t - self.full_level) as f64 / self.slope_unit;
            let db = self.slope_db * u + self.growth_db * u * u;
            let floor = 10f64.powf(-SILENT_DB / 20.0);
            ((10f64.powf(-db / 20.0) - floor) / (1.0 - floor)).max(0.0)
        }
    }

    /// True once only zeros come out.
    pub(super) fn is_silent(&self) -> bool {
        self.emitted >= self.silent_from && !self.comfort
    }

    /// Writes the next concealed frame into `frame` (one sample per channel): the rendered
    /// output, one block behind the renderer, under a gain that keeps every block's RMS within
    /// the history's envelope. The gain moves linearly across a block from the smaller of its
    /// neighbours' gains at each end, so it never exceeds the block's own and has no steps; it
    /// starts at 1 (the stretch continues the history's last sample).
    pub(super) fn next_frame(&mut self, snapshot: &[f32], frame: &mut [f32]) {
        let (ch, n) = (self.channels, self.block);
        if !self.primed {
            self.primed = true;
            self.render_block(snapshot, true);
            self.limit_join(snapshot);
            self.gain_from.fill(1.0);
            self.read = n;
        }
        if self.read == n {
            // The next block becomes the current one; render the one after it.
            self.ahead.copy_within(n * ch..2 * n * ch, 0);
            if self.emitted > 0 {
                for (from, g) in self.gain_from.iter_mut().zip(&self.gains) {
                    *from = g[0].min(g[1]);
                }
            }
            for g in &mut self.gains {
                g[0] = g[1];
            }
            self.render_block(snapshot, false);
            self.read = 0;
        }
        // The first block leaves the history's gain of 1 within three quarters of a block.
        let w = if self.emitted < n {
            ((self.read + 1) as f64 / self.first_ramp() as f64).min(1.0)
        } else {
            (self.read + 1) as f64 / n as f64
        };
        for (c, out) in frame.iter_mut().enumerate() {
            let [cur, next] = self.gains[c];
            let from = self.gain_from[c];
            let gain = from + (cur.min(next) - from) * w;
            *out = saturate(self.ahead[self.read * ch + c] * gain);
        }
        self.read += 1;
        self.emitted = self.emitted.saturating_add(1);
    }

    /// Renders the next block into the second half of `ahead` and its limiter gain per channel
    /// (`first`: the stretch's first block, the first half holds nothing of it).
    fn render_block(&mut self, snapshot: &[f32], first: bool) {
        let (ch, n) = (self.channels, self.block);
        let mut frame = std::mem::take(&mut self.voiced_out);
        for i in 0..n {
            self.render_frame(snapshot, &mut frame);
            let at = (n + i) * ch;
            self.ahead[at..at + ch].copy_from_slice(&frame);
        }
        self.voiced_out = frame;
        for c in 0..ch {
            // The loudest block-long window ending in the new block (starting in the previous
            // one or at the new one's start).
            let x2 = |i: usize| self.ahead[i * ch + c].powi(2);
            let mut sum: f64 = (n..2 * n).map(x2).sum();
            let mut loudest = sum;
            if !first {
                sum = (0..n).map(x2).sum();
                for s in 1..n {
                    sum += x2(s + n - 1) - x2(s - 1);
                    loudest = loudest.max(sum);
                }
            }
            let rms = (loudest.max(0.0) / n as f64).sqrt();
            self.gains[c][1] = if rms > self.caps[c] {
                self.caps[c] / rms
            } else {
                1.0
            };
        }
    }

    /// Lowers the first block's gain so that no block-long window across the join (the
    /// history's newest frames, then the first rendered ones under the gain's ramp from 1) exceeds
    /// the envelope either: the stretch continues the last samples, and holding a peak there
    /// would stand out. The gain stays at least [`JOIN_MIN_GAIN`] (no steep ramp).
    fn limit_join(&mut self, snapshot: &[f32]) {
        let (ch, n) = (self.channels, self.block);
        let frames = snapshot.len() / ch;
        let ramp = self.first_ramp();
        for c in 0..ch {
            let target = self.caps[c] * self.caps[c] * n as f64;
            for j in [0, n / 4, n / 2, 3 * n / 4] {
                if j > frames || !target.is_finite() {
                    continue;
                }
                let history: f64 = snapshot[(frames - j) * ch..]
                    .iter()
                    .skip(c)
                    .step_by(ch)
                    .map(|&x| f64::from(x) * f64::from(x))
                    .sum();
                // The window's energy with the ramp's weights w: history + sum r^2 ((1-w) + g w)^2
                // = history + a g^2 + 2 b g + k.
                let (mut a, mut b, mut k) = (0.0, 0.0, 0.0);
                for i in 0..n - j {
                    let r2 = self.ahead[(n + i) * ch + c].powi(2);
                    let w = ((i + 1) as f64 / ramp as f64).min(1.0);
                    a += r2 * w * w;
                    b += r2 * w * (1.0 - w);
                    k += r2 * (1.0 - w) * (1.0 - w);
                }
                if history + a + 2.0 * b + k <= target || a <= 0.0 {
                    continue;
                }
                let d = b * b - a * (history + k - target);
                let g = if d >= 0.0 { (-b + d.sqrt()) / a } else { 0.0 };
                self.gains[c][1] = self.gains[c][1].min(g.max(JOIN_MIN_GAIN));
            }
        }
    }

    /// Length of the first block's ramp from the history's gain of 1.
    fn first_ramp(&self) -> usize {
        (3 * self.block / 4).max(1)
    }

    /// The next frame of the concealment before the envelope limiter.
    fn render_frame(&mut self, snapshot: &[f32], frame: &mut [f64]) {
        let g = self.stepped_level();
        if g == 0.0 && !self.comfort {
            frame.fill(0.0);
            self.elapsed = self.elapsed.saturating_add(1);
            return;
        }
        // Both parts continue the last sample (the loop through its start-edge correction, the
        // noise through its primed filter): their weights start normalized to a sum of 1 and
        // move to equal power.
        let ramp = f64::from(self.start_ramp.at(self.elapsed));
        let (a, b) = (self.voiced_weight, self.noise_weight);
        let ringing = self.ringing && self.elapsed < self.start_ramp.len();
        let (wv, wn) = if self.ringing {
            (a, b)
        } else {
            let norm = (a + b) + (1.0 - (a + b)) * ramp;
            (a / norm, b / norm)
        };
        let noise = if g > 0.0 && wn > 0.0 && self.noise_excitation > 0.0 {
            let e = self.noise.next() * self.noise_excitation;
            self.noise_synth.next(e)
        } else {
            0.0
        };
        let comfort_w = (1.0 - g * g).max(0.0).sqrt();
        let comfort = if self.comfort && comfort_w > 0.0 {
            let e = self.noise.next() * self.comfort_excitation;
            self.comfort_synth.next(e)
        } else {
            0.0
        };
        if g > 0.0 {
            self.stretch.next_frame(snapshot, &mut self.voiced);
        }
        for (c, out) in frame.iter_mut().enumerate() {
            let mut expanded = if g > 0.0 {
                wv * f64::from(self.voiced[c]) + wn * self.noise_gain[c] * noise
            } else {
                0.0
            };
            if ringing {
                expanded = (1.0 - ramp) * self.rings[c].next(0.0) + ramp * expanded;
            }
            let v = g * expanded + comfort_w * self.comfort_gain[c] * comfort;
            // The start may not jump above the newest peak (the loop and the noise model may
            // hold louder, older audio): the limit rises from it to the history's peak.
            let peak = if self.elapsed < self.limit_len {
                let w = self.elapsed as f64 / self.limit_len as f64;
                let recent = START_HEADROOM * self.recent_peaks[c];
                (recent + (self.peaks[c] - recent) * w).min(self.peaks[c])
            } else {
                self.peaks[c]
            };
            *out = v.clamp(-peak, peak);
        }
        self.elapsed = self.elapsed.saturating_add(1);
    }
}

/// The largest RMS of a `block`-frame window (at every position) of channel `c` in the newest
/// `len` frames of `snapshot` (interleaved, `ch` channels).
fn envelope(snapshot: &[f32], ch: usize, c: usize, len: usize, block: usize) -> f64 {
    let frames = snapshot.len() / ch;
    let len = len.min(frames);
    let sample = |i: usize| f64::from(snapshot[(frames - len + i) * ch + c]).powi(2);
    let block = block.min(len).max(1);
    if len < block {
        return 0.0;
    }
    let mut sum: f64 = (0..block).map(sample).sum();
    let mut best = sum;
    for i in block..len {
        sum += sample(i) - sample(i - block);
        best = best.max(sum);
    }
    (best.max(0.0) / block as f64).sqrt()
}

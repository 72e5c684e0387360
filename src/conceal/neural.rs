// SPDX-License-Identifier: MPL-2.0
//! The `neural` concealment: libopus 1.6's deep PLC on PCM.
//!
//! The bundled libopus (opusic-sys) contains the deep PLC that Opus's decoder uses: a GRU
//! predicts LPCNet features for the missing frames from the features of the recent audio, and
//! FARGAN synthesizes speech from them. It works on 10 ms frames of 16 kHz mono `i16` PCM: every
//! real frame is handed to it (`lpcnet_plc_update`, which only stores it; the analysis is done
//! when a loss starts), and every missing frame is synthesized (`lpcnet_plc_conceal`).
//!
//! These are libopus's internal functions (exported by its static library, not declared in its
//! public headers); the state is opaque here, allocated with a margin over its size in the
//! pinned version. Only 16 kHz mono streams use it; the concealer falls back to `Expand`
//! otherwise.

use std::os::raw::{c_int, c_void};

use super::lpc::{Lpc, Synth};

// Links the bundled libopus that holds the functions below.
use opusic_sys as _;

unsafe extern "C" {
    fn lpcnet_plc_init(st: *mut c_void) -> c_int;
    fn lpcnet_plc_reset(st: *mut c_void);
    fn lpcnet_plc_update(st: *mut c_void, pcm: *mut i16) -> c_int;
    fn lpcnet_plc_conceal(st: *mut c_void, pcm: *mut i16) -> c_int;
}

/// `sizeof(LPCNetPLCState)` in libopus 1.6 as built by opusic-sys 0.7.7 (67992 bytes),
/// allocated four times over in case a build lays it out larger.
const STATE_BYTES: usize = 4 * 67_992;
/// The model's frame: 10 ms at 16 kHz.
pub(super) const FRAME: usize = 160;
/// The only rate the model runs at.
pub(super) const RATE: u32 = 16_000;
/// History the start's predictor is fitted to (20 ms).
const RING_WINDOW: usize = 320;

#[derive(Debug)]
pub(super) struct Neural {
    /// The opaque `LPCNetPLCState` (16-byte aligned).
    state: Box<[u128]>,
    /// Real samples of the frame being collected for the model.
    pending: [i16; FRAME],
    fill: usize,
    /// Real samples still belonging to the last synthesized frame (not handed to the model).
    skip: usize,
    /// The synthesized frame being played and the position in it.
    frame: [i16; FRAME],
    pos: usize,
    /// Real audio starts at the current position: frames synthesized from now on are ahead of
    /// it in the model's memory.
    marked: bool,
    /// The start of a stretch: the history's own prediction (an LPC model's zero-input
    /// response), cross-faded into the model's output.
    lpc: Lpc,
    ring: Synth,
    ringing: bool,
}

impl Neural {
    pub(super) fn new() -> Self {
        let mut state = vec![0u128; STATE_BYTES / 16].into_boxed_slice();
        // SAFETY: `state` is zeroed, writable, 16-byte aligned and larger than the C struct.
        let ret = unsafe { lpcnet_plc_init(state.as_mut_ptr().cast()) };
        assert_eq!(ret, 0, "lpcnet_plc_init failed");
        Self {
            state,
            pending: [0; FRAME],
            fill: 0,
            skip: 0,
            frame: [0; FRAME],
            pos: FRAME,
            marked: false,
            lpc: Lpc::with_order(RATE, RING_WINDOW, super::lpc::prediction_order_for(RATE)),
            ring: Synth::new(super::lpc::prediction_order_for(RATE)),
            ringing: false,
        }
    }

    /// Fits the start's predictor to the newest history (mono at 16 kHz, oldest first).
    pub(super) fn start_ring(&mut self, history: &[f32]) {
        let n = history.len().min(RING_WINDOW);
        self.ringing = self.lpc.fit(&history[history.len() - n..]);
        self.ring
            .load(&self.lpc, history.iter().map(|&x| f64::from(x)));
    }

    /// The next sample of the start's prediction (0 without a model).
    pub(super) fn ring_next(&mut self) -> f64 {
        if self.ringing {
            self.ring.next(0.0)
        } else {
            0.0
        }
    }

    pub(super) fn ringing(&self) -> bool {
        self.ringing
    }

    pub(super) fn reset(&mut self) {
        // SAFETY: the state was initialized by `lpcnet_plc_init`.
        unsafe { lpcnet_plc_reset(self.state.as_mut_ptr().cast()) };
        self.fill = 0;
        self.skip = 0;
        self.pos = FRAME;
        self.marked = false;
    }

    /// Hands real output (mono, in [-1, 1]) to the model, frame by frame.
    pub(super) fn push_real(&mut self, samples: impl Iterator<Item = f32>) {
        self.marked = false;
        for x in samples {
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            self.pending[self.fill] = to_i16(x);
            self.fill += 1;
            if self.fill == FRAME {
                // SAFETY: initialized state; `pending` holds FRAME samples.
                unsafe {
                    lpcnet_plc_update(self.state.as_mut_ptr().cast(), self.pending.as_mut_ptr())
                };
                self.fill = 0;
            }
        }
    }

    /// Starts a concealed stretch. The model continues from its last whole frame: the samples
    /// of a partly collected frame were output already, so the first synthesized frame is
    /// played from that point on.
    pub(super) fn start(&mut self) {
        self.marked = false;
        if self.skip > 0 && self.skip <= FRAME {
            // Real audio was shorter than the rest of the last synthesized frame: go on with it.
            self.pos = FRAME - self.skip;
        } else {
            let played = self.fill;
            self.synthesize();
            self.pos = played;
        }
        self.fill = 0;
        self.skip = 0;
    }

    /// The next concealed sample, without taking it.
    pub(super) fn peek(&mut self) -> f32 {
        if self.pos == FRAME {
            self.synthesize();
            self.pos = 0;
        }
        f32::from(self.frame[self.pos]) / 32768.0
    }

    /// The next concealed sample.
    pub(super) fn next_sample(&mut self) -> f32 {
        let x = self.peek();
        self.pos += 1;
        x
    }

    /// Real audio starts at the current position (the merge's continuation may still be
    /// synthesized): what the model holds beyond it is skipped from the real audio, so the
    /// model's frames stay on the stream's timeline.
    pub(super) fn mark_real_start(&mut self) {
        self.skip = FRAME - self.pos;
        self.fill = 0;
        self.marked = true;
    }

    fn synthesize(&mut self) {
        // SAFETY: initialized state; `frame` has room for FRAME samples.
        unsafe { lpcnet_plc_conceal(self.state.as_mut_ptr().cast(), self.frame.as_mut_ptr()) };
        if self.marked {
            self.skip += FRAME;
        }
    }
}

fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

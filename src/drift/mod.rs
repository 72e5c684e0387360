// SPDX-License-Identifier: MPL-2.0
//! Clock drift compensation: the sender's sample clock and the receiver's sound card disagree.
//!
//! * [`controller::SkewEstimator`]: the lower-envelope line of arrival time against media
//!   position: the expected arrival of any position, and the sender's skew in ppm.
//! * [`delay::DelayEstimator`]: adaptive mode's target delay from a forgetting histogram of
//!   relative arrival delays.
//! * [`controller::RateController`]: PI loop from the playout-delay error to the resampling
//!   ratio, slew-limited, two gears.
//! * [`resample::DriftResampler`]: rubato's async resampler with a ratio that ramps between
//!   pulls.
//! * [`driftloop::DriftLoop`]: the three above behind `on_packet` / `on_tick`, as the element
//!   uses them.
//! * [`accelerate::QuietSplicer`]: adaptive mode's time-compression in low-energy stretches.
//! * [`sim`]: a deterministic sender/network/receiver simulation used by the tests and the
//!   bench.
//!
//! Pure: no GStreamer types, no clock; the caller passes `now` in. See `docs/drift.md`.

pub mod accelerate;
pub mod controller;
pub mod delay;
pub mod driftloop;
pub mod resample;
pub mod sim;
#[cfg(test)]
mod tests;

pub use accelerate::QuietSplicer;
pub use controller::{ControllerConfig, RateController, SkewConfig, SkewEstimator};
pub use delay::{DelayConfig, DelayEstimator, Observation, playout_delay_ns};
pub use driftloop::{DriftLoop, TargetMode, TickDecision};
pub use resample::{DriftResampler, Interpolation, ResampleError};

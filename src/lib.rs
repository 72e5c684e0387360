// SPDX-License-Identifier: MPL-2.0
//! Real-time network audio for GStreamer.
//!
//! Two elements:
//! * `rawudpaudiosrc`: receives raw PCM datagrams on a UDP socket and outputs timestamped
//!   `audio/x-raw`, one buffer per datagram, stamped with its arrival running time.
//! * `plcjitterbuffer`: dejitters raw audio (from `rawudpaudiosrc` or `udpsrc`) or RTP (L16,
//!   PCMU, PCMA, Opus), conceals what is
//!   missing, and pushes exactly 10 ms of audio every 10 ms of running time.
//!
//! The folders other than the two elements hold no GStreamer types: they are plain algorithms
//! that take sample counts and a `now` and never read a clock, so they can be unit tested,
//! fuzzed and benchmarked alone.

pub mod codec;
pub mod conceal;
pub mod drift;
#[doc(hidden)]
pub mod fuzzing;
pub mod impair;
pub mod jitter;
pub mod pcm;
pub mod ratelimit;
mod sync;

mod plcjitterbuffer;
mod rawudpaudiosrc;

use gst::glib;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    rawudpaudiosrc::register(plugin)?;
    plcjitterbuffer::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    netaudio,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);

// SPDX-License-Identifier: MPL-2.0
//! `plcjitterbuffer`: dejitters raw audio, conceals what is missing, and pushes exactly 10 ms of
//! audio every 10 ms of running time. See `imp.rs` for the element glue and `crate::jitter` for
//! the algorithms.

use gst::glib;
use gst::prelude::*;

mod imp;

use crate::conceal::PlcMethod;
use crate::jitter::compensate::DriftMode;

/// The `plc` property: how missing audio is concealed (see `crate::conceal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, glib::Enum, Default)]
#[repr(i32)]
#[enum_type(name = "GstPlcJitterBufferPlc")]
pub enum Plc {
    #[enum_value(name = "Silence: zeros, hard edges (a baseline)", nick = "silence")]
    Silence = 0,
    #[enum_value(
        name = "Repeat: the last 20 ms over and over, hard edges (a baseline)",
        nick = "repeat"
    )]
    Repeat = 1,
    #[enum_value(
        name = "Sample-constant: G.711 Appendix I with its constants in samples at 8 kHz, \
                like spandsp (a reference)",
        nick = "sample-constant"
    )]
    SampleConstant = 2,
    #[enum_value(
        name = "Appendix I: ITU-T G.711 Appendix I pitch waveform substitution (a reference)",
        nick = "appendix-i"
    )]
    AppendixI = 3,
    #[default]
    #[enum_value(
        name = "Expand: pitch repetition mixed with shaped noise, a growing mute slope, \
                comfort noise and a smooth merge",
        nick = "expand"
    )]
    Expand = 4,
    #[enum_value(
        name = "Neural: libopus's deep PLC on 16 kHz mono streams (expand otherwise)",
        nick = "neural"
    )]
    Neural = 5,
}

impl From<Plc> for PlcMethod {
    fn from(plc: Plc) -> Self {
        match plc {
            Plc::Silence => PlcMethod::Silence,
            Plc::Repeat => PlcMethod::Repeat,
            Plc::SampleConstant => PlcMethod::SampleConstant,
            Plc::AppendixI => PlcMethod::AppendixI,
            Plc::Expand => PlcMethod::Expand,
            Plc::Neural => PlcMethod::Neural,
        }
    }
}

/// The `mode` property: clock drift compensation (see `crate::drift`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, glib::Enum, Default)]
#[repr(i32)]
#[enum_type(name = "GstPlcJitterBufferMode")]
pub enum Mode {
    #[enum_value(
        name = "Off: media consumed at the nominal rate; a sender clock off by some ppm \
                drifts the queue until a resync (for comparison)",
        nick = "off"
    )]
    Off = 0,
    #[default]
    #[enum_value(
        name = "Fixed: the delay is held at latency by resampling with the measured clock skew",
        nick = "fixed"
    )]
    Fixed = 1,
    #[enum_value(
        name = "Adaptive: the delay follows the arrival jitter within min-latency..max-latency; \
                drift compensated as in fixed",
        nick = "adaptive"
    )]
    Adaptive = 2,
}

impl From<Mode> for DriftMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Off => DriftMode::Off,
            Mode::Fixed => DriftMode::Fixed,
            Mode::Adaptive => DriftMode::Adaptive,
        }
    }
}

glib::wrapper! {
    pub struct PlcJitterBuffer(ObjectSubclass<imp::PlcJitterBuffer>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Plc::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Mode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "plcjitterbuffer",
        gst::Rank::NONE,
        PlcJitterBuffer::static_type(),
    )
}

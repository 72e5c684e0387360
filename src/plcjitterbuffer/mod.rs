// SPDX-License-Identifier: MPL-2.0
//! `plcjitterbuffer`: dejitters raw audio, conceals what is missing, and pushes exactly 10 ms of
//! audio every 10 ms of running time. See `imp.rs` for the element glue and `crate::jitter` for
//! the algorithms.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct PlcJitterBuffer(ObjectSubclass<imp::PlcJitterBuffer>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "plcjitterbuffer",
        gst::Rank::NONE,
        PlcJitterBuffer::static_type(),
    )
}

// SPDX-License-Identifier: MPL-2.0
//! `rawudpaudiosrc`: receives raw PCM datagrams (no header) on a UDP socket and pushes each one
//! as an `audio/x-raw` buffer stamped with its arrival running time.
//!
//! * `imp.rs`: the `PushSrc` glue (properties, socket life cycle, caps, stamping, messages).
//! * `datagram.rs`: pure decisions: which datagrams are audio, which receive errors are
//!   transient, and the counters behind the `stats` property.
//! * `socket.rs`: binding (options, multicast join on a named interface) and peeking at the next
//!   datagram's length.

use gst::glib;
use gst::prelude::*;

pub(crate) mod datagram;
mod imp;
mod socket;

glib::wrapper! {
    pub struct RawUdpAudioSrc(ObjectSubclass<imp::RawUdpAudioSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rawudpaudiosrc",
        gst::Rank::NONE,
        RawUdpAudioSrc::static_type(),
    )
}

// SPDX-License-Identifier: MPL-2.0
//! Pure jitter-buffer core: placing raw datagrams on the sender's timeline (or RTP packets by
//! their timestamps), queueing them, and the clocked 10 ms playout with concealment. No GStreamer types; time comes in as arguments.

pub mod compensate;
pub mod ledger;
pub mod playout;
pub mod rtp;
pub mod rtp_playout;
pub mod splice;
pub mod stream;
pub mod time;
pub mod timeline;

pub use ledger::{Ledger, Limits};
pub use playout::{Chunk, Playout, PushOutcome, Stats};
pub use rtp_playout::{RtpPlayout, RtpPushOutcome, RtpStats};
pub use stream::Stream;

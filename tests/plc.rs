// SPDX-License-Identifier: MPL-2.0
//! The `plc` property of `plcjitterbuffer`: every method can be chosen, and the choice is what
//! fills a lost slot (measured on the element's output, driven by the harness's test clock).

use std::sync::Once;

use gst::prelude::*;
use gst_check::Harness;

const MS: u64 = 1_000_000;
const RATE: u64 = 16000;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstnetaudio::plugin_register_static().expect("register plugin");
    });
}

fn tone(start: u64, frames: u64) -> Vec<f64> {
    (start..start + frames)
        .map(|n| 0.4 * (n as f64 * 2.0 * std::f64::consts::PI * 210.0 / RATE as f64).sin())
        .collect()
}

fn s16(x: &[f64]) -> Vec<u8> {
    x.iter()
        .flat_map(|v| ((v * 32767.0).round() as i16).to_le_bytes())
        .collect()
}

/// Runs 500 ms of the tone in 10 ms datagrams with datagram 20 lost; returns the output.
fn run(plc: Option<&str>) -> Vec<f64> {
    init();
    let mut h = Harness::new("plcjitterbuffer");
    {
        let e = h.element().unwrap();
        e.set_property("latency", 40u32);
        e.set_property("silence-until-data", false);
        if let Some(plc) = plc {
            e.set_property_from_str("plc", plc);
        }
    }
    h.set_src_caps_str("audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved");
    h.play();
    let frames = RATE / 100;
    let mut out = vec![0.0; 50 * frames as usize];
    let mut next_in = 0u64;
    for j in 0..50u64 {
        while next_in < 50 && next_in * 10 * MS <= 40 * MS + j * 10 * MS {
            if next_in != 20 {
                let mut b = gst::Buffer::from_mut_slice(s16(&tone(next_in * frames, frames)));
                b.get_mut()
                    .unwrap()
                    .set_pts(gst::ClockTime::from_nseconds(next_in * 10 * MS));
                h.push(b).unwrap();
            }
            next_in += 1;
        }
        h.crank_single_clock_wait().unwrap();
        let buf = h.pull().unwrap();
        let off = buf.offset() as usize;
        let map = buf.map_readable().unwrap();
        for (k, b) in map.as_slice().chunks_exact(2).enumerate() {
            out[off + k] = f64::from(i16::from_le_bytes([b[0], b[1]])) / 32767.0;
        }
    }
    out
}

#[test]
fn plc_defaults_to_expand_and_takes_every_method() {
    init();
    let e = gst::ElementFactory::make("plcjitterbuffer")
        .build()
        .unwrap();
    let nick = |e: &gst::Element| {
        let v = e.property_value("plc");
        glib_nick(&v)
    };
    assert_eq!(nick(&e), "expand");
    for m in [
        "silence",
        "repeat",
        "sample-constant",
        "appendix-i",
        "expand",
    ] {
        e.set_property_from_str("plc", m);
        assert_eq!(nick(&e), m);
    }
}

fn glib_nick(v: &gst::glib::Value) -> String {
    let (_, ev) = gst::glib::EnumValue::from_value(v).expect("an enum");
    ev.nick().to_string()
}

#[test]
fn the_method_decides_what_fills_a_lost_slot() {
    let lost = 20 * 160..21 * 160;
    let truth = tone(0, 50 * 160);
    let corr = |y: &[f64], x: &[f64]| {
        let d: f64 = y.iter().zip(x).map(|(a, b)| a * b).sum();
        let e = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>();
        d / (e(y) * e(x)).sqrt().max(1e-30)
    };
    let silence = run(Some("silence"));
    assert!(silence[lost.clone()].iter().all(|&v| v == 0.0));
    for plc in [None, Some("expand"), Some("appendix-i")] {
        let out = run(plc);
        let r = corr(&out[lost.clone()], &truth[lost.clone()]);
        assert!(r > 0.9, "{plc:?}: correlation {r} in the lost slot");
        // Away from the loss and its merge the output is the input.
        let after = 22 * 160..49 * 160;
        let err = out[after.clone()]
            .iter()
            .zip(&truth[after])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-4, "{plc:?}: {err}");
    }
}

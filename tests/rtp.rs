// SPDX-License-Identifier: MPL-2.0
//! Element tests of `plcjitterbuffer` with RTP input (L16, PCMU, PCMA, Opus), driven by
//! `gst_check::Harness` and its test clock: one scenario per behaviour, every output buffer
//! checked for its exact size, offset and PTS.

mod common;

use common::*;
use gst::prelude::*;
use gst_check::Harness;

const SSRC: u32 = 0x0bad_cafe;

/// Reference L16 sample `n` of channel `c` (distinct, never 0).
fn sample(n: i64, c: usize) -> i16 {
    ((n * 2 + c as i64).rem_euclid(30_000) + 1) as i16
}

fn l16_payload(first: i64, frames: i64, channels: usize) -> Vec<u8> {
    (first..first + frames)
        .flat_map(|n| (0..channels).flat_map(move |c| sample(n, c).to_be_bytes()))
        .collect()
}

const L16_CAPS: &str = "application/x-rtp,media=audio,encoding-name=L16,clock-rate=8000,encoding-params=(string)1,payload=96";

/// An L16 stream at 8 kHz of 20 ms packets (160 frames): packet `k` has seq `seq0 + k`, ts
/// `ts0 + 160 k`, is sent at `20 k` ms and arrives `delay(k)` later (None: lost).
fn l16_inputs(
    count: i64,
    seq0: u16,
    ts0: u32,
    mut delay: impl FnMut(i64) -> Option<u64>,
) -> Vec<(u64, Vec<u8>)> {
    let mut v: Vec<(u64, Vec<u8>)> = (0..count)
        .filter_map(|k| {
            delay(k).map(|d| {
                let p = rtp_packet(
                    seq0.wrapping_add(k as u16),
                    ts0.wrapping_add(k as u32 * 160),
                    SSRC,
                    96,
                    &l16_payload(k * 160, 160, 1),
                );
                (k as u64 * 20 * MS + d, p)
            })
        })
        .collect();
    v.sort_by_key(|(t, _)| *t);
    v
}

/// Runs `inputs` through the element (latency 40 ms) for `n_out` buffers, checks the cadence of
/// every buffer and returns the output samples.
fn run_l16(h: &mut Harness, inputs: Vec<(u64, Vec<u8>)>, n_out: u64) -> Vec<i16> {
    let origin = inputs[0].0;
    let mut out = Vec::new();
    drive(h, 40 * MS, n_out, inputs.into_iter(), |j, buf| {
        assert_chunk(buf, j, 8000, origin, 2);
        out.extend(s16(&buf.map_readable().unwrap()));
    });
    out
}

/// Where reference sample `n` (channel 0, mono stream) first appears in `out` after `from`.
fn find(out: &[i16], n: i64, from: usize) -> Option<usize> {
    let want: Vec<i16> = (n..n + 8).map(|k| sample(k, 0)).collect();
    (from..out.len().saturating_sub(8)).find(|&i| out[i..i + 8] == want[..])
}

fn reference(first: i64, frames: i64) -> Vec<i16> {
    (first..first + frames).map(|n| sample(n, 0)).collect()
}

fn stat_i(h: &Harness, name: &str) -> u64 {
    stats(h)
        .get::<u64>(name)
        .unwrap_or_else(|e| panic!("stat {name}: {e}"))
}

#[test]
fn l16_stream_plays_bit_exact_with_exact_cadence() {
    let mut h = harness(L16_CAPS, 40);
    let out = run_l16(&mut h, l16_inputs(500, 1000, 77, |_| Some(0)), 1000);
    assert_eq!(&out[..80_000], &reference(0, 80_000)[..]);
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!(s.name(), "audio/x-raw");
    assert_eq!(s.get::<&str>("format").unwrap(), "S16LE");
    assert_eq!(s.get::<i32>("rate").unwrap(), 8000);
    assert_eq!(stat_i(&h, "lost"), 0);
    assert_eq!(stat_i(&h, "received"), 500);
}

#[test]
fn l16_stereo_takes_channels_from_encoding_params() {
    let mut h = harness(
        "application/x-rtp,encoding-name=L16,clock-rate=16000,encoding-params=(string)2",
        40,
    );
    let inputs: Vec<(u64, Vec<u8>)> = (0..100i64)
        .map(|k| {
            let p = rtp_packet(
                k as u16,
                k as u32 * 320,
                SSRC,
                97,
                &l16_payload(k * 320, 320, 2),
            );
            (k as u64 * 20 * MS, p)
        })
        .collect();
    let mut out = Vec::new();
    drive(&mut h, 40 * MS, 150, inputs.into_iter(), |j, buf| {
        assert_chunk(buf, j, 16000, 0, 4);
        out.extend(s16(&buf.map_readable().unwrap()));
    });
    let want: Vec<i16> = (0..20_000i64)
        .flat_map(|n| [sample(n, 0), sample(n, 1)])
        .collect();
    assert_eq!(&out[..40_000], &want[..]);
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(
        caps.structure(0).unwrap().get::<i32>("channels").unwrap(),
        2
    );
}

#[test]
fn pcmu_and_pcma_are_expanded() {
    use gstnetaudio::codec::g711::{alaw_to_linear, ulaw_to_linear};
    for (name, pt, expand) in [
        ("PCMU", 0u8, ulaw_to_linear as fn(u8) -> i16),
        ("PCMA", 8, alaw_to_linear),
    ] {
        let mut h = harness(
            &format!("application/x-rtp,encoding-name={name},clock-rate=8000"),
            40,
        );
        // Every code, in 20 ms packets.
        let codes: Vec<u8> = (0..16_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let inputs: Vec<(u64, Vec<u8>)> = codes
            .chunks(160)
            .enumerate()
            .map(|(k, c)| {
                (
                    k as u64 * 20 * MS,
                    rtp_packet(k as u16, k as u32 * 160, SSRC, pt, c),
                )
            })
            .collect();
        let mut out = Vec::new();
        drive(&mut h, 40 * MS, 200, inputs.into_iter(), |j, buf| {
            assert_chunk(buf, j, 8000, 0, 2);
            out.extend(s16(&buf.map_readable().unwrap()));
        });
        let want: Vec<i16> = codes.iter().map(|&c| expand(c)).collect();
        assert_eq!(&out[..16_000], &want[..], "{name}");
    }
}

#[test]
fn reordered_packets_play_in_sequence_order() {
    let mut h = harness(L16_CAPS, 40);
    // Pairs swapped: every 3rd packet arrives 25 ms late, after its successor.
    let inputs = l16_inputs(300, 0, 0, |k| Some(if k % 3 == 1 { 25 * MS } else { 0 }));
    let out = run_l16(&mut h, inputs, 600);
    assert_eq!(&out[..47_000], &reference(0, 47_000)[..]);
    assert_eq!(stat_i(&h, "reordered"), 100);
    assert_eq!((stat_i(&h, "lost"), stat_i(&h, "late")), (0, 0));
}

#[test]
fn duplicates_are_dropped_and_counted() {
    let mut h = harness(L16_CAPS, 40);
    let mut inputs = l16_inputs(200, 0, 0, |_| Some(0));
    // Each packet again 1 ms later (still queued), and packet k-10 again (already played).
    let copies: Vec<(u64, Vec<u8>)> = inputs
        .iter()
        .enumerate()
        .flat_map(|(k, (t, p))| {
            let mut v = vec![(t + MS, p.clone())];
            if k >= 10 {
                v.push((t + 2 * MS, inputs[k - 10].1.clone()));
            }
            v
        })
        .collect();
    inputs.extend(copies);
    inputs.sort_by_key(|(t, _)| *t);
    let out = run_l16(&mut h, inputs, 400);
    assert_eq!(&out[..31_000], &reference(0, 31_000)[..]);
    assert_eq!(stat_i(&h, "duplicates"), 390);
    assert_eq!((stat_i(&h, "lost"), stat_i(&h, "late")), (0, 0));
}

#[test]
fn sequence_number_wraps_at_65535() {
    let mut h = harness(L16_CAPS, 40);
    // Starts at 65500; 65535 and 0 are lost.
    let inputs = l16_inputs(200, 65_500, 0, |k| (!matches!(k, 35 | 36)).then_some(0));
    let out = run_l16(&mut h, inputs, 400);
    assert_eq!(&out[..35 * 160], &reference(0, 35 * 160)[..]);
    assert_eq!(
        find(&out, 38 * 160, 0),
        Some(38 * 160),
        "after the wrap, still in place"
    );
    assert_eq!(stat_i(&h, "lost"), 2);
    assert_eq!(stat_i(&h, "resyncs"), 0);
}

#[test]
fn timestamp_wraps_at_2_pow_32() {
    let mut h = harness(L16_CAPS, 40);
    let inputs = l16_inputs(200, 10, u32::MAX - 160 * 50 + 1, |_| Some(0));
    let out = run_l16(&mut h, inputs, 400);
    assert_eq!(&out[..31_000], &reference(0, 31_000)[..]);
    assert_eq!((stat_i(&h, "resyncs"), stat_i(&h, "misfits")), (0, 0));
}

/// Packets 0..50 from one timeline, then 50..150 from another (`dseq`, `dts`, maybe a new
/// SSRC): returns the output, with the cadence checked throughout.
fn restart(h: &mut Harness, dseq: i32, dts: i64, new_ssrc: Option<u32>) -> Vec<i16> {
    let inputs: Vec<(u64, Vec<u8>)> = (0..150i64)
        .map(|k| {
            let (seq, ts, ssrc) = if k < 50 {
                (k as u16, (k * 160) as u32, SSRC)
            } else {
                (
                    (k as i32 + dseq) as u16,
                    (k * 160 + dts).rem_euclid(1 << 32) as u32,
                    new_ssrc.unwrap_or(SSRC),
                )
            };
            let p = rtp_packet(seq, ts, ssrc, 96, &l16_payload(k * 160, 160, 1));
            (k as u64 * 20 * MS, p)
        })
        .collect();
    run_l16(h, inputs, 320)
}

#[track_caller]
fn assert_resumed_quickly(h: &Harness, out: &[i16]) {
    assert_eq!(stat_i(h, "resyncs"), 1);
    // At most 5 packets and 100 ms: packet 55 plays within 100 ms of where it would have.
    let at = find(out, 55 * 160, 0).expect("the new timeline plays");
    assert!(
        at <= 55 * 160 + 800,
        "packet 55 plays {} ms late",
        (at - 55 * 160) / 8
    );
    // And everything after it in order.
    assert_eq!(&out[at..at + 8000], &reference(55 * 160, 8000)[..]);
}

#[test]
fn ssrc_change_resyncs() {
    let mut h = harness(L16_CAPS, 40);
    let out = restart(&mut h, 30_000, 5_000_000, Some(0x1234));
    assert_resumed_quickly(&h, &out);
    assert_eq!(stat_i(&h, "ssrc-changes"), 1);
    assert_eq!(stats(&h).get::<u32>("ssrc").unwrap(), 0x1234);
}

#[test]
fn forward_jump_resyncs() {
    let mut h = harness(L16_CAPS, 40);
    let out = restart(&mut h, 20_000, 8000 * 10, None);
    assert_resumed_quickly(&h, &out);
}

#[test]
fn backward_jump_resyncs() {
    let mut h = harness(L16_CAPS, 40);
    let out = restart(&mut h, -8618, -8000 * 30, None);
    assert_resumed_quickly(&h, &out);
}

#[test]
fn backward_timestamp_jump_alone_resyncs() {
    let mut h = harness(L16_CAPS, 40);
    let out = restart(&mut h, 0, -8000, None);
    assert_resumed_quickly(&h, &out);
}

/// Opus packets of `frame` samples encoding a voiced signal (with silence between 1 and 2 s when
/// `pause`), from an encoder with in-band FEC and optionally DTX.
fn opus_packets(frame: usize, count: usize, fec: bool, dtx: bool, pause: bool) -> Vec<Vec<u8>> {
    let mut enc = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    enc.set_inband_fec(fec).unwrap();
    enc.set_packet_loss_perc(if fec { 10 } else { 0 }).unwrap();
    enc.set_dtx(dtx).unwrap();
    enc.set_bitrate(opus::Bitrate::Bits(32000)).unwrap();
    (0..count)
        .map(|k| {
            let pcm: Vec<f32> = (0..frame)
                .map(|i| {
                    let n = k * frame + i;
                    let t = n as f32 / 48000.0;
                    if pause && (1.0..2.0).contains(&t) {
                        return 0.0;
                    }
                    let f0 = 150.0 + 30.0 * (2.0 * std::f32::consts::PI * 0.5 * t).sin();
                    (1..8)
                        .map(|h| {
                            0.1 / h as f32 * (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin()
                        })
                        .sum()
                })
                .collect();
            enc.encode_vec_float(&pcm, 4000).unwrap()
        })
        .collect()
}

const OPUS_CAPS: &str = "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,\
                         encoding-params=(string)2,sprop-stereo=(string)0,payload=96";

/// Runs Opus `inputs` for `n_out` buffers (48 kHz mono F32), checking the cadence.
fn run_opus(h: &mut Harness, latency: u64, inputs: Vec<(u64, Vec<u8>)>, n_out: u64) -> Vec<f32> {
    let origin = inputs[0].0;
    let mut out = Vec::new();
    drive(h, latency, n_out, inputs.into_iter(), |j, buf| {
        assert_chunk(buf, j, 48000, origin, 4);
        let map = buf.map_readable().unwrap();
        out.extend(
            map.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    });
    out
}

#[test]
fn opus_mono_output_follows_sprop_stereo() {
    let mut h = harness(OPUS_CAPS, 40);
    let inputs: Vec<(u64, Vec<u8>)> = opus_packets(960, 50, false, false, false)
        .into_iter()
        .enumerate()
        .map(|(k, p)| {
            (
                k as u64 * 20 * MS,
                rtp_packet(k as u16, k as u32 * 960, SSRC, 96, &p),
            )
        })
        .collect();
    let out = run_opus(&mut h, 40 * MS, inputs, 100);
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!(s.get::<&str>("format").unwrap(), "F32LE");
    assert_eq!(s.get::<i32>("channels").unwrap(), 1);
    let rms = (out[4800..48_000].iter().map(|x| x * x).sum::<f32>() / 43_200.0).sqrt();
    assert!(rms > 0.05, "decoded audio (rms {rms})");
}

#[test]
fn opus_packet_durations_from_2_5_to_120_ms_keep_10_ms_output() {
    for frame in [120, 240, 480, 960, 1920, 2880, 5760] {
        let mut h = harness(OPUS_CAPS, 150);
        let dur = frame as u64 * 1_000_000_000 / 48000;
        let count = (3_000_000_000 / dur) as usize;
        let inputs: Vec<(u64, Vec<u8>)> = opus_packets(frame, count, false, false, false)
            .into_iter()
            .enumerate()
            .map(|(k, p)| {
                (
                    k as u64 * dur,
                    rtp_packet(k as u16, (k * frame) as u32, SSRC, 96, &p),
                )
            })
            .collect();
        let out = run_opus(&mut h, 150 * MS, inputs, 250);
        assert_eq!(stat_i(&h, "late"), 0, "frame {frame}");
        assert_eq!(stat_i(&h, "concealed-ms"), 0, "frame {frame}");
        let rms = (out[24_000..96_000].iter().map(|x| x * x).sum::<f32>() / 72_000.0).sqrt();
        assert!(rms > 0.05, "frame {frame}: rms {rms}");
    }
}

#[test]
fn opus_fec_recovers_single_losses() {
    let mut h = harness(OPUS_CAPS, 60);
    let packets = opus_packets(960, 500, true, false, false);
    let mut dropped = 0;
    let mut covered = 0;
    let inputs: Vec<(u64, Vec<u8>)> = packets
        .iter()
        .enumerate()
        .filter(|(k, _)| {
            let lose = *k > 5 && k % 10 == 3;
            if lose {
                dropped += 1;
                covered += u64::from(gstnetaudio::codec::opus::has_fec(&packets[k + 1]));
            }
            !lose
        })
        .map(|(k, p)| {
            (
                k as u64 * 20 * MS,
                rtp_packet(k as u16, (k * 960) as u32, SSRC, 96, p),
            )
        })
        .collect();
    run_opus(&mut h, 60 * MS, inputs, 990);
    assert_eq!(stat_i(&h, "lost"), dropped);
    assert_eq!(stat_i(&h, "fec-recovered"), covered);
    assert!(
        covered * 100 >= dropped * 80,
        "{covered} of {dropped} covered by LBRR"
    );
}

#[test]
fn opus_dtx_pause_is_not_loss_and_never_stalls() {
    let mut h = harness(OPUS_CAPS, 40);
    let packets = opus_packets(960, 150, false, true, true);
    // Like rtpopuspay dtx=true: DTX frames (at most 2 bytes) are not sent, and sequence
    // numbers count only the packets sent.
    let mut seq = 0u16;
    let mut inputs = Vec::new();
    for (k, p) in packets.iter().enumerate() {
        if p.len() <= 2 {
            continue;
        }
        inputs.push((
            k as u64 * 20 * MS,
            rtp_packet(seq, (k * 960) as u32, SSRC, 96, p),
        ));
        seq += 1;
    }
    assert!(inputs.len() < 120, "the encoder paused during the silence");
    let out = run_opus(&mut h, 40 * MS, inputs, 300);
    assert_eq!(stat_i(&h, "lost"), 0);
    assert!(
        stat_i(&h, "dtx-ms") >= 500,
        "dtx-ms {}",
        stat_i(&h, "dtx-ms")
    );
    // Speech resumes after the pause.
    let rms = (out[110_000..140_000].iter().map(|x| x * x).sum::<f32>() / 30_000.0).sqrt();
    assert!(rms > 0.05, "rms after the pause {rms}");
}

#[test]
fn malformed_packets_are_dropped_by_reason_and_the_stream_continues() {
    let mut h = harness(L16_CAPS, 40);
    let good = l16_inputs(200, 0, 0, |_| Some(0));
    let hex = |s: &str| -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("too-short", hex("80 60 00 01 00 00")),
        (
            "bad-version",
            hex("40 60 00 05 00 00 03 20 0b ad ca fe 00 01"),
        ),
        (
            "bad-version",
            hex("00 01 00 08 21 12 a4 42 00 00 00 00 00 00 00 00"),
        ),
        ("csrc-overrun", hex("8f 60 00 05 00 00 03 20 0b ad ca fe")),
        (
            "extension-overrun",
            hex("90 60 00 05 00 00 03 20 0b ad ca fe be de"),
        ),
        (
            "extension-overrun",
            hex("90 60 00 05 00 00 03 20 0b ad ca fe be de 40 01 00 00 00 00"),
        ),
        (
            "bad-padding",
            hex("a0 60 00 05 00 00 03 20 0b ad ca fe 00 01 00"),
        ),
        (
            "bad-padding",
            hex("a0 60 00 05 00 00 03 20 0b ad ca fe 00 01 ff"),
        ),
        ("bad-padding", hex("a0 60 00 05 00 00 03 20 0b ad ca fe")),
        (
            "rtcp",
            hex("80 c8 00 06 0b ad ca fe 00 00 00 00 00 00 00 00"),
        ),
        ("empty-payload", hex("80 60 00 05 00 00 03 20 0b ad ca fe")),
        (
            "payload-type",
            hex("80 4d 00 05 00 00 03 20 0b ad ca fe 00 01"),
        ),
    ];
    // L16 payload of an odd byte count: a valid header, refused by the codec.
    let odd = rtp_packet(5, 800, SSRC, 96, &[0, 1, 2]);
    let mut inputs = good.clone();
    for (i, (_, data)) in bad.iter().enumerate() {
        inputs.push((100 * MS + i as u64 * 7 * MS + 1, data.clone()));
    }
    inputs.push((100 * MS + 3, odd));
    inputs.sort_by_key(|(t, _)| *t);
    let out = run_l16(&mut h, inputs, 400);
    assert_eq!(&out[..31_000], &reference(0, 31_000)[..]);
    let s = stats(&h);
    for (reason, _) in &bad {
        let want = bad.iter().filter(|(r, _)| r == reason).count() as u64;
        assert_eq!(
            s.get::<u64>(&format!("malformed-{reason}")).unwrap(),
            want,
            "{reason}"
        );
    }
    assert_eq!(s.get::<u64>("malformed").unwrap(), bad.len() as u64);
    assert_eq!(s.get::<u64>("invalid").unwrap(), 1);
    assert_eq!(s.get::<u64>("received").unwrap(), 200);
}

#[test]
fn invalid_opus_packets_are_refused() {
    let mut h = harness(OPUS_CAPS, 40);
    let packets = opus_packets(960, 100, false, false, false);
    let mut inputs: Vec<(u64, Vec<u8>)> = packets
        .iter()
        .enumerate()
        .map(|(k, p)| {
            (
                k as u64 * 20 * MS,
                rtp_packet(k as u16, (k * 960) as u32, SSRC, 96, p),
            )
        })
        .collect();
    // Code 1 with an odd remainder, code 2 with a length past the end, code 3 with 0 frames,
    // and 7 frames of 20 ms (> 120 ms), each in place of a real packet's slot.
    let bad: [&[u8]; 4] = [
        &[0x09, 1, 2, 3],
        &[0x0a, 251, 1],
        &[0x0b, 0],
        &[0x0b, 7, 0, 0],
    ];
    for (i, b) in bad.iter().enumerate() {
        let k = 200 + i;
        inputs.push((
            50 * MS + i as u64,
            rtp_packet(k as u16, (k * 960) as u32, SSRC, 96, b),
        ));
    }
    inputs.sort_by_key(|(t, _)| *t);
    run_opus(&mut h, 40 * MS, inputs, 200);
    assert_eq!(stat_i(&h, "invalid"), 4);
    assert_eq!(stat_i(&h, "lost"), 0);
}

#[test]
fn caps_without_clock_rate_are_refused_with_a_clear_error() {
    init();
    let mut h = Harness::new("plcjitterbuffer");
    h.play();
    let bus = OwnBus::on(&h.element().unwrap());
    let pad = h.srcpad().unwrap();
    pad.push_event(gst::event::StreamStart::new("s"));
    // (Sticky events are stored even when refused: the refusal shows as the error.)
    pad.push_event(gst::event::Caps::new(
        &gst::Caps::builder("application/x-rtp")
            .field("encoding-name", "L16")
            .build(),
    ));
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    assert!(e.error().message().contains("clock-rate"), "{}", e.error());
}

#[test]
fn eos_drains_then_forwards_eos() {
    for (caps, silence) in [(OPUS_CAPS, false), (L16_CAPS, false), (OPUS_CAPS, true)] {
        let mut h = harness_with(caps, 40, silence);
        let opus = caps == OPUS_CAPS;
        let packets = opus_packets(960, 20, false, false, false);
        for (k, opus_packet) in packets.iter().enumerate() {
            let p = if opus {
                rtp_packet(k as u16, (k * 960) as u32, SSRC, 96, opus_packet)
            } else {
                rtp_packet(
                    k as u16,
                    (k * 160) as u32,
                    SSRC,
                    96,
                    &l16_payload(k as i64 * 160, 160, 1),
                )
            };
            h.push(buffer(k as u64 * 20 * MS, p)).unwrap();
        }
        assert!(h.push_event(gst::event::Eos::new()));
        // Everything queued (400 ms plus what was due) comes out without the clock, then EOS.
        // (Buffers and events queue separately in the harness.)
        while h.pull_event().unwrap().type_() != gst::EventType::Eos {}
        let mut buffers = 0;
        while h.try_pull().is_some() {
            buffers += 1;
        }
        assert!(
            (40..=60).contains(&buffers),
            "{caps}: {buffers} buffers before EOS"
        );
        let _ = silence;
    }
}

/// SNR (dB) of the output against the truth over the last 5 ms of every lost packet, for a
/// gliding tone at 8 kHz (300 -> 500 Hz over 2 s) with every 10th packet lost, at `plc`.
fn hole_end_snr(plc: &str) -> f64 {
    let truth: Vec<i16> = {
        let mut phase = 0.0f64;
        (0..16_000)
            .map(|n| {
                let f = 300.0 + 200.0 * n as f64 / 16_000.0;
                phase += std::f64::consts::TAU * f / 8000.0;
                (8000.0 * phase.sin()) as i16
            })
            .collect()
    };
    let inputs: Vec<(u64, Vec<u8>)> = (0..100i64)
        .filter(|k| k % 10 != 5)
        .map(|k| {
            let pay: Vec<u8> = truth[(k * 160) as usize..((k + 1) * 160) as usize]
                .iter()
                .flat_map(|x| x.to_be_bytes())
                .collect();
            let p = rtp_packet(k as u16, (k * 160) as u32, SSRC, 96, &pay);
            (k as u64 * 20 * MS, p)
        })
        .collect();
    let mut h = harness(L16_CAPS, 40);
    h.element().unwrap().set_property_from_str("plc", plc);
    let out = run_l16(&mut h, inputs, 190);
    // Received packets play bit-exact in their slots (the alignment the measure relies on).
    assert_eq!(&out[160..320], &truth[160..320]);
    let (mut sig, mut err) = (0.0f64, 0.0f64);
    for k in (0..95).filter(|k| k % 10 == 5) {
        for n in (k + 1) * 160 - 40..(k + 1) * 160 {
            let (t, o) = (f64::from(truth[n]), f64::from(out[n]));
            sig += t * t;
            err += (t - o) * (t - o);
        }
    }
    10.0 * (sig / err.max(1e-9)).log10()
}

#[test]
fn a_hole_with_its_next_packet_queued_is_concealed_towards_it() {
    // The packet after each hole is already queued when the hole is concealed (latency 40 ms):
    // `expand` blends into it (two-sided concealment), so the end of the hole meets the real
    // audio; `appendix-i` (the reference) only extrapolates from before.
    let two_sided = hole_end_snr("expand");
    let forward = hole_end_snr("appendix-i");
    eprintln!(
        "SNR over the last 5 ms of the holes: expand {two_sided:.1} dB, appendix-i {forward:.1} dB"
    );
    assert!(two_sided > forward + 6.0, "{two_sided} vs {forward}");
    assert!(two_sided > 10.0, "{two_sided}");
}

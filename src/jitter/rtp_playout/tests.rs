// SPDX-License-Identifier: MPL-2.0
//! Scenario tests of the RTP playout: a simulated sender and clock, time moved by hand.

use super::*;
use crate::codec::Encoding;
use crate::jitter::time::NS_PER_MS;

const RATE: u32 = 8000;
const SSRC: u32 = 0x1234_5678;
const LATENCY: u64 = 40 * NS_PER_MS as u64;

/// The value of sample `n` of the reference L16 stream (distinct, never 0).
fn sample(n: i64) -> i16 {
    (n.rem_euclid(20_000) + 1) as i16
}

fn l16_payload(first: i64, frames: i64) -> Vec<u8> {
    (first..first + frames)
        .flat_map(|n| sample(n).to_be_bytes())
        .collect()
}

fn header(seq: u16, ts: u32) -> Header {
    Header {
        seq,
        ts,
        ssrc: SSRC,
        pt: 96,
        marker: false,
    }
}

/// Drives a playout: packets pushed at given times, chunks popped at their deadlines.
struct Sim {
    p: RtpPlayout,
    out: Vec<f32>,
    chunks: Vec<Chunk>,
    buf: Vec<f32>,
}

impl Sim {
    fn new(encoding: Encoding, rate: u32, channels: usize, latency: u64) -> Self {
        let dec = PayloadDecoder::new(encoding, rate, channels, 10).unwrap();
        Self {
            p: RtpPlayout::new(dec, latency),
            out: Vec::new(),
            chunks: Vec::new(),
            buf: Vec::new(),
        }
    }

    fn l16() -> Self {
        Self::new(Encoding::L16, RATE, 1, LATENCY)
    }

    /// Pops every chunk due by `t` (ns).
    fn run_until(&mut self, t: u64) {
        while let Some(d) = self.p.next_deadline() {
            if d > t {
                break;
            }
            let c = self.p.pop(&mut self.buf);
            self.out.extend_from_slice(&self.buf);
            self.chunks.push(c);
        }
    }

    fn push(&mut self, t: u64, h: Header, payload: &[u8]) -> RtpPushOutcome {
        self.run_until(t);
        self.p.push(t, h, payload)
    }

    /// Output as i16 values.
    fn values(&self) -> Vec<i16> {
        self.out
            .iter()
            .map(|&x| (x * 32768.0).round() as i16)
            .collect()
    }

    #[track_caller]
    fn assert_cadence(&self) {
        let mut next_pts = self.chunks[0].pts;
        let mut offset = self.chunks[0].offset;
        for c in &self.chunks {
            assert_eq!(c.pts, next_pts);
            assert_eq!(c.offset, offset);
            assert_eq!(c.frames as u32, self.p.rate() / 100);
            next_pts = c.pts + c.duration;
            offset += c.frames as u64;
        }
    }
}

/// Index in the output of the first occurrence of reference sample `n` (searching after
/// `from`).
fn find(values: &[i16], n: i64, from: usize) -> Option<usize> {
    let want: Vec<i16> = (n..n + 8).map(sample).collect();
    (from..values.len().saturating_sub(8)).find(|&i| values[i..i + 8] == want[..])
}

/// A steady 20 ms L16 stream of `count` packets starting at seq/ts given, sent every 20 ms from
/// `t0`; `arrive` maps packet index to an arrival offset (None = lost).
fn stream(
    sim: &mut Sim,
    t0: u64,
    seq0: u16,
    ts0: u32,
    count: i64,
    mut arrive: impl FnMut(i64) -> Option<u64>,
) {
    let mut sends: Vec<(u64, i64)> = (0..count)
        .filter_map(|k| arrive(k).map(|d| (t0 + k as u64 * 20 * NS_PER_MS as u64 + d, k)))
        .collect();
    sends.sort();
    for (t, k) in sends {
        let h = header(
            seq0.wrapping_add(k as u16),
            ts0.wrapping_add((k * 160) as u32),
        );
        sim.push(t, h, &l16_payload(k * 160, 160));
    }
}

#[test]
fn in_order_stream_plays_bit_exact_after_the_latency() {
    let mut sim = Sim::l16();
    stream(&mut sim, 0, 100, 5000, 100, |_| Some(0));
    sim.run_until(2_100 * NS_PER_MS as u64);
    let v = sim.values();
    let start = find(&v, 0, 0).unwrap();
    assert_eq!(start, 0, "the first packet starts the output");
    let want: Vec<i16> = (0..16000).map(sample).collect();
    assert_eq!(&v[start..start + 16000], &want[..]);
    assert_eq!(sim.p.stats().lost, 0);
    assert_eq!(sim.p.stats().late, 0);
    sim.assert_cadence();
}

#[test]
fn reordering_within_the_latency_is_undone() {
    let mut sim = Sim::l16();
    // Every 4th packet is swapped with the next one (arrives 25 ms late).
    stream(&mut sim, 0, 0, 0, 200, |k| {
        Some(if k % 4 == 1 { 25 * NS_PER_MS as u64 } else { 0 })
    });
    sim.run_until(4_200 * NS_PER_MS as u64);
    let v = sim.values();
    let start = find(&v, 0, 0).unwrap();
    let want: Vec<i16> = (0..32000).map(sample).collect();
    assert_eq!(&v[start..start + 32000], &want[..]);
    assert_eq!(sim.p.rtp_stats().reordered, 50);
    assert_eq!(sim.p.stats().lost, 0);
}

#[test]
fn duplicates_are_dropped_before_and_after_output() {
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    for k in 0..50i64 {
        let t = k as u64 * 20 * ms;
        let h = header(k as u16, (k * 160) as u32);
        let p = l16_payload(k * 160, 160);
        assert!(matches!(sim.push(t, h, &p), RtpPushOutcome::Queued { .. }));
        // Again at once (queued), and 100 ms later (already played).
        assert_eq!(sim.push(t + ms, h, &p), RtpPushOutcome::Duplicate);
        if k >= 5 {
            let old = k - 5;
            let h = header(old as u16, (old * 160) as u32);
            assert_eq!(
                sim.push(t + 2 * ms, h, &l16_payload(old * 160, 160)),
                RtpPushOutcome::Duplicate
            );
        }
    }
    sim.run_until(1_100 * ms);
    assert_eq!(sim.p.rtp_stats().duplicates, 95);
    assert_eq!(sim.p.stats().late, 0);
    let v = sim.values();
    let start = find(&v, 0, 0).unwrap();
    let want: Vec<i16> = (0..8000).map(sample).collect();
    assert_eq!(&v[start..start + 8000], &want[..]);
}

#[test]
fn sequence_and_timestamp_wraps_are_seamless() {
    for (seq0, ts0) in [
        (65530u16, 1000u32),
        (100, u32::MAX - 3000),
        (65500, u32::MAX - 500),
    ] {
        let mut sim = Sim::l16();
        // Lose the packets at the wrap too.
        stream(&mut sim, 0, seq0, ts0, 100, |k| {
            let seq = seq0.wrapping_add(k as u16);
            (seq != 65535 && seq != 0).then_some(0)
        });
        sim.run_until(2_100 * NS_PER_MS as u64);
        assert_eq!(sim.p.stats().resyncs, 0, "seq0 {seq0} ts0 {ts0}");
        assert_eq!(sim.p.rtp_stats().misfits, 0);
        let lost = (0..100)
            .filter(|&k| matches!(seq0.wrapping_add(k), 65535 | 0))
            .count();
        assert_eq!(sim.p.stats().lost, lost as u64);
        let v = sim.values();
        let start = find(&v, 0, 0).unwrap();
        // The last packet plays where it belongs: 99 packets after the first.
        assert_eq!(find(&v, 99 * 160, start), Some(start + 99 * 160));
        sim.assert_cadence();
    }
}

#[test]
fn ssrc_change_resyncs_on_its_second_packet() {
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    stream(&mut sim, 0, 0, 0, 50, |_| Some(0));
    // A new sender: other SSRC, seq and ts from elsewhere, 1 s of different audio.
    for k in 0..50i64 {
        let mut h = header(40000 + k as u16, 900_000 + (k * 160) as u32);
        h.ssrc = 0xdead_beef;
        let out = sim.push(
            1000 * ms + k as u64 * 20 * ms,
            h,
            &l16_payload(100_000 + k * 160, 160),
        );
        match k {
            0 => assert_eq!(out, RtpPushOutcome::Misfit),
            1 => assert!(matches!(out, RtpPushOutcome::Resynced { .. }), "{out:?}"),
            _ => assert!(matches!(out, RtpPushOutcome::Queued { .. }), "{k}: {out:?}"),
        }
    }
    sim.run_until(2_100 * ms);
    assert_eq!(sim.p.stats().resyncs, 1);
    assert_eq!(sim.p.rtp_stats().ssrc_changes, 1);
    let v = sim.values();
    // The new stream plays from its first packet, within 60 ms of its arrival.
    let at = find(&v, 100_000, 0).expect("new stream plays");
    assert!(at <= 8 * (1000 + 60), "new stream starts at {} ms", at / 8);
    sim.assert_cadence();
}

#[test]
fn stray_ssrcs_do_not_reset_the_stream() {
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    let mut rng = crate::impair::Rng::new(7);
    for k in 0..200i64 {
        let t = k as u64 * 20 * ms;
        sim.push(
            t,
            header(k as u16, (k * 160) as u32),
            &l16_payload(k * 160, 160),
        );
        // Hostile: random SSRC, seq and ts every packet.
        let r = rng.next_u64();
        let h = Header {
            seq: r as u16,
            ts: (r >> 16) as u32,
            ssrc: (r >> 32) as u32 | 1,
            pt: 96,
            marker: false,
        };
        sim.push(t + ms, h, &l16_payload(0, 160));
        let h = Header { ssrc: SSRC, ..h };
        sim.push(t + 2 * ms, h, &l16_payload(0, 160));
    }
    sim.run_until(4_100 * ms);
    assert_eq!(sim.p.stats().resyncs, 0);
    assert_eq!(sim.p.stats().lost, 0);
    assert!(sim.p.rtp_stats().misfits >= 390);
    let v = sim.values();
    let start = find(&v, 0, 0).unwrap();
    let want: Vec<i16> = (0..32000).map(sample).collect();
    assert_eq!(&v[start..start + 32000], &want[..]);
}

/// A sender restart that jumps `dseq`/`dts` at packet 50 of 100 resyncs within 5 packets and
/// 100 ms of audio.
fn restart(dseq: i32, dts: i64) -> Sim {
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    for k in 0..100i64 {
        let (seq, ts) = if k < 50 {
            (k as u16, (k * 160) as u32)
        } else {
            (
                (k as i32 + dseq) as u16,
                (k * 160 + dts).rem_euclid(1 << 32) as u32,
            )
        };
        let t = k as u64 * 20 * ms;
        let out = sim.push(t, header(seq, ts), &l16_payload(k * 160, 160));
        if k >= 55 {
            assert!(
                matches!(out, RtpPushOutcome::Queued { .. }),
                "packet {k}: {out:?}"
            );
        }
    }
    sim.run_until(2_200 * ms);
    assert_eq!(sim.p.stats().resyncs, 1, "dseq {dseq} dts {dts}");
    let v = sim.values();
    let first = find(&v, 0, 0).unwrap();
    let resumed = find(&v, 54 * 160, first).expect("the restarted stream plays");
    let muted = resumed - first - 54 * 160;
    assert!(muted <= 800, "restart muted {} ms", muted / 8);
    sim.assert_cadence();
    sim
}

#[test]
fn forward_sequence_and_timestamp_jump_resyncs() {
    restart(20_000, 10 * 8000);
}

#[test]
fn backward_sequence_jump_resyncs() {
    // LiveKit's 21294 -> 12676.
    restart(-8618, -8618 * 160);
}

#[test]
fn backward_timestamp_jump_with_steady_sequence_resyncs() {
    restart(0, -8000);
}

#[test]
fn forward_timestamp_jump_with_steady_sequence_resyncs() {
    restart(0, 10 * 8000);
}

#[test]
fn one_far_future_packet_is_ignored() {
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    for k in 0..100i64 {
        let t = k as u64 * 20 * ms;
        sim.push(
            t,
            header(k as u16, (k * 160) as u32),
            &l16_payload(k * 160, 160),
        );
        if k == 30 {
            sim.push(t + ms, header(k as u16 + 30_000, 7), &l16_payload(0, 160));
        }
    }
    sim.run_until(2_100 * ms);
    assert_eq!(sim.p.stats().resyncs, 0);
    assert_eq!(sim.p.rtp_stats().misfits, 1);
    assert_eq!(sim.p.stats().lost, 0);
}

#[test]
fn burst_after_an_outage_is_dropped_as_late_without_a_resync() {
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    // Packets 50..150 (2 s) are held by the network and delivered at once at 3.0 s, in order,
    // followed by the live stream.
    stream(&mut sim, 0, 0, 0, 250, |k| {
        Some(if (50..150).contains(&k) {
            3000 * ms - k as u64 * 20 * ms + k as u64 * 10_000
        } else {
            0
        })
    });
    sim.run_until(5_100 * ms);
    assert_eq!(sim.p.stats().resyncs, 0);
    let v = sim.values();
    let first = find(&v, 0, 0).unwrap();
    // After the outage the live stream plays at its original place: the delay did not grow.
    assert_eq!(find(&v, 200 * 160, first), Some(first + 200 * 160));
    assert!(sim.p.stats().late >= 90);
    sim.assert_cadence();
}

#[test]
fn dtx_pause_is_not_loss_and_never_stalls() {
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    // 1 s of audio, a 2 s pause (ts jumps, seq does not), 1 s of audio.
    for k in 0..100i64 {
        let pause = if k >= 50 { 2000 } else { 0 };
        let t = (k as u64 * 20 + pause) * ms;
        let ts = (k * 160 + pause as i64 * 8) as u32;
        sim.push(t, header(k as u16, ts), &l16_payload(k * 160, 160));
    }
    sim.run_until(4_100 * ms);
    let s = sim.p.stats();
    assert_eq!((s.lost, s.late, s.resyncs), (0, 0, 0));
    assert!(
        sim.p.rtp_stats().dtx_frames >= 8 * 1990,
        "{}",
        sim.p.rtp_stats().dtx_frames
    );
    let v = sim.values();
    let first = find(&v, 0, 0).unwrap();
    // (The first packet after the pause is cross-faded in from the fade-out: look one later.)
    assert_eq!(find(&v, 51 * 160, first), Some(first + 51 * 160 + 2000 * 8));
    sim.assert_cadence();
    assert_eq!(
        sim.chunks.len(),
        407,
        "one chunk every 10 ms from 40 ms to 4.1 s"
    );
}

#[test]
fn long_outage_is_one_concealment_stretch() {
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    stream(&mut sim, 0, 0, 0, 3100, |k| {
        (!(50..3050).contains(&k)).then_some(0)
    });
    sim.run_until(62_100 * ms);
    let s = sim.p.stats();
    assert_eq!((s.lost, s.late, s.resyncs), (3000, 0, 0));
    // Concealment fades to silence: almost all of the minute is silence.
    assert!(s.silent_frames > 8 * 59_000, "{s:?}");
    let v = sim.values();
    let first = find(&v, 0, 0).unwrap();
    assert_eq!(find(&v, 3051 * 160, first), Some(first + 3051 * 160));
    sim.assert_cadence();
}

#[test]
fn random_sequence_numbers_neither_reset_nor_grow() {
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    stream(&mut sim, 0, 0, 0, 10, |_| Some(0));
    let mut rng = crate::impair::Rng::new(3);
    for k in 0..50_000u64 {
        let r = rng.next_u64();
        sim.push(
            200 * ms + k * 20_000,
            header(r as u16, (r >> 16) as u32),
            &l16_payload(0, 160),
        );
        assert!(sim.p.store.len() <= 2);
    }
    assert_eq!(sim.p.stats().resyncs, 0);
    assert!(sim.p.run.len() <= 64);
    sim.assert_cadence();
}

#[test]
fn packet_durations_other_than_10_ms_give_exact_10_ms_chunks() {
    for (rate, frames) in [
        (8000, 20),
        (8000, 240),
        (48000, 5760),
        (48000, 336),
        (44100, 441 * 3),
    ] {
        let mut sim = Sim::new(Encoding::L16, rate, 1, LATENCY);
        let dur = frames as u64 * 1_000_000_000 / rate as u64;
        let n = (2_000_000_000 / dur) as i64;
        for k in 0..n {
            sim.push(
                k as u64 * dur,
                header(k as u16, (k * frames) as u32),
                &l16_payload(k * frames, frames),
            );
        }
        sim.run_until(2_500_000_000);
        let v = sim.values();
        let first = find(&v, 0, 0).unwrap();
        let len = ((n - 1) * frames) as usize;
        let want: Vec<i16> = (0..len as i64).map(sample).collect();
        assert_eq!(
            &v[first..first + len],
            &want[..],
            "rate {rate} frames {frames}"
        );
        assert_eq!(sim.p.stats().late, 0);
        sim.assert_cadence();
    }
}

#[test]
fn invalid_payload_is_refused_and_counted() {
    let mut sim = Sim::l16();
    assert_eq!(
        sim.push(0, header(0, 0), &[1, 2, 3]),
        RtpPushOutcome::Invalid(PayloadError::NotWholeFrames)
    );
    assert_eq!(sim.p.rtp_stats().invalid_payload, 1);
    assert!(!sim.p.started());
}

fn opus_stream(fec: bool, frame_ms: usize, count: usize) -> (Vec<Vec<u8>>, Vec<f32>) {
    let mut enc =
        ::opus::Encoder::new(48000, ::opus::Channels::Mono, ::opus::Application::Voip).unwrap();
    enc.set_inband_fec(fec).unwrap();
    enc.set_packet_loss_perc(if fec { 10 } else { 0 }).unwrap();
    enc.set_bitrate(::opus::Bitrate::Bits(32000)).unwrap();
    let frames = 48 * frame_ms;
    let pcm: Vec<f32> = (0..frames * count)
        .map(|i| {
            let t = i as f32 / 48000.0;
            // A voiced, vowel-like signal with a slowly moving pitch.
            let f0 = 140.0 + 20.0 * (2.0 * std::f32::consts::PI * 0.7 * t).sin();
            (1..6)
                .map(|h| 0.08 / h as f32 * (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin())
                .sum()
        })
        .collect();
    let packets = pcm
        .chunks(frames)
        .map(|c| enc.encode_vec_float(c, 1500).unwrap())
        .collect();
    (packets, pcm)
}

#[test]
fn opus_fec_recovers_isolated_losses() {
    let ms = NS_PER_MS as u64;
    let (packets, _) = opus_stream(true, 20, 500);
    let mut sim = Sim::new(Encoding::Opus, 48000, 1, 60 * ms);
    let mut dropped = 0;
    let mut covered = 0;
    for (k, p) in packets.iter().enumerate() {
        // Every 7th packet is lost (isolated), after a warm-up.
        if k > 10 && k % 7 == 0 {
            dropped += 1;
            // libopus leaves LBRR out of some packets (at the start, in quiet frames).
            covered += u64::from(crate::codec::opus::has_fec(&packets[k + 1]));
            continue;
        }
        let h = header(k as u16, (k * 960) as u32);
        sim.push(k as u64 * 20 * ms, h, p);
    }
    sim.run_until(10_200 * ms);
    let r = sim.p.rtp_stats();
    assert_eq!(sim.p.stats().lost, dropped);
    assert_eq!(
        r.fec_recovered, covered,
        "every loss the next packet covers is recovered"
    );
    assert!(covered * 100 >= dropped * 80, "{covered} of {dropped}");
    sim.assert_cadence();
}

#[test]
fn opus_without_fec_uses_the_codec_plc() {
    let ms = NS_PER_MS as u64;
    let (packets, _) = opus_stream(false, 20, 200);
    let mut sim = Sim::new(Encoding::Opus, 48000, 1, 60 * ms);
    for (k, p) in packets.iter().enumerate() {
        if k > 10 && k % 7 == 0 {
            continue;
        }
        sim.push(k as u64 * 20 * ms, header(k as u16, (k * 960) as u32), p);
    }
    sim.run_until(4_200 * ms);
    let r = sim.p.rtp_stats();
    assert_eq!(r.fec_recovered, 0);
    assert!(r.codec_plc_frames >= 27 * 960, "{}", r.codec_plc_frames);
    // PLC output is audible, not silence.
    assert!(sim.p.stats().concealed_frames >= 27 * 960);
    sim.assert_cadence();
}

#[test]
fn stream_drains_after_its_last_packet() {
    let ms = NS_PER_MS as u64;
    for opus in [false, true] {
        let mut sim = if opus {
            Sim::new(Encoding::Opus, 48000, 1, 60 * ms)
        } else {
            Sim::l16()
        };
        let (packets, _) = opus_stream(false, 20, 50);
        for k in 0..50i64 {
            let t = k as u64 * 20 * ms;
            if opus {
                sim.push(t, header(k as u16, (k * 960) as u32), &packets[k as usize]);
            } else {
                sim.push(
                    t,
                    header(k as u16, (k * 160) as u32),
                    &l16_payload(k * 160, 160),
                );
            }
        }
        let mut pops = 0;
        while !sim.p.is_drained() {
            sim.p.pop(&mut sim.buf);
            pops += 1;
            assert!(pops < 100, "opus {opus}: not drained after {pops} chunks");
        }
    }
}

#[test]
fn opus_timestamps_a_few_samples_off_still_drain_and_use_fec() {
    // Payloaders stamp RTP time from capture times: here every timestamp is up to 7 samples
    // off the 960-sample grid.
    let ms = NS_PER_MS as u64;
    let (packets, _) = opus_stream(true, 20, 300);
    let mut sim = Sim::new(Encoding::Opus, 48000, 1, 60 * ms);
    let mut dropped = 0;
    let mut covered = 0;
    for (k, p) in packets.iter().enumerate() {
        if k > 10 && k % 9 == 0 {
            dropped += 1;
            covered += u64::from(crate::codec::opus::has_fec(&packets[k + 1]));
            continue;
        }
        let ts = (k * 960 + (k * 7919) % 8) as u32;
        sim.push(k as u64 * 20 * ms, header(k as u16, ts), p);
    }
    sim.run_until(6_000 * ms);
    let mut pops = 0;
    while !sim.p.is_drained() {
        sim.p.pop(&mut sim.buf);
        pops += 1;
        assert!(pops < 20, "not drained after {pops} chunks");
    }
    assert_eq!(sim.p.rtp_stats().fec_recovered, covered, "of {dropped}");
}

#[test]
fn opus_fec_rebuilds_the_last_packet_of_a_burst() {
    let ms = NS_PER_MS as u64;
    let (packets, _) = opus_stream(true, 20, 400);
    let mut sim = Sim::new(Encoding::Opus, 48000, 1, 80 * ms);
    let (mut bursts, mut covered) = (0u64, 0u64);
    // Bursts of 2 and of 3 packets.
    let lost = |k: usize| k > 60 && (k % 20 < 2 || (30..33).contains(&(k % 50)));
    for (k, p) in packets.iter().enumerate() {
        if lost(k) {
            if !lost(k + 1) {
                bursts += 1;
                covered += u64::from(crate::codec::opus::has_fec(&packets[k + 1]));
            }
            continue;
        }
        sim.push(k as u64 * 20 * ms, header(k as u16, (k * 960) as u32), p);
    }
    sim.run_until(8_100 * ms);
    assert!(bursts >= 20, "{bursts} bursts");
    assert_eq!(
        sim.p.rtp_stats().dtx_frames,
        0,
        "burst concealment is loss, not a pause"
    );
    assert_eq!(
        sim.p.rtp_stats().fec_recovered,
        covered,
        "of {bursts} bursts"
    );
    sim.assert_cadence();
}

#[test]
fn late_talkspurt_start_with_marker_resyncs_at_once() {
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    // A talkspurt, 1 s of silence (nothing sent), then the next talkspurt arrives 100 ms later
    // than its timestamps say (the network's delay grew during the silence).
    for k in 0..100i64 {
        let pause = if k >= 50 { 1100 } else { 0 };
        let t = (k as u64 * 20 + pause) * ms;
        let ts = (k * 160 + if k >= 50 { 8000 } else { 0 }) as u32;
        let mut h = header(k as u16, ts);
        h.marker = k == 50;
        let out = sim.push(t, h, &l16_payload(k * 160, 160));
        if k == 50 {
            assert!(matches!(out, RtpPushOutcome::Resynced { .. }), "{out:?}");
        }
    }
    sim.run_until(3_500 * ms);
    assert_eq!(sim.p.stats().late, 0);
    assert_eq!(sim.p.stats().resyncs, 1);
    let v = sim.values();
    let first = find(&v, 0, 0).unwrap();
    // The whole second talkspurt plays (its first packet is cross-faded in).
    let at = find(&v, 51 * 160, first).expect("second talkspurt plays");
    let want: Vec<i16> = (51 * 160..100 * 160).map(sample).collect();
    assert_eq!(&v[at..at + want.len()], &want[..]);
    sim.assert_cadence();
}

#[test]
fn opus_dred_rebuilds_bursts_without_lbrr() {
    let ms = NS_PER_MS as u64;
    let packets = crate::codec::opus::tests::dred_packets(300);
    let mut sim = Sim::new(Encoding::Opus, 48000, 1, 80 * ms);
    // Bursts of 2 lost packets every 20, after a warm-up: no LBRR, so only DRED can help.
    let lost = |k: usize| k > 60 && k % 20 < 2;
    for (k, p) in packets.iter().enumerate() {
        if lost(k) {
            continue;
        }
        sim.push(k as u64 * 20 * ms, header(k as u16, (k * 960) as u32), p);
    }
    sim.run_until(6_100 * ms);
    let r = sim.p.rtp_stats();
    assert_eq!(r.fec_recovered, 0);
    let bursts = (0..300).filter(|&k| lost(k) && !lost(k + 1)).count() as u64;
    assert!(
        r.dred_recovered >= bursts * 2 * 9 / 10,
        "DRED rebuilt {} packets of {} lost",
        r.dred_recovered,
        bursts * 2
    );
    sim.assert_cadence();
}

#[test]
fn a_restart_interleaved_with_strays_still_resyncs() {
    // The stream plays 1 s, then restarts (new seq and ts bases); from then on, between any two
    // of its packets come 30 strays: random seq/ts, half with its SSRC. The restart must not be
    // locked out by the strays breaking its run.
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    let mut rng = crate::impair::Rng::new(11);
    stream(&mut sim, 0, 0, 0, 50, |_| Some(0));
    let mut resynced_at = None;
    for k in 50..150i64 {
        let t = k as u64 * 20 * ms;
        let h = header(30_000 + k as u16, 4_000_000 + (k * 160) as u32);
        let out = sim.push(t, h, &l16_payload(k * 160, 160));
        if matches!(out, RtpPushOutcome::Resynced { .. }) && resynced_at.is_none() {
            resynced_at = Some(k);
        }
        for i in 0..30u64 {
            let r = rng.next_u64();
            let ssrc = if r & 1 == 0 {
                SSRC
            } else {
                (r >> 32) as u32 | 1
            };
            let h = Header {
                seq: r as u16,
                ts: (r >> 16) as u32,
                ssrc,
                pt: 96,
                marker: r & 2 == 0,
            };
            sim.push(t + (i + 1) * ms / 2, h, &l16_payload(0, 80));
        }
    }
    sim.run_until(3_100 * ms);
    assert_eq!(
        resynced_at,
        Some(51),
        "the restart resyncs at its 2nd packet"
    );
    assert_eq!(sim.p.stats().resyncs, 1);
    let v = sim.values();
    let at = find(&v, 52 * 160, 8000).expect("the restarted stream plays");
    let want: Vec<i16> = (52 * 160..148 * 160).map(sample).collect();
    assert_eq!(&v[at..at + want.len()], &want[..]);
    assert_eq!(sim.p.ledger().unaccounted(), 0);
}

#[test]
fn two_senders_on_one_port_the_current_one_stays_until_it_stops() {
    // Sender A plays; sender B (another SSRC) sends to the same port 1 ms after each of A's
    // packets: A keeps the stream (its packets clear B's candidate run). A then restarts with
    // new seq/ts while B goes on: a run is proven within two packets (B's, whose packets follow
    // each other first), and it plays: no lock-out between two candidates.
    let mut sim = Sim::l16();
    let ms = NS_PER_MS as u64;
    for k in 0..150i64 {
        let t = k as u64 * 20 * ms;
        let a = if k < 50 {
            header(k as u16, (k * 160) as u32)
        } else {
            header(20_000 + k as u16, 3_000_000 + (k * 160) as u32)
        };
        sim.push(t, a, &l16_payload(k * 160, 160));
        let mut b = header(9_000 + k as u16, 777_000 + (k * 160) as u32);
        b.ssrc = 0xb0b;
        sim.push(t + ms, b, &l16_payload(500_000 + k * 160, 160));
    }
    sim.run_until(3_100 * ms);
    assert_eq!(sim.p.stats().resyncs, 1);
    assert_eq!(sim.p.rtp_stats().ssrc, Some(0xb0b));
    let v = sim.values();
    // A's first second plays, then B's stream from within two packets of A's restart.
    let want: Vec<i16> = (0..7_000).map(sample).collect();
    let start = find(&v, 0, 0).unwrap();
    assert_eq!(&v[start..start + 7_000], &want[..]);
    assert!(
        find(&v, 500_000 + 52 * 160, 0).is_some(),
        "B plays after A restarts"
    );
    assert_eq!(sim.p.ledger().unaccounted(), 0);
}

#[test]
fn opus_in_adaptive_mode_cuts_the_pauses_of_decoded_speech() {
    // Opus, 20 ms packets on time, starting at latency 200 ms in adaptive mode: the target
    // falls to the bottom of the range and the delay follows by cutting the pauses (1 s of a
    // voiced signal, then 0.6 s of it 60 dB lower) of what libopus decodes.
    let ms = NS_PER_MS as u64;
    let mut enc =
        ::opus::Encoder::new(48000, ::opus::Channels::Mono, ::opus::Application::Voip).unwrap();
    enc.set_bitrate(::opus::Bitrate::Bits(32000)).unwrap();
    let pcm: Vec<f32> = (0..48_000 * 6)
        .map(|i| {
            let t = i as f32 / 48000.0;
            let gain = if t % 1.6 >= 1.0 { 0.001 } else { 1.0 };
            gain * (1..6)
                .map(|h| 0.08 / h as f32 * (std::f32::consts::TAU * 140.0 * h as f32 * t).sin())
                .sum::<f32>()
        })
        .collect();
    let mut sim = Sim::new(Encoding::Opus, 48000, 1, 200 * ms);
    sim.p.set_drift_mode(DriftMode::Adaptive);
    for (k, c) in pcm.chunks(960).enumerate() {
        let p = enc.encode_vec_float(c, 1500).unwrap();
        sim.push(k as u64 * 20 * ms, header(k as u16, (k * 960) as u32), &p);
    }
    sim.run_until(6_000 * ms);
    let d = sim.p.drift_stats();
    let st = sim.p.stats();
    eprintln!(
        "opus adaptive: {:.1} ms cut, measured {:.1} ms, target {:.1} ms, late {}, lost {}",
        d.compressed_frames as f64 / 48.0,
        d.measured_delay_ns / 1e6,
        d.target_delay_ns / 1e6,
        st.late,
        st.lost
    );
    // Most of the 190 ms above the target was cut from the first pause.
    assert!(d.compressed_frames >= 48 * 150, "{}", d.compressed_frames);
    assert!(d.measured_delay_ns - d.target_delay_ns < 5e6, "{d:?}");
    assert_eq!((st.late, st.lost, st.resyncs), (0, 0, 0));
    sim.assert_cadence();
}

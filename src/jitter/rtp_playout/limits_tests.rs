// SPDX-License-Identifier: MPL-2.0
//! The RTP playout's ledger and memory caps: random traffic with the ledger checked after every
//! push and pop, one test per bucket, and the caps under adversarial streams.

use super::*;
use crate::codec::Encoding;
use crate::impair::Rng;
use crate::jitter::time::NS_PER_MS;

const MS: u64 = NS_PER_MS as u64;
const SSRC: u32 = 0x1234_5678;

fn l16(frames: i64) -> Vec<u8> {
    (0..frames)
        .flat_map(|n| ((n % 1000 + 1) as i16).to_be_bytes())
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

fn playout(latency: u64) -> RtpPlayout {
    let dec = PayloadDecoder::new(Encoding::L16, 8000, 1, 10).unwrap();
    RtpPlayout::new(dec, latency)
}

/// The invariants that hold at every moment: the ledger reconciles, its `queued`/`held` are
/// the store and the run, the byte count is what they hold, and the caps hold.
#[track_caller]
fn check(p: &RtpPlayout) {
    let l = p.ledger();
    assert_eq!(l.unaccounted(), 0, "{l:?}");
    assert_eq!(l.queued, p.store.len() as u64);
    assert_eq!(l.held, p.run.len() as u64);
    let bytes: usize = p.store.values().map(|s| s.payload.len()).sum::<usize>()
        + p.run.iter().map(|m| m.payload.len()).sum::<usize>();
    assert_eq!(p.queued_bytes(), bytes);
    assert_eq!(p.queued_packets(), p.store.len() + p.run.len());
    let lim = p.limits();
    assert!(
        p.queued_packets() <= lim.max_packets,
        "{} > {lim:?}",
        p.queued_packets()
    );
    assert!(
        p.queued_bytes() <= lim.max_bytes,
        "{} > {lim:?}",
        p.queued_bytes()
    );
    assert!(p.run.len() <= MAX_RUN);
}

/// Pops every chunk due by `t`, checking after each; returns how many.
fn pop_until(p: &mut RtpPlayout, t: u64, buf: &mut Vec<f32>) -> u64 {
    let mut n = 0;
    while p.next_deadline().is_some_and(|d| d <= t) {
        p.pop(buf);
        check(p);
        n += 1;
    }
    n
}

/// A sender with loss, duplicates, reordering, jumps, SSRC changes, random packets, bursts,
/// floods, and a receiver that resets, changes latency and limits, and pops late at times.
fn random_traffic(seed: u64, steps: usize) -> Ledger {
    let mut rng = Rng::new(seed);
    let mut p = playout(40 * MS);
    let mut buf = Vec::new();
    let (mut ssrc, mut seq, mut ts) = (SSRC, 0u16, 0u32);
    let mut t = 0u64;
    let mut held_back: Vec<(Header, Vec<u8>)> = Vec::new();
    let mut stalled_until = 0u64;
    let mut frames = 160i64;
    for _ in 0..steps {
        let r = rng.next_f64();
        let mut sends: Vec<(Header, Vec<u8>)> = Vec::new();
        let next = |ssrc: u32, seq: &mut u16, ts: &mut u32, frames: i64, marker: bool| {
            let h = Header {
                seq: *seq,
                ts: *ts,
                ssrc,
                pt: 96,
                marker,
            };
            *seq = seq.wrapping_add(1);
            *ts = ts.wrapping_add(frames as u32);
            (h, l16(frames))
        };
        match r {
            r if r < 0.55 => {
                let pk = next(ssrc, &mut seq, &mut ts, frames, rng.next_f64() < 0.02);
                let x = rng.next_f64();
                if x < 0.05 {
                    // lost
                } else if x < 0.10 {
                    sends.push(pk.clone());
                    sends.push(pk);
                } else if x < 0.18 {
                    held_back.push(pk);
                } else {
                    sends.push(pk);
                }
                if rng.next_f64() < 0.3 && !held_back.is_empty() {
                    sends.push(held_back.remove(0));
                }
            }
            r if r < 0.58 => {
                // Sequence and/or timestamp jump, forward or back.
                let d = (rng.next_u64() % 60_000) as u16;
                seq = seq.wrapping_add(d);
                if rng.next_f64() < 0.5 {
                    ts = ts.wrapping_add((rng.next_u64() % 1_000_000) as u32);
                }
            }
            r if r < 0.60 => ssrc = rng.next_u64() as u32,
            r if r < 0.66 => {
                // A random packet (hostile or stray).
                let x = rng.next_u64();
                let h = Header {
                    seq: x as u16,
                    ts: (x >> 16) as u32,
                    ssrc: if x & 1 == 0 { ssrc } else { (x >> 48) as u32 },
                    pt: 96,
                    marker: x & 2 == 0,
                };
                sends.push((h, l16(1 + (x >> 40) as i64 % 400)));
            }
            r if r < 0.68 => {
                // A burst: the next half second at once.
                for _ in 0..(4000 / frames) {
                    sends.push(next(ssrc, &mut seq, &mut ts, frames, false));
                }
            }
            r if r < 0.69 => {
                // A flood: 300 packets in the same millisecond.
                for _ in 0..300 {
                    sends.push(next(ssrc, &mut seq, &mut ts, frames, false));
                }
            }
            r if r < 0.70 => {
                p.reset();
                check(&p);
            }
            r if r < 0.71 => p.set_latency((rng.next_u64() % 300) * MS),
            r if r < 0.73 => {
                let lim = Limits::new(
                    1 + (rng.next_u64() % 200) as usize,
                    1 + (rng.next_u64() % 40_000) as usize,
                );
                p.set_limits(lim);
                check(&p);
            }
            r if r < 0.74 => {
                // Not whole L16 frames: invalid.
                sends.push((header(seq, ts), vec![1, 2, 3]));
            }
            r if r < 0.75 => frames = [20, 80, 160, 320, 960][(rng.next_u64() % 5) as usize],
            r if r < 0.76 => stalled_until = t + (rng.next_u64() % 3000) * MS,
            _ => t += (rng.next_u64() % 2000) * MS, // an outage
        }
        for (h, payload) in sends {
            p.push(t, h, &payload);
            check(&p);
        }
        t += rng.next_u64() % (frames as u64 * 1_000_000 / 8 * 2 + 1);
        if t >= stalled_until {
            pop_until(&mut p, t, &mut buf);
        }
    }
    let l = p.ledger();
    assert_eq!(l.unaccounted(), 0);
    l
}

#[test]
fn ledger_reconciles_under_random_traffic() {
    let mut total = Ledger::default();
    for seed in 1..=12 {
        total.add(&random_traffic(seed, 4000));
    }
    eprintln!("{total:?}");
    // The traffic reached every bucket.
    for (name, n) in [
        ("played", total.played),
        ("duplicate", total.duplicate),
        ("late", total.late),
        ("overflow", total.overflow),
        ("misfit", total.misfit),
        ("invalid", total.invalid),
        ("resync", total.resync),
        ("flushed", total.flushed),
    ] {
        assert!(n > 0, "no packet went to {name}: {total:?}");
    }
}

#[test]
fn ledger_counts_played_packets_once() {
    let mut p = playout(40 * MS);
    let mut buf = Vec::new();
    for k in 0..100u64 {
        p.push(k * 20 * MS, header(k as u16, k as u32 * 160), &l16(160));
        check(&p);
        pop_until(&mut p, k * 20 * MS, &mut buf);
    }
    pop_until(&mut p, 3000 * MS, &mut buf);
    let l = p.ledger();
    assert_eq!(
        (l.received, l.played, l.queued, l.dropped()),
        (100, 100, 0, 0)
    );
}

#[test]
fn opus_packet_used_for_fec_then_played_counts_once() {
    let mut enc =
        ::opus::Encoder::new(48000, ::opus::Channels::Mono, ::opus::Application::Voip).unwrap();
    enc.set_inband_fec(true).unwrap();
    enc.set_packet_loss_perc(20).unwrap();
    enc.set_bitrate(::opus::Bitrate::Bits(32000)).unwrap();
    let pcm: Vec<f32> = (0..960 * 100)
        .map(|i| 0.3 * (i as f32 * 0.05).sin())
        .collect();
    let packets: Vec<Vec<u8>> = pcm
        .chunks(960)
        .map(|c| enc.encode_vec_float(c, 1500).unwrap())
        .collect();
    let dec = PayloadDecoder::new(Encoding::Opus, 48000, 1, 10).unwrap();
    let mut p = RtpPlayout::new(dec, 60 * MS);
    let mut buf = Vec::new();
    let mut sent = 0;
    for (k, pk) in packets.iter().enumerate() {
        let t = k as u64 * 20 * MS;
        pop_until(&mut p, t, &mut buf);
        if k % 10 == 5 {
            continue;
        }
        p.push(t, header(k as u16, k as u32 * 960), pk);
        sent += 1;
        check(&p);
    }
    pop_until(&mut p, 4000 * MS, &mut buf);
    let l = p.ledger();
    assert!(p.rtp_stats().fec_recovered >= 3, "{:?}", p.rtp_stats());
    assert_eq!(
        (l.received, l.played, l.dropped()),
        (sent, sent, 0),
        "{l:?}"
    );
}

#[test]
fn each_drop_reason_has_its_bucket() {
    let mut buf = Vec::new();
    // Duplicate.
    let mut p = playout(40 * MS);
    p.push(0, header(0, 0), &l16(160));
    assert_eq!(
        p.push(MS, header(0, 0), &l16(160)),
        RtpPushOutcome::Duplicate
    );
    assert_eq!(p.ledger().duplicate, 1);
    check(&p);

    // Late: its slot played already.
    let mut p = playout(40 * MS);
    p.push(0, header(0, 0), &l16(160));
    p.push(20 * MS, header(2, 320), &l16(160));
    pop_until(&mut p, 100 * MS, &mut buf);
    assert_eq!(
        p.push(100 * MS, header(1, 160), &l16(160)),
        RtpPushOutcome::Late
    );
    // Held as a possible moved timeline, then dropped when the stream goes on.
    assert_eq!(p.ledger().held, 1);
    check(&p);
    p.push(100 * MS, header(7, 1120), &l16(160));
    let l = p.ledger();
    assert_eq!((l.late, l.held, l.queued), (1, 0, 1), "{l:?}");
    check(&p);

    // Misfit: a stray SSRC, then the stream goes on.
    let mut p = playout(40 * MS);
    p.push(0, header(0, 0), &l16(160));
    let stray = Header {
        ssrc: 7,
        ..header(9000, 5)
    };
    assert_eq!(p.push(MS, stray, &l16(160)), RtpPushOutcome::Misfit);
    assert_eq!(p.ledger().held, 1);
    p.push(20 * MS, header(1, 160), &l16(160));
    assert_eq!((p.ledger().misfit, p.ledger().held), (1, 0));
    check(&p);

    // Invalid payload.
    let mut p = playout(40 * MS);
    assert!(matches!(
        p.push(0, header(0, 0), &[1]),
        RtpPushOutcome::Invalid(_)
    ));
    assert_eq!((p.ledger().received, p.ledger().invalid), (1, 1));
    check(&p);

    // Resync: what was queued on the old timeline goes.
    let mut p = playout(40 * MS);
    for k in 0..3u16 {
        p.push(0, header(k, u32::from(k) * 160), &l16(160));
    }
    let new = |k: u16| Header {
        ssrc: 99,
        ..header(500 + k, 77 + u32::from(k) * 160)
    };
    p.push(MS, new(0), &l16(160));
    assert!(matches!(
        p.push(MS, new(1), &l16(160)),
        RtpPushOutcome::Resynced { .. }
    ));
    // The run's first packet would play before the new timeline's start: late (it used to
    // vanish silently).
    let l = p.ledger();
    assert_eq!((l.resync, l.queued, l.held, l.late), (3, 1, 0, 1), "{l:?}");
    check(&p);

    // Flushed: a reset drops what is queued and held.
    p.push(2 * MS, stray, &l16(160));
    assert_eq!(p.ledger().held, 1);
    p.reset();
    let l = p.ledger();
    assert_eq!((l.flushed, l.queued, l.held), (2, 0, 0), "{l:?}");
    check(&p);

    // Overflow: a packet larger than the byte cap alone.
    let mut p = playout(40 * MS);
    p.set_limits(Limits::new(100, 300));
    assert_eq!(p.push(0, header(0, 0), &l16(160)), RtpPushOutcome::Overflow);
    assert_eq!(p.ledger().overflow, 1);
    assert!(!p.started());
    check(&p);
}

#[test]
fn overflow_drops_the_oldest_queued_and_keeps_the_newest() {
    let mut p = playout(400 * MS);
    p.set_limits(Limits::new(5, 1 << 20));
    for k in 0..12u16 {
        p.push(0, header(k, u32::from(k) * 160), &l16(160));
        check(&p);
    }
    assert_eq!(p.ledger().overflow, 7);
    assert_eq!(
        p.store.keys().copied().collect::<Vec<_>>(),
        vec![7, 8, 9, 10, 11]
    );
    // Shrinking applies at once; so does the byte cap (320 bytes a packet).
    p.set_limits(Limits::new(3, 1 << 20));
    assert_eq!(p.store.keys().copied().collect::<Vec<_>>(), vec![9, 10, 11]);
    p.set_limits(Limits::new(100, 700));
    assert_eq!(p.store.keys().copied().collect::<Vec<_>>(), vec![10, 11]);
    assert_eq!(p.ledger().overflow, 10);
    check(&p);
}

#[test]
fn held_misfits_go_before_queued_packets() {
    let mut p = playout(200 * MS);
    p.set_limits(Limits::new(4, 1 << 20));
    for k in 0..4u16 {
        p.push(0, header(k, u32::from(k) * 160), &l16(160));
    }
    let stray = Header {
        ssrc: 7,
        ..header(9000, 5)
    };
    assert_eq!(p.push(MS, stray, &l16(160)), RtpPushOutcome::Overflow);
    let l = p.ledger();
    assert_eq!((l.queued, l.held, l.overflow), (4, 0, 1), "{l:?}");
    check(&p);
}

/// Pushes `packets` (arrival, header, payload), popping at the deadlines, checking the caps and
/// the ledger after every push and pop. Returns the chunks popped.
fn drive(p: &mut RtpPlayout, packets: impl Iterator<Item = (u64, Header, Vec<u8>)>) -> u64 {
    let mut buf = Vec::new();
    let mut chunks = 0;
    let mut last = 0;
    for (t, h, payload) in packets {
        chunks += pop_until(p, t, &mut buf);
        p.push(t, h, &payload);
        check(p);
        last = t;
    }
    chunks + pop_until(p, last + 500 * MS, &mut buf)
}

fn capped(latency: u64, max_packets: usize, max_bytes: usize) -> RtpPlayout {
    let mut p = playout(latency);
    p.set_limits(Limits::new(max_packets, max_bytes));
    p
}

#[test]
fn caps_hold_under_an_in_order_flood() {
    // 20 packets of 10 ms per millisecond for 2 s: 200 times real time. With a long latency
    // the first second of the flood fits the timeline and the caps bind; then the packets run
    // too far ahead, and resync after resync drops the old timeline.
    for (latency, max_packets, max_bytes) in [
        (40, 64, 1 << 20),
        (1000, 64, 1 << 20),
        (1000, 4096, 8000),
        (10_000, MAX_PACKETS, 1 << 23),
    ] {
        let mut p = capped(latency * MS, max_packets, max_bytes);
        let n = drive(
            &mut p,
            (0..40_000u32).map(|k| {
                let t = u64::from(k) / 20 * MS;
                (t, header(k as u16, k * 80), l16(80))
            }),
        );
        let l = p.ledger();
        assert!(l.overflow + l.resync > 30_000, "{l:?}");
        if latency == 1000 {
            assert!(l.overflow > 0, "{l:?}");
        }
        // The output kept its clock: one chunk per 10 ms.
        let due = (1999 + 500u64)
            .checked_sub(latency)
            .map_or(0, |d| d / 10 + 1);
        assert_eq!(n, due, "{l:?}");
    }
}

#[test]
fn caps_hold_under_far_future_sequence_numbers() {
    // A steady stream, and between its packets, packets 30000 ahead (alone, and in runs that
    // resync).
    let mut p = capped(40 * MS, 50, 20_000);
    let mut rng = Rng::new(9);
    let mut base = 0u16;
    let packets = (0..20_000u64).map(|k| {
        let t = k * 5 * MS;
        if k % 2 == 0 {
            base = base.wrapping_add(1);
            (t, header(base, u32::from(base) * 160), l16(160))
        } else {
            let seq = base.wrapping_add(30_000 + (rng.next_u64() % 3) as u16);
            let ts = (rng.next_u64() as u32) | 1;
            (t, header(seq, ts), l16(1 + (rng.next_u64() % 1000) as i64))
        }
    });
    drive(&mut p, packets);
    let l = p.ledger();
    assert!(l.misfit + l.resync + l.overflow > 1000, "{l:?}");
}

#[test]
fn caps_hold_under_random_sequence_numbers_and_ssrcs() {
    for (max_packets, max_bytes, ssrcs) in [(20, 4000, false), (20, 4000, true), (1, 1, true)] {
        let mut p = capped(40 * MS, max_packets, max_bytes);
        let mut rng = Rng::new(4);
        let packets = (0..30_000u64).map(|k| {
            let r = rng.next_u64();
            let h = Header {
                seq: r as u16,
                ts: (r >> 16) as u32,
                ssrc: if ssrcs { (r >> 48) as u32 } else { SSRC },
                pt: 96,
                marker: r & (1 << 63) != 0,
            };
            (k * 100_000, h, l16(1 + (rng.next_u64() % 2000) as i64))
        });
        drive(&mut p, packets);
        assert!(p.ledger().played < 10, "{:?}", p.ledger());
    }
}

#[test]
fn burst_after_outage_keeps_the_newest_and_the_delay() {
    // 10 ms packets, latency 40 ms. The network holds everything for N seconds, then delivers
    // it at once with the packet due now; the stream goes on in real time. The caps leave room
    // for 8 packets.
    for n in [1u64, 5, 30] {
        let mut p = playout(40 * MS);
        p.set_limits(Limits::new(8, 1 << 20));
        let mut buf = Vec::new();
        let mut chunks = 0u64;
        let outage = 1000..1000 + n * 100;
        let mut pending = Vec::new();
        let end = 1000 + n * 100 + 300;
        let mut back_at_target = None;
        for k in 0..end {
            let t = k * 10 * MS;
            chunks += pop_until(&mut p, t, &mut buf);
            let pk = (header(k as u16, k as u32 * 80), l16(80));
            if outage.contains(&k) {
                pending.push(pk);
                continue;
            }
            pending.push(pk);
            for (h, payload) in pending.drain(..) {
                p.push(t, h, &payload);
                check(&p);
            }
            // The newest packet's wait is back at the latency.
            if k >= outage.end
                && back_at_target.is_none()
                && p.stats().last_wait_ns == Some(40 * MS as i64)
            {
                back_at_target = Some(k - outage.end);
            }
            // Never more queued than the latency and a packet.
            if k > outage.end {
                assert!(p.queued_frames() <= 320 + 80, "{}", p.queued_frames());
            }
        }
        // Back at the target delay with the first packet after the outage.
        assert_eq!(back_at_target, Some(0), "outage {n} s");
        // Output never ran faster than its clock: one chunk per 10 ms since the first deadline.
        assert_eq!(chunks, (end - 1) * 10 / 10 - 4 + 1, "outage {n} s");
        let l = p.ledger();
        assert_eq!(p.stats().resyncs, 0, "{l:?}");
        // The old part of the burst is late, or went to the caps while held as a late run.
        assert!(l.late + l.overflow >= n * 100 - 8, "{l:?}");
    }
}

// SPDX-License-Identifier: MPL-2.0
//! The raw playout's ledger and memory caps: random traffic with the ledger checked after every
//! push and pop, one test per bucket, and the caps under adversarial arrivals.

use super::*;
use crate::impair::Rng;

const MS: u64 = 1_000_000;

/// The invariants that hold at every moment: the ledger reconciles, `queued` is the queue, the
/// byte count is what it holds, and the caps hold.
#[track_caller]
fn check(p: &Playout) {
    let l = p.ledger();
    assert_eq!(l.unaccounted(), 0, "{l:?}");
    assert_eq!(l.queued, p.queue.len() as u64);
    assert_eq!(l.held, 0);
    let bytes: usize = p.queue.iter().map(|q| q.data.len() * 4).sum();
    assert_eq!(p.queued_bytes(), bytes);
    assert_eq!(p.queued_packets(), p.queue.len());
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
}

fn pop_until(p: &mut Playout, t: u64, buf: &mut Vec<f32>) -> u64 {
    let mut n = 0;
    while p.next_deadline().is_some_and(|d| d <= t) {
        p.pop(buf);
        check(p);
        n += 1;
    }
    n
}

fn datagram(frames: usize, channels: usize) -> Vec<f32> {
    (0..frames * channels)
        .map(|i| ((i % 50) as f32 - 25.0) / 100.0)
        .collect()
}

/// Steady datagrams with jitter, loss, stalls and bursts, floods, arrival times that jump back
/// or far ahead, resets, latency and limit changes, partial frames, and pops that stall.
fn random_traffic(seed: u64, steps: usize) -> Ledger {
    let mut rng = Rng::new(seed);
    let ch = 2;
    let mut p = Playout::new(8000, ch, 40 * MS);
    // Every mode: the ledger must reconcile whatever the drift compensation does.
    p.set_drift_mode([DriftMode::Off, DriftMode::Fixed, DriftMode::Adaptive][seed as usize % 3]);
    let mut buf = Vec::new();
    let mut t = 0u64;
    let mut frames = 80usize;
    let mut stalled_until = 0u64;
    let mut queued: Vec<Vec<f32>> = Vec::new();
    for _ in 0..steps {
        let r = rng.next_f64();
        let mut sends: Vec<(u64, Vec<f32>)> = Vec::new();
        match r {
            r if r < 0.60 => {
                let x = rng.next_f64();
                if x < 0.05 {
                    // lost
                } else if x < 0.10 {
                    queued.push(datagram(frames, ch)); // stalled in the network
                } else {
                    let j = rng.next_u64() % (20 * MS);
                    sends.push((t + j, datagram(frames, ch)));
                }
                if rng.next_f64() < 0.2 {
                    sends.extend(queued.drain(..).map(|d| (t, d)));
                }
            }
            r if r < 0.62 => {
                for _ in 0..300 {
                    sends.push((t, datagram(frames, ch)));
                }
            }
            r if r < 0.64 => {
                // Arrival time anomalies: backwards, zero, far ahead.
                let a = match rng.next_u64() % 3 {
                    0 => t.saturating_sub(rng.next_u64() % (5000 * MS)),
                    1 => 0,
                    _ => t + rng.next_u64() % (100_000 * MS),
                };
                sends.push((a, datagram(frames, ch)));
            }
            r if r < 0.65 => {
                p.reset();
                check(&p);
            }
            r if r < 0.66 => p.set_latency((rng.next_u64() % 300) * MS),
            r if r < 0.68 => {
                p.set_limits(Limits::new(
                    1 + (rng.next_u64() % 200) as usize,
                    1 + (rng.next_u64() % 100_000) as usize,
                ));
                check(&p);
            }
            r if r < 0.69 => sends.push((t, vec![0.5])), // not a whole frame
            r if r < 0.70 => frames = [1, 20, 80, 160, 480, 8000][(rng.next_u64() % 6) as usize],
            r if r < 0.71 => stalled_until = t + (rng.next_u64() % 3000) * MS,
            r if r < 0.72 => t += (rng.next_u64() % 2000) * MS,
            _ => {}
        }
        for (a, d) in sends {
            p.push(a, &d);
            check(&p);
        }
        t += rng.next_u64() % (frames as u64 * MS / 4 + 1);
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
        total.add(&random_traffic(seed, 3000));
    }
    eprintln!("{total:?}");
    for (name, n) in [
        ("played", total.played),
        ("late", total.late),
        ("overflow", total.overflow),
        ("invalid", total.invalid),
        ("resync", total.resync),
        ("flushed", total.flushed),
    ] {
        assert!(n > 0, "no datagram went to {name}: {total:?}");
    }
    assert_eq!((total.duplicate, total.misfit, total.held), (0, 0, 0));
}

#[test]
fn each_bucket_of_the_raw_playout() {
    let mut buf = Vec::new();
    let mut p = Playout::new(8000, 1, 40 * MS);
    // Invalid: no whole frame (a stereo playout given one sample).
    let mut st = Playout::new(8000, 2, 40 * MS);
    assert_eq!(st.push(0, &[0.1]), PushOutcome::Empty);
    assert_eq!((st.ledger().received, st.ledger().invalid), (1, 1));
    check(&st);

    // Played.
    for k in 0..10u64 {
        p.push(k * 10 * MS, &datagram(80, 1));
        pop_until(&mut p, k * 10 * MS, &mut buf);
        check(&p);
    }
    pop_until(&mut p, 200 * MS, &mut buf);
    assert_eq!((p.ledger().played, p.ledger().queued), (10, 0));

    // Late: its slot was played.
    assert_eq!(p.push(0, &datagram(80, 1)), PushOutcome::Late);
    assert_eq!(p.ledger().late, 1);
    check(&p);

    // Resync: see the random traffic (a resync finds queued datagrams only after delay
    // control moved the timeline).

    // Flushed; a datagram partly played before it is dropped counts as played.
    let mut p = Playout::new(8000, 1, 40 * MS);
    p.push(0, &datagram(160, 1));
    p.push(20 * MS, &datagram(160, 1));
    pop_until(&mut p, 40 * MS, &mut buf); // half of the first one
    p.reset();
    let l = p.ledger();
    assert_eq!((l.played, l.flushed, l.queued), (1, 1, 0), "{l:?}");
    check(&p);

    // Overflow: by the caps (oldest first), and a datagram larger than the byte cap alone.
    let mut p = Playout::new(8000, 1, 400 * MS);
    p.set_limits(Limits::new(3, 1 << 20));
    for k in 0..6u64 {
        p.push(k * MS, &[k as f32 / 10.0; 80]);
        check(&p);
    }
    assert_eq!(p.ledger().overflow, 3);
    assert_eq!(p.queue.front().map(|q| q.data[0]), Some(0.3));
    p.set_limits(Limits::new(100, 640));
    assert_eq!((p.ledger().overflow, p.queued_packets()), (4, 2));
    assert_eq!(p.push(7 * MS, &datagram(161, 1)), PushOutcome::Overflow);
    assert_eq!((p.ledger().overflow, p.queued_packets()), (5, 2));
    check(&p);
}

fn capped(latency: u64, max_packets: usize, max_bytes: usize) -> Playout {
    let mut p = Playout::new(48000, 2, latency);
    p.set_limits(Limits::new(max_packets, max_bytes));
    p
}

fn drive(p: &mut Playout, datagrams: impl Iterator<Item = (u64, Vec<f32>)>) -> u64 {
    let mut buf = Vec::new();
    let mut chunks = 0;
    let mut last = 0;
    for (t, d) in datagrams {
        chunks += pop_until(p, t, &mut buf);
        p.push(t, &d);
        check(p);
        last = last.max(t);
    }
    chunks + pop_until(p, last + 500 * MS, &mut buf)
}

#[test]
fn caps_hold_under_an_in_order_flood() {
    // 20 datagrams of 10 ms per millisecond for 2 s.
    for (latency, max_packets, max_bytes) in [
        (40, 64, 1 << 20),
        (1000, 64, 1 << 23),
        (1000, 4096, 100_000),
        (10_000, 4096, 1 << 23),
    ] {
        let mut p = capped(latency * MS, max_packets, max_bytes);
        let d = datagram(480, 2);
        let n = drive(&mut p, (0..40_000u64).map(|k| (k / 20 * MS, d.clone())));
        let l = p.ledger();
        assert!(l.overflow > 30_000, "{l:?}");
        let due = (1999 + 500u64)
            .checked_sub(latency)
            .map_or(0, |d| d / 10 + 1);
        assert_eq!(n, due, "{l:?}");
    }
}

#[test]
fn caps_hold_under_random_arrival_times() {
    // Arrival times anywhere in a minute, forwards and back, of random sizes.
    let mut p = capped(200 * MS, 100, 200_000);
    let mut rng = Rng::new(8);
    let v: Vec<(u64, Vec<f32>)> = (0..20_000)
        .map(|_| {
            let t = rng.next_u64() % (60_000 * MS);
            (t, datagram(1 + (rng.next_u64() % 4800) as usize, 2))
        })
        .collect();
    let mut buf = Vec::new();
    for (t, d) in v {
        p.push(t, &d);
        check(&p);
        if rng.next_f64() < 0.5 {
            pop_until(&mut p, t, &mut buf);
        }
    }
    assert!(p.ledger().overflow > 0, "{:?}", p.ledger());
}

#[test]
fn caps_hold_under_huge_datagrams() {
    let mut p = capped(5000 * MS, 10, 1 << 20);
    let big = datagram(48000, 2); // 1 s: 384000 bytes as floats
    drive(&mut p, (0..200u64).map(|k| (k * 100 * MS, big.clone())));
    assert!(p.ledger().overflow > 0);
    let huge = datagram(48000 * 3, 2); // 1.15 MB: above the cap alone
    assert_eq!(p.push(30_000 * MS, &huge), PushOutcome::Overflow);
    check(&p);
}

#[test]
fn burst_after_outage_keeps_the_newest_and_bounds_the_delay() {
    // 10 ms datagrams, latency 40 ms. The network holds everything for N seconds, then delivers
    // it at once with the datagram due now; the stream goes on in real time. The output is
    // popped exactly at its deadlines. Raw PCM has no timestamps: the burst is placed as
    // contiguous audio, what lands behind the play head is late, and what runs past the queue's
    // bound (latency + max(latency, 100 ms)) or the caps is dropped, oldest first.
    for (n, max_packets) in [(1u64, 8), (5, 8), (30, 8), (5, 4096), (30, 4096)] {
        let mut p = Playout::new(8000, 1, 40 * MS);
        p.set_limits(Limits::new(max_packets, 1 << 20));
        let mut buf = Vec::new();
        let mut chunks = 0u64;
        let outage = 1000..1000 + n * 100;
        let end = outage.end + 300;
        let mut held = 0;
        let mut max_wait = 0;
        for k in 0..end {
            let t = k * 10 * MS;
            chunks += pop_until(&mut p, t, &mut buf);
            if outage.contains(&k) {
                held += 1;
                continue;
            }
            for _ in 0..=held {
                p.push(t, &datagram(80, 1));
                check(&p);
            }
            held = 0;
            if k > outage.end {
                max_wait = max_wait.max(p.stats().last_wait_ns.unwrap_or(0) as u64);
            }
        }
        // From the datagram after the burst on, the delay is within the caps (8 datagrams) or
        // the queue's bound (140 ms, plus a datagram and a chunk).
        let bound = if max_packets == 8 { 80 * MS } else { 160 * MS };
        assert!(max_wait <= bound, "outage {n} s: {max_wait}");
        if n == 1 {
            // A burst shorter than the gap logic's reach is taken back as late: at the target.
            assert_eq!(max_wait, 40 * MS);
        }
        // Output never ran faster than its clock: one chunk per 10 ms.
        assert_eq!(chunks, end - 4, "outage {n} s");
        let l = p.ledger();
        eprintln!("outage {n} s, caps {max_packets}: wait {max_wait} {l:?}");
        // All but the newest few of the burst went, whole or (a few) cut by the skip.
        assert!(l.late + l.overflow >= n * 100 - 16, "{l:?}");
    }
}

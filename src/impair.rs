// SPDX-License-Identifier: MPL-2.0
//! A deterministic model of a bad network and a sender with its own clock, for the demo, the
//! end-to-end tests and the benchmarks: which datagrams are lost and when each one arrives.
//!
//! Pure: no sockets, no clock. The caller sends datagram `index` at `send_at_ns` after its start.
//! Delays keep the order of datagrams (as a FIFO network queue does): a datagram never leaves
//! before the one ahead of it.

/// How the network and the sender misbehave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Probability that a datagram is lost, 0..=1 (independent losses).
    pub loss: f64,
    /// Each datagram is delayed by a uniform random 0..=`jitter_ns` (order kept).
    pub jitter_ns: u64,
    /// The sender's clock runs this many parts per million fast (negative: slow).
    pub skew_ppm: f64,
    /// Seed of the pseudo-random sequence; the same seed gives the same schedule.
    pub seed: u64,
}

impl Default for Impairment {
    fn default() -> Self {
        Self {
            loss: 0.0,
            jitter_ns: 0,
            skew_ppm: 0.0,
            seed: 1,
        }
    }
}

/// SplitMix64: small, fast, and good enough for simulated networks.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One datagram that gets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Index of the datagram in the sender's stream.
    pub index: u64,
    /// When the sender's clock says it was sent, in receiver nanoseconds since the start.
    pub sent_ns: u64,
    /// When it reaches the receiver, in nanoseconds since the start.
    pub arrive_ns: u64,
}

/// The deliveries of a stream of datagrams of `period_ns` each (by the sender's clock), in
/// arrival order. Lost datagrams are skipped and counted.
#[derive(Debug, Clone)]
pub struct Schedule {
    imp: Impairment,
    period_ns: u64,
    rng: Rng,
    next_index: u64,
    last_arrival: u64,
    lost: u64,
}

impl Schedule {
    pub fn new(imp: Impairment, period_ns: u64) -> Self {
        Self {
            imp,
            period_ns,
            rng: Rng::new(imp.seed),
            next_index: 0,
            last_arrival: 0,
            lost: 0,
        }
    }

    /// Datagrams lost so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Datagrams generated so far (delivered or lost).
    pub fn generated(&self) -> u64 {
        self.next_index
    }
}

impl Iterator for Schedule {
    type Item = Delivery;

    fn next(&mut self) -> Option<Delivery> {
        loop {
            let index = self.next_index;
            self.next_index += 1;
            // A fast sender clock makes each period shorter in receiver time.
            let sent = (index as f64 * self.period_ns as f64 / (1.0 + self.imp.skew_ppm * 1e-6))
                .round() as u64;
            // Draw both numbers every time so the loss pattern does not depend on the jitter.
            let lost = self.rng.next_f64() < self.imp.loss;
            let delay = (self.rng.next_f64() * (self.imp.jitter_ns as f64 + 1.0)) as u64;
            if lost && index > 0 {
                self.lost += 1;
                continue;
            }
            let arrive = (sent + delay.min(self.imp.jitter_ns)).max(self.last_arrival);
            self.last_arrival = arrive;
            return Some(Delivery {
                index,
                sent_ns: sent,
                arrive_ns: arrive,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn no_impairment_is_a_perfect_clock() {
        let s: Vec<_> = Schedule::new(Impairment::default(), 10 * MS)
            .take(5)
            .collect();
        for (i, d) in s.iter().enumerate() {
            assert_eq!(d.index, i as u64);
            assert_eq!(d.arrive_ns, i as u64 * 10 * MS);
        }
    }

    #[test]
    fn loss_rate_and_jitter_bounds_hold() {
        let imp = Impairment {
            loss: 0.1,
            jitter_ns: 20 * MS,
            skew_ppm: 0.0,
            seed: 3,
        };
        let mut s = Schedule::new(imp, 10 * MS);
        let mut last = 0;
        let delivered: Vec<_> = s.by_ref().take(100_000).collect();
        for d in &delivered {
            assert!(d.arrive_ns >= d.sent_ns && d.arrive_ns <= d.sent_ns + 20 * MS);
            assert!(d.arrive_ns >= last, "order kept");
            last = d.arrive_ns;
        }
        let rate = s.lost() as f64 / s.generated() as f64;
        assert!((rate - 0.1).abs() < 0.005, "{rate}");
    }

    #[test]
    fn skew_stretches_or_shrinks_the_period() {
        let fast = Impairment {
            skew_ppm: 1000.0,
            ..Default::default()
        };
        let d = Schedule::new(fast, 10 * MS).nth(1000).unwrap();
        // 1000 periods of 10 ms by a clock 0.1 % fast take 9.99 s of receiver time.
        assert_eq!(d.arrive_ns, 9_990_009_990);
    }

    #[test]
    fn same_seed_same_schedule() {
        let imp = Impairment {
            loss: 0.2,
            jitter_ns: 5 * MS,
            skew_ppm: 0.0,
            seed: 9,
        };
        let a: Vec<_> = Schedule::new(imp, MS).take(1000).collect();
        let b: Vec<_> = Schedule::new(imp, MS).take(1000).collect();
        assert_eq!(a, b);
    }
}

// SPDX-License-Identifier: MPL-2.0
//! Rate limiting for warnings about bad input: at most one report per class per interval.
//!
//! Pure: the caller passes `now` (any monotonic nanosecond count) and gets back whether to report
//! and how many events were suppressed since the last report.

/// Allows one report per `interval_ns` and counts what it suppressed in between.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    interval_ns: u64,
    last: Option<u64>,
    suppressed: u64,
}

impl RateLimiter {
    pub const fn new(interval_ns: u64) -> Self {
        Self {
            interval_ns,
            last: None,
            suppressed: 0,
        }
    }

    /// Records one event at `now_ns`. Returns `Some(suppressed)` when it should be reported, with
    /// the number of events swallowed since the previous report, or `None` to stay quiet.
    pub fn check(&mut self, now_ns: u64) -> Option<u64> {
        let due = match self.last {
            None => true,
            // A clock that went backwards (restart, another clock) also re-opens the gate.
            Some(last) => now_ns < last || now_ns - last >= self.interval_ns,
        };
        if due {
            self.last = Some(now_ns);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_event_is_reported_then_one_per_interval() {
        let mut r = RateLimiter::new(1_000);
        assert_eq!(r.check(0), Some(0));
        assert_eq!(r.check(1), None);
        assert_eq!(r.check(999), None);
        assert_eq!(r.check(1_000), Some(2));
        assert_eq!(r.check(1_500), None);
        assert_eq!(r.check(2_000), Some(1));
    }

    #[test]
    fn clock_going_backwards_reopens() {
        let mut r = RateLimiter::new(1_000);
        assert_eq!(r.check(5_000), Some(0));
        assert_eq!(r.check(10), Some(0));
    }
}

//! Open vSwitch's controller rate limiter (`pinsched`): a token bucket per controller
//! connection that paces its packet-ins to `controller_rate_limit` packets per second, with a
//! queue of up to `controller_burst_limit` packet-ins waiting for tokens; beyond that they are
//! dropped (and counted).
//!
//! Units as in Open vSwitch's `token_bucket`: one packet costs 1000 tokens, the bucket gains
//! `rate` tokens per millisecond (so `rate` packets per second) and holds at most
//! `burst * 1000` tokens. Time is the caller's millisecond clock, so the bucket is
//! deterministic under test.

use alloc::collections::VecDeque;

use crate::openflow::PacketIn;

/// A controller connection's rate limit (OVSDB `Controller.controller_rate_limit` and
/// `controller_burst_limit`, or `controller.rate_limit=` / `controller.burst_limit=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Packet-ins per second (at least [`RateLimit::MIN_RATE`]).
    pub rate: u32,
    /// Packet-ins sent at once after a quiet period, and queued while over the rate (at least
    /// [`RateLimit::MIN_BURST`]).
    pub burst: u32,
}

impl RateLimit {
    /// Open vSwitch's smallest `controller_rate_limit` (smaller values are raised to it).
    pub const MIN_RATE: u32 = 100;
    /// Open vSwitch's smallest `controller_burst_limit`.
    pub const MIN_BURST: u32 = 25;

    /// The limit Open vSwitch applies for these column values: the rate raised to 100, the
    /// burst `rate / 4` when not given, raised to 25.
    pub fn new(rate: u32, burst: Option<u32>) -> RateLimit {
        let rate = rate.max(Self::MIN_RATE);
        let burst = burst
            .filter(|b| *b > 0)
            .unwrap_or(rate / 4)
            .max(Self::MIN_BURST);
        // The bucket counts burst * 1000 tokens in a u64: no overflow for any u32.
        RateLimit { rate, burst }
    }

    /// From OVSDB integers (`None` when no rate is set: no limit).
    pub fn from_columns(rate: Option<i64>, burst: Option<i64>) -> Option<RateLimit> {
        let clamp = |v: i64| v.clamp(0, u32::MAX as i64) as u32;
        let rate = rate.map(clamp).filter(|r| *r > 0)?;
        Some(RateLimit::new(rate, burst.map(clamp)))
    }
}

/// Tokens per packet (Open vSwitch's `pinsched` withdraws 1000 per packet).
const TOKENS_PER_PACKET: u64 = 1000;

/// A token bucket on a millisecond clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens gained per millisecond.
    rate: u64,
    /// Most tokens held.
    burst: u64,
    tokens: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn new(limit: RateLimit, now_ms: u64) -> TokenBucket {
        let burst = limit.burst as u64 * TOKENS_PER_PACKET;
        TokenBucket {
            rate: limit.rate as u64,
            burst,
            tokens: burst,
            last_ms: now_ms,
        }
    }

    /// Changes the limits; the tokens held are kept (cut to the new burst).
    pub fn set_limit(&mut self, limit: RateLimit, now_ms: u64) {
        self.refill(now_ms);
        self.rate = limit.rate as u64;
        self.burst = limit.burst as u64 * TOKENS_PER_PACKET;
        self.tokens = self.tokens.min(self.burst);
    }

    fn refill(&mut self, now_ms: u64) {
        if now_ms > self.last_ms {
            let gained = (now_ms - self.last_ms).saturating_mul(self.rate);
            self.tokens = self.tokens.saturating_add(gained).min(self.burst);
            self.last_ms = now_ms;
        }
    }

    /// Takes one packet's tokens at `now_ms`, if there are enough.
    pub fn take(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        if self.tokens >= TOKENS_PER_PACKET {
            self.tokens -= TOKENS_PER_PACKET;
            true
        } else {
            false
        }
    }

    /// Whole packets the bucket would let through at `now_ms` (without taking them).
    pub fn available(&mut self, now_ms: u64) -> u64 {
        self.refill(now_ms);
        self.tokens / TOKENS_PER_PACKET
    }
}

/// What the pacer did with an offered packet-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Send it now.
    Send(PacketIn),
    /// Queued until tokens allow.
    Queued,
    /// The pacing queue is full: dropped.
    Dropped,
}

/// One connection's packet-in scheduler: the bucket and the packet-ins waiting for tokens.
#[derive(Debug)]
pub(crate) struct Pacer {
    pub limit: RateLimit,
    bucket: TokenBucket,
    queue: VecDeque<PacketIn>,
}

impl Pacer {
    pub fn new(limit: RateLimit, now_ms: u64) -> Pacer {
        Pacer {
            limit,
            bucket: TokenBucket::new(limit, now_ms),
            queue: VecDeque::new(),
        }
    }

    /// New limits; queued packet-ins beyond the new burst are dropped (returned count).
    pub fn set_limit(&mut self, limit: RateLimit, now_ms: u64) -> usize {
        self.limit = limit;
        self.bucket.set_limit(limit, now_ms);
        let mut dropped = 0;
        while self.queue.len() > limit.burst as usize {
            self.queue.pop_back();
            dropped += 1;
        }
        dropped
    }

    /// As `pinsched_send`: straight through while nothing waits and a token is there, else
    /// queued up to the burst, else dropped.
    pub fn offer(&mut self, pi: PacketIn, now_ms: u64) -> Offer {
        if self.queue.is_empty() && self.bucket.take(now_ms) {
            Offer::Send(pi)
        } else if self.queue.len() >= self.limit.burst as usize {
            Offer::Dropped
        } else {
            self.queue.push_back(pi);
            Offer::Queued
        }
    }

    /// The next queued packet-in the tokens allow at `now_ms`.
    pub fn next_due(&mut self, now_ms: u64) -> Option<PacketIn> {
        if self.queue.is_empty() || !self.bucket.take(now_ms) {
            return None;
        }
        self.queue.pop_front()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Everything still queued (the limit is being removed).
    pub fn take_all(&mut self) -> VecDeque<PacketIn> {
        core::mem::take(&mut self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_open_vswitch() {
        assert_eq!(
            RateLimit::new(1000, None),
            RateLimit {
                rate: 1000,
                burst: 250
            }
        );
        assert_eq!(
            RateLimit::new(10, None),
            RateLimit {
                rate: 100,
                burst: 25
            }
        );
        assert_eq!(RateLimit::new(1000, Some(5)).burst, 25);
        assert_eq!(RateLimit::new(1000, Some(40)).burst, 40);
        assert_eq!(RateLimit::from_columns(None, Some(30)), None);
        assert_eq!(
            RateLimit::from_columns(Some(200), Some(30)),
            Some(RateLimit {
                rate: 200,
                burst: 30
            })
        );
    }

    #[test]
    fn bucket_starts_full_then_refills_at_the_rate() {
        let mut b = TokenBucket::new(RateLimit::new(1000, Some(100)), 5_000);
        // A full bucket: the burst goes through at once, then nothing.
        for i in 0..100 {
            assert!(b.take(5_000), "packet {i}");
        }
        assert!(!b.take(5_000));
        // 1000 packets/s = one per millisecond.
        assert!(b.take(5_001));
        assert!(!b.take(5_001));
        assert_eq!(b.available(5_011), 10);
        // A long quiet period refills to the burst, no more.
        assert_eq!(b.available(60_000), 100);
        // Time going backwards changes nothing.
        assert_eq!(b.available(1_000), 100);
    }

    #[test]
    fn bucket_rate_over_a_second_is_exact() {
        // 150 packets/s, burst 25: over 10 s at most 25 + 1500 packets pass.
        let mut b = TokenBucket::new(RateLimit::new(150, Some(25)), 0);
        let mut passed = 0;
        for ms in 0..=10_000u64 {
            for _ in 0..10 {
                if b.take(ms) {
                    passed += 1;
                }
            }
        }
        assert_eq!(passed, 25 + 1500);
    }

    #[test]
    fn set_limit_keeps_tokens_up_to_the_new_burst() {
        let mut b = TokenBucket::new(RateLimit::new(1000, Some(200)), 0);
        b.set_limit(RateLimit::new(100, Some(25)), 0);
        assert_eq!(b.available(0), 25);
        for _ in 0..25 {
            assert!(b.take(0));
        }
        assert!(!b.take(9));
        assert!(b.take(10)); // 100/s: one per 10 ms
    }

    fn pi(n: u8) -> PacketIn {
        PacketIn {
            buffer_id: u32::MAX,
            total_len: 1,
            reason: 0,
            table_id: 0,
            cookie: 0,
            match_: Default::default(),
            data: alloc::vec![n],
        }
    }

    #[test]
    fn pacer_sends_queues_then_drops() {
        let limit = RateLimit::new(100, Some(25));
        let mut p = Pacer::new(limit, 0);
        let mut sent = 0;
        let mut queued = 0;
        let mut dropped = 0;
        for i in 0..100u8 {
            match p.offer(pi(i), 0) {
                Offer::Send(_) => sent += 1,
                Offer::Queued => queued += 1,
                Offer::Dropped => dropped += 1,
            }
        }
        assert_eq!((sent, queued, dropped), (25, 25, 50));
        assert_eq!(p.next_due(0), None);
        // 10 ms later one token: the oldest queued packet-in goes, in order.
        assert_eq!(p.next_due(10).map(|m| m.data[0]), Some(25));
        assert_eq!(p.next_due(10), None);
        // While packet-ins wait, a new one queues behind them even with tokens there.
        assert_eq!(p.offer(pi(200), 20), Offer::Queued);
        let mut order = alloc::vec::Vec::new();
        let mut t = 20;
        while p.queued() > 0 {
            if let Some(m) = p.next_due(t) {
                order.push(m.data[0]);
            }
            t += 1;
        }
        assert_eq!(order.len(), 25);
        assert_eq!(order[0], 26);
        assert_eq!(*order.last().unwrap(), 200);
        assert_eq!(p.set_limit(limit, t), 0);
    }
}

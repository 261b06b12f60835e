//! Throttling of failed logins per account and per source address, in memory. A restart clears
//! it, which is acceptable: the limits are there to slow online guessing, not to lock out.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bound on tracked keys, so a spray of random emails cannot grow memory without limit.
const MAX_KEYS: usize = 100_000;

/// Failed-login bookkeeping.
pub struct Throttle {
    max: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    /// Allows `max` failures per key within `window`.
    pub fn new(max: u32, window: Duration) -> Throttle {
        Throttle {
            max: max.max(1) as usize,
            window,
            failures: Mutex::default(),
        }
    }

    /// Seconds until `key` may try again, if it is throttled. `factor` scales the limit (source
    /// addresses get more room than accounts, since many users may share one).
    pub fn blocked(&self, key: &str, factor: usize) -> Option<u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().ok()?;
        let q = map.get_mut(key)?;
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            q.pop_front();
        }
        if q.len() >= self.max * factor {
            let oldest = *q.front()?;
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Some(wait.as_secs().max(1));
        }
        None
    }

    /// Records a failure for `key`.
    pub fn fail(&self, key: &str) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| t.elapsed() <= window));
            if map.len() >= MAX_KEYS {
                return;
            }
        }
        let q = map.entry(key.to_string()).or_default();
        q.push_back(Instant::now());
        while q.len() > 64 {
            q.pop_front();
        }
    }

    /// Forgets failures of `key` (after a successful login).
    pub fn clear(&self, key: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_and_scales() {
        let t = Throttle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.blocked("a", 1).is_none());
            t.fail("a");
        }
        assert!(t.blocked("a", 1).is_some());
        assert!(t.blocked("a", 2).is_none(), "a larger factor allows more");
        t.clear("a");
        assert!(t.blocked("a", 1).is_none());
    }
}

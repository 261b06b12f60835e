//! Throttling of failed logins per account and per source address, in memory. A restart clears
//! it, which is acceptable: the limits are there to slow online guessing, not to lock out.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bound on tracked keys, so a spray of random emails cannot grow memory without limit.
const MAX_KEYS: usize = 100_000;

/// Login-attempt bookkeeping.
pub struct Throttle {
    max: usize,
    window: Duration,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Per throttling key: when a refusal was last audited and how many were not since.
    refusals: Mutex<HashMap<String, (Instant, u64)>>,
}

/// How often a run of refused attempts from one key is written to the audit log.
const REFUSAL_AUDIT_EVERY: Duration = Duration::from_secs(60);

impl Throttle {
    /// Allows `max` failed attempts per key within `window`.
    pub fn new(max: u32, window: Duration) -> Throttle {
        Throttle {
            max: max.max(1) as usize,
            window,
            attempts: Mutex::default(),
            refusals: Mutex::default(),
        }
    }

    /// Counts an attempt against every `(key, factor)` before the password is checked, so that
    /// parallel guesses cannot all pass the check before the first one fails. `factor` scales
    /// the limit (source addresses get more room than accounts, since many users may share one).
    /// If a key is at its limit nothing is counted, and the answer is the key and the seconds
    /// until it may try again.
    pub fn attempt(&self, keys: &[(&str, usize)]) -> Result<(), (String, u64)> {
        let now = Instant::now();
        let Ok(mut map) = self.attempts.lock() else {
            return Ok(());
        };
        for (key, factor) in keys {
            if let Some(q) = map.get_mut(*key) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > self.window)
                {
                    q.pop_front();
                }
                if q.len() >= self.max * factor {
                    let oldest = q.front().copied().unwrap_or(now);
                    let wait = self.window.saturating_sub(now.duration_since(oldest));
                    return Err((key.to_string(), wait.as_secs().max(1)));
                }
            }
        }
        if map.len() + keys.len() > MAX_KEYS {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| t.elapsed() <= window));
        }
        for (key, _) in keys {
            if map.len() >= MAX_KEYS && !map.contains_key(*key) {
                continue;
            }
            let q = map.entry(key.to_string()).or_default();
            q.push_back(now);
            while q.len() > 256 {
                q.pop_front();
            }
        }
        Ok(())
    }

    /// The attempt counted for these keys succeeded: the account starts afresh, and the source
    /// address gets its attempt back (a good login is not a guess).
    pub fn succeeded(&self, account: &str, source: &str) {
        if let Ok(mut map) = self.attempts.lock() {
            map.remove(account);
            if let Some(q) = map.get_mut(source) {
                q.pop_back();
            }
        }
    }

    /// Whether a refusal for `key` should be audited now: the first of a run, then at most one
    /// a minute. `Some(n)` also says how many refusals went unaudited since the last one.
    pub fn audit_refusal(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let mut map = self.refusals.lock().ok()?;
        if let Some((last, skipped)) = map.get_mut(key) {
            if now.duration_since(*last) < REFUSAL_AUDIT_EVERY {
                *skipped += 1;
                return None;
            }
            let n = *skipped;
            *last = now;
            *skipped = 0;
            return Some(n);
        }
        if map.len() >= MAX_KEYS {
            map.retain(|_, (last, _)| now.duration_since(*last) < REFUSAL_AUDIT_EVERY);
            if map.len() >= MAX_KEYS {
                return None;
            }
        }
        map.insert(key.to_string(), (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_before_checking_and_scales() {
        let t = Throttle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.attempt(&[("a", 1)]).is_ok());
        }
        let (key, wait) = t.attempt(&[("a", 1)]).unwrap_err();
        assert_eq!(key, "a");
        assert!(wait >= 1);
        assert!(t.attempt(&[("b", 2)]).is_ok(), "another key is free");
        t.succeeded("a", "b");
        assert!(
            t.attempt(&[("a", 1)]).is_ok(),
            "a success clears the account"
        );
    }

    #[test]
    fn parallel_attempts_never_pass_the_limit() {
        let t = std::sync::Arc::new(Throttle::new(5, Duration::from_secs(60)));
        let passed = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..30 {
                s.spawn(|| {
                    if t.attempt(&[("account:x", 1), ("ip:1", 4)]).is_ok() {
                        passed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(passed.into_inner(), 5);
    }

    #[test]
    fn refusals_are_audited_once_a_minute() {
        let t = Throttle::new(1, Duration::from_secs(60));
        assert_eq!(t.audit_refusal("ip:1"), Some(0));
        for _ in 0..10 {
            assert_eq!(t.audit_refusal("ip:1"), None);
        }
        assert_eq!(t.audit_refusal("ip:2"), Some(0));
    }
}

//! Time windows: what `?window=` accepts, and the two rings of time slots
//! (minutes for the last hour, hours for the last week) that answer them.
//!
//! A window of N minutes (N ≤ 60) merges the current minute and the N − 1
//! before it; longer windows (whole hours, up to 7 days) merge hour slots
//! the same way. So a window covers between N − 1 and N units of time:
//! slot granularity is the price of constant memory per instance.

use std::collections::VecDeque;
use std::fmt;

/// Seconds per minute slot.
const MINUTE: u64 = 60;
/// Seconds per hour slot.
const HOUR: u64 = 3600;
/// Minute slots kept (one hour).
pub const MINUTE_SLOTS: u64 = 60;
/// Hour slots kept (one week).
pub const HOUR_SLOTS: u64 = 168;

/// A span to report over: the last `n` minutes or hours, or everything
/// since the host started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last N minute slots (1..=60).
    Minutes(u64),
    /// The last N hour slots (1..=168).
    Hours(u64),
    /// Since the host started.
    All,
}

/// A `window` that is not one of the accepted forms.
#[derive(Debug, thiserror::Error)]
#[error(
    "window {0:?} is not valid: use `all`, 1m..60m, 1h..168h or 1d..7d (e.g. `5m`, `1h`, `24h`, `7d`)"
)]
pub struct BadWindow(String);

impl std::str::FromStr for Window {
    type Err = BadWindow;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadWindow(s.to_owned());
        if s == "all" {
            return Ok(Self::All);
        }
        let (digits, unit) = s.split_at(s.len().saturating_sub(1));
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let window = match unit {
            "m" if (1..=MINUTE_SLOTS).contains(&n) => Self::Minutes(n),
            // 60 minutes and 1 hour are the same window; the minute ring
            // answers it more finely.
            "h" if n == 1 => Self::Minutes(MINUTE_SLOTS),
            "h" if (1..=HOUR_SLOTS).contains(&n) => Self::Hours(n),
            "d" if (1..=HOUR_SLOTS / 24).contains(&n) => Self::Hours(n * 24),
            _ => return Err(bad()),
        };
        Ok(window)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Minutes(n) => write!(f, "{n}m"),
            Self::Hours(n) => write!(f, "{n}h"),
            Self::All => f.write_str("all"),
        }
    }
}

impl Window {
    /// Unix second at which the window's first slot starts, `None` for
    /// [`Window::All`].
    pub fn start(self, now_secs: u64) -> Option<u64> {
        let (span, n) = match self {
            Self::Minutes(n) => (MINUTE, n),
            Self::Hours(n) => (HOUR, n),
            Self::All => return None,
        };
        Some((now_secs / span).saturating_sub(n - 1) * span)
    }
}

/// A ring of consecutive time slots of `span` seconds, newest at the back;
/// slots without activity are not stored.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    span: u64,
    keep: u64,
    slots: VecDeque<(u64, T)>,
}

impl<T: Default> Ring<T> {
    /// One hour of minute slots.
    pub fn minutes() -> Self {
        Self::new(MINUTE, MINUTE_SLOTS)
    }

    /// One week of hour slots.
    pub fn hours() -> Self {
        Self::new(HOUR, HOUR_SLOTS)
    }

    fn new(span: u64, keep: u64) -> Self {
        Self {
            span,
            keep,
            slots: VecDeque::new(),
        }
    }

    /// The slot for `secs`, created if needed; `None` if that time has
    /// already fallen out of the ring. A time before the newest slot (a
    /// thread's pending figures folded late, see [`super::pending`], or a
    /// clock stepping back) goes to its own slot, in order. Slots that fall
    /// out of the ring are dropped.
    pub fn slot(&mut self, secs: u64) -> Option<&mut T> {
        let n = secs / self.span;
        match self.slots.back() {
            Some((last, _)) if n < *last => {
                if n + self.keep <= *last {
                    return None;
                }
                let at = self.slots.partition_point(|(s, _)| *s < n);
                if self.slots.get(at).is_none_or(|(s, _)| *s != n) {
                    self.slots.insert(at, (n, T::default()));
                }
                return self.slots.get_mut(at).map(|(_, slot)| slot);
            }
            Some((last, _)) if n == *last => {}
            _ => self.slots.push_back((n, T::default())),
        }
        while self
            .slots
            .front()
            .is_some_and(|(first, _)| first + self.keep <= n)
        {
            self.slots.pop_front();
        }
        self.slots.back_mut().map(|(_, slot)| slot)
    }

    /// The slots of the last `n` spans up to `now_secs`, oldest first.
    pub fn last(&self, n: u64, now_secs: u64) -> impl Iterator<Item = &T> {
        let newest = now_secs / self.span;
        let first = (newest + 1).saturating_sub(n);
        self.slots
            .iter()
            .filter(move |(s, _)| (first..=newest).contains(s))
            .map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_print() {
        for (s, w) in [
            ("all", Window::All),
            ("5m", Window::Minutes(5)),
            ("60m", Window::Minutes(60)),
            ("1h", Window::Minutes(60)),
            ("24h", Window::Hours(24)),
            ("7d", Window::Hours(168)),
        ] {
            assert_eq!(s.parse::<Window>().unwrap(), w, "{s}");
        }
        for bad in [
            "", "m", "0m", "61m", "169h", "8d", "5s", "-1h", "1.5h", "5 m",
        ] {
            let e = bad.parse::<Window>().unwrap_err();
            assert!(e.to_string().contains("not valid"), "{bad}: {e}");
        }
        assert_eq!(Window::Hours(24).to_string(), "24h");
    }

    #[test]
    fn ring_keeps_only_its_span_and_answers_the_last_n_slots() {
        let mut ring: Ring<u64> = Ring::minutes();
        // One count per minute for two hours.
        for minute in 0..120u64 {
            *ring.slot(minute * 60 + 7).unwrap() += 1;
        }
        assert_eq!(ring.slots.len(), 60, "older minutes fell out");
        let now = 119 * 60 + 30;
        assert_eq!(ring.last(5, now).sum::<u64>(), 5);
        assert_eq!(ring.last(60, now).sum::<u64>(), 60);
        // Ten minutes later with no activity, a 5-minute window is empty.
        assert_eq!(ring.last(5, now + 600).sum::<u64>(), 0);
        assert_eq!(Window::Minutes(5).start(now), Some(115 * 60));
        // An earlier time still in the ring goes to its own slot, in
        // order; one that fell out of it has none.
        *ring.slot(115 * 60).unwrap() += 1;
        assert_eq!(ring.last(5, now).sum::<u64>(), 6);
        assert_eq!(ring.last(4, now).sum::<u64>(), 4);
        assert_eq!(ring.slots.len(), 60);
        assert!(ring.slot(10).is_none());
        // Minutes without activity have no slot; a late one is inserted
        // between its neighbours.
        let mut sparse: Ring<u64> = Ring::minutes();
        *sparse.slot(60).unwrap() += 1;
        *sparse.slot(180).unwrap() += 1;
        *sparse.slot(120).unwrap() += 1;
        let order: Vec<u64> = sparse.slots.iter().map(|(n, _)| *n).collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert_eq!(sparse.last(2, 180).sum::<u64>(), 2);
    }
}

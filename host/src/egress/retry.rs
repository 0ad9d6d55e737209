//! When the broker repeats a failed outbound request, and after how long.
//!
//! Pure decisions, no I/O: the send path reports what happened to an attempt
//! as an [`AttemptOutcome`] and asks [`RetryPolicy::next_delay`] whether to
//! go again. The rules:
//!
//! - Only requests that are safe to repeat are repeated: idempotent methods,
//!   or a request the guest explicitly marked idempotent
//!   ([`is_idempotent`]). The one exception is a connection that could not
//!   be established at all: nothing reached the upstream, so even a `POST`
//!   can be sent again (see [`AttemptOutcome::ConnectFailed`]).
//! - Only outcomes that say "try later" are retried: connection failures,
//!   timeouts, 429, 502, 503, 504. A 500 is not: it is as often a bug
//!   triggered by this very request as an outage.
//! - Backoff is exponential with *full* jitter (a uniformly random delay in
//!   `[0, min(max_delay, base·2^(n-1))]`), which spreads retries of many
//!   clients best (see the AWS Architecture Blog, "Exponential Backoff And
//!   Jitter").
//! - A `Retry-After` from the upstream is a floor: the jitter never brings
//!   the delay below it.
//! - Attempts are bounded by [`RetryPolicy::max_attempts`] and by the
//!   invocation's deadline: a retry that could not even start before the
//!   deadline is not scheduled.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method};

/// Longest `Retry-After` the broker honours; larger values are capped so a
/// confused or hostile upstream cannot park a budget for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// Whether a request may be sent more than once without changing its effect.
///
/// `GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS` and `TRACE` are idempotent by
/// RFC 9110 §9.2.2; anything else only if the guest says so (typically a
/// `POST` carrying an idempotency key the upstream honours).
pub fn is_idempotent(method: &Method, guest_marked: bool) -> bool {
    guest_marked
        || [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::TRACE,
        ]
        .contains(method)
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date, relative to
/// `now`.
///
/// Dates in the past give [`Duration::ZERO`]; everything is capped at
/// [`MAX_RETRY_AFTER`]. Besides the standard integer seconds, a decimal
/// (`1.5`) is accepted, because some APIs send one. `None` for anything
/// unparseable, including negative numbers.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match parse_seconds(value) {
        Some(d) => d,
        None => {
            let at = parse_http_date(value, now)?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The `Retry-After` of a response, if it has a parseable one.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// Non-negative seconds, integer or decimal (`120`, `1.5`); saturates
/// instead of failing on absurdly large values.
pub(crate) fn parse_seconds(value: &str) -> Option<Duration> {
    let (int, frac) = match value.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (value, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    let secs = int.parse::<u64>().unwrap_or(u64::MAX);
    let nanos = match frac {
        // Nine digits of nanoseconds, right-padded: "5" is 500 ms.
        Some(f) => f
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(9)
            .fold(0u32, |n, b| n * 10 + u32::from(b - b'0')),
        None => 0,
    };
    Some(Duration::new(secs, 0).saturating_add(Duration::from_nanos(u64::from(nanos))))
}

/// An HTTP-date in any of the three formats RFC 9110 §5.6.7 says a
/// recipient must accept:
///
/// - IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
/// - RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`
/// - asctime: `Sun Nov  6 08:49:37 1994`
///
/// The weekday is not checked against the date (the date is what matters).
/// `now` resolves RFC 850's two-digit year: the most recent year with those
/// digits that is not more than 50 years ahead.
fn parse_http_date(value: &str, now: SystemTime) -> Option<SystemTime> {
    let parts: Vec<&str> = value.split_ascii_whitespace().collect();
    let (day, month, year, clock) = match parts.as_slice() {
        [wd, day, month, year, clock, "GMT"] if wd.ends_with(',') => {
            (*day, *month, year.parse::<i32>().ok()?, *clock)
        }
        [wd, date, clock, "GMT"] if wd.ends_with(',') => {
            let mut it = date.split('-');
            let (day, month, yy) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || yy.len() != 2 {
                return None;
            }
            (day, month, two_digit_year(yy.parse().ok()?, now), *clock)
        }
        [_wd, month, day, clock, year] => (*day, *month, year.parse::<i32>().ok()?, *clock),
        _ => return None,
    };
    let month = match month {
        "Jan" => time::Month::January,
        "Feb" => time::Month::February,
        "Mar" => time::Month::March,
        "Apr" => time::Month::April,
        "May" => time::Month::May,
        "Jun" => time::Month::June,
        "Jul" => time::Month::July,
        "Aug" => time::Month::August,
        "Sep" => time::Month::September,
        "Oct" => time::Month::October,
        "Nov" => time::Month::November,
        "Dec" => time::Month::December,
        _ => return None,
    };
    if day.is_empty() || day.len() > 2 || !day.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let date = time::Date::from_calendar_date(year, month, day.parse().ok()?).ok()?;
    let mut hms = clock.split(':');
    let mut field = || -> Option<u8> {
        let f = hms.next()?;
        if f.len() != 2 {
            return None;
        }
        f.parse().ok()
    };
    let (h, m, s) = (field()?, field()?, field()?);
    if hms.next().is_some() {
        return None;
    }
    let time = time::Time::from_hms(h, m, s).ok()?;
    Some(time::PrimitiveDateTime::new(date, time).assume_utc().into())
}

/// RFC 9110 §5.6.7: a two-digit year more than 50 years in the future means
/// the most recent past year with the same last two digits.
fn two_digit_year(yy: i32, now: SystemTime) -> i32 {
    let this_year = time::OffsetDateTime::from(now).year();
    let year = this_year - this_year.rem_euclid(100) + yy;
    if year > this_year + 50 {
        year - 100
    } else {
        year
    }
}

/// How many times to try, and how long to wait in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; 1 disables retries.
    pub max_attempts: u32,
    /// Backoff ceiling of the first retry; doubles with each further one.
    pub base_delay: Duration,
    /// Largest backoff ceiling (a `Retry-After` may still ask for longer).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// What happened to one attempt, as far as retrying is concerned.
#[derive(Debug, Clone, Copy)]
pub enum AttemptOutcome<'a> {
    /// The upstream answered (any status).
    Response {
        /// HTTP status code.
        status: u16,
        /// Response headers (for `Retry-After`).
        headers: &'a HeaderMap,
    },
    /// No connection could be established (DNS, refused, unreachable, TLS
    /// handshake), so not a byte of the request reached the upstream.
    ///
    /// Only report this when that is certain: a reused pooled connection
    /// that breaks while the request is written is `Other`, because the
    /// upstream may have received and acted on the request.
    ConnectFailed,
    /// The connect, first-byte or total timeout fired after the request may
    /// have been sent.
    TimedOut,
    /// Any other failure (protocol error, reset mid-response, body limit).
    Other,
}

impl AttemptOutcome<'_> {
    /// Whether this outcome is worth another attempt, given idempotency.
    fn retryable(&self, idempotent: bool) -> bool {
        match self {
            // Nothing was sent: safe even for POST. We choose to retry here
            // because connect failures are the most common transient error
            // (a restarting upstream, a dropped SYN) and repeating them
            // cannot duplicate a side effect.
            Self::ConnectFailed => true,
            Self::TimedOut => idempotent,
            Self::Response { status, .. } => idempotent && matches!(status, 429 | 502 | 503 | 504),
            Self::Other => false,
        }
    }
}

impl RetryPolicy {
    /// The delay before the next attempt, or `None` to give up.
    ///
    /// `attempt` is the number of attempts made so far (1 after the first);
    /// `remaining` is the time left until the invocation's deadline; `now`
    /// resolves HTTP-date `Retry-After` values. Gives up when the attempts
    /// are used up, the outcome is not retryable for this request, or the
    /// delay would not end before the deadline (a retry starting exactly at
    /// the deadline could not finish).
    pub fn next_delay(
        &self,
        attempt: u32,
        idempotent: bool,
        outcome: &AttemptOutcome<'_>,
        now: SystemTime,
        remaining: Duration,
        rng: &mut impl rand::Rng,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts || !outcome.retryable(idempotent) {
            return None;
        }
        let ceiling = self.backoff_ceiling(attempt);
        let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jittered = Duration::from_nanos(rng.random_range(0..=ceiling_nanos));
        let floor = match outcome {
            AttemptOutcome::Response { headers, .. } => retry_after(headers, now),
            _ => None,
        };
        let delay = floor.map_or(jittered, |f| jittered.max(f));
        (delay < remaining).then_some(delay)
    }

    /// `min(max_delay, base_delay · 2^(attempt-1))`, without overflow.
    fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1);
        2u32.checked_pow(doublings)
            .and_then(|factor| self.base_delay.checked_mul(factor))
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// 2024-01-01T00:00:00Z.
    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200)
    }

    /// An RNG that always yields the same word: 0 picks the low end of a
    /// range, `u64::MAX` the high end.
    struct Constant(u64);

    impl rand::RngCore for Constant {
        fn next_u32(&mut self) -> u32 {
            self.0 as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            for (i, b) in dst.iter_mut().enumerate() {
                *b = self.0.to_le_bytes()[i % 8];
            }
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn idempotent_methods() {
        for m in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"] {
            assert!(is_idempotent(&m.parse().unwrap(), false), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "PURGE"] {
            assert!(!is_idempotent(&m.parse().unwrap(), false), "{m}");
            assert!(is_idempotent(&m.parse().unwrap(), true), "{m} marked");
        }
    }

    #[test]
    fn retry_after_delta_seconds() {
        assert_eq!(parse_retry_after("2", t0()), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0 ", t0()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", t0()),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("99999999", t0()), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("99999999999999999999999", t0()),
            Some(MAX_RETRY_AFTER)
        );
        for bad in ["", "-1", "1e3", "soon", "1.", ".5", "1.5.2", "+3", "0x10"] {
            assert_eq!(parse_retry_after(bad, t0()), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_http_dates() {
        // 2024-01-01T00:01:30Z in all three formats.
        for v in [
            "Mon, 01 Jan 2024 00:01:30 GMT",
            "Monday, 01-Jan-24 00:01:30 GMT",
            "Mon Jan  1 00:01:30 2024",
        ] {
            assert_eq!(
                parse_retry_after(v, t0()),
                Some(Duration::from_secs(90)),
                "{v}"
            );
        }
        // In the past: go now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t0()),
            Some(Duration::ZERO)
        );
        // RFC 850 two-digit years: 94 is 1994 (2094 is > 50 years ahead).
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", t0()),
            Some(Duration::ZERO)
        );
        // Far future: capped.
        assert_eq!(
            parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT", t0()),
            Some(MAX_RETRY_AFTER)
        );
        for bad in [
            "Mon, 01 Jan 2024 00:01:30 PST",
            "Mon, 32 Jan 2024 00:01:30 GMT",
            "Mon, 01 Foo 2024 00:01:30 GMT",
            "Mon, 01 Jan 2024 25:01:30 GMT",
            "Mon, 01 Jan 2024 0:01:30 GMT",
            "Mon 01 Jan 2024 00:01:30 GMT",
            "2024-01-01T00:01:30Z",
        ] {
            assert_eq!(parse_retry_after(bad, t0()), None, "{bad:?}");
        }
    }

    #[test]
    fn two_digit_years_follow_the_fifty_year_rule() {
        assert_eq!(two_digit_year(24, t0()), 2024);
        assert_eq!(two_digit_year(74, t0()), 2074);
        assert_eq!(two_digit_year(75, t0()), 1975);
        assert_eq!(two_digit_year(99, t0()), 1999);
    }

    #[test]
    fn which_outcomes_are_retried() {
        let p = RetryPolicy::default();
        let h = HeaderMap::new();
        let delay = |idem: bool, o: AttemptOutcome<'_>| {
            p.next_delay(1, idem, &o, t0(), LONG, &mut Constant(0))
        };
        let resp = |status| AttemptOutcome::Response {
            status,
            headers: &h,
        };
        for status in [429, 502, 503, 504] {
            assert!(delay(true, resp(status)).is_some(), "{status}");
            assert!(delay(false, resp(status)).is_none(), "POST {status}");
        }
        for status in [200, 301, 400, 401, 404, 500, 501] {
            assert!(delay(true, resp(status)).is_none(), "{status}");
        }
        assert!(delay(true, AttemptOutcome::TimedOut).is_some());
        assert!(delay(false, AttemptOutcome::TimedOut).is_none());
        assert!(delay(true, AttemptOutcome::ConnectFailed).is_some());
        // Nothing was sent, so even a POST may go again.
        assert!(delay(false, AttemptOutcome::ConnectFailed).is_some());
        assert!(delay(true, AttemptOutcome::Other).is_none());
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy::default();
        let o = AttemptOutcome::ConnectFailed;
        let mut rng = Constant(0);
        assert!(p.next_delay(1, true, &o, t0(), LONG, &mut rng).is_some());
        assert!(p.next_delay(2, true, &o, t0(), LONG, &mut rng).is_some());
        assert!(p.next_delay(3, true, &o, t0(), LONG, &mut rng).is_none());
        let once = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert!(once.next_delay(1, true, &o, t0(), LONG, &mut rng).is_none());
    }

    #[test]
    fn backoff_is_exponential_with_full_jitter() {
        let p = RetryPolicy {
            max_attempts: 100,
            ..RetryPolicy::default()
        };
        let o = AttemptOutcome::TimedOut;
        // The extremes of the jitter range: 0 and the ceiling.
        for (attempt, ceiling_ms) in [
            (1, 200),
            (2, 400),
            (3, 800),
            (5, 3200),
            (6, 5000),
            (99, 5000),
        ] {
            let low = p.next_delay(attempt, true, &o, t0(), LONG, &mut Constant(0));
            assert_eq!(low, Some(Duration::ZERO), "attempt {attempt}");
            let high = p
                .next_delay(attempt, true, &o, t0(), LONG, &mut Constant(u64::MAX))
                .unwrap();
            let ceiling = Duration::from_millis(ceiling_ms);
            assert!(high <= ceiling, "attempt {attempt}: {high:?}");
            assert!(high > ceiling.mul_f64(0.99), "attempt {attempt}: {high:?}");
        }
        // A real RNG spreads over the whole range.
        let mut rng = StdRng::seed_from_u64(7);
        let samples: Vec<Duration> = (0..1000)
            .map(|_| p.next_delay(3, true, &o, t0(), LONG, &mut rng).unwrap())
            .collect();
        let ceiling = Duration::from_millis(800);
        assert!(samples.iter().all(|d| *d <= ceiling));
        assert!(samples.iter().any(|d| *d < ceiling / 10));
        assert!(samples.iter().any(|d| *d > ceiling.mul_f64(0.9)));
    }

    #[test]
    fn retry_after_is_a_floor_for_the_jitter() {
        let p = RetryPolicy::default();
        let h = headers(&[("retry-after", "2")]);
        let o = AttemptOutcome::Response {
            status: 429,
            headers: &h,
        };
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let d = p.next_delay(1, true, &o, t0(), LONG, &mut rng).unwrap();
            assert_eq!(d, Duration::from_secs(2));
        }
        // A date works too, and a short one does not cut the backoff.
        let h = headers(&[("retry-after", "Mon, 01 Jan 2024 00:00:00 GMT")]);
        let o = AttemptOutcome::Response {
            status: 503,
            headers: &h,
        };
        let d = p.next_delay(2, true, &o, t0(), LONG, &mut Constant(u64::MAX));
        assert!(d.unwrap() > Duration::from_millis(390));
        // Garbage is ignored, not fatal.
        let h = headers(&[("retry-after", "later")]);
        let o = AttemptOutcome::Response {
            status: 503,
            headers: &h,
        };
        assert_eq!(
            p.next_delay(1, true, &o, t0(), LONG, &mut Constant(0)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn the_deadline_bounds_the_delay() {
        let p = RetryPolicy::default();
        let h = headers(&[("retry-after", "2")]);
        let o = AttemptOutcome::Response {
            status: 429,
            headers: &h,
        };
        let mut rng = Constant(0);
        let secs = Duration::from_secs;
        assert_eq!(
            p.next_delay(1, true, &o, t0(), secs(3), &mut rng),
            Some(secs(2))
        );
        assert_eq!(p.next_delay(1, true, &o, t0(), secs(2), &mut rng), None);
        assert_eq!(p.next_delay(1, true, &o, t0(), secs(1), &mut rng), None);
        // No time left at all: not even an immediate retry.
        let o = AttemptOutcome::ConnectFailed;
        assert_eq!(
            p.next_delay(1, true, &o, t0(), Duration::ZERO, &mut rng),
            None
        );
    }
}

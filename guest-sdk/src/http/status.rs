//! Turning upstream HTTP statuses into connector errors, in plain Rust.
//!
//! Kept free of `wasi` calls so the rules (which status is which error,
//! `Retry-After`, error-body excerpts) are unit-tested natively.

use serde_json::Value;

use crate::Error;

/// Longest message taken from an upstream error body, in characters.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// The standard reason phrase of common statuses, for messages.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        418 => "I'm a teapot",
        422 => "Unprocessable Content",
        423 => "Locked",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

fn status_line(status: u16) -> String {
    match reason_phrase(status) {
        "" => status.to_string(),
        reason => format!("{status} {reason}"),
    }
}

/// The rate-limit headers of a response, as far as errors care.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RateHints<'a> {
    /// `Retry-After`.
    pub retry_after: Option<&'a str>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<&'a str>,
    /// `X-RateLimit-Reset` (Unix seconds, or seconds from now when small).
    pub reset: Option<&'a str>,
}

impl RateHints<'_> {
    /// Whether the headers say "rate limited" on a 403 (GitHub answers
    /// 403 for both its primary and secondary limits).
    fn limits_403(&self) -> bool {
        self.retry_after.is_some() || self.remaining.map(str::trim) == Some("0")
    }

    /// Seconds to wait: `Retry-After`, else the reset time when the
    /// remaining count is exhausted.
    fn wait_secs(&self, now_unix_secs: u64) -> Option<u32> {
        if let Some(v) = self
            .retry_after
            .and_then(|v| parse_retry_after(v, now_unix_secs))
        {
            return Some(v);
        }
        if self.remaining.map(str::trim) != Some("0") {
            return None;
        }
        let reset: u64 = self.reset?.trim().parse().ok()?;
        // Epoch seconds (GitHub) or, for small values, seconds from now.
        let secs = if reset > 1_000_000_000 {
            reset.saturating_sub(now_unix_secs)
        } else {
            reset
        };
        Some(u32::try_from(secs).unwrap_or(u32::MAX))
    }
}

/// The error an upstream answer means, or `None` for statuses below 400.
///
/// 401 and 403 mean the credentials were refused — except a 403 whose
/// headers say rate limit (see [`RateHints`]) — 404 that the object does
/// not exist, 429 a rate limit (with `Retry-After` when given); everything
/// else from 400 up is an upstream error carrying the status.
pub(crate) fn status_error(
    status: u16,
    hints: &RateHints<'_>,
    body: &[u8],
    now_unix_secs: u64,
) -> Option<Error> {
    if status < 400 {
        return None;
    }
    let rate_limited = status == 429 || (status == 403 && hints.limits_403());
    let detail = excerpt(body, EXCERPT_CHARS);
    let with_detail = |what: String| {
        if detail.is_empty() {
            what
        } else {
            format!("{what}: {detail}")
        }
    };
    Some(match status {
        _ if rate_limited => Error::rate_limited(
            with_detail(format!(
                "upstream rate limit exceeded ({})",
                status_line(status)
            )),
            hints.wait_secs(now_unix_secs),
        ),
        401 | 403 => Error::unauthorized(with_detail(format!(
            "upstream refused the credentials ({})",
            status_line(status)
        ))),
        404 => Error::not_found(with_detail(format!(
            "upstream has no such resource ({})",
            status_line(status)
        ))),
        _ if detail.is_empty() => {
            Error::upstream(status, format!("upstream answered {}", status_line(status)))
        }
        _ => Error::upstream(status, detail),
    })
}

/// Seconds to wait from a `Retry-After` value: delay-seconds or an HTTP date
/// (IMF-fixdate). Dates in the past give 0; absurd values saturate.
pub(crate) fn parse_retry_after(value: &str, now_unix_secs: u64) -> Option<u32> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too long for u64 is still "a very long time".
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(u32::try_from(secs).unwrap_or(u32::MAX));
    }
    let at = parse_http_date(value)?;
    Some(u32::try_from(at.saturating_sub(now_unix_secs)).unwrap_or(u32::MAX))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into Unix seconds.
pub(crate) fn parse_http_date(value: &str) -> Option<u64> {
    let mut parts = value.split_ascii_whitespace();
    let weekday = parts.next()?;
    if !weekday.ends_with(',') {
        return None;
    }
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|n| n.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || year < 1970 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + h * 3_600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u64, day: u64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::try_from(month).unwrap_or(1);
    let d = i64::try_from(day).unwrap_or(1);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A one-line explanation from an error body, at most `max_chars` long.
///
/// JSON bodies are searched for the usual message fields (`message`,
/// `error_description`, `error.message`, `errors[0].message`, `detail`, …);
/// anything else is used as text with whitespace collapsed.
pub(crate) fn excerpt(body: &[u8], max_chars: usize) -> String {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| json_message(&v))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    truncate_chars(
        &text.split_whitespace().collect::<Vec<_>>().join(" "),
        max_chars,
    )
}

fn json_message(v: &Value) -> Option<String> {
    let as_text = |v: &Value| {
        v.as_str()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    for key in [
        "message",
        "error_description",
        "detail",
        "error_message",
        "msg",
        "title",
        "description",
    ] {
        if let Some(s) = v.get(key).and_then(as_text) {
            return Some(s);
        }
    }
    if let Some(error) = v.get("error")
        && let Some(s) = as_text(error).or_else(|| error.get("message").and_then(as_text))
    {
        return Some(s);
    }
    let first = v.get("errors").and_then(|e| e.get(0))?;
    as_text(first).or_else(|| {
        ["message", "detail", "title"]
            .iter()
            .find_map(|k| first.get(*k).and_then(as_text))
    })
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("120", NOW), Some(120));
        assert_eq!(parse_retry_after(" 0 ", NOW), Some(0));
        assert_eq!(
            parse_retry_after("99999999999999999999999", NOW),
            Some(u32::MAX)
        );
        assert_eq!(parse_retry_after("-5", NOW), None);
        assert_eq!(parse_retry_after("1.5", NOW), None);
        assert_eq!(parse_retry_after("", NOW), None);
        assert_eq!(parse_retry_after("soon", NOW), None);
    }

    #[test]
    fn retry_after_dates() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(NOW));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", NOW),
            Some(60)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", NOW),
            Some(0)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
    }

    fn after(v: &str) -> RateHints<'_> {
        RateHints {
            retry_after: Some(v),
            ..RateHints::default()
        }
    }

    #[test]
    fn maps_rate_limited_403s() {
        let none = RateHints::default();
        assert_eq!(
            status_error(403, &none, b"", NOW).map(|e| e.kind()),
            Some("unauthorized")
        );
        assert_eq!(
            status_error(403, &after("60"), b"", NOW),
            Some(Error::rate_limited(
                "upstream rate limit exceeded (403 Forbidden)",
                Some(60)
            ))
        );
        // GitHub's reset is epoch seconds.
        let now = 1_750_000_000;
        let reset = (now + 90).to_string();
        let exhausted = RateHints {
            retry_after: None,
            remaining: Some("0"),
            reset: Some(&reset),
        };
        assert_eq!(
            status_error(403, &exhausted, b"", now),
            Some(Error::rate_limited(
                "upstream rate limit exceeded (403 Forbidden)",
                Some(90)
            ))
        );
        let left = RateHints {
            remaining: Some("12"),
            ..exhausted
        };
        assert_eq!(
            status_error(403, &left, b"", now).map(|e| e.kind()),
            Some("unauthorized")
        );
        let delta = RateHints {
            retry_after: None,
            remaining: Some("0"),
            reset: Some("30"),
        };
        assert_eq!(
            status_error(429, &delta, b"", NOW),
            Some(Error::rate_limited(
                "upstream rate limit exceeded (429 Too Many Requests)",
                Some(30)
            ))
        );
    }

    #[test]
    fn maps_statuses() {
        let none = &RateHints::default();
        assert_eq!(status_error(200, none, b"", NOW), None);
        assert_eq!(status_error(302, none, b"", NOW), None);
        for s in [401, 403] {
            assert_eq!(
                status_error(s, none, b"", NOW).map(|e| e.kind()),
                Some("unauthorized")
            );
        }
        assert_eq!(
            status_error(404, none, b"", NOW).map(|e| e.kind()),
            Some("not_found")
        );
        assert_eq!(
            status_error(429, &after("7"), b"slow down", NOW),
            Some(Error::rate_limited(
                "upstream rate limit exceeded (429 Too Many Requests): slow down",
                Some(7)
            ))
        );
        assert_eq!(
            status_error(429, none, b"", NOW),
            Some(Error::rate_limited(
                "upstream rate limit exceeded (429 Too Many Requests)",
                None
            ))
        );
        assert_eq!(
            status_error(500, none, b"", NOW),
            Some(Error::upstream(
                500,
                "upstream answered 500 Internal Server Error"
            ))
        );
        assert_eq!(
            status_error(
                422,
                none,
                br#"{"error":{"message":"title is required"}}"#,
                NOW
            ),
            Some(Error::upstream(422, "title is required"))
        );
        assert_eq!(
            status_error(599, none, b"", NOW),
            Some(Error::upstream(599, "upstream answered 599"))
        );
    }

    #[test]
    fn excerpts_bodies() {
        assert_eq!(excerpt(br#"{"message":"bad thing"}"#, 200), "bad thing");
        assert_eq!(
            excerpt(
                br#"{"error":"invalid_grant","error_description":"expired"}"#,
                200
            ),
            "expired"
        );
        assert_eq!(
            excerpt(br#"{"errors":[{"message":"first"}]}"#, 200),
            "first"
        );
        assert_eq!(excerpt(br#"{"errors":["plain"]}"#, 200), "plain");
        assert_eq!(excerpt(br#"{"ok":false}"#, 200), r#"{"ok":false}"#);
        assert_eq!(
            excerpt(b"<html>\n  <b>Oops</b>\n</html>", 200),
            "<html> <b>Oops</b> </html>"
        );
        let long = "é".repeat(500);
        let cut = excerpt(long.as_bytes(), 200);
        assert_eq!(cut.chars().count(), 200);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt(&[0xff, b'a'], 200), "\u{fffd}a");
    }
}

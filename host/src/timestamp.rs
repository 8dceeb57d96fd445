//! Instants as milliseconds since the epoch, read from the loose forms finding sources send.
//!
//! Wiz's `issue.created` arrives as RFC 3339 with or without a zone, with a space for the `T`,
//! with up to nine fractional digits, or as epoch seconds or milliseconds; Security Hub's
//! `FirstObservedAt` is RFC 3339. Everything is UTC once read; the record keeps the
//! [`crate::base::rfc3339`] form.

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type EpochMillis = i64;

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYY-MM-DD` as days since the epoch.
fn date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month as u32, day as u32))
}

/// A zone suffix (`Z`, `+HH:MM`, `+HHMM`, `+HH`) as an offset in minutes, and what precedes it.
fn split_zone(s: &str) -> Option<(&str, i64)> {
    if let Some(rest) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((rest, 0));
    }
    let Some(at) = s.rfind(['+', '-']) else {
        return Some((s, 0));
    };
    // A '-' inside the date is not a zone: the zone follows the time's last digit.
    if at < 5 {
        return Some((s, 0));
    }
    let (rest, zone) = s.split_at(at);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let zone = zone[1..].replace(':', "");
    // Slicing below is by byte: a non-ASCII zone would cut a character in two.
    if !zone.is_ascii() {
        return None;
    }
    let (h, m) = match zone.len() {
        2 => (digits(&zone)?, 0),
        4 => (digits(&zone[..2])?, digits(&zone[2..])?),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some((rest, sign * (h * 60 + m)))
}

/// Reads one instant. `None` when the text is not one of the forms above.
pub fn parse(text: &str) -> Option<EpochMillis> {
    let s = text.trim();
    if let Some(n) = digits(s) {
        // Epoch seconds until the year 2286; more digits are milliseconds.
        return Some(if s.len() <= 10 { n * 1000 } else { n });
    }
    if s.len() == 10 {
        return date(s).map(|d| d * 86_400_000);
    }
    let days = date(s.get(..10)?)?;
    let sep = s.as_bytes()[10];
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    let (time, offset_min) = split_zone(&s[11..])?;
    let (hms, fraction) = match time.split_once(['.', ',']) {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut parts = hms.split(':');
    let h = digits(parts.next()?)?;
    let m = digits(parts.next()?)?;
    let sec = match parts.next() {
        Some(p) => digits(p)?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let millis = match fraction {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let padded = format!("{f:0<3}");
            digits(&padded[..3])?
        }
        Some(_) => return None,
        None => 0,
    };
    let seconds = days * 86_400 + h * 3600 + m * 60 + sec - offset_min * 60;
    Some(seconds * 1000 + millis)
}

/// This instant, by the system clock.
pub fn now() -> EpochMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The record's form of an instant: RFC 3339, UTC, milliseconds.
pub fn format(at: EpochMillis) -> String {
    let t = if at >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(at as u64)
    } else {
        std::time::UNIX_EPOCH
    };
    crate::base::rfc3339(t)
}

/// Reads an instant and writes it back in the record's form.
pub fn normalise(text: &str) -> Option<String> {
    parse(text).map(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: EpochMillis = 1_690_884_000_000; // 2023-08-01T10:00:00Z

    #[test]
    fn reads_the_forms_sources_send() {
        for text in [
            "2023-08-01T10:00:00Z",
            "2023-08-01T10:00:00.000Z",
            "2023-08-01T10:00:00.000000000Z",
            "2023-08-01 10:00:00",
            "2023-08-01T10:00:00",
            "2023-08-01T12:00:00+02:00",
            "2023-08-01T12:00:00+0200",
            "2023-08-01T07:30:00-02:30",
            "2023-08-01T10:00Z",
            "1690884000",
            "1690884000000",
        ] {
            assert_eq!(parse(text), Some(AT), "{text}");
        }
        assert_eq!(parse("2023-08-01T10:00:00.5Z"), Some(AT + 500));
        assert_eq!(parse("2023-08-01"), Some(AT - 10 * 3_600_000));
        assert_eq!(format(AT), "2023-08-01T10:00:00.000Z");
    }

    #[test]
    fn refuses_what_is_not_an_instant() {
        for text in [
            "",
            "yesterday",
            "2023-13-01T10:00:00Z",
            "2023-08-01X10:00:00Z",
            "2023-08-01T25:00:00Z",
            "2023-08-01T10:00:00.Z",
            "2023-08-01T10:00:00.1234567890Z",
            "2023-08-01T10:00:00+5",
            "2023-08-01T10:00:00+99:00",
            "2023-08-01T10:00:00:00Z",
            // Multi-byte characters where a zone is read by byte offsets.
            "2023-08-01T10:00:00+1é1",
            "2023-08-01T10:00:00+é12",
            "2023-08-01T10:00:00.1é",
            "2023-08-01T1é:00:00Z",
            "é023-08-01T10:00:00Z",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}

//! When scheduled reports are due: each covers one calendar period (a day, or a week from Monday) in its
//! schedule's time zone, and is produced once that period has ended. After downtime the missed periods are
//! produced too (at most [`MAX_CATCH_UP`]); a new schedule starts with the period just ended, not with history.
//! Pure: `now` is passed in.

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};

use crate::config::reports::Every;

/// How many missed periods one run produces for a schedule.
pub const MAX_CATCH_UP: usize = 7;

/// `[from_ms, to_ms)`, UTC milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
}

fn start_of(every: Every, z: &Zoned) -> Option<Zoned> {
    let day = z.start_of_day().ok()?;
    match every {
        Every::Daily => Some(day),
        Every::Weekly => {
            let back = i64::from(day.weekday().to_monday_zero_offset());
            day.checked_sub(Span::new().days(back)).ok()?.start_of_day().ok()
        }
    }
}

/// The period that contains `at_ms`.
pub fn period_containing(every: Every, tz: &TimeZone, at_ms: i64) -> Option<Period> {
    let z = Timestamp::from_millisecond(at_ms).ok()?.to_zoned(tz.clone());
    let start = start_of(every, &z)?;
    let length = match every {
        Every::Daily => Span::new().days(1),
        Every::Weekly => Span::new().days(7),
    };
    // Midnight to midnight in local time: a day with a DST change is 23 or 25 hours long.
    let end = start.checked_add(length).ok()?.start_of_day().ok()?;
    Some(Period {
        from_ms: start.timestamp().as_millisecond(),
        to_ms: end.timestamp().as_millisecond(),
    })
}

/// The periods to produce now, oldest first: those ended after `done_to` (the end of the last one produced),
/// or only the last ended one when nothing was produced yet.
pub fn due(every: Every, tz: &TimeZone, done_to: Option<i64>, now_ms: i64) -> Vec<Period> {
    let mut out = Vec::new();
    let Some(current) = period_containing(every, tz, now_ms) else {
        return out;
    };
    let mut next = period_containing(every, tz, current.from_ms - 1);
    while let Some(p) = next {
        if done_to.is_some_and(|done| p.to_ms <= done) {
            break;
        }
        out.push(p);
        if done_to.is_none() || out.len() >= MAX_CATCH_UP {
            break;
        }
        next = period_containing(every, tz, p.from_ms - 1);
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_day_is_midnight_to_midnight_in_the_zone() {
        let utc = TimeZone::UTC;
        let p = period_containing(Every::Daily, &utc, ms("2026-12-03T18:40:00Z")).unwrap();
        assert_eq!(
            (p.from_ms, p.to_ms),
            (ms("2026-12-03T00:00:00Z"), ms("2026-12-04T00:00:00Z"))
        );
        let chicago = TimeZone::get("America/Chicago").unwrap();
        let p = period_containing(Every::Daily, &chicago, ms("2026-12-03T03:00:00Z")).unwrap();
        assert_eq!(p.from_ms, ms("2026-12-02T06:00:00Z"), "still the 2nd in Chicago");
        // The day clocks go back is 25 hours long.
        let p = period_containing(Every::Daily, &chicago, ms("2026-11-01T12:00:00Z")).unwrap();
        assert_eq!(p.to_ms - p.from_ms, 25 * 3_600_000);
    }

    #[test]
    fn a_week_starts_on_monday() {
        // 2026-12-03 is a Thursday.
        let p = period_containing(Every::Weekly, &TimeZone::UTC, ms("2026-12-03T10:00:00Z")).unwrap();
        assert_eq!(
            (p.from_ms, p.to_ms),
            (ms("2026-11-30T00:00:00Z"), ms("2026-12-07T00:00:00Z"))
        );
    }

    #[test]
    fn due_periods_catch_up_but_never_repeat() {
        let utc = TimeZone::UTC;
        let now = ms("2026-12-03T00:05:00Z");
        let first = due(Every::Daily, &utc, None, now);
        assert_eq!(first.len(), 1, "a new schedule starts with the day just ended");
        assert_eq!(first[0].from_ms, ms("2026-12-02T00:00:00Z"));
        assert!(due(Every::Daily, &utc, Some(first[0].to_ms), now).is_empty());
        let later = due(
            Every::Daily,
            &utc,
            Some(first[0].to_ms),
            ms("2026-12-06T09:00:00Z"),
        );
        let starts: Vec<i64> = later.iter().map(|p| p.from_ms).collect();
        assert_eq!(
            starts,
            [
                ms("2026-12-03T00:00:00Z"),
                ms("2026-12-04T00:00:00Z"),
                ms("2026-12-05T00:00:00Z")
            ],
            "the days missed while down, oldest first"
        );
        let long = due(
            Every::Daily,
            &utc,
            Some(first[0].to_ms),
            ms("2027-02-01T00:00:00Z"),
        );
        assert_eq!(long.len(), MAX_CATCH_UP);
        assert_eq!(long.last().unwrap().to_ms, ms("2027-02-01T00:00:00Z"));
    }
}

//! Time in the simulator: eMAG speaks Europe/Bucharest local time without an offset, so the
//! simulator keeps naive local datetimes and a clock that starts at the configured epoch and
//! advances with tokio time (paused in tests) plus explicit `AdvanceClock` jumps.
//!
//! The Bucharest offset is computed from the EU daylight-saving rule rather than a tz
//! database: the rule has been stable since 1996 and it keeps the dependency set offline.

use std::sync::Mutex;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc, Weekday,
};
use tokio::time::Instant;

/// The wire format of every eMAG datetime.
pub(crate) const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Current Europe/Bucharest local time, truncated to the minute.
pub(crate) fn bucharest_now_minute() -> NaiveDateTime {
    let local = utc_to_bucharest(Utc::now());
    local
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(local)
}

/// Converts a UTC instant to Bucharest wall-clock time (EET, EEST in summer).
pub(crate) fn utc_to_bucharest(utc: DateTime<Utc>) -> NaiveDateTime {
    let year = utc.year();
    // EU rule: summer time from the last Sunday of March 01:00 UTC to the last Sunday of
    // October 01:00 UTC.
    let start = last_sunday_at_one_utc(year, 3);
    let end = last_sunday_at_one_utc(year, 10);
    let offset_hours = if utc >= start && utc < end { 3 } else { 2 };
    utc.naive_utc() + Duration::hours(offset_hours)
}

fn last_sunday_at_one_utc(year: i32, month: u32) -> DateTime<Utc> {
    let last_day = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .and_then(|d| d.pred_opt())
    .unwrap_or(NaiveDate::MIN);
    let back = last_day.weekday().num_days_from_sunday();
    let sunday = last_day - Duration::days(i64::from(back));
    debug_assert_eq!(sunday.weekday(), Weekday::Sun);
    Utc.from_utc_datetime(&sunday.and_hms_opt(1, 0, 0).unwrap_or_default())
}

/// The simulator's notion of "now": `epoch + elapsed tokio time + manual advances`.
#[derive(Debug)]
pub(crate) struct SimClock {
    epoch: NaiveDateTime,
    started: Instant,
    advanced: Mutex<Duration>,
}

impl SimClock {
    pub(crate) fn new(epoch: NaiveDateTime) -> Self {
        Self {
            epoch,
            started: Instant::now(),
            advanced: Mutex::new(Duration::zero()),
        }
    }

    /// Milliseconds of tokio time since the simulator was built (journal timestamps).
    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Current simulated local time, truncated to whole seconds like the wire format.
    pub(crate) fn now(&self) -> NaiveDateTime {
        let elapsed = Duration::from_std(self.started.elapsed()).unwrap_or(Duration::zero());
        let advanced = *self
            .advanced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.epoch + elapsed + advanced;
        now.with_nanosecond(0).unwrap_or(now)
    }

    /// Moves the clock forward; it never goes back.
    pub(crate) fn advance(&self, by: Duration) -> NaiveDateTime {
        {
            let mut advanced = self
                .advanced
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *advanced += by;
        }
        self.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        Utc.from_utc_datetime(
            &NaiveDateTime::parse_from_str(s, DATETIME_FORMAT).unwrap_or_default(),
        )
    }

    #[test]
    fn bucharest_is_utc_plus_three_in_summer_and_plus_two_in_winter() {
        assert_eq!(
            utc_to_bucharest(utc("2025-07-01 12:00:00"))
                .format(DATETIME_FORMAT)
                .to_string(),
            "2025-07-01 15:00:00"
        );
        assert_eq!(
            utc_to_bucharest(utc("2025-12-01 12:00:00"))
                .format(DATETIME_FORMAT)
                .to_string(),
            "2025-12-01 14:00:00"
        );
    }

    #[test]
    fn bucharest_switches_to_summer_time_on_the_last_sunday_of_march() {
        // 2025-03-30 is the last Sunday of March; the switch happens at 01:00 UTC.
        assert_eq!(
            utc_to_bucharest(utc("2025-03-30 00:59:59"))
                .format(DATETIME_FORMAT)
                .to_string(),
            "2025-03-30 02:59:59"
        );
        assert_eq!(
            utc_to_bucharest(utc("2025-03-30 01:00:00"))
                .format(DATETIME_FORMAT)
                .to_string(),
            "2025-03-30 04:00:00"
        );
        assert_eq!(
            utc_to_bucharest(utc("2025-10-26 01:00:00"))
                .format(DATETIME_FORMAT)
                .to_string(),
            "2025-10-26 03:00:00"
        );
    }
}

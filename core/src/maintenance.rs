//! Maintenance windows: when weekly maintenance of a cluster may run. The default is the
//! seed's AKS window, Tuesdays 21:00–23:00 UTC; each cluster may set its own. Work checks
//! `remaining` at safe points and stops before the window closes.

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    #[schema(value_type = String, example = "Tue")]
    pub weekday: Weekday,
    /// UTC start, whole minutes.
    #[schema(value_type = String, example = "21:00:00")]
    pub start: NaiveTime,
    /// 1 to 24 hours.
    pub duration_minutes: u32,
}

impl Default for MaintenanceWindow {
    fn default() -> Self {
        Self {
            weekday: Weekday::Tue,
            start: NaiveTime::from_hms_opt(21, 0, 0).expect("static time"),
            duration_minutes: 120,
        }
    }
}

impl MaintenanceWindow {
    pub fn validate(&self) -> Result<()> {
        if !(60..=24 * 60).contains(&self.duration_minutes) {
            return Err(Error::InvalidInput(
                "a maintenance window lasts 1 to 24 hours".into(),
            ));
        }
        if self.start.second() != 0 || self.start.nanosecond() != 0 {
            return Err(Error::InvalidInput(
                "a maintenance window starts on a whole minute".into(),
            ));
        }
        Ok(())
    }

    fn duration(&self) -> Duration {
        Duration::minutes(i64::from(self.duration_minutes))
    }

    /// The start of the window occurrence on or before `at`'s week that could contain it.
    fn latest_start_at_or_before(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let days_back =
            (at.weekday().num_days_from_monday() + 7 - self.weekday.num_days_from_monday()) % 7;
        let day = at.date_naive() - Duration::days(i64::from(days_back));
        let start = Utc.from_utc_datetime(&day.and_time(self.start));
        if start > at {
            start - Duration::days(7)
        } else {
            start
        }
    }

    /// How long the window at `at` stays open; `None` outside the window.
    pub fn remaining(&self, at: DateTime<Utc>) -> Option<Duration> {
        let end = self.latest_start_at_or_before(at) + self.duration();
        (at < end).then(|| end - at)
    }

    /// The next time the window opens strictly after `at`.
    pub fn next_start(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.latest_start_at_or_before(at) + Duration::days(7)
    }

    /// The schedule expression Temporal fires the maintenance workflow on (cron, UTC).
    pub fn cron(&self) -> String {
        let weekday = self.weekday.num_days_from_sunday();
        format!(
            "{} {} * * {weekday}",
            self.start.minute(),
            self.start.hour()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn the_default_window_is_tuesday_evening_utc() {
        let window = MaintenanceWindow::default();
        window.validate().unwrap();
        // 2026-11-24 is a Tuesday.
        assert_eq!(window.remaining(at("2026-11-24T20:59:59Z")), None);
        assert_eq!(
            window.remaining(at("2026-11-24T21:00:00Z")),
            Some(Duration::hours(2))
        );
        assert_eq!(
            window.remaining(at("2026-11-24T22:30:00Z")),
            Some(Duration::minutes(30))
        );
        assert_eq!(window.remaining(at("2026-11-24T23:00:00Z")), None);
        assert_eq!(
            window.next_start(at("2026-11-24T22:00:00Z")),
            at("2026-12-01T21:00:00Z")
        );
        assert_eq!(
            window.next_start(at("2026-11-23T10:00:00Z")),
            at("2026-11-24T21:00:00Z")
        );
        assert_eq!(window.cron(), "0 21 * * 2");
    }

    #[test]
    fn a_window_may_cross_midnight_and_the_week() {
        let window = MaintenanceWindow {
            weekday: Weekday::Sun,
            start: NaiveTime::from_hms_opt(23, 30, 0).unwrap(),
            duration_minutes: 180,
        };
        // Sunday 2026-11-29 23:30 to Monday 02:30.
        assert_eq!(
            window.remaining(at("2026-11-30T01:30:00Z")),
            Some(Duration::hours(1))
        );
        assert_eq!(window.remaining(at("2026-11-30T02:30:00Z")), None);
        assert_eq!(window.cron(), "30 23 * * 0");
    }

    #[test]
    fn nonsense_windows_are_refused() {
        for window in [
            MaintenanceWindow {
                duration_minutes: 30,
                ..Default::default()
            },
            MaintenanceWindow {
                duration_minutes: 25 * 60,
                ..Default::default()
            },
            MaintenanceWindow {
                start: NaiveTime::from_hms_opt(21, 0, 30).unwrap(),
                ..Default::default()
            },
        ] {
            assert!(matches!(window.validate(), Err(Error::InvalidInput(_))));
        }
    }
}

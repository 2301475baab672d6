//! The spec's maintenance window in AKS's two vocabularies.

use chrono::{Timelike, Weekday};
use serde::Serialize;

use crate::maintenance::MaintenanceWindow;

/// AKS's scheduled auto-upgrade and node-OS windows last at least 4 hours.
const AKS_MIN_SCHEDULE_HOURS: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AllowedHours {
    pub day: &'static str,
    pub hours: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AksMaintenance {
    /// `maintenance_window`: AKS's own weekly releases, in whole clock hours per day.
    pub allowed: Vec<AllowedHours>,
    /// `maintenance_window_auto_upgrade` / `_node_os`: start day and time.
    pub day_of_week: &'static str,
    pub start_time: String,
    /// The spec's duration rounded up to whole hours, and at least AKS's minimum.
    pub duration_hours: u32,
}

pub(crate) fn aks_maintenance(window: &MaintenanceWindow) -> AksMaintenance {
    const DAY: u32 = 24 * 60;
    const WEEK: u32 = 7 * DAY;
    let start = window.weekday.num_days_from_monday() * DAY
        + window.start.hour() * 60
        + window.start.minute();
    let end = start + window.duration_minutes;
    // The clock hours that lie wholly inside the window, so AKS never works outside it;
    // a short window that holds no whole hour falls back to the hour it starts in.
    let mut hour_starts: Vec<u32> = (start.div_ceil(60)..)
        .map(|h| h * 60)
        .take_while(|h| h + 60 <= end)
        .collect();
    if hour_starts.is_empty() {
        hour_starts.push(start / 60 * 60);
    }
    let mut allowed: Vec<AllowedHours> = Vec::new();
    for minute in hour_starts {
        let minute = minute % WEEK;
        let day = day_name(minute / DAY);
        let hour = minute % DAY / 60;
        match allowed.last_mut() {
            Some(last) if last.day == day => last.hours.push(hour),
            _ => allowed.push(AllowedHours {
                day,
                hours: vec![hour],
            }),
        }
    }
    AksMaintenance {
        allowed,
        day_of_week: day_name(window.weekday.num_days_from_monday()),
        start_time: format!("{:02}:{:02}", window.start.hour(), window.start.minute()),
        duration_hours: window
            .duration_minutes
            .div_ceil(60)
            .max(AKS_MIN_SCHEDULE_HOURS),
    }
}

fn day_name(days_from_monday: u32) -> &'static str {
    match Weekday::try_from(days_from_monday as u8).expect("0..7") {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;

    use super::*;

    #[test]
    fn the_default_window_is_tuesday_21_and_22() {
        let m = aks_maintenance(&MaintenanceWindow::default());
        assert_eq!(
            m.allowed,
            [AllowedHours {
                day: "Tuesday",
                hours: vec![21, 22]
            }]
        );
        assert_eq!((m.day_of_week, m.start_time.as_str()), ("Tuesday", "21:00"));
        assert_eq!(m.duration_hours, 4);
    }

    #[test]
    fn a_window_across_the_week_splits_by_day() {
        let m = aks_maintenance(&MaintenanceWindow {
            weekday: Weekday::Sun,
            start: NaiveTime::from_hms_opt(23, 30, 0).unwrap(),
            duration_minutes: 180,
        });
        let days: Vec<_> = m.allowed.iter().map(|a| (a.day, a.hours.clone())).collect();
        assert_eq!(days, [("Monday", vec![0, 1])]);
        let m = aks_maintenance(&MaintenanceWindow {
            weekday: Weekday::Sun,
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            duration_minutes: 180,
        });
        let days: Vec<_> = m.allowed.iter().map(|a| (a.day, a.hours.clone())).collect();
        assert_eq!(days, [("Sunday", vec![22, 23]), ("Monday", vec![0])]);
    }

    #[test]
    fn a_short_unaligned_window_keeps_its_first_hour() {
        let m = aks_maintenance(&MaintenanceWindow {
            weekday: Weekday::Wed,
            start: NaiveTime::from_hms_opt(9, 30, 0).unwrap(),
            duration_minutes: 60,
        });
        assert_eq!(m.allowed[0].hours, [9]);
        assert_eq!(m.start_time, "09:30");
    }
}

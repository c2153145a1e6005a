//! `[reports]`: the staff-exposure threshold, and `[[reports.schedules]]`, the reports the broker produces by
//! itself (daily or weekly, for the period just ended), signs and stores write-once (`audit::schedule`).

use serde::Deserialize;

use super::Problem;

/// Compliance reports.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportsConfig {
    /// Staff ePHI exposure: a member who touched more distinct patient records outside their own assignments
    /// than this within any 24 hours is flagged.
    pub exposure_threshold: u32,
    /// Reports produced on a schedule, without anyone asking.
    pub schedules: Vec<ScheduleConfig>,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self {
            exposure_threshold: 20,
            schedules: Vec::new(),
        }
    }
}

/// How often a scheduled report covers a period: a calendar day, or a week from Monday, in `time_zone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    Daily,
    Weekly,
}

/// One scheduled report.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// A stable name: the stored reports are filed under it.
    pub name: String,
    /// `access`, `consent`, `retention` or `exposure` (the accounting report is per patient, on request).
    pub report: String,
    pub every: Every,
    /// The IANA zone whose midnight starts each period (and that the report shows times in); UTC by default.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// How long the stored report is kept write-once (S3 Object Lock retention when the bucket has it).
    #[serde(default = "default_keep_days")]
    pub keep_days: u32,
}

fn default_keep_days() -> u32 {
    2190
}

impl ReportsConfig {
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, s) in self.schedules.iter().enumerate() {
            let key = |field: &str| format!("reports.schedules[{i}].{field}");
            let name_ok = !s.name.is_empty()
                && s.name.len() <= 64
                && s.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !name_ok {
                p.push(Problem::new(key("name"), "1-64 letters, digits, '-' or '_'"));
            } else if !names.insert(s.name.as_str()) {
                p.push(Problem::new(key("name"), "another schedule has this name"));
            }
            if !matches!(s.report.as_str(), "access" | "consent" | "retention" | "exposure") {
                p.push(Problem::new(
                    key("report"),
                    "one of access, consent, retention, exposure (accounting is per patient, on request)",
                ));
            }
            if let Some(tz) = &s.time_zone
                && jiff::tz::TimeZone::get(tz).is_err()
            {
                p.push(Problem::new(
                    key("time_zone"),
                    "an IANA time zone such as America/Chicago",
                ));
            }
            if !(1..=36_500).contains(&s.keep_days) {
                p.push(Problem::new(key("keep_days"), "between 1 and 36500"));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_name_their_bad_keys() {
        let c: ReportsConfig = toml::from_str(
            r#"
            [[schedules]]
            name = "daily-access"
            report = "access"
            every = "daily"
            [[schedules]]
            name = "daily-access"
            report = "accounting"
            every = "weekly"
            time_zone = "Mars/Olympus"
            keep_days = 0
            "#,
        )
        .unwrap();
        let keys: Vec<String> = c.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "reports.schedules[1].name",
                "reports.schedules[1].report",
                "reports.schedules[1].time_zone",
                "reports.schedules[1].keep_days"
            ]
        );
        assert!(
            toml::from_str::<ReportsConfig>("[[schedules]]\nname='x'\nreport='access'\nevery='hourly'")
                .is_err()
        );
    }
}

//! The parts of Go's `time` package that templates reach through `toTime`, `toDuration` and
//! `humanizeTimestamp`: a UTC instant printed as `Time.String()` and formatted with Go's
//! reference-time layouts (`"2006-01-02 15:04:05"`), and `Duration.String()` (`1h2m3.5s`).

use std::fmt;

/// A UTC instant, as `time.Time` after `.UTC()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct GoTime {
    pub secs: i64,
    pub nanos: u32,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The calendar fields of an instant.
pub(super) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub weekday: u32,
    pub yday: u32,
}

impl GoTime {
    /// From Unix milliseconds, as `model.Time(ms).Time()` builds it.
    pub fn from_unix_ms(ms: i64) -> GoTime {
        GoTime {
            secs: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as u32,
        }
    }

    pub fn unix_nanos(&self) -> i128 {
        self.secs as i128 * 1_000_000_000 + self.nanos as i128
    }

    pub fn civil(&self) -> Civil {
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let yday = CUM[month as usize - 1] + day + u32::from(leap && month > 2);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            weekday: (days + 4).rem_euclid(7) as u32,
            yday,
        }
    }

    pub fn month_name(&self) -> &'static str {
        MONTHS[self.civil().month as usize - 1]
    }

    pub fn weekday_name(&self) -> &'static str {
        DAYS[self.civil().weekday as usize]
    }

    /// `Time.Format(layout)` in UTC.
    pub fn format(&self, layout: &str) -> String {
        let c = self.civil();
        let mut out = String::new();
        let b = layout.as_bytes();
        let mut i = 0;
        let starts = |i: usize, s: &str| layout[i..].starts_with(s);
        while i < b.len() {
            let rest = &layout[i..];
            let (len, text): (usize, String) = if starts(i, "January") {
                (7, MONTHS[c.month as usize - 1].into())
            } else if starts(i, "Jan") {
                (3, MONTHS[c.month as usize - 1][..3].into())
            } else if starts(i, "Monday") {
                (6, DAYS[c.weekday as usize].into())
            } else if starts(i, "Mon") {
                (3, DAYS[c.weekday as usize][..3].into())
            } else if starts(i, "MST") {
                (3, "UTC".into())
            } else if starts(i, "2006") {
                (4, format!("{:04}", c.year))
            } else if starts(i, "002") {
                (3, format!("{:03}", c.yday))
            } else if starts(i, "01") {
                (2, format!("{:02}", c.month))
            } else if starts(i, "02") {
                (2, format!("{:02}", c.day))
            } else if starts(i, "03") {
                (2, format!("{:02}", (c.hour + 11) % 12 + 1))
            } else if starts(i, "04") {
                (2, format!("{:02}", c.minute))
            } else if starts(i, "05") {
                (2, format!("{:02}", c.second))
            } else if starts(i, "06") {
                (2, format!("{:02}", c.year.rem_euclid(100)))
            } else if starts(i, "15") {
                (2, format!("{:02}", c.hour))
            } else if starts(i, "1") {
                (1, c.month.to_string())
            } else if starts(i, "__2") {
                (3, format!("{:>3}", c.yday))
            } else if starts(i, "_2") && !starts(i, "_2006") {
                (2, format!("{:>2}", c.day))
            } else if starts(i, "2") {
                (1, c.day.to_string())
            } else if starts(i, "3") {
                (1, ((c.hour + 11) % 12 + 1).to_string())
            } else if starts(i, "4") {
                (1, c.minute.to_string())
            } else if starts(i, "5") {
                (1, c.second.to_string())
            } else if starts(i, "PM") {
                (2, if c.hour >= 12 { "PM" } else { "AM" }.into())
            } else if starts(i, "pm") {
                (2, if c.hour >= 12 { "pm" } else { "am" }.into())
            } else if let Some(z) = ["-07:00:00", "-070000", "-07:00", "-0700", "-07"]
                .iter()
                .find(|z| starts(i, z))
            {
                (z.len(), z.replace("07", "00").replace('-', "+"))
            } else if let Some(z) = ["Z07:00:00", "Z070000", "Z07:00", "Z0700", "Z07"]
                .iter()
                .find(|z| starts(i, z))
            {
                (z.len(), "Z".into())
            } else if (rest.starts_with(".0")
                || rest.starts_with(".9")
                || rest.starts_with(",0")
                || rest.starts_with(",9"))
                && {
                    let d = b[i + 1];
                    let n = b[i + 1..].iter().take_while(|&&x| x == d).count();
                    !b.get(i + 1 + n).is_some_and(u8::is_ascii_digit)
                }
            {
                let d = b[i + 1];
                let n = b[i + 1..].iter().take_while(|&&x| x == d).count().min(9);
                let frac = format!("{:09}", self.nanos);
                let mut digits = frac[..n].to_string();
                if d == b'9' {
                    digits = digits.trim_end_matches('0').to_string();
                }
                let run = b[i + 1..].iter().take_while(|&&x| x == d).count();
                if digits.is_empty() {
                    (1 + run, String::new())
                } else {
                    (1 + run, format!("{}{}", b[i] as char, digits))
                }
            } else {
                let ch = rest.chars().next().unwrap_or(' ');
                (ch.len_utf8(), ch.to_string())
            };
            out.push_str(&text);
            i += len;
        }
        out
    }
}

impl fmt::Display for GoTime {
    /// `Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format("2006-01-02 15:04:05.999999999 -0700 MST"))
    }
}

/// `time.Duration(ns).String()`.
pub(super) fn duration_string(ns: i64) -> String {
    let neg = ns < 0;
    let mut u = ns.unsigned_abs();
    let mut out = String::new();
    // Built right to left, as Go does.
    let frac = |u: u64, prec: u32, out: &mut String| -> u64 {
        let mut digits = String::new();
        let mut v = u;
        let mut print = false;
        for _ in 0..prec {
            let d = v % 10;
            print = print || d != 0;
            if print {
                digits.insert(0, char::from(b'0' + d as u8));
            }
            v /= 10;
        }
        if print {
            out.insert_str(0, &format!(".{digits}"));
        }
        v
    };
    if u < 1_000_000_000 {
        if u == 0 {
            return "0s".into();
        }
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        out.push_str(unit);
        u = frac(u, prec, &mut out);
        out.insert_str(0, &u.to_string());
    } else {
        out.push('s');
        u = frac(u, 9, &mut out);
        out.insert_str(0, &(u % 60).to_string());
        u /= 60;
        if u > 0 {
            out.insert_str(0, &format!("{}m", u % 60));
            u /= 60;
            if u > 0 {
                out.insert_str(0, &format!("{u}h"));
            }
        }
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_prints_like_go() {
        let t = GoTime::from_unix_ms(1_435_065_584_128);
        assert_eq!(t.to_string(), "2015-06-23 13:19:44.128 +0000 UTC");
        assert_eq!(
            GoTime::from_unix_ms(-1000).to_string(),
            "1969-12-31 23:59:59 +0000 UTC"
        );
        assert_eq!(t.format("2006"), "2015");
        assert_eq!(
            t.format("Mon Jan _2 15:04:05.000 MST 2006 3PM -07:00 Z07:00 002"),
            "Tue Jun 23 13:19:44.128 UTC 2015 1PM +00:00 Z 174"
        );
        assert_eq!(t.format(time_rfc3339()), "2015-06-23T13:19:44Z");
        assert_eq!(
            GoTime::from_unix_ms(1_657_155_181_000).to_string(),
            "2022-07-07 00:53:01 +0000 UTC"
        );
    }

    fn time_rfc3339() -> &'static str {
        "2006-01-02T15:04:05Z07:00"
    }

    #[test]
    fn durations_print_like_go() {
        for (ns, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_500_000_000, "3.5s"),
            (1_800_000_000_000, "30m0s"),
            (3_723_000_000_000, "1h2m3s"),
            (-90_000_000_000, "-1m30s"),
        ] {
            assert_eq!(duration_string(ns), want);
        }
    }
}

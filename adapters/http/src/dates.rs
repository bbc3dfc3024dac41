//! Calendar dates for request signing: the UTC date and time of a
//! `wasi:clocks/wall-clock` second, written as SigV4's `x-amz-date`
//! ([`amz_date`]) and Azure's `x-ms-date` ([`http_date`]).

use alloc::format;
use alloc::string::String;

/// A UTC date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    pub year: u64,
    /// 1 to 12.
    pub month: u64,
    /// 1 to 31.
    pub day: u64,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
    /// 0 is Monday.
    pub weekday: u64,
}

impl Utc {
    /// The date and time `unix_seconds` after 1970-01-01T00:00:00Z.
    pub fn from_unix(unix_seconds: u64) -> Utc {
        let days = unix_seconds / 86_400;
        let time = unix_seconds % 86_400;
        // Howard Hinnant's `civil_from_days`, for days on or after the epoch.
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Utc {
            year: yoe + era * 400 + u64::from(month <= 2),
            month,
            day: doy - (153 * mp + 2) / 5 + 1,
            hour: time / 3600,
            minute: time / 60 % 60,
            second: time % 60,
            // 1970-01-01 was a Thursday.
            weekday: (days + 3) % 7,
        }
    }
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the Unix epoch (UTC).
pub fn amz_date(unix_seconds: u64) -> String {
    let t = Utc::from_unix(unix_seconds);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for seconds since the Unix epoch.
pub fn http_date(seconds: u64) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = Utc::from_unix(seconds);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday as usize],
        t.day,
        MONTHS[(t.month - 1) as usize],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let utc = Utc::from_unix(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!((utc.year, utc.month, utc.day, utc.weekday), (1994, 11, 6, 6));
        assert_eq!((utc.hour, utc.minute, utc.second), (8, 49, 37));
        let utc = Utc::from_unix(951_782_400); // 2000-02-29, a Tuesday
        assert_eq!((utc.year, utc.month, utc.day, utc.weekday), (2000, 2, 29, 1));
        assert_eq!(Utc::from_unix(0).weekday, 3);
    }

    #[test]
    fn amz_dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_795_279_386), "Sat, 21 Nov 2026 16:43:06 GMT");
    }
}

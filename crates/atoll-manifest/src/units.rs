//! Human-friendly durations (`"250ms"`, `"5s"`) and sizes (`"64MiB"`).
//!
//! Both come from files and command lines written by people, so every input
//! either parses to a value the rest of Atoll can use without overflowing or
//! is refused with a message that says what the limit is. Durations are read
//! as exact decimals (no floating point), so `"0.1s"` is exactly 100ms and a
//! number too large for any clock is refused rather than rounded.

use std::time::Duration;

/// The longest duration accepted anywhere (365 days). Well beyond any
/// sensible timeout or schedule, and small enough that `Instant::now() + d`
/// (and a timer wheel's deadline) can never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The largest size accepted anywhere (1024GiB, 1TiB). Far above any
/// memory, body or bundle limit, and small enough that adding to it or
/// converting it to a 64-bit `usize` never overflows.
pub const MAX_SIZE: u64 = 1 << 40;

/// Parses `"250ms"`, `"5s"`, `"1.5s"`, `"2m"`, `"1h"`, `"100us"`: from 1ns
/// up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("\"{text}\" has no unit; write e.g. \"5s\" or \"250ms\""))?;
    let (num, unit) = t.split_at(split);
    let not_a_duration = || format!("\"{text}\" is not a duration; write e.g. \"5s\" or \"250ms\"");
    let (whole, fraction) = num.split_once('.').unwrap_or((num, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(not_a_duration());
    }
    let unit_nanos: u128 = match unit.trim() {
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => {
            return Err(format!(
                "unknown duration unit \"{other}\" in \"{text}\" (use us, ms, s, m or h)"
            ));
        }
    };
    let too_long = || {
        format!(
            "\"{text}\" is too long: the longest duration is {}h (365 days)",
            MAX_DURATION.as_secs() / 3600
        )
    };
    // Leading zeros do not change the value, and with them gone a whole
    // part of more than 20 digits is certainly beyond the maximum.
    let whole = whole.trim_start_matches('0');
    if whole.len() > 20 {
        return Err(too_long());
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| not_a_duration())?
    };
    // Digits past the 20th are worth less than 10^-20 of the unit, below a
    // nanosecond even for hours, so they can only be dropped.
    let kept = &fraction[..fraction.len().min(20)];
    let fraction_nanos = if kept.is_empty() {
        0
    } else {
        let digits: u128 = kept.parse().map_err(|_| not_a_duration())?;
        digits * unit_nanos / 10u128.pow(kept.len() as u32)
    };
    let nanos = whole * unit_nanos + fraction_nanos;
    if nanos > MAX_DURATION.as_nanos() {
        return Err(too_long());
    }
    if nanos == 0 {
        return Err(if num.bytes().all(|b| b == b'0' || b == b'.') {
            format!("\"{text}\" must be greater than zero")
        } else {
            format!("\"{text}\" is shorter than the smallest duration, 1ns")
        });
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Parses `"64MiB"`, `"512KiB"`, `"1GiB"`, `"10MB"`, or a plain number of
/// bytes: from 1 byte up to [`MAX_SIZE`].
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("\"{text}\" is not a size; write e.g. \"64MiB\""));
    }
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit \"{other}\" in \"{text}\" (use B, KiB, MiB, GiB, KB, MB or GB)"
            ));
        }
    };
    let too_large = || format!("\"{text}\" is too large: the largest size is 1024GiB (1TiB)");
    // A number too long for u64 is beyond the maximum whatever its unit.
    let value: u64 = num.parse().map_err(|_| too_large())?;
    match value.checked_mul(scale) {
        Some(0) => Err(format!("\"{text}\" must be greater than zero")),
        Some(bytes) if bytes <= MAX_SIZE => Ok(bytes),
        _ => Err(too_large()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("100us").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_duration("0.007us").unwrap(), Duration::from_nanos(7));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("parsecs"));
        assert!(parse_duration("0s").unwrap_err().contains("greater than zero"));
    }

    #[test]
    fn durations_are_exact_decimals() {
        assert_eq!(parse_duration("0.1s").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("0.3s").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5.s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("0.0015us").unwrap(), Duration::from_nanos(1));
        assert_eq!(
            parse_duration("000000000000000000000000001s").unwrap(),
            Duration::from_secs(1)
        );
        assert_eq!(
            parse_duration("1.000000000000000000000000000001h").unwrap(),
            Duration::from_secs(3600)
        );
        for bad in [".s", "1..2s", "1.2.3s", "..s"] {
            assert!(parse_duration(bad).unwrap_err().contains("not a duration"), "{bad}");
        }
    }

    #[test]
    fn durations_out_of_range_are_refused_not_panicked_on() {
        assert_eq!(parse_duration("8760h").unwrap(), MAX_DURATION);
        assert_eq!(parse_duration("525600m").unwrap(), MAX_DURATION);
        for huge in [
            "8760.000001h",
            "99999999999999999999999h",
            "18446744073709551616s",
            &format!("{}s", "9".repeat(400)),
            &format!("{}.5ms", "1".repeat(30)),
        ] {
            let e = parse_duration(huge).unwrap_err();
            assert!(e.contains("too long") && e.contains("8760h (365 days)"), "{huge}: {e}");
        }
        let e = parse_duration("0.0000000001us").unwrap_err();
        assert!(e.contains("shorter than the smallest duration, 1ns"), "{e}");
        assert!(parse_duration("0.000s").unwrap_err().contains("greater than zero"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1024GiB").unwrap(), MAX_SIZE);
        assert!(parse_size("64 furlongs").unwrap_err().contains("furlongs"));
        assert!(parse_size("MiB").unwrap_err().contains("not a size"));
        assert!(parse_size("0MiB").unwrap_err().contains("greater than zero"));
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        for huge in [
            "1025GiB",
            "1100GB",
            "18446744073709551615",
            "99999999999999999999999GiB",
            "17179869184GiB",
        ] {
            let e = parse_size(huge).unwrap_err();
            assert!(
                e.contains("too large: the largest size is 1024GiB (1TiB)"),
                "{huge}: {e}"
            );
        }
    }
}

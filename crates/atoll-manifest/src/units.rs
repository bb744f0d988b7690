//! Human-friendly durations (`"250ms"`, `"5s"`) and sizes (`"64MiB"`).

use std::time::Duration;

/// Parses `"250ms"`, `"5s"`, `"1.5s"`, `"2m"`, `"1h"`, `"100us"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("\"{text}\" has no unit; write e.g. \"5s\" or \"250ms\""))?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("\"{text}\" is not a duration; write e.g. \"5s\" or \"250ms\""))?;
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit \"{other}\" in \"{text}\" (use us, ms, s, m or h)"
            ));
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("\"{text}\" must be greater than zero"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `"64MiB"`, `"512KiB"`, `"1GiB"`, `"10MB"`, or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: u64 = num
        .parse()
        .map_err(|_| format!("\"{text}\" is not a size; write e.g. \"64MiB\""))?;
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
    value
        .checked_mul(scale)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("\"{text}\" must be greater than zero and fit in 64 bits"))
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
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("parsecs"));
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("64 furlongs").unwrap_err().contains("furlongs"));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("0MiB").is_err());
    }
}

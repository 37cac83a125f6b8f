//! Byte sizes as users write them (`50MiB`, `1.5 GB`, `4096`) and as we print them.

/// Parses `N`, `N B`, `N KiB|MiB|GiB` (powers of two) or `N kB|MB|GB` (powers of ten).
pub fn parse_size(text: &str) -> Result<u64, BadSize> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = (t[..split].trim(), t[split..].trim());
    if num.is_empty() {
        return Err(BadSize::NoNumber(text.into()));
    }
    let factor: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(BadSize::Unit { unit: unit.into(), text: text.into() }),
    };
    let value: f64 = num.parse().map_err(|_| BadSize::Number(text.into()))?;
    Ok((value * factor as f64).round() as u64)
}

/// Text that is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSize {
    #[error("`{0}` is not a size: write a number of bytes and a unit, such as `48MiB`")]
    NoNumber(String),
    #[error("unknown size unit `{unit}` in `{text}`: use B, KiB, MiB, GiB, kB, MB or GB")]
    Unit { unit: String, text: String },
    #[error("`{0}` is not a size such as `48MiB`")]
    Number(String),
}

/// A short human form: `12.3 MiB`, `512 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("50MiB"), Ok(50 << 20));
        assert_eq!(parse_size("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2kB"), Ok(2000));
        assert!(parse_size("3 mb").unwrap_err().to_string().contains("unknown size unit `mb`"));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(50 << 20), "50.0 MiB");
    }
}

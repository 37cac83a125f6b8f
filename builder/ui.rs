//! What smelt tells the person running it: logs on stderr by verbosity, timed steps,
//! and progress bars only when stderr is a terminal.

use std::io::IsTerminal;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub struct Ui {
    pub verbosity: Verbosity,
    terminal: bool,
}

impl Ui {
    pub fn new(verbosity: Verbosity) -> Ui {
        Ui { verbosity, terminal: std::io::stderr().is_terminal() }
    }

    pub fn info(&self, msg: &str) {
        if self.verbosity >= Verbosity::Normal {
            eprintln!("{msg}");
        }
    }

    pub fn detail(&self, msg: &str) {
        if self.verbosity >= Verbosity::Verbose {
            eprintln!("  {msg}");
        }
    }

    pub fn warn(&self, msg: &str) {
        warning(msg);
    }

    /// Runs one named step of the build and logs its duration.
    pub fn step<T>(&self, name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let started = Instant::now();
        let out = f()?;
        self.detail(&format!("{name:<10} {:>7.2} s", started.elapsed().as_secs_f64()));
        Ok(out)
    }

    /// A byte progress bar, or a hidden one when stderr is not a terminal.
    pub fn bytes_bar(&self, total: u64, what: &str) -> indicatif::ProgressBar {
        if !self.terminal || self.verbosity == Verbosity::Quiet {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        bar
    }
}

/// A warning from deep inside the build, where no `Ui` is at hand; always shown.
pub fn warning(msg: &str) {
    eprintln!("smelt: warning: {msg}");
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `2024-01-31T12:00:00Z` for seconds since the epoch (UTC, proleptic Gregorian).
pub fn rfc3339(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}

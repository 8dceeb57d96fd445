//! The `context` interface: the finding, the fixer's settings and its bounded log.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::bindings::salve::fixer::context::{Host, LogLevel};
use crate::Capabilities;
use crate::Finding;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    pub level: Cow<'static, str>,
    pub message: String,
}

/// What one kept line costs in the record besides its message: the JSON around it. Counting it
/// is what stops a flood of empty lines, which cost no message bytes at all.
const LINE_OVERHEAD: usize = r#"{"level":"debug","message":""},"#.len();

/// At most this many lines are kept, whatever their size.
pub const MAX_LOG_LINES: usize = 1000;

/// The fixer's log lines, kept until `max_bytes` (message plus per-line overhead) or
/// [`MAX_LOG_LINES`]; the rest is counted, not stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FixerLog {
    pub lines: Vec<LogLine>,
    pub dropped_lines: u64,
    pub dropped_bytes: u64,
    #[serde(skip)]
    bytes: usize,
    #[serde(skip)]
    max_bytes: usize,
}

impl FixerLog {
    pub fn new(max_bytes: usize) -> FixerLog {
        FixerLog {
            lines: Vec::new(),
            dropped_lines: 0,
            dropped_bytes: 0,
            bytes: 0,
            max_bytes,
        }
    }

    pub fn push(&mut self, level: &'static str, message: String) {
        let cost = message.len() + LINE_OVERHEAD;
        if self.lines.len() >= MAX_LOG_LINES || self.bytes + cost > self.max_bytes {
            self.dropped_lines += 1;
            self.dropped_bytes += message.len() as u64;
            return;
        }
        self.bytes += cost;
        tracing::debug!(target: "salve::fixer", level, "{message}");
        self.lines.push(LogLine {
            level: Cow::Borrowed(level),
            message,
        });
    }
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

impl crate::v0_2::salve::fixer::context::Host for Capabilities {
    async fn current_finding(&mut self) -> wasmtime::Result<Finding> {
        Ok(self.finding.clone())
    }

    async fn log(
        &mut self,
        level: crate::v0_2::salve::fixer::context::LogLevel,
        message: String,
    ) -> wasmtime::Result<()> {
        use crate::v0_2::salve::fixer::context::LogLevel as L;
        let level = match level {
            L::Trace => LogLevel::Trace,
            L::Debug => LogLevel::Debug,
            L::Info => LogLevel::Info,
            L::Warn => LogLevel::Warn,
            L::Error => LogLevel::Error,
        };
        self.log.push(level_name(level), message);
        Ok(())
    }

    async fn setting(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.settings.get(&key).cloned())
    }
}

impl Host for Capabilities {
    async fn current_finding(&mut self) -> wasmtime::Result<Finding> {
        Ok(self.finding.clone())
    }

    async fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.log.push(level_name(level), message);
        Ok(())
    }

    async fn setting(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.settings.get(&key).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_what_fits_and_counts_the_rest() {
        let mut log = FixerLog::new(10 + 2 * LINE_OVERHEAD);
        log.push("info", "12345".into());
        log.push("info", "1234567".into());
        log.push("info", "12345".into());
        assert_eq!(log.lines.len(), 2);
        assert_eq!((log.dropped_lines, log.dropped_bytes), (1, 7));
    }

    #[test]
    fn a_flood_of_empty_lines_is_bounded() {
        let mut log = FixerLog::new(64 * 1024);
        for _ in 0..1_000_000 {
            log.push("info", String::new());
        }
        assert!(log.lines.len() <= MAX_LOG_LINES);
        assert_eq!(log.dropped_lines, 1_000_000 - log.lines.len() as u64);
        assert!(serde_json::to_string(&log).unwrap().len() < 64 * 1024 + 1024);
    }
}

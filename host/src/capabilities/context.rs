//! The `context` interface: the finding, the fixer's settings and its bounded log.

use serde::Serialize;

use super::salve::fixer::context::{Host, LogLevel};
use super::salve::fixer::types::Finding;
use super::Capabilities;

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// The fixer's log lines, kept until `max_bytes`; the rest is counted, not stored.
#[derive(Debug, Clone, Serialize)]
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
        if self.bytes + message.len() > self.max_bytes {
            self.dropped_lines += 1;
            self.dropped_bytes += message.len() as u64;
            return;
        }
        self.bytes += message.len();
        tracing::debug!(target: "salve::fixer", level, "{message}");
        self.lines.push(LogLine { level, message });
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
        let mut log = FixerLog::new(10);
        log.push("info", "12345".into());
        log.push("info", "1234567".into());
        log.push("info", "12345".into());
        assert_eq!(log.lines.len(), 2);
        assert_eq!((log.dropped_lines, log.dropped_bytes), (1, 7));
    }
}

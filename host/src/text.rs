//! Text that came from outside (a fixer, a payload) on its way into a record, a terminal or a
//! chat message: cut to a bound, and stripped of the power to control a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The longest prefix of `s` that fits in `max` bytes without splitting a character.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut to `max` bytes, saying how much was cut, so a reader knows the text is partial.
pub fn bounded(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let kept = clip(s, max);
    Cow::Owned(format!("{kept}… ({} more bytes cut)", s.len() - kept.len()))
}

/// Replaces every control character except newline and tab with a visible escape (`\u{1b}`), so
/// text printed to a terminal cannot move the cursor, rewrite lines or change colours. Newlines
/// are escaped too when `keep_newlines` is false (one-line fields such as a status line).
pub fn escape_control(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let is_bad = |c: char| {
        (c.is_control() && !(keep_newlines && (c == '\n' || c == '\t')))
            // Bidirectional overrides reorder what the reader sees.
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(is_bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_bad(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// How the audit record spells an enum (`"HIGH"`, `"internet"`, `"remediate"`): its serde
/// name, for readers that print it.
pub fn spelled(v: &impl serde::Serialize) -> Option<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_respects_character_boundaries() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("abc", 10), "abc");
        assert_eq!(bounded("abcdef", 3), "abc… (3 more bytes cut)");
    }

    #[test]
    fn escapes_terminal_control_sequences() {
        assert_eq!(
            escape_control("ok\u{1b}[2K\rstatus remediated", false),
            "ok\\u{1b}[2K\\u{d}status remediated"
        );
        assert_eq!(escape_control("a\nb", true), "a\nb");
        assert_eq!(escape_control("a\nb", false), "a\\u{a}b");
        assert_eq!(escape_control("x\u{202e}y", true), "x\\u{202e}y");
    }
}

//! Values shown to people with the characters a terminal acts on escaped.
//!
//! Claims of an unverified token, request paths, header values and file contents reach the
//! operator's terminal through `check`, `logs`, `decode`, `validate`, `introspect` and `serve`.
//! Printed raw, an `ESC [2J` clears the screen, a `\n` or a C1 `NEL` forges a line of its own
//! ("diagnosis: no failure"), and a bidirectional override makes `gnp.exe` read as `exe.png`.
//! Every value those outputs print goes through [`escape`] (or [`Escaped`]); the layout's own
//! newlines and colours are written around the values, never through them.
//!
//! Escaped are: C0 controls (`\n`, `\r` and `\t` included: inside a value they are the value's),
//! DEL, C1 controls (U+0080–U+009F), the line and paragraph separators U+2028/U+2029 and the
//! bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069). `\n`, `\r`
//! and `\t` are shown as such, every other one as `\u{hex}` (Rust's notation, lower-case hex:
//! `\u{1b}`, `\u{85}`, `\u{202e}`). A backslash is left as it is: the form is for reading, not
//! for reversing. JSON output needs none of this: JSON escapes by itself and keeps the value.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` is shown escaped (see the module documentation).
pub fn is_escaped(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{2028}' | '\u{2029}'
        | '\u{061c}' | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `value` with the characters a terminal acts on escaped; borrowed when there is none (the
/// common case costs no allocation).
pub fn escape(value: &str) -> Cow<'_, str> {
    if value.chars().any(is_escaped) {
        Cow::Owned(Escaped(value).to_string())
    } else {
        Cow::Borrowed(value)
    }
}

/// A value formatted with [`escape`]'s escapes, written straight to the formatter.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(is_escaped) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                other => write!(f, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_borrowed_unchanged() {
        for clean in [
            "",
            "alice",
            "api://shop",
            "näive → ✓ 日本",
            "a\\u{1b}b",
            "\u{a0}\u{200b}",
        ] {
            assert!(
                matches!(escape(clean), Cow::Borrowed(s) if s == clean),
                "{clean:?}"
            );
        }
    }

    #[test]
    fn every_class_is_escaped() {
        let cases = [
            ("\u{1b}[2J", r"\u{1b}[2J"),
            ("a\nb\r\tc", r"a\nb\r\tc"),
            ("\u{0}\u{7}\u{1f}", r"\u{0}\u{7}\u{1f}"),
            ("del\u{7f}", r"del\u{7f}"),
            ("\u{80}\u{85}\u{9b}\u{9f}", r"\u{80}\u{85}\u{9b}\u{9f}"),
            ("line\u{2028}para\u{2029}", r"line\u{2028}para\u{2029}"),
            ("x\u{202e}gnp.exe", r"x\u{202e}gnp.exe"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}\u{2066}\u{2067}\u{2068}\u{2069}\u{200e}\u{200f}\u{61c}",
                r"\u{202a}\u{202b}\u{202c}\u{202d}\u{2066}\u{2067}\u{2068}\u{2069}\u{200e}\u{200f}\u{61c}",
            ),
            ("é\u{85}é", r"é\u{85}é"),
        ];
        for (raw, shown) in cases {
            assert_eq!(escape(raw), shown, "{raw:?}");
            assert_eq!(Escaped(raw).to_string(), shown, "{raw:?}");
            assert!(!escape(raw).chars().any(is_escaped));
        }
    }

    #[test]
    fn a_forged_line_stays_on_its_line() {
        let shown = escape("acme\n  diagnosis: no failure recorded");
        assert_eq!(shown.lines().count(), 1);
        assert_eq!(shown, r"acme\n  diagnosis: no failure recorded");
    }

    #[test]
    fn neighbours_of_the_escaped_ranges_are_kept() {
        for kept in [
            ' ', '~', '\u{a0}', '\u{2027}', '\u{202f}', '\u{2065}', '\u{206a}', '\u{200d}',
        ] {
            assert!(!is_escaped(kept), "{kept:?}");
        }
    }
}

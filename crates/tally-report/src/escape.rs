//! Making text that clients chose safe for whoever reads a report.
//!
//! Every text cell (command, flag, version, error kind, ...) was written by
//! whoever holds an app's public ingest key, so the renderings treat it as
//! hostile:
//!
//! - On a terminal, control characters are instructions: an OSC 52 sequence
//!   (`ESC ] 52 ; c ; ... BEL`) writes the reader's clipboard, others retitle
//!   the window or hide the rest of a line. C0 (U+0000-U+001F), DEL, C1
//!   (U+0080-U+009F) and the bidirectional embeddings, overrides and isolates
//!   (U+202A-U+202E, U+2066-U+2069, the set rustc warns about since Trojan
//!   Source, CVE-2021-42574) are shown as Rust escapes, `\u{1b}`, so what was
//!   sent stays visible without taking effect. Both the table and the CSV
//!   rendering do this: CSV goes to stdout as often as to a file.
//! - In a spreadsheet, a cell that starts with `=`, `+`, `-` or `@` is a
//!   formula (`=HYPERLINK(...)` sends whoever clicks it anywhere), and so is
//!   one that starts with a tab, CR or NUL once the application trims it.
//!   Following OWASP's CSV-injection rule (and ASVS 1.2.10), such a text cell
//!   gets a single quote in front, which spreadsheets take as "this is text"
//!   and do not show. Numbers are left alone: `-3` in a count column is
//!   written by Tally, not by a client, and must stay a number.
//!
//! JSON keeps the exact text (its string escapes are already safe to print).

use std::borrow::Cow;

/// `text` with every control and bidi-control character written as `\u{..}`.
pub(crate) fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe_on_terminal(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A text cell for CSV: a leading `'` if a spreadsheet would take it for a
/// formula, then [`for_terminal`]'s escapes.
pub(crate) fn for_csv(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r', '\0']) {
        Cow::Owned(for_terminal(&format!("'{text}")).into_owned())
    } else {
        for_terminal(text)
    }
}

fn is_unsafe_on_terminal(c: char) -> bool {
    // `char::is_control` is exactly Unicode's Cc: C0, DEL and C1.
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc_52_cannot_reach_the_terminal() {
        let osc52 = "\u{1b}]52;c;ZWNobyBwd25lZA==\u{7}";
        assert_eq!(for_terminal(osc52), "\\u{1b}]52;c;ZWNobyBwd25lZA==\\u{7}");
    }

    #[test]
    fn every_control_and_bidi_character_is_escaped() {
        for c in ('\0'..='\u{1f}')
            .chain(['\u{7f}'])
            .chain('\u{80}'..='\u{9f}')
            .chain('\u{202a}'..='\u{202e}')
            .chain('\u{2066}'..='\u{2069}')
        {
            let shown = for_terminal(&format!("a{c}b")).into_owned();
            assert_eq!(shown, format!("a\\u{{{:x}}}b", u32::from(c)), "{c:?}");
        }
    }

    #[test]
    fn ordinary_text_is_left_as_it_is() {
        for text in [
            "deploy create",
            "--legacy-output",
            "ünïcødé 部署",
            "'quoted'",
            "",
        ] {
            assert!(matches!(for_terminal(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn csv_text_that_a_spreadsheet_would_evaluate_gets_a_quote() {
        assert_eq!(
            for_csv("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(for_csv("+1"), "'+1");
        assert_eq!(for_csv("--token"), "'--token");
        assert_eq!(for_csv("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(for_csv("\t=1"), "'\\u{9}=1");
        assert_eq!(for_csv("\r=1"), "'\\u{d}=1");
        assert_eq!(for_csv("\0=1"), "'\\u{0}=1");
    }

    #[test]
    fn csv_text_that_is_not_a_formula_is_unchanged() {
        for text in ["deploy", "1.2.3", "a=b", "x-y", "'=already text", ""] {
            assert_eq!(for_csv(text), text);
        }
    }
}

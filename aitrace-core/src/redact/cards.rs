//! Payment card numbers in text, for
//! [`Redactor::with_common_value_patterns`](super::Redactor::with_common_value_patterns):
//! 13 to 19 digits, bare or in groups joined by single spaces or dashes,
//! that pass the Luhn check. A regular expression cannot do the check, and
//! the check is what keeps order ids and timestamps of the same length.

use std::ops::{Range, RangeInclusive};

use super::REDACTED;

/// The fewest digits of a card number (ISO/IEC 7812).
const MIN_DIGITS: usize = 13;
/// The most digits of a card number.
const MAX_DIGITS: usize = 19;
/// The digits in each group of a grouped number, as cards are printed:
/// 4-4-4-4, 4-6-5 (Amex), 4-6-4 (Diners), 4-4-4-4-3, 4-3-3-3.
const GROUP: RangeInclusive<usize> = 3..=6;

/// `text` with each card number replaced by [`REDACTED`], or `None` when it
/// holds none. A string with fewer than 13 digits, most of them, costs one
/// pass over its bytes.
pub(super) fn redact(text: &str) -> Option<String> {
    if text.len() < MIN_DIGITS || text.bytes().filter(u8::is_ascii_digit).count() < MIN_DIGITS {
        return None;
    }
    let found = find(text.as_bytes());
    if found.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for card in found {
        out.push_str(&text[done..card.start]);
        out.push_str(REDACTED);
        done = card.end;
    }
    out.push_str(&text[done..]);
    Some(out)
}

/// Whether an integer field holds a card number: 13 to 19 digits (the
/// sign aside, as in text) that pass the Luhn check. No allocation.
#[inline]
pub(super) fn is_card_number(n: u64) -> bool {
    const LOWEST: u64 = 10u64.pow(MIN_DIGITS as u32 - 1);
    const HIGHEST: u64 = 10u64.pow(MAX_DIGITS as u32) - 1;
    (LOWEST..=HIGHEST).contains(&n) && integer_passes_luhn(n)
}

/// The Luhn check over the decimal digits of `n`.
#[cold]
fn integer_passes_luhn(mut n: u64) -> bool {
    let mut sum = 0;
    let mut doubled = false;
    while n > 0 {
        let d = n % 10;
        n /= 10;
        sum += match (doubled, d * 2) {
            (false, _) => d,
            (true, twice) if twice > 9 => twice - 9,
            (true, twice) => twice,
        };
        doubled = !doubled;
    }
    sum % 10 == 0
}

/// The byte ranges of the card numbers in `text`, in order and apart.
fn find(text: &[u8]) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    // Runs of digits, each after the last with one space or dash between.
    let mut chain: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        if let Some(last) = chain.last() {
            let joined = start == last.end + 1 && matches!(text[last.end], b' ' | b'-');
            if !joined {
                find_in_chain(text, &chain, &mut found);
                chain.clear();
            }
        }
        chain.push(start..i);
    }
    find_in_chain(text, &chain, &mut found);
    found
}

/// Adds to `found` every card number made of whole runs of `chain`: one
/// run of 13 to 19 digits, or several of 3 to 6 digits each. All of them,
/// not just the longest: `4242 4242 4242 4242 123` holds a card although
/// its 19 digits fail the check.
fn find_in_chain(text: &[u8], chain: &[Range<usize>], found: &mut Vec<Range<usize>>) {
    for first in 0..chain.len() {
        let mut digits = 0;
        for last in first..chain.len() {
            let grouped = last > first;
            if grouped
                && !(GROUP.contains(&chain[first].len()) && GROUP.contains(&chain[last].len()))
            {
                break;
            }
            digits += chain[last].len();
            if digits > MAX_DIGITS {
                break;
            }
            let (start, end) = (chain[first].start, chain[last].end);
            if digits >= MIN_DIGITS
                && stands_alone(text, start, end)
                && passes_luhn(text, &chain[first..=last])
            {
                match found.last_mut() {
                    Some(previous) if start < previous.end => {
                        previous.end = previous.end.max(end);
                    }
                    _ => found.push(start..end),
                }
            }
        }
    }
}

/// Whether `text[start..end]` is not part of a word: no letter or digit
/// touches it, so the digits inside a hash or a hex id are left alone.
fn stands_alone(text: &[u8], start: usize, end: usize) -> bool {
    (start == 0 || !text[start - 1].is_ascii_alphanumeric())
        && text.get(end).is_none_or(|b| !b.is_ascii_alphanumeric())
}

/// The Luhn check over the digits of `groups`: from the right, every
/// second digit doubled (less 9 when over 9); the sum ends in 0.
fn passes_luhn(text: &[u8], groups: &[Range<usize>]) -> bool {
    let digits = groups
        .iter()
        .rev()
        .flat_map(|g| text[g.clone()].iter().rev());
    let sum: u32 = digits
        .enumerate()
        .map(|(i, &b)| {
            let d = u32::from(b - b'0');
            match (i % 2 == 1, d * 2) {
                (false, _) => d,
                (true, doubled) if doubled > 9 => doubled - 9,
                (true, doubled) => doubled,
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(text: &str) -> String {
        redact(text).unwrap_or_else(|| text.to_owned())
    }

    #[test]
    fn cards_bare_and_grouped_are_redacted() {
        for (text, want) in [
            ("4242424242424242", "[REDACTED]"),
            ("card 4242 4242 4242 4242.", "card [REDACTED]."),
            ("5555-5555-5555-4444", "[REDACTED]"),
            ("amex=3782-822463-10005;", "amex=[REDACTED];"),
            ("diners 3056 930902 5904", "diners [REDACTED]"),
            ("visa13 4222222222222 ok", "visa13 [REDACTED] ok"),
            (
                "a 4242424242424242, b 4000000000000002",
                "a [REDACTED], b [REDACTED]",
            ),
            ("4242424242424242-4000000000000002", "[REDACTED]-[REDACTED]"),
            // The card and the group after it fail together; the card alone passes.
            (
                "paid 4242 4242 4242 4242 123 times",
                "paid [REDACTED] 123 times",
            ),
            ("#12-4242424242424242", "#12-[REDACTED]"),
            ("(4242\u{e9}4242424242424242)", "(4242\u{e9}[REDACTED])"),
        ] {
            assert_eq!(redacted(text), want, "{text}");
        }
    }

    #[test]
    fn numbers_that_are_not_cards_are_kept() {
        for text in [
            "4242424242424241",         // fails the Luhn check
            "order 4000000000000003",   // fails the Luhn check
            "1700000000000",            // a timestamp in ms, fails
            "424242424242424242424242", // 24 digits
            "42424242424",              // 11 digits
            "sha a4242424242424242b",   // inside a word
            "x4242424242424242",
            "4242424242424242z",
            "4242  4242  4242  4242", // two spaces
            "4242_4242_4242_4242",
            "4242.4242.4242.4242",
            "42 42 42 42 42 42 42 42", // groups of 2
            "4242424 242424242",       // a group of 7
            "",
            "0",
        ] {
            assert_eq!(redact(text), None, "{text}");
        }
        // Enough digits for the pre-check, no card.
        assert_eq!(redact("2026-12-07 09:31:12.123456 id 77"), None);
    }

    #[test]
    fn integers_are_cards_as_their_decimal_text_is() {
        for n in [
            4242424242424242,
            4000000000000002,
            4222222222222,
            378282246310005,
            10u64.pow(12),
            10u64.pow(19) - 1,
            4242424242424241,
            1700000000000,
            u64::MAX,
            42424242424,
            0,
        ] {
            assert_eq!(is_card_number(n), redact(&n.to_string()).is_some(), "{n}");
        }
    }
}

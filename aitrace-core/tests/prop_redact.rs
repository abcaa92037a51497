//! Property tests of the redactor: any key and value, redacted with every
//! built-in pattern on, never panics, still encodes to valid JSON in every
//! layout, leaves no sensitive top-level key unredacted, and is idempotent;
//! any name a user adds matches itself;
//! key matching agrees with a model of "a default name at a word boundary";
//! any Luhn-valid card number, bare or grouped, anywhere in a message or a
//! string at any depth, is redacted, and digit strings that fail the Luhn
//! check are kept; so are integers of card length, as their decimal text.

use aitrace_core::wire::REDACTED;
use aitrace_core::{DEFAULT_REDACTED_KEYS, Layout, Level, Record, Redactor, Value};
use proptest::prelude::*;
use serde_json::Value as Json;

/// Any string, or text built from the shapes the value patterns look for.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<String>(),
        Just("Bearer ".to_owned()),
        Just("basic ".to_owned()),
        Just("eyJ".to_owned()),
        Just("AKIA".to_owned()),
        Just("password=".to_owned()),
        Just("://u:".to_owned()),
        Just("@".to_owned()),
        Just(REDACTED.to_owned()),
        Just("4242 4242 4242 4242".to_owned()),
        "[0-9]{13,19}",
        "[A-Za-z0-9._=&?/+-]{0,24}",
    ];
    prop::collection::vec(piece, 0..6).prop_map(|parts| parts.concat())
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => prop::sample::select(DEFAULT_REDACTED_KEYS.to_vec()).prop_map(str::to_owned),
        1 => (any::<String>(), prop::sample::select(DEFAULT_REDACTED_KEYS.to_vec()))
            .prop_map(|(prefix, name)| format!("{prefix}{name}")),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<f64>().prop_map(Value::F64),
        text().prop_map(|s| Value::Str(s.into())),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| Value::Bytes(b.into())),
    ];
    leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| Value::Array(v.into())),
            prop::collection::vec((key(), inner), 0..4).prop_map(|v| Value::Object(v.into())),
        ]
    })
}

fn record() -> impl Strategy<Value = Record> {
    (text(), prop::collection::vec((key(), value()), 0..6))
        .prop_map(|(event, fields)| Record::builder(Level::Info, event).fields(fields).build())
}

/// Built once: compiling the patterns is slow in a debug build.
static REDACTOR: std::sync::LazyLock<Redactor> = std::sync::LazyLock::new(|| {
    Redactor::default()
        .with_common_value_patterns()
        .value_pattern(r"(\d+)-(\d+)")
        .unwrap()
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_record_redacts_to_valid_json_without_its_secrets(record in record()) {
        let redactor = &*REDACTOR;
        let mut redacted = record.clone();
        redactor.redact(&mut redacted);
        for layout in [Layout::Namespaced, Layout::Flat, Layout::Compat] {
            let text = layout.to_json(&redacted);
            let parsed: Result<Json, _> = serde_json::from_str(&text);
            prop_assert!(parsed.is_ok(), "{text}");
        }
        for (key, value) in redacted.fields() {
            if redactor.is_sensitive_key(key) {
                prop_assert_eq!(value, &Value::from(REDACTED), "{}", key);
            }
        }
        let mut twice = redacted.clone();
        redactor.redact(&mut twice);
        prop_assert_eq!(&twice, &redacted, "redacting is idempotent");
        let mut untouched = record.clone();
        Redactor::none().redact(&mut untouched);
        prop_assert_eq!(untouched, record);
    }

    /// Any name a user adds matches itself (unless it is all separators,
    /// which is ignored) and no longer once allowed; nothing panics.
    #[test]
    fn an_added_name_matches_itself(name in any::<String>(), other in any::<String>()) {
        let redactor = Redactor::default().key(&name).key(&other);
        let all_separators = name.bytes().all(|b| matches!(b, b'_' | b'-' | b'.' | b' '));
        prop_assert_eq!(redactor.is_sensitive_key(&name), !all_separators);
        prop_assert!(!redactor.allow_key(&name).is_sensitive_key(&name));
    }

    /// A key is sensitive exactly when a default name ends it at a word
    /// boundary, whatever the case and separators.
    #[test]
    fn key_matching_follows_word_boundaries(
        prefix in prop::sample::select(vec!["", "db", "x", "user2", "My"]),
        join in prop::sample::select(vec!["_", "-", ".", " ", "camel"]),
        name in prop::sample::select(DEFAULT_REDACTED_KEYS.to_vec()),
        upper in any::<bool>(),
        suffix in prop::sample::select(vec!["", "_count", "Count", "-len", "ish"]),
    ) {
        let words: Vec<&str> = name.split('_').collect();
        let name = if join == "camel" {
            words
                .iter()
                .map(|w| format!("{}{}", w[..1].to_ascii_uppercase(), &w[1..]))
                .collect::<String>()
        } else if upper {
            words.join(join).to_ascii_uppercase()
        } else {
            words.join(join)
        };
        let key = match (prefix, join) {
            ("", _) => name,
            (prefix, "camel") => format!("{prefix}{name}"),
            (prefix, join) => format!("{prefix}{join}{name}"),
        };
        let key = format!("{key}{suffix}");
        prop_assert_eq!(Redactor::default().is_sensitive_key(&key), suffix.is_empty(), "{}", key);
    }
}

/// The Luhn check digit that completes `digits`.
fn luhn_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            match (i % 2, d * 2) {
                (1, _) => d,
                (_, doubled) if doubled > 9 => doubled - 9,
                (_, doubled) => doubled,
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// A 13 to 19 digit number whose last digit passes the Luhn check when
/// `valid`, and fails it otherwise.
fn card_digits(valid: bool) -> impl Strategy<Value = String> {
    (prop::collection::vec(0u8..10, 12..=18), 1u8..10).prop_map(move |(mut digits, off)| {
        let check = luhn_check_digit(&digits);
        digits.push(if valid { check } else { (check + off) % 10 });
        digits.iter().map(|d| char::from(b'0' + d)).collect()
    })
}

/// `digits` bare, or in groups as cards are printed (4-4-4-4, 4-6-5, …;
/// groups of 3 to 6 digits) joined by a space or a dash.
fn grouped(digits: String) -> impl Strategy<Value = String> {
    let n = digits.len();
    let layouts = prop_oneof![Just(0), Just(4), Just(6)];
    (layouts, prop::sample::select(vec![" ", "-"])).prop_map(move |(layout, sep)| {
        let mut sizes = match layout {
            0 => return digits.clone(),
            4 => vec![4; n / 4],
            _ => vec![4, 6],
        };
        let rest = n - sizes.iter().sum::<usize>();
        match rest {
            0 => {}
            1 | 2 => *sizes.last_mut().unwrap() += rest,
            3..=6 => sizes.push(rest),
            _ => {
                sizes.push(rest - 4);
                sizes.push(4);
            }
        }
        let mut groups = Vec::new();
        let mut at = 0;
        for size in sizes {
            groups.push(&digits[at..at + size]);
            at += size;
        }
        groups.join(sep)
    })
}

/// A character that ends a number: not a letter or a digit.
fn boundary() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        " ", ",", ":", "=", "(", ")", "\"", "\n", "/", "#", ";", ".",
    ])
}

/// `inner` nested `depth` levels down in objects and arrays.
fn nested(inner: Value, depth: usize) -> Value {
    (0..depth).fold(inner, |value, level| {
        if level % 2 == 0 {
            Value::Array(vec![Value::Null, value].into())
        } else {
            Value::Object(vec![("payment".to_owned(), value)].into())
        }
    })
}

/// Built once: compiling the patterns is slow in a debug build.
static CARDS: std::sync::LazyLock<Redactor> =
    std::sync::LazyLock::new(|| Redactor::none().with_common_value_patterns());

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A Luhn-valid number of card length, bare or grouped, anywhere in the
    /// message or in a string at any depth, never reaches the output.
    #[test]
    fn any_luhn_valid_card_number_anywhere_is_redacted(
        number in card_digits(true).prop_flat_map(grouped),
        prefix in any::<String>(),
        before in boundary(),
        after in boundary(),
        suffix in any::<String>(),
        in_message in any::<bool>(),
        depth in 0usize..5,
    ) {
        let text = format!("{prefix}{before}{number}{after}{suffix}");
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        let mut record = Record::builder(Level::Info, if in_message { text.clone() } else { "paid".to_owned() })
            .field("detail", nested(Value::from(text.clone()), depth))
            .build();
        CARDS.redact(&mut record);
        let json = Layout::Namespaced.to_json(&record);
        let parsed: Json = serde_json::from_str(&json).unwrap();
        let written = format!("{} {}", parsed["__tracer_meta__"]["event"], parsed["detail"]);
        prop_assert!(!written.contains(&number), "{} in {}", number, written);
        prop_assert!(!written.contains(&digits), "{} in {}", digits, written);
        prop_assert!(written.contains(REDACTED), "{}", written);
    }

    /// A number of card length that fails the Luhn check (an order id, a
    /// timestamp) is kept as it is.
    #[test]
    fn digit_strings_that_fail_the_luhn_check_are_kept(
        number in card_digits(false).prop_flat_map(grouped),
        prefix in prop::sample::select(vec!["", "order ", "id=", "ts:", "(", "ref #", "sent_at=", "n/"]),
        suffix in prop::sample::select(vec!["", " ok", ")", ";", ".", ", next", "\n"]),
        in_message in any::<bool>(),
        depth in 0usize..5,
    ) {
        // A grouped number also holds shorter runs of whole groups; keep
        // to the ones with no such run of card length.
        let groups: Vec<&str> = number.split([' ', '-']).collect();
        let digits: usize = groups.iter().map(|g| g.len()).sum();
        let shorter_run_of_card_length = groups.len() > 1
            && (digits - groups[0].len() >= 13 || digits - groups[groups.len() - 1].len() >= 13);
        prop_assume!(!shorter_run_of_card_length);
        let text = format!("{prefix}{number}{suffix}");
        let original = Record::builder(Level::Info, if in_message { text.clone() } else { "paid".to_owned() })
            .field("detail", nested(Value::from(text), depth))
            .build();
        let mut record = original.clone();
        CARDS.redact(&mut record);
        prop_assert_eq!(record, original);
    }

    /// An integer field of card length (`u64` or `i64`, either sign, at any
    /// depth) is redacted exactly when its digits pass the Luhn check.
    #[test]
    fn integers_of_card_length_are_redacted_when_they_pass_the_luhn_check(
        (passes, digits) in any::<bool>()
            .prop_flat_map(|valid| card_digits(valid).prop_map(move |d| (valid, d))),
        signed in any::<bool>(),
        negative in any::<bool>(),
        depth in 0usize..5,
    ) {
        // A leading zero would leave fewer digits in the integer.
        prop_assume!(!digits.starts_with('0'));
        let n: u64 = digits.parse().unwrap();
        let value = match i64::try_from(n) {
            Ok(n) if signed => Value::I64(if negative { -n } else { n }),
            _ => Value::U64(n),
        };
        let original = Record::builder(Level::Info, "paid")
            .field("detail", nested(value, depth))
            .build();
        let mut record = original.clone();
        CARDS.redact(&mut record);
        if passes {
            let json = Layout::Namespaced.to_json(&record);
            prop_assert!(!json.contains(&digits), "{} in {}", digits, json);
            prop_assert!(json.contains(REDACTED), "{}", json);
        } else {
            prop_assert_eq!(record, original);
        }
    }
}

//! Property tests of the parsers a user's strings reach: target strings
//! (`LOG_TRG`), level names (`AITRACE_LEVEL`), hex ids and the W3C
//! `traceparent`/`tracestate` headers another process sends. Any input gives
//! a value or a clear error, never a panic.

use std::path::{Path, PathBuf};

use aitrace_core::{ErrorKind, Level, Output, SpanId, TraceId, TraceParent};
use proptest::prelude::*;

/// Percent-encodes every byte but unreserved characters and `/`.
fn percent_encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn target_like() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "",
        "-",
        "~",
        "~/",
        "file:",
        "file://",
        "file:///",
        "FILE://localhost/",
        "file://host/",
        "http://",
        "https://",
        "HTTP://",
        "http://u:p@",
        "<YYYYMMDD_HHMMSS>",
        " ",
        "%",
    ]);
    (prefix, any::<String>(), "[a-z%0-9/:@?#<>~. -]{0,24}")
        .prop_map(|(prefix, any, ascii)| format!("{prefix}{any}{ascii}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_target_string_gives_an_output_or_an_invalid_target_error(target in target_like()) {
        match Output::from_target(&target) {
            Ok(output) => {
                let shown = output.to_string();
                prop_assert!(!shown.is_empty());
                let trimmed = target.trim();
                if trimmed.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("file:")) {
                    let path = output.path().expect("a file URI is a file output");
                    // Absolute, or relative after `file://`.
                    let relative = trimmed.get(5..7) == Some("//")
                        && !trimmed[7..].starts_with('/')
                        && !trimmed.get(7..17).is_some_and(|h| h.eq_ignore_ascii_case("localhost/"));
                    prop_assert!(relative || path.starts_with("/"), "{:?} from {:?}", path, target);
                }
            }
            Err(err) => {
                prop_assert_eq!(err.kind(), ErrorKind::InvalidTarget, "{}", err);
                prop_assert!(!err.to_string().is_empty());
            }
        }
    }

    #[test]
    fn a_file_uri_names_the_path_it_encodes(
        segments in prop::collection::vec(
            any::<String>().prop_filter("a path segment", |s| {
                !s.is_empty() && !s.contains(['/', '\0', '<'])
            }),
            1..4,
        ),
        host in prop::sample::select(vec!["", "localhost", "LOCALHOST"]),
        scheme in prop::sample::select(vec!["file", "FILE", "File"]),
    ) {
        let path = format!("/{}", segments.join("/"));
        let uri = format!("{scheme}://{host}{}", percent_encode(&path));
        let output = Output::from_target(&uri).unwrap();
        prop_assert_eq!(output.path(), Some(Path::new(&path)), "{}", uri);
    }

    #[test]
    fn a_file_uri_without_a_leading_slash_names_a_relative_path(
        first in "[a-z0-9._-]{1,20}".prop_filter("not local", |h| h != "localhost"),
        rest in "(/[a-z0-9]{1,8}){0,3}",
    ) {
        let output = Output::from_target(&format!("file://{first}{rest}")).unwrap();
        let expected = format!("{first}{rest}");
        prop_assert_eq!(output.path(), Some(Path::new(&expected)));
    }

    #[test]
    fn a_plain_path_is_used_as_it_is(path in "[a-zA-Z0-9_][a-zA-Z0-9_ %./:-]{0,40}") {
        prop_assume!(!path.to_ascii_lowercase().starts_with("file:"));
        prop_assume!(!path.to_ascii_lowercase().starts_with("http"));
        prop_assume!(!["stdout", "stderr"].contains(&path.trim().to_ascii_lowercase().as_str()));
        let output = Output::from_target(&path).unwrap();
        let expected = PathBuf::from(path.trim());
        prop_assert_eq!(output.path(), Some(expected.as_path()));
    }

    #[test]
    fn user_info_in_an_http_target_never_shows(
        secret in "[A-Za-z0-9]{12,20}",
        rest in "[a-z0-9./:?#@%-]{0,30}",
    ) {
        let target = format!("http://user:{secret}@localhost:8000/{rest}");
        match Output::from_target(&target) {
            Ok(output) => {
                prop_assert!(!output.to_string().contains(&secret));
                let debug = format!("{output:?}");
                prop_assert!(!debug.contains(&secret));
            }
            Err(err) => {
                prop_assert_eq!(err.kind(), ErrorKind::InvalidTarget);
                prop_assert!(!err.to_string().contains(&secret), "{}", err);
                let debug = format!("{err:?}");
                prop_assert!(!debug.contains(&secret));
            }
        }
    }

    #[test]
    fn any_level_string_parses_to_a_level_or_an_error(text in any::<String>()) {
        let known = match text.trim().to_ascii_lowercase().as_str() {
            "trace" => Some(Level::Trace),
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" | "warning" => Some(Level::Warn),
            "error" | "critical" | "fatal" => Some(Level::Error),
            _ => None,
        };
        match text.parse::<Level>() {
            Ok(level) => prop_assert_eq!(Some(level), known),
            Err(err) => {
                prop_assert_eq!(known, None);
                prop_assert!(err.to_string().contains("unknown level"));
            }
        }
    }

    #[test]
    fn level_names_parse_in_any_case_and_padding(
        level in prop::sample::select(Level::ALL.to_vec()),
        upper in prop::collection::vec(any::<bool>(), 8),
        pad in "[ \t\n]{0,3}",
    ) {
        let name: String = level
            .as_str()
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect();
        prop_assert_eq!(format!("{pad}{name}{pad}").parse::<Level>(), Ok(level));
        prop_assert_eq!(level.to_string().parse::<Level>(), Ok(level));
    }

    #[test]
    fn any_hex_id_string_gives_an_id_or_none(text in "[0-9a-fA-F+-]{0,40}|.{0,40}") {
        let hex = |len: usize| {
            text.len() == len
                && text.bytes().all(|b| b.is_ascii_hexdigit())
                && text.bytes().any(|b| b != b'0')
        };
        match TraceId::from_hex(&text) {
            Some(id) => {
                prop_assert!(hex(32));
                prop_assert_eq!(id.to_string(), text.to_ascii_lowercase());
            }
            None => prop_assert!(!hex(32)),
        }
        match SpanId::from_hex(&text) {
            Some(id) => {
                prop_assert!(hex(16));
                prop_assert_eq!(id.to_string(), text.to_ascii_lowercase());
            }
            None => prop_assert!(!hex(16)),
        }
    }

    #[test]
    fn ids_round_trip_through_hex(trace in 1..=u128::MAX, span in 1..=u64::MAX) {
        let trace_hex = format!("{trace:032x}");
        let id = TraceId::from_hex(&trace_hex).unwrap();
        prop_assert_eq!(id.to_bytes(), trace.to_be_bytes());
        prop_assert_eq!(TraceId::from_hex(&trace_hex.to_uppercase()), Some(id));
        prop_assert_eq!(id.to_string(), trace_hex);
        let span_hex = format!("{span:016x}");
        let id = SpanId::from_hex(&span_hex).unwrap();
        prop_assert_eq!(id.to_bytes(), span.to_be_bytes());
        prop_assert_eq!(id.to_string(), span_hex);
    }

    #[test]
    fn any_traceparent_string_gives_a_context_or_an_invalid_trace_context_error(
        text in any::<String>(),
        near in "[ \t]?[0-9a-fA-F]{2}-[0-9a-f]{30,34}-[0-9a-f]{14,18}-[0-9a-fx]{2}(-.{0,5})?[ \t]?",
    ) {
        for text in [&text, &near] {
            match TraceParent::parse(text) {
                Ok(parent) => {
                    // What parsed is a well-formed header with the same ids.
                    let header = parent.to_string();
                    prop_assert_eq!(header.len(), 55);
                    prop_assert_eq!(TraceParent::parse(&header).ok(), Some(parent.clone()));
                    let trimmed = text.trim_matches([' ', '\t']);
                    prop_assert_eq!(&trimmed[3..52], &header[3..52], "{:?}", text);
                    prop_assert!(!trimmed.starts_with("ff"));
                }
                Err(err) => {
                    prop_assert_eq!(err.kind(), ErrorKind::InvalidTraceContext);
                    prop_assert!(err.to_string().starts_with("invalid traceparent"), "{}", err);
                }
            }
        }
    }

    #[test]
    fn every_valid_traceparent_round_trips(
        trace in 1..=u128::MAX,
        span in 1..=u64::MAX,
        flags in any::<u8>(),
        pad in "[ \t]{0,2}",
    ) {
        let header = format!("00-{trace:032x}-{span:016x}-{flags:02x}");
        let parent = TraceParent::parse(&format!("{pad}{header}{pad}")).unwrap();
        prop_assert_eq!(parent.trace_id().to_bytes(), trace.to_be_bytes());
        prop_assert_eq!(parent.span_id().to_bytes(), span.to_be_bytes());
        prop_assert_eq!(parent.flags(), flags);
        prop_assert_eq!(parent.is_sampled(), flags & 1 == 1);
        prop_assert_eq!(parent.to_string(), header.clone());
        // Upper-case hex anywhere is refused.
        if let Some(i) = header.find(|c: char| c.is_ascii_lowercase()) {
            let mut upper = header.clone();
            upper.replace_range(i..=i, &header[i..=i].to_ascii_uppercase());
            prop_assert!(TraceParent::parse(&upper).is_err(), "{}", upper);
        }
    }

    #[test]
    fn a_higher_version_is_read_as_its_first_55_characters(
        version in 1u8..0xff,
        trace in 1..=u128::MAX,
        span in 1..=u64::MAX,
        rest in "(-[ -~]{0,20})?",
        other in "[!-,.-~][ -~]{0,5}",
    ) {
        let header = format!("{version:02x}-{trace:032x}-{span:016x}-01");
        let parent = TraceParent::parse(&format!("{header}{rest}")).unwrap();
        prop_assert_eq!(parent.to_string(), format!("00{}", &header[2..]));
        // Anything but `-` after the 55 characters is refused.
        let followed = format!("{header}{other}");
        prop_assert!(TraceParent::parse(&followed).is_err(), "{}", followed);
        // Version 00 allows nothing after them.
        let longer_00 = format!("00{}-", &header[2..]);
        prop_assert!(TraceParent::parse(&longer_00).is_err(), "{}", longer_00);
    }

    #[test]
    fn any_tracestate_is_kept_within_bounds_or_dropped(
        text in any::<String>(),
        members in prop::collection::vec(("[a-z][a-z0-9_*/-]{0,8}(@[a-z][a-z0-9]{0,5})?", "[!-+--<>-~]{1,150}"), 0..40),
    ) {
        let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let built: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for text in [text, built.join(" , ")] {
            let with = parent.clone().with_trace_state(&text);
            prop_assert_eq!(with.trace_id(), parent.trace_id());
            if let Some(state) = with.trace_state() {
                prop_assert!(!state.is_empty() && state.len() <= 512, "{:?}", state);
                prop_assert!(!state.contains(", ") && !state.starts_with(' '));
                // Kept as it is when read again.
                let again = parent.clone().with_trace_state(state);
                prop_assert_eq!(again.trace_state(), Some(state));
                // Every member kept was given.
                for member in state.split(',') {
                    prop_assert!(text.contains(member), "{:?} not in {:?}", member, text);
                }
            }
        }
        // A list of unique valid members within the limits is kept whole.
        let mut keys: Vec<&String> = members.iter().map(|(k, _)| k).collect();
        keys.sort();
        keys.dedup();
        let unique = keys.len() == members.len();
        let joined = built.join(",");
        if unique && !members.is_empty() && members.len() <= 32 && joined.len() <= 512 {
            let with = parent.clone().with_trace_state(&built.join(" , "));
            prop_assert_eq!(with.trace_state(), Some(joined.as_str()));
        }
    }
}

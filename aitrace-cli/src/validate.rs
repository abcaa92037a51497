//! `aitrace validate`: records checked against WIRE_FORMAT.md §1.

use aitrace_core::wire::{self, META_KEY, Phase};
use serde_json::{Map, Value as Json};

use std::collections::HashMap;
use std::io::Write;

use crate::input::{self, Pos};
use crate::model;
use crate::say;

/// The problems of one record, each one sentence.
pub(crate) fn check(object: &Map<String, Json>) -> Vec<String> {
    let mut problems = Vec::new();
    let meta = match object.get(META_KEY) {
        Some(Json::Object(meta)) => {
            if let Some(top) = object.get(wire::TIMESTAMP) {
                if Some(top) != meta.get(wire::TIMESTAMP) {
                    problems.push(
                        "top-level timestamp differs from __tracer_meta__.timestamp (compat layout)"
                            .to_owned(),
                    );
                }
            }
            meta
        }
        Some(_) => {
            problems.push(format!("{META_KEY} is not an object"));
            return problems;
        }
        None => object, // the flat layout
    };
    let mut string = |key: &str, required: bool| -> Option<&str> {
        match meta.get(key) {
            None if required => {
                problems.push(format!("missing {key}"));
                None
            }
            None => None,
            Some(Json::String(s)) => Some(s.as_str()),
            Some(Json::Null) if !required && key == wire::PARENT_SPAN_ID => None,
            Some(other) => {
                problems.push(format!("{key} is {other}, not a string"));
                None
            }
        }
    };
    let timestamp = string(wire::TIMESTAMP, true).map(str::to_owned);
    let event = string(wire::EVENT, true).map(str::to_owned);
    let level = string(wire::LEVEL, true).map(str::to_owned);
    let _ = string(wire::LOGGER, false);
    let trace_id = string(wire::TRACE_ID, false).map(str::to_owned);
    let span_id = string(wire::SPAN_ID, false).map(str::to_owned);
    let parent = string(wire::PARENT_SPAN_ID, false).map(str::to_owned);
    let _ = string(wire::FILE, false);
    let _ = string(wire::FUNCTION, false);
    let record_id = string(wire::RECORD_ID, false).map(str::to_owned);

    if let Some(ts) = &timestamp {
        if !is_wire_timestamp(ts) {
            problems.push(format!(
                "timestamp {ts:?} is not UTC RFC 3339 with microseconds (2026-11-27T10:15:02.316023Z)"
            ));
        }
    }
    if event.as_deref() == Some("") {
        problems.push("event is empty".to_owned());
    }
    if let Some(level) = &level {
        if !["trace", "debug", "info", "warning", "error"].contains(&level.as_str()) {
            problems.push(format!(
                "level {level:?} is not one of trace, debug, info, warning, error"
            ));
        }
    }
    for (key, value, digits) in [
        (wire::TRACE_ID, &trace_id, 32),
        (wire::SPAN_ID, &span_id, 16),
        (wire::PARENT_SPAN_ID, &parent, 16),
        (wire::RECORD_ID, &record_id, 16),
    ] {
        if let Some(value) = value {
            if !is_hex_id(value, digits) {
                problems.push(format!(
                    "{key} {value:?} is not {digits} lower-case hex digits, not all zero"
                ));
            }
        }
    }
    match (&trace_id, &span_id) {
        (Some(_), None) => problems.push("trace_id without span_id".to_owned()),
        (None, Some(_)) => problems.push("span_id without trace_id".to_owned()),
        _ => {}
    }
    if parent.is_some() && span_id.is_none() {
        problems.push("parent_span_id without span_id".to_owned());
    }
    match meta.get(wire::LINE) {
        None => {}
        Some(Json::Number(n))
            if n.as_u64()
                .is_some_and(|n| n >= 1 && n <= u64::from(u32::MAX)) => {}
        Some(other) => problems.push(format!("line {other} is not an integer from 1")),
    }
    match meta.get(wire::PROVISIONAL) {
        None => {}
        Some(Json::Bool(true))
            if event
                .as_deref()
                .and_then(wire::lifecycle)
                .is_some_and(|(_, phase)| phase == Phase::Start) => {}
        Some(Json::Bool(true)) => {
            problems.push("provisional on a record that is not NAME.start".to_owned())
        }
        Some(Json::Bool(false)) => {}
        Some(other) => problems.push(format!("provisional is {other}, not a boolean")),
    }
    // What the wire rules allow, the library must read back: a timestamp
    // outside 1970..2554 is well formed but no record holds it.
    if problems.is_empty() {
        let text = Json::Object(object.clone()).to_string();
        if let Err(err) = aitrace_core::Record::from_json(&text) {
            problems.push(err.to_string());
        }
    }
    problems
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, a real instant.
fn is_wire_timestamp(ts: &str) -> bool {
    let b = ts.as_bytes();
    let shape = b.len() == 27
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    shape && humantime::parse_rfc3339(ts).is_ok()
}

fn is_hex_id(id: &str, digits: usize) -> bool {
    id.len() == digits
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && id.bytes().any(|b| b != b'0')
}

/// Checks every file; prints `FILE:POS: problem` lines on stdout. Returns
/// the number of problems. Files given together are one set of records:
/// a span may start in one and end in another.
pub(crate) fn validate(sources: &[String]) -> Result<usize, String> {
    let mut problems = 0;
    let mut records = 0;
    let mut spans = Lifecycles::default();
    // Printing means a problem was found: a reader that goes away
    // (`| head`) ends the command quietly, and still with exit 1.
    let mut out = std::io::stdout().lock();
    let write_error = |e| say::stdout_error(e, 1);
    for source in sources {
        let text = input::read_source(source)?;
        for item in input::parse(&text) {
            records += 1;
            let found = match &item.object {
                Ok(object) => {
                    spans.see(object, source, item.pos);
                    check(object)
                }
                Err(e) => vec![e.clone()],
            };
            for problem in found {
                writeln!(out, "{}:{}: {problem}", input::name(source), item.pos)
                    .map_err(write_error)?;
                problems += 1;
            }
        }
    }
    for (source, pos, problem) in spans.problems() {
        writeln!(out, "{}:{pos}: {problem}", input::name(source)).map_err(write_error)?;
        problems += 1;
    }
    out.flush().map_err(write_error)?;
    say::diag!(
        "aitrace: {records} records checked in {} files, {problems} problems",
        sources.len()
    );
    Ok(problems)
}

/// The span lifecycle records seen, to find a `NAME.end` whose span never
/// started (a span its writer filtered out, or a file cut short: a viewer
/// draws such an end as a trace of its own), and spans whose parents go
/// round in a loop (a viewer can place them under no root).
#[derive(Default)]
struct Lifecycles<'a> {
    /// Each `.start`, in the order read.
    started: Vec<Start<'a>>,
    /// Where each span's `.start` is in `started`, by trace and span id.
    index: HashMap<(String, String), usize>,
    ended: Vec<(&'a str, Pos, String, String, String)>,
}

struct Start<'a> {
    source: &'a str,
    pos: Pos,
    name: String,
    trace: String,
    span: String,
    parent: Option<String>,
}

impl<'a> Lifecycles<'a> {
    fn see(&mut self, object: &Map<String, Json>, source: &'a str, pos: Pos) {
        let meta = match object.get(META_KEY) {
            Some(Json::Object(meta)) => meta,
            _ => object,
        };
        let text = |key| meta.get(key).and_then(Json::as_str);
        let (Some(event), Some(trace), Some(span)) =
            (text(wire::EVENT), text(wire::TRACE_ID), text(wire::SPAN_ID))
        else {
            return;
        };
        match wire::lifecycle(event) {
            Some((name, Phase::Start)) => {
                let ids = (trace.to_owned(), span.to_owned());
                self.index.entry(ids).or_insert(self.started.len());
                self.started.push(Start {
                    source,
                    pos,
                    name: name.to_owned(),
                    trace: trace.to_owned(),
                    span: span.to_owned(),
                    parent: text(wire::PARENT_SPAN_ID).map(str::to_owned),
                });
            }
            Some((name, Phase::End)) => {
                self.ended.push((
                    source,
                    pos,
                    name.to_owned(),
                    trace.to_owned(),
                    span.to_owned(),
                ));
            }
            None => {}
        }
    }

    fn problems(self) -> impl Iterator<Item = (&'a str, Pos, String)> {
        let loops = self.loops();
        let index = self.index;
        let unstarted = self
            .ended
            .into_iter()
            .filter(move |(_, _, _, trace, span)| !index.contains_key(&(trace.clone(), span.clone())))
            .map(|(source, pos, name, _, span)| {
                (
                    source,
                    pos,
                    format!("{name}.end has no {name}.start (span {span}): a viewer shows it as a trace of its own"),
                )
            });
        unstarted.chain(loops)
    }

    /// Each loop of parents, once, at the `.start` of its span read first
    /// (the circles `view` draws at the top, found the same way).
    fn loops(&self) -> Vec<(&'a str, Pos, String)> {
        let parents: Vec<Option<usize>> = (self.started.iter())
            .map(|span| {
                let parent = span.parent.as_ref()?;
                self.index
                    .get(&(span.trace.clone(), parent.clone()))
                    .copied()
            })
            .collect();
        let mut cyclic = model::on_cycles(&parents);
        let mut found = Vec::new();
        for first in 0..self.started.len() {
            if !cyclic[first] {
                continue;
            }
            // Read before the rest of its loop: the loop is named here, once.
            let mut spans = 0;
            let mut at = Some(first);
            while let Some(i) = at.filter(|&i| cyclic[i]) {
                cyclic[i] = false;
                spans += 1;
                at = parents[i];
            }
            let start = &self.started[first];
            let problem = match spans {
                1 => format!(
                    "{}.start is its own parent (span {})",
                    start.name, start.span
                ),
                n => format!(
                    "{}.start's parents go round in a loop back to it (span {}, {n} spans): \
                     a viewer cannot place them under a root",
                    start.name, start.span
                ),
            };
            found.push((start.source, start.pos, problem));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(json: &str) -> Vec<String> {
        let value: Json = serde_json::from_str(json).unwrap();
        check(value.as_object().unwrap())
    }

    #[test]
    fn a_good_record_has_no_problems_in_either_layout() {
        let meta = r#""timestamp":"2026-11-27T10:15:02.316023Z","event":"a.start","level":"warning","trace_id":"7902f7b02e9e2b9ce0c11a928f3e2153","span_id":"c945084284bd5c4f","parent_span_id":null,"line":3,"provisional":true"#;
        assert_eq!(
            problems(&format!(r#"{{"x":1,"__tracer_meta__":{{{meta}}}}}"#)),
            Vec::<String>::new()
        );
        assert_eq!(problems(&format!("{{{meta}}}")), Vec::<String>::new());
    }

    #[test]
    fn a_timestamp_a_record_cannot_hold_is_a_problem() {
        for ts in ["9999-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"] {
            let p = problems(&format!(
                r#"{{"__tracer_meta__":{{"timestamp":"{ts}","event":"e","level":"info"}}}}"#
            ));
            assert_eq!(p.len(), 1, "{ts}: {p:?}");
            assert!(ts.starts_with("1969") || p[0].contains("2554"), "{p:?}");
            assert!(p[0].contains(ts), "{p:?}");
        }
    }

    #[test]
    fn each_rule_is_reported() {
        let p = problems(
            r#"{"__tracer_meta__":{"timestamp":"2026-11-27 10:15:02","level":"WARN","trace_id":"7902F7B02E9E2B9CE0C11A928F3E2153","span_id":"0000000000000000","line":0,"provisional":true}}"#,
        );
        let text = p.join("\n");
        for expected in [
            "missing event",
            "timestamp",
            "level \"WARN\"",
            "trace_id",
            "span_id",
            "line 0",
            "provisional on",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
    }
}

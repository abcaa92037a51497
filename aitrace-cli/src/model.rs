//! A lenient reading of records for display, and the trace trees they form.
//! Anything missing or malformed shows as missing; nothing here fails.

use std::collections::{BTreeMap, HashMap};

pub(crate) use aitrace_report::read::{LEVELS, Rec, level_rank};

/// One span of a trace.
#[derive(Debug, Default)]
pub(crate) struct Span {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) parent: Option<String>,
    pub(crate) start: Option<usize>,
    pub(crate) end: Option<usize>,
    /// Child spans and events, by time.
    pub(crate) items: Vec<Item>,
    /// Set when it has a parent id but is drawn at the top: its parent id
    /// names no span in the input, or its parents go round in a loop
    /// ([`Span::in_loop`]).
    pub(crate) orphan: bool,
    /// Set when its parents go round in a loop (its own parent included):
    /// a parent seen, but no root to draw it under.
    pub(crate) in_loop: bool,
}

/// An entry of a span (or of a trace's top level).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Item {
    Span(usize),
    Event(usize),
}

/// The records of one trace, as a forest of spans.
#[derive(Debug)]
pub(crate) struct Trace {
    pub(crate) id: Option<String>,
    pub(crate) records: Vec<Rec>,
    pub(crate) spans: Vec<Span>,
    pub(crate) roots: Vec<Item>,
}

impl Trace {
    /// Builds the tree of one trace's records, whatever order they came in.
    pub(crate) fn build(id: Option<String>, mut records: Vec<Rec>) -> Trace {
        records.sort_by_key(|r| (r.micros.unwrap_or(i128::MAX), r.seq));
        let mut spans: Vec<Span> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut loose = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let Some(sid) = &r.span_id else {
                loose.push(Item::Event(i));
                continue;
            };
            let s = *index.entry(sid.clone()).or_insert_with(|| {
                spans.push(Span {
                    id: sid.clone(),
                    ..Span::default()
                });
                spans.len() - 1
            });
            let span = &mut spans[s];
            if span.parent.is_none() {
                span.parent.clone_from(&r.parent_span_id);
            }
            if let (Some(name), None) = (r.span_start(), span.start) {
                span.start = Some(i);
                span.name = Some(name.to_owned());
            } else if let (Some(name), None) = (r.span_end(), span.end) {
                span.end = Some(i);
                span.name.get_or_insert_with(|| name.to_owned());
            } else {
                span.items.push(Item::Event(i));
            }
        }
        let parents: Vec<Option<usize>> = (spans.iter())
            .map(|span| span.parent.as_ref().and_then(|p| index.get(p)).copied())
            .collect();
        let cyclic = on_cycles(&parents);
        let mut roots = loose;
        for s in 0..spans.len() {
            match parents[s].filter(|_| !cyclic[s]) {
                Some(p) => spans[p].items.push(Item::Span(s)),
                None => {
                    spans[s].orphan = spans[s].parent.is_some();
                    spans[s].in_loop = cyclic[s];
                    roots.push(Item::Span(s));
                }
            }
        }
        let mut trace = Trace {
            id,
            records,
            spans,
            roots,
        };
        let key = |t: &Trace, item: &Item| t.item_time(*item);
        let mut roots = std::mem::take(&mut trace.roots);
        roots.sort_by_key(|item| key(&trace, item));
        trace.roots = roots;
        for s in 0..trace.spans.len() {
            let mut items = std::mem::take(&mut trace.spans[s].items);
            items.sort_by_key(|item| key(&trace, item));
            trace.spans[s].items = items;
        }
        trace
    }

    /// When an item starts, for ordering (unknown times last, then arrival).
    fn item_time(&self, item: Item) -> (i128, usize) {
        match item {
            Item::Event(i) => (
                self.records[i].micros.unwrap_or(i128::MAX),
                self.records[i].seq,
            ),
            Item::Span(s) => {
                let span = &self.spans[s];
                let first = span
                    .start
                    .or(span.end)
                    .or(span.items.iter().find_map(|i| match i {
                        Item::Event(e) => Some(*e),
                        Item::Span(_) => None,
                    }));
                first.map_or((i128::MAX, usize::MAX), |i| {
                    (
                        self.records[i].micros.unwrap_or(i128::MAX),
                        self.records[i].seq,
                    )
                })
            }
        }
    }

    pub(crate) fn span_ms(&self, span: &Span) -> Option<f64> {
        let end = &self.records[span.end?];
        end.duration_ms().or_else(|| {
            let start = self.records[span.start?].micros?;
            Some((end.micros? - start) as f64 / 1000.0)
        })
    }

    /// The trace's name: its first root span's, else its first record's event.
    pub(crate) fn name(&self) -> String {
        self.roots
            .iter()
            .find_map(|item| match item {
                Item::Span(s) => self.spans[*s].name.clone(),
                Item::Event(_) => None,
            })
            .or_else(|| self.records.first().map(|r| r.event.clone()))
            .unwrap_or_default()
    }

    /// Why retention by outcome kept this trace whole (`failed`, `slow` or
    /// `sampled`): the `aitrace.retention` field of the first span end, by
    /// time, that has one. It is the local root's, whose parent may be
    /// remote, so any span's end is asked.
    pub(crate) fn kept(&self) -> Option<&str> {
        self.records
            .iter()
            .filter(|r| r.span_end().is_some())
            .find_map(|r| {
                r.field(aitrace_core::wire::RETENTION_FIELD)
                    .and_then(serde_json::Value::as_str)
            })
    }

    pub(crate) fn has_error(&self) -> bool {
        self.records.iter().any(|r| r.level == 4)
    }

    /// Wall time from the first record to the last, in milliseconds.
    pub(crate) fn wall_ms(&self) -> Option<f64> {
        let first = self.records.iter().filter_map(|r| r.micros).min()?;
        let last = self.records.iter().filter_map(|r| r.micros).max()?;
        Some((last - first) as f64 / 1000.0)
    }
}

/// Which spans sit on a circle of parents (`a`'s parent is `b`, `b`'s is
/// `a`; a span its own parent): those are drawn as roots, since no place
/// in the tree fits them. Each span is walked once, so a chain of any depth costs linear time.
pub(crate) fn on_cycles(parents: &[Option<usize>]) -> Vec<bool> {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; parents.len()];
    let mut cyclic = vec![false; parents.len()];
    let mut path = Vec::new();
    for start in 0..parents.len() {
        let mut at = Some(start);
        while let Some(s) = at.filter(|&s| state[s] == NEW) {
            state[s] = ON_PATH;
            path.push(s);
            at = parents[s];
        }
        if let Some(s) = at.filter(|&s| state[s] == ON_PATH) {
            // The walk came back to a span of this path: from there on, a circle.
            let from = path.iter().rposition(|&p| p == s).unwrap_or(path.len());
            for &p in &path[from..] {
                cyclic[p] = true;
            }
        }
        for p in path.drain(..) {
            state[p] = DONE;
        }
    }
    cyclic
}

/// Groups records by trace, traces in order of first arrival; records
/// without a trace id last.
pub(crate) fn group(records: Vec<Rec>) -> Vec<Trace> {
    let mut order: Vec<Option<String>> = Vec::new();
    let mut by_id: BTreeMap<Option<String>, Vec<Rec>> = BTreeMap::new();
    for r in records {
        let key = r.trace_id.clone();
        if !by_id.contains_key(&key) {
            order.push(key.clone());
        }
        by_id.entry(key).or_default().push(r);
    }
    order.sort_by_key(|id| id.is_none());
    order
        .into_iter()
        .map(|id| {
            let records = by_id.remove(&id).unwrap_or_default();
            Trace::build(id, records)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: usize, json: &str) -> Rec {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        Rec::new(seq, value.as_object().unwrap(), json)
    }

    #[test]
    fn spans_nest_under_parents_even_when_children_arrive_first() {
        let t = r#""trace_id":"7902f7b02e9e2b9ce0c11a928f3e2153""#;
        let records = vec![
            rec(
                0,
                &format!(
                    r#"{{"__tracer_meta__":{{"timestamp":"2026-11-27T10:00:00.000200Z","event":"pay.end","level":"error",{t},"span_id":"bbbbbbbbbbbbbbbb","parent_span_id":"aaaaaaaaaaaaaaaa"}},"error":"declined","duration_ms":0.1}}"#
                ),
            ),
            rec(
                1,
                &format!(
                    r#"{{"__tracer_meta__":{{"timestamp":"2026-11-27T10:00:00.000100Z","event":"pay.start","level":"info",{t},"span_id":"bbbbbbbbbbbbbbbb","parent_span_id":"aaaaaaaaaaaaaaaa","provisional":true}}}}"#
                ),
            ),
            rec(
                2,
                &format!(
                    r#"{{"__tracer_meta__":{{"timestamp":"2026-11-27T10:00:00.000000Z","event":"order.start","level":"info",{t},"span_id":"aaaaaaaaaaaaaaaa","parent_span_id":null}}}}"#
                ),
            ),
            rec(
                3,
                &format!(
                    r#"{{"event":"lost.start","level":"info","timestamp":"2026-11-27T10:00:00.000300Z",{t},"span_id":"cccccccccccccccc","parent_span_id":"dddddddddddddddd"}}"#
                ),
            ),
        ];
        let traces = group(records);
        assert_eq!(traces.len(), 1);
        let trace = &traces[0];
        assert_eq!(trace.name(), "order");
        assert_eq!(
            trace.roots.len(),
            2,
            "the order, and the span whose parent is missing"
        );
        let Item::Span(order) = trace.roots[0] else {
            panic!()
        };
        assert_eq!(trace.spans[order].name.as_deref(), Some("order"));
        assert!(trace.spans[order].end.is_none(), "open");
        let Item::Span(pay) = trace.spans[order].items[0] else {
            panic!()
        };
        assert_eq!(trace.span_ms(&trace.spans[pay]), Some(0.1));
        assert_eq!(
            trace.records[trace.spans[pay].end.unwrap()]
                .error()
                .as_deref(),
            Some("declined")
        );
        let Item::Span(lost) = trace.roots[1] else {
            panic!()
        };
        assert!(trace.spans[lost].orphan);
        assert!(trace.has_error());
    }

    #[test]
    fn a_parent_cycle_does_not_hide_spans_or_loop() {
        let a = r#"{"event":"a.start","level":"info","trace_id":"7902f7b02e9e2b9ce0c11a928f3e2153","span_id":"aaaaaaaaaaaaaaaa","parent_span_id":"bbbbbbbbbbbbbbbb"}"#;
        let b = r#"{"event":"b.start","level":"info","trace_id":"7902f7b02e9e2b9ce0c11a928f3e2153","span_id":"bbbbbbbbbbbbbbbb","parent_span_id":"aaaaaaaaaaaaaaaa"}"#;
        let traces = group(vec![rec(0, a), rec(1, b)]);
        let reachable =
            traces[0].roots.len() + traces[0].spans.iter().map(|s| s.items.len()).sum::<usize>();
        assert_eq!(reachable, 2);
    }
}

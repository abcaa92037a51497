//! A self-contained HTML trace report: one file, no network, the records
//! embedded as JSON and drawn by inline JavaScript (trace list, collapsible
//! span tree, timeline, level filter, text search, each record's fields).
//!
//! The data sits in `<script type="application/json" id="aitrace-data">` as
//! `{"version":1,"traces":[…],"records":[…]}`: `records` holds every record
//! as written (any layout), `traces` one summary per trace (`trace_id`,
//! `name`, `start`, `duration_ms`, `records`, `error`, and `kept`: why
//! retention by outcome kept the trace whole, `"failed"`, `"slow"` or
//! `"sampled"`, from the first span `.end` record carrying
//! `aitrace.retention`, else `null`), the records without a trace last
//! under `"trace_id": null`. Every `<`, `>` and `&` in the JSON is
//! written as a `\u00XX` escape, so no record can close the script element;
//! the page builds its DOM with `textContent`, never from record text as
//! markup.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use serde_json::{Map, Value as Json};

use aitrace_model::export::{Accepted, Batch, Export};
use aitrace_model::wire::{self, DURATION_FIELD, Phase, RETENTION_FIELD};
use aitrace_model::{Error, Layout, Record, Result};

use crate::read::{LEVELS, level_rank, meta_of, micros};

const STYLE: &str = include_str!("html/report.css");
const SCRIPT: &str = include_str!("html/report.js");

/// Writes the HTML report of `records` to `out`: one self-contained page
/// (inline CSS and JavaScript, no external URL) with the list of traces,
/// each trace as a collapsible span tree and a timeline, a level filter, a
/// text search and every record's fields on click. Rendering is lazy (rows
/// and tree nodes are made when shown), so reports of 100,000 records stay
/// usable.
///
/// A target ending in `.html` (`aitrace_core::Output::from_target`,
/// `LOG_TRG=trace.html`) writes this report at every flush ([`HtmlFile`]).
///
/// # Examples
///
/// ```
/// use aitrace_model::{Level, Record, SpanContext};
/// use aitrace_report::write_html_report;
///
/// let span = SpanContext::new_root();
/// let records = [
///     Record::builder(Level::Info, "order.start").span_context(span).provisional(true).build(),
///     Record::builder(Level::Error, "order.end").span_context(span).field("error", "declined").build(),
/// ];
/// let mut page = Vec::new();
/// write_html_report(&records, &mut page).unwrap();
/// let page = String::from_utf8(page).unwrap();
/// assert!(page.starts_with("<!DOCTYPE html>") && page.contains(r#""name":"order""#));
/// ```
pub fn write_html_report<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    mut out: impl Write,
) -> Result<()> {
    let mut lines = Vec::new();
    Layout::Namespaced.write_lines(&mut lines, records);
    out.write_all(&render(&lines))
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write the HTML report", e))
}

/// The HTML output (a target ending in `.html`): it keeps the JSON line of
/// every record it was given and, at each delivery, rewrites the whole
/// report from all of them.
///
/// The choice and its cost: a page cannot be appended to, so the output
/// holds every record it has seen, encoded (some 300 to 500 bytes each), for
/// as long as it lives, and each flush renders and writes the whole report
/// again (time, and a transient copy, proportional to every record so far).
/// Meant for development runs and tests; a long-running service should
/// write JSON Lines and run `aitrace report` on them.
#[derive(Debug)]
pub struct HtmlFile {
    path: PathBuf,
    lines: Mutex<Vec<u8>>,
}

impl HtmlFile {
    /// The report at `path`, written at the first delivery.
    pub fn new(path: PathBuf) -> Self {
        HtmlFile {
            path,
            lines: Mutex::new(Vec::new()),
        }
    }

    /// Where the report is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a batch of JSON Lines and rewrites the report. A batch that
    /// cannot be written is taken back out, so a retry does not keep it twice.
    fn write(&self, lines: &[u8]) -> Result<()> {
        let mut all = self.lines.lock();
        let before = all.len();
        all.extend_from_slice(lines);
        if !all.is_empty() && !all.ends_with(b"\n") {
            all.push(b'\n');
        }
        let result = replace_file(&self.path, &render(&all));
        if result.is_err() {
            all.truncate(before);
        }
        result
    }
}

/// Writes `bytes` to a temporary file next to `path`, then renames it over
/// `path` ([`aitrace_model::fs::replace_private`]), so a reader never sees half a
/// report.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format_args!("cannot create {}", dir.display()), e))?;
    }
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    aitrace_model::fs::replace_private(path, &tmp, bytes)
        .map_err(|e| Error::io(format_args!("cannot write {}", path.display()), e))
}

/// The report page of JSON Lines records (any layout). Lines that are not
/// JSON objects are left out.
pub fn render(lines: &[u8]) -> Vec<u8> {
    let mut records: Vec<u8> = Vec::with_capacity(lines.len() + 2);
    let mut traces = Traces::default();
    records.push(b'[');
    let mut count = 0usize;
    for line in lines.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(Json::Object(record)) = serde_json::from_slice::<Json>(line) else {
            continue;
        };
        traces.add(&record);
        if count > 0 {
            records.push(b',');
        }
        // Re-serialized rather than copied: the bytes are then known to be
        // one JSON object, whatever the line held around it.
        let _ = serde_json::to_writer(&mut records, &record);
        count += 1;
    }
    records.push(b']');

    let mut data = Vec::with_capacity(records.len() + 256 * traces.order.len() + 64);
    data.extend_from_slice(br#"{"version":1,"traces":"#);
    let _ = serde_json::to_writer(&mut data, &traces.summaries());
    data.extend_from_slice(br#","records":"#);
    data.extend_from_slice(&records);
    data.push(b'}');
    drop(records);

    let mut page = Vec::with_capacity(data.len() + STYLE.len() + SCRIPT.len() + 1024);
    page.extend_from_slice(
        b"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
          <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    );
    // The page loads nothing: this policy makes the browser enforce it.
    page.extend_from_slice(
        b"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
          style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n",
    );
    let title = format!(
        "aitrace report: {} traces, {count} records",
        traces.order.len()
    );
    page.extend_from_slice(format!("<title>{}</title>\n", escape_html(&title)).as_bytes());
    page.extend_from_slice(b"<style>\n");
    page.extend_from_slice(STYLE.as_bytes());
    page.extend_from_slice(
        b"</style>\n</head>\n<body>\n<noscript>This report needs JavaScript.</noscript>\n",
    );
    page.extend_from_slice(b"<script type=\"application/json\" id=\"aitrace-data\">");
    push_script_safe_json(&mut page, &data);
    page.extend_from_slice(b"</script>\n<script>\n");
    page.extend_from_slice(SCRIPT.as_bytes());
    page.extend_from_slice(b"</script>\n</body>\n</html>\n");
    page
}

/// Appends JSON with `<`, `>` and `&` escaped as `\u00XX`. Those bytes occur
/// only inside JSON strings, where the escapes mean the same characters.
fn push_script_safe_json(page: &mut Vec<u8>, json: &[u8]) {
    page.reserve(json.len());
    for &b in json {
        match b {
            b'<' => page.extend_from_slice(br"\u003c"),
            b'>' => page.extend_from_slice(br"\u003e"),
            b'&' => page.extend_from_slice(br"\u0026"),
            _ => page.push(b),
        }
    }
}

/// Escapes text for an HTML element or attribute.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[derive(Default)]
struct Traces {
    /// Trace ids in order of first appearance; `None` for records without one.
    order: Vec<Option<String>>,
    by_id: HashMap<Option<String>, Summary>,
}

#[derive(Default)]
struct Summary {
    records: u64,
    error: bool,
    first: Option<(i128, String)>,
    last: Option<i128>,
    first_event: Option<String>,
    root_name: Option<String>,
    root_duration: Option<f64>,
    /// Why retention kept the trace whole (the first span end that says).
    kept: Option<String>,
}

impl Traces {
    fn add(&mut self, record: &Map<String, Json>) {
        let meta = meta_of(record);
        let str_of = |key: &str| meta.get(key).and_then(Json::as_str);
        let id = str_of(wire::TRACE_ID).map(str::to_owned);
        let summary = match self.by_id.get_mut(&id) {
            Some(summary) => summary,
            None => {
                self.order.push(id.clone());
                self.by_id.entry(id).or_default()
            }
        };
        summary.records += 1;
        let level = str_of(wire::LEVEL).unwrap_or_default();
        summary.error |= level_rank(level) == LEVELS.len() - 1;
        if let Some((ts, us)) = str_of(wire::TIMESTAMP).and_then(|ts| Some((ts, micros(ts)?))) {
            if summary.first.as_ref().is_none_or(|(first, _)| us < *first) {
                summary.first = Some((us, ts.to_owned()));
            }
            if summary.last.is_none_or(|last| us > last) {
                summary.last = Some(us);
            }
        }
        let event = str_of(wire::EVENT).unwrap_or_default();
        if summary.first_event.is_none() {
            summary.first_event = Some(event.to_owned());
        }
        let is_root = str_of(wire::SPAN_ID).is_some() && str_of(wire::PARENT_SPAN_ID).is_none();
        let lifecycle = wire::lifecycle(event);
        if is_root && summary.root_name.is_none() {
            if let Some((name, _)) = lifecycle {
                summary.root_name = Some(name.to_owned());
            }
        }
        let is_end = str_of(wire::SPAN_ID).is_some() && matches!(lifecycle, Some((_, Phase::End)));
        if is_root && is_end {
            if let Some(ms) = record.get(DURATION_FIELD).and_then(Json::as_f64) {
                summary.root_duration = Some(ms);
            }
        }
        // The local root's `.end` says it; its parent may be remote, so any
        // span's end is asked.
        if is_end && summary.kept.is_none() {
            if let Some(reason) = record.get(RETENTION_FIELD).and_then(Json::as_str) {
                summary.kept = Some(reason.to_owned());
            }
        }
    }

    fn summaries(&self) -> Vec<Json> {
        let mut order: Vec<&Option<String>> = self.order.iter().collect();
        // Traces by start time; records without a trace last.
        order.sort_by_key(|id| {
            let summary = &self.by_id[*id];
            (id.is_none(), summary.first.as_ref().map(|(us, _)| *us))
        });
        order
            .into_iter()
            .map(|id| {
                let s = &self.by_id[id];
                let span_ms = match (&s.first, s.last) {
                    (Some((first, _)), Some(last)) => Some((last - first) as f64 / 1000.0),
                    _ => None,
                };
                let name = match id {
                    None => "(records without a trace)".to_owned(),
                    Some(_) => s
                        .root_name
                        .clone()
                        .or_else(|| s.first_event.clone())
                        .unwrap_or_default(),
                };
                serde_json::json!({
                    "trace_id": id,
                    "name": name,
                    "start": s.first.as_ref().map(|(_, text)| text),
                    "duration_ms": s.root_duration.or(span_ms),
                    "records": s.records,
                    "error": s.error,
                    "kept": s.kept,
                })
            })
            .collect()
    }
}

impl Export for HtmlFile {
    fn name(&self) -> String {
        self.path().display().to_string()
    }

    fn kind(&self) -> &'static str {
        "html"
    }

    fn path(&self) -> Option<&Path> {
        Some(HtmlFile::path(self))
    }

    fn export(&self, batch: &Batch<'_>) -> Result<Accepted> {
        self.write(batch.lines())?;
        Ok(Accepted::all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aitrace_model::wire::META_KEY;
    use aitrace_model::{Level, SpanContext};
    use std::time::{Duration, UNIX_EPOCH};

    /// The embedded data of a page, parsed.
    pub(crate) fn embedded(page: &str) -> Json {
        let open = r#"<script type="application/json" id="aitrace-data">"#;
        let start = page.find(open).unwrap() + open.len();
        let end = start + page[start..].find("</script>").unwrap();
        serde_json::from_str(&page[start..end]).unwrap()
    }

    #[test]
    fn hostile_text_cannot_close_the_script_or_add_markup() {
        let evil = "</script><script>alert(1)</script><!-- & \u{2028}";
        let record = Record::builder(Level::Info, evil)
            .timestamp(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
            .field(evil, evil)
            .build();
        let mut page = Vec::new();
        write_html_report([&record], &mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert_eq!(page.matches("</script>").count(), 2, "only the page's own");
        assert!(!page.contains("<script>alert"));
        let data = embedded(&page);
        assert_eq!(data["records"][0][evil], evil);
        assert_eq!(data["records"][0][META_KEY]["event"], evil);
    }

    #[test]
    fn traces_are_summarised_in_start_order_with_untraced_records_last() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = SpanContext::new_root();
        let b = SpanContext::new_root();
        let child = a.new_child();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let records = [
            Record::builder(Level::Info, "loose")
                .timestamp(at(0))
                .build(),
            Record::builder(Level::Info, "late.start")
                .span_context(b)
                .timestamp(at(50))
                .build(),
            Record::builder(Level::Info, "order.start")
                .span_context(a)
                .timestamp(at(10))
                .build(),
            Record::builder(Level::Error, "pay.end")
                .span_context(child)
                .timestamp(at(20))
                .field("error", "declined")
                .build(),
            Record::builder(Level::Info, "order.end")
                .span_context(a)
                .timestamp(at(40))
                .field(DURATION_FIELD, 30.5)
                .build(),
        ];
        let mut page = Vec::new();
        write_html_report(&records, &mut page).unwrap();
        let data = embedded(std::str::from_utf8(&page).unwrap());
        assert_eq!(data["records"].as_array().unwrap().len(), 5);
        let traces = data["traces"].as_array().unwrap();
        assert_eq!(traces.len(), 3);
        assert_eq!(traces[0]["trace_id"], a.trace_id().to_string());
        assert_eq!(traces[0]["name"], "order");
        assert_eq!(traces[0]["records"], 3);
        assert_eq!(traces[0]["error"], true);
        assert_eq!(traces[0]["duration_ms"], 30.5);
        assert_eq!(traces[0]["start"], "2027-01-15T08:00:00.010000Z");
        assert_eq!(traces[1]["name"], "late");
        assert_eq!(traces[1]["error"], false);
        assert_eq!(traces[2]["trace_id"], Json::Null);
        assert_eq!(traces[2]["records"], 1);
        for trace in traces {
            assert_eq!(
                trace["kept"],
                Json::Null,
                "no retention field, nothing kept"
            );
        }
    }

    #[test]
    fn a_trace_kept_whole_says_why_from_its_local_roots_end() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // A local root under a remote parent, and a trace that was not kept.
        let remote = SpanContext::new_root();
        let root = remote.new_child();
        let child = root.new_child();
        let plain = SpanContext::new_root();
        let records = [
            Record::builder(Level::Info, "handle.start")
                .span_context(root)
                .timestamp(at(0))
                .build(),
            Record::builder(Level::Debug, "query.end")
                .span_context(child)
                .timestamp(at(5))
                .field(DURATION_FIELD, 4.0)
                .build(),
            Record::builder(Level::Info, "handle.end")
                .span_context(root)
                .timestamp(at(900))
                .field(DURATION_FIELD, 900.0)
                .field(RETENTION_FIELD, "slow")
                .build(),
            Record::builder(Level::Info, "other.end")
                .span_context(plain)
                .timestamp(at(950))
                .build(),
            Record::builder(Level::Info, "loose")
                .timestamp(at(960))
                .field(RETENTION_FIELD, "failed")
                .build(),
        ];
        let mut page = Vec::new();
        write_html_report(&records, &mut page).unwrap();
        let data = embedded(std::str::from_utf8(&page).unwrap());
        let traces = data["traces"].as_array().unwrap();
        assert_eq!(traces.len(), 3);
        assert_eq!(traces[0]["trace_id"], root.trace_id().to_string());
        assert_eq!(traces[0]["kept"], "slow");
        assert_eq!(traces[1]["kept"], Json::Null);
        assert_eq!(
            traces[2]["kept"],
            Json::Null,
            "only a span's end says why a trace was kept"
        );
    }

    #[test]
    fn lines_that_are_not_objects_are_left_out() {
        let page = render(b"not json\n[1,2]\n{\"event\":\"flat\",\"level\":\"info\"}\n\n");
        let data = embedded(std::str::from_utf8(&page).unwrap());
        assert_eq!(data["records"].as_array().unwrap().len(), 1);
        assert_eq!(data["traces"][0]["name"], "(records without a trace)");
    }

    #[test]
    fn the_page_references_nothing_outside_itself() {
        let page = String::from_utf8(render(b"")).unwrap();
        for needle in ["http://", "https://", "src=", "href=", "@import", "url("] {
            assert!(!page.contains(needle), "{needle}");
        }
    }
}

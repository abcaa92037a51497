//! `aitrace view`: records as trace trees in the terminal.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};

use crate::input::{self, Item as InputItem};
use crate::model::{self, Item, LEVELS, Rec, Trace};
use crate::say;

/// What `view` keeps.
#[derive(Debug, Default, Clone)]
pub(crate) struct Filters {
    pub(crate) min_level: usize,
    pub(crate) trace: Option<String>,
    pub(crate) grep: Option<String>,
}

impl Filters {
    fn keeps(&self, r: &Rec) -> bool {
        r.level >= self.min_level
            && self
                .grep
                .as_ref()
                .is_none_or(|g| r.text.contains(g.as_str()))
    }

    fn keeps_trace_id(&self, id: Option<&str>) -> bool {
        match (&self.trace, id) {
            (None, _) => true,
            (Some(want), Some(id)) => id.starts_with(want.as_str()),
            (Some(_), None) => false,
        }
    }
}

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const ERR: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)))
    .bold();

fn level_style(level: usize) -> Style {
    let color = match level {
        0 => AnsiColor::BrightBlack,
        1 => AnsiColor::Blue,
        2 => AnsiColor::Green,
        3 => AnsiColor::Yellow,
        _ => AnsiColor::Red,
    };
    Style::new().fg_color(Some(anstyle::Color::Ansi(color)))
}

fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.3}ms")
    } else if ms < 1000.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}

/// `HH:MM:SS.ffffff` of a timestamp, or blanks.
fn clock(r: &Rec) -> String {
    r.timestamp
        .as_deref()
        .and_then(|t| t.get(11..26))
        .map_or_else(|| " ".repeat(15), str::to_owned)
}

/// Reports bad items on stderr; returns the good ones as records.
pub(crate) fn records_of(source: &str, items: Vec<InputItem>, seq: &mut usize) -> Vec<Rec> {
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        match &item.object {
            Ok(object) => {
                records.push(Rec::new(*seq, object, &item.text));
                *seq += 1;
            }
            Err(e) => say::bad_line(format_args!(
                "aitrace: {}:{}: skipped: {e}",
                input::name(source),
                item.pos
            )),
        }
    }
    records
}

/// Prints every trace of `sources` as a tree.
pub(crate) fn view(sources: &[String], filters: &Filters) -> Result<(), String> {
    let mut seq = 0;
    let mut records = Vec::new();
    for source in sources {
        let text = input::read_source(source)?;
        records.extend(records_of(source, input::parse(&text), &mut seq));
    }
    let mut out = anstream::stdout().lock();
    for trace in model::group(records) {
        if !filters.keeps_trace_id(trace.id.as_deref())
            || !trace.records.iter().any(|r| filters.keeps(r))
        {
            continue;
        }
        print_trace(&mut out, &trace, filters).map_err(write_error)?;
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(write_error(e)),
        _ => Ok(()),
    }
}

/// A write to stdout failed: see [`say::stdout_error`] (a reader that went
/// away ends the command quietly, exit 0).
fn write_error(e: std::io::Error) -> String {
    say::stdout_error(e, 0)
}

fn print_trace(out: &mut impl Write, trace: &Trace, filters: &Filters) -> std::io::Result<()> {
    match &trace.id {
        Some(id) => write!(
            out,
            "{BOLD}trace {id}{BOLD:#}  {BOLD}{}{BOLD:#}",
            shown(&trace.name())
        )?,
        None => write!(out, "{BOLD}records without a trace id{BOLD:#}")?,
    }
    write!(out, "  {DIM}{} records", trace.records.len())?;
    if let Some(ms) = trace.wall_ms().filter(|_| trace.id.is_some()) {
        write!(out, ", {}", fmt_ms(ms))?;
    }
    write!(out, "{DIM:#}")?;
    if let Some(reason) = trace.kept() {
        write!(out, "  {DIM}kept whole: {reason}{DIM:#}")?;
    }
    if trace.has_error() {
        write!(out, "  {ERR}ERROR{ERR:#}")?;
    }
    writeln!(out)?;
    print_tree(out, trace, filters)?;
    writeln!(out)
}

/// Indentation stops growing at this depth; deeper lines say their depth
/// instead, so a chain of 50,000 spans prints lines of bounded width.
const MAX_INDENT: usize = 40;

fn indent(depth: usize) -> String {
    if depth <= MAX_INDENT {
        "  ".repeat(depth)
    } else {
        format!("{}[depth {depth}] ", "  ".repeat(MAX_INDENT))
    }
}

/// Prints a trace's tree depth first, with a stack of its own (no
/// recursion, so no depth of nesting can overflow the thread's stack).
fn print_tree(out: &mut impl Write, trace: &Trace, filters: &Filters) -> std::io::Result<()> {
    let mut stack: Vec<(Item, usize)> = trace.roots.iter().rev().map(|&i| (i, 1)).collect();
    while let Some((item, depth)) = stack.pop() {
        print_item(out, trace, item, depth, filters)?;
        if let Item::Span(s) = item {
            stack.extend(trace.spans[s].items.iter().rev().map(|&i| (i, depth + 1)));
        }
    }
    Ok(())
}

/// One line: an event, or a span's heading (its items are printed by [`print_tree`]).
fn print_item(
    out: &mut impl Write,
    trace: &Trace,
    item: Item,
    depth: usize,
    filters: &Filters,
) -> std::io::Result<()> {
    let indent = indent(depth);
    match item {
        Item::Event(i) => {
            let r = &trace.records[i];
            if !filters.keeps(r) {
                return Ok(());
            }
            print_event(out, &indent, r)
        }
        Item::Span(s) => {
            let span = &trace.spans[s];
            let end = span.end.map(|i| &trace.records[i]);
            let first = span.start.or(span.end).map(|i| &trace.records[i]);
            let level = end.or(first).map_or(2, |r| r.level);
            let unnamed = format!("(span {})", span.id);
            let name = span.name.as_deref().unwrap_or(&unnamed);
            let ls = level_style(level);
            write!(
                out,
                "{indent}{DIM}{}{DIM:#} {ls}▸ {}{ls:#}",
                first.map_or_else(|| " ".repeat(15), clock),
                shown(name)
            )?;
            match (end, trace.span_ms(span)) {
                (Some(_), Some(ms)) => write!(out, " {DIM}{}{DIM:#}", fmt_ms(ms))?,
                (Some(_), None) => {}
                (None, _) => write!(out, " {DIM}(open: no .end, still running or lost){DIM:#}")?,
            }
            if let Some(error) = end.and_then(Rec::error).filter(|_| level == 4) {
                write!(out, " {ERR}✖ {}{ERR:#}", shown(&error))?;
            }
            if span.in_loop {
                write!(
                    out,
                    " {DIM}(parent {}: in a loop of parents){DIM:#}",
                    span.parent.as_deref().unwrap_or("")
                )?;
            } else if span.orphan {
                write!(
                    out,
                    " {DIM}(parent {} not seen){DIM:#}",
                    span.parent.as_deref().unwrap_or("")
                )?;
            }
            // The fields the span opened with, then those recorded on its
            // `.end` (less what the line already says).
            let start_fields = span
                .start
                .map(|i| trace.records[i].compact_fields(&[]))
                .unwrap_or_default();
            let end_fields = end
                .map(|r| {
                    use aitrace_core::wire::{DURATION_FIELD, ERROR_FIELD, RETENTION_FIELD};
                    r.compact_fields(&[DURATION_FIELD, ERROR_FIELD, RETENTION_FIELD])
                })
                .unwrap_or_default();
            for fields in [start_fields, end_fields] {
                if !fields.is_empty() {
                    write!(out, "  {}", shown(&fields))?;
                }
            }
            writeln!(out)
        }
    }
}

/// `text` as one line of a terminal can show it: control characters
/// (a newline, a tab, an escape) written as Rust writes them in a string
/// (`\n`, `\t`, `\u{1b}`), so a record is one line and cannot move the cursor.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn print_event(out: &mut impl Write, indent: &str, r: &Rec) -> std::io::Result<()> {
    let ls = level_style(r.level);
    write!(
        out,
        "{indent}{DIM}{}{DIM:#} {ls}{:<7}{ls:#} {}",
        clock(r),
        LEVELS[r.level].to_uppercase(),
        shown(&r.event)
    )?;
    let fields = r.compact_fields(&[aitrace_core::wire::ERROR_FIELD]);
    if let Some(error) = r.error() {
        write!(out, " {ERR}✖ {}{ERR:#}", shown(&error))?;
    }
    if !fields.is_empty() {
        write!(out, "  {}", shown(&fields))?;
    }
    writeln!(out)
}

/// Follows a growing file (like `tail -f`), printing each record as it
/// arrives, indented under its span. Stops on Ctrl-C, or after `limit`.
pub(crate) fn follow(
    source: &str,
    filters: &Filters,
    limit: Option<Duration>,
) -> Result<(), String> {
    let deadline = limit.map(|d| Instant::now() + d);
    let mut state = FollowState::default();
    let mut out = anstream::stdout();
    if source == "-" {
        // A pipe ends by itself (EOF); Ctrl-C keeps its usual meaning.
        let stdin = std::io::stdin();
        let mut line = String::new();
        let mut number = 0;
        loop {
            line.clear();
            match std::io::BufRead::read_line(&mut stdin.lock(), &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    number += 1;
                    state.line(
                        &mut out,
                        source,
                        number,
                        line.trim_end_matches('\n'),
                        filters,
                    );
                }
                Err(e) => return Err(format!("cannot read <stdin>: {e}")),
            }
        }
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Only fails when a handler is already set; then Ctrl-C ends the process as usual.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let mut file = std::fs::File::open(source).map_err(|e| format!("cannot open {source}: {e}"))?;
    let mut offset = 0u64;
    let mut pending = Vec::new();
    let mut number = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let len = file.metadata().map(|m| m.len()).unwrap_or(offset);
        if len < offset {
            // Truncated or replaced: start over.
            offset = 0;
            pending.clear();
            let _ = file.seek(SeekFrom::Start(0));
        }
        let n = file
            .read(&mut chunk)
            .map_err(|e| format!("cannot read {source}: {e}"))?;
        if n == 0 {
            // Nothing new: poll again shortly (a file gives no readiness to wait on).
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        offset += n as u64;
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            number += 1;
            let text = String::from_utf8_lossy(&line[..end]);
            if !text.trim().is_empty() {
                state.line(&mut out, source, number, &text, filters);
            }
        }
    }
    state.finish(&mut out);
    Ok(())
}

/// What `--follow` remembers: each span's depth and name, to indent and
/// to list spans still open at the end.
#[derive(Default)]
struct FollowState {
    depth: HashMap<String, usize>,
    open: Vec<(String, String)>,
    seq: usize,
}

impl FollowState {
    fn line(
        &mut self,
        out: &mut impl Write,
        source: &str,
        number: usize,
        text: &str,
        filters: &Filters,
    ) {
        let item = input::parse_line(number, text);
        let object = match &item.object {
            Ok(object) => object,
            Err(e) => {
                say::bad_line(format_args!(
                    "aitrace: {}:{}: skipped: {e}",
                    input::name(source),
                    item.pos
                ));
                return;
            }
        };
        let r = Rec::new(self.seq, object, &item.text);
        self.seq += 1;
        let depth = match &r.span_id {
            None => 0,
            Some(span) => {
                let parent_depth = r
                    .parent_span_id
                    .as_ref()
                    .and_then(|p| self.depth.get(p))
                    .copied();
                *self
                    .depth
                    .entry(span.clone())
                    .or_insert(parent_depth.map_or(1, |d| d + 1))
            }
        };
        if let (Some(name), Some(span)) = (r.span_start(), &r.span_id) {
            self.open.push((span.clone(), name.to_owned()));
        }
        if let (Some(_), Some(span)) = (r.span_end(), &r.span_id) {
            self.open.retain(|(id, _)| id != span);
        }
        if !filters.keeps_trace_id(r.trace_id.as_deref()) || !filters.keeps(&r) {
            return;
        }
        let trace = r
            .trace_id
            .as_deref()
            .map_or("--------", |t| t.get(..8).unwrap_or(t));
        let indent = indent(depth);
        let result = (|| {
            write!(out, "{DIM}{trace}{DIM:#} ")?;
            if let Some(name) = r.span_start() {
                writeln!(
                    out,
                    "{indent}{DIM}{}{DIM:#} {}▸ {}{:#}",
                    clock(&r),
                    level_style(r.level),
                    shown(name),
                    level_style(r.level)
                )
            } else if let Some(name) = r.span_end() {
                let ls = level_style(r.level);
                write!(
                    out,
                    "{indent}{DIM}{}{DIM:#} {ls}◂ {}{ls:#}",
                    clock(&r),
                    shown(name)
                )?;
                if let Some(ms) = r.duration_ms() {
                    write!(out, " {DIM}{}{DIM:#}", fmt_ms(ms))?;
                }
                if let Some(error) = r.error() {
                    write!(out, " {ERR}✖ {}{ERR:#}", shown(&error))?;
                }
                if let Some(reason) = r
                    .field(aitrace_core::wire::RETENTION_FIELD)
                    .and_then(serde_json::Value::as_str)
                {
                    write!(out, "  {DIM}kept whole: {reason}{DIM:#}")?;
                }
                writeln!(out)
            } else {
                print_event(out, &indent, &r)
            }
        })();
        if result.is_err() {
            // stdout closed (a pipe's reader went away): nothing more to show.
            std::process::exit(0);
        }
    }

    fn finish(&self, out: &mut impl Write) {
        if !self.open.is_empty() {
            let names: Vec<&str> = self.open.iter().map(|(_, n)| n.as_str()).collect();
            let _ = writeln!(out, "{DIM}still open: {}{DIM:#}", names.join(", "));
        }
        let _ = out.flush();
    }
}

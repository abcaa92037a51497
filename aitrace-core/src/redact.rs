//! Redaction: secrets taken out of records at capture, before the buffer, so
//! no output, spool or fallback file ever holds them.
//!
//! [`Redactor`] replaces the values of sensitive keys (and, when asked, the
//! parts of string values that look like credentials) with [`REDACTED`]; a
//! `before_send` hook ([`Builder::before_send`](crate::Builder::before_send))
//! may edit or drop each record first. `Redaction` (inside the crate) runs both for a logger.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::diagnostics::Diagnostics;
use crate::error::{ConfigError, Result};
use crate::record::Record;
use crate::value::{MAX_VALUE_DEPTH, Value};

mod cards;

use crate::wire::REDACTED;

/// The key names [`Redactor::default`] treats as sensitive.
///
/// Case and separators do not matter (`api_key` covers `apiKey`, `API-KEY`
/// and `api.key`), and a key also matches when it *ends* with one of these
/// after a separator or a camel-case hump: `token` covers `access_token`,
/// `X-Auth-Token` and `refreshToken`, `password` covers `db_password`; but
/// `token_count`, `tokens`, `max_tokens` and `author` do not match.
///
/// Personal data (`email`, `ssn`) is not in the list: what counts as
/// personal depends on the application; add such keys with
/// [`Redactor::key`]. Card numbers are found by their value, whatever the
/// key: see [`Redactor::with_common_value_patterns`].
pub const DEFAULT_REDACTED_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "jwt",
    "api_key",
    "access_key",
    "secret_key",
    "private_key",
    "authorization",
    "auth",
    "credential",
    "credentials",
    "cookie",
    "session",
    "session_id",
];

/// The value patterns [`Redactor::with_common_value_patterns`] adds. A
/// pattern with capture groups has only its groups redacted.
const COMMON_VALUE_PATTERNS: &[&str] = &[
    // HTTP credentials: `Bearer <token>`, `Basic <base64>`; the scheme stays.
    r"(?i:\b(?:bearer|basic)\s+)([A-Za-z0-9._~+/-]{8,}=*)",
    // A JSON Web Token: a base64url JSON header and payload, a signature.
    r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
    // An AWS access key id (long-term `AKIA`, temporary `ASIA`).
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    // `password=…`, `access_token=…`, `api_key=…` in a query string or a
    // `key=value` message; the value goes, the name stays.
    r"(?i)\b[a-z0-9_-]*(?:password|passwd|pwd|secret|token|api_?key|auth|signature)=([^&\s;,'\x22]+)",
    // The password of a URL's user-info: `postgres://app:s3cret@db/main`.
    r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@",
];

/// Replaces sensitive data in records with [`REDACTED`].
///
/// * **Keys**: a field whose key is sensitive has its whole value, whatever
///   its type, replaced with the string `"[REDACTED]"`, at the top level and
///   at every depth of nested objects. The default set is
///   [`DEFAULT_REDACTED_KEYS`]; [`key`](Self::key) adds names and
///   [`allow_key`](Self::allow_key) removes them. Matching compares bytes
///   without allocating: it runs for every field of every record.
/// * **Values** (off by default): regular expressions searched in every
///   string value, at every depth, and in the event name (the log message).
///   A match is replaced with `"[REDACTED]"` (only its capture groups, when
///   the pattern has some), so the rest of a message or URL stays readable.
///   [`with_common_value_patterns`](Self::with_common_value_patterns) adds
///   patterns for HTTP credentials, JWTs, AWS access key ids, secrets in
///   query strings, URL passwords and payment card numbers;
///   [`value_pattern`](Self::value_pattern)
///   adds your own. They are off by default because scanning every string
///   costs time on every event and a false positive hides data.
///
/// A logger applies [`Redactor::default`] unless told otherwise
/// ([`Builder::redactor`](crate::Builder::redactor)): a secret that reached a
/// shared log store cannot be recalled, while an over-redacted field is
/// visible and easy to allow.
///
/// # Examples
///
/// ```
/// use aitrace_core::redact::Redactor;
/// use aitrace_core::{Level, Record, Value};
///
/// let redactor = Redactor::default()
///     .key("ssn")
///     .with_common_value_patterns()
///     .value_pattern(r"\bEMP-\d{6}\b")?;
/// let mut record = Record::builder(Level::Info, "signup")
///     .field("user", "u2")
///     .field("dbPassword", "hunter2")
///     .field("ssn", 123456789)
///     .field("note", "card 4111-1111-1111-1111 on file")
///     .field("badge", "EMP-004217")
///     .field("order_id", "4111111111111112") // fails the Luhn check: not a card
///     .field("token_count", 812)
///     .build();
/// redactor.redact(&mut record);
/// assert_eq!(record.field("dbPassword"), Some(&Value::from("[REDACTED]")));
/// assert_eq!(record.field("ssn"), Some(&Value::from("[REDACTED]")));
/// assert_eq!(record.field("note"), Some(&Value::from("card [REDACTED] on file")));
/// assert_eq!(record.field("badge"), Some(&Value::from("[REDACTED]")));
/// assert_eq!(record.field("order_id"), Some(&Value::from("4111111111111112")));
/// assert_eq!(record.field("token_count"), Some(&Value::I64(812)));
/// # Ok::<(), aitrace_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Redactor {
    keys: Arc<KeyNames>,
    values: Option<Arc<ValuePatterns>>,
}

impl Default for Redactor {
    /// Redacts the values of [`DEFAULT_REDACTED_KEYS`]; no value patterns.
    fn default() -> Self {
        Redactor {
            keys: Arc::new(KeyNames::new(DEFAULT_REDACTED_KEYS.iter().copied())),
            values: None,
        }
    }
}

impl Redactor {
    /// A redactor that changes nothing: [`Builder::redactor`](crate::Builder::redactor)
    /// with it turns redaction off. Keys and patterns can still be added.
    pub fn none() -> Self {
        Redactor {
            keys: Arc::new(KeyNames::new(std::iter::empty())),
            values: None,
        }
    }

    /// Treats `name` as a sensitive key too, matched like the defaults:
    /// as the last words of a key, whatever its separators and ASCII case
    /// (letters of other scripts are compared as they are).
    pub fn key(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.keys).insert(name);
        self
    }

    /// Keeps the values of the key `name` (any case and separators):
    /// removes it from the sensitive names, so keys ending with it are kept
    /// too (`allow_key("session")` keeps `user_session`), and keeps that
    /// exact key even when it ends with another sensitive name
    /// (`allow_key("next_page_token")`).
    pub fn allow_key(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.keys).remove(name);
        self
    }

    /// Also redacts the parts of string values (and event names) that look
    /// like credentials: `Bearer`/`Basic` HTTP credentials (the scheme is
    /// kept), JSON Web Tokens, AWS access key ids (`AKIA…`, `ASIA…`),
    /// `password=`, `token=`, `api_key=`, `secret=`, `auth=`, `signature=`
    /// values in query strings and messages, and the password in a URL's
    /// user-info (`scheme://user:[REDACTED]@host`).
    ///
    /// And payment card numbers (PCI DSS): 13 to 19 digits that pass the
    /// Luhn check, bare (`4242424242424242`) or in groups of 3 to 6 digits
    /// joined by single spaces or dashes (`4242 4242 4242 4242`,
    /// `3782-822463-10005`), with no letter or digit touching them. The
    /// Luhn check keeps most order ids and timestamps of the same length
    /// (nine in ten fail it; one in ten, by chance, is redacted). A string
    /// with fewer than 13 digits is passed over after counting them. An
    /// integer field (`card = 4242424242424242u64`, at any depth) that is
    /// such a number is redacted whole.
    pub fn with_common_value_patterns(self) -> Self {
        self.value_patterns(COMMON_VALUE_PATTERNS, true)
            .unwrap_or_else(|_| unreachable!("the built-in patterns compile"))
    }

    /// Also redacts what the regular expression `pattern` matches in string
    /// values and event names: the whole match, or only its capture groups
    /// when it has some (`token=(\w+)` keeps `token=`).
    ///
    /// The syntax is the `regex` crate's, with Unicode classes limited to
    /// `\w`, `\d`, `\s` and case folding (`(?i)`); `\p{…}` is refused.
    /// An error ([`ErrorKind::InvalidPattern`](crate::ErrorKind::InvalidPattern))
    /// says what is wrong with it.
    pub fn value_pattern(self, pattern: &str) -> Result<Self, ConfigError> {
        self.value_patterns(&[pattern], false)
    }

    /// Adds several patterns, compiling the set once, and the search for
    /// card numbers when `cards`.
    fn value_patterns(mut self, patterns: &[&str], cards: bool) -> Result<Self, ConfigError> {
        let (mut sources, had_cards) = self
            .values
            .as_ref()
            .map_or_else(|| (Vec::new(), false), |v| (v.sources.clone(), v.cards));
        sources.extend(patterns.iter().map(|p| (*p).to_owned()));
        self.values = Some(Arc::new(ValuePatterns::new(sources, cards || had_cards)?));
        Ok(self)
    }

    /// Whether a field named `key` has its value redacted.
    ///
    /// ```
    /// use aitrace_core::redact::Redactor;
    ///
    /// let redactor = Redactor::default();
    /// assert!(redactor.is_sensitive_key("X-Api-Key"));
    /// assert!(redactor.is_sensitive_key("auth.token"));
    /// assert!(redactor.is_sensitive_key("refreshToken"));
    /// assert!(!redactor.is_sensitive_key("token_count"));
    /// assert!(!redactor.is_sensitive_key("author"));
    /// ```
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        self.keys.matches(key.as_bytes())
    }

    /// Whether this redactor changes nothing.
    pub(crate) fn is_none(&self) -> bool {
        self.keys.names.is_empty() && self.values.is_none()
    }

    /// Redacts `record` in place: sensitive keys at every depth, and value
    /// patterns in string values and the event name. Allocates only for
    /// what it replaces.
    pub fn redact(&self, record: &mut Record) {
        if let Some(values) = &self.values {
            if let Some(event) = values.redact_text(record.event()) {
                record.set_event(event);
            }
        }
        for (key, value) in record.raw_fields_mut() {
            let sensitive = match key {
                Cow::Borrowed(key) => self.keys.matches_static(key),
                Cow::Owned(key) => self.keys.matches(key.as_bytes()),
            };
            if sensitive {
                *value = redacted();
            } else if self.may_hold_secrets(value) {
                self.redact_value(value, 0);
            }
        }
    }

    /// Whether `value` can hold something to redact: nested keys, a
    /// string when value patterns are on, or an integer that may be a card
    /// number. Saves a call per scalar field.
    #[inline]
    fn may_hold_secrets(&self, value: &Value) -> bool {
        match value {
            Value::Object(_) | Value::Array(_) => true,
            Value::Str(_) => self.values.is_some(),
            Value::I64(n) => self.finds_cards() && n.unsigned_abs() >= CARD_LOWEST,
            Value::U64(n) => self.finds_cards() && *n >= CARD_LOWEST,
            _ => false,
        }
    }

    /// Whether card numbers are redacted (the common value patterns).
    #[inline]
    fn finds_cards(&self) -> bool {
        self.values.as_ref().is_some_and(|values| values.cards)
    }

    /// Redacts inside a field value `depth` levels down; parts the encoder
    /// cuts at [`MAX_VALUE_DEPTH`] are never written, so never visited.
    fn redact_value(&self, value: &mut Value, depth: usize) {
        match value {
            Value::Object(entries) if depth < MAX_VALUE_DEPTH => {
                for (key, value) in entries.iter_mut() {
                    if self.keys.matches(key.as_bytes()) {
                        *value = redacted();
                    } else {
                        self.redact_value(value, depth + 1);
                    }
                }
            }
            Value::Array(items) if depth < MAX_VALUE_DEPTH => {
                for item in items.iter_mut() {
                    self.redact_value(item, depth + 1);
                }
            }
            Value::Str(text) => {
                if let Some(values) = &self.values {
                    if let Some(redacted) = values.redact_text(text) {
                        *text = redacted.into();
                    }
                }
            }
            // A card number as an integer (`card = 4242424242424242u64`).
            Value::I64(n) if self.finds_cards() && cards::is_card_number(n.unsigned_abs()) => {
                *value = redacted();
            }
            Value::U64(n) if self.finds_cards() && cards::is_card_number(*n) => {
                *value = redacted();
            }
            _ => {}
        }
    }
}

/// The smallest integer with a card number's 13 digits.
const CARD_LOWEST: u64 = 1_000_000_000_000;

fn redacted() -> Value {
    Value::from_static(REDACTED)
}

/// A byte of a key as matching sees it: ASCII lower case; `None` for the
/// separators `_`, `-`, `.` and space, which matching skips.
#[inline]
fn fold(byte: u8) -> Option<u8> {
    match byte {
        b'_' | b'-' | b'.' | b' ' => None,
        _ => Some(byte.to_ascii_lowercase()),
    }
}

/// Sensitive key names, lower case without separators, and an index from a
/// name's last byte to the names ending with it, so a key is compared only
/// with the few names that can match its end.
#[derive(Clone)]
struct KeyNames {
    /// Sorted by last byte.
    names: Vec<Box<[u8]>>,
    /// Keys kept although they match, folded like `names`.
    allowed: Vec<Box<[u8]>>,
    /// `names[starts[b]..starts[b + 1]]` end with the ASCII byte `b`;
    /// `names[starts[128]..]` with a non-ASCII byte.
    starts: [u16; 129],
    /// Bit `b` is set when some name ends with the byte `b`: most keys are
    /// turned away by this one test.
    last_bytes: u128,
    /// Unique to this set of names (a change takes a new one): what the
    /// per-thread cache of verdicts is keyed by.
    id: u64,
}

/// The source of [`KeyNames::id`].
static NEXT_NAMES_ID: AtomicU64 = AtomicU64::new(1);

/// A verdict on a `'static` key: the key's address and length (a static
/// string never changes, so they name its text), the names' id.
#[derive(Clone, Copy)]
struct CachedVerdict {
    key: (usize, usize),
    names: u64,
    sensitive: bool,
}

const VERDICT_SLOTS: usize = 64;

thread_local! {
    /// Verdicts on the `'static` keys this thread has seen lately, by
    /// address: the keys of a program's events are few and fixed, and
    /// looking one up here is cheaper than matching it again.
    static VERDICTS: [Cell<CachedVerdict>; VERDICT_SLOTS] = const {
        [const {
            Cell::new(CachedVerdict {
                key: (0, 0),
                names: 0,
                sensitive: false,
            })
        }; VERDICT_SLOTS]
    };
}

impl KeyNames {
    fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut keys = KeyNames {
            names: Vec::new(),
            allowed: Vec::new(),
            starts: [0; 129],
            last_bytes: 0,
            id: 0,
        };
        for name in names {
            keys.insert(name);
        }
        keys.renew_id();
        keys
    }

    fn renew_id(&mut self) {
        self.id = NEXT_NAMES_ID.fetch_add(1, Ordering::Relaxed);
    }

    fn folded(name: &str) -> Box<[u8]> {
        name.bytes().filter_map(fold).collect()
    }

    fn insert(&mut self, name: &str) {
        let name = Self::folded(name);
        self.allowed.retain(|n| *n != name);
        // An empty name would match every key.
        if !name.is_empty()
            && !self.names.contains(&name)
            && self.names.len() < usize::from(u16::MAX)
        {
            self.names.push(name);
            self.reindex();
        }
        self.renew_id();
    }

    fn remove(&mut self, name: &str) {
        let name = Self::folded(name);
        self.names.retain(|n| *n != name);
        self.reindex();
        if !name.is_empty() && !self.allowed.contains(&name) {
            self.allowed.push(name);
        }
        self.renew_id();
    }

    fn reindex(&mut self) {
        self.names.sort_by_key(|n| n.last().copied());
        let last = |name: &[u8]| name.last().map_or(0, |&b| usize::from(b));
        let mut i = 0;
        for (byte, start) in self.starts.iter_mut().enumerate() {
            while i < self.names.len() && last(&self.names[i]) < byte {
                i += 1;
            }
            *start = i as u16;
        }
        self.last_bytes = (self.names.iter())
            .filter_map(|n| n.last())
            .filter(|b| b.is_ascii())
            .fold(0, |mask, &b| mask | 1 << b);
    }

    /// Whether `key`, folded, is a name or ends with one at a word boundary
    /// (a separator, or a camel-case hump: lower case or digit, then upper).
    #[inline]
    fn matches(&self, key: &[u8]) -> bool {
        let Some(end) = key.iter().rposition(|&b| fold(b).is_some()) else {
            return false;
        };
        let last = key[end].to_ascii_lowercase();
        self.ending_with(last)
            .iter()
            .any(|name| ends_with_word(&key[..=end], name))
            && !self.allowed.iter().any(|allowed| folds_to(key, allowed))
    }

    /// [`matches`](Self::matches) for a key that lives for the whole
    /// program, through this thread's cache of verdicts.
    #[inline]
    fn matches_static(&self, key: &'static str) -> bool {
        let address = (key.as_ptr() as usize, key.len());
        let slot = ((address.0 >> 3) ^ address.1) % VERDICT_SLOTS;
        VERDICTS
            .try_with(|verdicts| {
                let cached = verdicts[slot].get();
                if cached.key == address && cached.names == self.id {
                    return cached.sensitive;
                }
                let sensitive = self.matches(key.as_bytes());
                verdicts[slot].set(CachedVerdict {
                    key: address,
                    names: self.id,
                    sensitive,
                });
                sensitive
            })
            .unwrap_or_else(|_| self.matches(key.as_bytes()))
    }

    /// The names that end with the byte `last`, or with any non-ASCII
    /// byte when `last` is one (names in other scripts are few).
    #[inline]
    fn ending_with(&self, last: u8) -> &[Box<[u8]>] {
        let start = |b: u8| usize::from(self.starts[usize::from(b)]);
        if !last.is_ascii() {
            &self.names[start(128)..]
        } else if self.last_bytes & 1 << last == 0 {
            &[]
        } else {
            &self.names[start(last)..start(last + 1)]
        }
    }
}

/// Whether `key` ends with the folded `name`, separators in `key` skipped,
/// and the match starts at a word boundary.
#[inline]
fn ends_with_word(key: &[u8], name: &[u8]) -> bool {
    let mut k = key.len();
    for &want in name.iter().rev() {
        loop {
            if k == 0 {
                return false;
            }
            k -= 1;
            match fold(key[k]) {
                None => continue,
                Some(got) if got == want => break,
                Some(_) => return false,
            }
        }
    }
    // `key[k]` is the first byte of the match.
    k == 0
        || fold(key[k - 1]).is_none()
        || ((key[k - 1].is_ascii_lowercase() || key[k - 1].is_ascii_digit())
            && key[k].is_ascii_uppercase())
}

/// Whether `key`, folded, is `folded`.
fn folds_to(key: &[u8], folded: &[u8]) -> bool {
    key.iter()
        .filter_map(|&b| fold(b))
        .eq(folded.iter().copied())
}

impl fmt::Debug for KeyNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |names: &[Box<[u8]>]| {
            names
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect::<Vec<_>>()
        };
        f.debug_struct("KeyNames")
            .field("names", &text(&self.names))
            .field("allowed", &text(&self.allowed))
            .finish()
    }
}

/// Value patterns: one set searched once per string, and each pattern on
/// its own to replace what matched; and card numbers.
#[derive(Debug)]
struct ValuePatterns {
    sources: Vec<String>,
    set: regex::RegexSet,
    patterns: Vec<regex::Regex>,
    /// Whether card numbers are redacted too (see [`cards`]).
    cards: bool,
}

impl ValuePatterns {
    fn new(sources: Vec<String>, cards: bool) -> Result<Self, ConfigError> {
        let invalid = |err: regex::Error| {
            ConfigError::invalid_pattern(format!("invalid redaction pattern: {err}"))
        };
        let patterns = sources
            .iter()
            .map(|s| regex::Regex::new(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let set = regex::RegexSet::new(&sources).map_err(invalid)?;
        Ok(ValuePatterns {
            sources,
            set,
            patterns,
            cards,
        })
    }

    /// `text` with every card number and match redacted, or `None` when
    /// nothing matched. Card numbers go first, so no pattern can take part
    /// of one and leave the rest.
    fn redact_text(&self, text: &str) -> Option<String> {
        let carded = if self.cards {
            cards::redact(text)
        } else {
            None
        };
        let text = carded.as_deref().unwrap_or(text);
        self.redact_matches(text).or(carded)
    }

    /// `text` with every match of the patterns redacted, or `None`.
    fn redact_matches(&self, text: &str) -> Option<String> {
        // `matches` allocates; most strings match nothing.
        if !self.set.is_match(text) {
            return None;
        }
        let matched = self.set.matches(text);
        let mut current = Cow::Borrowed(text);
        for i in matched.iter() {
            if let Some(next) = replace(&self.patterns[i], &current) {
                current = Cow::Owned(next);
            }
        }
        match current {
            Cow::Owned(text) => Some(text),
            Cow::Borrowed(_) => None,
        }
    }
}

/// `text` with each match of `pattern` (or each of its capture groups that
/// took part) replaced by [`REDACTED`]; `None` when nothing non-empty matched.
fn replace(pattern: &regex::Regex, text: &str) -> Option<String> {
    let mut out = String::new();
    let mut done = 0;
    let mut cut = |start: usize, end: usize, out: &mut String| {
        if start == end {
            return; // an empty match would insert markers everywhere
        }
        if start < done {
            done = done.max(end); // overlaps the part just redacted
            return;
        }
        out.push_str(&text[done..start]);
        out.push_str(REDACTED);
        done = end;
    };
    if pattern.captures_len() == 1 {
        for m in pattern.find_iter(text) {
            cut(m.start(), m.end(), &mut out);
        }
    } else {
        let mut groups = Vec::new();
        for caps in pattern.captures_iter(text) {
            // Group numbers follow the pattern, not the text: a repetition
            // can leave a later group before an earlier one.
            groups.clear();
            groups.extend(caps.iter().skip(1).flatten().map(|m| (m.start(), m.end())));
            groups.sort_unstable();
            for &(start, end) in &groups {
                cut(start, end, &mut out);
            }
        }
    }
    if out.is_empty() {
        return None;
    }
    out.push_str(&text[done..]);
    Some(out)
}

/// What a [`before_send`](crate::Builder::before_send) hook decides about
/// a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the record (as the hook left it).
    Keep,
    /// Drop it: it is never buffered, and counted in
    /// [`Stats::before_send_dropped`](crate::Stats::before_send_dropped).
    Drop,
}

/// A `before_send` hook.
#[derive(Clone)]
pub(crate) struct Hook(pub(crate) Arc<dyn Fn(&mut Record) -> Verdict + Send + Sync>);

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fn(&mut Record) -> Verdict")
    }
}

thread_local! {
    /// Set while this thread runs a hook: records the hook itself logs
    /// skip it instead of recursing.
    static IN_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What a logger does to each record between its filter and its buffer:
/// the user's hook, then the redactor.
pub(crate) struct Redaction {
    hook: Option<Hook>,
    redactor: Option<Redactor>,
    diagnostics: Diagnostics,
}

impl Redaction {
    /// `None` when there is nothing to do.
    pub(crate) fn new(hook: Option<Hook>, redactor: Redactor) -> Option<Self> {
        let redactor = (!redactor.is_none()).then_some(redactor);
        (hook.is_some() || redactor.is_some()).then(|| Redaction {
            hook,
            redactor,
            diagnostics: Diagnostics::default(),
        })
    }

    /// Whether a span's lifecycle record with no field but `duration_ms`
    /// comes out of [`apply`](Self::apply) as it went in: no hook, no value
    /// patterns (which read the event name), `duration_ms` not a key to
    /// redact. Such records may be buffered compact
    /// ([`Lifecycle`](crate::lifecycle::Lifecycle)).
    pub(crate) fn leaves_lifecycle_alone(&self) -> bool {
        self.hook.is_none()
            && self.redactor.as_ref().is_none_or(|redactor| {
                redactor.values.is_none()
                    && !(redactor.keys).matches(crate::wire::DURATION_FIELD.as_bytes())
            })
    }

    /// Runs the hook then the redactor on `record`; `false` when the record
    /// is to be dropped (the hook said so, or panicked).
    #[inline]
    pub(crate) fn apply(&self, record: &mut Record) -> bool {
        if let Some(hook) = &self.hook {
            if !self.run_hook(hook, record) {
                return false;
            }
        }
        if let Some(redactor) = &self.redactor {
            redactor.redact(record);
        }
        true
    }

    fn run_hook(&self, hook: &Hook, record: &mut Record) -> bool {
        if IN_HOOK.with(|busy| busy.replace(true)) {
            return true; // logged by the hook itself: keep, unhooked
        }
        // The record is dropped after a panic, so its half-edited state is
        // never seen; no lock is held here, so nothing is poisoned.
        let verdict = catch_unwind(AssertUnwindSafe(|| (hook.0)(record)));
        IN_HOOK.with(|busy| busy.set(false));
        match verdict {
            Ok(Verdict::Keep) => true,
            Ok(Verdict::Drop) => false,
            Err(_) => {
                self.diagnostics.say("before_send panic", || {
                    "the before_send hook panicked; the record was dropped \
                     (counted in Stats::before_send_dropped)"
                        .to_owned()
                });
                false
            }
        }
    }
}

impl fmt::Debug for Redaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redaction")
            .field("before_send", &self.hook)
            .field("redactor", &self.redactor)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::level::Level;

    #[test]
    fn cached_verdicts_on_static_keys_follow_the_redactor_and_the_key() {
        // More keys than cache slots, so slots are shared and replaced.
        let keys: Vec<(&'static str, bool)> = (0..3 * VERDICT_SLOTS)
            .map(|i| {
                let sensitive = i % 3 == 0;
                let name = if sensitive { "password" } else { "total" };
                let key: &'static str = Box::leak(format!("k{i}_{name}").into_boxed_str());
                (key, sensitive)
            })
            .collect();
        let strict = Redactor::default();
        let lenient = Redactor::default().allow_key("password");
        let check = |redactor: &Redactor, key: &'static str, expected: bool| {
            let mut record = Record::builder(Level::Info, "e").field(key, "v").build();
            redactor.redact(&mut record);
            assert_eq!(record.field(key) == Some(&redacted()), expected, "{key}");
        };
        // One redactor over many keys (slots shared between keys), then the
        // two in turn (slots shared between redactors).
        for (redactor, lenient) in [(&strict, false), (&lenient, true), (&strict, false)] {
            for _round in 0..3 {
                for &(key, sensitive) in &keys {
                    check(redactor, key, sensitive && !lenient);
                }
            }
        }
        for &(key, sensitive) in &keys {
            check(&strict, key, sensitive);
            check(&lenient, key, false);
        }
        // An owned key with the same text gets the same verdict.
        let mut record = Record::builder(Level::Info, "e")
            .field(String::from("k0_password"), "v")
            .build();
        strict.redact(&mut record);
        assert_eq!(record.field("k0_password"), Some(&redacted()));
    }

    #[test]
    fn default_keys_match_by_suffix_at_word_boundaries() {
        let r = Redactor::default();
        for key in [
            "password",
            "PASSWORD",
            "db_password",
            "db.password",
            "dbPassword",
            "X-Api-Key",
            "apiKey",
            "api key",
            "API_KEY",
            "auth.token",
            "access_token",
            "refreshToken",
            "id-token",
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "Set-Cookie",
            "sessionId",
            "session_id",
            "client_secret",
            "aws_secret_access_key",
            "private-key",
            "basic_auth",
            "password_",
            "user2Token",
        ] {
            assert!(r.is_sensitive_key(key), "{key} should be sensitive");
        }
        for key in [
            "token_count",
            "tokens",
            "max_tokens",
            "prompt_tokens",
            "author",
            "oauth",
            "passwordless",
            "user_id",
            "total",
            "keyword",
            "secretary",
            "",
            "_",
            "-.-",
            "é",
            "tokén",
            "Token\u{301}",
        ] {
            assert!(!r.is_sensitive_key(key), "{key} should not be sensitive");
        }
    }

    #[test]
    fn keys_can_be_added_and_allowed() {
        let r = Redactor::default()
            .key("SSN")
            .allow_key("Session-Id")
            .allow_key("next_page_token");
        assert!(r.is_sensitive_key("user_ssn"));
        assert!(!r.is_sensitive_key("session_id"));
        assert!(!r.is_sensitive_key("user_sessionId"));
        assert!(r.is_sensitive_key("session"));
        assert!(!r.is_sensitive_key("nextPageToken"), "allowed exactly");
        assert!(r.is_sensitive_key("page_token"), "but not by suffix");
        assert!(
            r.clone()
                .key("next_page_token")
                .is_sensitive_key("next_page_token")
        );
        assert!(!Redactor::none().is_sensitive_key("password"));
        assert!(Redactor::none().is_none());
        assert!(!Redactor::none().key("pin").is_none());
        // A name that is all separators is ignored rather than matching everything.
        let r = Redactor::none().key("").key("--");
        assert!(r.is_none());
        assert!(!r.is_sensitive_key("anything"));
        // Names in other scripts match as words too, without case folding.
        let r = Redactor::none().key("пароль").key("clé");
        assert!(r.is_sensitive_key("user_пароль"));
        assert!(r.is_sensitive_key("api.clé"));
        assert!(!r.is_sensitive_key("userпароль"));
        assert!(!r.is_sensitive_key("Пароль"));
        assert!(!r.is_sensitive_key("cle"));
    }

    #[test]
    fn common_value_patterns_redact_only_the_secret_part() {
        let r = Redactor::none().with_common_value_patterns();
        let values = r.values.as_ref().unwrap();
        let cases = [
            (
                "Authorization: Bearer abc.def-ghi_jkl",
                "Authorization: Bearer [REDACTED]",
            ),
            ("basic dXNlcjpwYXNz", "basic [REDACTED]"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature_x ok",
                "jwt [REDACTED] ok",
            ),
            ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED] used"),
            (
                "GET /cb?code=1&access_token=s3cr3t&page=2",
                "GET /cb?code=1&access_token=[REDACTED]&page=2",
            ),
            ("login password=hunter2 ok", "login password=[REDACTED] ok"),
            (
                "postgres://app:s3cret@db:5432/main",
                "postgres://app:[REDACTED]@db:5432/main",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(values.redact_text(text).as_deref(), Some(want), "{text}");
        }
        for text in [
            "token_count=5",
            "max_tokens=100",
            "a basic idea",
            "https://example.com/a?b=c",
            "AKIA123",
        ] {
            assert_eq!(values.redact_text(text), None, "{text}");
        }
    }

    #[test]
    fn a_custom_pattern_with_groups_redacts_the_groups_and_empty_matches_nothing() {
        let r = Redactor::none()
            .value_pattern(r"card (\d{4})-(\d{4})")
            .unwrap()
            .value_pattern("x*")
            .unwrap();
        let values = r.values.as_ref().unwrap();
        assert_eq!(
            values.redact_text("card 1234-5678!").as_deref(),
            Some("card [REDACTED]-[REDACTED]!")
        );
        assert_eq!(values.redact_text("nothing here"), None);
        assert_eq!(values.redact_text("xx").as_deref(), Some("[REDACTED]"));
        let nested = Redactor::none().value_pattern("((a)b)").unwrap();
        assert_eq!(
            nested.values.unwrap().redact_text("zabz").as_deref(),
            Some("z[REDACTED]z")
        );
        // Group 3 ("b", first) ends before group 1 ("a", last) starts.
        let repeated = Redactor::none().value_pattern("((a)|(b))+").unwrap();
        assert_eq!(
            repeated.values.unwrap().redact_text("-ba-").as_deref(),
            Some("-[REDACTED][REDACTED]-")
        );
        let err = Redactor::none().value_pattern("(").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidPattern);
    }

    #[test]
    fn nested_objects_and_arrays_are_redacted_at_every_depth_the_encoder_writes() {
        let object = |k: &str, v: Value| Value::Object([(k.to_owned(), v)].into());
        let nest = |depth: usize| {
            (0..depth).fold(object("password", Value::from("hunter2")), |inner, _| {
                Value::Array([inner].into())
            })
        };
        let mut record = Record::builder(Level::Info, "e")
            .field("db", object("conn", object("password", Value::I64(1))))
            .field("list", Value::Array([object("token", Value::Null)].into()))
            .field("deepest_written", nest(MAX_VALUE_DEPTH - 1))
            .field("too_deep", nest(MAX_VALUE_DEPTH))
            .field("api_key", Value::Array([Value::I64(1)].into()))
            .build();
        Redactor::default().redact(&mut record);
        let json = crate::Layout::default().to_json(&record);
        assert!(
            json.contains(r#""db":{"conn":{"password":"[REDACTED]"}}"#),
            "{json}"
        );
        assert!(
            json.contains(r#""list":[{"token":"[REDACTED]"}]"#),
            "{json}"
        );
        assert!(json.contains(r#""api_key":"[REDACTED]""#), "{json}");
        // The object under 31 arrays is written, and redacted; under 32 it
        // is cut by the encoder, so the redactor need not go there.
        assert!(!json.contains("hunter2"), "{json}");
        assert_eq!(json.matches(REDACTED).count(), 4, "{json}");
        assert!(json.contains("[max depth]"), "{json}");
    }
}

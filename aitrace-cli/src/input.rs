//! Reading records from files or stdin: JSON Lines, or one JSON array.

use std::fmt;
use std::io::Read;

use serde_json::{Map, Value as Json};

/// Where a record was found: a line of JSON Lines or an element of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pos {
    Line(usize),
    Element(usize),
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pos::Line(n) => write!(f, "line {n}"),
            Pos::Element(n) => write!(f, "element {n}"),
        }
    }
}

/// One record's text and its parsed object, or why it is not one.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) pos: Pos,
    pub(crate) text: String,
    pub(crate) object: Result<Map<String, Json>, String>,
}

/// The whole of a file, or stdin for `-`, without a leading byte order mark.
pub(crate) fn read_source(path: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    let result = if path == "-" {
        std::io::stdin().lock().read_to_end(&mut bytes).map(drop)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(drop))
    };
    result.map_err(|e| format!("cannot read {}: {e}", name(path)))?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    // A byte order mark some editors write at the start: not a record's.
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// How a source is named in messages.
pub(crate) fn name(path: &str) -> &str {
    if path == "-" { "<stdin>" } else { path }
}

/// The records of a text: a JSON array when it is one, else JSON Lines
/// (blank lines skipped).
pub(crate) fn parse(text: &str) -> Vec<Item> {
    let trimmed = text.trim_start();
    let array = match trimmed.starts_with('[') {
        true => serde_json::from_str::<Json>(text).ok(),
        false => None,
    };
    if let Some(Json::Array(items)) = array {
        return items
            .into_iter()
            .enumerate()
            .map(|(i, value)| Item {
                pos: Pos::Element(i + 1),
                text: value.to_string(),
                object: as_object(value),
            })
            .collect();
    }
    text.split('\n')
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| parse_line(i + 1, line))
        .collect()
}

/// One line of JSON Lines.
pub(crate) fn parse_line(number: usize, line: &str) -> Item {
    let line = line.strip_suffix('\r').unwrap_or(line);
    Item {
        pos: Pos::Line(number),
        text: line.to_owned(),
        object: serde_json::from_str::<Json>(line)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(as_object),
    }
}

fn as_object(value: Json) -> Result<Map<String, Json>, String> {
    match value {
        Json::Object(map) => Ok(map),
        other => Err(format!(
            "a record is a JSON object, not {}",
            match other {
                Json::Array(_) => "an array",
                Json::String(_) => "a string",
                Json::Number(_) => "a number",
                Json::Bool(_) => "a boolean",
                _ => "null",
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_arrays_are_numbered_and_bad_ones_explained() {
        let items = parse("{\"a\":1}\n\nnope\n[1]\r\n{\"b\":2}\r\n");
        let pos: Vec<String> = items.iter().map(|i| i.pos.to_string()).collect();
        assert_eq!(pos, ["line 1", "line 3", "line 4", "line 5"]);
        assert!(items[0].object.is_ok() && items[3].object.is_ok());
        assert!(
            items[1]
                .object
                .as_ref()
                .unwrap_err()
                .starts_with("not JSON")
        );
        assert!(
            items[2]
                .object
                .as_ref()
                .unwrap_err()
                .contains("not an array")
        );

        let items = parse("  [{\"a\":1}, 3]");
        assert_eq!(items[1].pos, Pos::Element(2));
        assert!(items[0].object.is_ok() && items[1].object.is_err());
    }
}

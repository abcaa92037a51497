//! The HTTP ingest output (WIRE_FORMAT.md §3), on the shared transport
//! ([`aitrace_model::transport`]).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;

use crate::error::{ConfigError, Error, ErrorKind, Result};
use crate::transport::{
    HttpClient, RawAnswer, RedactedHeaders, check_headers, check_url, percent_decode, redact,
    split_userinfo, text_prefix,
};

pub(crate) struct IngestClient {
    client: HttpClient,
    /// The URL without user-info.
    url: String,
    /// The URL as shown in errors and `Debug`.
    redacted: String,
    authorization: Option<String>,
    headers: Vec<(String, String)>,
    gzip: bool,
}

/// What the server said about a batch.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) ingested: Option<usize>,
}

impl IngestClient {
    pub(crate) fn new(
        url: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
        headers: Vec<(String, String)>,
        gzip: bool,
        ca_file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let (url, userinfo) = split_userinfo(url);
        let redacted = redact(&url, userinfo.is_some());
        check_url(&url, &redacted, "URL")?;
        check_headers(&headers, &format!("HTTP output {redacted}"))?;
        let client = HttpClient::new(connect_timeout, request_timeout, ca_file)?;
        let authorization = userinfo.map(|info| {
            let info = percent_decode(&info);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(info)
            )
        });
        Ok(IngestClient {
            client,
            url,
            redacted,
            authorization,
            headers,
            gzip,
        })
    }

    pub(crate) fn redacted_url(&self) -> &str {
        &self.redacted
    }

    /// POSTs a JSON array body and reads the ingest answer.
    pub(crate) fn post(&self, body: &[u8]) -> Result<Answer> {
        let headers = self
            .authorization
            .iter()
            .map(|auth| ("Authorization", auth.as_str()))
            .chain(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let RawAnswer {
            status,
            retry_after,
            body: text,
            read,
            ..
        } = self.client.post(
            &self.url,
            &self.redacted,
            "application/json",
            headers,
            self.gzip,
            body,
        )?;
        if !(200..300).contains(&status) {
            let prefix = text_prefix(&String::from_utf8_lossy(&text));
            let hint = if (300..400).contains(&status) {
                " (redirects are not followed: give the output the final URL)"
            } else {
                ""
            };
            return Err(Error::new(
                ErrorKind::HttpStatus,
                format!("{} answered HTTP {status}{hint}: {prefix}", self.redacted),
            )
            .with_status(status)
            .with_retry_after(retry_after));
        }
        if let Err(e) = read {
            return Err(Error::io(
                format_args!("reading the answer of {}", self.redacted),
                e,
            ));
        }
        Ok(Answer {
            ingested: parse_ingested(&text),
        })
    }
}

impl fmt::Debug for IngestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestClient")
            .field("url", &self.redacted)
            .field("headers", &RedactedHeaders(&self.headers))
            .finish_non_exhaustive()
    }
}

fn parse_ingested(body: &[u8]) -> Option<usize> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    answer.get("ingested")?.as_u64().map(|n| n as usize)
}

impl crate::export::Export for IngestClient {
    fn name(&self) -> String {
        self.redacted_url().to_owned()
    }

    fn kind(&self) -> &'static str {
        "http"
    }

    fn input(&self) -> crate::export::Input {
        crate::export::Input::Array
    }

    fn export(&self, batch: &crate::export::Batch<'_>) -> Result<crate::export::Accepted> {
        let answer = self.post(batch.array().unwrap_or(b"[]"))?;
        Ok(match answer.ingested {
            Some(n) => crate::export::Accepted::ingested(n),
            None => crate::export::Accepted::all(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingested_is_read_when_present() {
        assert_eq!(parse_ingested(br#"{"ingested": 7, "ok": true}"#), Some(7));
        assert_eq!(parse_ingested(b"OK"), None);
        assert_eq!(parse_ingested(br#"{"ingested": "7"}"#), None);
    }

    #[test]
    fn secrets_never_reach_debug_or_errors() {
        let sender = IngestClient::new(
            "http://user:hunter2@127.0.0.1:9/api/ingest",
            Duration::from_millis(200),
            Duration::from_millis(500),
            vec![],
            false,
            None,
        )
        .unwrap();
        assert!(!format!("{sender:?}").contains("hunter2"));
        let err = sender.post(b"[]").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
        assert!(format!("{err}").contains("***@127.0.0.1:9"), "{err}");
    }
}

//! Standard output and standard error as outputs.

use std::io::Write;

use crate::error::{Error, Result};
use crate::export::{Accepted, Batch, Export};

/// Standard output or standard error, JSON Lines.
pub(crate) enum StdStream {
    Stdout,
    Stderr,
}

impl Export for StdStream {
    fn name(&self) -> String {
        match self {
            StdStream::Stdout => "stdout",
            StdStream::Stderr => "stderr",
        }
        .to_owned()
    }

    fn kind(&self) -> &'static str {
        match self {
            StdStream::Stdout => "stdout",
            StdStream::Stderr => "stderr",
        }
    }

    fn export(&self, batch: &Batch<'_>) -> Result<Accepted> {
        let written = match self {
            StdStream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(batch.lines()).and_then(|()| out.flush())
            }
            StdStream::Stderr => {
                let mut out = std::io::stderr().lock();
                out.write_all(batch.lines()).and_then(|()| out.flush())
            }
        };
        written.map_err(|e| Error::io(format!("cannot write to {}", self.name()), e))?;
        Ok(Accepted::all())
    }
}

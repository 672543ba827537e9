//! Writes a live run's proposals as a transcript that [`crate::ScriptedProvider`] replays.
//!
//! Each line is a proposal's [`Proposal::raw`]: live adapters tag it with `provider` and, for
//! pixel coordinates, `frame` (the screenshot size the model saw), so the replay maps the same
//! coordinates to the same CSS pixels. Two ways to hook it in:
//! - the engine calls [`Recorder::record`] after each accepted proposal, or
//! - the CLI wraps the provider: `Recording::new(provider, Some(Recorder::create(path)?))`
//!   (`None` records nothing, so one provider type serves both cases).

use crate::{Proposal, ProposeContext, Provider, ProviderError};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A transcript file being written.
#[derive(Debug)]
pub struct Recorder {
    out: BufWriter<File>,
    path: PathBuf,
    lines: usize,
}

impl Recorder {
    /// Creates (or truncates) the transcript at `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, ProviderError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| ProviderError::Io {
            path: path.clone(),
            source,
        };
        let file = File::create(&path).map_err(io)?;
        let mut out = BufWriter::new(file);
        writeln!(
            out,
            "# Airlock transcript recorded from a live run; replay with --model scripted:FILE"
        )
        .and_then(|()| out.flush())
        .map_err(io)?;
        Ok(Recorder {
            out,
            path,
            lines: 0,
        })
    }

    /// Appends `proposal` as one line (flushed at once, so a crash loses nothing). The scripted
    /// provider's own end-of-transcript marker is skipped.
    pub fn record(&mut self, proposal: &Proposal) -> Result<(), ProviderError> {
        if proposal.raw.get("end_of_transcript").is_some() {
            return Ok(());
        }
        let line = serde_json::to_string(&proposal.raw).map_err(|e| ProviderError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(|source| ProviderError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.lines += 1;
        Ok(())
    }

    /// Proposals written so far.
    pub fn lines(&self) -> usize {
        self.lines
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A provider whose every proposal is also written to a transcript (when it has a recorder).
#[derive(Debug)]
pub struct Recording<P> {
    inner: P,
    recorder: Option<Recorder>,
}

impl<P: Provider> Recording<P> {
    pub fn new(inner: P, recorder: Option<Recorder>) -> Self {
        Recording { inner, recorder }
    }

    pub fn into_inner(self) -> (P, Option<Recorder>) {
        (self.inner, self.recorder)
    }
}

impl<P: Provider> Provider for Recording<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn propose(&mut self, ctx: ProposeContext<'_>) -> Result<Proposal, ProviderError> {
        let proposal = self.inner.propose(ctx).await?;
        if let Some(r) = self.recorder.as_mut() {
            r.record(&proposal)?;
        }
        Ok(proposal)
    }
}

//! A pool of pre-started, never-used sandboxes, to take the browser's start-up off a run's
//! critical path.
//!
//! Every sandbox in the pool was launched from the pool's template with its own run id, so its
//! own profile directory, proxy and namespaces: nothing is shared between two runs. A sandbox
//! leaves the pool by value ([`SandboxPool::take`]) and never comes back; the caller tears it
//! down after its one run, which deletes its profile. There is no "return to pool": a profile
//! that a page has touched is never offered to another run.
//!
//! The egress policy is fixed at launch (the proxy inside the namespace is started with it), so
//! a pool serves runs with one policy: a pool per task template, not one for every task.

use std::collections::VecDeque;
use tokio::sync::mpsc;

use crate::{BrowserSandbox, EgressRecord, SandboxConfig, SandboxError};

/// A launched sandbox and its egress records, as [`BrowserSandbox::launch`] returns them.
pub type Ready = (BrowserSandbox, mpsc::UnboundedReceiver<EgressRecord>);

/// Pre-started sandboxes from one template.
pub struct SandboxPool {
    template: SandboxConfig,
    prefix: String,
    next: u64,
    ready: VecDeque<Ready>,
}

impl SandboxPool {
    /// A pool of sandboxes launched from `template`; each gets the run id `PREFIX-N` (the
    /// template's own run id is the prefix). Nothing is started until [`SandboxPool::fill`].
    pub fn new(template: SandboxConfig) -> SandboxPool {
        SandboxPool {
            prefix: template.run_id.clone(),
            template,
            next: 0,
            ready: VecDeque::new(),
        }
    }

    /// Run id of the next sandbox this pool launches.
    fn next_config(&mut self) -> SandboxConfig {
        self.next += 1;
        let mut cfg = self.template.clone();
        cfg.run_id = format!("{}-{}", self.prefix, self.next);
        cfg
    }

    /// Launches sandboxes until `size` are ready.
    pub async fn fill(&mut self, size: usize) -> Result<(), SandboxError> {
        while self.ready.len() < size {
            let cfg = self.next_config();
            self.ready.push_back(BrowserSandbox::launch(cfg).await?);
        }
        Ok(())
    }

    /// How many never-used sandboxes are waiting.
    pub fn ready(&self) -> usize {
        self.ready.len()
    }

    /// A never-used sandbox: a pre-started one if any is waiting, else one launched now.
    pub async fn take(&mut self) -> Result<Ready, SandboxError> {
        match self.ready.pop_front() {
            Some(r) => Ok(r),
            None => {
                let cfg = self.next_config();
                BrowserSandbox::launch(cfg).await
            }
        }
    }

    /// Tears down every sandbox still waiting (nothing ran in them).
    pub async fn drain(mut self) {
        while let Some((sb, _)) = self.ready.pop_front() {
            sb.teardown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sandbox_gets_its_own_run_id_from_the_template() {
        let mut pool = SandboxPool::new(SandboxConfig::new(
            "pool-test",
            crate::EgressPolicy::default(),
        ));
        let ids: Vec<String> = (0..3).map(|_| pool.next_config().run_id).collect();
        assert_eq!(ids, ["pool-test-1", "pool-test-2", "pool-test-3"]);
        assert_eq!(pool.ready(), 0);
    }
}

//! Named background tasks under one cancellation token. Each task's state is visible to
//! `/readyz` and the log: a task that fails or panics is reported, never silently lost.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// State of one supervised task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "detail")]
pub enum TaskState {
    /// Doing its work.
    Running,
    /// Ended after cancellation.
    Stopped,
    /// A one-shot task that completed.
    Done,
    /// Ended with an error or a panic; the string says which.
    Failed(String),
}

/// Owner of the background tasks.
#[derive(Clone, Default)]
pub struct Supervisor {
    token: CancellationToken,
    tasks: Arc<Mutex<BTreeMap<String, TaskState>>>,
    handles: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Supervisor {
    /// A supervisor with no tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token every task watches; cancelling it starts shutdown.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Runs `task` as `name`. The task gets a child token and must return soon after it fires.
    pub fn spawn<F, Fut>(&self, name: &str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.spawn_inner(name, false, task)
    }

    /// Runs a task that is expected to finish on its own (e.g. an index rebuild).
    pub fn spawn_oneshot<F, Fut>(&self, name: &str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.spawn_inner(name, true, task)
    }

    fn spawn_inner<F, Fut>(&self, name: &str, oneshot: bool, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let name = name.to_string();
        self.set(&name, TaskState::Running);
        let token = self.token.child_token();
        let inner = tokio::spawn(task(token.clone()));
        let tasks = self.tasks.clone();
        tracing::info!(task = %name, "background task started");
        let outer = tokio::spawn(async move {
            let state = match inner.await {
                Ok(Ok(())) if oneshot => TaskState::Done,
                Ok(Ok(())) if token.is_cancelled() => TaskState::Stopped,
                Ok(Ok(())) => TaskState::Failed("exited before shutdown".into()),
                Ok(Err(e)) => TaskState::Failed(e),
                Err(e) if e.is_panic() => TaskState::Failed("panicked".into()),
                Err(e) => TaskState::Failed(e.to_string()),
            };
            match &state {
                TaskState::Failed(why) => {
                    tracing::error!(task = %name, %why, "background task failed")
                }
                _ => tracing::info!(task = %name, "background task stopped"),
            }
            if let Ok(mut t) = tasks.lock() {
                t.insert(name, state);
            }
        });
        if let Ok(mut h) = self.handles.lock() {
            h.push(outer);
        }
    }

    fn set(&self, name: &str, state: TaskState) {
        if let Ok(mut t) = self.tasks.lock() {
            t.insert(name.to_string(), state);
        }
    }

    /// Every task and its state.
    pub fn states(&self) -> BTreeMap<String, TaskState> {
        self.tasks.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Whether no task has failed.
    pub fn healthy(&self) -> bool {
        self.states()
            .values()
            .all(|s| !matches!(s, TaskState::Failed(_)))
    }

    /// Cancels every task and waits up to `grace` for them to finish.
    pub async fn shutdown(&self, grace: Duration) {
        self.token.cancel();
        let handles: Vec<_> = self
            .handles
            .lock()
            .map(|mut h| h.drain(..).collect())
            .unwrap_or_default();
        let all = futures_join(handles);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("some background tasks did not stop within {grace:?}");
        }
    }
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_and_panics_are_reported() {
        let s = Supervisor::new();
        s.spawn("ok", |t| async move {
            t.cancelled().await;
            Ok(())
        });
        s.spawn("bad", |_| async { Err("boom".to_string()) });
        s.spawn("panics", |_| async {
            let v: Vec<u8> = Vec::new();
            let _ = v[1];
            Ok(())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = s.states();
        assert_eq!(st["ok"], TaskState::Running);
        assert_eq!(st["bad"], TaskState::Failed("boom".into()));
        assert_eq!(st["panics"], TaskState::Failed("panicked".into()));
        assert!(!s.healthy());
        s.shutdown(Duration::from_secs(2)).await;
        assert_eq!(s.states()["ok"], TaskState::Stopped);
    }
}

//! The in-process scheduler: named jobs on cron schedules (from the configuration), each run
//! recorded in the store with its outcome, plus the [`Supervisor`] for background tasks.
//!
//! Jobs are plain blocking functions over the [`Store`]; the domains that own the data provide
//! them and `app` registers them, so this module knows no domain.

mod supervisor;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use supervisor::{Supervisor, TaskState};

use tokio_util::sync::CancellationToken;

use crate::store::{Scan, Store, StoreError, Table};

/// The body of a job: blocking work over the store, returning a one-line summary. A long job
/// checks `stop` between units of work and returns early once it is cancelled (shutdown).
pub type JobFn = Arc<dyn Fn(&Store, &RunCtx) -> Result<String, String> + Send + Sync>;

/// What a job's body knows about its run.
pub struct RunCtx {
    /// Cancelled at shutdown.
    pub stop: CancellationToken,
    /// Started by its schedule (not by someone asking for it now), so a job with work of its
    /// own cadence (the crawler's per-source intervals) may do only what is due.
    pub scheduled: bool,
}

/// A job and when it runs.
#[derive(Clone)]
pub struct Job {
    /// Unique name, e.g. `retention`.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// The cron expression as configured.
    pub schedule: String,
    /// The work.
    pub run: JobFn,
}

/// One recorded run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobRun {
    /// Run id (increasing).
    pub id: u64,
    /// Job name.
    pub job: String,
    /// `schedule` or `manual`.
    #[serde(default)]
    pub trigger: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time.
    pub finished_at: DateTime<Utc>,
    /// Whether it succeeded.
    pub ok: bool,
    /// Summary or error.
    pub message: String,
}

/// A job as `GET /api/v1/jobs` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    /// Job name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Cron expression.
    pub schedule: String,
    /// Next scheduled start.
    pub next_run: Option<DateTime<Utc>>,
    /// Most recent run.
    pub last_run: Option<JobRun>,
    /// Whether it is running now.
    pub running: bool,
}

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no job named '{0}'")]
    Unknown(String),
    #[error("job '{0}' is already running")]
    Busy(String),
    #[error("job '{name}' has an invalid schedule '{schedule}': {reason}")]
    Schedule {
        name: String,
        schedule: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

const RUNS: Table<u64, JobRun> = Table::new("jobs_runs");

struct Inner {
    jobs: Vec<(Job, cron::Schedule)>,
    store: Store,
    running: Mutex<HashSet<&'static str>>,
    keep: usize,
    /// Fired at shutdown; running jobs see it.
    stop: CancellationToken,
}

/// Handle to the scheduler; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl Scheduler {
    /// Validates every schedule; `keep` is how many runs to keep per job.
    pub fn new(store: Store, jobs: Vec<Job>, keep: usize) -> Result<Scheduler, JobError> {
        let mut parsed = Vec::new();
        for job in jobs {
            let s = cron::Schedule::from_str(&job.schedule).map_err(|e| JobError::Schedule {
                name: job.name.into(),
                schedule: job.schedule.clone(),
                reason: e.to_string(),
            })?;
            parsed.push((job, s));
        }
        Ok(Scheduler {
            inner: Arc::new(Inner {
                jobs: parsed,
                store,
                running: Mutex::default(),
                keep: keep.max(1),
                stop: CancellationToken::new(),
            }),
        })
    }

    /// Starts the scheduling loop under `supervisor`; its shutdown cancels running jobs too.
    pub fn start(&self, supervisor: &Supervisor) {
        let me = self.clone();
        supervisor.spawn("scheduler", move |stop| async move {
            let jobs_stop = me.inner.stop.clone();
            tokio::spawn({
                let stop = stop.clone();
                async move {
                    stop.cancelled().await;
                    jobs_stop.cancel();
                }
            });
            loop {
                let now = Utc::now();
                let next = me
                    .inner
                    .jobs
                    .iter()
                    .filter_map(|(j, s)| s.after(&now).next().map(|t| (t, j.name)))
                    .min();
                let Some((at, name)) = next else {
                    stop.cancelled().await;
                    return Ok(());
                };
                let wait = (at - now).to_std().unwrap_or_default();
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
                let run = tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    run = me.run_now(name, "schedule") => run,
                };
                match run {
                    Ok(run) if !run.ok => {
                        tracing::warn!(job = name, message = %run.message, "job failed")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(job = name, error = %e, "job not run"),
                }
            }
        });
    }

    /// Starts a job in the background and returns at once; the run is recorded when it ends
    /// (see [`Scheduler::status`]). Fails if there is no such job or it is already running.
    pub fn start_now(&self, name: &str, trigger: &str) -> Result<(), JobError> {
        let job = self.claim(name)?;
        let me = self.clone();
        let trigger = trigger.to_string();
        tokio::spawn(async move {
            match me.execute(job, trigger).await {
                Ok(run) if !run.ok => {
                    tracing::warn!(job = %run.job, message = %run.message, "job failed")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "job run not recorded"),
            }
        });
        Ok(())
    }

    /// Runs a job now (in the blocking pool), waits for it and records the run.
    pub async fn run_now(&self, name: &str, trigger: &str) -> Result<JobRun, JobError> {
        let job = self.claim(name)?;
        self.execute(job, trigger.to_string()).await
    }

    /// The job called `name`, marked running (one run of a job at a time).
    fn claim(&self, name: &str) -> Result<Job, JobError> {
        let (job, _) = self
            .inner
            .jobs
            .iter()
            .find(|(j, _)| j.name == name)
            .cloned()
            .ok_or_else(|| JobError::Unknown(name.chars().take(100).collect()))?;
        let mut running = self
            .inner
            .running
            .lock()
            .map_err(|_| JobError::Busy(name.into()))?;
        if !running.insert(job.name) {
            return Err(JobError::Busy(name.into()));
        }
        Ok(job)
    }

    /// Runs a claimed job and records the run.
    async fn execute(&self, job: Job, trigger: String) -> Result<JobRun, JobError> {
        let inner = self.inner.clone();
        let name = job.name;
        let result = tokio::task::spawn_blocking(move || {
            let started_at = Utc::now();
            let ctx = RunCtx {
                stop: inner.stop.clone(),
                scheduled: trigger == "schedule",
            };
            let outcome = (job.run)(&inner.store, &ctx);
            let finished_at = Utc::now();
            let (ok, message) = match outcome {
                Ok(m) => (true, m),
                Err(m) => (false, m),
            };
            let keep = inner.keep;
            inner.store.write(|w| {
                let id = w.next_id("job_runs")?;
                let run = JobRun {
                    id,
                    job: job.name.into(),
                    trigger,
                    started_at,
                    finished_at,
                    ok,
                    message,
                };
                w.put(&RUNS, &id, &run)?;
                // Keep the newest `keep` runs of this job.
                let mut mine: Vec<u64> = w
                    .all(&RUNS)?
                    .into_iter()
                    .filter(|(_, r)| r.job == job.name)
                    .map(|(k, _)| k)
                    .collect();
                if mine.len() > keep {
                    mine.sort_unstable();
                    for old in &mine[..mine.len() - keep] {
                        w.delete(&RUNS, old)?;
                    }
                }
                Ok::<_, StoreError>(run)
            })
        })
        .await;
        if let Ok(mut r) = self.inner.running.lock() {
            r.remove(name);
        }
        let run = result.map_err(|e| JobError::Store(StoreError::Join(e.to_string())))?;
        Ok(run?)
    }

    /// Every job with its schedule, last run and next run.
    pub fn status(&self) -> Result<Vec<JobStatus>, StoreError> {
        let running = self
            .inner
            .running
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        let now = Utc::now();
        self.inner.store.read(|r| {
            let mut out = Vec::new();
            for (job, schedule) in &self.inner.jobs {
                let mut last = None;
                r.scan(
                    &RUNS,
                    Scan {
                        reverse: true,
                        ..Scan::default()
                    },
                    |_, run| {
                        if run.job == job.name {
                            last = Some(run);
                            return Ok(false);
                        }
                        Ok(true)
                    },
                )?;
                out.push(JobStatus {
                    name: job.name,
                    description: job.description,
                    schedule: job.schedule.clone(),
                    next_run: schedule.after(&now).next(),
                    last_run: last,
                    running: running.contains(job.name),
                });
            }
            Ok(out)
        })
    }

    /// The most recent runs of every job, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<JobRun>, StoreError> {
        let mut out = Vec::new();
        self.inner.store.read(|r| {
            r.scan(
                &RUNS,
                Scan {
                    reverse: true,
                    ..Scan::default()
                },
                |_, run| {
                    out.push(run);
                    Ok(out.len() < limit)
                },
            )
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[]).unwrap();
        (dir, store)
    }

    /// A job on `schedule` whose every run succeeds saying `says`.
    fn job(name: &'static str, schedule: &str, says: &'static str) -> Job {
        Job {
            name,
            description: "test",
            schedule: schedule.into(),
            run: Arc::new(move |_, _| Ok(says.into())),
        }
    }

    #[tokio::test]
    async fn runs_are_recorded_and_pruned() {
        let (_dir, store) = empty_store();
        let job = job("count", "0 0 0 1 1 *", "did it");
        let failing = Job {
            name: "fails",
            run: Arc::new(|_, _| Err("nope".into())),
            ..job.clone()
        };
        let s = Scheduler::new(store, vec![job, failing], 2).unwrap();
        for _ in 0..3 {
            s.run_now("count", "manual").await.unwrap();
        }
        let bad = s.run_now("fails", "manual").await.unwrap();
        assert!(!bad.ok);
        assert_eq!(bad.message, "nope");
        let st = s.status().unwrap();
        let count = st.iter().find(|j| j.name == "count").unwrap();
        assert_eq!(count.last_run.as_ref().unwrap().message, "did it");
        assert!(count.next_run.is_some());
        assert_eq!(
            s.history(10)
                .unwrap()
                .iter()
                .filter(|r| r.job == "count")
                .count(),
            2
        );
        assert!(matches!(
            s.run_now("nothing", "manual").await,
            Err(JobError::Unknown(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_loop_runs_jobs_on_their_schedule() {
        let (_dir, store) = empty_store();
        let every_second = job("tick", "* * * * * *", "tock");
        let s = Scheduler::new(store, vec![every_second], 10).unwrap();
        let sup = Supervisor::new();
        s.start(&sup);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let runs = s.history(10).unwrap();
            if runs.len() >= 2 {
                assert!(runs
                    .iter()
                    .all(|r| r.trigger == "schedule" && r.ok && r.message == "tock"));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the scheduler did not run the job: {runs:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        sup.shutdown(std::time::Duration::from_secs(5)).await;
        assert_eq!(
            sup.states()["scheduler"],
            TaskState::Stopped,
            "the loop stops on cancellation"
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        let (_dir, store) = empty_store();
        let job = job("x", "whenever", "");
        assert!(matches!(
            Scheduler::new(store, vec![job], 5),
            Err(JobError::Schedule { .. })
        ));
    }
}

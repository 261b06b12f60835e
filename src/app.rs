//! Assembly: the one place that knows every domain. It lists the migrations, routes, search
//! sources and jobs of all domains and wires them onto the shared infrastructure. `serve`, the
//! administrative commands and the in-process tests all start here.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::admission::Admission;
use crate::config::Config;
use crate::http::metrics::Metrics;
use crate::http::{AppState, Routes};
use crate::jobs::{Job, RunCtx, Scheduler, Supervisor};
use crate::search::{Search, Source};
use crate::secrets::Sealer;
use crate::store::{Migration, Store, StoreError};
use crate::{audit, auth, clusters, system};

/// Images the native-scans job pulls per run (the rest wait for the next run).
const NATIVE_SCANS_PER_RUN: usize = 50;

/// Every schema migration, from every domain.
pub fn migrations() -> Vec<Migration> {
    let mut m = auth::migrations();
    m.extend(crate::compliance::migrations());
    m
}

/// Opens the store of `data_dir` at the newest schema.
pub fn open_store(data_dir: &std::path::Path) -> Result<Store, StoreError> {
    Store::open(data_dir, &migrations())
}

/// The complete route table.
pub fn routes(config: &Config) -> Routes {
    let mut r = Routes::new();
    // First: actix tries routes in order, and admission reviews are the hot path (matching the
    // routes before them was a fifth of a review's CPU).
    crate::admission::routes(&mut r);
    system::routes(&mut r, config);
    auth::routes(&mut r);
    clusters::routes(&mut r);
    crate::workloads::api::routes(&mut r);
    crate::audits::api::routes(&mut r);
    crate::kubesec::api::routes(&mut r);
    crate::gatekeeper::api::routes(&mut r);
    crate::runtime::api::routes(&mut r);
    crate::dar::api::routes(&mut r);
    crate::compliance::routes(&mut r);
    crate::compliance::m9sweeper_routes(&mut r);
    crate::compliance::pages(&mut r);
    crate::registries::routes(&mut r);
    crate::trust::api::routes(&mut r);
    crate::datamap::routes(&mut r);
    audit::routes(&mut r);
    crate::posture::pages::routes(&mut r);
    crate::vulndb::api::routes(&mut r);
    crate::vulndb::pages::routes(&mut r);
    crate::sso::api::routes(&mut r);
    crate::sso::pages::routes(&mut r);
    crate::sso::flow::routes(&mut r);
    r
}

/// What the search index is built from.
pub fn search_sources() -> Vec<Source> {
    let mut s = vec![clusters::search_source()];
    s.extend(crate::compliance::search::sources());
    s.push(crate::datamap::search_source());
    s.push(crate::workloads::search::source());
    s.extend(crate::audits::search::sources());
    s.extend(crate::gatekeeper::search::sources());
    s.push(crate::dar::search::source());
    s
}

/// The scheduled jobs.
pub fn jobs(
    config: &Config,
    outbound: &crate::outbound::Outbound,
    sealer: Arc<Sealer>,
    admission: Arc<Admission>,
    pods: Arc<crate::workloads::verdicts::PodMetrics>,
    search: Search,
    runtime: Arc<crate::runtime::api::Runtime>,
) -> Vec<Job> {
    let days = config.retention.audit_log_days;
    let vulndb = config.data_dir.join("vulndb.redb");
    let crawl_search = search.clone();
    vec![
        Job {
            name: "exceptions",
            description: "Sets exceptions past their end date inactive",
            schedule: config.jobs.exceptions.clone(),
            run: Arc::new(|store: &Store, _: &RunCtx| {
                let n = crate::compliance::service::deactivate_expired(store)
                    .map_err(|e| e.to_string())?;
                let m = crate::compliance::service::notify_expiring(store)
                    .map_err(|e| e.to_string())?;
                Ok(format!(
                    "{n} expired exceptions set inactive; {m} ending tomorrow announced"
                ))
            }),
        },
        Job {
            name: "rescans",
            description: "Queues images whose policy rescan period has passed",
            schedule: config.jobs.rescans.clone(),
            run: Arc::new(|store: &Store, _: &RunCtx| {
                let n = crate::compliance::service::queue_due_rescans(store)
                    .map_err(|e| e.to_string())?;
                Ok(format!("{n} images queued for a rescan"))
            }),
        },
        Job {
            name: "native-scans",
            description: "Pulls and scans queued images with the native scanner",
            schedule: config.jobs.native_scans.clone(),
            run: {
                let (sealer, vulndb, outbound) = (sealer.clone(), vulndb.clone(), outbound.clone());
                Arc::new(move |store: &Store, ctx: &RunCtx| {
                    crate::compliance::rescan::run(
                        store,
                        &sealer,
                        &outbound,
                        &vulndb,
                        NATIVE_SCANS_PER_RUN,
                        &ctx.stop,
                    )
                })
            },
        },
        Job {
            name: "kube-sync",
            description: "Lists the pods of clusters connected to their API servers",
            schedule: config.jobs.kube_sync.clone(),
            run: Arc::new({
                let sealer = sealer.clone();
                move |store: &Store, _: &RunCtx| {
                    let result = clusters::sync::sync_all(store, sealer.clone());
                    for l in clusters::sync::links(store).unwrap_or_default() {
                        crate::workloads::search::reindex(&search, store, l.cluster);
                    }
                    result
                }
            }),
        },
        Job {
            name: "retention",
            description:
                "Deletes audit-log entries past retention.audit_log_days and expired sessions",
            schedule: config.jobs.retention.clone(),
            run: Arc::new(move |store: &Store, _: &RunCtx| {
                let entries = audit::prune(store, days).map_err(|e| e.to_string())?;
                let sessions = auth::prune_sessions(store).map_err(|e| e.to_string())?;
                let decisions = crate::admission::prune(store, days).map_err(|e| e.to_string())?;
                crate::notify::prune(store, days).map_err(|e| e.to_string())?;
                Ok(format!(
                "deleted {entries} audit-log entries and {decisions} admission decisions older than {days} days, and {sessions} expired sessions"
            ))
            }),
        },
        Job {
            name: "pod-compliance",
            description: "Records each cluster's pod compliance per namespace for the trends",
            schedule: config.jobs.pod_compliance.clone(),
            run: {
                let admission = admission.clone();
                Arc::new(move |store: &Store, _: &RunCtx| {
                    crate::workloads::verdicts::run_job(store, &admission, &pods)
                })
            },
        },
        Job {
            name: "gatekeeper-audit",
            description:
                "Audits every cluster with Gatekeeper constraints against its last synced objects",
            schedule: config.jobs.gatekeeper_audit.clone(),
            run: {
                let sealer = sealer.clone();
                Arc::new(move |store: &Store, _: &RunCtx| {
                    let audited =
                        crate::gatekeeper::audit::run_all(store).map_err(|e| e.to_string())?;
                    let pushed =
                        crate::gatekeeper::push::refresh_pushed_blocking(store, sealer.clone());
                    Ok(if pushed.is_empty() {
                        audited
                    } else {
                        format!("{audited}; {}", pushed.join("; "))
                    })
                })
            },
        },
        Job {
            name: "falco-retention",
            description:
                "Deletes Falco events past retention.falco_days or beyond retention.falco_max_mib",
            schedule: config.jobs.falco_retention.clone(),
            run: {
                let (days, mib) = (config.retention.falco_days, config.retention.falco_max_mib);
                Arc::new(move |store: &Store, _: &RunCtx| {
                    let p = crate::runtime::retention::enforce(
                        store,
                        days,
                        mib.saturating_mul(1 << 20),
                    )
                    .map_err(|e| e.to_string())?;
                    if let Some(last) = p.last_deleted {
                        runtime.index.drop_through(last);
                        runtime.acks.drop_through(last);
                    }
                    crate::runtime::alerts::prune(store, days).map_err(|e| e.to_string())?;
                    Ok(format!(
                        "{} Falco events deleted; {} kept ({} MiB); longest transaction {} ms",
                        p.deleted,
                        p.left.events,
                        p.left.bytes >> 20,
                        p.longest.as_millis()
                    ))
                })
            },
        },
        Job {
            name: "falco-digest",
            description: "Mails the digest of Falco events when alerting is set to a daily digest",
            schedule: config.jobs.falco_digest.clone(),
            run: {
                let base = config.http.public_url.clone();
                Arc::new(move |store: &Store, _: &RunCtx| {
                    crate::runtime::alerts::digest(store, &base).map_err(|e| e.to_string())
                })
            },
        },
        Job {
            name: "crawl",
            description: "Crawls the configured data stores for sensitive data at rest",
            schedule: config.jobs.crawl.clone(),
            run: {
                let (crawl, detect) = (config.crawl.clone(), config.detect.clone());
                let (sealer, outbound) = (sealer.clone(), outbound.clone());
                Arc::new(move |store: &Store, ctx: &RunCtx| {
                    crate::dar::run_job(
                        store,
                        &sealer,
                        &crawl_search,
                        &crawl,
                        &detect,
                        &outbound,
                        ctx.scheduled,
                    )
                })
            },
        },
        Job {
            name: "posture",
            description: "Judges every image in every cluster for the dashboard and its trends",
            schedule: config.jobs.posture.clone(),
            run: Arc::new(move |store: &Store, _: &RunCtx| {
                crate::posture::run_job(store, &admission, &vulndb)
            }),
        },
    ]
}

/// Runs the embedded sensor (`[sensor] interfaces`) until shutdown, merging what it sees into
/// the data map every `store_every_seconds`.
fn start_sensor(st: &web::Data<AppState>) {
    let (store, config) = (st.store.clone(), st.config.clone());
    let (search, metrics) = (
        st.search.clone(),
        st.domains.get::<crate::datamap::DataMapMetrics>(),
    );
    let counters = st
        .domains
        .get::<crate::sensor::live::LiveCounters>()
        .map(|c| (*c).clone())
        .unwrap_or_default();
    st.supervisor.spawn("sensor", move |stop| async move {
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let flag = flag.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let result = tokio::task::spawn_blocking(move || {
            let engine =
                crate::detect::Engine::from_config(&config.detect).map_err(|p| p.join("; "))?;
            let interfaces: Vec<String> = config
                .sensor
                .interfaces
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let opts = crate::sensor::live::Capture {
                interfaces,
                workers: config.sensor.workers as usize,
                every: Duration::from_secs(config.sensor.store_every_seconds.max(1)),
                stop: flag,
                counters,
                skip: crate::sensor::Skip::from_config(&config.sensor),
                body_cap: config.sensor.max_body_bytes as usize,
                rescan: Duration::from_secs(config.sensor.rescan_seconds.max(1)),
            };
            crate::sensor::live::capture(
                &opts,
                &engine,
                &mut |names| tracing::info!(interfaces = %names.join(","), "embedded sensor capturing"),
                &mut |batch| {
                    // The same path as a remote sensor's events.
                    let events: Vec<crate::datamap::SensorEvent> = batch
                        .entries()
                        .into_iter()
                        .filter_map(|e| serde_json::to_value(e).ok())
                        .filter_map(|v| serde_json::from_value(v).ok())
                        .collect();
                    match crate::datamap::ingest(&store, "embedded sensor", &events) {
                        Ok(r) => {
                            crate::datamap::reindex(&search, &r.touched);
                            if let Some(m) = &metrics {
                                m.record(&events, &r);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "embedded sensor: storing events failed"),
                    }
                },
            )
            .map(|_| ())
        })
        .await
        .map_err(|e| e.to_string())?;
        watcher.abort();
        result
    });
}

/// An opened appliance: state and routes, not yet listening.
pub struct Appliance {
    /// Shared state of every handler.
    pub state: web::Data<AppState>,
    /// The route table.
    pub routes: Routes,
}

impl Appliance {
    /// Opens the store and the index and prepares the scheduler. Nothing runs yet.
    pub fn open(config: Config) -> anyhow::Result<Appliance> {
        let store = open_store(&config.data_dir)?;
        let search = Search::open(
            &Search::dir(&config.data_dir),
            store.clone(),
            search_sources(),
        )?;
        let sealer = Arc::new(Sealer::open(&config.data_dir)?);
        let declared = crate::sso::apply_config(&store, &sealer, &config.sso.providers)
            .map_err(|e| anyhow::anyhow!("sign-on providers in the configuration: {e}"))?;
        if !declared.is_empty() {
            tracing::info!(providers = %declared.join(","), "sign-on providers from the configuration");
        }
        let metrics = Arc::new(Metrics::new());
        let outbound = config.outbound().map_err(|e| anyhow::anyhow!(e))?;
        let bundle_keys = config.bundles.key_file.trim();
        if !bundle_keys.is_empty() {
            crate::vulndb::bundle::read_keys(std::path::Path::new(bundle_keys))
                .map_err(|e| anyhow::anyhow!("bundles.key_file: {e}"))?;
        }
        let admission = Arc::new(Admission::new(store.clone(), outbound.clone(), &metrics));
        let pods = Arc::new(crate::workloads::verdicts::PodMetrics::new(&metrics));
        let audits = crate::audits::metrics::AuditMetrics::new(&metrics);
        crate::gatekeeper::metrics::register(&metrics);
        audits.refresh_all(&store);
        let runtime = Arc::new(crate::runtime::api::Runtime::start(
            &store,
            &metrics,
            config.http.public_url.clone(),
            crate::runtime::retention::Limits {
                days: config.retention.falco_days,
                max_bytes: config.retention.falco_max_mib.saturating_mul(1 << 20),
            },
        )?);
        let scheduler = Scheduler::new(
            store.clone(),
            jobs(
                &config,
                &outbound,
                sealer.clone(),
                admission.clone(),
                pods.clone(),
                search.clone(),
                runtime.clone(),
            ),
            config.retention.job_runs_kept,
        )?;
        let routes = routes(&config);
        let mut domains = crate::http::DomainData::default();
        auth::domain_data(&config, &mut domains);
        clusters::domain_data(&mut domains);
        domains.insert_shared(sealer);
        domains.insert(outbound);
        domains.insert_shared(admission);
        domains.insert_shared(pods);
        domains.insert(audits);
        domains.insert_shared(runtime);
        domains.insert(crate::images::ListCache::default());
        domains.insert(crate::sso::oidc::PendingLogins::default());
        domains.insert(crate::datamap::DataMapMetrics::new(&metrics));
        let sensor_counters = crate::sensor::live::LiveCounters::default();
        sensor_counters.register(&metrics);
        domains.insert(sensor_counters);
        let state = AppState {
            domains,
            auth: auth::StoreAuthenticator::shared(store.clone()),
            nav: Arc::new(routes.nav_entries().to_vec()),
            config: Arc::new(config),
            store,
            search,
            metrics,
            scheduler,
            supervisor: Supervisor::new(),
            flashes: Default::default(),
            body_slots: Default::default(),
        };
        Ok(Appliance {
            state: web::Data::new(state),
            routes,
        })
    }

    /// Starts the scheduler and, if needed, the search-index rebuild.
    pub fn start_background(&self) {
        let st = &self.state;
        st.scheduler.start(&st.supervisor);
        crate::admission::start(st);
        let (store, smtp, outbound) = (st.store.clone(), st.config.smtp.clone(), st.outbound());
        st.supervisor.spawn("mailer", move |stop| async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                if let Err(e) = crate::notify::deliver(&store, &smtp, &outbound).await {
                    tracing::warn!(error = %e, "mailer");
                }
            }
        });
        st.supervisor.spawn("memory-trim", |stop| async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
                let _ = tokio::task::spawn_blocking(crate::memory::trim).await;
            }
        });
        if !st.config.sensor.interfaces.trim().is_empty() {
            start_sensor(st);
        }
        if st.search.needs_rebuild() {
            let search = st.search.clone();
            st.supervisor
                .spawn_oneshot("search-rebuild", move |_| async move {
                    let n = tokio::task::spawn_blocking(move || search.rebuild())
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    tracing::info!(documents = n, "search index rebuilt");
                    Ok(())
                });
        }
    }

    /// Serves HTTPS until SIGTERM or SIGINT, then shuts down in order: stop accepting, drain
    /// requests (up to 5 s), stop background tasks (up to 3 s), mark the index clean. Whatever a
    /// handler or job is doing, the process is gone [`STOP_DEADLINE`] after the signal.
    pub async fn serve(self) -> anyhow::Result<()> {
        let (tls, certs) = crate::http::tls::server_config(&self.state.config)?;
        self.start_background();
        let config = self.state.config.clone();
        self.state
            .supervisor
            .spawn("tls-renewal", move |stop| async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
                    }
                    let (c, config) = (certs.clone(), config.clone());
                    match tokio::task::spawn_blocking(move || c.refresh(&config)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::warn!(error = %e, "TLS certificate not renewed; retrying tomorrow"),
                        Err(e) => tracing::warn!(error = %e, "TLS renewal"),
                    }
                }
            });
        let stop = self.state.supervisor.token();
        let signal_stop = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            exit_after(STOP_DEADLINE);
            signal_stop.cancel();
        });
        let state = self.state.clone();
        crate::http::serve(self.state.clone(), self.routes, tls, stop.clone()).await?;
        stop.cancel();
        state.supervisor.shutdown(Duration::from_secs(3)).await;
        let search = state.search.clone();
        tokio::task::spawn_blocking(move || search.close()).await??;
        tracing::info!("stopped");
        Ok(())
    }
}

/// From SIGTERM to a stopped process, at most.
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Ends the process `after` from now if it has not ended by then. A plain thread, so that
/// nothing stuck on the runtime (a handler in a loop, a blocking call) can delay it. Everything
/// acknowledged is already committed; the search index, not marked clean, is rebuilt at the next
/// start.
fn exit_after(after: Duration) {
    let spawned = std::thread::Builder::new()
        .name("stop-deadline".into())
        .spawn(move || {
            std::thread::sleep(after);
            tracing::warn!(
                seconds = after.as_secs(),
                "shutdown did not finish in time; exiting now"
            );
            std::process::exit(0);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no stop-deadline thread; shutdown waits for every task");
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on SIGKILL; nothing else to do.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

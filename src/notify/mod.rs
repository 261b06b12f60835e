//! Email notifications through an outbox.
//!
//! Domains put a [`Mail`] in the outbox inside the same write transaction as the event that
//! causes it ([`enqueue`]), so a committed event always has its mail and a rolled-back one never
//! does. The mailer ([`deliver`], run every few seconds by a background task) sends pending mail
//! over SMTP and records each attempt; failures are retried with backoff, up to 10 attempts, and
//! stay visible in the outbox. Sending needs `[smtp] host` in the configuration; without it, mail
//! waits in the outbox.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::SmtpConfig;
use crate::store::{Scan, Store, StoreError, Table, WriteTx};

/// A message waiting for (or done with) delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mail {
    pub id: u64,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: String,
    #[serde(default)]
    pub next_attempt: Option<DateTime<Utc>>,
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
}

const OUTBOX: Table<u64, Mail> = Table::new("notify_outbox");
const MAX_ATTEMPTS: u32 = 10;

/// Puts a mail in the outbox (inside the caller's transaction). Without recipients, nothing.
pub fn enqueue(
    w: &WriteTx,
    to: Vec<String>,
    subject: &str,
    body: &str,
) -> Result<Option<u64>, StoreError> {
    if to.is_empty() {
        return Ok(None);
    }
    let id = w.next_id("notify_outbox")?;
    let mail = Mail {
        id,
        to,
        subject: subject.chars().take(200).collect(),
        body: body.to_string(),
        created_at: Utc::now(),
        attempts: 0,
        last_error: String::new(),
        next_attempt: None,
        sent_at: None,
    };
    w.put(&OUTBOX, &id, &mail)?;
    Ok(Some(id))
}

/// The outbox, newest first.
pub fn outbox(store: &Store, limit: usize) -> Result<Vec<Mail>, StoreError> {
    let mut out = Vec::new();
    store.read(|r| {
        r.scan(
            &OUTBOX,
            Scan {
                reverse: true,
                ..Scan::default()
            },
            |_, m| {
                out.push(m);
                Ok(out.len() < limit)
            },
        )
    })?;
    Ok(out)
}

/// Deletes sent mail older than `days`.
pub fn prune(store: &Store, days: u64) -> Result<u64, StoreError> {
    let cutoff = Utc::now() - chrono::Duration::days(days.min(100_000) as i64);
    store.write(|w| w.retain(&OUTBOX, |_, m| m.sent_at.is_none_or(|s| s >= cutoff)))
}

/// What a delivery round did.
#[derive(Debug, Default, PartialEq)]
pub struct Delivery {
    pub sent: usize,
    pub failed: usize,
}

/// Sends every due mail; records each outcome. Does nothing when SMTP is not configured.
pub async fn deliver(
    store: &Store,
    smtp: &SmtpConfig,
    outbound: &crate::outbound::Outbound,
) -> Result<Delivery, StoreError> {
    let mut report = Delivery::default();
    if smtp.host.is_empty() {
        return Ok(report);
    }
    let now = Utc::now();
    let s = store.clone();
    let due: Vec<Mail> = tokio::task::spawn_blocking(move || {
        s.read(|r| r.all(&OUTBOX)).map(|all| {
            all.into_iter()
                .map(|(_, m)| m)
                .filter(|m| {
                    m.sent_at.is_none()
                        && m.attempts < MAX_ATTEMPTS
                        && m.next_attempt.is_none_or(|t| t <= now)
                })
                .collect()
        })
    })
    .await
    .map_err(|e| StoreError::Join(e.to_string()))??;
    if due.is_empty() {
        return Ok(report);
    }
    let transport = match transport(smtp, outbound) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "SMTP is misconfigured; mail waits in the outbox");
            return Ok(report);
        }
    };
    for mut mail in due {
        let outcome = match message(smtp, &mail) {
            Ok(m) if outbound.proxy_for("https", &smtp.host).is_some() => {
                send_through_proxy(smtp, outbound, &m).await
            }
            Ok(m) => {
                use lettre::AsyncTransport;
                transport
                    .send(m)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        mail.attempts += 1;
        match outcome {
            Ok(()) => {
                mail.sent_at = Some(Utc::now());
                mail.last_error.clear();
                report.sent += 1;
            }
            Err(e) => {
                tracing::warn!(mail = mail.id, attempt = mail.attempts, error = %e, "mail not sent");
                mail.last_error = e;
                // 30 s, 1 min, 2 min, ... capped at an hour.
                let wait = 30i64 * (1i64 << mail.attempts.min(7));
                mail.next_attempt = Some(Utc::now() + chrono::Duration::seconds(wait.min(3600)));
                report.failed += 1;
            }
        }
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.write(|w| w.put(&OUTBOX, &mail.id, &mail)))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))??;
    }
    Ok(report)
}

type Transport = lettre::AsyncSmtpTransport<lettre::Tokio1Executor>;

fn transport(smtp: &SmtpConfig, outbound: &crate::outbound::Outbound) -> Result<Transport, String> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::Tls;
    let builder = match smtp.security.as_str() {
        "tls" => Transport::relay(&smtp.host).map_err(|e| e.to_string())?,
        "starttls" => Transport::starttls_relay(&smtp.host).map_err(|e| e.to_string())?,
        _ => Transport::builder_dangerous(&smtp.host),
    };
    let builder = if smtp.security != "none" && !outbound.extra_roots().is_empty() {
        let params = tls_parameters(smtp, outbound)?;
        builder.tls(if smtp.security == "tls" {
            Tls::Wrapper(params)
        } else {
            Tls::Required(params)
        })
    } else {
        builder
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(std::time::Duration::from_secs(20)));
    if !smtp.username.is_empty() {
        builder = builder.credentials(Credentials::new(
            smtp.username.clone(),
            smtp.password.clone(),
        ));
    }
    Ok(builder.build())
}

/// TLS for the relay: the system's roots and the appliance's extra CAs (an in-house relay's).
fn tls_parameters(
    smtp: &SmtpConfig,
    outbound: &crate::outbound::Outbound,
) -> Result<lettre::transport::smtp::client::TlsParameters, String> {
    use lettre::transport::smtp::client::{Certificate, TlsParameters};
    let mut params = TlsParameters::builder(smtp.host.clone());
    for der in outbound.extra_roots() {
        params = params
            .add_root_certificate(Certificate::from_der(der.to_vec()).map_err(|e| e.to_string())?);
    }
    params.build_rustls().map_err(|e| e.to_string())
}

/// One mail over a tunnel the HTTPS proxy opens (`CONNECT relay:port`): plain or STARTTLS (the
/// TLS session runs end to end with the relay, through the tunnel).
async fn send_through_proxy(
    smtp: &SmtpConfig,
    outbound: &crate::outbound::Outbound,
    message: &lettre::Message,
) -> Result<(), String> {
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::transport::smtp::client::AsyncSmtpConnection;
    use lettre::transport::smtp::extension::ClientId;
    if smtp.security == "tls" {
        return Err(
            "implicit TLS (smtp.security = \"tls\") cannot go through the proxy: use starttls, or list the relay in outbound.no_proxy"
                .into(),
        );
    }
    let stream = outbound
        .connect_tcp(&smtp.host, smtp.port, std::time::Duration::from_secs(20))
        .await
        .map_err(|e| e.to_string())?;
    let hello = ClientId::default();
    let work = async {
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello)
            .await
            .map_err(|e| e.to_string())?;
        if smtp.security == "starttls" {
            if !conn.can_starttls() {
                return Err("the relay does not offer STARTTLS".to_string());
            }
            conn.starttls(tls_parameters(smtp, outbound)?, &hello)
                .await
                .map_err(|e| e.to_string())?;
        }
        if !smtp.username.is_empty() {
            let creds = Credentials::new(smtp.username.clone(), smtp.password.clone());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                .await
                .map_err(|e| e.to_string())?;
        }
        conn.send(message.envelope(), &message.formatted())
            .await
            .map_err(|e| e.to_string())?;
        let _ = conn.quit().await;
        Ok(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), work)
        .await
        .map_err(|_| "the relay did not finish within 60 s".to_string())?
}

/// The mail as a message from `smtp.from`.
fn message(smtp: &SmtpConfig, mail: &Mail) -> Result<lettre::Message, String> {
    let mut b = lettre::Message::builder()
        .from(smtp.from.parse().map_err(|e| format!("smtp.from: {e}"))?)
        .subject(mail.subject.clone())
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for to in &mail.to {
        b = b.to(to.parse().map_err(|e| format!("recipient {to}: {e}"))?);
    }
    b.body(mail.body.clone()).map_err(|e| e.to_string())
}

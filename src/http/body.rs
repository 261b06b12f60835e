//! Request bodies. Every body passes the [`guard`] middleware: it must arrive within
//! `http.body_timeout_seconds`, or after that at no less than `http.body_min_bytes_per_second` on
//! average, and one source address may send only `http.max_bodies_per_address` bodies at once.
//! So a caller trickling bytes (a byte every few seconds on hundreds of connections) holds
//! neither memory nor workers for long. Routes that take a raw body read it with [`read_body`],
//! which refuses an oversized body from its `Content-Length` before reading any of it.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, ResponseError};
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use super::{ApiError, AppState};

/// Bodies being received, per source address.
#[derive(Default)]
pub struct BodySlots {
    in_flight: Mutex<HashMap<IpAddr, usize>>,
}

/// One body being received; gives its slot back when dropped.
struct Slot {
    slots: Arc<BodySlots>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.slots.in_flight.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

impl BodySlots {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut m = self.in_flight.lock().ok()?;
        let n = m.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

/// The error a body that arrived too slowly ends with.
fn too_slow() -> PayloadError {
    PayloadError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the request body arrived too slowly",
    ))
}

/// Whether `e` is the guard cutting off a slow body.
pub fn is_too_slow(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

/// A payload that fails once its deadline passes; the deadline moves out as bytes arrive.
struct Guarded {
    inner: Payload,
    start: Instant,
    grace: Duration,
    min_rate: u64,
    received: u64,
    timer: Pin<Box<Sleep>>,
    slot: Option<Slot>,
    /// Cut off: the stream has ended for good.
    cut: bool,
}

impl Guarded {
    fn deadline(&self) -> Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        self.start + self.grace + earned
    }
}

impl Stream for Guarded {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.cut {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.received = self.received.saturating_add(chunk.len() as u64);
                let d = self.deadline();
                self.timer.as_mut().reset(d);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => {
                self.slot = None;
                Poll::Ready(other)
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.slot = None;
                    self.cut = true;
                    Poll::Ready(Some(Err(too_slow())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

fn may_have_body(req: &ServiceRequest) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_none_or(|n| n > 0)
}

/// Middleware: puts every request body under a deadline and a per-address slot.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if !may_have_body(&req) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let http = &state.config.http;
    let slot = match req.peer_addr().map(|a| a.ip()) {
        Some(ip) => match state.body_slots.take(ip, http.max_bodies_per_address) {
            Some(slot) => Some(slot),
            None => {
                let e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_bodies",
                    format!(
                        "this address is already sending {} request bodies; try again when one ends",
                        http.max_bodies_per_address
                    ),
                );
                let mut res = e.error_response();
                res.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                res.head_mut()
                    .set_connection_type(actix_web::http::ConnectionType::Close);
                return Ok(req.into_response(res).map_into_right_body());
            }
        },
        None => None,
    };
    let grace = Duration::from_secs(http.body_timeout_seconds);
    let start = Instant::now();
    let guarded = Guarded {
        inner: req.take_payload(),
        start,
        grace,
        min_rate: http.body_min_bytes_per_second.max(1),
        received: 0,
        timer: Box::pin(tokio::time::sleep_until(start + grace)),
        slot,
        cut: false,
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(guarded),
    });
    Ok(next.call(req).await?.map_into_left_body())
}

/// Reads a request body of at most `limit` bytes: 413 at once when `Content-Length` says more,
/// 413 as soon as more arrives, 408 when the guard cuts a slow body off. The buffer is sized
/// from `Content-Length`, so a large upload is held once, not grown by copying.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes (http.max_scan_bytes for uploads)"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = web::BytesMut::with_capacity(declared.map_or(64 * 1024, |n| n as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            if is_too_slow(&e) {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body arrived too slowly",
                )
            } else {
                ApiError::bad_request(format!("could not read the body: {e}"))
            }
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

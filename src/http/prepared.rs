//! Response bodies prepared once and served many times: the identity bytes and their gzip, so
//! clients that accept gzip get a fraction of the bytes at no per-request cost.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};

/// A body with its content type and a precompressed copy.
#[derive(Clone, Debug)]
pub struct PreparedBody {
    content_type: &'static str,
    identity: Bytes,
    gzip: Option<Bytes>,
}

/// Bodies smaller than this are sent as they are (compression would not pay).
const MIN_GZIP: usize = 1024;

impl PreparedBody {
    /// Prepares `identity`, compressing it if it is large enough to benefit.
    pub fn new(content_type: &'static str, identity: Bytes) -> PreparedBody {
        let gzip = (identity.len() >= MIN_GZIP)
            .then(|| gzip(&identity))
            .flatten();
        PreparedBody {
            content_type,
            identity,
            gzip,
        }
    }

    /// A JSON body.
    pub fn json(identity: Bytes) -> PreparedBody {
        Self::new("application/json", identity)
    }

    /// The uncompressed bytes.
    pub fn identity(&self) -> &Bytes {
        &self.identity
    }

    /// A 200 response, gzip-encoded if the request accepts it.
    pub fn respond(&self, req: &HttpRequest) -> HttpResponse {
        let mut res = HttpResponse::Ok();
        res.content_type(self.content_type)
            .insert_header((header::VARY, "Accept-Encoding"));
        match &self.gzip {
            Some(gz) if accepts_gzip(req) => res
                .insert_header((header::CONTENT_ENCODING, "gzip"))
                .body(gz.clone()),
            _ => res.body(self.identity.clone()),
        }
    }
}

fn gzip(data: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::default(),
    );
    enc.write_all(data).ok()?;
    enc.finish().ok().map(Bytes::from)
}

/// Whether `Accept-Encoding` lists gzip with a non-zero quality.
fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',').any(|item| {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let q = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q > 0.0
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn negotiates_gzip() {
        let ok = |v: &str| {
            accepts_gzip(
                &TestRequest::default()
                    .insert_header(("accept-encoding", v))
                    .to_http_request(),
            )
        };
        assert!(ok("gzip"));
        assert!(ok("br, gzip;q=0.5"));
        assert!(ok("*"));
        assert!(!ok("gzip;q=0"));
        assert!(!ok("br, deflate"));
        assert!(!accepts_gzip(&TestRequest::default().to_http_request()));
        let body = PreparedBody::json(Bytes::from(vec![b'a'; 10_000]));
        assert!(body.gzip.as_ref().unwrap().len() < 200);
        assert!(PreparedBody::json(Bytes::from_static(b"{}")).gzip.is_none());
    }
}

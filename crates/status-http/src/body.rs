//! Reading a request body under a size cap.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Longer than the cap.
    TooLarge,
    /// The client sent a malformed body or went away.
    Broken(String),
}

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length` first).
pub(crate) async fn read_capped(
    headers: &http::HeaderMap,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, BodyError> {
    if let Some(len) = headers.get(http::header::CONTENT_LENGTH) {
        // hyper has already rejected malformed or conflicting Content-Length headers.
        let declared = len.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(BodyError::TooLarge);
        }
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge)
        }
        Err(e) => Err(BodyError::Broken(e.to_string())),
    }
}

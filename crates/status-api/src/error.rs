//! Every error the API can answer with, and its status code and sentence.

use crate::reply::{ContentType, Reply};

/// An error reply: the status code and the one sentence that names what was wrong.
///
/// The [`Display`](std::fmt::Display) form is the exact body sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: a parameter, path segment or body is malformed; the sentence names it.
    #[error("{0}")]
    BadRequest(String),
    /// 404: no route has this path.
    #[error("path not found: {method} {path}")]
    NotFound {
        /// The request method as received.
        method: String,
        /// The request path as received.
        path: String,
    },
    /// 405: the path is known, the method is not served on it.
    #[error("method {method} is not allowed on {path}; allowed: {allowed}")]
    MethodNotAllowed {
        /// The request method as received.
        method: String,
        /// The request path as received.
        path: String,
        /// The methods the path serves, comma separated (the `Allow` header).
        allowed: &'static str,
    },
    /// 409: a conflicting operation is already running.
    #[error("{0}")]
    Conflict(String),
    /// 413: the request body is larger than [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES).
    #[error("request body too large: the limit is {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 501: this build or this allocator lacks a capability; the sentence says how to enable it.
    #[error("{0}")]
    NotImplemented(String),
    /// 503: the server is not ready (readiness probe).
    #[error("{0}")]
    Unavailable(String),
    /// 500: a real server fault.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 for a query parameter: `invalid query parameter 'name': expected …, got '…'`.
    pub fn bad_param(name: &str, expected: &str, got: &str) -> Self {
        ApiError::BadRequest(format!(
            "invalid query parameter '{name}': expected {expected}, got '{}'",
            printable(got, 64)
        ))
    }

    /// The HTTP status code of this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict(_) => 409,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::Internal(_) => 500,
            ApiError::NotImplemented(_) => 501,
            ApiError::Unavailable(_) => 503,
        }
    }

    /// The reply sent for this error: `text/plain; charset=utf-8`, the sentence and a newline.
    pub fn to_reply(&self) -> Reply {
        let mut reply = Reply::new(self.status(), ContentType::Text, format!("{self}\n"));
        if let ApiError::MethodNotAllowed { allowed, .. } = self {
            reply.allow = Some(allowed);
        }
        reply
    }
}

/// Shortens client-supplied text for an error sentence and escapes control characters, so an
/// error body is always one readable line whatever the client sent.
pub(crate) fn printable(raw: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (i, c) in raw.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_name_the_problem() {
        let e = ApiError::bad_param("seconds", "an integer from 1 to 3600", "abc");
        assert_eq!(
            e.to_string(),
            "invalid query parameter 'seconds': expected an integer from 1 to 3600, got 'abc'"
        );
        assert_eq!(e.status(), 400);
        let e = ApiError::NotFound {
            method: "GET".into(),
            path: "/x".into(),
        };
        assert_eq!(e.to_string(), "path not found: GET /x");
        assert_eq!(e.to_reply().body.as_ref(), b"path not found: GET /x\n");
    }

    #[test]
    fn printable_escapes_and_truncates() {
        assert_eq!(printable("a\0b\n", 10), "a\\u{0}b\\n");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}

//! A sentence for requests that are not HTTP.
//!
//! When hyper cannot parse a request head (a control character in the request line, a
//! malformed `Content-Length`, a target over 64 KiB, a head over its buffer), it writes an
//! automatic `400`/`414`/`431` reply with an empty body and closes the connection; the handler
//! never sees the request. hyper offers no hook for that reply, so the connection's I/O is
//! wrapped: a write that is exactly such an automatic reply is replaced by the same status with
//! a `text/plain` sentence. Every reply the transport itself produces for a status of 400 or more
//! carries a `Content-Type` (see `serve_one`), so only hyper's automatic replies match.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The connection's I/O with hyper's automatic error replies rewritten.
pub(crate) struct SentenceIo<IO> {
    inner: IO,
    pending: Option<Rewrite>,
}

struct Rewrite {
    bytes: Vec<u8>,
    written: usize,
    /// How many bytes of hyper's buffer the rewrite stands for.
    replaces: usize,
}

impl<IO> SentenceIo<IO> {
    pub(crate) fn new(inner: IO) -> Self {
        SentenceIo {
            inner,
            pending: None,
        }
    }
}

/// The replacement for `buf` if it is exactly one automatic error reply of hyper.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    const REPLIES: [(&[u8], &str); 3] = [
        (
            b"HTTP/1.1 400 Bad Request\r\n",
            "malformed HTTP request: the request line or a header is not valid HTTP/1.1",
        ),
        (
            b"HTTP/1.1 414 URI Too Long\r\n",
            "request target too long: the path and query may be at most 65534 bytes",
        ),
        (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            "request head too large: at most 100 headers, about 400 KiB of request line and headers, and a Content-Length below 18446744073709551614 are accepted",
        ),
    ];
    // Cheap test first: this runs on every write.
    if !buf.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let (status_line, sentence) = REPLIES.iter().find(|(line, _)| buf.starts_with(line))?;
    let head = buf.strip_suffix(b"\r\n\r\n")?;
    let headers = std::str::from_utf8(&head[status_line.len()..]).ok()?;
    let mut content_length_zero = false;
    for line in headers.split("\r\n") {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" if value.trim() == "0" => content_length_zero = true,
            "date" | "connection" => {}
            // Anything else (a Content-Type above all) means the reply is not hyper's own.
            _ => return None,
        }
    }
    if !content_length_zero {
        return None;
    }
    let body = format!("{sentence}\n");
    let mut out = Vec::with_capacity(status_line.len() + 128 + body.len());
    out.extend_from_slice(status_line);
    out.extend_from_slice(
        format!(
            "content-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl<IO: AsyncWrite + Unpin> SentenceIo<IO> {
    /// Writes the pending rewrite; reports the replaced buffer as written when done.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>, offered: usize) -> Poll<io::Result<usize>> {
        let Some(rewrite) = self.pending.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while rewrite.written < rewrite.bytes.len() {
            let n = ready!(
                Pin::new(&mut self.inner).poll_write(cx, &rewrite.bytes[rewrite.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            rewrite.written += n;
        }
        let replaces = rewrite.replaces;
        self.pending = None;
        Poll::Ready(Ok(replaces.min(offered)))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for SentenceIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            match replacement(buf) {
                Some(bytes) => {
                    this.pending = Some(Rewrite {
                        bytes,
                        written: 0,
                        replaces: buf.len(),
                    })
                }
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        this.poll_rewrite(cx, buf.len())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let offered: usize = bufs.iter().map(|b| b.len()).sum();
        if this.pending.is_none() {
            let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
            let only = match (nonempty.next(), nonempty.next()) {
                (Some(first), None) => replacement(first),
                _ => None,
            };
            match only {
                Some(bytes) => {
                    this.pending = Some(Rewrite {
                        bytes,
                        written: 0,
                        replaces: offered,
                    })
                }
                None => return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            }
        }
        this.poll_rewrite(cx, offered)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for SentenceIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_hypers_automatic_replies_are_rewritten() {
        let auto = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 20:05:04 GMT\r\n\r\n";
        let out = String::from_utf8(replacement(auto).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("content-type: text/plain; charset=utf-8"));
        assert!(body.starts_with("malformed HTTP request") && body.ends_with('\n'));
        assert!(replacement(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
        )
        .is_some());
        assert!(
            replacement(b"HTTP/1.1 414 URI Too Long\r\ndate: x\r\ncontent-length: 0\r\n\r\n")
                .is_some()
        );

        for not_auto in [
            // A handler's reply: has a Content-Type.
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n\r\n"[..],
            // A body follows.
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\nabc",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"some body bytes",
            b"HTTP/1.1 400 Bad Request\r\n",
        ] {
            assert!(
                replacement(not_auto).is_none(),
                "{}",
                String::from_utf8_lossy(not_auto)
            );
        }
    }

    #[tokio::test]
    async fn a_rewritten_write_reports_the_original_length() {
        use tokio::io::AsyncWriteExt;
        let mut io = SentenceIo::new(Vec::<u8>::new());
        let auto = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let n = io.write(auto).await.unwrap();
        assert_eq!(n, auto.len());
        io.write_all(b"plain").await.unwrap();
        let text = String::from_utf8(io.inner).unwrap();
        assert!(text.contains("malformed HTTP request") && text.ends_with("\nplain"));
    }
}

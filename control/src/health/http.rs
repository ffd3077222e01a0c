//! keepalived's HTTP_GET: one GET per url over a fresh connection from the
//! director's own address, the status code compared, and optionally the MD5
//! of the body compared with `digest` (the value `genhash` prints).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{HOST, USER_AGENT};
use hyper::{Method, Request, Version};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use tokio::time::Instant;

use super::tcp::connect;
use super::{CheckResult, ProbeFailure};

/// The User-Agent keepalived sends.
pub const USER_AGENT_VALUE: &str = "KeepAliveClient";

/// One `url { … }` block of an HTTP_GET checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlCheck {
    /// `path`: what follows GET, e.g. `/health_check.html`.
    pub path: String,
    /// `status_code`: the status that counts as up. `None` is keepalived's
    /// default when the keyword is absent: any 2xx.
    pub status_code: Option<u16>,
    /// `digest`: the MD5 of the body in hex, as `genhash` prints it
    /// (compared without regard to case).
    pub digest: Option<String>,
}

/// Probes one url of `target` over a new connection from `bind`, giving up
/// when the whole attempt (connect, request, complete response) takes
/// longer than `timeout` (keepalived's `connect_timeout`, which it applies
/// to each step).
///
/// The request is keepalived's, byte for byte (check_http.c's template):
/// `GET {path} HTTP/1.0`, `User-Agent: KeepAliveClient`, `Host: {ip}:{port}`
/// (the port always written, an IPv6 address in brackets), no body. The
/// server closes the connection after the response (HTTP/1.0), as
/// keepalived expects. The digest is taken over the body as hyper delivers
/// it, which is what keepalived hashes unless the server sends a chunked
/// body to an HTTP/1.0 request.
pub async fn http_get(
    target: SocketAddr,
    bind: Option<Ipv4Addr>,
    url: &UrlCheck,
    timeout: Duration,
) -> CheckResult {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, exchange(target, bind, url)).await {
        Ok(Ok(response)) => judge(url, &response),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(ProbeFailure::Timeout { target, timeout }),
    };
    CheckResult { latency: started.elapsed(), outcome }
}

/// What the server answered.
struct Response {
    status: u16,
    /// The MD5 of the body in lower-case hex.
    md5: String,
}

/// Connects, sends the request and reads the whole response.
async fn exchange(
    target: SocketAddr,
    bind: Option<Ipv4Addr>,
    url: &UrlCheck,
) -> Result<Response, ProbeFailure> {
    let http_error =
        |e: &dyn std::fmt::Display| ProbeFailure::Http { target, reason: e.to_string() };
    let request = Request::builder()
        .method(Method::GET)
        .uri(url.path.as_str())
        .version(Version::HTTP_10)
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(HOST, target.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeFailure::Http { target, reason: format!("path {:?}: {e}", url.path) })?;

    let stream = connect(target, bind).await?;
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http_error(&e))?;

    // The connection is driven here, not spawned, so that a timeout drops
    // it and closes the socket.
    let response = async {
        let response = sender.send_request(request).await.map_err(|e| http_error(&e))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut md5 = Md5::new();
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.map_err(|e| http_error(&e))?.data_ref() {
                md5.update(data);
            }
        }
        Ok(Response { status, md5: hex(&md5.finalize()) })
    };
    tokio::pin!(connection, response);
    tokio::select! {
        response = &mut response => response,
        done = &mut connection => {
            // The connection can finish (the server closed after the body)
            // before the last bytes have been taken from it: finish reading.
            done.map_err(|e| http_error(&e))?;
            response.await
        }
    }
}

/// Up or not, as keepalived's `http_handle_response`: status first, then
/// the digest if one is configured.
fn judge(url: &UrlCheck, response: &Response) -> Result<(), ProbeFailure> {
    let status_ok = match url.status_code {
        Some(code) => response.status == code,
        None => (200..=299).contains(&response.status),
    };
    if !status_ok {
        return Err(ProbeFailure::Status { got: response.status, expected: url.status_code });
    }
    match &url.digest {
        Some(expected) if !expected.eq_ignore_ascii_case(&response.md5) => {
            Err(ProbeFailure::Digest { got: response.md5.clone(), expected: expected.clone() })
        }
        _ => Ok(()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    const TIMEOUT: Duration = Duration::from_secs(2);
    const BODY: &str = "web1 is fine\n";

    /// A tiny HTTP/1.0 server on 127.0.0.1, on a thread of its own: answers
    /// every request with `status` and `body`, closes, and reports each raw
    /// request it read.
    fn responder(status: &'static str, body: &'static str) -> (SocketAddr, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (requests, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    let n = stream.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let response = format!(
                    "HTTP/1.0 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).unwrap();
                drop(stream);
                if requests.send(String::from_utf8_lossy(&request).into_owned()).is_err() {
                    break;
                }
            }
        });
        (addr, seen)
    }

    fn url(status_code: Option<u16>, digest: Option<String>) -> UrlCheck {
        UrlCheck { path: "/health_check.html".to_owned(), status_code, digest }
    }

    /// The digest as genhash computes it: MD5 over the body bytes, in hex.
    fn genhash(body: &str) -> String {
        Md5::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn genhash_matches_md5sum() {
        // `printf 'web1 is fine\n' | md5sum`
        assert_eq!(genhash(BODY), "54f45eb515db99c735eccdcccf91b73f");
    }

    #[tokio::test]
    async fn ok_status_is_up_and_the_request_is_keepalived_s() {
        let (target, seen) = responder("200 OK", BODY);
        let result =
            http_get(target, Some(Ipv4Addr::LOCALHOST), &url(Some(200), None), TIMEOUT).await;
        assert_eq!(result.outcome, Ok(()));
        assert!(result.latency < TIMEOUT);
        let request = seen.recv_timeout(TIMEOUT).unwrap();
        assert_eq!(
            request,
            format!(
                "GET /health_check.html HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {target}\r\n\r\n"
            )
        );
    }

    #[tokio::test]
    async fn other_status_is_named() {
        let (target, _seen) = responder("500 Internal Server Error", "oops");
        let result = http_get(target, None, &url(Some(200), None), TIMEOUT).await;
        let failure = result.outcome.unwrap_err();
        assert_eq!(failure, ProbeFailure::Status { got: 500, expected: Some(200) });
        assert_eq!(failure.to_string(), "HTTP status 500 ≠ 200");
    }

    #[tokio::test]
    async fn status_compared_exactly_or_any_2xx_by_default() {
        let (target, _seen) = responder("204 No Content", "");
        let exact = http_get(target, None, &url(Some(200), None), TIMEOUT).await;
        assert_eq!(exact.outcome, Err(ProbeFailure::Status { got: 204, expected: Some(200) }));
        let default = http_get(target, None, &url(None, None), TIMEOUT).await;
        assert_eq!(default.outcome, Ok(()));
    }

    #[tokio::test]
    async fn right_digest_is_up_in_either_case() {
        let (target, _seen) = responder("200 OK", BODY);
        let digest = genhash(BODY);
        let result = http_get(target, None, &url(Some(200), Some(digest.clone())), TIMEOUT).await;
        assert_eq!(result.outcome, Ok(()));
        let upper = url(Some(200), Some(digest.to_ascii_uppercase()));
        assert_eq!(http_get(target, None, &upper, TIMEOUT).await.outcome, Ok(()));
    }

    #[tokio::test]
    async fn wrong_digest_is_named() {
        let (target, _seen) = responder("200 OK", BODY);
        let expected = genhash("another page\n");
        let result = http_get(target, None, &url(Some(200), Some(expected.clone())), TIMEOUT).await;
        assert_eq!(result.outcome, Err(ProbeFailure::Digest { got: genhash(BODY), expected }));
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        drop(listener);
        let result = http_get(target, None, &url(Some(200), None), TIMEOUT).await;
        assert_eq!(result.outcome, Err(ProbeFailure::Refused(target)));
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        // Accepts, never answers; hands the connection over.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let (accepted, held) = mpsc::channel();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let _ = accepted.send(stream);
        });
        let timeout = Duration::from_millis(300);
        let result = http_get(target, None, &url(Some(200), None), timeout).await;
        assert_eq!(result.outcome, Err(ProbeFailure::Timeout { target, timeout }));
        assert!(result.latency >= timeout && result.latency < TIMEOUT, "{:?}", result.latency);
        // The probe sent its request and closed: the server reads it, then end-of-file.
        let mut stream = held.recv_timeout(TIMEOUT).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.starts_with(b"GET /health_check.html HTTP/1.0\r\n"));
    }

    #[tokio::test]
    async fn a_path_that_is_no_uri_is_named() {
        let (target, _seen) = responder("200 OK", BODY);
        let bad = UrlCheck { path: "/with space".to_owned(), status_code: Some(200), digest: None };
        match http_get(target, None, &bad, TIMEOUT).await.outcome {
            Err(ProbeFailure::Http { reason, .. }) => {
                assert!(reason.contains("/with space"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}

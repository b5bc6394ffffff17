//! A tiny blocking HTTP client for the tests: requests with ureq (and one
//! over a raw socket, for `Expect: 100-continue`), answers as [`Reply`], and
//! the checks of the API's one error shape.

use std::time::Duration;

use serde_json::Value;

/// An answer: status, headers we look at, and the body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Asserts the API's one error shape: `status`, `{"error": <a sentence>, "error_type": error_type}` and nothing else.
pub fn assert_error(reply: &Reply, status: u16, error_type: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.body["error_type"], error_type, "{:?}", reply.body);
    assert!(reply.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{:?}", reply.body);
    assert_eq!(reply.body.as_object().map(|o| o.len()), Some(2), "one error shape: {:?}", reply.body);
}

/// [`assert_error`], and the message says `says`.
pub fn assert_error_saying(reply: &Reply, status: u16, error_type: &str, says: &str) {
    assert_error(reply, status, error_type);
    let message = reply.body["error"].as_str().expect("a JSON error message");
    assert!(message.contains(says), "`{message}` does not say `{says}`");
}

fn reply(result: Result<ureq::Response, ureq::Error>) -> Reply {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("HTTP transport error: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let text = response.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply { status, headers, body }
}

/// A request: method, URL, headers, body.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(120));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    reply(if body.is_empty() && method == "GET" { req.call() } else { req.send_bytes(body) })
}

/// A `POST` sent with `Expect: 100-continue` over a raw socket: the body
/// goes out only if the server asks for it, so a server that refuses the
/// size up front (413) is read cleanly instead of failing with a broken pipe.
pub fn post_expect_continue(url: &str, content_type: &str, body: &[u8]) -> Reply {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.starts_with(b"HTTP/1.1 100") {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                got.drain(..end + 4);
                let _ = stream.write_all(body);
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    Reply { status, headers, body: serde_json::from_str(body).unwrap_or(Value::String(body.to_string())) }
}

/// `POST` of a JSON value.
pub fn post_json(url: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    send("POST", url, &h, body.to_string().as_bytes())
}

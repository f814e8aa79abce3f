//! Headless Chromium driven over the DevTools protocol, for the web page
//! test: a minimal WebSocket client (text frames only) and `evaluate`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Peer, Ready, require_binary};

/// A headless Chromium with one page, killed by PID on drop (as a
/// [`Peer`]).
pub struct Browser {
    /// Kept for its drop.
    _peer: Peer,
    socket: TcpStream,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium (ready when its DevTools answer) and attaches to its
    /// first page.
    pub async fn start() -> Self {
        let binary = require_binary("chromium");
        let ready = Ready::Http("/json/version".into());
        let peer = Peer::start("chromium", &binary, ready, |port, dir| {
            vec![
                "--headless".into(),
                "--no-sandbox".into(),
                "--disable-gpu".into(),
                "--disable-background-networking".into(),
                "--no-first-run".into(),
                format!("--remote-debugging-port={port}"),
                format!("--user-data-dir={}", dir.join("profile").display()),
                "about:blank".into(),
            ]
        })
        .await;
        let port = peer.addr().port();
        let deadline = Instant::now() + Duration::from_secs(30);
        let page_url = loop {
            if let Some(url) = page_socket_url(port) {
                break url;
            }
            assert!(
                Instant::now() < deadline,
                "chromium has no page to attach to:\n{}",
                peer.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let path = page_url
            .split_once(&format!("127.0.0.1:{port}"))
            .map(|(_, p)| p.to_string())
            .expect("a local DevTools URL");
        let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("DevTools socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("socket timeout");
        let handshake = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        socket.write_all(handshake.as_bytes()).expect("handshake");
        let mut response = Vec::new();
        let mut byte = [0u8; 1];
        while !response.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).expect("handshake answer");
            response.push(byte[0]);
        }
        assert!(
            response.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&response)
        );
        Self {
            _peer: peer,
            socket,
            next_id: 1,
        }
    }

    /// Sends one DevTools command and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.send_frame(message.as_bytes());
        loop {
            let frame = self.read_frame();
            let Ok(value) = serde_json::from_slice::<Value>(&frame) else {
                continue;
            };
            if value["id"] == json!(id) {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page (awaiting promises).
    pub fn evaluate(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until it returns true, or panics after 10 s.
    pub fn wait_for(&mut self, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.evaluate(expression) != json!(true) {
            assert!(
                Instant::now() < deadline,
                "page never satisfied {expression}; text: {}",
                self.evaluate("document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn send_frame(&mut self, payload: &[u8]) {
        // FIN + text frame; client frames must be masked (a zero mask keeps
        // the payload as is).
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        self.socket.write_all(&frame).expect("sending a frame");
    }

    fn read_frame(&mut self) -> Vec<u8> {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.socket.read_exact(&mut head).expect("frame header");
            let fin = head[0] & 0x80 != 0;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.socket.read_exact(&mut b).expect("frame length");
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.socket.read_exact(&mut b).expect("frame length");
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            self.socket.read_exact(&mut payload).expect("frame payload");
            message.extend_from_slice(&payload);
            if fin {
                return message;
            }
        }
    }
}

fn page_socket_url(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    // DevTools keeps the connection open: read exactly Content-Length bytes.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&raw);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })?;
        if body.len() < length {
            continue;
        }
        let targets: Value = serde_json::from_str(&body[..length]).ok()?;
        return targets.as_array()?.iter().find(|t| t["type"] == "page")?["webSocketDebuggerUrl"]
            .as_str()
            .map(str::to_string);
    }
}

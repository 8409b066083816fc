//! A misbehaving upstream: every request gets the same fault. It keeps the request line of
//! every request head it received, so tests can check that nothing was retried.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Bytes that are not HTTP.
    Garbage,
    /// Headers promise 1000 bytes, 9 arrive, then the connection is closed.
    ResetMidBody,
    /// A complete answer whose JSON is cut short.
    TruncatedJson,
    /// A gzip-encoded answer.
    Gzip,
    /// An HTML page with status 201.
    WrongContentType,
    /// 503 with Onezone's error shape, every time.
    Unavailable,
    /// Headers at once, the body after this many milliseconds.
    SlowBody(u64),
    /// 201 with a token id but no token.
    CreatedWithoutToken,
}

pub struct FaultServer {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultServer {
    pub async fn start(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let counter = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut seen = Vec::new();
                    loop {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        // Answer once the head (and any declared body) is in.
                        let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if seen.len() < end + 4 + len {
                            continue;
                        }
                        let line = head.lines().next().unwrap_or("").to_string();
                        counter.lock().unwrap().push(line);
                        seen.drain(..end + 4 + len);
                        if !answer(&mut s, fault).await {
                            return;
                        }
                    }
                });
            }
        });
        FaultServer { addr, heads, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.heads.lock().unwrap().len()
    }

    /// The request lines received so far, in order (lower-cased).
    pub fn request_lines(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Writes the faulty answer; `false` when the connection must end.
async fn answer(s: &mut tokio::net::TcpStream, fault: Fault) -> bool {
    let json = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    match fault {
        Fault::Garbage => {
            let _ = s.write_all(b"\x00\x01 this is not http at all\r\n\r\n").await;
            false
        }
        Fault::ResetMidBody => {
            let _ = s
                .write_all(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"token\":")
                .await;
            // Closing here cuts the body short mid-way.
            false
        }
        Fault::TruncatedJson => s.write_all(json("201 Created", r#"{"tokenId":"abc","tok"#).as_bytes()).await.is_ok(),
        Fault::Gzip => {
            let body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03";
            let head = format!(
                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.is_ok() && s.write_all(body).await.is_ok()
        }
        Fault::WrongContentType => {
            let body = "<html>Created</html>";
            let head = format!(
                "HTTP/1.1 201 Created\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(head.as_bytes()).await.is_ok()
        }
        Fault::Unavailable => s
            .write_all(
                json(
                    "503 Service Unavailable",
                    r#"{"error":{"id":"serviceUnavailable","description":"Onezone is overloaded."}}"#,
                )
                .as_bytes(),
            )
            .await
            .is_ok(),
        Fault::SlowBody(ms) => {
            let body = r#"{"tokenId":"abc","token":"slow"}"#;
            let head = format!(
                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            if s.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
            s.write_all(body.as_bytes()).await.is_ok()
        }
        Fault::CreatedWithoutToken => s
            .write_all(json("201 Created", r#"{"tokenId":"id-of-created-token"}"#).as_bytes())
            .await
            .is_ok(),
    }
}

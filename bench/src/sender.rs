//! A minimal HTTP/1.1 client that posts the way a registry does: one request per new TCP
//! connection. Hand-written so that the load generator, which shares the two cores with
//! everything it measures, costs as little as possible per request.

use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where and how to post events.
#[derive(Debug, Clone)]
pub struct Sender {
    addr: SocketAddr,
    head: String,
}

impl Sender {
    /// Posts to `http://addr/events` with `Authorization: Bearer token`, with the headers
    /// distribution sends.
    pub fn new(addr: SocketAddr, token: &str) -> Self {
        let head = format!(
            "POST /events HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Go-http-client/1.1\r\n\
             Authorization: Bearer {token}\r\n\
             Content-Type: application/vnd.docker.distribution.events.v1+json\r\n\
             Accept-Encoding: gzip\r\n"
        );
        Self { addr, head }
    }

    /// Where it posts.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The request that posts `body`.
    fn request(&self, body: &[u8]) -> Vec<u8> {
        let mut request = Vec::with_capacity(self.head.len() + 32 + body.len());
        request.extend_from_slice(self.head.as_bytes());
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        request
    }

    /// A connection that posts one request at a time: on a new TCP connection each (as a
    /// registry does) or, with `keep_alive`, on one kept open (as a pooling client does).
    pub fn connection(&self, keep_alive: bool) -> Connection {
        Connection {
            sender: self.clone(),
            keep_alive,
            stream: None,
        }
    }
}

/// One sender's link to the receiver.
#[derive(Debug)]
pub struct Connection {
    sender: Sender,
    keep_alive: bool,
    stream: Option<TcpStream>,
}

impl Connection {
    /// Posts `body`; the answer's status code.
    pub async fn post(&mut self, body: &[u8]) -> io::Result<u16> {
        let request = self.sender.request(body);
        if let Some(mut stream) = self.stream.take() {
            // A kept connection the server has closed meanwhile fails: open a new one.
            if let Ok(status) = exchange_on(&mut stream, &request).await {
                self.stream = Some(stream);
                return Ok(status);
            }
        }
        let mut stream = connect(self.sender.addr).await?;
        let status = exchange_on(&mut stream, &request).await?;
        if self.keep_alive {
            self.stream = Some(stream);
        }
        Ok(status)
    }
}

/// `GET path` on a new connection; the answer's status code.
pub async fn get(addr: SocketAddr, path: &str) -> io::Result<u16> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

/// Writes `request` on a new connection and reads the answer.
async fn exchange(addr: SocketAddr, request: &[u8]) -> io::Result<u16> {
    exchange_on(&mut connect(addr).await?, request).await
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Writes `request` and reads one whole response (status line, headers, `Content-Length`
/// bytes of body).
async fn exchange_on(stream: &mut TcpStream, request: &[u8]) -> io::Result<u16> {
    stream.write_all(request).await?;
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-answer",
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some((status, true)) = parse_response(&buffer)? {
            return Ok(status);
        }
    }
}

/// The status of a response in `buffer`, and whether all of it has arrived; `None` until the
/// headers are complete.
fn parse_response(buffer: &[u8]) -> io::Result<Option<(u16, bool)>> {
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buffer[..end])
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "answer headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no status line"))?;
    let length: usize = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    Ok(Some((status, buffer.len() >= end + 4 + length)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_complete_once_its_body_arrived() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n";
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
        assert_eq!(parse_response(head).unwrap(), Some((200, false)));
        assert_eq!(
            parse_response(&[&head[..], b"{}{}"].concat()).unwrap(),
            Some((200, true))
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").unwrap(),
            Some((503, true))
        );
    }
}

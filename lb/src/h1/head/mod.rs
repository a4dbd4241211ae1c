//! Request and response heads: parsed in place with httparse and rewritten
//! straight into the outgoing buffer (hop-by-hop headers dropped, framing
//! restated, forwarding headers added).

use std::fmt;
use std::net::IpAddr;

mod fields;
mod request;
#[cfg(test)]
mod request_tests;
mod response;
#[cfg(test)]
mod response_tests;

pub use request::parse_request;
pub use response::{finish_response_head, local_response, parse_response};

/// Most header lines httparse reads in a head.
pub(super) const MAX_HEADERS: usize = 128;
/// Most header lines of a request (431 beyond) or response (502): fewer
/// than httparse reads, so that the head sent on, with the lines netd-lb
/// adds, is within a peer's limit (and our own) again.
const MAX_REQUEST_HEADERS: usize = MAX_HEADERS - 16;
const MAX_RESPONSE_HEADERS: usize = MAX_HEADERS - 4;
/// Most header names a message's Connection headers may list (each is
/// dropped when forwarding); more is refused rather than passed on.
const MAX_CONN_TOKENS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    Chunked,
}

/// Why a head is refused. [`HeadError::status`] is the answer a client
/// gets for a request head; a member's bad response head is a 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    TooLarge,
    Parse(httparse::Error),
    BadLength,
    /// Transfer-Encoding whose last coding is not chunked, or chunked
    /// twice (RFC 9112 6.3 item 4: 400 and close).
    BadTransferEncoding,
    /// A transfer coding other than chunked (RFC 9112 6.1: 501).
    UnknownCoding,
    /// Both Transfer-Encoding and Content-Length (RFC 9112 6.1).
    LengthAndChunked,
    /// Transfer-Encoding in an HTTP/1.0 message (RFC 9112 6.1).
    Http10TransferEncoding,
    /// An HTTP/1.1 request without Host (RFC 9112 3.2).
    MissingHost,
    /// More than one Host line (RFC 9112 3.2).
    DuplicateHost,
    /// A Host value that is not `uri-host [":" port]` (RFC 9112 3.2).
    BadHost,
    /// A request-target with bytes a URI cannot have.
    BadTarget,
    /// More header names listed in Connection than are remembered.
    TooManyConnectionOptions,
}

impl HeadError {
    /// The status a client gets for a request head refused so.
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge => 431,
            HeadError::UnknownCoding => 501,
            _ => 400,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge => write!(f, "too many header lines"),
            HeadError::Parse(e) => write!(f, "{e}"),
            HeadError::BadLength => write!(f, "bad Content-Length"),
            HeadError::BadTransferEncoding => {
                write!(f, "Transfer-Encoding does not end in chunked, once")
            }
            HeadError::UnknownCoding => write!(f, "transfer coding other than chunked"),
            HeadError::LengthAndChunked => {
                write!(f, "both Transfer-Encoding and Content-Length")
            }
            HeadError::Http10TransferEncoding => write!(f, "Transfer-Encoding in HTTP/1.0"),
            HeadError::MissingHost => write!(f, "HTTP/1.1 request without Host"),
            HeadError::DuplicateHost => write!(f, "more than one Host"),
            HeadError::BadHost => write!(f, "bad Host"),
            HeadError::BadTarget => write!(f, "bad request-target"),
            HeadError::TooManyConnectionOptions => write!(f, "too many Connection options"),
        }
    }
}

/// What the proxy needs to know of a request, once its head is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqHead {
    /// Bytes of the head in the input.
    pub len: usize,
    pub connect: bool,
    pub idempotent: bool,
    pub is_head: bool,
    pub http10: bool,
    /// The client connection may carry another request after this one.
    pub keep_alive: bool,
    pub body: Body,
    pub upgrade: bool,
    pub expect_continue: bool,
}

/// What the proxy needs to know of a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespHead {
    pub len: usize,
    pub status: u16,
    pub body: Body,
    /// The body ends when the member closes.
    pub until_close: bool,
    /// Chunked from the member (and so to an HTTP/1.1 client).
    pub chunked: bool,
    /// The member connection can carry another request.
    pub upstream_keep: bool,
    /// The framing lets the client connection carry another request.
    pub client_keep: bool,
}

impl RespHead {
    /// 1xx but not 101: another head follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// The client's address as text, formatted once per connection.
#[derive(Debug, Clone)]
pub struct Client {
    /// As in X-Forwarded-For.
    text: String,
    /// `for=` value of a Forwarded element (RFC 7239): IPv6 quoted in
    /// brackets.
    node: String,
}

impl Client {
    pub fn new(ip: IpAddr) -> Client {
        Client {
            text: ip.to_string(),
            node: match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("\"[{v6}]\""),
            },
        }
    }
}

/// Decimal digits of `n`, without the formatting machinery.
pub fn write_num(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

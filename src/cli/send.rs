//! `smsgate send`: send an SMS through the local API, as a LAN app would.
//! A minimal HTTP/1.1 client over a TCP socket: the API is local and plain
//! HTTP, and this keeps the binary free of a full HTTP client for one request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::UsageError;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Recipient: +E.164, or a national number (the configured default country).
    #[arg(long)]
    to: String,
    /// The message text.
    #[arg(long)]
    text: String,
    /// The API's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    api: String,
    /// Bearer token (default: $SMSGATE_API_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Send from this modem.
    #[arg(long)]
    modem: Option<String>,
}

/// One request, one response: (status, body).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> Result<(u16, String), UsageError> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(addr)
        .map_err(|e| UsageError(format!("cannot reach the API at {addr}: {e}")))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(35)));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| UsageError("the API's answer is not HTTP".into()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| UsageError("the API's answer has no status".into()))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn run(args: SendArgs) -> Result<(), UsageError> {
    let token = args
        .token
        .or_else(|| std::env::var("SMSGATE_API_TOKEN").ok())
        .ok_or_else(|| UsageError("no token: give --token or set SMSGATE_API_TOKEN".into()))?;
    let mut body = json!({"to": args.to, "body": args.text});
    if let Some(modem) = args.modem {
        body["modem"] = json!(modem);
    }
    let (status, answer) =
        http_request(&args.api, "POST", "/v1/messages", &token, &body.to_string())?;
    if status == 202 {
        println!("{answer}");
        Ok(())
    } else {
        let detail = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| {
                Some(format!(
                    "{} ({})",
                    v.get("detail")?.as_str()?,
                    v.get("code")?.as_str()?
                ))
            })
            .unwrap_or(answer);
        Err(UsageError(format!(
            "the API refused the message: HTTP {status}: {detail}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(dechunk("zz\r\n"), "");
    }
}

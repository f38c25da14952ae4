//! A plain HTTP/1.0 GET, for the plugin's `/healthz`, `/readyz` and
//! `/metrics`: a dozen lines instead of an HTTP client dependency.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Context, Outcome};

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` from `addr`: the status code and the body.
pub async fn get(addr: SocketAddr, path: &str) -> Outcome<(u16, String)> {
    tokio::time::timeout(TIMEOUT, async {
        let mut stream = TcpStream::connect(addr)
            .await
            .context(format!("cannot connect to {addr}"))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .context(format!("cannot send to {addr}"))?;
        let mut reply = Vec::new();
        stream
            .read_to_end(&mut reply)
            .await
            .context(format!("cannot read from {addr}"))?;
        parse_reply(&String::from_utf8_lossy(&reply))
    })
    .await
    .context(format!(
        "GET {path} from {addr} took longer than {TIMEOUT:?}"
    ))?
}

/// Splits an HTTP reply into its status code and body.
pub fn parse_reply(reply: &str) -> Outcome<(u16, String)> {
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .context("an HTTP reply without a header")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context(format!("an HTTP reply without a status: {head}"))?;
    Ok((code, body.to_owned()))
}

/// The value of a metric line `name{labels} value` in Prometheus text whose
/// name is `name` and whose labels include every one of `labels`
/// (`key="value"`), summed over the lines that match.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name
            || !labels
                .iter()
                .all(|l| label_text.split(',').any(|x| x == *l))
        {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_split() {
        assert_eq!(
            parse_reply("HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\nrds: down").unwrap(),
            (503, "rds: down".to_owned())
        );
        assert!(parse_reply("garbage").is_err());
    }

    #[test]
    fn metrics_are_found_by_name_and_labels() {
        let text = "# HELP rds_csi_rpc CSI calls\n\
                    rds_csi_rpc_total{method=\"CreateVolume\",code=\"OK\"} 3\n\
                    rds_csi_rpc_total{method=\"CreateVolume\",code=\"UNAVAILABLE\"} 2\n\
                    rds_csi_rpc_total{method=\"DeleteVolume\",code=\"OK\"} 1\n\
                    rds_csi_rds_up 1\n";
        assert_eq!(metric(text, "rds_csi_rds_up", &[]), Some(1.0));
        assert_eq!(
            metric(text, "rds_csi_rpc_total", &["method=\"CreateVolume\""]),
            Some(5.0)
        );
        assert_eq!(
            metric(
                text,
                "rds_csi_rpc_total",
                &["method=\"CreateVolume\"", "code=\"OK\""]
            ),
            Some(3.0)
        );
        assert_eq!(metric(text, "rds_csi_nothing", &[]), None);
    }

    #[tokio::test]
    async fn gets_from_a_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.0 200 OK\r\n\r\nok").await.unwrap();
        });
        assert_eq!(get(addr, "/healthz").await.unwrap(), (200, "ok".to_owned()));
    }
}

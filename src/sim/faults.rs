//! Faults injected on demand, the ways real modems misbehave in the field.

use std::time::Duration;

use serde::Deserialize;

/// A fault to inject (also the body of the control API's `POST /faults`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Swallow every byte the client sends (a hung firmware); `None`: until
    /// [`Fault::Clear`].
    StopAnswering { duration: Option<Duration> },
    /// Write `count` bytes of line noise (a baud mismatch, a glitch on the USB).
    Garbage { count: usize },
    /// Answer the next `count` `AT+CMGS` with `+CMS ERROR: <code>` (27.005 §3.2.5)
    /// after the PDU is entered.
    CmsError { code: u16, count: u32 },
    /// Storage reports full: writes fail with `+CMS ERROR: 322`, inbound SMS wait
    /// in the network until the fault ends (`None`: until [`Fault::Clear`]).
    StorageFull { duration: Option<Duration> },
    /// The USB device goes away: the pty closes, and a new one appears at the same
    /// link after `duration`.
    Unplug { duration: Duration },
    /// The modem restarts: boot URCs, volatile settings lost.
    Reboot,
    /// An SMS from `from` reaches the modem as it reads the next `AT+CMGS`,
    /// and its `+CMTI` goes out before the `> ` prompt (a modem that does
    /// not hold URCs back while a command runs).
    SmsBeforePrompt { from: String, text: String },
    /// End every fault in force.
    Clear,
}

/// The JSON shape of a fault: `{"kind": "cms_error", "code": 500, "count": 2}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// `stop_answering`, `garbage`, `cms_error`, `storage_full`, `unplug`,
    /// `reboot`, `sms_before_prompt` or `clear`.
    pub kind: String,
    /// `cms_error`: the `+CMS ERROR` code (default 500, unknown error).
    #[serde(default)]
    pub code: Option<u16>,
    /// `cms_error`: how many sends fail (default 1); `garbage`: how many bytes
    /// (default 32).
    #[serde(default)]
    pub count: Option<u32>,
    /// `stop_answering`, `storage_full`: how long (default: until `clear`);
    /// `unplug`: how long the device is away (default 1000).
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// `sms_before_prompt`: the sender.
    #[serde(default)]
    pub from: Option<String>,
    /// `sms_before_prompt`: the text.
    #[serde(default)]
    pub text: Option<String>,
}

impl TryFrom<FaultRequest> for Fault {
    type Error = String;

    fn try_from(r: FaultRequest) -> Result<Fault, String> {
        let duration = r.duration_ms.map(Duration::from_millis);
        Ok(match r.kind.as_str() {
            "stop_answering" => Fault::StopAnswering { duration },
            "garbage" => Fault::Garbage {
                count: r.count.unwrap_or(32) as usize,
            },
            "cms_error" => Fault::CmsError {
                code: r.code.unwrap_or(500),
                count: r.count.unwrap_or(1),
            },
            "storage_full" => Fault::StorageFull { duration },
            "unplug" => Fault::Unplug {
                duration: duration.unwrap_or(Duration::from_secs(1)),
            },
            "reboot" => Fault::Reboot,
            "sms_before_prompt" => Fault::SmsBeforePrompt {
                from: r.from.ok_or("sms_before_prompt needs \"from\"")?,
                text: r.text.ok_or("sms_before_prompt needs \"text\"")?,
            },
            "clear" => Fault::Clear,
            other => return Err(format!("unknown fault kind {other:?}")),
        })
    }
}

/// Bytes a garbled line looks like: high bytes, NULs and stray characters,
/// deterministic so a failing test replays the same noise.
pub fn garbage(count: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_F491;
    (0..count)
        .map(|_| {
            // xorshift32: cheap noise with no dependency.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x & 0xFF) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_become_faults() {
        let parse = |json: &str| {
            serde_json::from_str::<FaultRequest>(json)
                .map_err(|e| e.to_string())
                .and_then(Fault::try_from)
        };
        assert_eq!(
            parse(r#"{"kind":"cms_error","code":330,"count":2}"#),
            Ok(Fault::CmsError {
                code: 330,
                count: 2
            })
        );
        assert_eq!(
            parse(r#"{"kind":"unplug","duration_ms":300}"#),
            Ok(Fault::Unplug {
                duration: Duration::from_millis(300)
            })
        );
        assert_eq!(
            parse(r#"{"kind":"sms_before_prompt","from":"+15550001111","text":"C"}"#),
            Ok(Fault::SmsBeforePrompt {
                from: "+15550001111".into(),
                text: "C".into()
            })
        );
        assert!(parse(r#"{"kind":"sms_before_prompt","from":"+15550001111"}"#).is_err());
        assert!(parse(r#"{"kind":"melt"}"#).is_err());
        assert!(parse(r#"{"kind":"reboot","colour":1}"#).is_err());
        assert_eq!(garbage(8).len(), 8);
    }
}

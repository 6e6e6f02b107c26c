//! The mobile network behind the modem: what it received from us (submitted SMS
//! decoded and joined into messages), the status reports it owes, the inbound
//! SMS it holds until the modem has room, and the scripted handsets that answer.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::pdu::{
    self, Address, Body, DeliverOptions, EncodedPart, PduError, SmsStatusReport, Status, Tpdu,
};

/// A message the network received from the modem, its parts joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedMessage {
    /// TP-DA as the modem sent it (`+1555...`).
    pub to: String,
    pub text: String,
    pub parts: usize,
    /// TP-SRR of the parts (any part asking counts).
    pub status_report_requested: bool,
    /// RFC 3339, when the last part arrived.
    pub received_at: String,
    /// TP-MR the modem gave each part (`+CMGS: <mr>`), in part order.
    #[serde(skip)]
    pub message_references: Vec<u8>,
}

/// A handset that answers: a complete message to `number` gets `reply` back
/// from that number `delay` later. With `then`, `reply` answers the first
/// message and `then` the following ones in turn, after which the handset
/// stays quiet (a customer walking through a flow: "R", then "2"); without
/// it, `reply` answers every message (only the first with `once`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandsetScript {
    pub number: String,
    pub reply: String,
    #[serde(default)]
    pub then: Vec<String>,
    /// Answer the first message only.
    #[serde(default)]
    pub once: bool,
    #[serde(default, rename = "delay_ms", with = "millis")]
    pub delay: Duration,
}

impl HandsetScript {
    /// The answer to message `n` (0-based) this handset receives.
    fn answer(&self, n: usize) -> Option<String> {
        match (n, self.then.is_empty()) {
            (0, _) => Some(self.reply.clone()),
            (_, true) if self.once => None,
            (_, true) => Some(self.reply.clone()),
            _ => self.then.get(n - 1).cloned(),
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A status report the network will send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReport {
    /// The report PDU, SMSC field included.
    pub pdu: Vec<u8>,
    pub tpdu_length: usize,
}

/// Parts of a concatenated message still missing some.
#[derive(Debug, Clone)]
struct Partial {
    parts: Vec<Option<(String, u8)>>,
    status_report_requested: bool,
}

/// What a submission led to.
#[derive(Debug, Default)]
pub struct Submission {
    /// An interim report to send first (a busy handset: the service centre
    /// is still trying), then `report` a delay later.
    pub interim: Option<PendingReport>,
    /// The report to send, if TP-SRR asked for one.
    pub report: Option<PendingReport>,
    /// The message, when this part completed it.
    pub completed: Option<ReceivedMessage>,
}

/// The network's memory.
#[derive(Debug, Default)]
pub struct Network {
    pub received: Vec<ReceivedMessage>,
    /// Keyed by recipient and concatenation reference (23.040 §9.2.3.24.1).
    partial: HashMap<(String, u16), Partial>,
    /// Inbound parts waiting for room in the modem's storage, oldest first.
    pub waiting: VecDeque<EncodedPart>,
    pub handsets: Vec<HandsetScript>,
    /// Messages each handset (by its script's number) has answered so far.
    answered: HashMap<String, usize>,
    /// Numbers whose status reports say "failed".
    pub failing_numbers: Vec<String>,
    /// Numbers whose handsets are busy at first: a "still trying" report
    /// comes before the final one.
    pub busy_numbers: Vec<String>,
    /// Concatenation reference of the next multipart inbound message.
    next_reference: u8,
}

impl Network {
    pub fn new(failing_numbers: Vec<String>) -> Network {
        Network {
            failing_numbers,
            next_reference: 1,
            ..Network::default()
        }
    }

    /// Decode one `AT+CMGS` PDU and record it. A PDU the modem accepted but that
    /// does not decode as SMS-SUBMIT is ignored (the modem already checked it).
    pub fn submit(&mut self, pdu_octets: &[u8], message_reference: u8) -> Submission {
        let mut result = Submission::default();
        let Ok(pdu) = pdu::decode(pdu_octets, true) else {
            return result;
        };
        let Tpdu::Submit(submit) = pdu.tpdu else {
            return result;
        };
        let to = submit.destination.value.clone();
        let text = match &submit.user_data.body {
            Body::Text(t) => t.clone(),
            Body::Data(d) => pdu::hex::encode(d),
        };
        if submit.status_report_request {
            let now = now();
            let failing = self.failing_numbers.iter().any(|n| same_number(n, &to));
            let busy = self.busy_numbers.iter().any(|n| same_number(n, &to));
            let report = |status: Status| SmsStatusReport {
                more_messages: false,
                loop_prevention: false,
                qualifier_command: false,
                // The modem's TP-MR, the one `+CMGS` printed (27.005 §3.5.1).
                message_reference,
                recipient: submit.destination.clone(),
                service_centre_time: now,
                discharge_time: now,
                status,
                pid: None,
                dcs: None,
                user_data: None,
            };
            let pending = |report: SmsStatusReport| {
                let mut octets = vec![0u8];
                report.encode(&mut octets).ok().map(|()| PendingReport {
                    tpdu_length: octets.len() - 1,
                    pdu: octets,
                })
            };
            // 23.040 §9.2.3.15: 0x21 SME busy, the service centre still
            // trying; 0x00 received by the SME; 0x41 incompatible destination
            // (permanent).
            if busy {
                result.interim = pending(report(Status(0x21)));
            }
            result.report = pending(report(Status(if failing { 0x41 } else { 0x00 })));
        }
        let concat = submit.user_data.header.as_ref().and_then(|h| h.concat());
        let srr = submit.status_report_request;
        let message = match concat {
            Some(c) if c.total > 1 && c.sequence >= 1 && c.sequence <= c.total => {
                let key = (to.clone(), c.reference);
                let entry = self.partial.entry(key.clone()).or_insert_with(|| Partial {
                    parts: vec![None; usize::from(c.total)],
                    status_report_requested: false,
                });
                if entry.parts.len() != usize::from(c.total) {
                    // Same reference, different total: a new message reused it.
                    entry.parts = vec![None; usize::from(c.total)];
                }
                entry.status_report_requested |= srr;
                if let Some(slot) = entry.parts.get_mut(usize::from(c.sequence) - 1) {
                    *slot = Some((text, message_reference));
                }
                if entry.parts.iter().all(Option::is_some) {
                    let entry = self.partial.remove(&key);
                    entry.map(|e| {
                        let (texts, refs): (Vec<String>, Vec<u8>) =
                            e.parts.into_iter().flatten().unzip();
                        ReceivedMessage {
                            to,
                            text: texts.concat(),
                            parts: refs.len(),
                            status_report_requested: e.status_report_requested,
                            received_at: now().to_rfc3339(),
                            message_references: refs,
                        }
                    })
                } else {
                    None
                }
            }
            _ => Some(ReceivedMessage {
                to,
                text,
                parts: 1,
                status_report_requested: srr,
                received_at: now().to_rfc3339(),
                message_references: vec![message_reference],
            }),
        };
        if let Some(m) = &message {
            self.received.push(m.clone());
        }
        result.completed = message;
        result
    }

    /// Encode an inbound SMS as SMS-DELIVER parts and queue them for the modem.
    /// Returns how many parts.
    pub fn inject(&mut self, from: &str, text: &str) -> Result<usize, PduError> {
        self.inject_in_order(from, text, None)
    }

    /// Like [`Network::inject`], but the parts arrive in `order` (1-based part
    /// numbers; a number given twice is delivered twice), as networks do when
    /// parts take different routes or a centre retries.
    pub fn inject_in_order(
        &mut self,
        from: &str,
        text: &str,
        order: Option<&[usize]>,
    ) -> Result<usize, PduError> {
        self.inject_sent_at(from, text, now(), order)
    }

    /// Like [`Network::inject_in_order`], stamped `sent_at` by the centre
    /// (TP-SCTS): the same single-part text injected twice with the same
    /// stamp is the same bytes twice, as a handset repeating STOP within a
    /// second is on a real network.
    pub fn inject_sent_at(
        &mut self,
        from: &str,
        text: &str,
        sent_at: DateTime<FixedOffset>,
        order: Option<&[usize]>,
    ) -> Result<usize, PduError> {
        let originator = match Address::parse_number(from) {
            Ok(a) => a,
            Err(e) => Address::alphanumeric(from).map_err(|_| e)?,
        };
        let reference = u16::from(self.next_reference);
        self.next_reference = self.next_reference.wrapping_add(1).max(1);
        let options = DeliverOptions {
            reference,
            ..DeliverOptions::default()
        };
        let message = pdu::encode_deliver(&originator, text, sent_at, &options)?;
        let parts = message.parts.len();
        match order {
            None => self.waiting.extend(message.parts),
            Some(order) => {
                for &n in order {
                    if let Some(part) = n.checked_sub(1).and_then(|i| message.parts.get(i)) {
                        self.waiting.push_back(part.clone());
                    }
                }
            }
        }
        Ok(parts)
    }

    /// The script for a recipient, if a handset answers there.
    pub fn handset(&self, number: &str) -> Option<&HandsetScript> {
        self.handsets
            .iter()
            .find(|h| same_number(&h.number, number))
    }

    /// What the handset at `number` answers to the message it just got, and
    /// after how long (None: no handset there, or its script is done).
    pub fn handset_answer(&mut self, number: &str) -> Option<(String, Duration)> {
        let script = self
            .handsets
            .iter()
            .find(|h| same_number(&h.number, number))?;
        let count = self.answered.entry(script.number.clone()).or_insert(0);
        let text = script.answer(*count)?;
        *count += 1;
        Some((text, script.delay))
    }

    pub fn set_handset(&mut self, script: HandsetScript) {
        self.handsets
            .retain(|h| !same_number(&h.number, &script.number));
        self.answered.retain(|n, _| !same_number(n, &script.number));
        self.handsets.push(script);
    }
}

/// Numbers compare on their digits: `+1 555-0100` is `+15550100`.
fn same_number(a: &str, b: &str) -> bool {
    let digits = |s: &str| -> String { s.chars().filter(|c| c.is_ascii_alphanumeric()).collect() };
    digits(a) == digits(b)
}

fn now() -> DateTime<FixedOffset> {
    Utc::now().fixed_offset()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{encode_submit, SubmitOptions};

    fn submit_all(network: &mut Network, to: &str, text: &str, srr: bool) -> Vec<Submission> {
        let options = SubmitOptions {
            status_report: srr,
            reference: 7,
            ..SubmitOptions::default()
        };
        let message = encode_submit(&Address::parse_number(to).unwrap(), text, &options).unwrap();
        message
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| network.submit(&p.pdu, 10 + i as u8))
            .collect()
    }

    #[test]
    fn multipart_submissions_join_into_one_message() {
        let mut network = Network::new(vec![]);
        let text = "Reply C to confirm 🙂 ".repeat(8);
        let results = submit_all(&mut network, "+15550100", &text, true);
        assert!(results.len() > 1);
        assert!(results[..results.len() - 1]
            .iter()
            .all(|r| r.completed.is_none()));
        assert_eq!(network.received.len(), 1);
        let m = &network.received[0];
        assert_eq!(
            (m.to.as_str(), m.text.as_str()),
            ("+15550100", text.as_str())
        );
        assert_eq!(m.parts, results.len());
        assert!(m.status_report_requested);
        // One report per part, each carrying the modem's TP-MR.
        let report = results[1].report.as_ref().unwrap();
        match pdu::decode(&report.pdu, true).unwrap().tpdu {
            Tpdu::StatusReport(r) => {
                assert_eq!(r.message_reference, 11);
                assert_eq!(r.status, Status(0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failing_numbers_get_failed_reports() {
        let mut network = Network::new(vec!["+1 555 0199".into()]);
        let results = submit_all(&mut network, "+15550199", "hi", true);
        let report = results[0].report.as_ref().unwrap();
        match pdu::decode(&report.pdu, true).unwrap().tpdu {
            Tpdu::StatusReport(r) => assert_eq!(r.status.class(), pdu::StatusClass::Failed),
            other => panic!("{other:?}"),
        }
        assert!(submit_all(&mut network, "+15550199", "hi", false)[0]
            .report
            .is_none());
    }

    #[test]
    fn busy_numbers_get_a_still_trying_report_first() {
        let mut network = Network::new(vec![]);
        network.busy_numbers = vec!["+15550198".into()];
        let status = |r: &Option<PendingReport>| match pdu::decode(&r.as_ref().unwrap().pdu, true)
            .unwrap()
            .tpdu
        {
            Tpdu::StatusReport(r) => (r.message_reference, r.status),
            other => panic!("{other:?}"),
        };
        let results = submit_all(&mut network, "+15550198", "hi", true);
        assert_eq!(status(&results[0].interim), (10, Status(0x21)));
        assert_eq!(
            status(&results[0].interim).1.class(),
            pdu::StatusClass::Pending
        );
        assert_eq!(status(&results[0].report), (10, Status(0x00)));
        // Others: the final report only.
        assert!(submit_all(&mut network, "+15550100", "hi", true)[0]
            .interim
            .is_none());
    }

    #[test]
    fn inject_queues_parts_and_accepts_alphanumeric_senders() {
        let mut network = Network::new(vec![]);
        assert_eq!(network.inject("+15550100", "hello").unwrap(), 1);
        assert_eq!(network.inject("MyShop", &"x".repeat(200)).unwrap(), 2);
        assert_eq!(network.waiting.len(), 3);
        assert!(network.inject("", "x").is_err());
    }
}

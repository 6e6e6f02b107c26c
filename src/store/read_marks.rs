//! Read marks: `POST /v1/threads/{contact}/read` marks a thread's inbound
//! messages read and zeroes its unread count, in one transaction so the
//! messages and the thread summary never disagree.

use std::collections::HashSet;

use sled::Transactional;

use super::keys;
use super::query::ThreadSummary;
use super::records::{Direction, Message};
use super::{from_json_tx, to_json, unwrap_tx, Result, Store};

impl Store {
    /// Mark every inbound message of `contact` read; returns how many were
    /// unread. Durable when it returns.
    pub async fn mark_thread_read(&self, contact: &str) -> Result<u64> {
        let i = &self.inner;
        // sled transactions cannot scan a tree, so the thread's ids are read
        // first; a message arriving in between is handled below.
        let prefix = keys::thread_prefix(contact);
        let mut ids = Vec::new();
        let mut newest_scanned: Option<chrono::DateTime<chrono::Utc>> = None;
        for entry in i.threads.scan_prefix(&prefix) {
            let (key, _) = entry?;
            if let Some(id) = key.get(prefix.len() + 8..) {
                ids.push(id.to_vec());
            }
            newest_scanned = newest_scanned.max(keys::time_of(&key[prefix.len()..]));
        }
        let scanned: HashSet<&[u8]> = ids.iter().map(Vec::as_slice).collect();
        let marked = (&i.messages, &i.contacts)
            .transaction(|(messages, contacts)| {
                let mut marked = 0u64;
                for id in &ids {
                    let Some(raw) = messages.get(id)? else {
                        continue;
                    };
                    let mut message: Message = from_json_tx(id, &raw)?;
                    if message.direction == Direction::Inbound && !message.read {
                        message.read = true;
                        messages.insert(id.as_slice(), to_json(&message)?)?;
                        marked += 1;
                    }
                }
                let key = contact.as_bytes();
                if let Some(raw) = contacts.get(key)? {
                    let mut summary: ThreadSummary = from_json_tx(key, &raw)?;
                    // A message stored after the scan is still unread; when the
                    // scan saw the latest message, or it is archived already
                    // (archived messages are read through the summary's mark),
                    // nothing unread is left.
                    let last = summary.last_message_id.as_bytes();
                    let all = scanned.contains(last) || messages.get(last)?.is_none();
                    if all {
                        marked = marked.max(summary.unread);
                        summary.unread = 0;
                        summary.read_through = Some(summary.last_at);
                    } else {
                        summary.unread = summary.unread.saturating_sub(marked);
                        if newest_scanned > summary.read_through {
                            summary.read_through = newest_scanned;
                        }
                    }
                    contacts.insert(key, to_json(&summary)?)?;
                }
                Ok(marked)
            })
            .map_err(unwrap_tx)?;
        let ticket = i.commit.ticket();
        self.durable(ticket).await?;
        Ok(marked)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::super::test_support::TempStore;
    use super::super::{InboundPart, ReceiveOutcome};

    fn inbound<'a>(pdu: &'a [u8], sender: &'a str, text: &'a str) -> InboundPart<'a> {
        InboundPart {
            modem: "m1",
            own_number: "+15550000000",
            raw_pdu: pdu,
            sender,
            text,
            alphabet: "gsm7",
            network_time: Utc::now(),
            concat: None,
            error: None,
        }
    }

    #[tokio::test]
    async fn marks_inbound_read_and_zeroes_unread() {
        let t = TempStore::new();
        let contact = "+15551239001";
        for (pdu, text) in [(&b"r1"[..], "one"), (b"r2", "two")] {
            let outcome = t.store.receive(inbound(pdu, contact, text)).await.unwrap();
            assert!(matches!(outcome, ReceiveOutcome::Complete(..)));
        }
        let reply = t
            .store
            .new_outbound("", contact, "ok", 1, "gsm7", false, None, Utc::now());
        t.store.accept(reply, None).await.unwrap();
        // Another contact's thread is left alone.
        t.store
            .receive(inbound(b"r3", "+15551239002", "other"))
            .await
            .unwrap();

        assert_eq!(t.store.thread_summary(contact).unwrap().unwrap().unread, 2);
        assert_eq!(t.store.mark_thread_read(contact).await.unwrap(), 2);
        let summary = t.store.thread_summary(contact).unwrap().unwrap();
        assert_eq!((summary.unread, summary.total), (0, 3));
        let page = t.store.thread(contact, None, 10).unwrap();
        assert!(page
            .items
            .iter()
            .filter(|m| m.direction == super::Direction::Inbound)
            .all(|m| m.read));
        assert_eq!(
            t.store
                .thread_summary("+15551239002")
                .unwrap()
                .unwrap()
                .unread,
            1
        );
        // Again: nothing left to mark.
        assert_eq!(t.store.mark_thread_read(contact).await.unwrap(), 0);
        // A thread that does not exist marks nothing.
        assert_eq!(t.store.mark_thread_read("+15550000001").await.unwrap(), 0);
    }
}

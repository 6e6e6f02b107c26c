//! Reading: a contact's thread, the thread list, message lists with filters and
//! cursors, events after a given one. Cursors are opaque hex of a tree key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;

use super::keys;
use super::records::{Direction, Event, Message, MessageStatus};
use super::{from_json, from_json_tx, to_json, Result, Store, StoreError, TxError};

/// One page of a list: `{items, next_cursor}` in the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A thread in the thread list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadSummary {
    pub contact: String,
    pub last_message_id: String,
    /// The start of the last message's body.
    pub last_preview: String,
    pub last_direction: Direction,
    pub last_at: DateTime<Utc>,
    /// Inbound messages not marked read.
    pub unread: u64,
    pub total: u64,
    /// Inbound messages created up to this time are read (the read mark of
    /// archived messages, whose records are not rewritten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_through: Option<DateTime<Utc>>,
}

/// Filters of `GET /v1/messages`.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub contact: Option<String>,
    pub direction: Option<Direction>,
    pub status: Option<MessageStatus>,
    pub since: Option<DateTime<Utc>>,
}

const PREVIEW_CHARS: usize = 80;

/// Reads tried without holding off moves to the history before one that does.
const OPTIMISTIC_READS: usize = 3;

/// A thread cursor of `contact` (a thread key), checked to be one.
fn thread_cursor(contact: &str, cursor: Option<&str>) -> Result<Option<Vec<u8>>> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let key = key_of(cursor)?;
    if !key.starts_with(&keys::thread_prefix(contact)) {
        return Err(StoreError::InvalidCursor);
    }
    Ok(Some(key))
}

/// One page of a list from a stream of (key, message), newest first: the
/// stream ends at the first message `past` the filter's time, skips those
/// that do not `match`, and stops at `limit` items or the scan budget.
fn page_of(
    stream: impl Iterator<Item = Result<(Vec<u8>, Message)>>,
    past: impl Fn(&Message) -> bool,
    matches: impl Fn(&Message) -> bool,
    limit: usize,
) -> Result<Page<Message>> {
    let mut items = Vec::with_capacity(limit);
    let mut last_cursor: Option<String> = None;
    let mut examined = Budget::default();
    for item in stream {
        let (key, m) = item?;
        if past(&m) {
            break;
        }
        if let Some(cursor) = examined.spend(&key) {
            return Ok(Page {
                items,
                next_cursor: Some(cursor),
            });
        }
        if !matches(&m) {
            continue;
        }
        if items.len() == limit {
            return Ok(Page {
                items,
                next_cursor: last_cursor,
            });
        }
        items.push(m);
        last_cursor = Some(cursor_of(&key));
    }
    Ok(Page {
        items,
        next_cursor: None,
    })
}

/// Messages a list request looks at, at most: a filter that matches little
/// (a status, over years of history) answers a short page with a cursor
/// instead of reading everything while the client waits.
pub const LIST_SCAN_BUDGET: usize = 10_000;

/// Counts what a list request has looked at.
#[derive(Default)]
struct Budget {
    spent: usize,
    last: Option<Vec<u8>>,
}

impl Budget {
    /// Note one more message looked at (its key); once the budget is spent,
    /// the cursor that resumes right after the last one looked at.
    fn spend(&mut self, key: &[u8]) -> Option<String> {
        if self.spent == LIST_SCAN_BUDGET {
            return self.last.as_deref().map(cursor_of);
        }
        self.spent += 1;
        self.last = Some(key.to_vec());
        None
    }
}

fn cursor_of(key: &[u8]) -> String {
    crate::pdu::hex::encode(key)
}

fn key_of(cursor: &str) -> Result<Vec<u8>> {
    crate::pdu::hex::decode(cursor).map_err(|_| StoreError::InvalidCursor)
}

/// Record a new message in its contact's summary and the recent-threads index.
pub(crate) fn touch_contact(
    contacts: &TransactionalTree,
    recent: &TransactionalTree,
    message: &Message,
) -> std::result::Result<(), TxError> {
    let key = message.contact.as_bytes();
    let previous: Option<ThreadSummary> = match contacts.get(key)? {
        Some(raw) => Some(from_json_tx(key, &raw)?),
        None => None,
    };
    // A new contact's hash entry (which lets an archived message's id lead
    // back to it) is written when its first message is archived, off this
    // path: one random key per new contact cost as much as the rest of a
    // campaign message's writes together.
    if let Some(p) = &previous {
        recent.remove(keys::recent(p.last_at, &p.contact))?;
    }
    let previous_read_through = previous.as_ref().and_then(|p| p.read_through);
    let (unread, total) = previous.map_or((0, 0), |p| (p.unread, p.total));
    let inbound = message.direction == Direction::Inbound;
    let summary = ThreadSummary {
        contact: message.contact.clone(),
        last_message_id: message.id.clone(),
        last_preview: message.body.chars().take(PREVIEW_CHARS).collect(),
        last_direction: message.direction,
        last_at: message.created_at,
        unread: unread + u64::from(inbound && !message.read),
        total: total + 1,
        read_through: previous_read_through,
    };
    contacts.insert(key, to_json(&summary)?)?;
    recent.insert(keys::recent(summary.last_at, &summary.contact), &[])?;
    Ok(())
}

impl Store {
    /// The last `limit` messages of a contact, oldest first; `before` (a
    /// `next_cursor`) pages towards older ones. Live and archived messages
    /// alike.
    pub fn thread(
        &self,
        contact: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<Message>> {
        self.consistent(|| self.thread_page(contact, before, limit))
    }

    /// Run a read again when messages moved to the history while it ran: a
    /// move between reading the live part and the history could otherwise
    /// hide a message from that page. After [`OPTIMISTIC_READS`] overlapped
    /// moves (a busy housekeeping pass), the read runs once more holding the
    /// history writers' lock, so no move can overlap it.
    pub(crate) fn consistent<T>(&self, read: impl Fn() -> Result<T>) -> Result<T> {
        for _ in 0..OPTIMISTIC_READS {
            let before = self.history_generation();
            let page = read()?;
            if self.history_generation() == before {
                return Ok(page);
            }
        }
        tracing::warn!(
            tries = OPTIMISTIC_READS,
            "store: a read overlapped moves to the history every time; reading with moves held off"
        );
        let _moves_held = self.history_writer()?;
        read()
    }

    fn thread_page(
        &self,
        contact: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<Message>> {
        let before = thread_cursor(contact, before)?;
        let mut items = Vec::with_capacity(limit);
        let mut more = false;
        for item in self.thread_rev(contact, before)? {
            let (key, message) = item?;
            if items.len() == limit {
                more = true;
                break;
            }
            items.push((key, message));
        }
        // The cursor is the oldest item returned: the next page ends before it.
        let next_cursor = if more {
            items.last().map(|(k, _)| cursor_of(k))
        } else {
            None
        };
        let mut items: Vec<Message> = items.into_iter().map(|(_, m)| m).collect();
        items.reverse();
        Ok(Page { items, next_cursor })
    }

    /// Threads, most recent activity first.
    pub fn threads(&self, before: Option<&str>, limit: usize) -> Result<Page<ThreadSummary>> {
        let range = match before {
            Some(cursor) => self.inner.recent.range(..key_of(cursor)?),
            None => self.inner.recent.range::<&[u8], _>(..),
        };
        let mut items = Vec::with_capacity(limit);
        let mut last_key = None;
        let mut more = false;
        for entry in range.rev() {
            let (key, _) = entry?;
            if items.len() == limit {
                more = true;
                break;
            }
            let contact = &key[8..];
            if let Some(raw) = self.inner.contacts.get(contact)? {
                items.push(from_json::<ThreadSummary>(contact, &raw)?);
                last_key = Some(key.to_vec());
            }
        }
        Ok(Page {
            items,
            next_cursor: if more {
                last_key.map(|k| cursor_of(&k))
            } else {
                None
            },
        })
    }

    /// A thread's summary.
    pub fn thread_summary(&self, contact: &str) -> Result<Option<ThreadSummary>> {
        match self.inner.contacts.get(contact.as_bytes())? {
            Some(raw) => Ok(Some(from_json(contact.as_bytes(), &raw)?)),
            None => Ok(None),
        }
    }

    /// Messages matching `filter`, newest first.
    pub fn list(
        &self,
        filter: &MessageFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<Message>> {
        self.consistent(|| self.list_page(filter, before, limit))
    }

    fn list_page(
        &self,
        filter: &MessageFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<Message>> {
        let matches = |m: &Message| {
            filter.direction.is_none_or(|d| m.direction == d)
                && filter.status.is_none_or(|s| m.status == s)
                && filter.since.is_none_or(|t| m.created_at >= t)
        };
        if let Some(contact) = &filter.contact {
            let before = thread_cursor(contact, before)?;
            // Thread order is by time: nothing after one older than `since`.
            let past = |m: &Message| filter.since.is_some_and(|t| m.created_at < t);
            return page_of(self.thread_rev(contact, before)?, past, matches, limit);
        }
        // Live and archived messages merged newest first by id (ids sort by
        // creation time); the cursor is the last id returned.
        let before = match before {
            Some(c) => Some(key_of(c)?),
            None => None,
        };
        let live_range = match &before {
            Some(k) => self.inner.messages.range(..k.as_slice()),
            None => self.inner.messages.range::<&[u8], _>(..),
        };
        let live = live_range.rev().map(|entry| {
            let (key, raw) = entry?;
            Ok((key.to_vec(), from_json::<Message>(&key, &raw)?))
        });
        let merged = super::history::merge_desc(live, self.archived_by_id_rev(before));
        // Ids order by the millisecond: nothing after one older than
        // `since`'s millisecond can match.
        let since_ms = filter.since.map(|t| t.timestamp_millis());
        let past = |m: &Message| since_ms.is_some_and(|t| m.created_at.timestamp_millis() < t);
        page_of(merged, past, matches, limit)
    }

    /// Events after `after` (an event id), oldest first, without those a
    /// fleet writes for its own streams ([`super::fleet_only`]).
    pub fn events_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Event>> {
        let start = match after {
            Some(id) => {
                let seq = id
                    .strip_prefix("evt_")
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .ok_or(StoreError::InvalidCursor)?;
                (seq.saturating_add(1)).to_be_bytes()
            }
            None => [0; 8],
        };
        self.inner
            .events
            .range(start..)
            .map(|entry| {
                let (key, raw) = entry?;
                from_json::<Event>(&key, &raw)
            })
            .filter(|e| e.as_ref().map_or(true, |e| !super::fleet_only(&e.kind)))
            .take(limit)
            .collect()
    }
}

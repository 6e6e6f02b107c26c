//! Message storage (27.005 §3.1 `<mem1>`..`<mem3>`): a finite set of numbered
//! slots on the SIM ("SM"), in the module ("ME") or for status reports ("SR").

use std::collections::BTreeMap;

/// `<stat>` in PDU mode (27.005 §3.1): 0 received unread, 1 received read,
/// 2 stored unsent, 3 stored sent; 4 means "all" in `AT+CMGL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStat {
    ReceivedUnread = 0,
    ReceivedRead = 1,
    StoredUnsent = 2,
    StoredSent = 3,
}

impl MessageStat {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The text-mode name (27.005 §3.1), for `AT+CMGL="ALL"` style lookups.
    pub fn text(self) -> &'static str {
        match self {
            MessageStat::ReceivedUnread => "REC UNREAD",
            MessageStat::ReceivedRead => "REC READ",
            MessageStat::StoredUnsent => "STO UNSENT",
            MessageStat::StoredSent => "STO SENT",
        }
    }
}

/// One stored message: its state and its PDU (SMSC field included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub stat: MessageStat,
    pub pdu: Vec<u8>,
    /// Octets of the TPDU alone: the `<length>` of `+CMGR`/`+CMGL`.
    pub tpdu_length: usize,
}

/// One memory: slots `first_index..first_index + capacity`.
#[derive(Debug, Clone)]
pub struct MessageStorage {
    pub name: &'static str,
    pub capacity: usize,
    /// SIMCom numbers slots from 1, Quectel and Huawei from 0.
    pub first_index: u16,
    slots: BTreeMap<u16, StoredMessage>,
}

impl MessageStorage {
    pub fn new(name: &'static str, capacity: usize, first_index: u16) -> MessageStorage {
        MessageStorage {
            name,
            capacity,
            first_index,
            slots: BTreeMap::new(),
        }
    }

    pub fn used(&self) -> usize {
        self.slots.len()
    }

    pub fn is_full(&self) -> bool {
        self.slots.len() >= self.capacity
    }

    /// Store in the lowest free slot, as firmware does; `None` when full.
    pub fn store(&mut self, message: StoredMessage) -> Option<u16> {
        if self.is_full() {
            return None;
        }
        let last = self.first_index as usize + self.capacity;
        let index = (self.first_index as usize..last)
            .map(|i| i as u16)
            .find(|i| !self.slots.contains_key(i))?;
        self.slots.insert(index, message);
        Some(index)
    }

    pub fn get(&self, index: u16) -> Option<&StoredMessage> {
        self.slots.get(&index)
    }

    /// `AT+CMGR` marks a received message read (27.005 §3.4.3).
    pub fn read(&mut self, index: u16) -> Option<StoredMessage> {
        let slot = self.slots.get_mut(&index)?;
        let before = slot.clone();
        if slot.stat == MessageStat::ReceivedUnread {
            slot.stat = MessageStat::ReceivedRead;
        }
        Some(before)
    }

    /// Whether `index` names a slot of this memory (27.005 `+CMS ERROR: 321`
    /// otherwise).
    pub fn in_range(&self, index: u16) -> bool {
        index >= self.first_index && usize::from(index - self.first_index) < self.capacity
    }

    pub fn delete(&mut self, index: u16) -> bool {
        self.slots.remove(&index).is_some()
    }

    /// `AT+CMGD=<index>,<delflag>` (27.005 §3.5.4): 1 read, 2 read and sent,
    /// 3 read, sent and unsent, 4 all.
    pub fn delete_flagged(&mut self, flag: u8) {
        self.slots.retain(|_, m| match flag {
            1 => m.stat != MessageStat::ReceivedRead,
            2 => !matches!(m.stat, MessageStat::ReceivedRead | MessageStat::StoredSent),
            3 => m.stat == MessageStat::ReceivedUnread,
            _ => false,
        });
    }

    /// Messages in index order with `<stat>` = `filter` (4: all).
    pub fn list(&self, filter: u8) -> Vec<(u16, StoredMessage)> {
        self.slots
            .iter()
            .filter(|(_, m)| filter == 4 || m.stat.code() == filter)
            .map(|(&i, m)| (i, m.clone()))
            .collect()
    }

    /// `AT+CMGL` marks the unread messages it lists as read.
    pub fn mark_read(&mut self, indices: &[u16]) {
        for i in indices {
            if let Some(m) = self.slots.get_mut(i) {
                if m.stat == MessageStat::ReceivedUnread {
                    m.stat = MessageStat::ReceivedRead;
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(stat: MessageStat) -> StoredMessage {
        StoredMessage {
            stat,
            pdu: vec![0],
            tpdu_length: 0,
        }
    }

    #[test]
    fn fills_lowest_free_slot_and_refuses_when_full() {
        let mut s = MessageStorage::new("SM", 3, 1);
        assert_eq!(s.store(msg(MessageStat::ReceivedUnread)), Some(1));
        assert_eq!(s.store(msg(MessageStat::ReceivedUnread)), Some(2));
        assert_eq!(s.store(msg(MessageStat::ReceivedUnread)), Some(3));
        assert_eq!(s.store(msg(MessageStat::ReceivedUnread)), None);
        assert!(s.delete(2));
        assert_eq!(s.store(msg(MessageStat::ReceivedUnread)), Some(2));
        assert!(s.in_range(3) && !s.in_range(0) && !s.in_range(4));
    }

    #[test]
    fn delete_flags_follow_27005() {
        let mut s = MessageStorage::new("ME", 10, 0);
        for stat in [
            MessageStat::ReceivedUnread,
            MessageStat::ReceivedRead,
            MessageStat::StoredUnsent,
            MessageStat::StoredSent,
        ] {
            s.store(msg(stat));
        }
        s.delete_flagged(2);
        assert_eq!(
            s.list(4).iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 2]
        );
        s.delete_flagged(4);
        assert_eq!(s.used(), 0);
    }
}

//! TP-ST, the status in a status report (23.040 §9.2.3.15).

/// What a status means for the message it reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 0x00-0x1F: the transaction completed (received by the handset, or at least
    /// forwarded).
    Delivered,
    /// 0x20-0x3F: a temporary error; the service centre is still trying.
    Pending,
    /// 0x40-0x7F (and anything higher): permanent, or temporary with no more
    /// attempts; either way the message will not arrive.
    Failed,
}

impl StatusClass {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Delivered => "delivered",
            StatusClass::Pending => "pending",
            StatusClass::Failed => "failed",
        }
    }
}

/// A TP-ST octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u8);

impl Status {
    pub fn class(self) -> StatusClass {
        match self.0 {
            0x00..=0x1F => StatusClass::Delivered,
            0x20..=0x3F => StatusClass::Pending,
            _ => StatusClass::Failed,
        }
    }

    /// The meaning of the values 23.040 §9.2.3.15 defines; `None` for reserved and
    /// service-centre-specific ones.
    pub fn meaning(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "received by the recipient",
            0x01 => "forwarded, delivery not confirmed",
            0x02 => "replaced by the service centre",
            0x20 => "congestion, still trying",
            0x21 => "recipient busy, still trying",
            0x22 => "no response from recipient, still trying",
            0x23 => "service rejected, still trying",
            0x24 => "quality of service not available, still trying",
            0x25 => "error in recipient, still trying",
            0x40 => "remote procedure error",
            0x41 => "incompatible destination",
            0x42 => "connection rejected by recipient",
            0x43 => "not obtainable",
            0x44 => "quality of service not available",
            0x45 => "no interworking available",
            0x46 => "validity period expired",
            0x47 => "deleted by originating recipient",
            0x48 => "deleted by service centre administration",
            0x49 => "message does not exist",
            0x60 => "congestion, no more attempts",
            0x61 => "recipient busy, no more attempts",
            0x62 => "no response from recipient, no more attempts",
            0x63 => "service rejected, no more attempts",
            0x64 => "quality of service not available, no more attempts",
            0x65 => "error in recipient, no more attempts",
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_ranges() {
        for (st, class) in [
            (0x00, StatusClass::Delivered),
            (0x1F, StatusClass::Delivered),
            (0x20, StatusClass::Pending),
            (0x30, StatusClass::Pending),
            (0x3F, StatusClass::Pending),
            (0x40, StatusClass::Failed),
            (0x46, StatusClass::Failed),
            (0x60, StatusClass::Failed),
            (0x7F, StatusClass::Failed),
            (0xFF, StatusClass::Failed),
        ] {
            assert_eq!(Status(st).class(), class, "{st:#04X}");
        }
        assert_eq!(Status(0x46).meaning(), Some("validity period expired"));
        assert_eq!(Status(0x30).meaning(), None);
    }
}
